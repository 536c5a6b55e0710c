//! The platform API (`cairn-server serve --listen ADDR`): backups and restores as a
//! platform team drives them, over HTTP, on the same `velero.io` objects the controllers
//! run ([`operations`]).
//!
//! | call | answer |
//! |---|---|
//! | `POST /v1/internal/backups` `{description, workflow, includedNamespaces, …}` | 202 `{name}`; 409 while another backup, restore or deletion runs (named) |
//! | `GET /v1/internal/backups`, `GET /v1/internal/backups/{name}` | the backups (phase, steps, times, counts, bytes, warnings, errors) |
//! | `POST /v1/internal/backups/{name}/restore` `{workflow, namespaceMapping, …}` | 202 `{name}`; 400 unless the backup is Completed; 404; 409 |
//! | `DELETE /v1/internal/backups/{name}` | 202 `{name}` of the DeleteBackupRequest; 404; 409 |
//! | `GET /v1/internal/restores`, `GET /v1/internal/restores/{name}` | the restores |
//! | `GET /v1/openapi.json` | this, as OpenAPI 3 |
//!
//! Every call needs `Authorization: Bearer <token>` ([`auth`]): 401 without a known token,
//! 403 for a read token on a call that changes something. Every answer carries a request
//! id (`X-Request-Id`, the caller's or a new one; `requestId` in JSON bodies), which the
//! log lines of the call carry too. Bodies are limited to [`BODY_LIMIT`], calls to
//! [`CALL_LIMIT`].

pub mod auth;
pub mod openapi;
pub mod operations;

use std::net::SocketAddr;
use std::sync::atomic::AtomicBool;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::body::Bytes;
use axum::extract::{Path, Request, State};
use axum::http::{header, HeaderValue, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use repo_k8s::cluster::Cluster;
use serde_json::{json, Value};

use auth::Role;
use operations::{Operations, Refusal};

/// The largest request body accepted.
pub const BODY_LIMIT: usize = 64 * 1024;
/// The longest a call may take.
pub const CALL_LIMIT: Duration = Duration::from_secs(30);

/// What the handlers share.
pub struct Api {
    pub cluster: Cluster,
    /// The server's namespace (its Backups, Restores, Secrets, workflows).
    pub namespace: String,
    /// How repositories are opened for their health.
    pub open_options: repo_core::OpenOptions,
    unlocked: crate::repository::Unlocked,
    tokens: auth::Tokens,
    /// Checking that nothing runs and starting an operation is one step for this server.
    starting: Mutex<()>,
}

impl Api {
    pub fn new(cluster: Cluster, namespace: &str) -> Api {
        Api {
            cluster,
            namespace: namespace.to_string(),
            open_options: Default::default(),
            unlocked: Default::default(),
            tokens: Default::default(),
            starting: Mutex::new(()),
        }
    }

    fn operations(&self) -> Operations<'_> {
        Operations {
            cluster: &self.cluster,
            namespace: &self.namespace,
            open_options: &self.open_options,
            unlocked: &self.unlocked,
        }
    }
}

/// The request's id, for the handlers.
#[derive(Clone, Debug)]
struct Call {
    id: String,
}

fn new_request_id() -> String {
    format!("{:016x}", rand::random::<u64>())
}

/// A JSON answer with the request id.
fn answer(status: u16, id: &str, mut body: Value) -> Response {
    if let Some(o) = body.as_object_mut() {
        o.insert("requestId".into(), json!(id));
    }
    let code = StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    (code, axum::Json(body)).into_response()
}

fn refused(id: &str, r: Refusal) -> Response {
    let mut body = json!({"error": r.message});
    if let Some(running) = r.running {
        body["running"] = running;
    }
    tracing::info!(request = %id, status = r.status, error = %body["error"], "api call refused");
    answer(r.status, id, body)
}

