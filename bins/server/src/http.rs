//! The server's HTTP port (`--metrics-address`, Velero's `:8085`): `/metrics` (Prometheus),
//! `/healthz` (the serve loop is turning), `/readyz` (the first lists are read), and
//! `/download/<token>` (files prepared for DownloadRequests, [`crate::downloads`]).
//!
//! It runs on a thread of its own with its own small runtime; the control plane stays
//! synchronous and shares only counters and the download table with it.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use axum::extract::{Path, State};
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use std::future::IntoFuture;

use crate::downloads::Downloads;
use crate::metrics::Metrics;

/// How long the serve loop may go without turning before `/healthz` fails (it turns at
/// least every second, and a round's work other than backups, which run on threads of
/// their own, takes seconds).
pub const STUCK_AFTER: Duration = Duration::from_secs(60);

/// What the probes read.
#[derive(Debug, Default)]
pub struct Health {
    /// Unix seconds of the serve loop's last turn (0: not started).
    last_turn: AtomicU64,
    /// Whether the informers have read their first lists.
    ready: AtomicBool,
}

fn unix(t: SystemTime) -> u64 {
    t.duration_since(UNIX_EPOCH).unwrap_or_default().as_secs()
}

impl Health {
    /// The loop turned; `ready` says whether its copies are read.
    pub fn turned(&self, ready: bool) {
        self.last_turn
            .store(unix(SystemTime::now()), Ordering::Relaxed);
        self.ready.store(ready, Ordering::Relaxed);
    }

    /// `Ok` while the loop turns, else why not.
    pub fn alive(&self, now: SystemTime) -> Result<(), String> {
        let last = self.last_turn.load(Ordering::Relaxed);
        if last == 0 {
            return Err("the serve loop has not started yet".into());
        }
        let idle = unix(now).saturating_sub(last);
        if idle > STUCK_AFTER.as_secs() {
            return Err(format!("the serve loop has not turned for {idle} s; restart the server (and report it: something blocks the loop)"));
        }
        Ok(())
    }

    pub fn is_ready(&self) -> bool {
        self.ready.load(Ordering::Relaxed)
    }
}

/// What the handlers share.
#[derive(Clone)]
pub struct Shared {
    pub metrics: Arc<Metrics>,
    pub health: Arc<Health>,
    pub downloads: Arc<Downloads>,
}

/// The routes, for [`serve`] and for tests.
pub fn router(shared: Shared) -> axum::Router {
    axum::Router::new()
        .route("/metrics", get(metrics))
        .route("/healthz", get(healthz))
        .route("/readyz", get(readyz))
        .route("/download/{token}", get(download))
        .with_state(shared)
}

async fn metrics(State(s): State<Shared>) -> Response {
    let text = s.metrics.render();
    ([(header::CONTENT_TYPE, "text/plain; version=0.0.4")], text).into_response()
}

async fn healthz(State(s): State<Shared>) -> Response {
    match s.health.alive(SystemTime::now()) {
        Ok(()) => (StatusCode::OK, "ok\n").into_response(),
        Err(e) => (StatusCode::SERVICE_UNAVAILABLE, format!("{e}\n")).into_response(),
    }
}

async fn readyz(State(s): State<Shared>) -> Response {
    if s.health.is_ready() {
        (StatusCode::OK, "ok\n").into_response()
    } else {
        let why = "not ready: the first lists of Velero's objects have not been read yet (is the API server reachable?)\n";
        (StatusCode::SERVICE_UNAVAILABLE, why).into_response()
    }
}

async fn download(State(s): State<Shared>, Path(token): Path<String>) -> Response {
    let Some(path) = s.downloads.get(&token, SystemTime::now()) else {
        return (
            StatusCode::NOT_FOUND,
            "no such file, or its URL expired; ask again with a new DownloadRequest\n",
        )
            .into_response();
    };
    match tokio::fs::read(&path).await {
        Ok(bytes) => ([(header::CONTENT_TYPE, "application/octet-stream")], bytes).into_response(),
        Err(_) => (StatusCode::NOT_FOUND, "the file expired\n").into_response(),
    }
}

/// Serves `shared` on `addr` until `stop` is set. `Err` if the address cannot be bound.
pub fn serve(addr: SocketAddr, shared: Shared, stop: &AtomicBool) -> Result<(), String> {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| format!("starting the HTTP server: {e}"))?;
    rt.block_on(serve_until(addr, router(shared), stop, "--metrics-address"))
}

/// Serves `routes` on `addr` until `stop` is set (`flag` names the option that gave the
/// address, for the error).
pub async fn serve_until(
    addr: SocketAddr,
    routes: axum::Router,
    stop: &AtomicBool,
    flag: &str,
) -> Result<(), String> {
    let listener = tokio::net::TcpListener::bind(addr)
        .await
        .map_err(|e| format!("cannot listen on {addr} ({flag}): {e}"))?;
    let stopped = async {
        while !stop.load(Ordering::Relaxed) {
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    };
    tokio::select! {
        served = axum::serve(listener, routes).into_future() => {
            served.map_err(|e| format!("the HTTP server on {addr} stopped: {e}"))
        }
        () = stopped => Ok(()),
    }
}

/// `:8085` (all interfaces, as Go reads it) or `host:port`.
pub fn parse_address(s: &str) -> Result<SocketAddr, String> {
    let full = if s.starts_with(':') {
        format!("0.0.0.0{s}")
    } else {
        s.to_string()
    };
    full.parse()
        .map_err(|_| format!("{s:?} is not an address: give :PORT or IP:PORT"))
}
