//! `yelb-loadgen`: the audience simulator's command line. Runs the engine
//! (`yelb_loadgen::Engine`), draws its counters once a second on stderr and
//! prints the summary on stdout (`--json` for machines).

use std::io::{IsTerminal, Write};
use std::time::Duration;

use anyhow::{Context, bail};
use clap::Parser;
use yelb_loadgen::screens::{Acks, Screens};
use yelb_loadgen::{Engine, Options, Summary};

/// Virtual voters against a Yelb UI (or app server): each votes for a random
/// restaurant, retries a failed vote with the same idempotency key, then
/// waits its think time.
#[derive(Debug, Parser)]
#[command(name = "yelb-loadgen", version, max_term_width = 100)]
struct Args {
    /// Base URL of the UI (or of an app server).
    #[arg(long, env = "YELB_LOADGEN_URL", default_value = "http://localhost:8080")]
    url: String,
    /// Virtual voters at once.
    #[arg(long, env = "YELB_LOADGEN_USERS", default_value = "10")]
    users: usize,
    /// Votes per second, all voters together (0: as fast as they can).
    #[arg(long, env = "YELB_LOADGEN_RATE", default_value = "20")]
    rate: f64,
    /// How long to run: 30, 30s, 5m or 1h.
    #[arg(long, env = "YELB_LOADGEN_DURATION", default_value = "60s")]
    duration: String,
    /// Tries after the first for a vote answered 502-504 or not at all.
    #[arg(long, default_value = "3")]
    retries: u32,
    /// Live screens to hold open through the run, as phones do: each an
    /// event stream, timed from each vote's answer to the screens showing it.
    #[arg(long, env = "YELB_LOADGEN_SCREENS", default_value = "0")]
    screens: usize,
    /// Print the summary as JSON.
    #[arg(long)]
    json: bool,
    /// No live view, only the summary.
    #[arg(long)]
    quiet: bool,
}

/// `30`, `30s`, `5m`, `1h`.
fn parse_duration(text: &str) -> anyhow::Result<Duration> {
    let (number, unit) =
        text.trim().split_at(text.trim().find(|c: char| c.is_alphabetic()).unwrap_or(text.trim().len()));
    let n: f64 =
        number.parse().with_context(|| format!("--duration {text:?}: expected e.g. 30s, 5m or 1h"))?;
    let secs = match unit {
        "" | "s" => n,
        "m" => n * 60.0,
        "h" => n * 3600.0,
        _ => bail!("--duration {text:?}: the unit must be s, m or h"),
    };
    if !(secs > 0.0 && secs <= 86_400.0) {
        bail!("--duration {text:?}: expected more than 0 and at most a day");
    }
    Ok(Duration::from_secs_f64(secs))
}