/// Request ids, authentication and the time limit, around every call.
async fn guard(State(api): State<Arc<Api>>, mut req: Request, next: Next) -> Response {
    let id = req
        .headers()
        .get("x-request-id")
        .and_then(|v| v.to_str().ok())
        .filter(|v| !v.is_empty() && v.len() <= 64 && v.chars().all(|c| c.is_ascii_graphic()))
        .map(str::to_string)
        .unwrap_or_else(new_request_id);
    let method = req.method().clone();
    let path = req.uri().path().to_string();
    // The document and the console's page hold no data: they need no token.
    let open = path == "/v1/openapi.json" || path == "/";
    let token = req
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .map(str::to_string);
    let role = match token {
        Some(t) => {
            let api = api.clone();
            tokio::task::spawn_blocking(move || {
                api.tokens.role_of(&api.cluster, &api.namespace, &t)
            })
            .await
            .ok()
            .flatten()
        }
        None => None,
    };
    let mut out = match role {
        None if !open => {
            let mut r = answer(
                401,
                &id,
                json!({"error": format!("a bearer token is needed: Authorization: Bearer <token>, a token of the Secret {} in namespace {} (keys admin and read)", auth::SECRET, api.namespace)}),
            );
            r.headers_mut()
                .insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
            r
        }
        Some(Role::Read) if method != axum::http::Method::GET => answer(
            403,
            &id,
            json!({"error": "this token may only read; use an admin token to change anything"}),
        ),
        _ => {
            req.extensions_mut().insert(Call { id: id.clone() });
            match tokio::time::timeout(CALL_LIMIT, next.run(req)).await {
                Ok(r) => r,
                Err(_) => answer(
                    504,
                    &id,
                    json!({"error": format!("the call took longer than {}s; the Kubernetes API server may be slow; try again", CALL_LIMIT.as_secs())}),
                ),
            }
        }
    };
    tracing::info!(request = %id, %method, %path, status = out.status().as_u16(), "api call");
    if let Ok(v) = HeaderValue::from_str(&id) {
        out.headers_mut().insert("x-request-id", v);
    }
    out
}

/// Runs `work` (which talks to the API server, blocking) off the async threads.
async fn blocking(
    api: Arc<Api>,
    call: &Call,
    work: impl FnOnce(&Api, &str) -> Result<(u16, Value), Refusal> + Send + 'static,
) -> Response {
    let id = call.id.clone();
    let run_id = id.clone();
    match tokio::task::spawn_blocking(move || work(&api, &run_id)).await {
        Ok(Ok((status, body))) => answer(status, &id, body),
        Ok(Err(r)) => refused(&id, r),
        Err(e) => answer(500, &id, json!({"error": format!("the call failed: {e}")})),
    }
}

/// A JSON body of type `T` (an empty body is the default).
fn body<T: serde::de::DeserializeOwned + Default>(bytes: &Bytes) -> Result<T, Refusal> {
    if bytes.iter().all(u8::is_ascii_whitespace) {
        return Ok(T::default());
    }
    let de = &mut serde_json::Deserializer::from_slice(bytes);
    serde_path_to_error::deserialize(de).map_err(|e| {
        Refusal::new(
            400,
            format!("the request body is not what this call takes: {e}"),
        )
    })
}

async fn start_backup(
    State(api): State<Arc<Api>>,
    axum::Extension(call): axum::Extension<Call>,
    bytes: Bytes,
) -> Response {
    blocking(api, &call, move |api, id| {
        let req: operations::BackupRequest = body(&bytes)?;
        let _one = api.starting.lock().unwrap_or_else(|e| e.into_inner());
        let name = api.operations().start_backup(&req, id)?;
        tracing::info!(request = %id, backup = %name, "backup started");
        Ok((202, json!({"name": name})))
    })
    .await
}

async fn list_backups(
    State(api): State<Arc<Api>>,
    axum::Extension(call): axum::Extension<Call>,
) -> Response {
    blocking(api, &call, |api, _| {
        Ok((200, json!({"items": api.operations().backups()?})))
    })
    .await
}

async fn get_backup(
    State(api): State<Arc<Api>>,
    axum::Extension(call): axum::Extension<Call>,
    Path(name): Path<String>,
) -> Response {
    blocking(api, &call, move |api, _| {
        Ok((200, api.operations().backup(&name)?))
    })
    .await
}

async fn delete_backup(
    State(api): State<Arc<Api>>,
    axum::Extension(call): axum::Extension<Call>,
    Path(name): Path<String>,
) -> Response {
    blocking(api, &call, move |api, id| {
        let _one = api.starting.lock().unwrap_or_else(|e| e.into_inner());
        let request = api.operations().delete_backup(&name, id)?;
        Ok((202, json!({"name": request, "backupName": name})))
    })
    .await
}

async fn start_restore(
    State(api): State<Arc<Api>>,
    axum::Extension(call): axum::Extension<Call>,
    Path(name): Path<String>,
    bytes: Bytes,
) -> Response {
    blocking(api, &call, move |api, id| {
        let req: operations::RestoreRequest = body(&bytes)?;
        let _one = api.starting.lock().unwrap_or_else(|e| e.into_inner());
        let restore = api.operations().start_restore(&name, &req, id)?;
        tracing::info!(request = %id, restore = %restore, backup = %name, "restore started");
        Ok((202, json!({"name": restore, "backupName": name})))
    })
    .await
}

