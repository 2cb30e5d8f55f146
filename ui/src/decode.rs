//! Reading the app server's JSON in the browser, without serde.
//!
//! The phones' bundle parses every answer with the browser's own
//! `JSON.parse` and reads the fields it needs through [`Json`]; each wire
//! type says how in its [`Decode`]. serde's derived deserializers, one
//! monomorphised copy per type with its error formatting, were about a
//! tenth of the voting page's download (BENCHMARKS.md, "Wave 3, session 5").
//! The server still reads and writes JSON with serde; the tests here check
//! that everything it writes decodes back to the same value.
//!
//! The rules follow the serde derives of `yelb-core`: a missing or `null`
//! `Option` is `None`, a field with `#[serde(default)]` may be missing, any
//! other missing or mistyped field fails the whole value (`None`), and
//! unknown fields are ignored. Numbers are JavaScript's: counts are exact up
//! to 2^53.

use yelb_core::api::ApiLevel;
use yelb_core::wire::{
    BackendHealth, Backends, ErrorBody, Fault, FaultSpec, LegacyStats, LegacyVote, LiveState, Placement,
    ReplicaInfo, ReplicasBody, SpreadEvent, StatsBody, VoteReceipt, VotesBody,
};
use yelb_core::{Restaurant, VoteCounts};

use crate::model::{Notice, Snapshot};

/// A parsed JSON value, as far as [`Decode`] needs to look into it.
pub trait Json: Sized {
    /// An object's member, `None` when it is absent or `null` (or this is no object).
    fn field(&self, name: &str) -> Option<Self>;
    /// A string's text.
    fn text(&self) -> Option<String>;
    /// A number's value.
    fn number(&self) -> Option<f64>;
    /// A boolean's value.
    fn boolean(&self) -> Option<bool>;
    /// An array's elements.
    fn items(&self) -> Option<Vec<Self>>;
}

/// A type the browser reads from JSON.
pub trait Decode: Sized {
    /// The value `json` holds, or `None` if it is not one.
    fn decode<J: Json>(json: &J) -> Option<Self>;
}

/// Parses `text` with the browser's `JSON.parse` and decodes it.
#[cfg(feature = "hydrate")]
pub fn parse<T: Decode>(text: &str) -> Option<T> {
    T::decode(&js_sys::JSON::parse(text).ok()?)
}

#[cfg(feature = "hydrate")]
impl Json for wasm_bindgen::JsValue {
    fn field(&self, name: &str) -> Option<Self> {
        if !self.is_object() {
            return None;
        }
        js_sys::Reflect::get(self, &wasm_bindgen::JsValue::from_str(name))
            .ok()
            .filter(|v| !v.is_null() && !v.is_undefined())
    }
    fn text(&self) -> Option<String> {
        self.as_string()
    }
    fn number(&self) -> Option<f64> {
        self.as_f64()
    }
    fn boolean(&self) -> Option<bool> {
        self.as_bool()
    }
    fn items(&self) -> Option<Vec<Self>> {
        js_sys::Array::is_array(self).then(|| js_sys::Array::from(self).iter().collect())
    }
}

/// A required field.
fn req<T: Decode, J: Json>(json: &J, name: &str) -> Option<T> {
    T::decode(&json.field(name)?)
}

/// An optional field: absent or `null` is `Some(None)`, a mistyped one `None`.
fn opt<T: Decode, J: Json>(json: &J, name: &str) -> Option<Option<T>> {
    match json.field(name) {
        None => Some(None),
        Some(value) => T::decode(&value).map(Some),
    }
}

/// A field with `#[serde(default)]`.
fn or_default<T: Decode + Default, J: Json>(json: &J, name: &str) -> Option<T> {
    opt(json, name).map(Option::unwrap_or_default)
}

/// JavaScript's largest exact integer, 2^53 − 1.
const MAX_EXACT: f64 = 9_007_199_254_740_991.0;

impl Decode for String {
    fn decode<J: Json>(json: &J) -> Option<Self> {
        json.text()
    }
}

impl Decode for bool {
    fn decode<J: Json>(json: &J) -> Option<Self> {
        json.boolean()
    }
}

impl Decode for f64 {
    fn decode<J: Json>(json: &J) -> Option<Self> {
        json.number()
    }
}

impl Decode for i64 {
    fn decode<J: Json>(json: &J) -> Option<Self> {
        let n = json.number()?;
        (n.fract() == 0.0 && n.abs() <= MAX_EXACT).then_some(n as i64)
    }
}

impl Decode for u64 {
    fn decode<J: Json>(json: &J) -> Option<Self> {
        u64::try_from(i64::decode(json)?).ok()
    }
}

