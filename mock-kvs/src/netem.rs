//! A Toxiproxy-style TCP proxy for network faults between a producer and its endpoint, the way
//! an appliance on a poor uplink sees KVS: added latency with jitter (order kept), a bandwidth
//! limit, resets of every open connection, and link cuts (connections dropped and new ones
//! refused for a while). Loopback use only: it listens where it is told and connects to one
//! upstream address.

use std::io::{Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::str::FromStr;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::mpsc;
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use rand::{Rng, SeedableRng};

/// Conditions applied to both directions of every connection.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Network {
    /// Added one-way delay.
    pub latency: Duration,
    /// Uniform jitter added to the delay, 0..=jitter (data is never reordered).
    pub jitter: Duration,
    /// Bytes per second each direction may carry (`None`: unlimited).
    pub bandwidth: Option<u64>,
}

/// A bad `--network` specification.
#[derive(Debug, thiserror::Error)]
#[error("network `{spec}`: {why} (e.g. latency=80ms,jitter=20ms,bandwidth=2mbit)")]
pub struct NetworkSpecError {
    spec: String,
    why: String,
}

/// A delay: `80ms`, `1.5s`; a bare number is seconds, as everywhere (`telescope_kvs::units`).
fn delay(v: &str) -> Option<Duration> {
    telescope_kvs::units::parse_duration_or_zero(v).ok()
}

fn bits_per_second(v: &str) -> Option<u64> {
    let v = v.trim().to_ascii_lowercase();
    let (num, scale) = if let Some(n) = v.strip_suffix("gbit") {
        (n, 1e9)
    } else if let Some(n) = v.strip_suffix("mbit") {
        (n, 1e6)
    } else if let Some(n) = v.strip_suffix("kbit") {
        (n, 1e3)
    } else if let Some(n) = v.strip_suffix("bit") {
        (n, 1.0)
    } else {
        return None;
    };
    let bits = num.parse::<f64>().ok()? * scale;
    (bits.is_finite() && bits >= 8.0).then_some(bits as u64)
}

impl FromStr for Network {
    type Err = NetworkSpecError;

    /// `latency=80ms,jitter=20ms,bandwidth=2mbit` (any subset; durations with a unit, a bare
    /// number being seconds; bandwidth in bit, kbit, mbit or gbit per second).
    fn from_str(spec: &str) -> Result<Self, Self::Err> {
        let bad = |why: String| NetworkSpecError {
            spec: spec.to_owned(),
            why,
        };
        let mut n = Network::default();
        for part in spec.split(',').filter(|p| !p.trim().is_empty()) {
            let (k, v) = part
                .split_once('=')
                .ok_or_else(|| bad(format!("`{part}` is not key=value")))?;
            match k.trim() {
                "latency" => {
                    n.latency = delay(v).ok_or_else(|| bad(format!("bad latency `{v}`")))?
                }
                "jitter" => n.jitter = delay(v).ok_or_else(|| bad(format!("bad jitter `{v}`")))?,
                "bandwidth" => {
                    n.bandwidth = Some(
                        bits_per_second(v).ok_or_else(|| bad(format!("bad bandwidth `{v}`")))? / 8,
                    )
                }
                other => return Err(bad(format!("unknown setting `{other}`"))),
            }
        }
        Ok(n)
    }
}

/// Counters of a proxy.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ProxyStats {
    pub connections: u64,
    pub refused: u64,
    pub resets: u64,
    pub bytes_up: u64,
    pub bytes_down: u64,
}

#[derive(Debug, Default)]
struct Shared {
    /// Both sockets of every connection, with a flag its pipes clear when it ends.
    open: Mutex<Vec<([TcpStream; 2], Arc<AtomicBool>)>>,
    cut_until: Mutex<Option<Instant>>,
    stop: AtomicBool,
    connections: AtomicU64,
    refused: AtomicU64,
    resets: AtomicU64,
    bytes_up: AtomicU64,
    bytes_down: AtomicU64,
}

impl Shared {
    fn cut(&self) -> bool {
        self.cut_until
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .is_some_and(|t| Instant::now() < t)
    }

    /// Reset every connection still open; returns how many.
    fn reset_all(&self) -> usize {
        let open = std::mem::take(&mut *self.open.lock().unwrap_or_else(|p| p.into_inner()));
        let mut reset = 0;
        for (sockets, alive) in &open {
            if alive.swap(false, Ordering::Relaxed) {
                reset += 1;
            }
            for s in sockets {
                let _ = s.shutdown(Shutdown::Both);
            }
        }
        self.resets.fetch_add(reset as u64, Ordering::Relaxed);
        reset
    }
}

