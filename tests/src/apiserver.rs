//! A small in-process Kubernetes API server for tests: no real kube-apiserver can be
//! installed on these machines.
//!
//! It speaks the REST protocol of the real one for what cairn (through kube-rs) and
//! `kubectl get/apply/create` use, and keeps its rules honestly:
//!
//! - discovery: `/version`, `/api`, `/api/v1`, `/apis`, `/apis/<group>/<version>`, served
//!   from repo-k8s's built-in table plus every CRD created (which is Established at once);
//! - list with `limit` and `continue` (and `labelSelector`), get, create (201; 409
//!   AlreadyExists; 404 when the namespace does not exist), update (PUT: 409 Conflict
//!   unless `metadata.resourceVersion` is the current one), patch (merge patch; a
//!   strategic merge patch is applied as a merge patch, so lists are replaced whole, which
//!   is where it differs from the real server), delete;
//! - one resourceVersion counter for everything; uid, creationTimestamp and generation
//!   set by the server; `status` written only through `/status` for built-in resources and
//!   CRDs that declare the subresource, and with the object for CRDs that do not (as
//!   Velero's);
//! - node ports allocated: a Service whose node port another has gets 422 with causes;
//! - watches (`?watch=true`): events after the given resourceVersion (replayed from a kept
//!   history) or, from version 0, every current object as ADDED; `timeoutSeconds` ends the
//!   stream;
//! - errors as `Status` objects with the real reasons and codes.
//!
//! Stand-in controllers, for readiness gates: a Deployment becomes Available and a Pod
//! Ready `ready_after` after creation, unless labelled `cairn.test/never-ready: "true"`.
//! `throttle_first` answers that many requests with 429 and `Retry-After: 0`, to exercise
//! client retries.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::body::Bytes;
use axum::http::{HeaderMap, Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use repo_k8s::selector::LabelSelector;
use repo_k8s::{Discovery, Object, Resource};
use serde_json::{json, Map, Value};

mod exec;
pub mod nodes;
pub mod snapshots;
pub mod workloads;

/// What a test wants of the server.
#[derive(Clone, Debug, Default)]
pub struct Options {
    /// How long after creation Deployments become Available and Pods Ready.
    pub ready_after: Duration,
    /// Answer this many requests with 429 Too Many Requests first.
    pub throttle_first: usize,
    /// Where to listen (default: a free port on the loopback).
    pub listen: Option<SocketAddr>,
    /// Simulated nodes ([`nodes`]): none, or their names.
    pub nodes: Vec<String>,
    /// Where the simulated nodes' kubelets keep pods: `<nodes_dir>/<node>/pods`.
    pub nodes_dir: Option<PathBuf>,
}

/// Label that keeps a Deployment or Pod from ever becoming ready.
pub const NEVER_READY: &str = "cairn.test/never-ready";

struct Stored {
    value: Value,
    created: Instant,
}

/// A Secret's `stringData` moved into `data`, base64-encoded, as the real API server stores
/// it (`stringData` is write-only and wins over `data` for the same key).
fn secret_string_data(r: &Resource, v: &mut Value) {
    use base64::Engine as _;
    if !(r.group.is_empty() && r.plural == "secrets") {
        return;
    }
    let Some(strings) = v.as_object_mut().and_then(|o| o.remove("stringData")) else {
        return;
    };
    let Some(strings) = strings.as_object() else {
        return;
    };
    if !v["data"].is_object() {
        v["data"] = json!({});
    }
    for (k, s) in strings {
        let text = s.as_str().unwrap_or_default();
        v["data"][k] = json!(base64::engine::general_purpose::STANDARD.encode(text));
    }
}

/// (group, plural, namespace or "", name)
type Key = (String, String, String, String);

/// An open watch.
struct Watcher {
    group: String,
    plural: String,
    ns: Option<String>,
    selector: Option<LabelSelector>,
    tx: tokio::sync::mpsc::UnboundedSender<Bytes>,
}

/// A change, kept so a watch from an older resourceVersion replays what it missed.
struct Event {
    rv: u64,
    group: String,
    plural: String,
    ns: String,
    kind: &'static str,
    object: Value,
}

struct State {
    opts: Options,
    watchers: Vec<Watcher>,
    events: Vec<Event>,
    /// Deployments and pods that become ready at a time, for the stand-in controllers.
    pending_ready: Vec<(Instant, Key)>,
    /// A streaming response (a watch) to send instead of the JSON reply.
    stream: Option<Response>,
    discovery: Discovery,
    /// Custom resources without a status subresource (as Velero's), by (group, plural):
    /// their status is written with the object.
    no_status_subresource: std::collections::BTreeSet<(String, String)>,
    objects: BTreeMap<Key, Stored>,
    resource_version: u64,
    /// Every request as `METHOD path?query`, for tests to check what a client did.
    log: Vec<String>,
}

/// A running server; dropped, it stops.
pub struct ApiServer {
    pub addr: SocketAddr,
    state: Arc<Mutex<State>>,
    shutdown: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl ApiServer {
    pub fn start(opts: Options) -> ApiServer {
        let opts_listen = opts.listen;
        let state = Arc::new(Mutex::new(State {
            opts,
            discovery: Discovery::built_in(),
            no_status_subresource: Default::default(),
            objects: BTreeMap::new(),
            resource_version: 1,
            log: Vec::new(),
            watchers: Vec::new(),
            events: Vec::new(),
            pending_ready: Vec::new(),
            stream: None,
        }));
        {
            let mut st = state.lock().unwrap_or_else(|e| e.into_inner());
            let nodes = st.served("", "nodes").expect("built in");
            for n in st.node_objects() {
                let _ = st.create(&nodes, None, n);
            }
        }
        let at = opts_listen.unwrap_or_else(|| SocketAddr::from(([127, 0, 0, 1], 0)));
        let listener = std::net::TcpListener::bind(at)
            .unwrap_or_else(|e| panic!("cannot listen on {at}: {e}"));
        listener.set_nonblocking(true).unwrap();
        let addr = listener.local_addr().unwrap();
        let (tx, rx) = tokio::sync::oneshot::channel::<()>();
        let shared = state.clone();
        let ticking = state.clone();
        let thread = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap();
            rt.block_on(async move {
                // The stand-in controllers: mark due deployments and pods ready.
                tokio::spawn(async move {
                    loop {
                        tokio::time::sleep(Duration::from_millis(50)).await;
                        let due = {
                            let mut st = ticking.lock().unwrap_or_else(|e| e.into_inner());
                            st.tick();
                            st.job_pods_to_run()
                        };
                        // Job pods run outside the lock, each on a thread of its own.
                        for run in due {
                            let done = ticking.clone();
                            std::thread::spawn(move || {
                                let (code, message) = workloads::run_job_pod(&run);
                                let mut st = done.lock().unwrap_or_else(|e| e.into_inner());
                                st.job_pod_ended(&run.pod, code, &message);
                            });
                        }
                    }
                });
                let listener = tokio::net::TcpListener::from_std(listener).unwrap();
                let exec_state = shared.clone();
                let exec =
                    move |ws: axum::extract::ws::WebSocketUpgrade,
                          axum::extract::Path((ns, pod)): axum::extract::Path<(String, String)>,
                          axum::extract::RawQuery(q): axum::extract::RawQuery| {
                        let state = exec_state.clone();
                        async move { exec::handle(state, ws, ns, pod, q.unwrap_or_default()) }
                    };
                let app = axum::Router::new()
                    .route(
                        "/api/v1/namespaces/{ns}/pods/{pod}/exec",
                        axum::routing::get(exec),
                    )
                    .fallback(
                        move |method: Method, uri: Uri, headers: HeaderMap, body: Bytes| {
                            let state = shared.clone();
                            async move {
                                let mut st = state.lock().unwrap_or_else(|e| e.into_inner());
                                st.handle(&method, &uri, &headers, &body)
                            }
                        },
                    );
                axum::serve(listener, app)
                    .with_graceful_shutdown(async {
                        let _ = rx.await;
                    })
                    .await
                    .unwrap();
            });
        });
        ApiServer {
            addr,
            state,
            shutdown: Some(tx),
            thread: Some(thread),
        }
    }

    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Writes a kubeconfig for this server into `dir` and returns its path.
    pub fn kubeconfig(&self, dir: &Path) -> PathBuf {
        let path = dir.join("kubeconfig");
        self.write_kubeconfig(&path);
        path
    }

    /// Writes a kubeconfig for this server (kubectl and kube-rs take it) at `path`.
    pub fn write_kubeconfig(&self, path: &Path) {
        let text = format!(
            "apiVersion: v1\nkind: Config\nclusters:\n- name: test\n  cluster:\n    server: {}\n\
             contexts:\n- name: test\n  context:\n    cluster: test\n    user: test\n\
             current-context: test\nusers:\n- name: test\n  user: {{}}\n",
            self.url()
        );
        std::fs::write(path, text).unwrap();
    }

    /// The requests served so far.
    pub fn log(&self) -> Vec<String> {
        self.lock().log.clone()
    }

    /// An object as stored (with its simulated status), if it exists.
    pub fn get(
        &self,
        api_version: &str,
        kind: &str,
        ns: Option<&str>,
        name: &str,
    ) -> Option<Value> {
        let st = self.lock();
        let (group, _) = repo_k8s::object::split_api_version(api_version);
        let r = st.discovery.for_group_kind(group, kind)?.clone();
        let key = (
            r.group.clone(),
            r.plural.clone(),
            ns.unwrap_or("").into(),
            name.into(),
        );
        st.objects.get(&key).map(|s| st.with_status(&r, s))
    }

    /// The objects of a kind (in a namespace, or all), as stored.
    pub fn list(&self, api_version: &str, kind: &str, ns: Option<&str>) -> Vec<Value> {
        let st = self.lock();
        let (group, _) = repo_k8s::object::split_api_version(api_version);
        let Some(r) = st.discovery.for_group_kind(group, kind).cloned() else {
            return Vec::new();
        };
        st.objects
            .iter()
            .filter(|((g, p, n, _), _)| {
                *g == r.group && *p == r.plural && ns.is_none_or(|ns| n == ns)
            })
            .map(|(_, stored)| st.with_status(&r, stored))
            .collect()
    }

    /// Creates objects directly (a cluster's existing state before a restore).
    pub fn seed(&self, objects: &[Value]) {
        let mut st = self.lock();
        for o in objects {
            let (group, _) = repo_k8s::object::split_api_version(o["apiVersion"].as_str().unwrap());
            let r = st
                .discovery
                .for_group_kind(group, o["kind"].as_str().unwrap())
                .unwrap()
                .clone();
            let ns = o["metadata"]["namespace"].as_str().map(str::to_string);
            let (code, body) = st.create(&r, ns.as_deref(), o.clone());
            assert_eq!(code, StatusCode::CREATED, "{body}");
        }
    }

    /// Deletes an object directly (a namespace that finishes terminating, say).
    pub fn delete(&self, api_version: &str, kind: &str, ns: Option<&str>, name: &str) {
        let mut st = self.lock();
        let (group, _) = repo_k8s::object::split_api_version(api_version);
        let r = st.discovery.for_group_kind(group, kind).unwrap().clone();
        let (code, body) = st.delete(&r, ns, name);
        assert_eq!(code, StatusCode::OK, "{body}");
    }

    /// Where simulated node `node` keeps its pods' directories (its kubelet's
    /// `/var/lib/kubelet/pods`).
    pub fn pods_dir(&self, node: &str) -> Option<PathBuf> {
        self.lock().pods_dir(node)
    }

    /// Number of objects stored.
    pub fn len(&self) -> usize {
        self.lock().objects.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }
}

