//! The page's reactive state, shared by the components (`app`) and the
//! browser's network code (`client`), so neither depends on the other.
//!
//! - [`Ui`]: every signal the page shows, built from the [`Snapshot`] on both
//!   sides, so the hydrated page starts exactly where the server left it.
//! - [`LiveStatus`]: how the page hears about other people's votes.

use leptos::prelude::*;
use yelb_core::wire::{Backends, Fault, LiveState, ReplicaInfo, ReplicasBody};
use yelb_core::{Restaurant, VoteCounts};

use crate::model::{ApiLevel, Notice, Recent, Snapshot};

/// How the page currently hears about other people's votes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LiveStatus {
    /// Opening the event stream.
    Connecting,
    /// The event stream is open: changes arrive as they happen.
    Live,
    /// No event stream (the original API, or it dropped): re-reading every few seconds.
    Polling,
    /// The app server does not answer; retrying.
    Offline,
}

impl LiveStatus {
    /// The badge text.
    pub const fn label(self) -> &'static str {
        match self {
            LiveStatus::Connecting => "connecting…",
            LiveStatus::Live => "live",
            LiveStatus::Polling => "polling",
            LiveStatus::Offline => "app server unreachable",
        }
    }

    /// The badge's classes (a constant: no `to_lowercase`, whose Unicode
    /// tables would ride in the browser bundle).
    pub const fn class(self) -> &'static str {
        match self {
            LiveStatus::Connecting => "badge connecting",
            LiveStatus::Live => "badge live",
            LiveStatus::Polling => "badge polling",
            LiveStatus::Offline => "badge offline",
        }
    }
}

/// The page's reactive state. Every field is a signal, so `Ui` is `Copy` and
/// costs nothing to hand to closures.
#[derive(Debug, Clone, Copy)]
pub struct Ui {
    /// The four counts.
    pub votes: RwSignal<VoteCounts>,
    /// Page views, once known.
    pub pageviews: RwSignal<Option<i64>>,
    /// The app server that answered last.
    pub hostname: RwSignal<Option<String>>,
    /// The message above the cards.
    pub notice: RwSignal<Option<Notice>>,
    /// How updates arrive.
    pub live: RwSignal<LiveStatus>,
    /// Which API the app server speaks.
    pub api: RwSignal<ApiLevel>,
    /// Hostnames that answered this browser's latest requests.
    pub recent: RwSignal<Recent>,
    /// Requests served by each app server, cluster-wide.
    pub replicas: RwSignal<Vec<ReplicaInfo>>,
    /// The faults in force (stage control): the spread panel's badges.
    pub faults: RwSignal<Vec<Fault>>,
    /// The app server's stores and their health (none known: not shown).
    pub backends: RwSignal<Option<Backends>>,
    /// Requests per second each replica served over the last spread read
    /// (the presenter view).
    pub rates: RwSignal<Vec<(String, f64)>>,
    /// The vote on its way, if any (its button shows it).
    pub pending: RwSignal<Option<Restaurant>>,
    /// Where API calls go (the snapshot's `api_base`), read once.
    pub api_base: StoredValue<String>,
    /// The reset epoch of the counts shown (see `LiveState::epoch`).
    pub epoch: StoredValue<u64>,
    /// When (ms since the epoch) the event stream last brought the spread:
    /// the UI's fan-out sends it, so the page need not ask (0: never).
    pub spread_at: StoredValue<f64>,
}

impl Ui {
    /// The state the server rendered.
    pub fn new(snapshot: &Snapshot) -> Self {
        let mut recent = Recent::default();
        if let Some(host) = &snapshot.hostname {
            recent.push(host);
        }
        let live = match (snapshot.api, snapshot.votes.is_some()) {
            (_, false) => LiveStatus::Offline,
            (ApiLevel::Modern, true) => LiveStatus::Connecting,
            (_, true) => LiveStatus::Polling,
        };
        Ui {
            votes: RwSignal::new(snapshot.votes.unwrap_or_default()),
            pageviews: RwSignal::new(snapshot.pageviews),
            hostname: RwSignal::new(snapshot.hostname.clone()),
            notice: RwSignal::new(snapshot.notice.clone()),
            live: RwSignal::new(live),
            api: RwSignal::new(snapshot.api),
            recent: RwSignal::new(recent),
            replicas: RwSignal::new(snapshot.replicas.clone()),
            faults: RwSignal::new(Vec::new()),
            backends: RwSignal::new(snapshot.backends),
            rates: RwSignal::new(Vec::new()),
            pending: RwSignal::new(None),
            api_base: StoredValue::new(snapshot.api_base.clone()),
            epoch: StoredValue::new(0),
            spread_at: StoredValue::new(0.0),
        }
    }

    /// Notes which app server answered a request.
    pub fn answered_by(&self, hostname: &str) {
        if self.hostname.with_untracked(|h| h.as_deref() != Some(hostname)) {
            self.hostname.set(Some(hostname.to_owned()));
        }
        self.recent.update(|r| r.push(hostname));
    }

    /// Folds newer counts in. Counts only grow, so the larger value is the
    /// newer one, whatever order answers and events arrive in.
    pub fn merge_votes(&self, votes: &VoteCounts) {
        if self.votes.with_untracked(|mine| {
            let mut merged = *mine;
            merged.merge_max(votes)
        }) {
            self.votes.update(|mine| {
                mine.merge_max(votes);
            });
        }
    }

    /// Folds in counts of reset epoch `epoch`: a newer epoch replaces what
    /// is shown (a reset: the counts went back to zero), an older one is
    /// ignored, the same one merges. Returns whether the epoch is current.
    pub fn merge_votes_in(&self, epoch: u64, votes: &VoteCounts) -> bool {
        let mine = self.epoch.get_value();
        if epoch < mine {
            return false;
        }
        if epoch > mine {
            self.epoch.set_value(epoch);
            self.votes.set(*votes);
            self.pageviews.set(None);
            return true;
        }
        self.merge_votes(votes);
        true
    }

    /// Folds in a live event: its counts and page views, by its epoch.
    pub fn merge_live(&self, state: &LiveState) {
        if self.merge_votes_in(state.epoch, &state.votes) {
            self.merge_pageviews(state.pageviews);
        }
    }

    /// Shows the cluster's replicas, their faults and (when known) their
    /// request rates.
    pub fn show_spread(&self, body: ReplicasBody, rates: Vec<(String, f64)>) {
        if !rates.is_empty() {
            self.rates.set(rates);
        }
        self.faults.set(body.faults);
        if body.backends.is_some() {
            self.backends.set(body.backends);
        }
        self.replicas.set(body.replicas);
    }

    /// Folds a newer page-view count in.
    pub fn merge_pageviews(&self, pageviews: i64) {
        if self.pageviews.get_untracked().is_none_or(|mine| pageviews > mine) {
            self.pageviews.set(Some(pageviews));
        }
    }
}
