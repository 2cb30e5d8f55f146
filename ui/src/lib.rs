//! Yelb's web UI: the page the audience sees, written once in Leptos,
//! rendered on the server and hydrated in the browser.
//!
//! - [`app`]: the components (both sides).
//! - `present` (the server, and the browser with feature `present`): the
//!   presenter view's components, kept out of the phones' bundle.
//! - [`state`]: the page's reactive state, [`state::Ui`] (both sides).
//! - [`chart`]: the donut chart's geometry (both sides).
//! - [`model`]: the snapshot the server hands the browser (both sides).
//! - `client` (feature `hydrate`): the browser's network code: votes, the
//!   event stream, polling, the spread panel.
//! - `decode` (feature `hydrate`): reads the app server's JSON through the
//!   browser's `JSON.parse`, without serde's deserializers in the bundle.
//! - [`server`] (feature `ssr`, the default): the UI's own process: renders
//!   the page, serves the WebAssembly bundle, takes no-JavaScript votes and
//!   forwards `/api` to the app server, as nginx did in the original.
//!
//! Wire types come from `yelb-core`, shared with the app server; the UI talks
//! to the app server over HTTP only.
// The presenter view nests deep enough in view types to need more
// than the default 128 (release and wasm builds compute their layout).
#![recursion_limit = "256"]

pub mod app;
pub mod chart;
#[cfg(feature = "hydrate")]
mod client;
#[cfg(any(feature = "hydrate", test))]
mod decode;
pub mod model;
#[cfg(any(feature = "ssr", feature = "present"))]
mod present;
#[cfg(feature = "ssr")]
pub mod server;
pub mod state;

/// The browser's entry point, called by the script Leptos puts in the page:
/// reads the server's snapshot and hydrates the body with it.
#[cfg(feature = "hydrate")]
#[wasm_bindgen::prelude::wasm_bindgen]
pub fn hydrate() {
    use leptos::prelude::*;
    console_error_panic_hook::set_once();
    let snapshot = client::read_snapshot();
    leptos::mount::hydrate_body(move || {
        provide_context(snapshot.clone());
        view! { <app::App/> }
    });
}
