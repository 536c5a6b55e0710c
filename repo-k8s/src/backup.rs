//! Backing up Kubernetes objects into a cairn repository.
//!
//! Each object is stored as its own blob: canonical JSON, so an unchanged object is the same
//! blob and costs nothing in the next backup. The snapshot's tree is laid out like Velero's
//! backup tarball:
//!
//! ```text
//! metadata/version                                   "1.1.0"
//! resources/<resource.group>/namespaces/<ns>/<name>.json
//! resources/<resource.group>/cluster/<name>.json
//! resource-list.json                                 {"<group/version>/<Kind>": ["ns/name", …]}
//! results.json                                       Velero's Result: warnings and errors
//! ```
//!
//! and the snapshot is tagged `backup-name=<name>`.

use std::collections::BTreeMap;
use std::time::Duration;

use repo_core::tree::{ChunkRef, Name, Node, NodeKind};
use repo_core::{BlobId, Error, IndexedRepository, ObjectId, Snapshot, WriterOptions};
use serde::Serialize;

use crate::discovery::Discovery;
use crate::filter::{BackupFilter, Filter};
use crate::object::Object;

/// Velero's backup format version, written to `metadata/version`.
pub const FORMAT_VERSION: &str = "1.1.0";

/// Tag key naming the backup.
pub const BACKUP_NAME_TAG: &str = "backup-name";

/// Velero's `Result`: messages for Velero itself, the cluster, and per namespace.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, serde::Deserialize)]
pub struct VeleroResult {
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub velero: Vec<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub cluster: Vec<String>,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub namespaces: BTreeMap<String, Vec<String>>,
}

impl VeleroResult {
    /// Adds a message for a namespace (`""`: the cluster).
    pub fn add(&mut self, ns: &str, msg: String) {
        if ns.is_empty() {
            self.cluster.push(msg);
        } else {
            self.namespaces.entry(ns.to_string()).or_default().push(msg);
        }
    }

    pub fn is_empty(&self) -> bool {
        self.velero.is_empty() && self.cluster.is_empty() && self.namespaces.is_empty()
    }

    pub fn len(&self) -> usize {
        self.messages().count()
    }

    /// Every message with its namespace (`None` for Velero's and the cluster's).
    pub fn messages(&self) -> impl Iterator<Item = (Option<&str>, &str)> {
        self.velero
            .iter()
            .chain(&self.cluster)
            .map(|m| (None, m.as_str()))
            .chain(
                self.namespaces
                    .iter()
                    .flat_map(|(ns, ms)| ms.iter().map(move |m| (Some(ns.as_str()), m.as_str()))),
            )
    }
}

/// `results.json`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, serde::Deserialize)]
pub struct Results {
    pub warnings: VeleroResult,
    pub errors: VeleroResult,
}

/// Options of a backup.
#[derive(Clone, Debug, Default)]
pub struct BackupOptions {
    pub filter: BackupFilter,
    /// Recorded as the snapshot's expiry (Velero's `--ttl`).
    pub ttl: Option<Duration>,
    /// Host recorded in the snapshot (default: this host).
    pub host: Option<String>,
}

/// What a backup did.
#[derive(Clone, Debug, Serialize)]
pub struct BackupOutcome {
    pub snapshot: ObjectId,
    pub items: usize,
    pub new_bytes: u64,
    pub stored_bytes: u64,
    pub results: Results,
}

/// Where an object goes in the tree: `resources/<gr>/namespaces/<ns>/<name>.json` or
/// `resources/<gr>/cluster/<name>.json`. An object of an unknown resource is filed under
/// `<lowercase kind>s.<group>`, the guess kubectl makes too.
pub fn object_path(o: &Object, d: &Discovery) -> Vec<String> {
    let mut p = vec!["resources".to_string(), d.group_resource_of(o)];
    match d.namespace_of(o) {
        Some(ns) => {
            p.push("namespaces".into());
            p.push(ns.into());
        }
        None => p.push("cluster".into()),
    }
    p.push(format!("{}.json", o.name()));
    p
}

/// A directory being assembled.
#[derive(Default)]
struct Dir {
    files: BTreeMap<String, (Vec<ChunkRef>, u64)>,
    dirs: BTreeMap<String, Dir>,
}

