//! A Kubernetes cluster, through kube-rs: discovery, paginated lists, get, create, merge
//! patch, with retries and backoff for throttling, conflicts and unavailable servers.
//!
//! The rest of repo-k8s is synchronous; this adapter owns a small tokio runtime and blocks
//! on each call. Objects go through kube's `DynamicObject`, so any resource works, custom
//! ones included.
//!
//! What has run against what: the tests run this adapter against an in-process API server
//! (`tests/src/apiserver.rs`) that is itself checked against the real `kubectl`. It has not
//! run against a real kube-apiserver in this project's CI; see the README.

use std::path::Path;
use std::time::Duration;

use kube::api::{Api, DynamicObject, ListParams, Patch, PatchParams, PostParams};
use kube::core::{ApiResource, Status};
use kube::discovery::{verbs, Scope};
use serde_json::Value;

use crate::discovery::Resource;
use crate::object::Object;

pub use crate::error::ClusterError;

impl ClusterError {
    /// A failure on this side (no answer from the API server involved).
    fn local(what: impl Into<String>, message: impl Into<String>) -> ClusterError {
        ClusterError {
            what: what.into(),
            message: message.into(),
            code: None,
            reason: String::new(),
            causes: Vec::new(),
        }
    }

    fn new(what: &str, e: kube::Error) -> ClusterError {
        match e {
            kube::Error::Api(s) => ClusterError {
                what: what.to_string(),
                message: format!("{} ({} {})", s.message, s.code, s.reason),
                code: Some(s.code),
                reason: s.reason.clone(),
                causes: s
                    .details
                    .iter()
                    .flat_map(|d| &d.causes)
                    .map(|c| c.message.clone())
                    .collect(),
            },
            other => ClusterError::local(
                what.to_string(),
                format!("{other} (is the API server reachable? check the kubeconfig)"),
            ),
        }
    }
}

/// How calls are retried.
#[derive(Clone, Debug)]
pub struct Retry {
    /// Attempts per call, the first included.
    pub attempts: u32,
    /// Wait before the second attempt; doubled each time.
    pub first_wait: Duration,
    /// Longest wait between attempts.
    pub max_wait: Duration,
}

impl Default for Retry {
    fn default() -> Self {
        Retry {
            attempts: 6,
            first_wait: Duration::from_millis(200),
            max_wait: Duration::from_secs(5),
        }
    }
}

/// Whether an error is worth another attempt: throttling (429), a conflict (409 Conflict,
/// not AlreadyExists), the server busy or failing (500, 502, 503, 504), or no answer.
fn retryable(e: &kube::Error) -> bool {
    match e {
        kube::Error::Api(s) => is_transient(s),
        kube::Error::HyperError(_) | kube::Error::Service(_) => true,
        _ => false,
    }
}

fn is_transient(s: &Status) -> bool {
    matches!(s.code, 429 | 500 | 502 | 503 | 504) || (s.code == 409 && s.reason == "Conflict")
}

/// What creating an object did.
#[derive(Debug)]
pub enum Created {
    Created(Object),
    /// An object with this name exists; here it is, as the cluster has it.
    AlreadyExists(Object),
}

/// A connection to a cluster.
pub struct Cluster {
    rt: tokio::runtime::Runtime,
    client: kube::Client,
    /// How to connect again (informers run on threads with clients of their own).
    pub(crate) config: kube::Config,
    pub retry: Retry,
    /// Page size of lists (Velero's default, 500).
    pub page_size: u32,
}

/// `call`, retried with backoff (see [`Retry`]).
async fn retrying<T, F, Fut>(retry: &Retry, what: &str, call: F) -> Result<T, ClusterError>
where
    F: Fn() -> Fut,
    Fut: std::future::Future<Output = Result<T, kube::Error>>,
{
    let mut wait = retry.first_wait;
    let mut attempt = 1;
    loop {
        match call().await {
            Ok(v) => return Ok(v),
            Err(e) if attempt < retry.attempts && retryable(&e) => {
                tokio::time::sleep(wait).await;
                wait = (wait * 2).min(retry.max_wait);
                attempt += 1;
            }
            Err(e) => return Err(ClusterError::new(what, e)),
        }
    }
}

pub(crate) fn api_resource(r: &Resource) -> ApiResource {
    ApiResource {
        group: r.group.clone(),
        version: r.version.clone(),
        api_version: r.api_version(),
        kind: r.kind.clone(),
        plural: r.plural.clone(),
    }
}

