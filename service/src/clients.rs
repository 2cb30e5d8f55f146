//! Who a client is, and how much of a server one client may hold.
//!
//! A conference Wi-Fi puts hundreds of phones behind one address, and one
//! hostile phone can open thousands of sockets. So the caps that protect a
//! server as a whole ([`crate::Limits`]) come with a share per client that
//! no single address can exceed, sized so a venue's NAT still fits:
//!
//! - [`ClientKey`]: the unit a limit counts: an IPv4 address, or an IPv6
//!   /64 (one device can take any address in its /64 at will).
//! - [`TrustedProxies`]: peers (an ingress, a load balancer) that speak for
//!   many clients. A connection from one is not counted per client, and a
//!   request from one is attributed to the last address in its
//!   `X-Forwarded-For` that is not itself a trusted proxy ([`client_of`]).
//! - [`PerClient`]: a count per key with a ceiling; a [`ClientHold`] gives
//!   its unit back when dropped.
//! - [`Peer`]: the connection's remote address, which [`crate::serve`] puts
//!   in every request's extensions.

use std::collections::HashMap;
use std::net::{IpAddr, Ipv6Addr, SocketAddr};
use std::sync::{Arc, Mutex};

use axum::http::HeaderMap;
use ipnet::IpNet;

/// The remote address of the connection a request came on (a request
/// extension set by [`crate::serve`]; absent in in-process tests).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Peer(pub SocketAddr);

/// What one client's share is counted against.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct ClientKey(IpAddr);

impl ClientKey {
    /// The key of an address: itself for IPv4 (an IPv4-mapped IPv6 address
    /// counts as its IPv4 one), its /64 for IPv6.
    pub fn of(ip: IpAddr) -> Self {
        match ip {
            IpAddr::V4(v4) => ClientKey(IpAddr::V4(v4)),
            IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
                Some(v4) => ClientKey(IpAddr::V4(v4)),
                None => {
                    let bits = u128::from(v6) & !((1u128 << 64) - 1);
                    ClientKey(IpAddr::V6(Ipv6Addr::from(bits)))
                }
            },
        }
    }
}

impl std::fmt::Display for ClientKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.0 {
            IpAddr::V4(v4) => write!(f, "{v4}"),
            IpAddr::V6(v6) => write!(f, "{v6}/64"),
        }
    }
}

/// The peers allowed to name the client they forward for. Empty by default:
/// then `X-Forwarded-For` is ignored and every peer is its own client.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TrustedProxies(Vec<IpNet>);

impl TrustedProxies {
    /// Parses a comma-separated list of addresses and CIDR blocks
    /// (`10.0.0.0/8, 192.168.1.7, fd00::/8`); empty means none.
    pub fn parse(list: &str) -> Result<Self, String> {
        let mut nets = Vec::new();
        for item in list.split(',').map(str::trim).filter(|s| !s.is_empty()) {
            let net = match item.parse::<IpNet>() {
                Ok(net) => net,
                Err(_) => match item.parse::<IpAddr>() {
                    Ok(ip) => IpNet::from(ip),
                    Err(_) => return Err(format!("{item:?} is neither an address nor a CIDR block")),
                },
            };
            nets.push(net);
        }
        Ok(TrustedProxies(nets))
    }

    /// Whether `ip` is one of them.
    pub fn contains(&self, ip: IpAddr) -> bool {
        let ip = ip.to_canonical();
        self.0.iter().any(|net| net.contains(&ip))
    }

    /// Whether there are none.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

/// The client a request is from: the peer, unless the peer is a trusted
/// proxy; then the right-most `X-Forwarded-For` address that is not a
/// trusted proxy (addresses to its left are the client's own claims, which
/// anyone can forge). A request with no peer (an in-process test) is from
/// the unspecified address.
pub fn client_of(peer: Option<Peer>, headers: &HeaderMap, trusted: &TrustedProxies) -> IpAddr {
    let Some(Peer(peer)) = peer else {
        return IpAddr::V4(std::net::Ipv4Addr::UNSPECIFIED);
    };
    let peer = peer.ip().to_canonical();
    if !trusted.contains(peer) {
        return peer;
    }
    let mut hops: Vec<IpAddr> = Vec::new();
    for value in headers.get_all("x-forwarded-for") {
        let Ok(value) = value.to_str() else { return peer };
        for hop in value.split(',').map(str::trim) {
            match hop.parse::<IpAddr>() {
                Ok(ip) => hops.push(ip.to_canonical()),
                // A garbled chain: trust none of it.
                Err(_) => return peer,
            }
        }
    }
    hops.into_iter().rev().find(|ip| !trusted.contains(*ip)).unwrap_or(peer)
}

/// A count per client with a ceiling each. Cloning shares the counts.
#[derive(Debug, Clone)]
pub struct PerClient {
    counts: Arc<Mutex<HashMap<ClientKey, usize>>>,
    max: usize,
}

/// One unit of a client's share, given back when dropped.
#[derive(Debug)]
pub struct ClientHold {
    counts: Arc<Mutex<HashMap<ClientKey, usize>>>,
    key: ClientKey,
}

impl PerClient {
    /// At most `max` units per client.
    pub fn new(max: usize) -> Self {
        PerClient { counts: Arc::default(), max }
    }

