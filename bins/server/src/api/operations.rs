//! What the API does: it creates and reads the same `velero.io` objects the controllers
//! run (one source of truth), and refuses to start an operation while another runs.

use repo_k8s::cluster::Cluster;
use repo_k8s::velero::{resource, Backup, DeleteBackupRequest, Restore};
use repo_k8s::Object;
use serde::Deserialize;
use serde_json::{json, Map, Value};

use crate::workflow::{STEPS_ANNOTATION, WORKFLOW_ANNOTATION};

/// Annotation: what the caller said the backup is for.
pub const DESCRIPTION_ANNOTATION: &str = "cairn.io/description";
/// Annotation: the API request that made the object.
pub const REQUEST_ANNOTATION: &str = "cairn.io/request-id";
/// Annotations the backup controller writes when a backup ends: bytes new in the
/// repository, and bytes the backup refers to.
pub const NEW_BYTES_ANNOTATION: &str = "cairn.io/new-bytes";
pub const STORED_BYTES_ANNOTATION: &str = "cairn.io/stored-bytes";

/// An answer other than success: the HTTP status and what to tell the caller.
#[derive(Debug)]
pub struct Refusal {
    pub status: u16,
    pub message: String,
    /// For 409: the operation that runs.
    pub running: Option<Value>,
}

impl Refusal {
    pub fn new(status: u16, message: impl Into<String>) -> Refusal {
        Refusal {
            status,
            message: message.into(),
            running: None,
        }
    }
}

fn unavailable(e: impl std::fmt::Display) -> Refusal {
    Refusal::new(
        503,
        format!("the Kubernetes API server could not be used: {e}; try again"),
    )
}

/// A backup asked for.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct BackupRequest {
    #[serde(default)]
    pub description: Option<String>,
    /// A workflow ConfigMap in the server's namespace.
    #[serde(default)]
    pub workflow: Option<String>,
    #[serde(default)]
    pub included_namespaces: Option<Vec<String>>,
    #[serde(default)]
    pub excluded_namespaces: Option<Vec<String>>,
    #[serde(default)]
    pub storage_location: Option<String>,
    #[serde(default)]
    pub ttl: Option<String>,
    #[serde(default)]
    pub default_volumes_to_fs_backup: Option<bool>,
}

/// A restore asked for.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct RestoreRequest {
    #[serde(default)]
    pub workflow: Option<String>,
    #[serde(default)]
    pub namespace_mapping: Option<Map<String, Value>>,
    #[serde(default)]
    pub included_namespaces: Option<Vec<String>>,
    /// A phases ConfigMap (`cairn.io/phases`).
    #[serde(default)]
    pub phases: Option<String>,
}

/// An S3 storage location to set (the white paper's SetBackupStorageLocation).
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct LocationRequest {
    /// The BackupStorageLocation's name (default `default`).
    #[serde(default)]
    pub name: Option<String>,
    /// The S3 endpoint (`https://s3.example.com:9000`).
    #[serde(default)]
    pub endpoint: String,
    #[serde(default)]
    pub bucket: String,
    #[serde(default)]
    pub prefix: Option<String>,
    #[serde(default)]
    pub region: Option<String>,
    #[serde(default)]
    pub access_key: String,
    #[serde(default)]
    pub secret_key: String,
    /// Whether it is the default location (default: yes).
    #[serde(default)]
    pub default: Option<bool>,
}

/// How long the live check of a location may take.
const LOCATION_CHECK: std::time::Duration = std::time::Duration::from_secs(20);

/// The API's view of the cluster.
pub struct Operations<'a> {
    pub cluster: &'a Cluster,
    pub namespace: &'a str,
    /// How repositories are opened (for their health), and those already unlocked.
    pub open_options: &'a repo_core::OpenOptions,
    pub unlocked: &'a crate::repository::Unlocked,
}

fn phase(o: &Object) -> &str {
    o.str_at(&["status", "phase"]).unwrap_or("")
}