impl Dir {
    /// Adds a file; false if the path is taken.
    fn add(&mut self, path: &[String], content: (Vec<ChunkRef>, u64)) -> bool {
        let (name, parents) = path.split_last().expect("non-empty path");
        let mut d = self;
        for p in parents {
            d = d.dirs.entry(p.clone()).or_default();
        }
        if d.files.contains_key(name) || d.dirs.contains_key(name) {
            return false;
        }
        d.files.insert(name.clone(), content);
        true
    }

    fn write(self, w: &repo_core::Writer<'_>, mtime: &str) -> repo_core::Result<BlobId> {
        let mut nodes = Vec::with_capacity(self.files.len() + self.dirs.len());
        for (name, sub) in self.dirs {
            let id = sub.write(w, mtime)?;
            nodes.push(Node {
                name: Name(name.into_bytes()),
                kind: NodeKind::Dir,
                mode: 0o755,
                mtime: mtime.into(),
                subtree: Some(id),
                ..Default::default()
            });
        }
        for (name, (content, size)) in self.files {
            nodes.push(Node {
                name: Name(name.into_bytes()),
                kind: NodeKind::File,
                mode: 0o644,
                size,
                mtime: mtime.into(),
                content,
                ..Default::default()
            });
        }
        nodes.sort_by(|a, b| a.name.cmp(&b.name));
        w.write_dir(nodes)
    }
}

/// Backs up `objects` (with where each came from, for messages) as backup `name`.
/// `input_problems` (documents that were not objects) are recorded as errors.
pub fn backup(
    repo: &IndexedRepository,
    name: &str,
    objects: &[(Object, String)],
    input_problems: &[String],
    opts: &BackupOptions,
) -> repo_core::Result<BackupOutcome> {
    let mut d = Discovery::built_in();
    let mut results = Results::default();
    for p in input_problems {
        results.errors.add("", p.clone());
    }
    for (o, origin) in objects
        .iter()
        .filter(|(o, _)| o.kind() == "CustomResourceDefinition")
    {
        if let Err(e) = d.add_crd(o) {
            results.warnings.add(
                "",
                format!("{origin}: {e}; its custom resources are filed by guess"),
            );
        }
    }
    let filter = Filter::new(&opts.filter, &d)
        .map_err(|errs| Error::invalid("backup filter", errs.join("; ")))?;
    let refs: Vec<&Object> = objects.iter().map(|(o, _)| o).collect();
    let selection = filter.select(&refs, &d);
    for (ns, ws) in &selection.warnings {
        for w in ws {
            results.warnings.add(ns, w.clone());
        }
    }

    let writer = repo.writer(WriterOptions::default())?;
    let mut root = Dir::default();
    let mut resource_list: BTreeMap<String, Vec<String>> = BTreeMap::new();
    let mut where_from: BTreeMap<Vec<String>, (&str, blake3::Hash)> = BTreeMap::new();
    let mut duplicates: BTreeMap<Vec<String>, usize> = BTreeMap::new();
    let mut items = 0;
    for (i, _) in &selection.items {
        let (o, origin) = &objects[*i];
        let path = object_path(o, &d);
        let file = path.last().expect("non-empty");
        if let Err(e) = Name(file.as_bytes().to_vec()).validate() {
            results.errors.add(
                o.namespace().unwrap_or_default(),
                format!(
                    "{origin}: {} {:?} cannot be stored: {e}",
                    o.kind(),
                    o.name()
                ),
            );
            continue;
        }
        let json = o.to_json();
        let digest = blake3::hash(&json);
        let ns = d.namespace_of(o).unwrap_or_default();
        if let Some((first, first_digest)) = where_from.get(&path) {
            if *first_digest == digest {
                results.warnings.add(
                    ns,
                    format!(
                        "{origin}: {} {:?} is identical to the one in {first}; stored once",
                        o.kind(),
                        o.name()
                    ),
                );
                continue;
            }
            // Same identity, different content: both are kept, the later one under
            // `duplicates/<n>/…`, and the warning names both.
            let n = duplicates.entry(path.clone()).or_insert(1usize);
            *n += 1;
            let mut dup_path = vec!["duplicates".to_string(), n.to_string()];
            dup_path.extend(path.iter().cloned());
            let chunks = writer.write_bytes(&json)?;
            root.add(&dup_path, (chunks, json.len() as u64));
            results.warnings.add(ns, format!("{origin}: {} {:?} differs from the one in {first} with the same namespace and name; both kept, this one as {}", o.kind(), o.name(), dup_path.join("/")));
            items += 1;
            continue;
        }
        let chunks = writer.write_bytes(&json)?;
        root.add(&path, (chunks, json.len() as u64));
        where_from.insert(path, (origin.as_str(), digest));
        let entry = match d.namespace_of(o) {
            Some(ns) => format!("{ns}/{}", o.name()),
            None => o.name().to_string(),
        };
        resource_list
            .entry(format!("{}/{}", o.api_version(), o.kind()))
            .or_default()
            .push(entry);
        items += 1;
    }
    for list in resource_list.values_mut() {
        list.sort();
    }
    let mut add_file = |path: &[&str], bytes: Vec<u8>| -> repo_core::Result<()> {
        let chunks = writer.write_bytes(&bytes)?;
        let path: Vec<String> = path.iter().map(|s| s.to_string()).collect();
        root.add(&path, (chunks, bytes.len() as u64));
        Ok(())
    };
    add_file(&["metadata", "version"], FORMAT_VERSION.as_bytes().to_vec())?;
    add_file(
        &["resource-list.json"],
        serde_json::to_vec(&resource_list).expect("serializes"),
    )?;
    add_file(
        &["results.json"],
        serde_json::to_vec(&results).expect("serializes"),
    )?;
    // No times in the tree: an unchanged directory of objects is then the same tree blob
    // in the next backup (the snapshot has the time).
    let root_id = root.write(&writer, "")?;
    writer.flush()?;
    let stats = writer.stats();
    let host = opts.host.clone().unwrap_or_else(repo_core::time::hostname);
    let mut snap = Snapshot::new(
        &format!("k8s:{name}"),
        &host,
        vec![format!("{BACKUP_NAME_TAG}={name}")],
        root_id,
    )?;
    snap.summary.files = items as u64;
    snap.summary.new_blobs = stats.new_blobs;
    snap.summary.new_bytes = stats.new_bytes;
    snap.summary.stored_bytes = stats.stored_bytes;
    snap.expires = opts
        .ttl
        .map(|t| repo_core::time::format_rfc3339(std::time::SystemTime::now() + t));
    let id = writer.commit(snap)?;
    Ok(BackupOutcome {
        snapshot: id,
        items,
        new_bytes: stats.new_bytes,
        stored_bytes: stats.stored_bytes,
        results,
    })
}

