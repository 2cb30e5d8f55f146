//! [`FailureThrottle`]: how fast one client may fail a check (a wrong stage
//! token), so a phone on the venue's Wi-Fi cannot guess at wire speed.
//!
//! Each client ([`ClientKey`]) has a bucket of `burst` failures that refills
//! at `per_sec`. While a client's bucket is empty every attempt it makes is
//! refused *before* the check runs, the right token included: otherwise a
//! guesser would simply ignore the refusals and keep trying. Failures of all
//! clients together are counted too; past `overall_per_sec` a warning says a
//! distributed guess is under way (the overall rate refuses no one, so the
//! speaker is never locked out by other people's failures).

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crate::clients::ClientKey;

/// Buckets kept at most; full ones are dropped first when there are more.
const MAX_BUCKETS: usize = 100_000;

/// Failed attempts per client, with a refill rate. Cloning shares the counts.
#[derive(Debug, Clone)]
pub struct FailureThrottle {
    inner: Arc<Mutex<Inner>>,
    burst: f64,
    per_sec: f64,
    overall_per_sec: f64,
}

#[derive(Debug)]
struct Inner {
    buckets: HashMap<ClientKey, Bucket>,
    overall: Bucket,
}

#[derive(Debug, Clone, Copy)]
struct Bucket {
    tokens: f64,
    at: Instant,
}

impl Bucket {
    fn refilled(self, now: Instant, burst: f64, per_sec: f64) -> Bucket {
        let tokens =
            (self.tokens + now.saturating_duration_since(self.at).as_secs_f64() * per_sec).min(burst);
        Bucket { tokens, at: now }
    }
}

/// A failure, as [`FailureThrottle::fail`] saw it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Failure {
    /// This client may try again at once (it has failures left).
    pub client_left: u32,
    /// All clients together fail faster than the overall rate.
    pub overall_exceeded: bool,
}

impl FailureThrottle {
    /// `burst` failures per client, refilled at `per_sec`; warn past
    /// `overall_per_sec` failures a second from everyone together.
    pub fn new(burst: u32, per_sec: f64, overall_per_sec: f64) -> Self {
        let now = Instant::now();
        let overall = Bucket { tokens: overall_per_sec * 10.0, at: now };
        FailureThrottle {
            inner: Arc::new(Mutex::new(Inner { buckets: HashMap::new(), overall })),
            burst: f64::from(burst),
            per_sec,
            overall_per_sec,
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// `Err(wait)` while `client` has no failures left: refuse it (429 with
    /// `Retry-After: wait`) without running the check.
    pub fn check(&self, client: IpAddr) -> Result<(), Duration> {
        let inner = self.lock();
        let Some(bucket) = inner.buckets.get(&ClientKey::of(client)) else { return Ok(()) };
        let bucket = bucket.refilled(Instant::now(), self.burst, self.per_sec);
        if bucket.tokens >= 1.0 {
            Ok(())
        } else {
            Err(Duration::from_secs_f64(((1.0 - bucket.tokens) / self.per_sec).max(0.001)))
        }
    }

    /// Counts a failed check by `client`.
    pub fn fail(&self, client: IpAddr) -> Failure {
        let now = Instant::now();
        let (burst, per_sec) = (self.burst, self.per_sec);
        let mut inner = self.lock();
        if inner.buckets.len() >= MAX_BUCKETS {
            inner.buckets.retain(|_, b| b.refilled(now, burst, per_sec).tokens < burst);
        }
        let bucket = inner.buckets.entry(ClientKey::of(client)).or_insert(Bucket { tokens: burst, at: now });
        let mut refilled = bucket.refilled(now, burst, per_sec);
        refilled.tokens = (refilled.tokens - 1.0).max(0.0);
        *bucket = refilled;
        let client_left = refilled.tokens.floor() as u32;
        let overall_burst = self.overall_per_sec * 10.0;
        let mut overall = inner.overall.refilled(now, overall_burst, self.overall_per_sec);
        overall.tokens -= 1.0;
        let overall_exceeded = overall.tokens < 0.0;
        overall.tokens = overall.tokens.max(0.0);
        inner.overall = overall;
        Failure { client_left, overall_exceeded }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_client_is_refused_after_its_burst_and_others_are_not() {
        let throttle = FailureThrottle::new(3, 0.001, 1000.0);
        let guesser: IpAddr = "10.0.0.9".parse().unwrap();
        for left in [2, 1, 0] {
            assert!(throttle.check(guesser).is_ok());
            assert_eq!(throttle.fail(guesser).client_left, left);
        }
        let wait = throttle.check(guesser).unwrap_err();
        assert!(wait > Duration::from_secs(100), "{wait:?}");
        assert!(throttle.check("10.0.0.10".parse().unwrap()).is_ok(), "another client is not held back");
    }

    #[test]
    fn the_bucket_refills_and_the_overall_rate_is_reported() {
        let throttle = FailureThrottle::new(1, 1000.0, 0.1);
        let client: IpAddr = "10.0.0.9".parse().unwrap();
        throttle.fail(client);
        std::thread::sleep(Duration::from_millis(5));
        assert!(throttle.check(client).is_ok(), "refilled after a few milliseconds at 1000/s");
        // Overall: a burst of 1 (10 s at 0.1/s); the second failure exceeds it.
        let mut exceeded = false;
        for _ in 0..3 {
            exceeded |= throttle.fail(client).overall_exceeded;
        }
        assert!(exceeded);
    }
}