/// A name for a new object: `<prefix>-<UTC time>-<4 hex>`.
fn new_name(prefix: &str) -> String {
    let now = chrono::Utc::now().format("%Y%m%d%H%M%S");
    format!("{prefix}-{now}-{:04x}", rand::random::<u16>())
}

fn annotations(o: &Object) -> Map<String, Value> {
    o.get(&["metadata", "annotations"])
        .and_then(Value::as_object)
        .cloned()
        .unwrap_or_default()
}

/// The steps' states of a workflow operation (none without one).
fn steps_of(o: &Object) -> Value {
    annotations(o)
        .get(STEPS_ANNOTATION)
        .and_then(Value::as_str)
        .and_then(|t| serde_json::from_str(t).ok())
        .unwrap_or_else(|| json!([]))
}

impl Operations<'_> {
    fn list<K: repo_k8s::velero::Kind>(&self) -> Result<Vec<Object>, Refusal> {
        let mut all = self
            .cluster
            .list(&resource::<K>(), Some(self.namespace))
            .map_err(unavailable)?;
        // Newest first.
        all.sort_by(|a, b| {
            let t = |o: &Object| {
                o.str_at(&["metadata", "creationTimestamp"])
                    .unwrap_or("")
                    .to_string()
            };
            t(b).cmp(&t(a)).then_with(|| b.name().cmp(a.name()))
        });
        Ok(all)
    }

    fn get<K: repo_k8s::velero::Kind>(&self, name: &str) -> Result<Option<Object>, Refusal> {
        self.cluster
            .get(&resource::<K>(), Some(self.namespace), name)
            .map_err(unavailable)
    }

    /// The operation that runs (a Backup or Restore New or InProgress, a
    /// DeleteBackupRequest not yet Processed), if any: 409's body.
    pub fn running(&self) -> Result<Option<Value>, Refusal> {
        for o in self.list::<Backup>()? {
            if matches!(phase(&o), "" | "New" | "InProgress") {
                return Ok(Some(
                    json!({"kind": "Backup", "name": o.name(), "phase": phase(&o)}),
                ));
            }
        }
        for o in self.list::<Restore>()? {
            if matches!(phase(&o), "" | "New" | "InProgress") {
                return Ok(Some(
                    json!({"kind": "Restore", "name": o.name(), "phase": phase(&o)}),
                ));
            }
        }
        for o in self.list::<DeleteBackupRequest>()? {
            if phase(&o) != "Processed" {
                return Ok(Some(
                    json!({"kind": "DeleteBackupRequest", "name": o.name(), "phase": phase(&o)}),
                ));
            }
        }
        Ok(None)
    }

    fn refuse_if_running(&self) -> Result<(), Refusal> {
        match self.running()? {
            None => Ok(()),
            Some(r) => Err(Refusal {
                status: 409,
                message: format!(
                    "{} {} is {}; wait until it ends, then ask again",
                    r["kind"].as_str().unwrap_or_default(),
                    r["name"].as_str().unwrap_or_default(),
                    match r["phase"].as_str() {
                        Some("" | "New") | None => "waiting to run",
                        Some(_) => "running",
                    }
                ),
                running: Some(r),
            }),
        }
    }

    fn check_workflow(&self, name: &str) -> Result<(), Refusal> {
        let r = repo_k8s::Discovery::built_in()
            .resolve("configmaps")
            .expect("built in")
            .clone();
        match self.cluster.get(&r, Some(self.namespace), name).map_err(unavailable)? {
            Some(_) => Ok(()),
            None => Err(Refusal::new(
                400,
                format!(
                    "workflow {name:?}: no ConfigMap of that name in namespace {}; create it (key workflow.yaml) or name another",
                    self.namespace
                ),
            )),
        }
    }

    fn create(&self, r: &repo_k8s::Resource, v: Value) -> Result<(), Refusal> {
        let o = Object::from_value(v, &r.plural).map_err(|e| Refusal::new(400, e.to_string()))?;
        match self.cluster.create(r, &o) {
            Ok(repo_k8s::cluster::Created::Created(_)) => Ok(()),
            Ok(repo_k8s::cluster::Created::AlreadyExists(_)) => Err(Refusal::new(
                409,
                format!("{} {} already exists; ask again", r.kind, o.name()),
            )),
            Err(e) => Err(Refusal::new(
                400,
                format!("the API server refused the {}: {e}", r.kind),
            )),
        }
    }

    /// Starts a backup: its Backup's name.
    pub fn start_backup(&self, req: &BackupRequest, request_id: &str) -> Result<String, Refusal> {
        self.refuse_if_running()?;
        if let Some(w) = &req.workflow {
            self.check_workflow(w)?;
        }
        let name = new_name("backup");
        let mut annotations = json!({REQUEST_ANNOTATION: request_id});
        if let Some(d) = &req.description {
            annotations[DESCRIPTION_ANNOTATION] = json!(d);
        }
        if let Some(w) = &req.workflow {
            annotations[WORKFLOW_ANNOTATION] = json!(w);
        }
        let mut spec = json!({});
        let fields = [
            ("includedNamespaces", json!(req.included_namespaces)),
            ("excludedNamespaces", json!(req.excluded_namespaces)),
            ("storageLocation", json!(req.storage_location)),
            ("ttl", json!(req.ttl)),
            (
                "defaultVolumesToFsBackup",
                json!(req.default_volumes_to_fs_backup),
            ),
        ];
        for (k, v) in fields {
            if !v.is_null() {
                spec[k] = v;
            }
        }
        let backup = json!({"apiVersion": "velero.io/v1", "kind": "Backup",
            "metadata": {"name": name, "namespace": self.namespace, "annotations": annotations},
            "spec": spec});
        self.create(&resource::<Backup>(), backup)?;
        Ok(name)
    }

    /// Starts a restore of backup `backup`: its Restore's name.
    pub fn start_restore(
        &self,
        backup: &str,
        req: &RestoreRequest,
        request_id: &str,
    ) -> Result<String, Refusal> {
        let b = self
            .get::<Backup>(backup)?
            .ok_or_else(|| Refusal::new(404, format!("no backup named {backup:?}")))?;
        if phase(&b) != "Completed" {
            return Err(Refusal::new(
                400,
                format!(
                    "Backup must be in Completed phase; backup {backup} is {}",
                    match phase(&b) {
                        "" => "New",
                        p => p,
                    }
                ),
            ));
        }
        self.refuse_if_running()?;
        if let Some(w) = &req.workflow {
            self.check_workflow(w)?;
        }
        let name = new_name(&format!("{}-restore", short(backup)));
        let mut annotations = json!({REQUEST_ANNOTATION: request_id});
        if let Some(w) = &req.workflow {
            annotations[WORKFLOW_ANNOTATION] = json!(w);
        }
        if let Some(p) = &req.phases {
            annotations[crate::restores::PHASES_ANNOTATION] = json!(p);
        }
        let mut spec = json!({"backupName": backup});
        if let Some(m) = &req.namespace_mapping {
            spec["namespaceMapping"] = Value::Object(m.clone());
        }
        if let Some(n) = &req.included_namespaces {
            spec["includedNamespaces"] = json!(n);
        }
        let restore = json!({"apiVersion": "velero.io/v1", "kind": "Restore",
            "metadata": {"name": name, "namespace": self.namespace, "annotations": annotations},
            "spec": spec});
        self.create(&resource::<Restore>(), restore)?;
        Ok(name)
    }

    /// Asks for backup `name` to be deleted (a DeleteBackupRequest): its name.
    pub fn delete_backup(&self, name: &str, request_id: &str) -> Result<String, Refusal> {
        if self.get::<Backup>(name)?.is_none() {
            return Err(Refusal::new(404, format!("no backup named {name:?}")));
        }
        self.refuse_if_running()?;
        let request = new_name(&format!("{}-delete", short(name)));
        let v = json!({"apiVersion": "velero.io/v1", "kind": "DeleteBackupRequest",
            "metadata": {"name": request, "namespace": self.namespace,
                "annotations": {REQUEST_ANNOTATION: request_id},
                "labels": {"velero.io/backup-name": repo_k8s::restore::valid_label_value(name)}},
            "spec": {"backupName": name}});
        self.create(&resource::<DeleteBackupRequest>(), v)?;
        Ok(request)
    }

    /// Every backup, newest first, as [`backup_view`] shows it.
    pub fn backups(&self) -> Result<Vec<Value>, Refusal> {
        Ok(self.list::<Backup>()?.iter().map(backup_view).collect())
    }

    pub fn backup(&self, name: &str) -> Result<Value, Refusal> {
        self.get::<Backup>(name)?
            .map(|o| backup_view(&o))
            .ok_or_else(|| Refusal::new(404, format!("no backup named {name:?}")))
    }

    /// Sets an S3 storage location after checking it live (the bucket answers with these
    /// keys; a repository already there opens with the password in the cluster). Nothing
    /// changes unless the check passes.
    pub fn set_location(&self, req: &LocationRequest) -> Result<Value, Refusal> {
        let missing: Vec<&str> = [
            ("endpoint", &req.endpoint),
            ("bucket", &req.bucket),
            ("accessKey", &req.access_key),
            ("secretKey", &req.secret_key),
        ]
        .iter()
        .filter(|(_, v)| v.trim().is_empty())
        .map(|(k, _)| *k)
        .collect();
        if !missing.is_empty() {
            return Err(Refusal::new(
                400,
                format!("missing: {}", missing.join(", ")),
            ));
        }
        if !(req.endpoint.starts_with("http://") || req.endpoint.starts_with("https://")) {
            return Err(Refusal::new(
                400,
                format!(
                    "endpoint {:?} must start with http:// or https://",
                    req.endpoint
                ),
            ));
        }
        let name = req.name.clone().unwrap_or_else(|| "default".into());
        let secret = format!("cairn-location-{name}");
        let region = req.region.clone().unwrap_or_else(|| "us-east-1".into());
        let mut object_storage = json!({"bucket": req.bucket});
        if let Some(p) = req.prefix.as_ref().filter(|p| !p.is_empty()) {
            object_storage["prefix"] = json!(p);
        }
        let bsl = json!({"apiVersion": "velero.io/v1", "kind": "BackupStorageLocation",
            "metadata": {"name": name, "namespace": self.namespace},
            "spec": {"provider": "aws", "default": req.default.unwrap_or(true), "objectStorage": object_storage,
                "credential": {"name": secret, "key": "cloud"},
                "config": {"s3Url": req.endpoint, "region": region, "s3ForcePathStyle": "true"}}});
        let credentials = format!(
            "[default]\naws_access_key_id={}\naws_secret_access_key={}\n",
            req.access_key.trim(),
            req.secret_key.trim()
        );
        let typed: repo_k8s::velero::BackupStorageLocation = serde_json::from_value(bsl.clone())
            .map_err(|e| Refusal::new(400, format!("not a location: {e}")))?;
        let target = crate::location::target(&typed, Some(&credentials))
            .map_err(|e| Refusal::new(400, e))?;
        self.check_location(&typed, &target)?;
        // Checked: the credentials, then the location.
        use base64::Engine as _;
        let encoded = base64::engine::general_purpose::STANDARD.encode(&credentials);
        let secret_object = json!({"apiVersion": "v1", "kind": "Secret",
            "metadata": {"name": secret, "namespace": self.namespace}, "data": {"cloud": encoded}});
        self.put(
            &repo_k8s::Discovery::built_in()
                .resolve("secrets")
                .expect("built in")
                .clone(),
            secret_object,
        )?;
        self.put(&resource::<repo_k8s::velero::BackupStorageLocation>(), bsl)?;
        Ok(json!({"name": name, "bucket": req.bucket, "endpoint": req.endpoint, "checked": true}))
    }

    /// Lists the location's prefix (the endpoint answers, the keys and bucket are right)
    /// and, if a repository is there, opens it with the cluster's password.
    fn check_location(
        &self,
        bsl: &repo_k8s::velero::BackupStorageLocation,
        target: &crate::location::Target,
    ) -> Result<(), Refusal> {
        let (url, options) = (target.url.clone(), target.storage.clone());
        let password = crate::repository::secret_value(
            self.cluster,
            self.namespace,
            &target.password_secret.0,
            &target.password_secret.1,
        )
        .ok();
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let checked = (|| -> Result<(), String> {
                let storage =
                    repo_core::storage::open_url(&url, &options).map_err(|e| e.to_string())?;
                storage
                    .list("")
                    .map_err(|e| format!("listing the bucket failed: {e}"))?;
                let Some(password) = password else {
                    return Ok(());
                };
                match repo_core::Repository::open(storage, &password, Default::default()) {
                    Ok(_) | Err(repo_core::Error::NoRepository { .. }) => Ok(()),
                    Err(repo_core::Error::WrongPassword { .. }) => Err(format!("a repository is there, made with another password than the cluster's (Secret {})", crate::location::PASSWORD_SECRET)),
                    Err(e) => Err(format!("the repository there could not be read: {e}")),
                }
            })();
            let _ = tx.send(checked);
        });
        match rx.recv_timeout(LOCATION_CHECK) {
            Ok(Ok(())) => Ok(()),
            Ok(Err(e)) => Err(Refusal::new(400, format!("location {}: {e}; nothing was changed", bsl.metadata.name))),
            Err(_) => Err(Refusal::new(400, format!(
                "location {}: {} did not answer within {} s; check the endpoint; nothing was changed",
                bsl.metadata.name, bsl.spec.config.get("s3Url").map(String::as_str).unwrap_or(""), LOCATION_CHECK.as_secs()))),
        }
    }

    /// Creates `v`, or replaces the object of its name.
    fn put(&self, r: &repo_k8s::Resource, v: Value) -> Result<(), Refusal> {
        let o = Object::from_value(v.clone(), &r.plural)
            .map_err(|e| Refusal::new(400, e.to_string()))?;
        match self.cluster.create(r, &o).map_err(unavailable)? {
            repo_k8s::cluster::Created::Created(_) => Ok(()),
            repo_k8s::cluster::Created::AlreadyExists(_) => {
                let patch = json!({"spec": v["spec"], "data": v["data"]});
                let patch = match r.kind.as_str() {
                    "Secret" => json!({"data": v["data"]}),
                    _ => json!({"spec": patch["spec"]}),
                };
                self.cluster
                    .merge_patch(r, Some(self.namespace), o.name(), &patch)
                    .map_err(unavailable)?;
                Ok(())
            }
        }
    }

    /// What backup `name` holds: its resources by kind (`ns/name`), its namespaces, and
    /// its pod volumes with their sizes, read from its repository.
    pub fn contents(&self, name: &str) -> Result<Value, Refusal> {
        let b = self
            .get::<Backup>(name)?
            .ok_or_else(|| Refusal::new(404, format!("no backup named {name:?}")))?;
        if !matches!(phase(&b), "Completed" | "PartiallyFailed") {
            return Err(Refusal::new(
                400,
                format!(
                    "backup {name} is {}; only a Completed or PartiallyFailed backup has contents",
                    phase(&b)
                ),
            ));
        }
        let location = b.str_at(&["spec", "storageLocation"]).unwrap_or("default");
        let missing = format!("backup {name}'s storage location {location:?} does not exist");
        let repo = self.open_location(location, missing)?;
        let read =
            |e: repo_k8s::Error| Refusal::new(502, format!("backup {name} could not be read: {e}"));
        let snapshot = repo_k8s::catalog::backup_snapshot(&repo, name).map_err(read)?;
        let resources = repo_k8s::catalog::resource_list(&repo, &snapshot).map_err(read)?;
        let mut namespaces: Vec<&str> = resources
            .values()
            .flatten()
            .filter_map(|id| id.split_once('/').map(|(ns, _)| ns))
            .collect();
        namespaces.sort_unstable();
        namespaces.dedup();
        let volumes: Vec<Value> = crate::pod_volumes::backed_up(&repo, &snapshot)
            .map_err(|e| Refusal::new(502, e))?
            .iter()
            .map(|p| {
                let st = p.status.clone().unwrap_or_default();
                json!({"namespace": p.spec.pod.namespace, "pod": p.spec.pod.name, "volume": p.spec.volume,
                    "node": p.spec.node, "bytes": st.progress.map(|g| g.total_bytes), "snapshot": st.snapshot_id})
            })
            .collect();
        let counts: Map<String, Value> = resources
            .iter()
            .map(|(kind, items)| (kind.clone(), json!(items.len())))
            .collect();
        Ok(
            json!({"name": name, "namespaces": namespaces, "counts": counts, "resources": resources,
            "volumes": volumes, "bytes": backup_view(&b)["bytes"]}),
        )
    }

    /// Every Schedule: its cron, whether paused, its last backup.
    pub fn schedules(&self) -> Result<Vec<Value>, Refusal> {
        Ok(self
            .list::<repo_k8s::velero::Schedule>()?
            .iter()
            .map(|o| {
                json!({"name": o.name(), "schedule": o.get(&["spec", "schedule"]),
                    "paused": o.get(&["spec", "paused"]).and_then(Value::as_bool).unwrap_or(false),
                    "phase": status_field(o, "phase"), "lastBackup": status_field(o, "lastBackup"),
                    "lastSkipped": status_field(o, "lastSkipped"),
                    "includedNamespaces": o.get(&["spec", "template", "includedNamespaces"])})
            })
            .collect())
    }

    /// Every BackupStorageLocation and its last check.
    pub fn locations(&self) -> Result<Vec<Value>, Refusal> {
        Ok(self
            .list::<repo_k8s::velero::BackupStorageLocation>()?
            .iter()
            .map(|o| {
                json!({"name": o.name(), "provider": o.get(&["spec", "provider"]),
                    "bucket": o.get(&["spec", "objectStorage", "bucket"]),
                    "prefix": o.get(&["spec", "objectStorage", "prefix"]),
                    "default": o.get(&["spec", "default"]).and_then(Value::as_bool).unwrap_or(false),
                    "accessMode": o.get(&["spec", "accessMode"]),
                    "phase": status_field(o, "phase"), "message": status_field(o, "message"),
                    "lastValidationTime": status_field(o, "lastValidationTime")})
            })
            .collect())
    }

    /// The repository of storage location `name` (404 with `missing` when there is none).
    fn open_location(
        &self,
        name: &str,
        missing: String,
    ) -> Result<repo_core::IndexedRepository, Refusal> {
        let r = resource::<repo_k8s::velero::BackupStorageLocation>();
        let o = self
            .cluster
            .get(&r, Some(self.namespace), name)
            .map_err(unavailable)?
            .ok_or_else(|| Refusal::new(404, missing))?;
        let bsl: repo_k8s::velero::BackupStorageLocation = crate::typed(&o)
            .ok_or_else(|| Refusal::new(500, format!("storage location {name} is not readable")))?;
        crate::repository::open(
            self.cluster,
            &bsl,
            self.namespace,
            self.open_options,
            self.unlocked,
        )
        .map_err(|e| {
            Refusal::new(
                502,
                format!("the repository of {name} could not be opened: {e}"),
            )
        })
    }

    /// The health of location `name`'s repository: its maintenance (the last runs, the
    /// next full one due), the space a garbage collection would free, and its size.
    pub fn repository(&self, name: &str) -> Result<Value, Refusal> {
        let repo = self.open_location(name, format!("no storage location named {name:?}"))?;
        let st = repo_core::maintenance::status(&repo, &Default::default()).map_err(|e| {
            Refusal::new(
                502,
                format!("the repository of {name} could not be read: {e}"),
            )
        })?;
        let last = |mode: Option<&str>| {
            st.history
                .iter()
                .rev()
                .find(|h| mode.is_none_or(|m| h.mode == m))
                .map(|h| json!({"started": h.started, "mode": h.mode, "outcome": h.outcome, "summary": h.summary,
                    "freedBytes": h.freed_bytes}))
        };
        Ok(json!({"location": name, "repository": st.repository,
            "maintenanceRunning": st.running.is_some(),
            "lastMaintenance": last(None), "lastFullMaintenance": last(Some("full")),
            "nextFullDue": st.next_full_due,
            "reclaimableBytes": st.stats.unreferenced_bytes, "reclaimableMeasured": st.stats.unreferenced_measured,
            "packs": st.stats.packs, "packBytes": st.stats.pack_bytes, "indexBytes": st.stats.index_bytes,
            "pendingPlans": st.plans.len()}))
    }

    pub fn restores(&self) -> Result<Vec<Value>, Refusal> {
        Ok(self.list::<Restore>()?.iter().map(restore_view).collect())
    }

    pub fn restore(&self, name: &str) -> Result<Value, Refusal> {
        self.get::<Restore>(name)?
            .map(|o| restore_view(&o))
            .ok_or_else(|| Refusal::new(404, format!("no restore named {name:?}")))
    }
}

