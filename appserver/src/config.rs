//! The app server's configuration: every variable, read once at start.
//!
//! - [`Args`]: what `clap` reads from flags and environment variables; its
//!   `--help` is the table of every variable (the README has the same table).
//! - [`Config`]: the typed result, built by [`Config::from_args`], which
//!   resolves the original Yelb's variables (`RACK_ENV`,
//!   `YELB_DB_SERVER_ENDPOINT`, `REDIS_SERVER_ENDPOINT`) under the modern ones
//!   and fails with the offending variable's name on a bad value.
//! - [`VoteBackend`], [`ViewBackend`]: where votes and page views live; with
//!   nothing configured both are in memory (the embedded mode).

use std::net::{IpAddr, SocketAddr};
use std::time::Duration;
pub use yelb_service::{ConfigError, LogFormat};

use clap::Parser;
use secrecy::{ExposeSecret, SecretString};

/// Yelb app server: the original Yelb API, a modern API, live events, health and metrics.
///
/// With no database or Redis configured it runs on an in-memory store (the
/// embedded mode). Every option can be given as an environment variable.
#[derive(Debug, Parser)]
#[command(name = "yelb-appserver", version, max_term_width = 100)]
pub struct Args {
    /// What to do (default: serve).
    #[command(subcommand)]
    pub command: Option<Command>,

    /// Address to listen on.
    #[arg(long, env = "YELB_LISTEN_ADDR", default_value = "0.0.0.0")]
    pub listen_addr: String,

    /// Port to listen on (the original's 4567).
    #[arg(long, env = "YELB_PORT", default_value = "4567")]
    pub port: String,

    /// Hostname to report in answers and metrics [default: the OS hostname].
    #[arg(long, env = "YELB_HOSTNAME")]
    pub hostname: Option<String>,

    /// Log format: text or json. Log levels come from RUST_LOG (default info).
    #[arg(long, env = "YELB_LOG_FORMAT", default_value = "text")]
    pub log_format: String,

    /// Full Postgres URL (postgres://user:pass@host:port/db); wins over every other database variable.
    #[arg(long, env = "YELB_DATABASE_URL", hide_env_values = true)]
    pub database_url: Option<String>,

    /// Postgres host; wins over RACK_ENV and YELB_DB_SERVER_ENDPOINT.
    #[arg(long, env = "YELB_DB_HOST")]
    pub db_host: Option<String>,

    /// Postgres port.
    #[arg(long, env = "YELB_DB_PORT", default_value = "5432")]
    pub db_port: String,

    /// Postgres user.
    #[arg(long, env = "YELB_DB_USER", default_value = "postgres")]
    pub db_user: String,