impl Drop for ApiServer {
    fn drop(&mut self) {
        // Open watches end (their senders go), so the graceful shutdown need not wait for
        // their timeouts.
        self.lock().watchers.clear();
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

fn status(code: StatusCode, reason: &str, message: String) -> (StatusCode, Value) {
    (
        code,
        json!({"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
            "message": message, "reason": reason, "code": code.as_u16()}),
    )
}

fn not_found(r: &Resource, name: &str) -> (StatusCode, Value) {
    let mut s = status(
        StatusCode::NOT_FOUND,
        "NotFound",
        format!("{} {name:?} not found", r.group_resource()),
    );
    s.1["details"] = json!({"name": name, "group": r.group, "kind": r.plural});
    s
}

fn now_rfc3339() -> String {
    repo_core::time::format_rfc3339(std::time::SystemTime::now())
        .split('.')
        .next()
        .unwrap()
        .trim_end_matches('Z')
        .to_string()
        + "Z"
}

/// The `labelSelector` of a list or watch, or the 400 the real server gives for a bad one.
fn label_selector(
    query: &BTreeMap<String, String>,
) -> Result<Option<LabelSelector>, (StatusCode, Value)> {
    match query.get("labelSelector").filter(|s| !s.is_empty()) {
        Some(s) => LabelSelector::parse(s).map(Some).map_err(|e| {
            status(
                StatusCode::BAD_REQUEST,
                "BadRequest",
                format!("unable to parse requirement: {e}"),
            )
        }),
        None => Ok(None),
    }
}

/// RFC 7386 merge patch.
fn merge_patch(target: &mut Value, patch: &Value) {
    match patch {
        Value::Object(p) => {
            if !target.is_object() {
                *target = Value::Object(Map::new());
            }
            let t = target.as_object_mut().unwrap();
            for (k, v) in p {
                if v.is_null() {
                    t.remove(k);
                } else {
                    merge_patch(t.entry(k.clone()).or_insert(Value::Null), v);
                }
            }
        }
        _ => *target = patch.clone(),
    }
}

impl State {
    fn handle(&mut self, method: &Method, uri: &Uri, headers: &HeaderMap, body: &[u8]) -> Response {
        self.log.push(format!(
            "{method} {}",
            uri.path_and_query().map(|p| p.as_str()).unwrap_or("/")
        ));
        if self.opts.throttle_first > 0 {
            self.opts.throttle_first -= 1;
            let (code, v) = status(
                StatusCode::TOO_MANY_REQUESTS,
                "TooManyRequests",
                "too many requests, please try again later".into(),
            );
            return (code, [("Retry-After", "0")], axum::Json(v)).into_response();
        }
        let query: BTreeMap<String, String> =
            url::form_urlencoded::parse(uri.query().unwrap_or("").as_bytes())
                .into_owned()
                .collect();
        let (code, v) = self.route(method, uri.path(), &query, headers, body);
        match self.stream.take() {
            Some(stream) => stream,
            None => (code, axum::Json(v)).into_response(),
        }
    }

    fn route(
        &mut self,
        method: &Method,
        path: &str,
        query: &BTreeMap<String, String>,
        headers: &HeaderMap,
        body: &[u8],
    ) -> (StatusCode, Value) {
        let segs: Vec<&str> = path.trim_matches('/').split('/').collect();
        let (group, version, rest) = match segs.as_slice() {
            ["version"] => {
                return (
                    StatusCode::OK,
                    json!({"major": "1", "minor": "34", "gitVersion": "v1.34.0-cairn-test",
                        "platform": "linux/amd64"}),
                )
            }
            ["api"] => {
                return (
                    StatusCode::OK,
                    json!({"kind": "APIVersions", "versions": ["v1"],
                        "serverAddressByClientCIDRs": [{"clientCIDR": "0.0.0.0/0", "serverAddress": "127.0.0.1"}]}),
                )
            }
            ["apis"] => return (StatusCode::OK, self.group_list()),
            ["api", "v1", rest @ ..] => ("", "v1", rest),
            ["apis", g, v, rest @ ..] => (*g, *v, rest),
            _ => {
                return status(
                    StatusCode::NOT_FOUND,
                    "NotFound",
                    format!("the server could not find the requested resource ({path})"),
                )
            }
        };
        if rest.is_empty() {
            return match self.resource_list(group, version) {
                Some(v) => (StatusCode::OK, v),
                None => status(
                    StatusCode::NOT_FOUND,
                    "NotFound",
                    format!("the server could not find the requested resource ({path})"),
                ),
            };
        }
        // [plural], [plural, name], [plural, name, status],
        // [namespaces, ns, plural], [namespaces, ns, plural, name(, status)]
        let (ns, plural, name, sub) = match rest {
            ["namespaces", ns, plural, tail @ ..] if !matches!(*plural, "status" | "finalize") => (
                Some(*ns),
                *plural,
                tail.first().copied(),
                tail.get(1).copied(),
            ),
            [plural, tail @ ..] => (None, *plural, tail.first().copied(), tail.get(1).copied()),
            [] => unreachable!(),
        };
        let Some(r) = self.served(group, plural).filter(|r| r.version == version) else {
            return status(
                StatusCode::NOT_FOUND,
                "NotFound",
                format!("the server could not find the requested resource ({path})"),
            );
        };
        if sub.is_some_and(|s| s != "status") {
            return status(
                StatusCode::NOT_FOUND,
                "NotFound",
                format!("subresource {sub:?} is not served here"),
            );
        }
        if ns.is_some() && !r.namespaced {
            return status(
                StatusCode::NOT_FOUND,
                "NotFound",
                format!("{} is cluster-scoped", r.group_resource()),
            );
        }
        let body_json = || -> Result<Value, (StatusCode, Value)> {
            serde_json::from_slice(body).map_err(|_| {
                let ct = headers
                    .get("content-type")
                    .and_then(|c| c.to_str().ok())
                    .unwrap_or("none");
                status(
                    StatusCode::UNSUPPORTED_MEDIA_TYPE,
                    "UnsupportedMediaType",
                    format!("this test server reads JSON bodies only (got content-type {ct})"),
                )
            })
        };
        match (method.as_str(), name) {
            ("GET", None)
                if matches!(query.get("watch").map(String::as_str), Some("true" | "1")) =>
            {
                self.watch(&r, ns, query)
            }
            ("GET", None) => self.list(&r, ns, query),
            ("GET", Some(name)) => {
                let key = self.key(&r, ns, name);
                match self.objects.get(&key) {
                    Some(s) => (StatusCode::OK, self.with_status(&r, s)),
                    None => not_found(&r, name),
                }
            }
            ("POST", None) => match body_json() {
                Ok(v) => self.create(&r, ns, v),
                Err(e) => e,
            },
            ("PUT", Some(name)) => match body_json() {
                Ok(v) => self.update(&r, ns, name, v, sub.is_some()),
                Err(e) => e,
            },
            ("PATCH", Some(name)) => {
                let ct = headers
                    .get("content-type")
                    .and_then(|c| c.to_str().ok())
                    .unwrap_or("");
                if !ct.starts_with("application/merge-patch+json")
                    && !ct.starts_with("application/strategic-merge-patch+json")
                {
                    return status(
                        StatusCode::UNSUPPORTED_MEDIA_TYPE,
                        "UnsupportedMediaType",
                        format!("patch type {ct:?} is not supported here (merge and strategic merge are)"),
                    );
                }
                match body_json() {
                    Ok(p) => self.patch(&r, ns, name, &p, sub.is_some()),
                    Err(e) => e,
                }
            }
            ("DELETE", Some(name)) => self.delete(&r, ns, name),
            _ => status(
                StatusCode::METHOD_NOT_ALLOWED,
                "MethodNotAllowed",
                format!("{method} is not allowed on {path}"),
            ),
        }
    }

    /// Deletes an object (a namespace with everything in it) and tells the watchers.
    fn delete(&mut self, r: &Resource, ns: Option<&str>, name: &str) -> (StatusCode, Value) {
        let key = self.key(r, ns, name);
        let Some(s) = self.objects.remove(&key) else {
            return not_found(r, name);
        };
        self.gone(&key, &s.value);
        // Its direct dependents go too (the garbage collector's background deletion).
        let uid = s.value["metadata"]["uid"].clone();
        let dependents: Vec<Key> = self
            .objects
            .iter()
            .filter(|(_, d)| {
                d.value["metadata"]["ownerReferences"]
                    .as_array()
                    .is_some_and(|o| o.iter().any(|o| o["uid"] == uid))
            })
            .map(|(k, _)| k.clone())
            .collect();
        for k in dependents {
            if let Some(dr) = self.served(&k.0, &k.1) {
                let ns = (!k.2.is_empty()).then_some(k.2.as_str());
                let _ = self.delete(&dr, ns, &k.3);
            }
        }
        if r.group.is_empty() && r.plural == "namespaces" {
            let inside: Vec<Key> = self
                .objects
                .keys()
                .filter(|k| k.2 == name)
                .cloned()
                .collect();
            for k in inside {
                let gone = self.objects.remove(&k).unwrap();
                self.gone(&k, &gone.value);
                self.notify("DELETED", &k, gone.value);
            }
        }
        self.notify("DELETED", &key, s.value.clone());
        (StatusCode::OK, s.value)
    }

    /// What a node, the volume controllers or the snapshotter do when an object is deleted.
    fn gone(&mut self, key: &Key, value: &Value) {
        match (key.0.as_str(), key.1.as_str()) {
            ("", "pods") => self.pod_gone(value),
            ("", "persistentvolumeclaims") => self.claim_gone(value),
            ("", "persistentvolumes") => self.volume_gone(value),
            ("snapshot.storage.k8s.io", plural) => self.snapshot_gone(plural, value),
            _ => {}
        }
    }

    /// The resource served as `plural` in `group`.
    fn served(&self, group: &str, plural: &str) -> Option<Resource> {
        self.discovery
            .resources()
            .iter()
            .find(|r| r.group == group && r.plural == plural)
            .cloned()
    }

    fn key(&self, r: &Resource, ns: Option<&str>, name: &str) -> Key {
        (
            r.group.clone(),
            r.plural.clone(),
            ns.unwrap_or("").to_string(),
            name.to_string(),
        )
    }

    fn next_rv(&mut self) -> String {
        self.resource_version += 1;
        self.resource_version.to_string()
    }

    fn group_list(&self) -> Value {
        let mut groups: BTreeMap<&str, Vec<&str>> = BTreeMap::new();
        for r in self
            .discovery
            .resources()
            .iter()
            .filter(|r| !r.group.is_empty())
        {
            let vs = groups.entry(&r.group).or_default();
            if !vs.contains(&r.version.as_str()) {
                vs.push(&r.version);
            }
        }
        let groups: Vec<Value> = groups
            .into_iter()
            .map(|(g, vs)| {
                let versions: Vec<Value> = vs
                    .iter()
                    .map(|v| json!({"groupVersion": format!("{g}/{v}"), "version": v}))
                    .collect();
                json!({"name": g, "versions": versions, "preferredVersion": versions[0]})
            })
            .collect();
        json!({"kind": "APIGroupList", "apiVersion": "v1", "groups": groups})
    }

    fn resource_list(&self, group: &str, version: &str) -> Option<Value> {
        let rs: Vec<Value> = self
            .discovery
            .resources()
            .iter()
            .filter(|r| r.group == group && r.version == version)
            .flat_map(|r| {
                let main = json!({"name": r.plural, "singularName": r.singular,
                    "namespaced": r.namespaced, "kind": r.kind,
                    "verbs": ["create", "delete", "get", "list", "patch", "update"],
                    "shortNames": r.short_names});
                let status = json!({"name": format!("{}/status", r.plural), "singularName": "",
                    "namespaced": r.namespaced, "kind": r.kind, "verbs": ["get", "patch", "update"]});
                [main, status]
            })
            .collect();
        if rs.is_empty() {
            return None;
        }
        let gv = if group.is_empty() {
            version.to_string()
        } else {
            format!("{group}/{version}")
        };
        Some(
            json!({"kind": "APIResourceList", "apiVersion": "v1", "groupVersion": gv, "resources": rs}),
        )
    }

    /// The object with the status the stand-in controllers would have given it by now.
    fn with_status(&self, r: &Resource, s: &Stored) -> Value {
        let mut v = s.value.clone();
        let never = v["metadata"]["labels"][NEVER_READY] == "true";
        let ready = !never && s.created.elapsed() >= self.opts.ready_after;
        let t = if ready { "True" } else { "False" };
        match (r.group.as_str(), r.plural.as_str()) {
            ("apps", "deployments") => {
                let want = v["spec"]["replicas"].as_u64().unwrap_or(1);
                let have = if ready { want } else { 0 };
                v["status"] = json!({"observedGeneration": v["metadata"]["generation"],
                    "replicas": want, "readyReplicas": have, "availableReplicas": have,
                    "conditions": [{"type": "Available", "status": t, "reason": if ready {"MinimumReplicasAvailable"} else {"MinimumReplicasUnavailable"}}]});
            }
            // Simulated nodes' kubelets set pods' status themselves.
            ("", "pods") if self.opts.nodes.is_empty() => {
                v["status"] = json!({"phase": if ready {"Running"} else {"Pending"},
                    "conditions": [{"type": "Ready", "status": t}]});
            }
            ("apiextensions.k8s.io", "customresourcedefinitions") => {
                v["status"] = json!({"conditions": [{"type": "Established", "status": "True"},
                    {"type": "NamesAccepted", "status": "True"}],
                    "acceptedNames": v["spec"]["names"]});
            }
            _ => {}
        }
        v
    }

    /// Sends a change to the watches it concerns and keeps it for later ones.
    fn notify(&mut self, kind: &'static str, key: &Key, object: Value) {
        let rv = object["metadata"]["resourceVersion"]
            .as_str()
            .and_then(|v| v.parse().ok())
            .unwrap_or(self.resource_version);
        let event = Event {
            rv,
            group: key.0.clone(),
            plural: key.1.clone(),
            ns: key.2.clone(),
            kind,
            object,
        };
        self.watchers.retain(|w| match Self::event_line(w, &event) {
            Some(line) => w.tx.send(line).is_ok(),
            None => !w.tx.is_closed(),
        });
        self.events.push(event);
    }

    /// The event as a watch line, if the watch wants it.
    fn event_line(w: &Watcher, e: &Event) -> Option<Bytes> {
        if w.group != e.group || w.plural != e.plural || w.ns.as_ref().is_some_and(|n| *n != e.ns) {
            return None;
        }
        if let Some(sel) = &w.selector {
            let o = Object::from_value(e.object.clone(), "event").ok()?;
            if !sel.matches(&o) {
                return None;
            }
        }
        let mut line = serde_json::to_vec(&json!({"type": e.kind, "object": e.object})).ok()?;
        line.push(b'\n');
        Some(Bytes::from(line))
    }

    /// Opens a watch: a stream of JSON events, one per line.
    fn watch(
        &mut self,
        r: &Resource,
        ns: Option<&str>,
        query: &BTreeMap<String, String>,
    ) -> (StatusCode, Value) {
        let selector = match label_selector(query) {
            Ok(s) => s,
            Err(e) => return e,
        };
        let from: u64 = query
            .get("resourceVersion")
            .and_then(|v| v.parse().ok())
            .unwrap_or(0);
        let timeout = query
            .get("timeoutSeconds")
            .and_then(|v| v.parse().ok())
            .map(Duration::from_secs)
            .unwrap_or(Duration::from_secs(1800));
        let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
        let w = Watcher {
            group: r.group.clone(),
            plural: r.plural.clone(),
            ns: ns.map(str::to_string),
            selector,
            tx,
        };
        if from == 0 {
            // From the start: everything there is, as ADDED.
            let current: Vec<(Key, Value)> = self
                .objects
                .iter()
                .filter(|(k, _)| k.0 == r.group && k.1 == r.plural)
                .map(|(k, s)| (k.clone(), self.with_status(r, s)))
                .collect();
            for (k, object) in current {
                let e = Event {
                    rv: 0,
                    group: k.0,
                    plural: k.1,
                    ns: k.2,
                    kind: "ADDED",
                    object,
                };
                if let Some(line) = Self::event_line(&w, &e) {
                    let _ = w.tx.send(line);
                }
            }
        } else {
            for e in self.events.iter().filter(|e| e.rv > from) {
                if let Some(line) = Self::event_line(&w, e) {
                    let _ = w.tx.send(line);
                }
            }
        }
        self.watchers.push(w);
        let deadline = tokio::time::Instant::now() + timeout;
        let stream = futures::stream::unfold(rx, move |mut rx| async move {
            match tokio::time::timeout_at(deadline, rx.recv()).await {
                Ok(Some(line)) => Some((Ok::<_, std::convert::Infallible>(line), rx)),
                _ => None,
            }
        });
        self.stream = Some(
            Response::builder()
                .status(StatusCode::OK)
                .header("content-type", "application/json")
                .body(axum::body::Body::from_stream(stream))
                .unwrap(),
        );
        (StatusCode::OK, Value::Null)
    }

    /// The stand-in controllers: due deployments and pods get their ready status, with a
    /// new resourceVersion and a MODIFIED event, as a controller's status update would.
    fn tick(&mut self) {
        self.simulate_nodes();
        let now = Instant::now();
        let due: Vec<Key> = self
            .pending_ready
            .iter()
            .filter(|(t, _)| *t <= now)
            .map(|(_, k)| k.clone())
            .collect();
        self.pending_ready.retain(|(t, _)| *t > now);
        for key in due {
            let Some(r) = self.served(&key.0, &key.1) else {
                continue;
            };
            let Some(s) = self.objects.get(&key) else {
                continue;
            };
            if s.value["metadata"]["labels"][NEVER_READY] == "true" {
                continue;
            }
            let mut v = self.with_status(&r, s);
            let created = s.created;
            let rv = self.next_rv();
            v["metadata"]["resourceVersion"] = json!(rv);
            self.objects.insert(
                key.clone(),
                Stored {
                    value: v.clone(),
                    created,
                },
            );
            self.notify("MODIFIED", &key, v);
        }
    }

    fn list(
        &self,
        r: &Resource,
        ns: Option<&str>,
        query: &BTreeMap<String, String>,
    ) -> (StatusCode, Value) {
        let selector = match label_selector(query) {
            Ok(s) => s,
            Err(e) => return e,
        };
        let limit: usize = query
            .get("limit")
            .and_then(|l| l.parse().ok())
            .filter(|&l| l > 0)
            .unwrap_or(usize::MAX);
        // The continue token is the last key returned: ns/name, hex-encoded.
        let after: Option<(String, String)> = match query.get("continue").filter(|c| !c.is_empty())
        {
            Some(c) => match hex::decode(c)
                .ok()
                .and_then(|b| String::from_utf8(b).ok())
                .and_then(|s| {
                    s.split_once('/')
                        .map(|(a, b)| (a.to_string(), b.to_string()))
                }) {
                Some(k) => Some(k),
                None => {
                    return status(
                        StatusCode::BAD_REQUEST,
                        "BadRequest",
                        "invalid continue token".into(),
                    )
                }
            },
            None => None,
        };
        let mut items = Vec::new();
        let mut more = false;
        for ((g, p, o_ns, name), s) in &self.objects {
            if g != &r.group || p != &r.plural || ns.is_some_and(|n| n != o_ns) {
                continue;
            }
            if after
                .as_ref()
                .is_some_and(|(a_ns, a_name)| (o_ns, name) <= (a_ns, a_name))
            {
                continue;
            }
            let v = self.with_status(r, s);
            if let Some(sel) = &selector {
                let o = Object::from_value(v.clone(), "list").unwrap();
                if !sel.matches(&o) {
                    continue;
                }
            }
            if items.len() == limit {
                more = true;
                break;
            }
            let mut v = v;
            // The real server leaves kind and apiVersion out of list items.
            let m = v.as_object_mut().unwrap();
            m.remove("kind");
            m.remove("apiVersion");
            items.push(v);
        }
        // When an item beyond the page exists, the token is the page's last item.
        let cont = more.then(|| {
            let last = items.last().unwrap();
            hex::encode(format!(
                "{}/{}",
                last["metadata"]["namespace"].as_str().unwrap_or(""),
                last["metadata"]["name"].as_str().unwrap()
            ))
        });
        let mut meta = json!({"resourceVersion": self.resource_version.to_string()});
        if let Some(c) = cont {
            meta["continue"] = json!(c);
        }
        (
            StatusCode::OK,
            json!({"kind": format!("{}List", r.kind), "apiVersion": r.api_version(),
                "metadata": meta, "items": items}),
        )
    }

    fn create(&mut self, r: &Resource, ns: Option<&str>, mut v: Value) -> (StatusCode, Value) {
        secret_string_data(r, &mut v);
        if v["kind"] != r.kind.as_str() || v["apiVersion"] != r.api_version().as_str() {
            return status(
                StatusCode::BAD_REQUEST,
                "BadRequest",
                format!(
                    "the API version in the data ({}) does not match the expected API version ({}) or kind ({})",
                    v["apiVersion"], r.api_version(), r.kind
                ),
            );
        }
        let meta = v["metadata"].as_object_mut();
        let Some(meta) = meta else {
            return status(
                StatusCode::UNPROCESSABLE_ENTITY,
                "Invalid",
                "metadata is required".into(),
            );
        };
        if meta
            .get("name")
            .and_then(|n| n.as_str())
            .is_none_or(str::is_empty)
        {
            match meta.get("generateName").and_then(|n| n.as_str()) {
                Some(g) => {
                    let n = format!("{g}{:05x}", self.resource_version % 0xfffff);
                    meta.insert("name".into(), json!(n));
                }
                None => {
                    return status(
                        StatusCode::UNPROCESSABLE_ENTITY,
                        "Invalid",
                        format!("{} is invalid: metadata.name: Required value: name or generateName is required", r.kind),
                    )
                }
            }
        }
        let name = meta["name"].as_str().unwrap().to_string();
        if r.namespaced {
            let body_ns = meta.get("namespace").and_then(|n| n.as_str());
            match (ns, body_ns) {
                (Some(p), Some(b)) if p != b => {
                    return status(StatusCode::BAD_REQUEST, "BadRequest",
                        "the namespace of the provided object does not match the namespace sent on the request".into())
                }
                (None, _) => {
                    return status(StatusCode::METHOD_NOT_ALLOWED, "MethodNotAllowed",
                        format!("{} must be created in a namespace", r.group_resource()))
                }
                _ => {}
            }
            let ns = ns.unwrap();
            meta.insert("namespace".into(), json!(ns));
            if !self.objects.contains_key(&(
                String::new(),
                "namespaces".into(),
                String::new(),
                ns.into(),
            )) {
                let mut s = status(
                    StatusCode::NOT_FOUND,
                    "NotFound",
                    format!("namespaces {ns:?} not found"),
                );
                s.1["details"] = json!({"name": ns, "kind": "namespaces"});
                return s;
            }
        } else {
            meta.remove("namespace");
        }
        // Node ports are allocated before the name is stored, as on the real server.
        if r.group.is_empty() && r.plural == "services" {
            if let Some(taken) = self.node_port_taken(&v) {
                let mut s = status(
                    StatusCode::UNPROCESSABLE_ENTITY,
                    "Invalid",
                    format!("Service {name:?} is invalid: spec.ports[0].nodePort: Invalid value: {taken}: provided port is already allocated"),
                );
                s.1["details"] = json!({"name": name, "kind": "Service", "causes": [
                    {"reason": "FieldValueInvalid", "message": format!("Invalid value: {taken}: provided port is already allocated"), "field": "spec.ports[0].nodePort"}]});
                return s;
            }
        }
        let key = self.key(r, ns, &name);
        if self.objects.contains_key(&key) {
            let mut s = status(
                StatusCode::CONFLICT,
                "AlreadyExists",
                format!("{} {name:?} already exists", r.group_resource()),
            );
            s.1["details"] = json!({"name": name, "group": r.group, "kind": r.plural});
            return s;
        }
        let rv = self.next_rv();
        let meta = v["metadata"].as_object_mut().unwrap();
        meta.insert(
            "uid".into(),
            json!(format!(
                "00000000-0000-4000-8000-{:012x}",
                self.resource_version
            )),
        );
        meta.insert("resourceVersion".into(), json!(rv));
        meta.insert("creationTimestamp".into(), json!(now_rfc3339()));
        meta.insert("generation".into(), json!(1));
        if self.has_status_subresource(r) {
            v.as_object_mut().unwrap().remove("status");
        }
        if r.group == "apiextensions.k8s.io" && r.plural == "customresourcedefinitions" {
            match Object::from_value(v.clone(), "crd")
                .map_err(repo_k8s::Error::from)
                .and_then(|o| self.discovery.add_crd(&o))
            {
                Ok(added) => {
                    let with_status = v["spec"]["versions"]
                        .as_array()
                        .into_iter()
                        .flatten()
                        .any(|ver| ver["subresources"].get("status").is_some());
                    let key = (added.group.clone(), added.plural.clone());
                    if with_status {
                        self.no_status_subresource.remove(&key);
                    } else {
                        self.no_status_subresource.insert(key);
                    }
                }
                Err(e) => {
                    return status(
                        StatusCode::UNPROCESSABLE_ENTITY,
                        "Invalid",
                        format!("CustomResourceDefinition {name:?} is invalid: {e}"),
                    )
                }
            }
        }
        let pod = r.group.is_empty() && r.plural == "pods";
        if pod && v["spec"]["nodeName"].as_str().is_none_or(str::is_empty) {
            if let Some(node) = self.schedule(&name) {
                v["spec"]["nodeName"] = json!(node);
            }
        }
        let daemon_pods = match (r.group.as_str(), r.plural.as_str()) {
            ("apps", "daemonsets") => self.daemon_pods(&v),
            _ => Vec::new(),
        };
        let stored = Stored {
            value: v,
            created: Instant::now(),
        };
        let out = self.with_status(r, &stored);
        let controlled = matches!(
            (r.group.as_str(), r.plural.as_str()),
            ("apps", "deployments") | ("", "pods")
        );
        if controlled {
            let due = stored.created + self.opts.ready_after;
            self.pending_ready.push((due, key.clone()));
        }
        self.objects.insert(key.clone(), stored);
        self.notify("ADDED", &key, out.clone());
        if !daemon_pods.is_empty() {
            let pods = self.served("", "pods").expect("built in");
            for p in daemon_pods {
                let _ = self.create(&pods, ns, p);
            }
        }
        (StatusCode::CREATED, out)
    }

    fn update(
        &mut self,
        r: &Resource,
        ns: Option<&str>,
        name: &str,
        mut v: Value,
        status_only: bool,
    ) -> (StatusCode, Value) {
        secret_string_data(r, &mut v);
        let key = self.key(r, ns, name);
        let Some(current) = self.objects.get(&key) else {
            return not_found(r, name);
        };
        let cur_rv = current.value["metadata"]["resourceVersion"].clone();
        match v["metadata"]["resourceVersion"].as_str() {
            None => {
                return status(StatusCode::UNPROCESSABLE_ENTITY, "Invalid",
                    format!("{} {name:?} is invalid: metadata.resourceVersion: Invalid value: 0x0: must be specified for an update", r.kind))
            }
            Some(rv) if cur_rv != rv => {
                let mut s = status(StatusCode::CONFLICT, "Conflict",
                    format!("Operation cannot be fulfilled on {} {name:?}: the object has been modified; please apply your changes to the latest version and try again", r.group_resource()));
                s.1["details"] = json!({"name": name, "group": r.group, "kind": r.plural});
                return s;
            }
            _ => {}
        }
        let mut next = current.value.clone();
        if status_only {
            next["status"] = v["status"].take();
        } else if !self.has_status_subresource(r) {
            // The status is part of the object.
            for f in ["uid", "creationTimestamp", "generation"] {
                v["metadata"][f] = current.value["metadata"][f].clone();
            }
            next = v;
        } else {
            // Server-owned fields stay; status only through the status subresource.
            for f in ["uid", "creationTimestamp"] {
                v["metadata"][f] = current.value["metadata"][f].clone();
            }
            if v["spec"] != current.value["spec"] {
                let g = current.value["metadata"]["generation"]
                    .as_u64()
                    .unwrap_or(1)
                    + 1;
                v["metadata"]["generation"] = json!(g);
            } else {
                v["metadata"]["generation"] = current.value["metadata"]["generation"].clone();
            }
            let st = current.value.get("status").cloned();
            next = v;
            match st {
                Some(s) => next["status"] = s,
                None => {
                    next.as_object_mut().unwrap().remove("status");
                }
            }
        }
        let rv = self.next_rv();
        next["metadata"]["resourceVersion"] = json!(rv);
        let created = self.objects[&key].created;
        let stored = Stored {
            value: next,
            created,
        };
        let out = self.with_status(r, &stored);
        self.objects.insert(key.clone(), stored);
        self.notify("MODIFIED", &key, out.clone());
        (StatusCode::OK, out)
    }

    /// Whether the status of `r` is written only through `/status`: built-in resources,
    /// and CRDs that declare the subresource.
    fn has_status_subresource(&self, r: &Resource) -> bool {
        !self
            .no_status_subresource
            .contains(&(r.group.clone(), r.plural.clone()))
    }

    /// A node port of `svc` that a stored Service already uses.
    fn node_port_taken(&self, svc: &Value) -> Option<u64> {
        let ports = |v: &Value| -> Vec<u64> {
            v["spec"]["ports"]
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(|p| p["nodePort"].as_u64())
                .collect()
        };
        let used: Vec<u64> = self
            .objects
            .iter()
            .filter(|(k, _)| k.0.is_empty() && k.1 == "services")
            .flat_map(|(_, o)| ports(&o.value))
            .collect();
        ports(svc).into_iter().find(|p| used.contains(p))
    }

    /// A merge patch; of the status only through the status subresource, and never of the
    /// status otherwise, as for resources with a status subresource.
    fn patch(
        &mut self,
        r: &Resource,
        ns: Option<&str>,
        name: &str,
        p: &Value,
        status_only: bool,
    ) -> (StatusCode, Value) {
        let key = self.key(r, ns, name);
        let Some(current) = self.objects.get(&key) else {
            return not_found(r, name);
        };
        let mut next = current.value.clone();
        // A resourceVersion in the patch is a precondition, as on the real server.
        if let Some(rv) = p["metadata"]["resourceVersion"].as_str() {
            if next["metadata"]["resourceVersion"] != rv {
                return status(StatusCode::CONFLICT, "Conflict",
                    format!("Operation cannot be fulfilled on {} {name:?}: the object has been modified; please apply your changes to the latest version and try again", r.group_resource()));
            }
        }
        let status = next.get("status").cloned();
        if !status_only && !self.has_status_subresource(r) {
            merge_patch(&mut next, p);
        } else if status_only {
            let mut st = status.unwrap_or(Value::Null);
            merge_patch(&mut st, &p["status"]);
            next["status"] = st;
        } else {
            merge_patch(&mut next, p);
            match status {
                Some(s) => next["status"] = s,
                None => {
                    next.as_object_mut().unwrap().remove("status");
                }
            }
        }
        secret_string_data(r, &mut next);
        next["metadata"]["resourceVersion"] = json!(self.next_rv());
        let created = self.objects[&key].created;
        let stored = Stored {
            value: next,
            created,
        };
        let out = self.with_status(r, &stored);
        self.objects.insert(key.clone(), stored);
        self.notify("MODIFIED", &key, out.clone());
        (StatusCode::OK, out)
    }
}
