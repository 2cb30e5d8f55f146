//! The UI server's configuration: flags and environment variables, read once
//! into a typed [`Config`]. A bad value stops the process at start with the
//! variable's name. The README's table lists the same variables as `--help`
//! (a test keeps them in step).

use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::time::Duration;

use axum::http::Uri;
use clap::{Parser, Subcommand};
pub use yelb_service::ConfigError;
use yelb_service::LogFormat;
use yelb_service::parse_count;

/// Yelb web UI: renders the page, serves its WebAssembly, forwards /api to the app server.
#[derive(Debug, Clone, Parser)]
#[command(version, about)]
pub struct Args {
    /// Address to listen on.
    #[arg(long, env = "YELB_UI_LISTEN_ADDR", default_value = "0.0.0.0")]
    pub listen_addr: String,

    /// Port to listen on (unprivileged; map 80 to it where the original used 80).
    #[arg(long, env = "YELB_UI_PORT", default_value = "8080")]
    pub port: String,

    /// The app server's full URL, resolved per connection, never at start; or
    /// several, comma-separated, taken in turn (for catalogues without DNS,
    /// such as Nomad's own service discovery).
    #[arg(long, env = "YELB_APPSERVER_ENDPOINT", default_value = "http://yelb-appserver:4567")]
    pub appserver_endpoint: String,

    /// Reuse connections to the app server (true), or open one per request
    /// (false, the default) so that consecutive requests can reach different
    /// replicas behind a Service, DNS round robin or Swarm.
    #[arg(long, env = "YELB_UI_UPSTREAM_KEEPALIVE", default_value = "false")]
    pub upstream_keepalive: String,

    /// Seconds to wait for the app server's answer to begin (streams may then run for ever).
    #[arg(long, env = "YELB_UI_UPSTREAM_TIMEOUT", default_value = "10")]
    pub upstream_timeout: String,

    /// Connections served at once; one more is answered 503 and closed (kept under the open-file limit).
    #[arg(long, env = "YELB_UI_MAX_CONNECTIONS", default_value = "12000")]
    pub max_connections: String,

    /// Screens (live-event streams) served at once; one more is answered 503 and the page polls instead.
    #[arg(long, env = "YELB_UI_MAX_STREAMS", default_value = "10000")]
    pub max_streams: String,

    /// Connections one client (peer address, IPv6 /64) may hold at once, so one phone cannot fill the cap; sized for hundreds of phones behind a venue's NAT. 0: no share.
    #[arg(long, env = "YELB_UI_MAX_CONNECTIONS_PER_CLIENT", default_value = "3000")]
    pub max_connections_per_client: String,

    /// Screens one client may hold at once (behind a trusted proxy, the client its X-Forwarded-For names). 0: no share.
    #[arg(long, env = "YELB_UI_MAX_STREAMS_PER_CLIENT", default_value = "2500")]
    pub max_streams_per_client: String,

    /// Peers (comma-separated addresses or CIDR blocks: the ingress, the load balancer) whose X-Forwarded-For names the client; their connections are not counted per client.
    #[arg(long, env = "YELB_UI_TRUSTED_PROXIES", default_value = "")]
    pub trusted_proxies: String,

    /// Forward /api/v1/admin (stage control) from the public listener to the app server (true), or answer 404 (false, the default): the console signs in through its own form, and scripts reach the app server directly.
    #[arg(long, env = "YELB_UI_FORWARD_ADMIN", default_value = "false")]
    pub forward_admin: String,

    /// Seconds a client has to send a request's head or body, and the longest a kept-alive connection may sit idle.
    #[arg(long, env = "YELB_UI_HEADER_TIMEOUT", default_value = "10")]
    pub header_timeout: String,

    /// The page title.
    #[arg(long, env = "YELB_UI_TITLE", default_value = "Yelb")]
    pub title: String,

    /// The URL the QR code shows (default: the URL the page was loaded from).
    #[arg(long, env = "YELB_UI_PUBLIC_URL")]
    pub public_url: Option<String>,

    /// Folder holding `pkg/` (the WebAssembly bundle built by scripts/build-ui.sh).
    #[arg(long, env = "YELB_UI_SITE_ROOT", default_value = "site")]
    pub site_root: PathBuf,

    /// The original's switch: `prod` (browser calls /api on this server) or
    /// `dev`/`test` (browser calls http://localhost:4567 directly).
    #[arg(long, env = "UI_ENV", default_value = "prod")]
    pub ui_env: String,

    /// Log format: `text` or `json`. Levels come from RUST_LOG (default `info`).
    #[arg(long, env = "YELB_LOG_FORMAT", default_value = "text")]
    pub log_format: String,

    /// What to do instead of serving.
    #[command(subcommand)]
    pub command: Option<Command>,
}