    /// Postgres password [default: postgres_password, the original's].
    #[arg(
        long,
        env = "YELB_DB_PASSWORD",
        hide_env_values = true,
        hide_default_value = true,
        default_value = "postgres_password"
    )]
    pub db_password: String,

    /// Postgres database (created with the original schema when missing).
    #[arg(long, env = "YELB_DB_NAME", default_value = "yelbdatabase")]
    pub db_name: String,

    /// Postgres connections in the pool (2 or more).
    #[arg(long, env = "YELB_DB_POOL_SIZE", default_value = "8")]
    pub db_pool_size: String,

    /// Full Redis URL (redis://host:port/db); wins over REDIS_SERVER_ENDPOINT and RACK_ENV.
    #[arg(long, env = "YELB_REDIS_URL", hide_env_values = true)]
    pub redis_url: Option<String>,

    /// Prefix for every Redis key and channel, to share one Redis between Yelbs [default: none, the original key names].
    #[arg(long, env = "YELB_REDIS_KEY_PREFIX", default_value = "")]
    pub redis_key_prefix: String,

    /// Original Yelb: production|test (Postgres at yelb-db, Redis at redis-server), development (both at localhost), custom (the two *_ENDPOINT variables).
    #[arg(long, env = "RACK_ENV")]
    pub rack_env: Option<String>,

    /// Original Yelb: Postgres host (port 5432), used with RACK_ENV=custom or when RACK_ENV is unset.
    #[arg(long, env = "YELB_DB_SERVER_ENDPOINT")]
    pub yelb_db_server_endpoint: Option<String>,

    /// Original Yelb: Redis host (port 6379), used with RACK_ENV=custom or when RACK_ENV is unset.
    #[arg(long, env = "REDIS_SERVER_ENDPOINT")]
    pub redis_server_endpoint: Option<String>,

    /// Seconds between heartbeat comments on an idle event stream (keeps proxies from closing it).
    #[arg(long, env = "YELB_EVENTS_HEARTBEAT", default_value = "15")]
    pub events_heartbeat: String,

    /// Connections served at once; one more is answered 503 and closed (kept under the open-file limit).
    #[arg(long, env = "YELB_MAX_CONNECTIONS", default_value = "10000")]
    pub max_connections: String,

    /// Live-event streams (/api/v1/events) open at once; one more is answered 503 and the page polls instead.
    #[arg(long, env = "YELB_MAX_STREAMS", default_value = "2000")]
    pub max_streams: String,

    /// Connections one client (peer address, IPv6 /64) may hold at once; 0: no share, only the total (the app server's clients are usually UIs and proxies).
    #[arg(long, env = "YELB_MAX_CONNECTIONS_PER_CLIENT", default_value = "0")]
    pub max_connections_per_client: String,

    /// Live-event streams one client may hold at once; 0: no share, only the total.
    #[arg(long, env = "YELB_MAX_STREAMS_PER_CLIENT", default_value = "0")]
    pub max_streams_per_client: String,

    /// Peers (comma-separated addresses or CIDR blocks) whose X-Forwarded-For names the client; their connections are not counted per client.
    #[arg(long, env = "YELB_TRUSTED_PROXIES", default_value = "")]
    pub trusted_proxies: String,

    /// Seconds a client has to send a request's head or body, and the longest a kept-alive connection may sit idle.
    #[arg(long, env = "YELB_HEADER_TIMEOUT", default_value = "10")]
    pub header_timeout: String,

    /// Stage control: the bearer token of /api/v1/admin (reset, faults); unset, those routes answer 404 and no fault applies here.
    #[arg(long, env = "YELB_ADMIN_TOKEN", hide_env_values = true)]
    pub admin_token: Option<String>,

    /// Canary colour shown beside this replica in the spread panel: a CSS colour name or #rgb/#rrggbb.
    #[arg(long, env = "YELB_COLOR")]
    pub color: Option<String>,

    /// Short message shown beside this replica in the spread panel (at most 80 characters).
    #[arg(long, env = "YELB_MESSAGE")]
    pub message: Option<String>,

    /// Node this replica runs on (Kubernetes: the downward API's spec.nodeName).
    #[arg(long, env = "YELB_NODE")]
    pub node: Option<String>,

    /// Zone this replica runs in.
    #[arg(long, env = "YELB_ZONE")]
    pub zone: Option<String>,

    /// Orchestrator to report: kubernetes, nomad, ecs, docker, local [default: detected from the environment].
    #[arg(long, env = "YELB_ORCHESTRATOR")]
    pub orchestrator: Option<String>,

    /// Seconds /readyz reports "shutting down" before the server stops taking connections (give load balancers time to notice).
    #[arg(long, env = "YELB_SHUTDOWN_DELAY", default_value = "0")]
    pub shutdown_delay: String,

    /// Seconds in-flight requests get to finish after the delay, before the process exits anyway.
    #[arg(long, env = "YELB_SHUTDOWN_TIMEOUT", default_value = "10")]
    pub shutdown_timeout: String,
}

/// Subcommands besides serving.
#[derive(Debug, Clone, clap::Subcommand)]
pub enum Command {
    /// Probe the server running with this configuration on this host and exit
    /// 0 if it answers 200, 1 otherwise: a container health check that needs
    /// no shell or curl (images are `FROM scratch`).
    Healthcheck {
        /// The path to probe: /healthz (alive) or /readyz (ready).
        #[arg(long, default_value = "/healthz")]
        path: String,
    },
}