    /// The ceiling per client.
    pub fn max(&self) -> usize {
        self.max
    }

    /// One more unit for `ip`'s client, or `None` when it holds `max`.
    pub fn try_hold(&self, ip: IpAddr) -> Option<ClientHold> {
        let key = ClientKey::of(ip);
        let mut counts = self.counts.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        let count = counts.entry(key).or_insert(0);
        if *count >= self.max {
            return None;
        }
        *count += 1;
        Some(ClientHold { counts: self.counts.clone(), key })
    }

    /// Units `ip`'s client holds now.
    pub fn held_by(&self, ip: IpAddr) -> usize {
        let counts = self.counts.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        counts.get(&ClientKey::of(ip)).copied().unwrap_or(0)
    }

    /// Clients holding at least one unit.
    pub fn clients(&self) -> usize {
        self.counts.lock().unwrap_or_else(std::sync::PoisonError::into_inner).len()
    }
}

impl Drop for ClientHold {
    fn drop(&mut self) {
        let mut counts = self.counts.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        if let Some(count) = counts.get_mut(&self.key) {
            *count -= 1;
            if *count == 0 {
                // The map holds only clients with something open.
                counts.remove(&self.key);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn an_ipv6_client_is_its_64_and_a_mapped_address_is_ipv4() {
        assert_eq!(ClientKey::of(ip("2001:db8:1:2::1")), ClientKey::of(ip("2001:db8:1:2:ffff::9")));
        assert_ne!(ClientKey::of(ip("2001:db8:1:2::1")), ClientKey::of(ip("2001:db8:1:3::1")));
        assert_eq!(ClientKey::of(ip("::ffff:10.1.2.3")), ClientKey::of(ip("10.1.2.3")));
        assert_eq!(ClientKey::of(ip("2001:db8:1:2::1")).to_string(), "2001:db8:1:2::/64");
    }

    #[test]
    fn a_client_holds_at_most_its_share_and_gets_it_back() {
        let per = PerClient::new(2);
        let a = per.try_hold(ip("10.0.0.1")).unwrap();
        let _b = per.try_hold(ip("10.0.0.1")).unwrap();
        assert!(per.try_hold(ip("10.0.0.1")).is_none());
        assert!(per.try_hold(ip("10.0.0.2")).is_some(), "another client has its own share");
        drop(a);
        assert_eq!(per.held_by(ip("10.0.0.1")), 1);
        assert!(per.try_hold(ip("10.0.0.1")).is_some());
    }

    #[test]
    fn forwarded_for_counts_only_from_a_trusted_proxy() {
        let trusted = TrustedProxies::parse("10.0.0.0/8, 192.168.1.7").unwrap();
        let mut headers = HeaderMap::new();
        headers.insert("x-forwarded-for", "6.6.6.6, 203.0.113.5, 10.1.1.1".parse().unwrap());
        let from_with =
            |addr: &str, headers: &HeaderMap| client_of(Some(Peer(addr.parse().unwrap())), headers, &trusted);
        // The right-most untrusted hop: 6.6.6.6 is the client's own claim.
        assert_eq!(from_with("10.2.3.4:5000", &headers), ip("203.0.113.5"));
        assert_eq!(from_with("192.168.1.7:5000", &headers), ip("203.0.113.5"));
        // An untrusted peer is the client, whatever it claims.
        assert_eq!(from_with("198.51.100.1:5000", &headers), ip("198.51.100.1"));
        headers.insert("x-forwarded-for", "not-an-address, 203.0.113.5".parse().unwrap());
        assert_eq!(from_with("10.2.3.4:5000", &headers), ip("10.2.3.4"), "a garbled chain names the proxy");
        assert_eq!(
            client_of(Some(Peer("10.2.3.4:1".parse().unwrap())), &HeaderMap::new(), &trusted),
            ip("10.2.3.4")
        );
        assert!(TrustedProxies::parse("10.0.0.0/33").is_err());
        assert!(TrustedProxies::parse("").unwrap().is_empty());
    }
}
