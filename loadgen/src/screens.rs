//! Live screens, held the way an audience's phones hold them: each one an
//! open `GET /api/v1/events` stream through the UI, read for as long as the
//! run lasts, reopened (after a jittered pause) when it is refused or ends.
//!
//! - [`Acks`]: when each vote the voters cast was acknowledged, by
//!   restaurant and count (the count the vote's answer carried). The voters
//!   fill it ([`crate::Engine::with_acks`]).
//! - [`Screens`]: opens the streams ([`Screens::open`]) and, when the votes
//!   are over, lets them settle and sums up ([`Screens::finish`]).
//! - [`ScreenSummary`]: what the screens saw, in the `--json` summary.
//!
//! **Vote → screen latency.** When a `state` event shows a restaurant's
//! count grown from `a` to `b`, the oldest vote it newly shows (count `a+1`,
//! the one that waited longest) gives one sample: the event's arrival minus
//! that vote's acknowledgement, or 0 when the screen saw it before the voter
//! got its answer. Votes not cast by this run (count unknown) give none. A
//! screen's first event is its baseline and gives no sample.
//!
//! **Missed.** A screen whose last state, once the run has settled, is not
//! the final count of every restaurant missed an update.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

use futures_util::StreamExt as _;
use serde::Serialize;
use yelb_core::wire::LiveState;
use yelb_core::{Restaurant, VoteCounts, api};

/// A sample over this is counted late (the keynote target).
pub const LATE: Duration = Duration::from_millis(250);

/// When each acknowledged vote was answered, by (restaurant, count).
#[derive(Debug, Default)]
pub struct Acks {
    at: RwLock<HashMap<(Restaurant, i64), Instant>>,
}

impl Acks {
    /// Notes that the vote that made `restaurant`'s count `count` was
    /// acknowledged `at`.
    pub fn record(&self, restaurant: Restaurant, count: i64, at: Instant) {
        self.at.write().unwrap_or_else(|e| e.into_inner()).insert((restaurant, count), at);
    }

    fn get(&self, restaurant: Restaurant, count: i64) -> Option<Instant> {
        self.at.read().unwrap_or_else(|e| e.into_inner()).get(&(restaurant, count)).copied()
    }
}

/// What the screens saw.
#[derive(Debug, Clone, Default, Serialize, PartialEq)]
pub struct ScreenSummary {
    /// Screens asked for.
    pub screens: usize,
    /// The most streams open at once.
    pub open_peak: usize,
    /// Stream opens refused, by status (`503`, `network`, ...).
    pub refused: BTreeMap<String, u64>,
    /// Streams that ended while the run went on (then reopened).
    pub dropped: u64,
    /// `state` events received, all screens together.
    pub updates: u64,
    /// Latency samples (see the module docs).
    pub samples: u64,
    /// Vote → screen latency, median, ms.
    pub p50_ms: f64,
    /// 95th percentile, ms.
    pub p95_ms: f64,
    /// 99th percentile, ms.
    pub p99_ms: f64,
    /// Samples over [`LATE`].
    pub late: u64,
    /// Screens whose last state was not the final counts.
    pub missed: usize,
    /// Bytes received per screen, on average.
    pub bytes_per_screen: f64,
}

/// What one screen saw.
#[derive(Debug, Default)]
struct Seen {
    samples: Vec<u32>,
    bytes: u64,
    updates: u64,
    dropped: u64,
    refused: BTreeMap<String, u64>,
    last: Option<VoteCounts>,
}

/// The open screens of a run.
pub struct Screens {
    tasks: tokio::task::JoinSet<Seen>,
    stop: tokio::sync::watch::Sender<bool>,
    open: Arc<std::sync::atomic::AtomicUsize>,
    open_peak: Arc<std::sync::atomic::AtomicUsize>,
    screens: usize,
}

impl Screens {
    /// Opens `screens` streams on `url` (the UI's base URL), all at once.
    pub fn open(url: &str, screens: usize, acks: Arc<Acks>) -> anyhow::Result<Screens> {
        // No timeout: a stream lasts the run. A pool per screen would be
        // pointless: each holds its one connection.
        let client = reqwest::Client::builder().connect_timeout(Duration::from_secs(10)).build()?;
        let (stop, stopped) = tokio::sync::watch::channel(false);
        let open = Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let open_peak = Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let events = format!("{}{}", url.trim_end_matches('/'), api::EVENTS);
        let mut tasks = tokio::task::JoinSet::new();
        for _ in 0..screens {
            let screen = Screen {
                client: client.clone(),
                url: events.clone(),
                acks: acks.clone(),
                stopped: stopped.clone(),
                open: open.clone(),
                open_peak: open_peak.clone(),
            };
            tasks.spawn(screen.run());
        }
        Ok(Screens { tasks, stop, open, open_peak, screens })
    }

    /// Streams open now.
    pub fn open_now(&self) -> usize {
        self.open.load(std::sync::atomic::Ordering::Relaxed)
    }

