//! The presenter view (`/present`), for the projector: a huge donut, a big
//! QR code and the replica topology. Compiled into the server and into the
//! presenter's own bundle (feature `present`), never into the voting page's
//! bundle, which every phone downloads.

use leptos::prelude::*;
use yelb_core::wire::{BackendHealth, Fault, ReplicaInfo};

use crate::app::{Donut, Qr, fault_badge};
use crate::chart;
use crate::model::{ApiLevel, Snapshot};
use crate::state::Ui;

/// The presenter view (`/present`), for the projector: a huge donut, a big
/// QR code, and the app-server replicas with their requests per second,
/// canary colour and fault badges, as a strip from the UI to the stores.
#[component]
pub(crate) fn Present(snapshot: Snapshot) -> impl IntoView {
    let ui = expect_context::<Ui>();
    let total = move || ui.votes.get().total();
    // `?theme=dark|light`; unset, the system's colour scheme decides.
    let theme = snapshot.theme.clone();
    view! {
        <main class="present" data-theme=theme>
            <header class="present-head">
                <h1>{snapshot.title.clone()}</h1>
                <p class="present-total">
                    <strong data-test="present-total">{total}</strong> " votes "
                    <span class=move || ui.live.get().class() data-test="live">
                        {move || ui.live.get().label()}
                    </span>
                </p>
            </header>
            <section class="present-chart" aria-label="Results">
                <Donut/>
            </section>
            <Qr
                url=snapshot.public_url.clone()
                svg=snapshot.qr_svg.clone()
                warning=snapshot.url_warning.clone()
                others=snapshot.other_urls.clone()
            />
            <Topology/>
        </main>
    }
}

/// How a replica looks on the topology strip.
fn replica_state(replica: &ReplicaInfo, faults: &[Fault]) -> (&'static str, Option<String>) {
    let fault = fault_badge(faults, &replica.hostname);
    let state = if replica.last_seen_ms > 3_000 {
        "gone"
    } else if fault.is_some() {
        "faulty"
    } else {
        "up"
    };
    (state, fault)
}

/// UI → app-server replicas → Postgres and Redis. Replicas appear as they
/// start reporting and grey out when they stop; each shows its requests per
/// second, canary colour and fault.
#[component]
fn Topology() -> impl IntoView {
    let ui = expect_context::<Ui>();
    let replicas = move || {
        let faults = ui.faults.get();
        let rates = ui.rates.get();
        ui.replicas
            .get()
            .into_iter()
            .map(|r| {
                let (state, fault) = replica_state(&r, &faults);
                let rate = rates.iter().find(|(h, _)| *h == r.hostname).map_or(0.0, |(_, x)| *x);
                let colour = r.placement.as_ref().and_then(|p| p.checked_color().map(str::to_owned));
                let style = colour.map(|c| format!("border-color:{c}")).unwrap_or_default();
                let version =
                    r.placement.as_ref().map(|p| format!("v{} · {}", p.version, p.arch)).unwrap_or_default();
                view! {
                    <li class=format!("node replica {state}") style=style data-test="replica">
                        <span class="node-name">{r.hostname}</span>
                        <span class="node-rate" data-test="rate">{format!("{} req/s", chart::fixed(rate, 1))}</span>
                        <small>{version}</small>
                        {fault.map(|f| view! { <small class="bar-fault" data-test="fault">{f}</small> })}
                    </li>
                }
            })
            .collect_view()
    };
    view! {
        <section class="topology" aria-label="Topology" hidden=move || ui.api.get() != ApiLevel::Modern>
            <div class="node">"UI"</div>
            <span class="arrow">"→"</span>
            <ul class="replicas" data-test="topology">{replicas}</ul>
            {move || {
                ui.backends.get().filter(|b| b.postgres != BackendHealth::Memory || b.redis != BackendHealth::Memory).map(
                    |b| {
                        let store = |name: &'static str, health: BackendHealth| {
                            (health != BackendHealth::Memory).then(|| {
                                let state = if health == BackendHealth::Up { "up" } else { "down" };
                                view! {
                                    <div class=format!("node store {state}") data-test="store" data-health=state>
                                        {name}
                                    </div>
                                }
                            })
                        };
                        view! {
                            <span class="arrow">"→"</span>
                            <div class="stores">
                                {store("Postgres", b.postgres)}
                                {store("Redis", b.redis)}
                            </div>
                        }
                    },
                )
            }}
        </section>
    }
}