/// Where votes are kept.
#[derive(Debug, Clone)]
pub enum VoteBackend {
    /// In this process's memory (embedded mode): lost on exit, not shared.
    Memory,
    /// In Postgres, shared by every replica.
    Postgres {
        /// Connection settings (the password is inside, redacted from `Debug`).
        config: Box<yelb_db::PgConfig>,
        /// Pool size.
        pool_size: usize,
    },
}

/// Where page views are counted and live events travel.
#[derive(Debug, Clone)]
pub enum ViewBackend {
    /// In this process (embedded mode): one replica only.
    Memory,
    /// In Redis, shared by every replica.
    Redis {
        /// Connection URL (may hold a password: not logged).
        url: SecretString,
        /// Prefix for keys and channels.
        key_prefix: String,
    },
}

/// The app server's typed configuration.
#[derive(Debug, Clone)]
pub struct Config {
    /// Where to listen.
    pub listen: SocketAddr,
    /// The name this replica reports.
    pub hostname: String,
    /// Log format.
    pub log_format: LogFormat,
    /// Vote store.
    pub votes: VoteBackend,
    /// Page views and live events.
    pub views: ViewBackend,
    /// How long readiness fails before the listener closes.
    pub shutdown_delay: Duration,
    /// How long in-flight requests get before exit.
    pub shutdown_timeout: Duration,
    /// Heartbeat interval of idle event streams.
    pub events_heartbeat: Duration,
    /// Connection, stream and timeout limits of the HTTP server.
    pub limits: yelb_service::Limits,
    /// Stage control's token (`None`: off).
    pub admin_token: Option<SecretString>,
    /// What this replica runs and where (the spread panel shows it).
    pub placement: yelb_core::wire::Placement,
    /// The subcommand, if any.
    pub command: Option<Command>,
}

/// The original's `RACK_ENV` presets.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum RackEnv {
    Production,
    Development,
    Custom,
}

fn parse_rack_env(value: &str) -> Result<RackEnv, ConfigError> {
    match value {
        "production" | "test" => Ok(RackEnv::Production),
        "development" => Ok(RackEnv::Development),
        "custom" => Ok(RackEnv::Custom),
        _ => Err(ConfigError::new("RACK_ENV", value, "expected production, test, development or custom")),
    }
}

fn parse_secs(var: &'static str, value: &str) -> Result<Duration, ConfigError> {
    yelb_service::parse_secs(var, value, 0.0, 3600.0)
}

/// Why a stage token is too weak to put in front of a room of phones, if it
/// is: shorter than 16 characters, fewer than 8 different ones, spaces or
/// control characters, or a common word in it. `scripts/run.sh` and the
/// deployment scripts generate 128-bit ones (32 hex digits).
pub fn weak_token(token: &str) -> Option<&'static str> {
    const COMMON: [&str; 9] =
        ["password", "changeme", "secret", "letmein", "qwerty", "123456", "admin", "default", "yelb"];
    if token.len() < 16 || !token.chars().all(|c| c.is_ascii_graphic()) {
        return Some("expected at least 16 printable characters without spaces (try: openssl rand -hex 16)");
    }
    let distinct: std::collections::HashSet<char> = token.chars().collect();
    if distinct.len() < 8 {
        return Some("expected at least 8 different characters (try: openssl rand -hex 16)");
    }
    let lower = token.to_ascii_lowercase();
    if COMMON.iter().any(|word| lower.contains(word)) {
        return Some("a common word is in it, which makes it easy to guess (try: openssl rand -hex 16)");
    }
    None
}

fn non_empty(value: Option<&String>) -> Option<&str> {
    value.map(|s| s.trim()).filter(|s| !s.is_empty())
}

