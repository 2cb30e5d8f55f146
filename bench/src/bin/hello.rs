//! The ceiling: an axum hello-world with the same runtime and allocator as the
//! app server, so the benchmark can say what fraction of "just HTTP" Yelb reaches.

use axum::routing::get;

// The same allocator as the app server, so the ceiling is a fair one.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let port: u16 = std::env::args().nth(1).unwrap_or_else(|| "8099".into()).parse()?;
    let app = axum::Router::new().route("/", get(|| async { "Hello, World!" }));
    let listener = tokio::net::TcpListener::bind(("127.0.0.1", port)).await?;
    axum::serve(listener, app).await?;
    Ok(())
}