/// Subcommands.
#[derive(Debug, Clone, Subcommand)]
pub enum Command {
    /// Probe the local UI server and exit 0 if it answers 200 (for container health checks).
    Healthcheck {
        /// The path to probe.
        #[arg(long, default_value = "/healthz")]
        path: String,
    },
    /// Print the URL the QR code gives the audience when the page is opened
    /// on this machine as `http://localhost:PORT/` (run.sh prints it).
    AudienceUrl,
}

/// The UI server's settings, parsed and checked.
#[derive(Debug, Clone)]
pub struct Config {
    /// Where to listen.
    pub listen: SocketAddr,
    /// The app server's base URL (scheme and authority).
    pub appserver: Vec<Uri>,
    /// Reuse upstream connections.
    pub keepalive: bool,
    /// How long the app server may take to start answering.
    pub upstream_timeout: Duration,
    /// Page title.
    pub title: String,
    /// Fixed public URL for the QR code, if configured.
    pub public_url: Option<String>,
    /// Folder holding `pkg/`.
    pub site_root: PathBuf,
    /// Where the browser sends API calls: `""` (this origin) or a full URL.
    pub api_base: String,
    /// Log format.
    pub log_format: LogFormat,
    /// Connection, stream and timeout limits of the HTTP server.
    pub limits: yelb_service::Limits,
    /// Whether the public listener forwards `/api/v1/admin`.
    pub forward_admin: bool,
}

impl Args {
    /// The address to listen on, checked.
    pub fn listen(&self) -> Result<SocketAddr, ConfigError> {
        let ip: IpAddr = self.listen_addr.parse().map_err(|_| {
            ConfigError::new("YELB_UI_LISTEN_ADDR", &self.listen_addr, "expected an IP address")
        })?;
        let port: u16 = self
            .port
            .parse()
            .map_err(|_| ConfigError::new("YELB_UI_PORT", &self.port, "expected a port number"))?;
        Ok(SocketAddr::new(ip, port))
    }

    /// Checks every value and resolves them into a [`Config`].
    pub fn into_config(self) -> Result<Config, ConfigError> {
        let listen = self.listen()?;
        let appserver = self
            .appserver_endpoint
            .split(',')
            .map(str::trim)
            .filter(|e| !e.is_empty())
            .map(parse_endpoint)
            .collect::<Result<Vec<_>, _>>()?;
        if appserver.is_empty() {
            return Err(ConfigError::new(
                "YELB_APPSERVER_ENDPOINT",
                &self.appserver_endpoint,
                "expected a URL such as http://yelb-appserver:4567",
            ));
        }
        let keepalive = parse_bool("YELB_UI_UPSTREAM_KEEPALIVE", &self.upstream_keepalive)?;
        let forward_admin = parse_bool("YELB_UI_FORWARD_ADMIN", &self.forward_admin)?;
        let upstream_timeout =
            yelb_service::parse_secs("YELB_UI_UPSTREAM_TIMEOUT", &self.upstream_timeout, 0.001, 3600.0)?;
        let max_connections = parse_count("YELB_UI_MAX_CONNECTIONS", &self.max_connections, 1, 1_000_000)?;
        let max_streams = parse_count("YELB_UI_MAX_STREAMS", &self.max_streams, 0, 1_000_000)?;
        let limits = yelb_service::Limits {
            max_connections,
            max_connections_per_client: yelb_service::parse_share(
                "YELB_UI_MAX_CONNECTIONS_PER_CLIENT",
                &self.max_connections_per_client,
                max_connections,
            )?,
            max_streams,
            max_streams_per_client: yelb_service::parse_share(
                "YELB_UI_MAX_STREAMS_PER_CLIENT",
                &self.max_streams_per_client,
                max_streams,
            )?,
            trusted_proxies: yelb_service::TrustedProxies::parse(&self.trusted_proxies)
                .map_err(|why| ConfigError::new("YELB_UI_TRUSTED_PROXIES", &self.trusted_proxies, why))?,
            // What must get through a flood: the probes, and the presenter's
            // screen with what it loads.
            reserved_paths: &["/healthz", "/readyz", "/present", "/pkg/", "/yelb.css", "/favicon.svg"],
            header_timeout: yelb_service::parse_secs(
                "YELB_UI_HEADER_TIMEOUT",
                &self.header_timeout,
                0.1,
                3600.0,
            )?,
        };
        let api_base = match self.ui_env.as_str() {
            "prod" | "production" | "" => String::new(),
            "dev" | "test" | "development" => "http://localhost:4567".to_owned(),
            other => return Err(ConfigError::new("UI_ENV", other, "expected prod, dev or test")),
        };
        let public_url = match self.public_url.as_deref().map(str::trim) {
            None | Some("") => None,
            Some(url) if url.starts_with("http://") || url.starts_with("https://") => Some(url.to_owned()),
            Some(other) => {
                return Err(ConfigError::new(
                    "YELB_UI_PUBLIC_URL",
                    other,
                    "expected an http:// or https:// URL",
                ));
            }
        };
        let log_format = self
            .log_format
            .parse()
            .map_err(|why| ConfigError::new("YELB_LOG_FORMAT", &self.log_format, why))?;
        Ok(Config {
            listen,
            appserver,
            keepalive,
            upstream_timeout,
            title: self.title,
            public_url,
            site_root: self.site_root,
            api_base,
            log_format,
            limits,
            forward_admin,
        })
    }
}