pub(crate) fn to_object(d: DynamicObject, r: &Resource) -> Result<Object, String> {
    let mut v = serde_json::to_value(d).map_err(|e| e.to_string())?;
    // List items come without kind and apiVersion.
    if let Some(m) = v.as_object_mut() {
        m.insert("apiVersion".into(), Value::String(r.api_version()));
        m.insert("kind".into(), Value::String(r.kind.clone()));
    }
    Object::from_value(v, &r.group_resource()).map_err(|e| e.to_string())
}

impl Cluster {
    /// Connects with a kubeconfig file (else `KUBECONFIG`, `~/.kube/config`, or the
    /// in-cluster service account), optionally in a named context.
    pub fn connect(kubeconfig: Option<&Path>, context: Option<&str>) -> crate::Result<Cluster> {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(|e| ClusterError::local("starting the cluster client", e.to_string()))?;
        let config_err = |e: String| {
            ClusterError::local(
                "reading the kubeconfig",
                format!("{e} (give --kubeconfig FILE or set KUBECONFIG)"),
            )
        };
        let options = kube::config::KubeConfigOptions {
            context: context.map(str::to_string),
            ..Default::default()
        };
        let config = rt.block_on(async {
            match kubeconfig {
                Some(path) => {
                    let file = kube::config::Kubeconfig::read_from(path)
                        .map_err(|e| config_err(format!("{}: {e}", path.display())))?;
                    kube::Config::from_custom_kubeconfig(file, &options)
                        .await
                        .map_err(|e| config_err(e.to_string()))
                }
                None if context.is_some() => kube::Config::from_kubeconfig(&options)
                    .await
                    .map_err(|e| config_err(e.to_string())),
                None => kube::Config::infer()
                    .await
                    .map_err(|e| config_err(e.to_string())),
            }
        })?;
        let client = {
            let _guard = rt.enter();
            kube::Client::try_from(config.clone())
                .map_err(|e| ClusterError::new("connecting", e))?
        };
        Ok(Cluster {
            rt,
            client,
            config,
            retry: Retry::default(),
            page_size: 500,
        })
    }

    /// Runs `call` with retries and backoff (see [`Retry`]).
    fn with_retry<T, F, Fut>(&self, what: &str, call: F) -> Result<T, ClusterError>
    where
        F: Fn() -> Fut,
        Fut: std::future::Future<Output = Result<T, kube::Error>>,
    {
        self.rt.block_on(retrying(&self.retry, what, call))
    }

    fn api(&self, r: &Resource, ns: Option<&str>) -> Api<DynamicObject> {
        let ar = api_resource(r);
        match ns {
            Some(ns) if r.namespaced => Api::namespaced_with(self.client.clone(), ns, &ar),
            _ => Api::all_with(self.client.clone(), &ar),
        }
    }

    /// The resources the cluster serves that can be listed, in their preferred versions.
    pub fn discover(&self) -> crate::Result<Vec<Resource>> {
        let d = self.with_retry("discovering the API", || {
            kube::discovery::Discovery::new(self.client.clone()).run()
        })?;
        let mut out = Vec::new();
        for group in d.groups() {
            for (ar, caps) in group.recommended_resources() {
                if !caps.supports_operation(verbs::LIST) {
                    continue;
                }
                out.push(Resource {
                    group: ar.group.clone(),
                    version: ar.version.clone(),
                    singular: ar.kind.to_ascii_lowercase(),
                    kind: ar.kind,
                    plural: ar.plural,
                    short_names: Vec::new(),
                    namespaced: caps.scope == Scope::Namespaced,
                });
            }
        }
        Ok(out)
    }

    /// Every object of a resource (in one namespace, or all), a page at a time.
    pub fn list(&self, r: &Resource, ns: Option<&str>) -> crate::Result<Vec<Object>> {
        self.list_selected(r, ns, None)
    }

    /// [`Cluster::list`] with a label selector.
    pub fn list_selected(
        &self,
        r: &Resource,
        ns: Option<&str>,
        selector: Option<&str>,
    ) -> crate::Result<Vec<Object>> {
        let api = self.api(r, ns);
        let (list, _) = self.rt.block_on(self.list_pages(&api, r, ns, selector))?;
        Ok(list)
    }

    /// Every page of a list, and the list's resourceVersion (where a watch starts).
    async fn list_pages(
        &self,
        api: &Api<DynamicObject>,
        r: &Resource,
        ns: Option<&str>,
        selector: Option<&str>,
    ) -> Result<(Vec<Object>, String), ClusterError> {
        let what = format!(
            "listing {}{}",
            r.group_resource(),
            ns.map(|n| format!(" in namespace {n}")).unwrap_or_default()
        );
        let mut out = Vec::new();
        let rv = self
            .for_each_listed(api, r, selector, &what, &mut |o| {
                out.push(o);
                Ok(())
            })
            .await?;
        Ok((out, rv))
    }

