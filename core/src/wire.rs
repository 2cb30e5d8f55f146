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
/// Every field only grows, so [`LiveState::merge`] can combine states from
/// several replicas in any order.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct LiveState {
    /// Count per restaurant.
    pub votes: VoteCounts,
    /// The page-view counter.
    pub pageviews: i64,
}

impl LiveState {
    /// Folds `other` into `self`, keeping the larger value of every field.
    /// Returns whether anything changed.
    pub fn merge(&mut self, other: &LiveState) -> bool {
        let votes = self.votes.merge_max(&other.votes);
        let views = other.pageviews > self.pageviews;
        if views {
            self.pageviews = other.pageviews;
        }
        votes || views
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
}

/// `GET /api/v1/replicas`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReplicasBody {
    /// The app server that answered.
    pub hostname: String,
    /// Every app server seen in the last minute, by hostname.
    pub replicas: Vec<ReplicaInfo>,
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
        let b = LiveState { votes: VoteCounts { ihop: 2, ..Default::default() }, pageviews: 3 };
        assert!(a.merge(&b));
        assert_eq!(a.pageviews, 10);
        assert_eq!(a.votes.ihop, 2);
    }
}
