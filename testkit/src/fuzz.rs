//! A raw-socket HTTP fuzzer: requests no well-behaved client would send
//! (invented methods, huge or broken heads, bad chunking, NUL bytes, random
//! bytes), each on its own connection, for the hardening tests of both
//! servers. Deterministic for a seed, bounded in count, and loopback only.
//!
//! [`run`] sends the cases and returns a [`Report`]: how each ended (a
//! status class, closed without an answer, or no answer in time). The tests
//! then assert what must hold (no 5xx but the documented ones, no hang, the
//! server still healthy, its memory and `/metrics` bounded) and print it.

use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::net::{Shutdown, SocketAddr, TcpStream};
use std::time::{Duration, Instant};

/// How one case ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Outcome {
    /// An HTTP status.
    Status(u16),
    /// The server closed the connection without an answer (a fair reply to
    /// bytes that are not HTTP).
    Closed,
    /// Nothing within the read timeout: the server held the connection.
    Hung,
}

/// What a run saw.
#[derive(Debug, Default)]
pub struct Report {
    /// Cases sent.
    pub cases: usize,
    /// Outcomes and how often each happened.
    pub outcomes: BTreeMap<Outcome, usize>,
    /// One example request (its first 120 bytes) per outcome, to show in a failure.
    pub examples: BTreeMap<Outcome, String>,
    /// Wall time of the run.
    pub elapsed: Duration,
}

impl Report {
    /// Cases that ended in a 5xx other than those in `allowed`, or hung.
    pub fn failures(&self, allowed: &[u16]) -> Vec<(Outcome, usize, &str)> {
        self.outcomes
            .iter()
            .filter(|(o, _)| match o {
                Outcome::Status(s) => *s >= 500 && !allowed.contains(s),
                Outcome::Closed => false,
                Outcome::Hung => true,
            })
            .map(|(o, n)| (*o, *n, self.examples.get(o).map_or("", String::as_str)))
            .collect()
    }

    /// One line for logs and BENCHMARKS.md.
    pub fn summary(&self) -> String {
        let parts: Vec<String> = self
            .outcomes
            .iter()
            .map(|(o, n)| match o {
                Outcome::Status(s) => format!("{s}: {n}"),
                Outcome::Closed => format!("closed: {n}"),
                Outcome::Hung => format!("hung: {n}"),
            })
            .collect();
        let rate = self.cases as f64 / self.elapsed.as_secs_f64().max(0.001);
        format!(
            "{} cases in {:.1} s ({rate:.0}/s): {}",
            self.cases,
            self.elapsed.as_secs_f64(),
            parts.join(", ")
        )
    }
}

/// A small, seedable xorshift generator: the cases must be the same on
/// every run so a failure can be replayed.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        self.0 = x;
        x
    }
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n.max(1) as u64) as usize
    }
    fn pick<'a>(&mut self, items: &[&'a str]) -> &'a str {
        items[self.below(items.len())]
    }
    fn bytes(&mut self, n: usize) -> Vec<u8> {
        (0..n).map(|_| self.next() as u8).collect()
    }
}

const METHODS: [&str; 12] =
    ["GET", "POST", "HEAD", "PUT", "DELETE", "OPTIONS", "PATCH", "TRACE", "CONNECT", "BREW", "get", "G\tET"];