/// Reads every `.yaml`, `.yml` and `.json` file below `dir` (sorted, so backups of the same
/// directory list objects in the same order). Unreadable files and bad documents become
/// problems naming the file.
pub fn read_dir(dir: &std::path::Path) -> (Vec<(Object, String)>, Vec<String>) {
    let mut paths = Vec::new();
    let mut problems = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(p) = stack.pop() {
        match std::fs::read_dir(&p) {
            Ok(entries) => {
                for e in entries.flatten() {
                    let path = e.path();
                    match e.file_type() {
                        Ok(t) if t.is_dir() => stack.push(path),
                        Ok(t) if t.is_file() => {
                            if matches!(
                                path.extension().and_then(|x| x.to_str()),
                                Some("yaml" | "yml" | "json")
                            ) {
                                paths.push(path);
                            }
                        }
                        _ => {}
                    }
                }
            }
            Err(e) => problems.push(format!("{}: cannot list: {e}", p.display())),
        }
    }
    paths.sort();
    let mut objects = Vec::new();
    for p in paths {
        let shown = p.strip_prefix(dir).unwrap_or(&p).display().to_string();
        match std::fs::read(&p) {
            Ok(bytes) => {
                let m = crate::manifest::read(&bytes, &shown);
                objects.extend(m.objects);
                problems.extend(m.problems.into_iter().map(|e| e.to_string()));
            }
            Err(e) => problems.push(format!("{shown}: cannot read: {e}")),
        }
    }
    (objects, problems)
}
