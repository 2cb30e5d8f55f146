//! The JSON bodies Yelb sends and receives, shared by the server and its clients.
//!
//! - Original API: [`LegacyVote`] (one element of `/api/getvotes`) and
//!   [`LegacyStats`] (`/api/getstats`). Field order matters: clients compare
//!   bodies, so the structs list fields in the original's order.
//! - Modern API (`/api/v1`): [`VotesBody`], [`VoteRequest`], [`VoteReceipt`],
//!   [`StatsBody`].
//! - Live events: [`LiveState`], the payload of every server-sent event and of
//!   every message between replicas.
//! - Replicas: [`ReplicasBody`], [`ReplicaInfo`] (`/api/v1/replicas`).
//! - Stage control (`/api/v1/admin`): [`ResetReceipt`], [`FaultSpec`],
//!   [`Fault`], [`FaultsBody`].
//! - Errors: [`ErrorBody`], the one shape of every 4xx and 5xx answer.

use serde::{Deserialize, Serialize};

use crate::{Restaurant, VoteCounts};

/// One element of the original `/api/getvotes` array.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LegacyVote {
    /// The restaurant's slug.
    pub name: String,
    /// Its vote count.
    pub value: i64,
}

/// The original `/api/getvotes` body: all four, always in [`Restaurant::ALL`] order.
pub fn legacy_votes(counts: &VoteCounts) -> Vec<LegacyVote> {
    counts.iter().map(|(r, value)| LegacyVote { name: r.slug().to_owned(), value }).collect()
}

/// The counts in an original `/api/getvotes` body, the inverse of
/// [`legacy_votes`]. Names are trimmed (the original schema pads them);
/// unknown names are skipped, and a restaurant missing from the body counts 0.
pub fn counts_from_legacy(votes: &[LegacyVote]) -> VoteCounts {
    let mut counts = VoteCounts::default();
    for vote in votes {
        if let Ok(r) = vote.name.parse::<Restaurant>() {
            *counts.get_mut(r) = vote.value;
        }
    }
    counts
}

/// The original `/api/getstats` body.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LegacyStats {
    /// The app server that answered.
    pub hostname: String,
    /// The page-view counter after this view.
    pub pageviews: i64,
}

/// `GET /api/v1/votes`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct VotesBody {
    /// Count per restaurant.
    pub votes: VoteCounts,
    /// Sum of all counts.
    pub total: i64,
    /// The app server that answered.
    pub hostname: String,
    /// The reset generation these counts belong to (see [`LiveState::epoch`]).
    #[serde(default)]
    pub epoch: u64,
}

/// The body of `POST /api/v1/votes`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct VoteRequest {
    /// The restaurant to vote for.
    pub restaurant: Restaurant,
}

/// The answer to a vote cast through the modern API.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct VoteReceipt {
    /// The restaurant voted for.
    pub restaurant: Restaurant,
    /// Its count right after this vote (this vote included, no later one).
    pub count: i64,
    /// The app server that answered.
    pub hostname: String,
}

/// `GET /api/v1/stats` and `POST /api/v1/pageviews`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StatsBody {
    /// The app server that answered.
    pub hostname: String,
    /// The page-view counter.
    pub pageviews: i64,
}

/// What the live-event stream carries: the newest counts this replica knows.
///
/// Within one epoch every field only grows, so [`LiveState::merge`] can
/// combine states from several replicas in any order. A reset starts a new
/// epoch, and a state of a newer epoch replaces an older one whole: that is
/// how counts go back to zero everywhere at once.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct LiveState {
    /// Count per restaurant.
    pub votes: VoteCounts,
    /// The page-view counter.
    pub pageviews: i64,
    /// The reset generation (0 until the first reset). Senders that predate
    /// it omit it, which reads as 0.
    #[serde(default)]
    pub epoch: u64,
}

/// What [`LiveState::merge`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Merged {
    /// Nothing changed (an older epoch, or no field grew).
    Unchanged,
    /// Some field grew, within the same epoch.
    Grew,
    /// A newer epoch replaced the state whole (a reset happened).
    Reset,
}

