//! The audience URL: where the QR code and the link send the phones.
//!
//! The rule, in order:
//! 1. `YELB_UI_PUBLIC_URL`, when set, always wins.
//! 2. The host the page was opened through (`X-Forwarded-Host`, else `Host`),
//!    when it is not a loopback name or address: the audience reaches the
//!    page the way the speaker did.
//! 3. Opened through a loopback host (`localhost`, `127.0.0.1`, `[::1]`):
//!    this machine's LAN address, the one of the interface the default route
//!    leaves by, with the port the page was reached on. The other non-loopback
//!    addresses are listed beside it (a laptop on Wi-Fi and a cable).
//! 4. No LAN address at all: the loopback URL, with a warning on screen that
//!    no phone can open it.
//!
//! Finding the default route's address sends nothing: a UDP socket is
//! "connected" to a documentation address (TEST-NET-3) and asked which local
//! address the kernel picked. The interface list comes from `if-addrs`.

use std::net::{IpAddr, Ipv4Addr, SocketAddr, UdpSocket};

/// Where the audience is sent, and what the presenter should know about it.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Audience {
    /// The URL in the QR code and the link.
    pub url: String,
    /// Other addresses of this machine the page may be reached on.
    pub others: Vec<String>,
    /// Said on the screen when the URL cannot work for phones.
    pub warning: Option<String>,
}

/// This machine's non-loopback addresses, the default route's first.
pub fn lan_addresses() -> Vec<IpAddr> {
    let mut found: Vec<IpAddr> = if_addrs::get_if_addrs()
        .unwrap_or_default()
        .into_iter()
        .map(|i| i.ip())
        .filter(|ip| usable(*ip))
        .collect();
    found.sort_by_key(|ip| (ip.is_ipv6(), *ip));
    found.dedup();
    if let Some(primary) = default_route_address()
        && let Some(at) = found.iter().position(|ip| *ip == primary)
    {
        found[..=at].rotate_right(1);
    }
    found
}

/// Whether phones could reach `ip`: not loopback, unspecified or link-local
/// (an IPv6 link-local address needs a zone a URL cannot carry).
fn usable(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => !v4.is_loopback() && !v4.is_unspecified() && !v4.is_link_local(),
        IpAddr::V6(v6) => !v6.is_loopback() && !v6.is_unspecified() && !v6.is_unicast_link_local(),
    }
}

/// The local address the default route would use. Nothing is sent.
fn default_route_address() -> Option<IpAddr> {
    let socket = UdpSocket::bind((Ipv4Addr::UNSPECIFIED, 0)).ok()?;
    socket.connect(SocketAddr::from(([203, 0, 113, 1], 9))).ok()?;
    Some(socket.local_addr().ok()?.ip()).filter(|ip| usable(*ip))
}

/// Splits `host[:port]` (IPv6 in brackets) into its host and port.
fn split_host(authority: &str) -> (&str, Option<&str>) {
    if let Some(rest) = authority.strip_prefix('[') {
        return match rest.split_once(']') {
            Some((host, tail)) => (host, tail.strip_prefix(':')),
            None => (authority, None),
        };
    }
    match authority.rsplit_once(':') {
        Some((host, port)) if !host.contains(':') => (host, Some(port)),
        _ => (authority, None),
    }
}

/// Whether a `Host` header's host is this machine's loopback.
pub fn is_loopback_host(authority: &str) -> bool {
    let (host, _) = split_host(authority);
    let host = host.trim_end_matches('.').to_ascii_lowercase();
    host == "localhost"
        || host.ends_with(".localhost")
        || host.parse::<IpAddr>().is_ok_and(|ip| ip.is_loopback() || ip.is_unspecified())
}

/// `ip` and `port` as a URL's authority.
fn authority(ip: IpAddr, port: Option<&str>) -> String {
    let host = match ip {
        IpAddr::V6(v6) => format!("[{v6}]"),
        IpAddr::V4(v4) => v4.to_string(),
    };
    match port {
        Some(port) => format!("{host}:{port}"),
        None => host,
    }
}

/// The audience URL for a page opened on this machine at `localhost:port`
/// (what `yelb-ui audience-url` prints), and its warning if any.
pub fn for_local_port(configured: Option<&str>, port: u16) -> Audience {
    let host = format!("localhost:{port}");
    choose(configured, "http", Some(&host), &lan_addresses())
}

