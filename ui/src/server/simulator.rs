//! The audience simulator, run by the UI's server for the console
//! (`/console`): the `yelb-loadgen` engine against the app server, started,
//! resized and stopped from the page. One run at a time.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use yelb_loadgen::{Engine, Options, Stats, Summary};

/// The most voters the console may start.
pub const MAX_USERS: usize = 2_000;
/// The longest run the console may start.
pub const MAX_DURATION: Duration = Duration::from_secs(3_600);

/// The console's simulator: the current or last run.
#[derive(Debug, Clone, Default)]
pub struct Simulator {
    run: Arc<Mutex<Option<Run>>>,
}

struct Run {
    stats: Arc<Stats>,
    users: Arc<AtomicUsize>,
    started: Instant,
    duration: Duration,
    task: tokio::task::JoinHandle<Summary>,
    stopped: bool,
}

impl std::fmt::Debug for Run {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Run").field("started", &self.started).field("duration", &self.duration).finish()
    }
}

/// What the console shows of a run.
#[derive(Debug, Clone)]
pub struct Status {
    /// Still voting.
    pub running: bool,
    /// Voters now.
    pub users: usize,
    /// Seconds since the start, and the run's length.
    pub elapsed: u64,
    /// The run's length in seconds.
    pub duration: u64,
    /// Counters so far.
    pub summary: Summary,
}

impl Simulator {
    /// Starts a run against `url` (stopping any run still going).
    pub fn start(&self, url: String, users: usize, rate: f64, duration: Duration) -> Result<(), String> {
        if !(1..=MAX_USERS).contains(&users) {
            return Err(format!("voters: 1 to {MAX_USERS}"));
        }
        if !(rate >= 0.0 && rate.is_finite()) {
            return Err("votes a second: 0 (as fast as they can) or more".into());
        }
        if duration.is_zero() || duration > MAX_DURATION {
            return Err("seconds: 1 to 3600".into());
        }
        let options = Options { url, users, rate, duration, retries: 3, timeout: Duration::from_secs(10) };
        let mut engine = Engine::new(options).map_err(|e| e.to_string())?;
        let (stats, handle) = (engine.stats(), engine.users_handle());
        let task = tokio::spawn(async move { engine.run().await });
        let mut run = self.run.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(old) = run.take() {
            old.task.abort();
        }
        *run = Some(Run { stats, users: handle, started: Instant::now(), duration, task, stopped: false });
        Ok(())
    }

    /// Changes the number of voters of the run going on.
    pub fn resize(&self, users: usize) -> Result<(), String> {
        if !(1..=MAX_USERS).contains(&users) {
            return Err(format!("voters: 1 to {MAX_USERS}"));
        }
        match self.run.lock().unwrap_or_else(|e| e.into_inner()).as_ref() {
            Some(run) if !run.task.is_finished() => {
                run.users.store(users, Ordering::Relaxed);
                Ok(())
            }
            _ => Err("no simulation is running".into()),
        }
    }

    /// Stops the run going on (its counters stay on show).
    pub fn stop(&self) {
        if let Some(run) = self.run.lock().unwrap_or_else(|e| e.into_inner()).as_mut() {
            run.task.abort();
            run.stopped = true;
        }
    }

    /// The current or last run, if any.
    pub fn status(&self) -> Option<Status> {
        let run = self.run.lock().unwrap_or_else(|e| e.into_inner());
        let run = run.as_ref()?;
        let elapsed = run.started.elapsed().min(run.duration);
        Some(Status {
            running: !run.stopped && !run.task.is_finished(),
            users: run.users.load(Ordering::Relaxed),
            elapsed: elapsed.as_secs(),
            duration: run.duration.as_secs(),
            summary: run.stats.summary(elapsed),
        })
    }
}