impl LiveState {
    /// Folds `other` into `self`: a newer epoch replaces it, an older one is
    /// ignored, the same one keeps the larger value of every field.
    pub fn merge(&mut self, other: &LiveState) -> Merged {
        if other.epoch > self.epoch {
            *self = *other;
            return Merged::Reset;
        }
        if other.epoch < self.epoch {
            return Merged::Unchanged;
        }
        let votes = self.votes.merge_max(&other.votes);
        let views = other.pageviews > self.pageviews;
        if views {
            self.pageviews = other.pageviews;
        }
        if votes || views { Merged::Grew } else { Merged::Unchanged }
    }
}

/// One app server in `GET /api/v1/replicas`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReplicaInfo {
    /// Its hostname.
    pub hostname: String,
    /// `/api` requests it answered (all time, across its restarts).
    pub served: u64,
    /// Milliseconds since it last reported (it reports every second).
    pub last_seen_ms: u64,
    /// What it runs and where (absent for replicas that do not say).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub placement: Option<Placement>,
}

/// What a replica runs and where: shown in the spread panel, so a rolling
/// update visibly shifts colour and version.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Placement {
    /// The app server's version.
    pub version: String,
    /// `YELB_COLOR`: a CSS colour name or `#rgb`/`#rrggbb`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub color: Option<String>,
    /// `YELB_MESSAGE`: a short banner.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
    /// The node (Kubernetes: the downward API's `spec.nodeName`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub node: Option<String>,
    /// The zone.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub zone: Option<String>,
    /// The CPU architecture it was built for (`x86_64`, `aarch64`).
    pub arch: String,
    /// Where it runs: kubernetes, nomad, ecs, docker, or local.
    pub orchestrator: String,
}

/// Whether `value` is a colour a page may put in a style: a CSS colour name
/// (letters only, at most 30) or `#rgb`/`#rrggbb`. Nothing else reaches a
/// `style` attribute, whoever wrote it (a replica's setting, or anyone who
/// can write to Redis).
pub fn is_colour(value: &str) -> bool {
    match value.strip_prefix('#') {
        Some(hex) => matches!(hex.len(), 3 | 6) && hex.chars().all(|c| c.is_ascii_hexdigit()),
        None => (1..=30).contains(&value.len()) && value.chars().all(|c| c.is_ascii_alphabetic()),
    }
}

/// At most `max` characters of `text`, control characters dropped.
fn bounded(text: &str, max: usize) -> String {
    text.chars().filter(|c| !c.is_control()).take(max).collect()
}

impl Placement {
    /// The longest message shown (`YELB_MESSAGE`'s own limit).
    pub const MAX_MESSAGE: usize = 80;

    /// This placement as read from a shared store (Redis), made safe to
    /// show: a colour only if [`is_colour`], every text bounded and without
    /// control characters.
    pub fn sanitized(self) -> Placement {
        Placement {
            version: bounded(&self.version, 40),
            color: self.color.filter(|c| is_colour(c)),
            message: self.message.map(|m| bounded(&m, Self::MAX_MESSAGE)),
            node: self.node.map(|n| bounded(&n, 253)),
            zone: self.zone.map(|z| bounded(&z, 253)),
            arch: bounded(&self.arch, 20),
            orchestrator: bounded(&self.orchestrator, 20),
        }
    }

    /// The colour, if it is one ([`is_colour`]).
    pub fn checked_color(&self) -> Option<&str> {
        self.color.as_deref().filter(|c| is_colour(c))
    }
}

/// `GET /api/v1/replicas`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ReplicasBody {
    /// The app server that answered.
    pub hostname: String,
    /// Every app server seen in the last minute, by hostname.
    pub replicas: Vec<ReplicaInfo>,
    /// The faults in force (stage control), each with its scope: the
    /// badges of the spread panel. Empty when stage control is off.
    #[serde(default)]
    pub faults: Vec<Fault>,
    /// The answering replica's stores (absent from app servers that predate it).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub backends: Option<Backends>,
}

