//! The HTTP contract between Yelb's parts, written once: the paths both APIs
//! answer on, the header that names the replica, how a client tells which
//! API an app server speaks, and how it casts a vote on either.
//!
//! The app server routes on these paths; the UI's server and its browser
//! code call them. Nothing here does I/O: a caller makes the request and
//! hands the status back to [`ApiLevel::from_probe`] or [`vote_falls_back`].

use serde::{Deserialize, Serialize};

use crate::Restaurant;

/// The header every answer of our app server names its replica in.
pub const SERVED_BY: &str = "x-served-by";

/// The request header that makes a modern vote safe to retry: the same key
/// is counted once, and a repeat answers the first vote's count.
pub const IDEMPOTENCY_KEY: &str = "idempotency-key";
/// The answer header that says a vote was a repeat of an earlier key.
pub const IDEMPOTENCY_REPLAYED: &str = "idempotency-replayed";

/// A client's idempotency key: 1 to 255 visible ASCII characters (a UUID,
/// say). Parse, don't validate: a value of this type is always sendable as a
/// header and storable as a database key.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct IdempotencyKey(String);

/// Why a string is not an [`IdempotencyKey`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BadIdempotencyKey;

impl std::fmt::Display for BadIdempotencyKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Idempotency-Key must be 1 to 255 visible ASCII characters")
    }
}

impl std::error::Error for BadIdempotencyKey {}

impl std::str::FromStr for IdempotencyKey {
    type Err = BadIdempotencyKey;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        if (1..=255).contains(&s.len()) && s.bytes().all(|b| b.is_ascii_graphic()) {
            Ok(IdempotencyKey(s.to_owned()))
        } else {
            Err(BadIdempotencyKey)
        }
    }
}

impl IdempotencyKey {
    /// The key's text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// Original: the four counts as `[{"name","value"}]`.
pub const GETVOTES: &str = "/api/getvotes";
/// Original: `{"hostname","pageviews"}`; counts a page view.
pub const GETSTATS: &str = "/api/getstats";
/// Original: the bare hostname as text.
pub const HOSTNAME: &str = "/api/hostname";
/// Modern: the counts as an object.
pub const VOTES: &str = "/api/v1/votes";
/// Modern: the page views, not counting one.
pub const STATS: &str = "/api/v1/stats";
/// Modern: counts a page view.
pub const PAGEVIEWS: &str = "/api/v1/pageviews";
/// Modern: server-sent [`EVENT_STATE`] events (and, through the UI's
/// fan-out, [`EVENT_SPREAD`] events).
pub const EVENTS: &str = "/api/v1/events";
/// The event that carries a `LiveState` (counts, page views, epoch).
pub const EVENT_STATE: &str = "state";
/// The event the UI's fan-out adds: a `SpreadEvent` (the replicas, their
/// request rates and the faults in force), so a live page sends no
/// background request of its own.
pub const EVENT_SPREAD: &str = "spread";
/// The event the UI's fan-out sends when its own subscription to the app
/// server opens or drops: `{"live":true|false}`, so a screen can say that
/// the counts it shows are not moving.
pub const EVENT_UPSTREAM: &str = "upstream";
/// Modern: every replica with the requests it served. Also the probe that
/// tells which API an app server speaks ([`ApiLevel::from_probe`]).
pub const REPLICAS: &str = "/api/v1/replicas";
/// Stage control, under a bearer token (`YELB_ADMIN_TOKEN`).
pub const ADMIN: &str = "/api/v1/admin";
/// `POST`: every count back to zero.
pub const ADMIN_RESET: &str = "/api/v1/admin/reset";
/// `GET`, `PUT`, `DELETE`: the faults in force.
pub const ADMIN_FAULTS: &str = "/api/v1/admin/faults";

/// Original vote: `GET /api/{restaurant}` answers the bare new count.
pub fn legacy_vote(restaurant: Restaurant) -> String {
    format!("/api/{}", restaurant.slug())
}

/// Modern vote: `POST /api/v1/votes/{restaurant}` answers a receipt.
pub fn vote(restaurant: Restaurant) -> String {
    format!("{VOTES}/{}", restaurant.slug())
}

/// Which API an app server speaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ApiLevel {
    /// Ours: the original API plus `/api/v1` (events, replicas, POST votes).
    Modern,
    /// Only the original API (the 2017 Ruby app server).
    Legacy,
    /// Not known yet: the app server has not answered.
    Unknown,
}

impl ApiLevel {
    /// What the status of a `GET` [`REPLICAS`] says: a success is ours; "no
    /// such route" is the original; anything else (5xx, no answer) tells
    /// nothing yet.
    pub fn from_probe(status: Option<u16>) -> ApiLevel {
        match status {
            Some(200..=299) => ApiLevel::Modern,
            Some(s) if is_missing_route(s) => ApiLevel::Legacy,
            _ => ApiLevel::Unknown,
        }
    }
}

/// Whether a status means "this app server has no such route": 404 or 405,
/// and 411, which the original's WEBrick answers to a `POST` that carries no
/// `Content-Length` (so the vote must go the original way).
pub fn is_missing_route(status: u16) -> bool {
    matches!(status, 404 | 405 | 411)
}

/// Whether a modern vote that got `status` must be cast again the original
/// way ([`legacy_vote`]): only when the route is missing, never after a
/// failure, which could have counted.
pub fn vote_falls_back(status: u16) -> bool {
    is_missing_route(status)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn idempotency_keys_are_short_visible_ascii() {
        assert!("3f2b-aa".parse::<IdempotencyKey>().is_ok());
        assert!("k".repeat(255).parse::<IdempotencyKey>().is_ok());
        for bad in ["", "has space", "tab\t", "é", &"k".repeat(256)] {
            assert_eq!(bad.parse::<IdempotencyKey>(), Err(BadIdempotencyKey), "{bad:?}");
        }
    }

    #[test]
    fn vote_paths_use_the_slugs() {
        assert_eq!(legacy_vote(Restaurant::Ihop), "/api/ihop");
        assert_eq!(vote(Restaurant::Bucadibeppo), "/api/v1/votes/bucadibeppo");
    }

    #[test]
    fn the_probe_tells_ours_from_the_original_and_from_an_outage() {
        assert_eq!(ApiLevel::from_probe(Some(200)), ApiLevel::Modern);
        assert_eq!(ApiLevel::from_probe(Some(404)), ApiLevel::Legacy);
        assert_eq!(ApiLevel::from_probe(Some(405)), ApiLevel::Legacy);
        assert_eq!(ApiLevel::from_probe(Some(503)), ApiLevel::Unknown);
        assert_eq!(ApiLevel::from_probe(Some(502)), ApiLevel::Unknown);
        assert_eq!(ApiLevel::from_probe(None), ApiLevel::Unknown);
    }

    #[test]
    fn only_a_missing_route_sends_a_vote_the_original_way() {
        for status in [404, 405, 411] {
            assert!(vote_falls_back(status), "{status}");
        }
        for status in [200, 400, 429, 500, 502, 503, 504] {
            assert!(!vote_falls_back(status), "{status}");
        }
    }
}