    /// Calls `f` with each object of a list, a page at a time; returns the list's
    /// resourceVersion.
    async fn for_each_listed(
        &self,
        api: &Api<DynamicObject>,
        r: &Resource,
        selector: Option<&str>,
        what: &str,
        f: &mut dyn FnMut(Object) -> Result<(), ClusterError>,
    ) -> Result<String, ClusterError> {
        let mut token: Option<String> = None;
        loop {
            let mut lp = ListParams::default().limit(self.page_size);
            if let Some(t) = &token {
                lp = lp.continue_token(t);
            }
            if let Some(s) = selector {
                lp = lp.labels(s);
            }
            let page = retrying(&self.retry, what, || api.list(&lp)).await?;
            for item in page.items {
                f(to_object(item, r).map_err(|e| {
                    ClusterError::local(what, format!("an item is not an object: {e}"))
                })?)?;
            }
            match page.metadata.continue_ {
                Some(t) if !t.is_empty() => token = Some(t),
                _ => return Ok(page.metadata.resource_version.unwrap_or_default()),
            }
        }
    }

    /// Waits until `done` holds for the objects of a resource (in a namespace, matching a
    /// selector): lists them, then watches for changes from the list's resourceVersion,
    /// listing again when a watch ends or the server says the version is too old. At the
    /// deadline, `Err` carries the objects as they were.
    pub fn wait_for(
        &self,
        r: &Resource,
        ns: Option<&str>,
        selector: Option<&str>,
        deadline: std::time::Instant,
        done: &dyn Fn(&[Object]) -> bool,
    ) -> Result<(), Vec<Object>> {
        use futures::StreamExt;
        use kube::api::{WatchEvent, WatchParams};
        use std::collections::BTreeMap;
        let api = self.api(r, ns);
        self.rt.block_on(async {
            let mut last: Vec<Object> = Vec::new();
            loop {
                let left = deadline.saturating_duration_since(std::time::Instant::now());
                let (list, rv) = match self.list_pages(&api, r, ns, selector).await {
                    Ok(x) => x,
                    Err(_) if left.is_zero() => return Err(last),
                    Err(_) => {
                        tokio::time::sleep(Duration::from_millis(200).min(left)).await;
                        continue;
                    }
                };
                if done(&list) {
                    return Ok(());
                }
                if left.is_zero() {
                    return Err(list);
                }
                let key = |o: &Object| {
                    (
                        o.namespace().unwrap_or("").to_string(),
                        o.name().to_string(),
                    )
                };
                let mut now: BTreeMap<(String, String), Object> =
                    list.into_iter().map(|o| (key(&o), o)).collect();
                let mut wp = WatchParams::default().timeout(left.as_secs().clamp(1, 290) as u32);
                if let Some(s) = selector {
                    wp = wp.labels(s);
                }
                let Ok(stream) = api.watch(&wp, &rv).await else {
                    last = now.into_values().collect();
                    tokio::time::sleep(Duration::from_millis(200).min(left)).await;
                    continue;
                };
                let mut stream = std::pin::pin!(stream);
                loop {
                    let left = deadline.saturating_duration_since(std::time::Instant::now());
                    let event = match tokio::time::timeout(left, stream.next()).await {
                        Err(_) => return Err(now.into_values().collect()),
                        // The watch ended (its timeout, or the connection): list again.
                        Ok(None) | Ok(Some(Err(_))) => break,
                        Ok(Some(Ok(e))) => e,
                    };
                    match event {
                        WatchEvent::Added(d) | WatchEvent::Modified(d) => {
                            if let Ok(o) = to_object(d, r) {
                                now.insert(key(&o), o);
                            }
                        }
                        WatchEvent::Deleted(d) => {
                            if let Ok(o) = to_object(d, r) {
                                now.remove(&key(&o));
                            }
                        }
                        WatchEvent::Bookmark(_) => continue,
                        // 410 Gone and the like: list again.
                        WatchEvent::Error(_) => break,
                    }
                    let objects: Vec<Object> = now.values().cloned().collect();
                    if done(&objects) {
                        return Ok(());
                    }
                }
                last = now.into_values().collect();
            }
        })
    }