impl Decode for u16 {
    fn decode<J: Json>(json: &J) -> Option<Self> {
        u16::try_from(i64::decode(json)?).ok()
    }
}

impl<T: Decode> Decode for Vec<T> {
    fn decode<J: Json>(json: &J) -> Option<Self> {
        json.items()?.iter().map(T::decode).collect()
    }
}

/// `(name, rate)` pairs are two-element arrays, as serde writes tuples.
impl Decode for (String, f64) {
    fn decode<J: Json>(json: &J) -> Option<Self> {
        match json.items()?.as_slice() {
            [name, rate] => Some((name.text()?, rate.number()?)),
            _ => None,
        }
    }
}

/// A unit enum written as one of its lowercase names.
fn named<T: Copy, J: Json>(json: &J, names: &[(&str, T)]) -> Option<T> {
    let text = json.text()?;
    names.iter().find(|(name, _)| *name == text).map(|&(_, value)| value)
}

impl Decode for Restaurant {
    fn decode<J: Json>(json: &J) -> Option<Self> {
        let text = json.text()?;
        Restaurant::ALL.into_iter().find(|r| r.slug() == text)
    }
}

impl Decode for ApiLevel {
    fn decode<J: Json>(json: &J) -> Option<Self> {
        named(
            json,
            &[("modern", ApiLevel::Modern), ("legacy", ApiLevel::Legacy), ("unknown", ApiLevel::Unknown)],
        )
    }
}

impl Decode for BackendHealth {
    fn decode<J: Json>(json: &J) -> Option<Self> {
        named(
            json,
            &[("up", BackendHealth::Up), ("down", BackendHealth::Down), ("memory", BackendHealth::Memory)],
        )
    }
}

impl Decode for VoteCounts {
    fn decode<J: Json>(json: &J) -> Option<Self> {
        let mut counts = VoteCounts::default();
        for r in Restaurant::ALL {
            *counts.get_mut(r) = req(json, r.slug())?;
        }
        Some(counts)
    }
}

impl Decode for LiveState {
    fn decode<J: Json>(json: &J) -> Option<Self> {
        Some(LiveState {
            votes: req(json, "votes")?,
            pageviews: req(json, "pageviews")?,
            epoch: or_default(json, "epoch")?,
        })
    }
}

impl Decode for VotesBody {
    fn decode<J: Json>(json: &J) -> Option<Self> {
        Some(VotesBody {
            votes: req(json, "votes")?,
            total: req(json, "total")?,
            hostname: req(json, "hostname")?,
            epoch: or_default(json, "epoch")?,
        })
    }
}

impl Decode for LegacyVote {
    fn decode<J: Json>(json: &J) -> Option<Self> {
        Some(LegacyVote { name: req(json, "name")?, value: req(json, "value")? })
    }
}

impl Decode for LegacyStats {
    fn decode<J: Json>(json: &J) -> Option<Self> {
        Some(LegacyStats { hostname: req(json, "hostname")?, pageviews: req(json, "pageviews")? })
    }
}

impl Decode for StatsBody {
    fn decode<J: Json>(json: &J) -> Option<Self> {
        Some(StatsBody { hostname: req(json, "hostname")?, pageviews: req(json, "pageviews")? })
    }
}

impl Decode for VoteReceipt {
    fn decode<J: Json>(json: &J) -> Option<Self> {
        Some(VoteReceipt {
            restaurant: req(json, "restaurant")?,
            count: req(json, "count")?,
            hostname: req(json, "hostname")?,
        })
    }
}

impl Decode for ErrorBody {
    fn decode<J: Json>(json: &J) -> Option<Self> {
        Some(ErrorBody { error: req(json, "error")?, status: req(json, "status")? })
    }
}

impl Decode for Placement {
    fn decode<J: Json>(json: &J) -> Option<Self> {
        Some(Placement {
            version: req(json, "version")?,
            color: opt(json, "color")?,
            message: opt(json, "message")?,
            node: opt(json, "node")?,
            zone: opt(json, "zone")?,
            arch: req(json, "arch")?,
            orchestrator: req(json, "orchestrator")?,
        })
    }
}

impl Decode for ReplicaInfo {
    fn decode<J: Json>(json: &J) -> Option<Self> {
        Some(ReplicaInfo {
            hostname: req(json, "hostname")?,
            served: req(json, "served")?,
            last_seen_ms: req(json, "last_seen_ms")?,
            placement: opt(json, "placement")?,
        })
    }
}

impl Decode for Backends {
    fn decode<J: Json>(json: &J) -> Option<Self> {
        Some(Backends { postgres: req(json, "postgres")?, redis: req(json, "redis")? })
    }
}

