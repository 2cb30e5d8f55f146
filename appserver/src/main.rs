//! `yelb-appserver`: reads the configuration, starts logging, serves until
//! SIGTERM or SIGINT; or, as `yelb-appserver healthcheck`, probes a running
//! server. Everything else is in the library.

use std::process::ExitCode;

use yelb_appserver::config::Command;
use yelb_appserver::{Application, Config, shutdown_signal};

// glibc's malloc serialises on arena locks when Tokio frees on one worker what
// another allocated (seen in `perf`); mimalloc's thread-local heaps do not.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[tokio::main]
async fn main() -> ExitCode {
    let config = match Config::from_env() {
        Ok(config) => config,
        Err(e) => {
            // Logging is not set up yet: its format is part of the configuration.
            eprintln!("yelb-appserver: {e}");
            return ExitCode::from(2);
        }
    };
    if let Some(Command::Healthcheck { path }) = &config.command {
        return match yelb_appserver::healthcheck(config.listen, path) {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => {
                eprintln!("yelb-appserver healthcheck: {e}");
                ExitCode::from(1)
            }
        };
    }
    yelb_service::init_tracing(config.log_format);
    // Before binding: see `shutdown_signal`.
    let shutdown = shutdown_signal();
    let app = match Application::build(config).await {
        Ok(app) => app,
        Err(e) => {
            tracing::error!("cannot start: {e:#}");
            return ExitCode::from(1);
        }
    };
    match app.run_until(shutdown).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            tracing::error!("server failed: {e}");
            ExitCode::from(1)
        }
    }
}
