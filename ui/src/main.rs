//! `yelb-ui`: reads the configuration, starts logging and serves the UI until
//! SIGTERM or Ctrl-C. Everything else lives in the library.

use clap::Parser;
use yelb_ui::server::{self, Args, Command};

// As in the app server: glibc's malloc kept ~400 MB after 10,000 event
// streams had closed (its per-thread arenas do not shrink); mimalloc returns
// freed pages to the system.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    if let Some(Command::Healthcheck { path }) = &args.command {
        let ok = server::healthcheck(&args, path);
        std::process::exit(if ok { 0 } else { 1 });
    }
    let audience_only = matches!(args.command, Some(Command::AudienceUrl));
    let config = match args.into_config() {
        Ok(config) => config,
        Err(e) => {
            eprintln!("yelb-ui: {e}");
            std::process::exit(2);
        }
    };
    if audience_only {
        let audience = server::audience::for_local_port(config.public_url.as_deref(), config.listen.port());
        #[allow(clippy::print_stdout)] // The subcommand's output.
        {
            println!("{}", audience.url);
        }
        if let Some(warning) = audience.warning {
            eprintln!("yelb-ui: {warning}");
        }
        return Ok(());
    }
    server::init_tracing(&config);
    let shutdown = server::shutdown_signal();
    let listener = tokio::net::TcpListener::bind(config.listen).await?;
    server::run(listener, config, shutdown).await
}