impl Decode for FaultSpec {
    fn decode<J: Json>(json: &J) -> Option<Self> {
        Some(FaultSpec {
            scope: req(json, "scope")?,
            ttl_secs: req(json, "ttl_secs")?,
            latency_ms: or_default(json, "latency_ms")?,
            latency_jitter_ms: or_default(json, "latency_jitter_ms")?,
            error_rate: or_default(json, "error_rate")?,
            unready: or_default(json, "unready")?,
            unhealthy: or_default(json, "unhealthy")?,
            crash: or_default(json, "crash")?,
            cpu_burn: or_default(json, "cpu_burn")?,
            restaurant: opt(json, "restaurant")?,
        })
    }
}

/// The spec's fields sit beside the times (`#[serde(flatten)]`).
impl Decode for Fault {
    fn decode<J: Json>(json: &J) -> Option<Self> {
        Some(Fault {
            spec: FaultSpec::decode(json)?,
            set_at_ms: req(json, "set_at_ms")?,
            expires_at_ms: req(json, "expires_at_ms")?,
        })
    }
}

impl Decode for ReplicasBody {
    fn decode<J: Json>(json: &J) -> Option<Self> {
        Some(ReplicasBody {
            hostname: req(json, "hostname")?,
            replicas: req(json, "replicas")?,
            faults: or_default(json, "faults")?,
            backends: opt(json, "backends")?,
        })
    }
}

/// The replicas' fields sit beside the rates (`#[serde(flatten)]`).
impl Decode for SpreadEvent {
    fn decode<J: Json>(json: &J) -> Option<Self> {
        Some(SpreadEvent { body: ReplicasBody::decode(json)?, rates: or_default(json, "rates")? })
    }
}

impl Decode for Notice {
    fn decode<J: Json>(json: &J) -> Option<Self> {
        Some(Notice { is_error: req(json, "is_error")?, text: req(json, "text")? })
    }
}

impl Decode for Snapshot {
    fn decode<J: Json>(json: &J) -> Option<Self> {
        Some(Snapshot {
            title: req(json, "title")?,
            public_url: req(json, "public_url")?,
            qr_svg: req(json, "qr_svg")?,
            other_urls: or_default(json, "other_urls")?,
            url_warning: opt(json, "url_warning")?,
            api_base: req(json, "api_base")?,
            api: req(json, "api")?,
            votes: opt(json, "votes")?,
            pageviews: opt(json, "pageviews")?,
            hostname: opt(json, "hostname")?,
            view_counted: req(json, "view_counted")?,
            replicas: req(json, "replicas")?,
            notice: opt(json, "notice")?,
            present: or_default(json, "present")?,
            theme: opt(json, "theme")?,
            backends: opt(json, "backends")?,
        })
    }
}

#[cfg(test)]
mod tests {
    //! Everything the server writes with serde decodes back to itself.
    use super::*;
    use serde::Serialize;
    use serde_json::Value;
    use std::fmt::Debug;

    impl Json for Value {
        fn field(&self, name: &str) -> Option<Self> {
            self.get(name).filter(|v| !v.is_null()).cloned()
        }
        fn text(&self) -> Option<String> {
            self.as_str().map(str::to_owned)
        }
        fn number(&self) -> Option<f64> {
            self.as_f64()
        }
        fn boolean(&self) -> Option<bool> {
            self.as_bool()
        }
        fn items(&self) -> Option<Vec<Self>> {
            self.as_array().cloned()
        }
    }

    fn decoded<T: Decode>(text: &str) -> Option<T> {
        T::decode(&serde_json::from_str::<Value>(text).unwrap())
    }

    fn round_trip<T: Decode + Serialize + PartialEq + Debug>(value: T) {
        let json = serde_json::to_value(&value).unwrap();
        assert_eq!(T::decode(&json).as_ref(), Some(&value), "{json}");
    }

    fn counts() -> VoteCounts {
        VoteCounts { outback: 1, bucadibeppo: 22, ihop: 333, chipotle: 4_444 }
    }

    fn fault(restaurant: Option<Restaurant>) -> Fault {
        Fault {
            spec: FaultSpec {
                scope: "all".into(),
                ttl_secs: 60,
                latency_ms: 250,
                latency_jitter_ms: 50,
                error_rate: 0.3,
                unready: true,
                unhealthy: false,
                crash: false,
                cpu_burn: true,
                restaurant,
            },
            set_at_ms: 1_700_000_000_000,
            expires_at_ms: 1_700_000_060_000,
        }
    }

