//! The page: Leptos components shared by the server render and the browser.
//!
//! - [`shell`]: the whole HTML document (head, snapshot, hydration scripts).
//! - [`App`]: the body: header with the app server's hostname and the live
//!   badge, the notice bar, the four cards, the donut chart with page views,
//!   the spread panel and the QR code; or, at `/present`, the presenter
//!   view (`crate::present`).
//!
//! The components never talk to the network themselves: they read the
//! page's state ([`Ui`], in `crate::state`), and in the browser `client`
//! (compiled only with the `hydrate` feature) changes its signals, and the
//! view follows. `client` depends on `state`, never on this module.

use leptos::prelude::*;
use yelb_core::Restaurant;
use yelb_core::wire::{Fault, ReplicaInfo};

use crate::chart::{self, RADIUS_ATTR};
use crate::model::{ApiLevel, Recent, SNAPSHOT_ID, Snapshot};
use crate::state::Ui;

/// The whole document. The server renders it; the browser hydrates only the body.
pub fn shell(options: LeptosOptions) -> impl IntoView {
    let snapshot = use_context::<Snapshot>();
    let title = snapshot.as_ref().map(|s| s.title.clone()).unwrap_or_default();
    let json = snapshot.as_ref().map(Snapshot::to_script_json).unwrap_or_default();
    view! {
        <!DOCTYPE html>
        <html lang="en">
            <head>
                <meta charset="utf-8"/>
                <meta name="viewport" content="width=device-width, initial-scale=1"/>
                <meta name="color-scheme" content="light dark"/>
                <title>{title}</title>
                <link rel="icon" href="/favicon.svg" type="image/svg+xml"/>
                <link rel="stylesheet" href="/yelb.css"/>
                <script type="application/json" id=SNAPSHOT_ID inner_html=json></script>
                <HydrationScripts options/>
            </head>
            <body>
                <App/>
            </body>
        </html>
    }
}

/// The page body.
#[component]
pub fn App() -> impl IntoView {
    let snapshot = use_context::<Snapshot>().unwrap_or_else(|| Snapshot::empty("Yelb"));
    let ui = Ui::new(&snapshot);
    provide_context(ui);

    #[cfg(feature = "hydrate")]
    {
        let snapshot = snapshot.clone();
        Effect::new(move |_| crate::client::start(ui, &snapshot));
    }

    // The presenter's code is in the server and in the presenter's bundle
    // only: the voting page's bundle, which every phone downloads, has just
    // the one view (and no type-erased `AnyView`, whose async-hydration
    // twin doubles the code of what it wraps).
    #[cfg(any(feature = "ssr", feature = "present"))]
    return if snapshot.present {
        leptos::either::Either::Left(view! { <crate::present::Present snapshot/> })
    } else {
        leptos::either::Either::Right(view! { <Voting snapshot/> })
    };
    #[cfg(not(any(feature = "ssr", feature = "present")))]
    view! { <Voting snapshot/> }
}

/// The voting page, what the audience's phones show.
#[component]
fn Voting(snapshot: Snapshot) -> impl IntoView {
    let ui = expect_context::<Ui>();
    let title = snapshot.title.clone();
    let hostname = move || ui.hostname.get().unwrap_or_else(|| "…".to_owned());
    view! {
        <header class="top">
            <h1>{title}</h1>
            <p class="host">
                "App Server: " <strong data-test="hostname">{hostname}</strong>
            </p>
            <p class=move || ui.live.get().class() data-test="live">
                {move || ui.live.get().label()}
            </p>
        </header>
        <NoticeBar/>
        <main>
            <section class="cards" aria-label="Restaurants">
                {Restaurant::CARD_ORDER.map(|restaurant| view! { <Card restaurant/> }).collect_view()}
            </section>
            <section class="results" aria-label="Results">
                <Donut/>
                <p class="views">
                    "Number of page views so far: "
                    <strong data-test="pageviews">
                        {move || ui.pageviews.get().map_or_else(|| "…".to_owned(), |n| n.to_string())}
                    </strong>
                </p>
            </section>
            <Qr url=snapshot.public_url.clone() svg=snapshot.qr_svg.clone() warning=snapshot.url_warning.clone()/>
            <Spread/>
        </main>
        <footer>
            <p>"Yelb, in Rust. Votes go to the app server through this page's own server; no internet needed."</p>
        </footer>
    }
}

/// The message bar: failures and confirmations, dismissable.
#[component]
fn NoticeBar() -> impl IntoView {
    let ui = expect_context::<Ui>();
    move || {
        ui.notice.get().map(|notice| {
            let class = if notice.is_error { "notice error" } else { "notice info" };
            view! {
                <div class=class role="alert" data-test="notice">
                    <span>{notice.text}</span>
                    <button type="button" class="dismiss" aria-label="Dismiss" on:click=move |_| ui.notice.set(None)>
                        "×"
                    </button>
                </div>
            }
        })
    }
}

