//! What the server hands the page, and the page's own state.
//!
//! - [`Snapshot`]: everything the server knew when it rendered the page. It is
//!   rendered into the HTML as JSON, and the browser reads it back before
//!   hydrating, so both sides build the very same view from the same data.
//! - [`ApiLevel`]: which app-server API answered (ours, or only the original's);
//!   the live and spread features switch themselves off for the original.
//! - [`Recent`]: the hostnames that answered this browser's latest requests.

use std::collections::VecDeque;

use serde::{Deserialize, Serialize};
use yelb_core::VoteCounts;
use yelb_core::wire::ReplicaInfo;

/// The id of the `<script type="application/json">` element holding the snapshot.
pub const SNAPSHOT_ID: &str = "yelb-snapshot";

pub use yelb_core::api::ApiLevel;

/// The server's view of the app when it rendered the page.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Snapshot {
    /// The page title (`YELB_UI_TITLE`).
    pub title: String,
    /// The URL the QR code points the audience to.
    pub public_url: String,
    /// The QR code of `public_url`, as an SVG document.
    pub qr_svg: String,
    /// Other addresses of this machine the audience may use (shown on the
    /// presenter view when the page was opened through loopback).
    #[serde(default)]
    pub other_urls: Vec<String>,
    /// Shown beside the QR code when phones cannot open `public_url`.
    #[serde(default)]
    pub url_warning: Option<String>,
    /// Where the browser sends API calls: `""` (this origin) or a full URL
    /// (`UI_ENV=dev`, as in the original).
    pub api_base: String,
    /// Which API the app server speaks.
    pub api: ApiLevel,
    /// The four counts, if the app server answered.
    pub votes: Option<VoteCounts>,
    /// The page-view count, if the app server answered.
    pub pageviews: Option<i64>,
    /// The app server that answered.
    pub hostname: Option<String>,
    /// Whether this page load was already counted as a page view.
    pub view_counted: bool,
    /// App servers seen by the cluster, with the requests each served.
    pub replicas: Vec<ReplicaInfo>,
    /// A message for the top of the page (a no-JavaScript vote's outcome).
    pub notice: Option<Notice>,
    /// The presenter view (`/present`): projector layout, no voting cards.
    #[serde(default)]
    pub present: bool,
    /// The presenter view's theme (`?theme=dark` or `light`; light if unset).
    #[serde(default)]
    pub theme: Option<String>,
    /// The app server's stores and their health, if it said.
    #[serde(default)]
    pub backends: Option<yelb_core::wire::Backends>,
}

/// A message shown above the cards until dismissed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Notice {
    /// `true` for failures, `false` for confirmations.
    pub is_error: bool,
    /// What happened, in words.
    pub text: String,
}

impl Notice {
    /// A failure message.
    pub fn error(text: impl Into<String>) -> Self {
        Notice { is_error: true, text: text.into() }
    }

    /// A confirmation message.
    pub fn info(text: impl Into<String>) -> Self {
        Notice { is_error: false, text: text.into() }
    }
}

impl Snapshot {
    /// A snapshot that knows nothing yet but the title.
    pub fn empty(title: &str) -> Self {
        Snapshot {
            title: title.to_owned(),
            public_url: String::new(),
            qr_svg: String::new(),
            other_urls: Vec::new(),
            url_warning: None,
            api_base: String::new(),
            api: ApiLevel::Unknown,
            votes: None,
            pageviews: None,
            hostname: None,
            view_counted: false,
            replicas: Vec::new(),
            notice: None,
            present: false,
            theme: None,
            backends: None,
        }
    }

    /// The snapshot as JSON that is safe inside a `<script>` element: `<` is
    /// escaped so no value (a title, a hostname) can close the element.
    pub fn to_script_json(&self) -> String {
        serde_json::to_string(self).unwrap_or_else(|_| "null".to_owned()).replace('<', "\\u003c")
    }
}

/// The hostnames that answered this browser's most recent requests, newest last.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Recent {
    hosts: VecDeque<String>,
}

impl Recent {
    /// How many answers the panel remembers.
    pub const CAPACITY: usize = 30;

    /// Records the hostname of one answer.
    pub fn push(&mut self, hostname: &str) {
        if self.hosts.len() == Self::CAPACITY {
            self.hosts.pop_front();
        }
        self.hosts.push_back(hostname.to_owned());
    }

    /// How many requests are remembered.
    pub fn len(&self) -> usize {
        self.hosts.len()
    }

    /// Whether no request is remembered yet.
    pub fn is_empty(&self) -> bool {
        self.hosts.is_empty()
    }

    /// Each hostname with its share of the remembered requests, by hostname.
    pub fn tally(&self) -> Vec<(String, usize)> {
        let mut tally: Vec<(String, usize)> = Vec::new();
        for host in &self.hosts {
            match tally.iter_mut().find(|(h, _)| h == host) {
                Some((_, n)) => *n += 1,
                None => tally.push((host.clone(), 1)),
            }
        }
        tally.sort();
        tally
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn recent_keeps_only_the_newest_answers_and_tallies_them_by_host() {
        let mut recent = Recent::default();
        for i in 0..Recent::CAPACITY + 5 {
            recent.push(if i < 5 {
                "old"
            } else if i % 2 == 0 {
                "b"
            } else {
                "a"
            });
        }
        assert_eq!(recent.len(), Recent::CAPACITY);
        assert_eq!(recent.tally(), vec![("a".to_owned(), 15), ("b".to_owned(), 15)]);
    }

    #[test]
    fn script_json_cannot_close_its_script_element() {
        let snapshot = Snapshot::empty("</script><b>");
        let json = snapshot.to_script_json();
        assert!(!json.contains('<'));
        assert_eq!(serde_json::from_str::<Snapshot>(&json).unwrap(), snapshot);
    }
}