    fn replicas() -> Vec<ReplicaInfo> {
        let placement = Placement {
            version: "0.1.0".into(),
            color: Some("teal".into()),
            message: None,
            node: Some("node-1".into()),
            zone: None,
            arch: "x86_64".into(),
            orchestrator: "kubernetes".into(),
        };
        vec![
            ReplicaInfo { hostname: "a".into(), served: 12, last_seen_ms: 300, placement: Some(placement) },
            ReplicaInfo { hostname: "b".into(), served: 0, last_seen_ms: 0, placement: None },
        ]
    }

    fn backends() -> Backends {
        Backends { postgres: BackendHealth::Up, redis: BackendHealth::Down }
    }

    #[test]
    fn every_wire_type_the_browser_reads_round_trips() {
        round_trip(LiveState { votes: counts(), pageviews: 9, epoch: 3 });
        round_trip(VotesBody { votes: counts(), total: 4_800, hostname: "h".into(), epoch: 2 });
        round_trip(vec![LegacyVote { name: "ihop".into(), value: 7 }]);
        round_trip(LegacyStats { hostname: "h".into(), pageviews: 5 });
        round_trip(StatsBody { hostname: "h".into(), pageviews: 5 });
        round_trip(VoteReceipt { restaurant: Restaurant::Chipotle, count: 8, hostname: "h".into() });
        round_trip(ErrorBody { error: "busy".into(), status: 503 });
        round_trip(SpreadEvent {
            body: ReplicasBody {
                hostname: "h".into(),
                replicas: replicas(),
                faults: vec![fault(None), fault(Some(Restaurant::Ihop))],
                backends: Some(backends()),
            },
            rates: vec![("a".into(), 12.5), ("b".into(), 0.0)],
        });
        round_trip(ReplicasBody { hostname: "h".into(), replicas: vec![], faults: vec![], backends: None });
        round_trip(4_096_i64);
    }

    #[test]
    fn the_snapshot_round_trips_full_and_empty() {
        let mut full = Snapshot::empty("Yelb <live>");
        full.public_url = "http://192.0.2.7:8080/".into();
        full.qr_svg = "<svg/>".into();
        full.other_urls = vec!["http://10.0.0.2:8080/".into()];
        full.url_warning = Some("loopback".into());
        full.api_base = "http://localhost:4567".into();
        full.api = ApiLevel::Modern;
        full.votes = Some(counts());
        full.pageviews = Some(17);
        full.hostname = Some("app-1".into());
        full.view_counted = true;
        full.replicas = replicas();
        full.notice = Some(Notice::error("Postgres is down"));
        full.present = true;
        full.theme = Some("dark".into());
        full.backends = Some(Backends { postgres: BackendHealth::Memory, redis: BackendHealth::Memory });
        round_trip(full.clone());
        round_trip(Snapshot::empty("Yelb"));
        // What the page embeds (`<` escaped) is the same JSON.
        assert_eq!(decoded::<Snapshot>(&full.to_script_json()), Some(full));
    }

    #[test]
    fn defaulted_fields_may_be_missing_as_older_senders_omit_them() {
        let state: LiveState =
            decoded(r#"{"votes":{"outback":1,"bucadibeppo":2,"ihop":3,"chipotle":4},"pageviews":5}"#)
                .unwrap();
        assert_eq!(state.epoch, 0);
        let spread: SpreadEvent = decoded(r#"{"hostname":"h","replicas":[],"extra":1}"#).unwrap();
        assert!(spread.rates.is_empty() && spread.body.faults.is_empty() && spread.body.backends.is_none());
    }

    #[test]
    fn a_missing_or_mistyped_field_fails_the_whole_value() {
        let counts = r#"{"outback":1,"bucadibeppo":2,"ihop":3,"chipotle":4}"#;
        for bad in [
            r#"{"pageviews":5}"#.to_owned(),
            format!(r#"{{"votes":{counts},"pageviews":"5"}}"#),
            format!(r#"{{"votes":{counts},"pageviews":5.5}}"#),
            format!(r#"{{"votes":{counts},"pageviews":5,"epoch":-1}}"#),
            r#"{"votes":{"outback":1},"pageviews":5}"#.to_owned(),
            "[]".to_owned(),
            "null".to_owned(),
        ] {
            assert_eq!(decoded::<LiveState>(&bad), None, "{bad}");
        }
        assert_eq!(decoded::<VoteReceipt>(r#"{"restaurant":"pizzahut","count":1,"hostname":"h"}"#), None);
        assert_eq!(decoded::<ErrorBody>(r#"{"error":"x","status":70000}"#), None);
        assert_eq!(decoded::<SpreadEvent>(r#"{"hostname":"h","replicas":[],"rates":[["a"]]}"#), None);
        assert_eq!(decoded::<i64>("9007199254740993"), None, "past 2^53 a count is not exact");
    }
}
