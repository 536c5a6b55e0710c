//! A TCP proxy that adds network latency, for benchmarks against an object store on loopback
//! that should behave like one in a cloud region away.
//!
//!     latency-proxy LISTEN_ADDR UPSTREAM_ADDR RTT_MS
//!
//! Each byte is held for half the round trip in each direction, so a request and its answer
//! take one round trip more than on loopback, as with `tc netem delay` on both ends of a
//! link (netem is not in this machine's kernel). A new connection's first bytes also wait one
//! round trip, the TCP handshake a real network would cost. Bandwidth is not limited and
//! order is kept: bytes go out in the order they came in, each at its arrival time plus the
//! delay.
//!
//! Threads, not async: a benchmark opens tens of connections, each with two directions, and
//! each direction is one thread reading and one writing.

use std::io::{Read, Write};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::sync::mpsc;
use std::thread;
use std::time::{Duration, Instant};

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let [_, listen, upstream, rtt] = args.as_slice() else {
        eprintln!("usage: latency-proxy LISTEN_ADDR UPSTREAM_ADDR RTT_MS");
        std::process::exit(2);
    };
    let rtt: u64 = rtt.trim_end_matches("ms").parse().unwrap_or_else(|_| {
        eprintln!("latency-proxy: RTT_MS {rtt:?} is not a number of milliseconds");
        std::process::exit(2);
    });
    let rtt = Duration::from_millis(rtt);
    let listener = TcpListener::bind(listen).unwrap_or_else(|e| {
        eprintln!("latency-proxy: cannot listen on {listen}: {e}");
        std::process::exit(1);
    });
    for client in listener.incoming() {
        let Ok(client) = client else { continue };
        let upstream = upstream.clone();
        thread::spawn(move || {
            if let Err(e) = serve(client, &upstream, rtt) {
                eprintln!("latency-proxy: connection to {upstream}: {e}");
            }
        });
    }
}

/// Connects to the upstream and relays both directions until both are closed.
fn serve(client: TcpStream, upstream: &str, rtt: Duration) -> std::io::Result<()> {
    let accepted = Instant::now();
    let server = TcpStream::connect(upstream)?;
    client.set_nodelay(true)?;
    server.set_nodelay(true)?;
    let half = rtt / 2;
    // The handshake: the client's first bytes reach the server one round trip late.
    let up = relay(
        client.try_clone()?,
        server.try_clone()?,
        half,
        Some(accepted + rtt),
    );
    let down = relay(server, client, half, None);
    let _ = up.join();
    let _ = down.join();
    Ok(())
}

/// Copies `from` to `to`, each chunk sent `delay` after it was read (and not before
/// `not_before`); closes `to`'s write side at the end.
fn relay(
    mut from: TcpStream,
    mut to: TcpStream,
    delay: Duration,
    not_before: Option<Instant>,
) -> thread::JoinHandle<()> {
    let (tx, rx) = mpsc::channel::<(Instant, Vec<u8>)>();
    let writer = thread::spawn(move || {
        for (due, data) in rx {
            let due = not_before.map_or(due, |n| due.max(n));
            if let Some(wait) = due.checked_duration_since(Instant::now()) {
                thread::sleep(wait);
            }
            if to.write_all(&data).is_err() {
                break;
            }
        }
        let _ = to.shutdown(Shutdown::Write);
    });
    thread::spawn(move || {
        let mut buf = vec![0u8; 256 * 1024];
        loop {
            match from.read(&mut buf) {
                Ok(0) | Err(_) => break,
                Ok(n) => {
                    if tx
                        .send((Instant::now() + delay, buf[..n].to_vec()))
                        .is_err()
                    {
                        break;
                    }
                }
            }
        }
        drop(tx);
        let _ = writer.join();
        let _ = from.shutdown(Shutdown::Read);
    })
}