/// The orchestrator, from variables each one sets in its containers.
fn detect_orchestrator() -> &'static str {
    let set = |var: &str| std::env::var_os(var).is_some();
    if set("KUBERNETES_SERVICE_HOST") {
        "kubernetes"
    } else if set("NOMAD_ALLOC_ID") {
        "nomad"
    } else if set("ECS_CONTAINER_METADATA_URI_V4") {
        "ecs"
    } else if std::path::Path::new("/.dockerenv").exists()
        || std::path::Path::new("/run/.containerenv").exists()
    {
        "docker"
    } else {
        "local"
    }
}

fn placement(args: &Args) -> Result<yelb_core::wire::Placement, ConfigError> {
    let color = non_empty(args.color.as_ref());
    if let Some(c) = color
        && !yelb_core::wire::is_colour(c)
    {
        return Err(ConfigError::new("YELB_COLOR", c, "expected a CSS colour name or #rgb / #rrggbb"));
    }
    let text = |var: &'static str, value: Option<&String>, max: usize| match non_empty(value) {
        Some(v) if v.chars().count() > max || v.chars().any(char::is_control) => {
            Err(ConfigError::new(var, v, format!("expected at most {max} printable characters")))
        }
        v => Ok(v.map(str::to_owned)),
    };
    Ok(yelb_core::wire::Placement {
        version: env!("CARGO_PKG_VERSION").to_owned(),
        color: color.map(str::to_ascii_lowercase),
        message: text("YELB_MESSAGE", args.message.as_ref(), 80)?,
        node: text("YELB_NODE", args.node.as_ref(), 253)?,
        zone: text("YELB_ZONE", args.zone.as_ref(), 253)?,
        arch: std::env::consts::ARCH.to_owned(),
        orchestrator: match text("YELB_ORCHESTRATOR", args.orchestrator.as_ref(), 40)? {
            Some(o) => o,
            None => detect_orchestrator().to_owned(),
        },
    })
}

impl Config {
    /// Reads the process's flags and environment.
    pub fn from_env() -> Result<Config, ConfigError> {
        Config::from_args(Args::parse())
    }

    /// Builds the typed configuration from parsed arguments.
    pub fn from_args(args: Args) -> Result<Config, ConfigError> {
        let ip: IpAddr = args.listen_addr.parse().map_err(|_| {
            ConfigError::new(
                "YELB_LISTEN_ADDR",
                &args.listen_addr,
                "expected an IP address such as 0.0.0.0 or ::",
            )
        })?;
        let port: u16 = args.port.parse().map_err(|_| {
            ConfigError::new("YELB_PORT", &args.port, "expected a port number from 0 to 65535")
        })?;
        let hostname = match non_empty(args.hostname.as_ref()) {
            Some(h) => h.to_owned(),
            None => hostname::get()
                .ok()
                .and_then(|h| h.into_string().ok())
                .filter(|h| !h.is_empty())
                .unwrap_or_else(|| "unknown".to_owned()),
        };
        // The hostname goes into a response header on every answer.
        if !hostname.chars().all(|c| c.is_ascii_graphic()) || hostname.len() > 253 {
            return Err(ConfigError::new(
                "YELB_HOSTNAME",
                &hostname,
                "expected printable ASCII without spaces, at most 253 characters",
            ));
        }
        let log_format: LogFormat = args
            .log_format
            .parse()
            .map_err(|why| ConfigError::new("YELB_LOG_FORMAT", &args.log_format, why))?;
        let rack = non_empty(args.rack_env.as_ref()).map(parse_rack_env).transpose()?;
        let votes = Self::vote_backend(&args, rack)?;
        let views = Self::view_backend(&args, rack)?;
        Ok(Config {
            listen: SocketAddr::new(ip, port),
            hostname,
            log_format,
            votes,
            views,
            shutdown_delay: parse_secs("YELB_SHUTDOWN_DELAY", &args.shutdown_delay)?,
            shutdown_timeout: parse_secs("YELB_SHUTDOWN_TIMEOUT", &args.shutdown_timeout)?,
            command: args.command.clone(),
            placement: placement(&args)?,
            admin_token: match non_empty(args.admin_token.as_ref()) {
                None => None,
                Some(t) => match weak_token(t) {
                    Some(why) => return Err(ConfigError::new("YELB_ADMIN_TOKEN", "<hidden>", why)),
                    None => Some(SecretString::from(t.to_owned())),
                },
            },
            limits: {
                let max_connections =
                    yelb_service::parse_count("YELB_MAX_CONNECTIONS", &args.max_connections, 1, 1_000_000)?;
                let max_streams =
                    yelb_service::parse_count("YELB_MAX_STREAMS", &args.max_streams, 0, 1_000_000)?;
                yelb_service::Limits {
                    max_connections,
                    max_connections_per_client: yelb_service::parse_share(
                        "YELB_MAX_CONNECTIONS_PER_CLIENT",
                        &args.max_connections_per_client,
                        max_connections,
                    )?,
                    max_streams,
                    max_streams_per_client: yelb_service::parse_share(
                        "YELB_MAX_STREAMS_PER_CLIENT",
                        &args.max_streams_per_client,
                        max_streams,
                    )?,
                    trusted_proxies: yelb_service::TrustedProxies::parse(&args.trusted_proxies).map_err(
                        |why| ConfigError::new("YELB_TRUSTED_PROXIES", &args.trusted_proxies, why),
                    )?,
                    reserved_paths: &["/healthz", "/readyz", "/metrics"],
                    header_timeout: yelb_service::parse_secs(
                        "YELB_HEADER_TIMEOUT",
                        &args.header_timeout,
                        0.1,
                        3600.0,
                    )?,
                }
            },
            events_heartbeat: match parse_secs("YELB_EVENTS_HEARTBEAT", &args.events_heartbeat)? {
                d if d.is_zero() => {
                    return Err(ConfigError::new(
                        "YELB_EVENTS_HEARTBEAT",
                        &args.events_heartbeat,
                        "must be more than 0",
                    ));
                }
                d => d,
            },
        })
    }

