//! [`Balancer`]: a round-robin TCP forwarder on 127.0.0.1, standing in for
//! what sits in front of app-server replicas in a cluster (a Kubernetes
//! Service, Swarm's DNS round robin): it balances *connections*, so a test
//! can see whether a client's requests spread or stick to one replica.

use std::io::{ErrorKind, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::thread::JoinHandle;
use std::time::Duration;

/// Forwards each accepted connection to the next backend in turn. Stops
/// accepting when dropped; connections already open run to their end.
#[derive(Debug)]
pub struct Balancer {
    addr: SocketAddr,
    connections: Arc<AtomicUsize>,
    stop: Arc<AtomicBool>,
    accept: Option<JoinHandle<()>>,
}

impl Balancer {
    /// Listens on a free port of 127.0.0.1 and forwards to `backends` round robin.
    pub fn start(backends: Vec<SocketAddr>) -> Balancer {
        assert!(!backends.is_empty(), "a balancer needs at least one backend");
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind 127.0.0.1:0");
        listener.set_nonblocking(true).expect("non-blocking listener");
        let addr = listener.local_addr().expect("local addr");
        let stop = Arc::new(AtomicBool::new(false));
        let connections = Arc::new(AtomicUsize::new(0));
        let (stop_flag, count) = (stop.clone(), connections.clone());
        let accept = std::thread::spawn(move || {
            while !stop_flag.load(Ordering::Relaxed) {
                match listener.accept() {
                    Ok((client, _)) => {
                        let n = count.fetch_add(1, Ordering::Relaxed);
                        let backend = backends[n % backends.len()];
                        std::thread::spawn(move || pipe(client, backend));
                    }
                    Err(e) if e.kind() == ErrorKind::WouldBlock => {
                        std::thread::sleep(Duration::from_millis(2))
                    }
                    Err(_) => std::thread::sleep(Duration::from_millis(20)),
                }
            }
        });
        Balancer { addr, connections, stop, accept: Some(accept) }
    }

    /// Where clients connect.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Connections accepted so far.
    pub fn connections(&self) -> usize {
        self.connections.load(Ordering::Relaxed)
    }
}

impl Drop for Balancer {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(accept) = self.accept.take() {
            let _ = accept.join();
        }
    }
}

/// Copies bytes both ways until either side closes.
fn pipe(client: TcpStream, backend: SocketAddr) {
    let Ok(upstream) = TcpStream::connect_timeout(&backend, Duration::from_secs(2)) else {
        return; // The client sees its connection closed, as with a dead replica.
    };
    let _ = client.set_nonblocking(false);
    let (Ok(client2), Ok(upstream2)) = (client.try_clone(), upstream.try_clone()) else { return };
    let up = std::thread::spawn(move || copy(client, upstream));
    copy(upstream2, client2);
    let _ = up.join();
}

fn copy(mut from: TcpStream, mut to: TcpStream) {
    let mut buf = [0u8; 16 * 1024];
    loop {
        match from.read(&mut buf) {
            Ok(0) | Err(_) => break,
            Ok(n) => {
                if to.write_all(&buf[..n]).is_err() {
                    break;
                }
            }
        }
    }
    let _ = to.shutdown(Shutdown::Write);
    let _ = from.shutdown(Shutdown::Read);
}