/// A name cut short enough to be the start of another object's name.
fn short(name: &str) -> &str {
    let end = name.char_indices().nth(200).map_or(name.len(), |(i, _)| i);
    &name[..end]
}

fn status_field(o: &Object, field: &str) -> Value {
    o.get(&["status", field]).cloned().unwrap_or(Value::Null)
}

fn number_annotation(o: &Object, key: &str) -> Value {
    annotations(o)
        .get(key)
        .and_then(Value::as_str)
        .and_then(|s| s.parse::<u64>().ok())
        .map_or(Value::Null, Value::from)
}

/// What Backups and Restores show alike.
fn view(o: &Object) -> Value {
    let a = annotations(o);
    json!({
        "name": o.name(),
        "phase": match phase(o) { "" => "New", p => p },
        "workflow": a.get(WORKFLOW_ANNOTATION),
        "steps": steps_of(o),
        "startTimestamp": status_field(o, "startTimestamp"),
        "completionTimestamp": status_field(o, "completionTimestamp"),
        "progress": status_field(o, "progress"),
        "warnings": status_field(o, "warnings").as_u64().unwrap_or(0),
        "errors": status_field(o, "errors").as_u64().unwrap_or(0),
        "failureReason": status_field(o, "failureReason"),
        "validationErrors": status_field(o, "validationErrors"),
        "hookStatus": status_field(o, "hookStatus"),
    })
}

/// A Backup as the API shows it.
pub fn backup_view(o: &Object) -> Value {
    let mut v = view(o);
    v["description"] = json!(annotations(o).get(DESCRIPTION_ANNOTATION));
    v["expiration"] = status_field(o, "expiration");
    v["bytes"] = json!({"new": number_annotation(o, NEW_BYTES_ANNOTATION), "stored": number_annotation(o, STORED_BYTES_ANNOTATION)});
    v["storageLocation"] = json!(o.get(&["spec", "storageLocation"]));
    v
}

/// A Restore as the API shows it.
pub fn restore_view(o: &Object) -> Value {
    let a = annotations(o);
    let report = a
        .get(crate::restores::PHASE_REPORT_ANNOTATION)
        .and_then(Value::as_str)
        .and_then(|t| serde_json::from_str::<Value>(t).ok());
    let mut v = view(o);
    v["backupName"] = json!(o.get(&["spec", "backupName"]));
    v["currentPhase"] = json!(a.get(crate::restores::CURRENT_PHASE_ANNOTATION));
    v["phases"] = json!(report);
    v
}