    fn vote_backend(args: &Args, rack: Option<RackEnv>) -> Result<VoteBackend, ConfigError> {
        let pool_size: usize =
            args.db_pool_size.parse().ok().filter(|n| (2..=1000).contains(n)).ok_or_else(|| {
                ConfigError::new(
                    "YELB_DB_POOL_SIZE",
                    &args.db_pool_size,
                    "expected a whole number from 2 to 1000",
                )
            })?;
        if let Some(url) = non_empty(args.database_url.as_ref()) {
            let config: yelb_db::PgConfig = url.parse().map_err(|e| {
                // Never echo a URL that may hold a password.
                ConfigError::new("YELB_DATABASE_URL", "<hidden>", format!("not a Postgres URL: {e}"))
            })?;
            return Ok(VoteBackend::Postgres { config: Box::new(config), pool_size });
        }
        let endpoint = non_empty(args.yelb_db_server_endpoint.as_ref());
        let host = match (non_empty(args.db_host.as_ref()), rack) {
            (Some(h), _) => h.to_owned(),
            (None, Some(RackEnv::Production)) => "yelb-db".to_owned(),
            (None, Some(RackEnv::Development)) => "localhost".to_owned(),
            (None, Some(RackEnv::Custom)) => endpoint
                .ok_or_else(|| {
                    ConfigError::new(
                        "YELB_DB_SERVER_ENDPOINT",
                        "",
                        "RACK_ENV=custom needs the Postgres host here",
                    )
                })?
                .to_owned(),
            (None, None) => match endpoint {
                Some(h) => h.to_owned(),
                None => return Ok(VoteBackend::Memory),
            },
        };
        let port: u16 = args.db_port.parse().map_err(|_| {
            ConfigError::new("YELB_DB_PORT", &args.db_port, "expected a port number from 0 to 65535")
        })?;
        if args.db_name.trim().is_empty() {
            return Err(ConfigError::new("YELB_DB_NAME", &args.db_name, "must not be empty"));
        }
        let password = SecretString::from(args.db_password.clone());
        let mut config = yelb_db::PgConfig::new();
        config
            .host(&host)
            .port(port)
            .user(&args.db_user)
            .password(password.expose_secret())
            .dbname(args.db_name.trim());
        Ok(VoteBackend::Postgres { config: Box::new(config), pool_size })
    }