fn line(summary: &Summary, users: usize, window: (f64, f64), of: Duration) -> String {
    let spread: Vec<String> = summary.replicas.iter().map(|(host, n)| format!("{host} {n}")).collect();
    let errors: Vec<String> = summary.errors.iter().map(|(why, n)| format!("{why}×{n}")).collect();
    format!(
        "{:>5.1}/{:.0}s  users {users}  votes {}  {:.0}/s  p50 {:.1} ms  p99 {:.1} ms  | replicas: {}  | errors: {}",
        summary.seconds,
        of.as_secs_f64(),
        summary.total,
        summary.total as f64 / summary.seconds.max(0.001),
        window.0,
        window.1,
        if spread.is_empty() { "-".to_owned() } else { spread.join(", ") },
        if errors.is_empty() { "none".to_owned() } else { errors.join(", ") },
    )
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    if args.users == 0 || args.users > 100_000 {
        bail!("--users {}: expected 1 to 100000", args.users);
    }
    if !(args.rate >= 0.0 && args.rate.is_finite()) {
        bail!("--rate {}: expected 0 or more", args.rate);
    }
    let duration = parse_duration(&args.duration)?;
    let options = Options {
        url: args.url.clone(),
        users: args.users,
        rate: args.rate,
        duration,
        retries: args.retries,
        timeout: Duration::from_secs(10),
    };
    if args.screens > 50_000 {
        bail!("--screens {}: expected 0 to 50000", args.screens);
    }
    let acks = std::sync::Arc::new(Acks::default());
    let screens =
        if args.screens > 0 { Some(open_screens(&args.url, args.screens, &acks).await?) } else { None };
    let mut engine = Engine::new(options)?;
    if screens.is_some() {
        engine = engine.with_acks(acks);
    }
    let stats = engine.stats();
    let users = args.users;
    let live = (!args.quiet).then(|| {
        let tty = std::io::stderr().is_terminal();
        tokio::spawn(async move {
            let started = std::time::Instant::now();
            let mut mark = 0;
            loop {
                tokio::time::sleep(Duration::from_secs(1)).await;
                let window = stats.percentiles_since(mark);
                mark = stats.answered_count();
                let text = line(&stats.summary(started.elapsed()), users, window, duration);
                let mut err = std::io::stderr().lock();
                // A terminal gets one line redrawn; a log gets a line a second.
                let _ = if tty { write!(err, "\r\x1b[2K{text}") } else { writeln!(err, "{text}") };
                let _ = err.flush();
            }
        })
    });
    let mut summary = engine.run().await;
    if let Some(task) = live {
        task.abort();
        eprintln!();
    }
    if let Some(screens) = screens {
        // The last votes' events: coalescing and the bridge take well under this.
        tokio::time::sleep(Duration::from_secs(2)).await;
        let counts = final_counts(&args.url).await?;
        summary.screens = Some(screens.finish(counts).await);
    }
    let mut out = std::io::stdout().lock();
    if args.json {
        writeln!(out, "{}", serde_json::to_string_pretty(&summary)?)?;
    } else {
        writeln!(out, "{}", line(&summary, users, (summary.p50_ms, summary.p99_ms), duration))?;
        let counted: Vec<String> = summary.counted.iter().map(|(r, n)| format!("{r} {n}")).collect();
        writeln!(
            out,
            "counted: {} (replayed retries: {}, given up: {})",
            counted.join(", "),
            summary.replayed,
            summary.given_up
        )?;
        if let Some(s) = &summary.screens {
            let refused: Vec<String> = s.refused.iter().map(|(why, n)| format!("{why}×{n}")).collect();
            writeln!(
                out,
                "screens: {} (peak {} open), vote -> screen p50 {:.1} ms p95 {:.1} ms p99 {:.1} ms over {} samples, \
                 {} late (> 250 ms), {} missed the final counts, {:.0} bytes each, refused: {}",
                s.screens,
                s.open_peak,
                s.p50_ms,
                s.p95_ms,
                s.p99_ms,
                s.samples,
                s.late,
                s.missed,
                s.bytes_per_screen,
                if refused.is_empty() { "none".to_owned() } else { refused.join(", ") }
            )?;
        }
    }
    Ok(())
}

/// Opens `n` screens and waits (at most 20 s) until no more open: every
/// one, or as many as the UI takes.
async fn open_screens(url: &str, n: usize, acks: &std::sync::Arc<Acks>) -> anyhow::Result<Screens> {
    // Each screen holds a socket: take the whole hard limit.
    let _ = rlimit::increase_nofile_limit(u64::MAX);
    let screens = Screens::open(url, n, acks.clone())?;
    let started = std::time::Instant::now();
    let (mut last, mut still_since) = (0, std::time::Instant::now());
    while started.elapsed() < Duration::from_secs(20) && screens.open_now() < n {
        tokio::time::sleep(Duration::from_millis(100)).await;
        let now = screens.open_now();
        if now != last {
            (last, still_since) = (now, std::time::Instant::now());
        } else if now > 0 && still_since.elapsed() > Duration::from_secs(3) {
            break;
        }
    }
    eprintln!("{} of {n} screens open after {:.1} s", screens.open_now(), started.elapsed().as_secs_f64());
    Ok(screens)
}

/// Every count, read once the run is over (the modern API).
async fn final_counts(url: &str) -> anyhow::Result<yelb_core::VoteCounts> {
    let body: yelb_core::wire::VotesBody =
        reqwest::get(format!("{}{}", url.trim_end_matches('/'), yelb_core::api::VOTES))
            .await?
            .error_for_status()?
            .json()
            .await
            .context("reading the final counts")?;
    Ok(body.votes)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_take_a_unit_or_seconds() {
        assert_eq!(parse_duration("30").unwrap(), Duration::from_secs(30));
        assert_eq!(parse_duration("2m").unwrap(), Duration::from_secs(120));
        assert_eq!(parse_duration("1.5s").unwrap(), Duration::from_millis(1500));
        for bad in ["", "0", "-1s", "5d", "soon", "100000h"] {
            assert!(parse_duration(bad).is_err(), "{bad}");
        }
    }
}