    /// One object, or `None` if it does not exist.
    pub fn get(&self, r: &Resource, ns: Option<&str>, name: &str) -> crate::Result<Option<Object>> {
        let api = self.api(r, ns);
        let what = format!("reading {}", describe(r, ns, name));
        let got = self.with_retry(&what, || api.get_opt(name))?;
        let object = got.map(|d| to_object(d, r)).transpose();
        Ok(object.map_err(|e| ClusterError::local(what, e))?)
    }

    /// Creates an object; if one with its name exists, returns that one instead.
    pub fn create(&self, r: &Resource, o: &Object) -> crate::Result<Created> {
        let ns = o.namespace();
        let api = self.api(r, ns);
        let what = format!("creating {}", describe(r, ns, o.name()));
        let body: DynamicObject = serde_json::from_value(Value::Object(o.as_value().clone()))
            .map_err(|e| ClusterError::local(what.clone(), e.to_string()))?;
        let pp = PostParams::default();
        match self.with_retry(&what, || api.create(&pp, &body)) {
            Ok(d) => Ok(Created::Created(
                to_object(d, r).map_err(|e| ClusterError::local(what, e))?,
            )),
            // A Service refused only because its node ports are taken exists if one of
            // its name does (Velero's isAlreadyExistsError: every cause says so).
            Err(e)
                if e.reason == "AlreadyExists"
                    || (r.group_resource() == "services"
                        && !e.causes.is_empty()
                        && e.causes
                            .iter()
                            .all(|c| c.contains("provided port is already allocated"))) =>
            {
                match self.get(r, ns, o.name())? {
                    Some(existing) => Ok(Created::AlreadyExists(existing)),
                    None if e.reason != "AlreadyExists" => Err(e.into()),
                    // Deleted in between: one more try.
                    None => self.create(r, o),
                }
            }
            Err(e) => Err(e.into()),
        }
    }

    /// Deletes an object; `Ok(false)` if it was not there.
    pub fn delete(&self, r: &Resource, ns: Option<&str>, name: &str) -> crate::Result<bool> {
        let api = self.api(r, ns);
        let what = format!("deleting {}", describe(r, ns, name));
        // What depends on it goes too (a Job's pods), as kubectl deletes.
        let dp = kube::api::DeleteParams::background();
        match self.with_retry(&what, || api.delete(name, &dp)) {
            Ok(_) => Ok(true),
            Err(e) if e.code == Some(404) => Ok(false),
            Err(e) => Err(e.into()),
        }
    }

    /// Applies a JSON merge patch (RFC 7386).
    pub fn merge_patch(
        &self,
        r: &Resource,
        ns: Option<&str>,
        name: &str,
        patch: &Value,
    ) -> crate::Result<Object> {
        let api = self.api(r, ns);
        let what = format!("patching {}", describe(r, ns, name));
        let (pp, patch) = (PatchParams::default(), Patch::Merge(patch));
        let d = self.with_retry(&what, || api.patch(name, &pp, &patch))?;
        Ok(to_object(d, r).map_err(|e| ClusterError::local(what, e))?)
    }
}

impl Cluster {
    /// Sets an object's status through its status subresource (a JSON merge patch).
    pub fn patch_status(
        &self,
        r: &Resource,
        ns: Option<&str>,
        name: &str,
        status: &Value,
    ) -> crate::Result<Object> {
        let api = self.api(r, ns);
        let what = format!("setting the status of {}", describe(r, ns, name));
        let body = serde_json::json!({ "status": status });
        let (pp, patch) = (PatchParams::default(), Patch::Merge(&body));
        let d = self.with_retry(&what, || api.patch_status(name, &pp, &patch))?;
        Ok(to_object(d, r).map_err(|e| ClusterError::local(what, e))?)
    }
}

/// Everything a cluster holds, for a backup.
#[derive(Debug, Default)]
pub struct Contents {
    /// Objects with where each came from (`cluster: <resource.group>`).
    pub objects: Vec<(Object, String)>,
    /// Resources that could not be listed.
    pub problems: Vec<String>,
    /// The built-in table with what the cluster serves added (custom resources included).
    pub discovery: crate::discovery::Discovery,
}

impl Cluster {
    /// Lists every object of every resource the cluster serves (in all namespaces),
    /// a page at a time.
    pub fn read_all(&self) -> crate::Result<Contents> {
        let resources = self.discover()?;
        let mut snap = Contents {
            discovery: crate::discovery::Discovery::built_in(),
            ..Default::default()
        };
        for r in resources {
            match self.list(&r, None) {
                Ok(list) => {
                    let origin = format!("cluster: {}", r.group_resource());
                    snap.objects
                        .extend(list.into_iter().map(|o| (o, origin.clone())));
                }
                Err(e) => snap.problems.push(e.to_string()),
            }
            if snap.discovery.for_group_kind(&r.group, &r.kind).is_none() {
                snap.discovery.add(r);
            }
        }
        Ok(snap)
    }
}