    fn view_backend(args: &Args, rack: Option<RackEnv>) -> Result<ViewBackend, ConfigError> {
        let key_prefix = args.redis_key_prefix.clone();
        if let Some(url) = non_empty(args.redis_url.as_ref()) {
            if !(url.starts_with("redis://") || url.starts_with("rediss://") || url.starts_with("unix://")) {
                return Err(ConfigError::new("YELB_REDIS_URL", "<hidden>", "expected a redis:// URL"));
            }
            return Ok(ViewBackend::Redis { url: SecretString::from(url.to_owned()), key_prefix });
        }
        let endpoint = non_empty(args.redis_server_endpoint.as_ref());
        let host = match rack {
            Some(RackEnv::Production) => "redis-server",
            Some(RackEnv::Development) => "localhost",
            Some(RackEnv::Custom) => endpoint.ok_or_else(|| {
                ConfigError::new("REDIS_SERVER_ENDPOINT", "", "RACK_ENV=custom needs the Redis host here")
            })?,
            None => match endpoint {
                Some(h) => h,
                None => return Ok(ViewBackend::Memory),
            },
        };
        if host.contains(['/', '@', ' ']) {
            return Err(ConfigError::new("REDIS_SERVER_ENDPOINT", host, "expected a host name or address"));
        }
        let host =
            if host.contains(':') && !host.starts_with('[') { format!("[{host}]") } else { host.to_owned() };
        Ok(ViewBackend::Redis { url: SecretString::from(format!("redis://{host}:6379/")), key_prefix })
    }

