//! Benchmarks of rds-pg (`make bench`); each writes its figures to `docs/BENCHMARKS.md`.
//!
//! [`LatencyProxy`] puts a network's round-trip time between a client and the sandbox, so a
//! benchmark sees what users across an SSH tunnel feel: round trips, not CPU.
#![warn(missing_docs)]

use std::io::{Read, Write};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{mpsc, Arc};
use std::thread;
use std::time::{Duration, Instant};

/// A TCP forwarder on 127.0.0.1 that delays every chunk by half the round-trip time in each
/// direction. Chunks are delayed in parallel (a timestamped queue), as a network does; they are
/// not slowed one after another. It also counts round trips: on each connection, every time the
/// client speaks again after the server spoke (or first), which is what a client waiting for
/// answers pays one round-trip time for.
pub struct LatencyProxy {
    port: u16,
    round_trips: Arc<AtomicUsize>,
    connections: Arc<AtomicUsize>,
}

impl LatencyProxy {
    /// Starts forwarding a new local port to `127.0.0.1:target_port` with round-trip time `rtt`.
    ///
    /// # Panics
    /// When no local port can be bound.
    pub fn start(target_port: u16, rtt: Duration) -> LatencyProxy {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind a local port");
        let port = listener.local_addr().unwrap().port();
        let one_way = rtt / 2;
        let round_trips = Arc::new(AtomicUsize::new(0));
        let connections = Arc::new(AtomicUsize::new(0));
        let (trips, conns) = (round_trips.clone(), connections.clone());
        thread::spawn(move || {
            for client in listener.incoming().flatten() {
                let Ok(server) = TcpStream::connect(("127.0.0.1", target_port)) else {
                    continue;
                };
                conns.fetch_add(1, Ordering::SeqCst);
                let _ = client.set_nodelay(true);
                let _ = server.set_nodelay(true);
                // Whether the server spoke since the client last did (true: the next client
                // chunk starts a round trip).
                let server_spoke = Arc::new(AtomicBool::new(true));
                pipe(
                    client.try_clone().unwrap(),
                    server.try_clone().unwrap(),
                    one_way,
                    Turn::Client(server_spoke.clone(), trips.clone()),
                );
                pipe(server, client, one_way, Turn::Server(server_spoke));
            }
        });
        LatencyProxy {
            port,
            round_trips,
            connections,
        }
    }

    /// The local port clients connect to.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// Round trips clients made through the proxy so far (the TCP handshake not included).
    pub fn round_trips(&self) -> usize {
        self.round_trips.load(Ordering::SeqCst)
    }

    /// Connections made through the proxy so far.
    pub fn connections(&self) -> usize {
        self.connections.load(Ordering::SeqCst)
    }
}

/// Which side a pipe reads, for counting round trips.
enum Turn {
    /// The client: a chunk after the server spoke is a new round trip.
    Client(Arc<AtomicBool>, Arc<AtomicUsize>),
    /// The server: its chunks end the client's turn.
    Server(Arc<AtomicBool>),
}

fn pipe(mut from: TcpStream, mut to: TcpStream, delay: Duration, turn: Turn) {
    let (tx, rx) = mpsc::channel::<(Instant, Vec<u8>)>();
    thread::spawn(move || {
        let mut buf = vec![0u8; 64 * 1024];
        loop {
            match from.read(&mut buf) {
                Ok(0) | Err(_) => break,
                Ok(n) => {
                    match &turn {
                        Turn::Client(server_spoke, trips) => {
                            if server_spoke.swap(false, Ordering::SeqCst) {
                                trips.fetch_add(1, Ordering::SeqCst);
                            }
                        }
                        Turn::Server(server_spoke) => server_spoke.store(true, Ordering::SeqCst),
                    }
                    if tx
                        .send((Instant::now() + delay, buf[..n].to_vec()))
                        .is_err()
                    {
                        break;
                    }
                }
            }
        }
    });
    thread::spawn(move || {
        for (due, chunk) in rx {
            let now = Instant::now();
            if due > now {
                thread::sleep(due - now);
            }
            if to.write_all(&chunk).is_err() {
                break;
            }
        }
        let _ = to.shutdown(Shutdown::Write);
    });
}

/// The median of `samples` (sorted in place).
pub fn median(samples: &mut [Duration]) -> Duration {
    samples.sort();
    samples[samples.len() / 2]
}

/// Replaces the section headed `## {heading}` in `docs/BENCHMARKS.md` (creating the file or the
/// section) with `body`, keeping the other sections.
///
/// # Panics
/// When the file cannot be written.
pub fn write_section(heading: &str, body: &str) {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../docs/BENCHMARKS.md");
    let old = std::fs::read_to_string(&path).unwrap_or_else(|_| {
        "# Benchmarks\n\nWritten by `make bench`; each section by the benchmark named in it.\n"
            .to_owned()
    });
    let marker = format!("## {heading}\n");
    let mut out = String::new();
    let rest = match old.find(&marker) {
        Some(i) => {
            out.push_str(&old[..i]);
            let after = &old[i + marker.len()..];
            match after.find("\n## ") {
                Some(j) => &after[j + 1..],
                None => "",
            }
        }
        None => {
            out.push_str(old.trim_end());
            out.push_str("\n\n");
            ""
        }
    };
    out.push_str(&marker);
    out.push('\n');
    out.push_str(body.trim_end());
    out.push_str("\n\n");
    out.push_str(rest);
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    std::fs::write(&path, out.trim_end().to_owned() + "\n").unwrap();
}