/// One restaurant's card. Its Vote button is a real form post, so it works
/// before (or without) hydration; once hydrated, the browser casts the vote
/// itself and waits for the answer.
#[component]
fn Card(restaurant: Restaurant) -> impl IntoView {
    let ui = expect_context::<Ui>();
    let on_submit = move |ev: leptos::ev::SubmitEvent| {
        ev.prevent_default();
        #[cfg(feature = "hydrate")]
        crate::client::vote(ui, restaurant);
    };
    let slug = restaurant.slug();
    let name = restaurant.display_name();
    let busy = move || ui.pending.get() == Some(restaurant);
    view! {
        <article class=format!("card {}", chart::colour_class(restaurant)) data-restaurant=slug>
            <h2>{name}</h2>
            <p class="tagline">{restaurant.tagline()}</p>
            <p class="count">
                <strong data-test="count">{move || ui.votes.get().get(restaurant)}</strong>
                {move || if ui.votes.get().get(restaurant) == 1 { " vote" } else { " votes" }}
            </p>
            <form method="post" action=format!("/vote/{slug}") on:submit=on_submit>
                <button
                    type="submit"
                    class="vote"
                    aria-label=format!("Vote for {name}")
                    aria-busy=move || busy().to_string()
                    disabled=move || ui.pending.get().is_some()
                >
                    {move || if busy() { "Voting…" } else { "Vote" }}
                </button>
            </form>
        </article>
    }
}

/// The donut chart of the four counts, with the total in the middle and a
/// legend with counts and percentages.
#[component]
pub(crate) fn Donut() -> impl IntoView {
    let ui = expect_context::<Ui>();
    let arcs = Memo::new(move |_| chart::segments(&ui.votes.get()));
    let total = move || ui.votes.get().total();
    let label = move || {
        let parts: Vec<String> = arcs.with(|arcs| {
            arcs.iter().map(|a| format!("{} {}", a.restaurant.display_name(), a.count)).collect()
        });
        format!("Votes: {}", parts.join(", "))
    };
    let arc_views = (0..Restaurant::CARD_ORDER.len())
        .map(|i| {
            let class = format!("arc {}", chart::colour_class(Restaurant::CARD_ORDER[i]));
            view! {
                <circle
                    class=class
                    cx="21"
                    cy="21"
                    r=RADIUS_ATTR
                    fill="transparent"
                    stroke-width="6"
                    stroke-dasharray=move || arcs.with(|a| a[i].dasharray.clone())
                    stroke-dashoffset=move || arcs.with(|a| a[i].dashoffset.clone())
                ></circle>
            }
        })
        .collect_view();
    let legend = (0..Restaurant::CARD_ORDER.len())
        .map(|i| {
            let restaurant = Restaurant::CARD_ORDER[i];
            view! {
                <li data-restaurant=restaurant.slug()>
                    <span class=format!("swatch {}", chart::colour_class(restaurant))></span>
                    <span class="name">{restaurant.display_name()}</span>
                    <span class="n">{move || arcs.with(|a| a[i].count)}</span>
                    <span class="pct">{move || arcs.with(|a| chart::format_percent(a[i].percent))}</span>
                </li>
            }
        })
        .collect_view();
    view! {
        <figure class="donut">
            <svg viewBox="0 0 42 42" role="img" aria-label=label>
                <circle class="track" cx="21" cy="21" r=RADIUS_ATTR fill="transparent" stroke-width="6"></circle>
                {arc_views}
                <text
                    x="21"
                    y="21"
                    class="total"
                    data-test="total"
                    style=move || format!("font-size:{}px", chart::fixed(chart::total_font_size(total()), 2))
                >
                    {total}
                </text>
                <text x="21" y="26.5" class="total-label">"votes"</text>
            </svg>
            <figcaption>
                <ul class="legend">{legend}</ul>
            </figcaption>
        </figure>
    }
}

/// One bar of the spread panel: a replica, a count, and what it says of
/// itself (canary colour, version, where it runs) and of its faults.
#[derive(Debug, Clone, PartialEq)]
struct Row {
    host: String,
    n: u64,
    color: Option<String>,
    note: String,
    fault: Option<String>,
}

/// The rows for `counts`, with what `/api/v1/replicas` says of each host.
fn rows(counts: Vec<(String, u64)>, replicas: &[ReplicaInfo], faults: &[Fault]) -> Vec<Row> {
    counts
        .into_iter()
        .map(|(host, n)| {
            let placement = replicas.iter().find(|r| r.hostname == host).and_then(|r| r.placement.as_ref());
            let note = placement
                .map(|p| {
                    let mut parts = vec![format!("v{}", p.version), p.arch.clone()];
                    parts.extend(p.node.iter().cloned());
                    parts.extend(p.zone.iter().cloned());
                    parts.extend(p.message.iter().map(|m| format!("“{m}”")));
                    parts.join(" · ")
                })
                .unwrap_or_default();
            let fault = fault_badge(faults, &host);
            Row { color: placement.and_then(|p| p.checked_color().map(str::to_owned)), note, fault, host, n }
        })
        .collect()
}