async fn list_restores(
    State(api): State<Arc<Api>>,
    axum::Extension(call): axum::Extension<Call>,
) -> Response {
    blocking(api, &call, |api, _| {
        Ok((200, json!({"items": api.operations().restores()?})))
    })
    .await
}

async fn get_restore(
    State(api): State<Arc<Api>>,
    axum::Extension(call): axum::Extension<Call>,
    Path(name): Path<String>,
) -> Response {
    blocking(api, &call, move |api, _| {
        Ok((200, api.operations().restore(&name)?))
    })
    .await
}

async fn backup_contents(
    State(api): State<Arc<Api>>,
    axum::Extension(call): axum::Extension<Call>,
    Path(name): Path<String>,
) -> Response {
    blocking(api, &call, move |api, _| {
        Ok((200, api.operations().contents(&name)?))
    })
    .await
}

async fn set_location(
    State(api): State<Arc<Api>>,
    axum::Extension(call): axum::Extension<Call>,
    bytes: Bytes,
) -> Response {
    blocking(api, &call, move |api, id| {
        let req: operations::LocationRequest = body(&bytes)?;
        let done = api.operations().set_location(&req)?;
        tracing::info!(request = %id, location = %done["name"], "storage location set");
        Ok((200, done))
    })
    .await
}

async fn list_schedules(
    State(api): State<Arc<Api>>,
    axum::Extension(call): axum::Extension<Call>,
) -> Response {
    blocking(api, &call, |api, _| {
        Ok((200, json!({"items": api.operations().schedules()?})))
    })
    .await
}

async fn list_locations(
    State(api): State<Arc<Api>>,
    axum::Extension(call): axum::Extension<Call>,
) -> Response {
    blocking(api, &call, |api, _| {
        Ok((200, json!({"items": api.operations().locations()?})))
    })
    .await
}

async fn location_repository(
    State(api): State<Arc<Api>>,
    axum::Extension(call): axum::Extension<Call>,
    Path(name): Path<String>,
) -> Response {
    blocking(api, &call, move |api, _| {
        Ok((200, api.operations().repository(&name)?))
    })
    .await
}

async fn console() -> Response {
    (
        [
            (header::CONTENT_TYPE, "text/html; charset=utf-8"),
            (header::CACHE_CONTROL, "no-store"),
        ],
        CONSOLE,
    )
        .into_response()
}

/// The web console: one page that calls this API with the token its user gives.
pub const CONSOLE: &str = include_str!("console.html");

async fn openapi_document() -> Response {
    axum::Json(openapi::document()).into_response()
}

async fn not_found(req: Request) -> Response {
    let id = req
        .extensions()
        .get::<Call>()
        .map(|c| c.id.clone())
        .unwrap_or_default();
    answer(
        404,
        &id,
        json!({"error": format!("no such call: {} {}; see /v1/openapi.json", req.method(), req.uri().path())}),
    )
}

/// The API's routes, for [`serve`] and for tests.
pub fn router(api: Arc<Api>) -> axum::Router {
    axum::Router::new()
        .route("/v1/internal/backups", post(start_backup).get(list_backups))
        .route(
            "/v1/internal/backups/{name}",
            get(get_backup).delete(delete_backup),
        )
        .route("/v1/internal/backups/{name}/restore", post(start_restore))
        .route("/v1/internal/backups/{name}/contents", get(backup_contents))
        .route("/v1/internal/restores", get(list_restores))
        .route("/v1/internal/restores/{name}", get(get_restore))
        .route("/v1/internal/storage-location", post(set_location))
        .route("/v1/internal/schedules", get(list_schedules))
        .route("/v1/internal/storage-locations", get(list_locations))
        .route(
            "/v1/internal/storage-locations/{name}/repository",
            get(location_repository),
        )
        .route("/v1/openapi.json", get(openapi_document))
        .route("/", get(console))
        .fallback(not_found)
        .layer(axum::middleware::from_fn_with_state(api.clone(), guard))
        .layer(axum::extract::DefaultBodyLimit::max(BODY_LIMIT))
        .with_state(api)
}

/// Serves the API on `addr` until `stop` is set; `Err` if the address cannot be bound.
pub fn serve(addr: SocketAddr, api: Arc<Api>, stop: &AtomicBool) -> Result<(), String> {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .map_err(|e| format!("starting the API server: {e}"))?;
    // The last handle goes after the runtime: the API's cluster connection has a runtime
    // of its own, which cannot be dropped inside another's tasks.
    let keep = api.clone();
    let served = rt.block_on(crate::http::serve_until(
        addr,
        router(api),
        stop,
        "--listen",
    ));
    drop(rt);
    drop(keep);
    served
}