/// A running proxy; stops (closing every connection) when dropped.
pub struct Proxy {
    addr: SocketAddr,
    shared: Arc<Shared>,
    thread: Option<JoinHandle<()>>,
}

impl Proxy {
    /// Serve `listener`, forwarding each connection to `upstream` under `network`; jitter is
    /// drawn from `seed`.
    pub fn start(
        listener: TcpListener,
        upstream: SocketAddr,
        network: Network,
        seed: u64,
    ) -> std::io::Result<Proxy> {
        let addr = listener.local_addr()?;
        listener.set_nonblocking(true)?;
        let shared: Arc<Shared> = Arc::default();
        let thread = {
            let shared = shared.clone();
            std::thread::Builder::new()
                .name("netem-accept".into())
                .spawn(move || accept_loop(listener, upstream, network, seed, shared))?
        };
        Ok(Proxy {
            addr,
            shared,
            thread: Some(thread),
        })
    }

    /// Where clients connect.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Reset every open connection (as a peer's RST would); returns how many.
    pub fn reset_all(&self) -> usize {
        self.shared.reset_all()
    }

    /// Cut the link for `duration`: open connections drop, new ones are refused.
    pub fn cut(&self, duration: Duration) {
        *self
            .shared
            .cut_until
            .lock()
            .unwrap_or_else(|p| p.into_inner()) = Some(Instant::now() + duration);
        self.shared.reset_all();
    }