/// What the faults in force do to `host`, in a few words.
pub(crate) fn fault_badge(faults: &[Fault], host: &str) -> Option<String> {
    let (options, mine): (Vec<&Fault>, Vec<&Fault>) =
        faults.iter().filter(|f| f.spec.applies_to(host)).partition(|f| f.spec.restaurant.is_some());
    if mine.is_empty() && options.is_empty() {
        return None;
    }
    let mut words = Vec::new();
    for f in options {
        let name = f.spec.restaurant.map_or("", |r| r.display_name());
        if f.spec.error_rate > 0.0 {
            words.push(format!("{name} votes {}% errors", chart::fixed(f.spec.error_rate * 100.0, 0)));
        }
        if f.spec.latency_ms > 0 {
            words.push(format!("{name} votes +{} ms", f.spec.latency_ms));
        }
    }
    let latency = mine.iter().map(|f| f.spec.latency_ms).max().unwrap_or(0);
    let errors = mine.iter().map(|f| f.spec.error_rate).fold(0.0, f64::max);
    if latency > 0 {
        words.push(format!("+{latency} ms"));
    }
    if errors > 0.0 {
        words.push(format!("{}% errors", chart::fixed(errors * 100.0, 0)));
    }
    for (on, word) in [
        (mine.iter().any(|f| f.spec.unready), "unready"),
        (mine.iter().any(|f| f.spec.unhealthy), "unhealthy"),
        (mine.iter().any(|f| f.spec.cpu_burn), "CPU burn"),
        (mine.iter().any(|f| f.spec.crash), "crash"),
    ] {
        if on {
            words.push(word.to_owned());
        }
    }
    Some(format!("fault: {}", words.join(", ")))
}

/// Which app servers answer: this browser's recent requests, and the
/// cluster-wide count of requests each replica served.
#[component]
fn Spread() -> impl IntoView {
    let ui = expect_context::<Ui>();
    let mine = Signal::derive(move || {
        let counts =
            ui.recent.with(|r| r.tally().into_iter().map(|(h, n)| (h, n as u64)).collect::<Vec<_>>());
        ui.replicas.with(|replicas| ui.faults.with(|faults| rows(counts, replicas, faults)))
    });
    let cluster = Signal::derive(move || {
        ui.replicas.with(|replicas| {
            let counts = replicas.iter().map(|r| (r.hostname.clone(), r.served)).collect();
            ui.faults.with(|faults| rows(counts, replicas, faults))
        })
    });
    let recent_len = move || ui.recent.with(Recent::len);
    view! {
        // Always rendered, hidden unless the app server has /api/v1: an
        // attribute flips on hydration where a missing node could not.
        <section class="spread" aria-label="Which app servers answer" hidden=move || ui.api.get() != ApiLevel::Modern>
            <h2>"Who answered"</h2>
            <div class="spread-cols">
                <div>
                    <h3>"This browser's last " {recent_len} " requests"</h3>
                    <Bars rows=mine test="recent"/>
                </div>
                <div>
                    <h3>"Requests served, whole cluster"</h3>
                    <Bars rows=cluster test="cluster"/>
                </div>
            </div>
        </section>
    }
}

/// A bar per hostname, as long as its share of the largest, in the
/// replica's canary colour when it has one.
#[component]
fn Bars(rows: Signal<Vec<Row>>, test: &'static str) -> impl IntoView {
    view! {
        <ul class="bars" data-test=test>
            {move || {
                let rows = rows.get();
                let max = rows.iter().map(|r| r.n).max().unwrap_or(0).max(1);
                rows.into_iter()
                    .map(|row| {
                        let mut style = format!("width:{}%", chart::fixed(row.n as f64 * 100.0 / max as f64, 1));
                        if let Some(color) = &row.color {
                            style.push_str(&format!(";background:{color}"));
                        }
                        let title = row.note.clone();
                        view! {
                            <li>
                                <span class="bar-label" title=title>
                                    <span class="bar-host">{row.host}</span>
                                    <small class="bar-note">{row.note}</small>
                                    {row.fault.map(|f| view! { <small class="bar-fault" data-test="fault">{f}</small> })}
                                </span>
                                <span class="bar"><span class="fill" style=style></span></span>
                                <span class="bar-n">{row.n}</span>
                            </li>
                        }
                    })
                    .collect_view()
            }}
        </ul>
    }
}

/// The QR code of the page's public URL, for the audience's phones, with a
/// warning when phones cannot open it and (on the presenter view) this
/// machine's other addresses.
#[component]
pub(crate) fn Qr(
    url: String,
    svg: String,
    warning: Option<String>,
    #[prop(optional)] others: Vec<String>,
) -> impl IntoView {
    let warning =
        warning.map(|text| view! { <p class="qr-warning" role="alert" data-test="url-warning">{text}</p> });
    let others = (!others.is_empty()).then(|| {
        view! {
            <p class="qr-others" data-test="other-urls">
                "Also: " {others.iter().map(|u| view! { <span>{u.clone()}</span> " " }).collect_view()}
            </p>
        }
    });
    view! {
        <aside class="qr" aria-label="Open this page on your phone">
            <div class="qr-code" inner_html=svg></div>
            <p>"Vote from your phone: " <a href=url.clone() data-test="public-url">{url.clone()}</a></p>
            {warning}
            {others}
        </aside>
    }
}
