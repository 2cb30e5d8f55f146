//! The headers that keep the page from being framed, sniffed or made to run
//! someone else's script.
//!
//! - [`add_headers`]: on every answer, `X-Content-Type-Options: nosniff`,
//!   `Referrer-Policy: no-referrer` and `X-Frame-Options: DENY` (for
//!   browsers older than `frame-ancestors`).
//! - [`content_security_policy`]: the page's policy. Scripts run only from
//!   this origin or with the page's nonce (Leptos puts it on its one inline
//!   hydration script); WebAssembly may compile; styles come from this
//!   origin (style *attributes* are allowed: the spread panel's bar widths);
//!   the page may not be framed; forms post only here; the browser talks only
//!   to this origin, or to the app server named by `UI_ENV=dev`.
//!
//! CORS is the app server's business and stays as the original had it
//! (`Access-Control-Allow-Origin: *`): votes are anonymous and unauthenticated
//! by design, so a page elsewhere that casts votes gains nothing a plain
//! `curl` would not. README states this choice.

use axum::http::{HeaderName, HeaderValue, header};
use axum::response::Response;

/// Adds the headers every answer carries (the ones already set win).
pub async fn add_headers(mut response: Response) -> Response {
    let headers = response.headers_mut();
    let fixed = [
        (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
        (header::REFERRER_POLICY, "no-referrer"),
        (header::X_FRAME_OPTIONS, "DENY"),
    ];
    for (name, value) in fixed {
        headers.entry(name).or_insert(HeaderValue::from_static(value));
    }
    response
}

/// The console's policy: its own script and stylesheet only, no framing,
/// forms posting only here.
pub const CONSOLE_CSP: &str = "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; \
     connect-src 'self'; frame-ancestors 'none'; base-uri 'none'; form-action 'self'; object-src 'none'";

/// The `Content-Security-Policy` header's name.
pub const CSP: HeaderName = header::CONTENT_SECURITY_POLICY;

/// The page's policy for one response's `nonce`; `api_base` is where the
/// browser calls the API (empty: this origin).
pub fn content_security_policy(nonce: &str, api_base: &str) -> HeaderValue {
    let connect = if api_base.is_empty() { String::new() } else { format!(" {api_base}") };
    let policy = format!(
        "default-src 'self'; script-src 'self' 'nonce-{nonce}' 'wasm-unsafe-eval'; \
         style-src 'self'; style-src-attr 'unsafe-inline'; img-src 'self' data:; \
         connect-src 'self'{connect}; frame-ancestors 'none'; base-uri 'none'; \
         form-action 'self'; object-src 'none'"
    );
    // The nonce is base64url and api_base a checked URL, so this cannot fail;
    // if it ever did, a policy that allows no script is the safe fallback.
    HeaderValue::from_str(&policy)
        .unwrap_or(HeaderValue::from_static("default-src 'self'; script-src 'none'"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_policy_carries_the_nonce_and_the_dev_api_origin() {
        let csp = content_security_policy("abc123", "");
        let csp = csp.to_str().unwrap();
        assert!(csp.contains("script-src 'self' 'nonce-abc123' 'wasm-unsafe-eval'"), "{csp}");
        assert!(csp.contains("frame-ancestors 'none'"), "{csp}");
        assert!(csp.contains("connect-src 'self';"), "{csp}");
        let dev = content_security_policy("n", "http://localhost:4567");
        assert!(dev.to_str().unwrap().contains("connect-src 'self' http://localhost:4567;"));
    }
}