/// Builds case `i` of the run seeded with `seed`, given paths worth aiming at.
fn case(rng: &mut Rng, paths: &[&str]) -> Vec<u8> {
    let kind = rng.below(10);
    let path = match rng.below(6) {
        0 => format!("/{}", "a".repeat(1 + rng.below(9000))),
        1 => format!("{}%00%ff%2e%2e/{}", rng.pick(paths), rng.below(1000)),
        2 => format!("//{}?{}", rng.pick(paths).trim_start_matches('/'), "q=".repeat(rng.below(500))),
        _ => rng.pick(paths).to_owned(),
    };
    let method =
        if rng.below(8) == 0 { "X".repeat(1 + rng.below(20_000)) } else { rng.pick(&METHODS).to_owned() };
    let version = rng.pick(&["HTTP/1.1", "HTTP/1.1", "HTTP/1.0", "HTTP/2.0", "HTTP/9.9", ""]);
    let mut out = Vec::new();
    match kind {
        // Random bytes: not HTTP at all.
        0 => {
            let n = 1 + rng.below(4000);
            out = rng.bytes(n);
        }
        // The HTTP/2 preface on an HTTP/1 port.
        1 => out.extend_from_slice(b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"),
        // A broken chunked body.
        2 => {
            out.extend(format!("POST {path} HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n").bytes());
            out.extend(
                rng.pick(&["zz\r\n{}\r\n0\r\n\r\n", "5\r\n{\"re\r\n", "ffffffffffffffff\r\n", "3\r\nabc"])
                    .bytes(),
            );
        }
        // Conflicting or lying lengths.
        3 => {
            let len = rng.pick(&["10\r\nContent-Length: 3", "-1", "99999999999999999999", "5", "abc"]);
            out.extend(
                format!("POST {path} HTTP/1.1\r\nHost: x\r\nContent-Length: {len}\r\n\r\n{{}}").bytes(),
            );
        }
        // A huge header, or very many.
        4 => {
            out.extend(format!("GET {path} HTTP/1.1\r\nHost: x\r\n").bytes());
            if rng.below(2) == 0 {
                out.extend(format!("X-Big: {}\r\n", "b".repeat(70_000)).bytes());
            } else {
                for i in 0..(50 + rng.below(300)) {
                    out.extend(format!("X-H{i}: {i}\r\n").bytes());
                }
            }
            out.extend(b"\r\n");
        }
        // Bytes that are not allowed in a head.
        5 => {
            out.extend(format!("GET {path} HTTP/1.1\r\nHost: x\r\nX-Bad: a").bytes());
            out.extend_from_slice(b"\0b\x7f\xff\r\n\r\n");
        }
        // Junk JSON bodies on the vote routes.
        6 => {
            let body = rng.pick(&[
                "{",
                "[]",
                "{\"restaurant\":1}",
                "{\"restaurant\":\"\\u0000\"}",
                "null",
                "\u{feff}{}",
            ]);
            out.extend(
                format!(
                    "POST /api/v1/votes HTTP/1.1\r\nHost: x\r\nContent-Type: {}\r\nContent-Length: {}\r\n\r\n{body}",
                    rng.pick(&["application/json", "text/plain", "application/json; charset=latin1", ""]),
                    body.len()
                )
                .bytes(),
            );
        }
        // A plausible request with an odd method, version or path.
        _ => out.extend(format!("{method} {path} {version}\r\nHost: x\r\nConnection: close\r\n\r\n").bytes()),
    }
    out
}

/// Sends `n` cases to `addr`, each on a fresh connection whose write side
/// is then closed (so a server waiting for more sees the end), and waits at
/// most `read_timeout` for the answer to begin.
pub fn run(addr: SocketAddr, paths: &[&str], n: usize, seed: u64, read_timeout: Duration) -> Report {
    let mut rng = Rng(seed | 1);
    let mut report = Report::default();
    let started = Instant::now();
    for _ in 0..n {
        let request = case(&mut rng, paths);
        let outcome = send(addr, &request, read_timeout);
        report.cases += 1;
        *report.outcomes.entry(outcome).or_default() += 1;
        report
            .examples
            .entry(outcome)
            .or_insert_with(|| String::from_utf8_lossy(&request[..request.len().min(120)]).into_owned());
    }
    report.elapsed = started.elapsed();
    report
}

fn send(addr: SocketAddr, request: &[u8], read_timeout: Duration) -> Outcome {
    let Ok(mut stream) = TcpStream::connect_timeout(&addr, Duration::from_secs(2)) else {
        return Outcome::Closed;
    };
    let _ = stream.set_read_timeout(Some(read_timeout));
    let _ = stream.set_write_timeout(Some(read_timeout));
    // A server may answer and close before reading everything: a failed
    // write is not a failure of the server.
    let _ = stream.write_all(request);
    let _ = stream.shutdown(Shutdown::Write);
    let mut head = [0u8; 32];
    let mut got = 0;
    loop {
        match stream.read(&mut head[got..]) {
            Ok(0) => break,
            Ok(n) => {
                got += n;
                if got >= 12 {
                    break;
                }
            }
            Err(e) if matches!(e.kind(), std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut) => {
                return if got == 0 { Outcome::Hung } else { Outcome::Closed };
            }
            Err(_) => break,
        }
    }
    let text = String::from_utf8_lossy(&head[..got]);
    match text.strip_prefix("HTTP/1.").and_then(|rest| rest.get(2..5)).and_then(|s| s.parse().ok()) {
        Some(status) => Outcome::Status(status),
        None => Outcome::Closed,
    }
}

/// The resident memory of process `pid`, in KiB (Linux `/proc`).
pub fn rss_kib(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let line = status.lines().find(|l| l.starts_with("VmRSS:"))?;
    line.split_whitespace().nth(1)?.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_same_seed_gives_the_same_cases() {
        let paths = ["/api/getvotes"];
        let a: Vec<Vec<u8>> = (0..20).scan(Rng(7), |r, _| Some(case(r, &paths))).collect();
        let b: Vec<Vec<u8>> = (0..20).scan(Rng(7), |r, _| Some(case(r, &paths))).collect();
        assert_eq!(a, b);
        let c: Vec<Vec<u8>> = (0..20).scan(Rng(8), |r, _| Some(case(r, &paths))).collect();
        assert_ne!(a, c);
    }

    #[test]
    fn a_report_flags_hangs_and_unlisted_5xx_only() {
        let mut report = Report::default();
        for o in [Outcome::Status(200), Outcome::Status(400), Outcome::Status(503), Outcome::Closed] {
            report.outcomes.insert(o, 1);
        }
        assert!(report.failures(&[503]).is_empty());
        report.outcomes.insert(Outcome::Status(500), 2);
        report.outcomes.insert(Outcome::Hung, 1);
        let failed: Vec<Outcome> = report.failures(&[503]).into_iter().map(|f| f.0).collect();
        assert_eq!(failed, [Outcome::Status(500), Outcome::Hung]);
    }
}