/// Applies the rule (module docs) to what is known: the configured URL, the
/// scheme and host the page was opened through (already checked to be a
/// plain `host[:port]`, or `None`), and this machine's LAN addresses.
pub fn choose(configured: Option<&str>, proto: &str, host: Option<&str>, lan: &[IpAddr]) -> Audience {
    if let Some(url) = configured {
        return Audience { url: url.to_owned(), ..Audience::default() };
    }
    let Some(host) = host else {
        return Audience { url: "/".to_owned(), ..Audience::default() };
    };
    if !is_loopback_host(host) {
        return Audience { url: format!("{proto}://{host}/"), ..Audience::default() };
    }
    let (_, port) = split_host(host);
    match lan.split_first() {
        Some((first, rest)) => Audience {
            url: format!("{proto}://{}/", authority(*first, port)),
            others: rest.iter().map(|ip| format!("{proto}://{}/", authority(*ip, port))).collect(),
            warning: None,
        },
        None => Audience {
            url: format!("{proto}://{host}/"),
            others: Vec::new(),
            warning: Some(
                "This address is this computer's own (loopback): phones cannot open it. \
                 Join a network, or set YELB_UI_PUBLIC_URL."
                    .to_owned(),
            ),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn loopback_hosts_are_recognised_with_or_without_a_port() {
        for host in [
            "localhost",
            "localhost:8080",
            "LOCALHOST.",
            "127.0.0.1:8080",
            "127.1.2.3",
            "[::1]:8080",
            "[::1]",
            "0.0.0.0:80",
            "app.localhost",
        ] {
            assert!(is_loopback_host(host), "{host}");
        }
        for host in
            ["yelb.example", "192.168.1.20:8080", "[2001:db8::1]:8080", "10.0.0.1", "localhost.example"]
        {
            assert!(!is_loopback_host(host), "{host}");
        }
    }

    #[test]
    fn the_configured_url_always_wins() {
        let a = choose(Some("https://vote.example/"), "http", Some("localhost:8080"), &[ip("192.168.1.20")]);
        assert_eq!(a, Audience { url: "https://vote.example/".into(), ..Audience::default() });
    }

    #[test]
    fn a_host_phones_can_reach_is_kept() {
        let a = choose(None, "https", Some("yelb.example"), &[ip("192.168.1.20")]);
        assert_eq!(a.url, "https://yelb.example/");
        assert!(a.warning.is_none() && a.others.is_empty());
    }

    #[test]
    fn through_loopback_the_lan_address_is_used_with_the_port_the_page_was_reached_on() {
        let lan = [ip("192.168.1.20"), ip("10.0.0.5"), ip("2001:db8::7")];
        let a = choose(None, "http", Some("localhost:8080"), &lan);
        assert_eq!(a.url, "http://192.168.1.20:8080/");
        assert_eq!(a.others, vec!["http://10.0.0.5:8080/", "http://[2001:db8::7]:8080/"]);
        assert!(a.warning.is_none());
        assert_eq!(
            choose(None, "http", Some("127.0.0.1"), &lan).url,
            "http://192.168.1.20/",
            "no port: none"
        );
        assert_eq!(
            choose(None, "http", Some("[::1]:9000"), &[ip("2001:db8::7")]).url,
            "http://[2001:db8::7]:9000/"
        );
    }

    #[test]
    fn without_a_lan_address_the_loopback_url_comes_with_a_warning() {
        let a = choose(None, "http", Some("127.0.0.1:8080"), &[]);
        assert_eq!(a.url, "http://127.0.0.1:8080/");
        assert!(a.warning.unwrap().contains("phones cannot open it"));
    }

    #[test]
    fn no_host_at_all_gives_the_relative_url() {
        assert_eq!(choose(None, "http", None, &[ip("192.168.1.20")]).url, "/");
    }

    #[test]
    fn this_machines_lan_addresses_are_never_loopback_and_the_default_route_comes_first() {
        let found = lan_addresses();
        assert!(found.iter().all(|ip| usable(*ip)), "{found:?}");
        if let Some(primary) = default_route_address() {
            assert_eq!(found.first(), Some(&primary), "{found:?}");
        }
    }
}