/// `true`/`false` (also `1`/`0`, `yes`/`no`).
fn parse_bool(var: &'static str, value: &str) -> Result<bool, ConfigError> {
    match value {
        "true" | "1" | "yes" => Ok(true),
        "false" | "0" | "no" => Ok(false),
        other => Err(ConfigError::new(var, other, "expected true or false")),
    }
}

/// `http://host:port` (a path, if any, is ignored: the app server's routes are at its root).
fn parse_endpoint(value: &str) -> Result<Uri, ConfigError> {
    let uri: Uri = value.parse().map_err(|_| {
        ConfigError::new(
            "YELB_APPSERVER_ENDPOINT",
            value,
            "expected a URL such as http://yelb-appserver:4567",
        )
    })?;
    match (uri.scheme_str(), uri.authority()) {
        (Some("http"), Some(authority)) => Uri::builder()
            .scheme("http")
            .authority(authority.clone())
            .path_and_query("/")
            .build()
            .map_err(|e| ConfigError::new("YELB_APPSERVER_ENDPOINT", value, e.to_string())),
        (Some("https"), _) => {
            Err(ConfigError::new("YELB_APPSERVER_ENDPOINT", value, "https is not supported; use http"))
        }
        _ => Err(ConfigError::new(
            "YELB_APPSERVER_ENDPOINT",
            value,
            "expected a URL such as http://yelb-appserver:4567",
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(extra: &[&str]) -> Args {
        let mut argv = vec!["yelb-ui"];
        argv.extend_from_slice(extra);
        Args::try_parse_from(argv).unwrap()
    }

    #[test]
    fn defaults_match_the_original_names_and_an_unprivileged_port() {
        let config = args(&[]).into_config().unwrap();
        assert_eq!(config.listen.port(), 8080);
        assert_eq!(config.appserver[0].to_string(), "http://yelb-appserver:4567/");
        assert!(!config.keepalive, "one connection per request by default, so replicas share the load");
        assert_eq!(config.api_base, "");
        assert_eq!(config.public_url, None);
    }

    #[test]
    fn bad_values_name_their_variable() {
        for (flag, value, var) in [
            ("--port", "eighty", "YELB_UI_PORT"),
            ("--listen-addr", "anywhere", "YELB_UI_LISTEN_ADDR"),
            ("--appserver-endpoint", "yelb-appserver:4567", "YELB_APPSERVER_ENDPOINT"),
            ("--appserver-endpoint", "https://yelb-appserver", "YELB_APPSERVER_ENDPOINT"),
            ("--appserver-endpoint", ",", "YELB_APPSERVER_ENDPOINT"),
            ("--appserver-endpoint", "http://a:1,b:2", "YELB_APPSERVER_ENDPOINT"),
            ("--upstream-keepalive", "maybe", "YELB_UI_UPSTREAM_KEEPALIVE"),
            ("--upstream-timeout", "0", "YELB_UI_UPSTREAM_TIMEOUT"),
            ("--public-url", "yelb.example", "YELB_UI_PUBLIC_URL"),
            ("--ui-env", "staging", "UI_ENV"),
            ("--log-format", "xml", "YELB_LOG_FORMAT"),
        ] {
            let err = args(&[flag, value]).into_config().unwrap_err();
            assert_eq!(err.var, var, "{flag} {value}");
        }
    }

    #[test]
    fn several_endpoints_are_taken_in_the_order_given() {
        let config = args(&["--appserver-endpoint", "http://10.0.0.1:23456, http://10.0.0.2:23457"])
            .into_config()
            .unwrap();
        let all: Vec<String> = config.appserver.iter().map(ToString::to_string).collect();
        assert_eq!(all, ["http://10.0.0.1:23456/", "http://10.0.0.2:23457/"]);
    }

    #[test]
    fn the_original_dev_switch_sends_the_browser_to_localhost() {
        let config = args(&["--ui-env", "dev"]).into_config().unwrap();
        assert_eq!(config.api_base, "http://localhost:4567");
    }
}