/// The state of one backend, as `/readyz` and `/api/v1/replicas` report it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum BackendHealth {
    /// Reachable and answering.
    Up,
    /// Not reachable, or (Postgres) the schema is not in place yet.
    Down,
    /// In memory (embedded mode): always up, and no separate service.
    Memory,
}

impl BackendHealth {
    /// Whether requests can be served.
    pub fn is_up(self) -> bool {
        self != BackendHealth::Down
    }
}

/// The answering replica's stores, in `/api/v1/replicas` (checked at most
/// once a second per replica).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Backends {
    /// The vote store.
    pub postgres: BackendHealth,
    /// The page-view store and live-event bus.
    pub redis: BackendHealth,
}

/// The UI's fan-out's `spread` event: what `GET /api/v1/replicas` answered
/// the UI's server, with each replica's requests per second between its two
/// latest reads (absent until a replica has two).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SpreadEvent {
    /// The replicas and the faults in force.
    #[serde(flatten)]
    pub body: ReplicasBody,
    /// Requests per second per hostname.
    #[serde(default)]
    pub rates: Vec<(String, f64)>,
}

/// `POST /api/v1/admin/reset`: the votes and page views are zero, from the
/// epoch given on.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ResetReceipt {
    /// The new epoch.
    pub epoch: u64,
    /// The app server that answered.
    pub hostname: String,
}

/// A fault to inject, as `PUT /api/v1/admin/faults` takes it. Every fault
/// expires by itself after `ttl_secs`; a later PUT for the same scope
/// replaces it, and one with nothing set clears it.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FaultSpec {
    /// `all`, or one replica's hostname.
    pub scope: String,
    /// Seconds until the fault expires (1 to 3600).
    pub ttl_secs: u64,
    /// Added to every `/api` answer, in milliseconds.
    #[serde(default)]
    pub latency_ms: u64,
    /// A random extra delay from 0 to this, in milliseconds.
    #[serde(default)]
    pub latency_jitter_ms: u64,
    /// The share of `/api` requests answered 503 instead (0 to 1).
    #[serde(default)]
    pub error_rate: f64,
    /// `/readyz` answers 503 (load balancers take the replica out).
    #[serde(default)]
    pub unready: bool,
    /// `/healthz` answers 503 (orchestrators restart the replica).
    #[serde(default)]
    pub unhealthy: bool,
    /// The process exits (status 70) once; a replica started later ignores it.
    #[serde(default)]
    pub crash: bool,
    /// One core spins until the fault expires.
    #[serde(default)]
    pub cpu_burn: bool,
    /// Only votes for this restaurant by path (`GET /api/{restaurant}`,
    /// `POST /api/v1/votes/{restaurant}`) get the latency and errors: the
    /// "poisoned option" of per-route success-rate demos. Such a fault asks
    /// for nothing else, and is kept beside its scope's other faults.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub restaurant: Option<Restaurant>,
}

impl FaultSpec {
    /// Where the fault is kept: a PUT replaces the fault of the same slot,
    /// its scope (`all`, a hostname) or its scope and option (`all/ihop`).
    pub fn slot(&self) -> String {
        match self.restaurant {
            Some(r) => format!("{}/{}", self.scope, r.slug()),
            None => self.scope.clone(),
        }
    }

    /// Whether the fault is in force on the replica called `hostname`.
    pub fn applies_to(&self, hostname: &str) -> bool {
        self.scope == "all" || self.scope == hostname
    }
}

/// A fault in force: what was asked, and when it ends.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Fault {
    /// What was asked.
    #[serde(flatten)]
    pub spec: FaultSpec,
    /// When it was set, Unix milliseconds.
    pub set_at_ms: u64,
    /// When it expires, Unix milliseconds.
    pub expires_at_ms: u64,
}

/// `GET /api/v1/admin/faults` and the answer to a `PUT`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FaultsBody {
    /// The app server that answered.
    pub hostname: String,
    /// Every fault in force, on every replica (see each one's scope).
    pub faults: Vec<Fault>,
}