    pub fn stats(&self) -> ProxyStats {
        let s = &self.shared;
        ProxyStats {
            connections: s.connections.load(Ordering::Relaxed),
            refused: s.refused.load(Ordering::Relaxed),
            resets: s.resets.load(Ordering::Relaxed),
            bytes_up: s.bytes_up.load(Ordering::Relaxed),
            bytes_down: s.bytes_down.load(Ordering::Relaxed),
        }
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        self.shared.stop.store(true, Ordering::Relaxed);
        self.shared.reset_all();
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

fn accept_loop(
    listener: TcpListener,
    upstream: SocketAddr,
    network: Network,
    seed: u64,
    shared: Arc<Shared>,
) {
    let mut n = 0u64;
    while !shared.stop.load(Ordering::Relaxed) {
        let client = match listener.accept() {
            Ok((c, _)) => c,
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
                std::thread::sleep(Duration::from_millis(5));
                continue;
            }
            Err(_) => continue,
        };
        if shared.cut() {
            shared.refused.fetch_add(1, Ordering::Relaxed);
            let _ = client.shutdown(Shutdown::Both);
            continue;
        }
        let Ok(server) = TcpStream::connect_timeout(&upstream, Duration::from_secs(5)) else {
            shared.refused.fetch_add(1, Ordering::Relaxed);
            continue;
        };
        let _ = client.set_nonblocking(false);
        let (Ok(client2), Ok(server2), Ok(client3), Ok(server3)) = (
            client.try_clone(),
            server.try_clone(),
            client.try_clone(),
            server.try_clone(),
        ) else {
            continue;
        };
        shared.connections.fetch_add(1, Ordering::Relaxed);
        n += 1;
        // Registered so that resets and cuts reach both sides; ended ones are pruned here.
        let alive = Arc::new(AtomicBool::new(true));
        {
            let mut open = shared.open.lock().unwrap_or_else(|p| p.into_inner());
            open.retain(|(_, a)| a.load(Ordering::Relaxed));
            open.push(([client3, server3], alive.clone()));
        }
        for (i, (from, to, up)) in [(client, server, true), (server2, client2, false)]
            .into_iter()
            .enumerate()
        {
            let (shared, alive) = (shared.clone(), alive.clone());
            let rng = rand::rngs::StdRng::seed_from_u64(seed ^ (n << 1) ^ i as u64);
            let _ = std::thread::Builder::new()
                .name("netem-pipe".into())
                .spawn(move || {
                    pipe(from, to, network, rng, up, shared);
                    alive.store(false, Ordering::Relaxed);
                });
        }
    }
}

/// Copy `from` to `to`, each chunk delayed by latency + jitter (never before the previous
/// chunk) and paced to the bandwidth.
fn pipe(
    mut from: TcpStream,
    mut to: TcpStream,
    network: Network,
    mut rng: rand::rngs::StdRng,
    up: bool,
    shared: Arc<Shared>,
) {
    let (tx, rx) = mpsc::channel::<(Instant, Vec<u8>)>();
    let writer = {
        let shared = shared.clone();
        std::thread::spawn(move || {
            for (due, chunk) in rx {
                let now = Instant::now();
                if due > now {
                    std::thread::sleep(due - now);
                }
                if to.write_all(&chunk).is_err() {
                    break;
                }
                let counter = if up {
                    &shared.bytes_up
                } else {
                    &shared.bytes_down
                };
                counter.fetch_add(chunk.len() as u64, Ordering::Relaxed);
                if let Some(bw) = network.bandwidth {
                    std::thread::sleep(Duration::from_secs_f64(chunk.len() as f64 / bw as f64));
                }
            }
            let _ = to.shutdown(Shutdown::Write);
        })
    };
    let mut last_due = Instant::now();
    let mut buf = vec![0u8; 16 * 1024];
    loop {
        let n = match from.read(&mut buf) {
            Ok(0) | Err(_) => break,
            Ok(n) => n,
        };
        let jitter = if network.jitter.is_zero() {
            Duration::ZERO
        } else {
            network.jitter.mul_f64(rng.random::<f64>())
        };
        let due = (Instant::now() + network.latency + jitter).max(last_due);
        last_due = due;
        if tx.send((due, buf[..n].to_vec())).is_err() {
            break;
        }
    }
    drop(tx);
    let _ = writer.join();
    let _ = from.shutdown(Shutdown::Both);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn specs_parse_and_bad_ones_say_why() {
        let n: Network = "latency=80ms,jitter=20ms,bandwidth=2mbit".parse().unwrap();
        assert_eq!(n.latency, Duration::from_millis(80));
        assert_eq!(n.jitter, Duration::from_millis(20));
        assert_eq!(n.bandwidth, Some(250_000));
        assert_eq!(
            "latency=1.5s".parse::<Network>().unwrap().latency,
            Duration::from_millis(1500)
        );
        // A bare number is seconds, as in every duration Telescope reads.
        assert_eq!(
            "latency=2".parse::<Network>().unwrap().latency,
            Duration::from_secs(2)
        );
        for bad in ["latency", "speed=1", "bandwidth=fast", "jitter=-3ms"] {
            let e = bad.parse::<Network>().unwrap_err().to_string();
            assert!(e.contains(bad.split('=').next().unwrap()), "{e}");
        }
    }

    fn echo_server() -> (SocketAddr, JoinHandle<()>) {
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = l.local_addr().unwrap();
        let t = std::thread::spawn(move || {
            // Serve a bounded number of connections, each echoing until closed.
            for s in l.incoming().take(3) {
                let Ok(mut s) = s else { continue };
                std::thread::spawn(move || {
                    let mut buf = [0u8; 4096];
                    while let Ok(n) = s.read(&mut buf) {
                        if n == 0 || s.write_all(&buf[..n]).is_err() {
                            break;
                        }
                    }
                });
            }
        });
        (addr, t)
    }

    #[test]
    fn data_passes_delayed_and_resets_and_cuts_end_connections() {
        let (upstream, _server) = echo_server();
        let network = Network {
            latency: Duration::from_millis(40),
            ..Default::default()
        };
        let proxy = Proxy::start(
            TcpListener::bind("127.0.0.1:0").unwrap(),
            upstream,
            network,
            7,
        )
        .unwrap();
        let mut c = TcpStream::connect(proxy.addr()).unwrap();
        c.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
        let sent = Instant::now();
        c.write_all(b"hello").unwrap();
        let mut got = [0u8; 5];
        c.read_exact(&mut got).unwrap();
        assert_eq!(&got, b"hello");
        assert!(
            sent.elapsed() >= Duration::from_millis(80),
            "both ways delayed"
        );
        assert!(proxy.reset_all() >= 1);
        let mut rest = [0u8; 1];
        assert!(
            matches!(c.read(&mut rest), Ok(0) | Err(_)),
            "reset ends the connection"
        );

        proxy.cut(Duration::from_secs(30));
        let mut refused = TcpStream::connect(proxy.addr()).unwrap();
        refused
            .set_read_timeout(Some(Duration::from_secs(10)))
            .unwrap();
        assert!(matches!(refused.read(&mut rest), Ok(0) | Err(_)));
        let s = proxy.stats();
        assert_eq!((s.connections, s.refused), (1, 1), "{s:?}");
        assert_eq!(s.bytes_up, 5);
    }
}