    /// One line saying where votes and page views live, for the start-up log.
    pub fn describe_backends(&self) -> String {
        let votes = match &self.votes {
            VoteBackend::Memory => "votes in memory (embedded mode: not shared, lost on exit)".to_owned(),
            VoteBackend::Postgres { config, .. } => {
                let hosts: Vec<String> = config.get_hosts().iter().map(|h| format!("{h:?}")).collect();
                format!("votes in Postgres {} db {}", hosts.join(","), config.get_dbname().unwrap_or("?"))
            }
        };
        let views = match &self.views {
            ViewBackend::Memory => "page views and live events in memory (embedded mode: one replica only)",
            ViewBackend::Redis { .. } => "page views and live events in Redis",
        };
        format!("{votes}; {views}")
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn weak_stage_tokens_are_refused_and_generated_ones_pass() {
        use super::weak_token;
        for weak in [
            "short-token",
            "aaaaaaaaaaaaaaaaaaaa",
            "abababababababababab",
            "my-yelb-token-2026x",
            "Password-for-2026x",
            "with space in it ok?",
        ] {
            assert!(weak_token(weak).is_some(), "{weak} passed");
        }
        assert_eq!(weak_token("0f3a9c2be71d4e8a6b5c0d9e8f7a6b5c"), None);
        assert_eq!(weak_token("browser-test-token"), None);
    }

    use super::*;

    fn args(env: &[(&str, &str)]) -> Args {
        // Flags stand in for the variables here: clap maps both to the same fields.
        let mut argv = vec!["yelb-appserver".to_owned()];
        for (k, v) in env {
            argv.push(format!("--{k}={v}"));
        }
        Args::try_parse_from(argv).expect("flags parse")
    }

    /// The Postgres host and Redis URL a configuration resolved to.
    fn endpoints(c: &Config) -> (String, String) {
        let VoteBackend::Postgres { config, .. } = &c.votes else { panic!("postgres expected") };
        let ViewBackend::Redis { url, .. } = &c.views else { panic!("redis expected") };
        (format!("{:?}", config.get_hosts()[0]), url.expose_secret().to_owned())
    }

    #[test]
    fn nothing_configured_means_the_embedded_mode() {
        let c = Config::from_args(args(&[])).unwrap();
        assert!(matches!(c.votes, VoteBackend::Memory));
        assert!(matches!(c.views, ViewBackend::Memory));
        assert_eq!(c.listen.port(), 4567);
    }

    #[test]
    fn rack_env_production_points_at_the_original_service_names() {
        let c = Config::from_args(args(&[("rack-env", "production")])).unwrap();
        assert_eq!(endpoints(&c), (r#"Tcp("yelb-db")"#.to_owned(), "redis://redis-server:6379/".to_owned()));
        let VoteBackend::Postgres { config, .. } = c.votes else { panic!("postgres expected") };
        assert_eq!(config.get_ports(), [5432]);
        assert_eq!(config.get_dbname(), Some("yelbdatabase"));
        assert_eq!(config.get_user(), Some("postgres"));
        assert_eq!(config.get_password(), Some(&b"postgres_password"[..]));
    }

    #[test]
    fn rack_env_custom_takes_the_two_endpoint_variables() {
        let c = Config::from_args(args(&[
            ("rack-env", "custom"),
            ("yelb-db-server-endpoint", "db.example"),
            ("redis-server-endpoint", "cache.example"),
        ]))
        .unwrap();
        assert_eq!(
            endpoints(&c),
            (r#"Tcp("db.example")"#.to_owned(), "redis://cache.example:6379/".to_owned())
        );
    }

    #[test]
    fn rack_env_custom_without_endpoints_names_the_missing_variable() {
        let err = Config::from_args(args(&[("rack-env", "custom")])).unwrap_err();
        assert_eq!(err.var, "YELB_DB_SERVER_ENDPOINT");
    }

    #[test]
    fn modern_variables_win_over_the_original_ones() {
        let c = Config::from_args(args(&[
            ("rack-env", "production"),
            ("db-host", "pg.internal"),
            ("redis-url", "redis://r.internal:6380/2"),
        ]))
        .unwrap();
        assert_eq!(
            endpoints(&c),
            (r#"Tcp("pg.internal")"#.to_owned(), "redis://r.internal:6380/2".to_owned())
        );
    }

    #[test]
    fn a_database_url_wins_over_everything() {
        let c = Config::from_args(args(&[
            ("db-host", "ignored"),
            ("database-url", "postgres://u:p@10.0.0.1:6543/votes"),
        ]))
        .unwrap();
        let VoteBackend::Postgres { config, .. } = c.votes else { panic!() };
        assert_eq!(config.get_ports(), [6543]);
        assert_eq!(config.get_dbname(), Some("votes"));
    }

    #[test]
    fn bad_values_name_their_variable() {
        for (flag, value, var) in [
            ("port", "http", "YELB_PORT"),
            ("port", "70000", "YELB_PORT"),
            ("listen-addr", "everywhere", "YELB_LISTEN_ADDR"),
            ("rack-env", "staging", "RACK_ENV"),
            ("log-format", "xml", "YELB_LOG_FORMAT"),
            ("db-pool-size", "1", "YELB_DB_POOL_SIZE"),
            ("shutdown-timeout", "-3", "YELB_SHUTDOWN_TIMEOUT"),
            ("events-heartbeat", "0", "YELB_EVENTS_HEARTBEAT"),
            ("redis-url", "http://x", "YELB_REDIS_URL"),
            ("database-url", "mysql:://nope nope", "YELB_DATABASE_URL"),
        ] {
            let err = Config::from_args(args(&[(flag, value)])).unwrap_err();
            assert_eq!(err.var, var, "for --{flag}={value}");
            assert!(err.to_string().contains(var));
        }
    }

    #[test]
    fn the_password_never_shows_in_debug_output() {
        let c = Config::from_args(args(&[("db-host", "h"), ("db-password", "s3cr3t")])).unwrap();
        assert!(!format!("{c:?}").contains("s3cr3t"));
    }

    #[test]
    fn the_hostname_override_is_used() {
        let c = Config::from_args(args(&[("hostname", "replica-7")])).unwrap();
        assert_eq!(c.hostname, "replica-7");
    }
}