/// The body of every error answer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ErrorBody {
    /// What went wrong, in words a client can show.
    pub error: String,
    /// The HTTP status, repeated for clients that only see the body.
    pub status: u16,
}

#[cfg(test)]
mod tests {
    #[test]
    fn only_colours_reach_a_style() {
        for good in ["teal", "#0a0", "#00aa00", "RebeccaPurple"] {
            assert!(is_colour(good), "{good}");
        }
        for bad in ["red;background:url(x)", "#0a", "#gggggg", "", "red ", "expression(alert(1))"] {
            assert!(!is_colour(bad), "{bad}");
        }
        let p = Placement {
            version: "1".into(),
            color: Some("red}body{display:none".into()),
            message: None,
            node: None,
            zone: None,
            arch: "x86_64".into(),
            orchestrator: "docker".into(),
        };
        assert_eq!(p.checked_color(), None);
        assert_eq!(p.sanitized().color, None);
    }

    use super::*;

    #[test]
    fn counts_read_back_from_an_original_body_ignore_padding_and_unknown_names() {
        let body: Vec<LegacyVote> = serde_json::from_str(
            r#"[{"name":"ihop    ","value":3},{"name":"pizza","value":9},{"name":"outback","value":1}]"#,
        )
        .unwrap();
        let counts = counts_from_legacy(&body);
        assert_eq!(counts, VoteCounts { outback: 1, bucadibeppo: 0, ihop: 3, chipotle: 0 });
        let all = VoteCounts { outback: 5, bucadibeppo: 6, ihop: 7, chipotle: 8 };
        assert_eq!(counts_from_legacy(&legacy_votes(&all)), all);
    }

    #[test]
    fn legacy_votes_keep_the_original_order_and_key_order() {
        let counts = VoteCounts { outback: 1, bucadibeppo: 2, ihop: 3, chipotle: 4 };
        let json = serde_json::to_string(&legacy_votes(&counts)).unwrap();
        assert_eq!(
            json,
            r#"[{"name":"outback","value":1},{"name":"bucadibeppo","value":2},{"name":"ihop","value":3},{"name":"chipotle","value":4}]"#
        );
    }

    #[test]
    fn a_vote_request_with_an_unknown_restaurant_does_not_parse() {
        assert!(serde_json::from_str::<VoteRequest>(r#"{"restaurant":"kfc"}"#).is_err());
        assert!(serde_json::from_str::<VoteRequest>(r#"{"restaurant":"ihop"}"#).is_ok());
    }

    #[test]
    fn live_states_merge_field_by_field() {
        let mut a = LiveState { pageviews: 10, ..Default::default() };
        let b = LiveState { votes: VoteCounts { ihop: 2, ..Default::default() }, pageviews: 3, epoch: 0 };
        assert_eq!(a.merge(&b), Merged::Grew);
        assert_eq!(a.pageviews, 10);
        assert_eq!(a.votes.ihop, 2);
        assert_eq!(a.merge(&b), Merged::Unchanged);
    }

    #[test]
    fn a_newer_epoch_replaces_the_state_and_an_older_one_is_ignored() {
        let mut a =
            LiveState { votes: VoteCounts { ihop: 9, ..Default::default() }, pageviews: 40, epoch: 1 };
        let reset = LiveState { epoch: 2, ..Default::default() };
        assert_eq!(a.merge(&reset), Merged::Reset);
        assert_eq!(a, reset);
        let late =
            LiveState { votes: VoteCounts { ihop: 10, ..Default::default() }, pageviews: 41, epoch: 1 };
        assert_eq!(a.merge(&late), Merged::Unchanged);
        assert_eq!(a.votes.ihop, 0);
        // A sender without the field speaks of epoch 0.
        let old: LiveState = serde_json::from_str(
            r#"{"votes":{"outback":1,"bucadibeppo":0,"ihop":0,"chipotle":0},"pageviews":1}"#,
        )
        .unwrap();
        assert_eq!(old.epoch, 0);
    }
}