    /// Closes every stream and sums up against `final_counts`, the counts
    /// read once the votes were over and the screens had time to settle.
    pub async fn finish(mut self, final_counts: VoteCounts) -> ScreenSummary {
        let _ = self.stop.send(true);
        let mut summary = ScreenSummary {
            screens: self.screens,
            open_peak: self.open_peak.load(std::sync::atomic::Ordering::Relaxed),
            ..ScreenSummary::default()
        };
        let mut samples = Vec::new();
        let mut bytes = 0u64;
        while let Some(seen) = self.tasks.join_next().await {
            let Ok(seen) = seen else { continue };
            samples.extend_from_slice(&seen.samples);
            bytes += seen.bytes;
            summary.updates += seen.updates;
            summary.dropped += seen.dropped;
            for (why, n) in seen.refused {
                *summary.refused.entry(why).or_default() += n;
            }
            if seen.last != Some(final_counts) {
                summary.missed += 1;
            }
        }
        samples.sort_unstable();
        summary.samples = samples.len() as u64;
        summary.p50_ms = crate::quantile(&samples, 0.50);
        summary.p95_ms = crate::quantile(&samples, 0.95);
        summary.p99_ms = crate::quantile(&samples, 0.99);
        let late = LATE.as_micros() as u32;
        summary.late = samples.iter().filter(|&&s| s > late).count() as u64;
        summary.bytes_per_screen = bytes as f64 / self.screens.max(1) as f64;
        summary
    }
}

/// One screen's loop.
struct Screen {
    client: reqwest::Client,
    url: String,
    acks: Arc<Acks>,
    stopped: tokio::sync::watch::Receiver<bool>,
    open: Arc<std::sync::atomic::AtomicUsize>,
    open_peak: Arc<std::sync::atomic::AtomicUsize>,
}

impl Screen {
    async fn run(mut self) -> Seen {
        let mut seen = Seen::default();
        while !*self.stopped.borrow() {
            let opened = tokio::select! {
                r = self.client.get(&self.url).header("accept", "text/event-stream").send() => r,
                _ = self.stopped.changed() => break,
            };
            match opened {
                Ok(r) if r.status().is_success() => {
                    let n = self.open.fetch_add(1, std::sync::atomic::Ordering::Relaxed) + 1;
                    self.open_peak.fetch_max(n, std::sync::atomic::Ordering::Relaxed);
                    let ended = self.read(r, &mut seen).await;
                    self.open.fetch_sub(1, std::sync::atomic::Ordering::Relaxed);
                    if !ended {
                        break;
                    }
                    seen.dropped += 1;
                }
                Ok(r) => *seen.refused.entry(r.status().as_u16().to_string()).or_default() += 1,
                Err(_) => *seen.refused.entry("network".into()).or_default() += 1,
            }
            // A refused or ended stream is tried again after a jittered
            // pause, as the page does, never in lockstep with the others.
            let pause = Duration::from_millis(1000 + fastrand::u64(0..2000));
            tokio::select! {
                () = tokio::time::sleep(pause) => {}
                _ = self.stopped.changed() => break,
            }
        }
        seen
    }

    /// Reads one stream; true when it ended by itself, false when stopped.
    async fn read(&mut self, response: reqwest::Response, seen: &mut Seen) -> bool {
        let mut body = response.bytes_stream();
        let mut buffer: Vec<u8> = Vec::new();
        loop {
            let chunk = tokio::select! {
                c = body.next() => c,
                _ = self.stopped.changed() => return false,
            };
            let Some(Ok(chunk)) = chunk else { return true };
            let arrived = Instant::now();
            seen.bytes += chunk.len() as u64;
            buffer.extend_from_slice(&chunk);
            // An event ends with a blank line.
            while let Some(end) = buffer.windows(2).position(|w| w == b"\n\n") {
                let event: Vec<u8> = buffer.drain(..end + 2).collect();
                if let Some(state) = parse_state(&event) {
                    self.saw(&state.votes, arrived, seen);
                }
            }
        }
    }

    fn saw(&self, votes: &VoteCounts, arrived: Instant, seen: &mut Seen) {
        seen.updates += 1;
        if let Some(last) = seen.last {
            for r in Restaurant::ALL {
                let (was, now) = (last.get(r), votes.get(r));
                if now > was {
                    // The oldest vote this event newly shows; else the newest.
                    let acked = self.acks.get(r, was + 1).or_else(|| self.acks.get(r, now));
                    if let Some(acked) = acked {
                        let waited = arrived.saturating_duration_since(acked);
                        seen.samples.push(waited.as_micros().min(u128::from(u32::MAX)) as u32);
                    }
                }
            }
        }
        // A reset (a newer epoch) lowers counts: the new state replaces.
        seen.last = Some(*votes);
    }
}

/// The state in one server-sent event, if it is a `state` event.
fn parse_state(event: &[u8]) -> Option<LiveState> {
    let text = std::str::from_utf8(event).ok()?;
    let mut name = "message";
    let mut data = String::new();
    for line in text.lines() {
        if let Some(v) = line.strip_prefix("event:") {
            name = v.trim();
        } else if let Some(v) = line.strip_prefix("data:") {
            data.push_str(v.trim_start());
        }
    }
    (name == "state").then(|| serde_json::from_str(&data).ok()).flatten()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_state_event_is_parsed_and_other_events_are_not() {
        let event = b"event: state\ndata: {\"votes\":{\"outback\":1,\"bucadibeppo\":0,\"chipotle\":2,\"ihop\":3},\"pageviews\":4}\n\n";
        let state = parse_state(event).unwrap();
        assert_eq!((state.votes.ihop, state.pageviews, state.epoch), (3, 4, 0));
        assert!(parse_state(b": heartbeat\n\n").is_none());
        assert!(parse_state(b"event: other\ndata: {}\n\n").is_none());
        assert!(parse_state(b"event: state\ndata: {not json\n\n").is_none());
    }
}