/// Everything a cluster holds, spooled to a temporary file for a backup (see
/// [`crate::backup::Spooled`]).
pub struct SpooledContents {
    pub objects: crate::backup::Spooled,
    /// The built-in table with what the cluster serves added (custom resources included).
    pub discovery: crate::discovery::Discovery,
}

impl Cluster {
    /// [`Cluster::read_all`], with the objects spooled to a temporary file instead of held
    /// in memory; resources that could not be listed are the inventory's problems.
    pub fn read_all_spooled(&self) -> crate::Result<SpooledContents> {
        let resources = self.discover()?;
        let spool_error = |e: std::io::Error| {
            ClusterError::local(
                "spooling the cluster's objects",
                format!("{e} (is the temporary directory full? set TMPDIR)"),
            )
        };
        let mut out = SpooledContents {
            objects: crate::backup::Spooled::new().map_err(spool_error)?,
            discovery: crate::discovery::Discovery::built_in(),
        };
        for r in resources {
            let api = self.api(&r, None);
            let what = format!("listing {}", r.group_resource());
            let origin = format!("cluster: {}", r.group_resource());
            let objects = &mut out.objects;
            let listed = self
                .rt
                .block_on(self.for_each_listed(&api, &r, None, &what, &mut |o| {
                    objects.add(&o, origin.clone()).map_err(spool_error)
                }));
            if let Err(e) = listed {
                out.objects.inventory.problems.push(e.to_string());
            }
            if out.discovery.for_group_kind(&r.group, &r.kind).is_none() {
                out.discovery.add(r);
            }
        }
        Ok(out)
    }
}

/// `deployments.apps shop/web`, `namespaces shop`.
pub fn describe(r: &Resource, ns: Option<&str>, name: &str) -> String {
    match ns {
        Some(ns) => format!("{} {ns}/{name}", r.group_resource()),
        None => format!("{} {name}", r.group_resource()),
    }
}

pub use crate::hooks::ExecOutput;

impl Cluster {
    /// Runs `command` in `container` (default: the pod's first) of pod `ns/pod` through the
    /// pods `exec` subresource, for at most `timeout`. `Err` when it could not run or did
    /// not end in time (the remote command may go on: Velero's hooks behave the same).
    pub fn exec(
        &self,
        ns: &str,
        pod: &str,
        container: Option<&str>,
        command: &[String],
        timeout: Duration,
    ) -> Result<ExecOutput, ClusterError> {
        use k8s_openapi::api::core::v1::Pod;
        use kube::api::AttachParams;
        use tokio::io::AsyncReadExt;
        let what = format!("running {command:?} in pod {ns}/{pod}");
        let api: Api<Pod> = Api::namespaced(self.client.clone(), ns);
        let mut params = AttachParams::default()
            .stdout(true)
            .stderr(true)
            .stdin(false);
        if let Some(c) = container {
            params = params.container(c);
        }
        self.rt.block_on(async {
            let run = async {
                let mut attached = api
                    .exec(pod, command.to_vec(), &params)
                    .await
                    .map_err(|e| ClusterError::new(&what, e))?;
                let (mut out, mut err) = (String::new(), String::new());
                if let Some(mut s) = attached.stdout() {
                    let _ = s.read_to_string(&mut out).await;
                }
                if let Some(mut s) = attached.stderr() {
                    let _ = s.read_to_string(&mut err).await;
                }
                let status = match attached.take_status() {
                    Some(s) => s.await,
                    None => None,
                };
                let exit_code = match status {
                    Some(s) if s.status.as_deref() == Some("Failure") => s
                        .details
                        .iter()
                        .flat_map(|d| d.causes.iter().flatten())
                        .find(|c| c.reason.as_deref() == Some("ExitCode"))
                        .and_then(|c| c.message.as_deref()?.parse().ok())
                        .unwrap_or(1),
                    _ => 0,
                };
                Ok(ExecOutput {
                    stdout: out,
                    stderr: err,
                    exit_code,
                })
            };
            match tokio::time::timeout(timeout, run).await {
                Ok(r) => r,
                Err(_) => Err(ClusterError::local(
                    what.clone(),
                    format!("timed out after {}", humantime::format_duration(timeout)),
                )),
            }
        })
    }
}
