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

use std::borrow::Cow;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use repo_core::tree::{ChunkRef, Name, Node, NodeKind};
use repo_core::walk::{Walk, WalkBudget};
use repo_core::{BlobId, DirSplit, Error, IndexedRepository, ObjectId, Snapshot, WriterOptions};
use serde::Serialize;

use crate::discovery::Discovery;
use crate::filter::{BackupFilter, Filter};
use crate::object::Object;
use crate::summary::Summary;

/// Velero's backup format version, written to `metadata/version`.
pub const FORMAT_VERSION: &str = "1.1.0";

use crate::catalog::find_backup;
pub use crate::catalog::BACKUP_NAME_TAG;

pub use crate::velero::{Results, VeleroResult};

/// Options of a backup.
#[derive(Clone, Debug, Default)]
pub struct BackupOptions {
    pub filter: BackupFilter,
    /// Recorded as the snapshot's expiry (Velero's `--ttl`).
    pub ttl: Option<Duration>,
    /// Host recorded in the snapshot (default: this host).
    pub host: Option<String>,
    /// The resources known before the backup's own CRDs are added (default: the built-in
    /// table; an imported tarball adds what its paths say).
    pub discovery: Discovery,
    /// Velero's `--ordered-resources`: per resource, items (`ns/name`, or `name` when
    /// cluster-scoped) backed up first, in this order
    /// ([`crate::resource_policy::parse_ordered_resources`]).
    pub ordered_resources: BTreeMap<String, Vec<String>>,
    /// Velero's resource policies: the include/exclude policy joins `filter` once the
    /// backup's resources are known.
    pub resource_policies: Option<crate::resource_policy::ResourcePolicies>,
    /// The Velero Backup object the backup was made for (its JSON), stored beside it as
    /// `velero-backup.json` (as Velero keeps it beside its tarball), so a sync into another
    /// cluster recreates it as it was.
    pub backup_object: Option<Vec<u8>>,
    /// Other files stored at the root of the backup, by name (the server's list of pod
    /// volume backups).
    pub extra_files: Vec<(String, Vec<u8>)>,
    /// What went wrong or was odd outside the objects (pod volumes, hooks), as
    /// `(namespace, message)`: recorded in the backup's results.
    pub errors: Vec<(String, String)>,
    pub warnings: Vec<(String, String)>,
    /// Pods left out of the backup (`(namespace, name)`): their pre hooks failed with
    /// `onError: Fail`, as Velero leaves such a pod out.
    pub left_out_pods: std::collections::BTreeSet<(String, String)>,
    /// Cancellation and progress (objects stored out of those selected).
    pub control: crate::control::Control,
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

impl BackupOutcome {
    /// Velero's phase for the finished backup: errors make it PartiallyFailed (the
    /// objects that could be read are stored).
    pub fn phase(&self) -> crate::velero::BackupPhase {
        if self.results.errors.is_empty() {
            crate::velero::BackupPhase::Completed
        } else {
            crate::velero::BackupPhase::PartiallyFailed
        }
    }
}

/// Puts the items `ordered` names first, in its order (Velero's `--ordered-resources`); the
/// rest keep their order. A name not in the backup is a warning, in Velero's words.
fn order_selection(
    selection: &mut crate::filter::Selection,
    inventory: &Inventory,
    d: &Discovery,
    ordered: &BTreeMap<String, Vec<String>>,
    results: &mut Results,
) {
    if ordered.is_empty() {
        return;
    }
    let mut rank: BTreeMap<(String, &str, &str), usize> = BTreeMap::new();
    let mut ordered_grs = std::collections::BTreeSet::new();
    for (resource, names) in ordered {
        let gr = match d.resolve(resource) {
            Ok(r) => r.group_resource(),
            Err(e) => {
                results
                    .warnings
                    .add("", format!("--ordered-resources: {e}"));
                continue;
            }
        };
        ordered_grs.insert(gr.clone());
        for n in names {
            let (ns, name) = n.split_once('/').unwrap_or(("", n));
            let next = rank.len();
            rank.entry((gr.clone(), ns, name)).or_insert(next);
        }
    }
    let key = |i: usize| {
        let s = &inventory.summaries[i];
        let gr = d
            .for_summary(s)
            .map(|r| r.group_resource())
            .unwrap_or_default();
        rank.get(&(gr, s.namespace().unwrap_or(""), s.name()))
            .copied()
    };
    let found: std::collections::BTreeSet<usize> = selection
        .items
        .iter()
        .filter_map(|(i, _)| key(*i))
        .collect();
    for ((_, ns, name), r) in &rank {
        if !found.contains(r) {
            let shown = if ns.is_empty() {
                name.to_string()
            } else {
                format!("{ns}/{name}")
            };
            results
                .warnings
                .add(ns, format!("Cannot find resource '{shown}'."));
        }
    }
    // Within each resource, as Velero sorts: its listed items first, by rank, then its
    // others as they were; the places of each resource's items in the whole stay.
    let mut by_resource: BTreeMap<String, Vec<usize>> = BTreeMap::new();
    for (at, (i, _)) in selection.items.iter().enumerate() {
        let s = &inventory.summaries[*i];
        let gr = d
            .for_summary(s)
            .map(|r| r.group_resource())
            .unwrap_or_default();
        if ordered_grs.contains(&gr) {
            by_resource.entry(gr).or_default().push(at);
        }
    }
    for places in by_resource.values() {
        let mut items: Vec<(usize, crate::filter::Reason)> =
            places.iter().map(|&at| selection.items[at]).collect();
        items.sort_by_key(|(i, _)| key(*i).unwrap_or(usize::MAX));
        for (&at, item) in places.iter().zip(items) {
            selection.items[at] = item;
        }
    }
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

/// Directories of objects are cut into parts of about 8 entries: a day's changes touch a
/// few objects in many directories, and each changed object then rewrites one small part
/// instead of its whole directory's listing. With 1% of 100,000 objects changed
/// (`benches/k8s.sh`), tree blobs were 80% of the new bytes with whole directories.
const OBJECT_DIRS: DirSplit = DirSplit {
    above: 16,
    min_part: 2,
    average: 8,
};

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

    /// Entries below this directory (files and directories), for the snapshot's summary.
    fn entries(&self) -> u64 {
        let below: u64 = self.dirs.values().map(Dir::entries).sum();
        below + self.dirs.len() as u64 + self.files.len() as u64
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
        w.write_dir_split(nodes, OBJECT_DIRS)
    }
}

/// Where a backup reads objects in full, by their index in the list selection ran over.
pub trait ObjectSource {
    /// Object `i`, or why it cannot be read.
    fn object(&mut self, i: usize) -> Result<Cow<'_, Object>, crate::ObjectError>;
}

impl ObjectSource for &[(Object, String)] {
    fn object(&mut self, i: usize) -> Result<Cow<'_, Object>, crate::ObjectError> {
        Ok(Cow::Borrowed(&self[i].0))
    }
}

/// The objects a backup chooses from: a [`Summary`] of each for selection (with where it
/// came from, for messages), the CRDs whole (discovery reads them), and the input's
/// problems (documents that were not objects), recorded as errors.
#[derive(Debug, Default)]
pub struct Inventory {
    pub summaries: Vec<Summary>,
    pub origins: Vec<String>,
    pub crds: Vec<(Object, String)>,
    pub problems: Vec<String>,
}

impl Inventory {
    /// Adds an object; its index is the one the [`ObjectSource`] is asked for.
    pub fn add(&mut self, o: &Object, origin: String) {
        if o.kind() == "CustomResourceDefinition" {
            self.crds.push((o.clone(), origin.clone()));
        }
        self.summaries.push(Summary::of(o));
        self.origins.push(origin);
    }
}

/// Objects held in memory as compact JSON, with their [`Inventory`]: a backup of objects
/// that came from a stream (a Velero tarball) without holding them parsed, which took five
/// times the memory.
#[derive(Debug, Default)]
pub struct HeldObjects {
    pub inventory: Inventory,
    json: Vec<Box<serde_json::value::RawValue>>,
}

impl HeldObjects {
    /// Adds an object; its index is its position in the inventory.
    pub fn add(&mut self, o: &Object, origin: String) {
        self.inventory.add(o, origin);
        self.json.push(o.to_raw_json());
    }

    pub fn len(&self) -> usize {
        self.json.len()
    }

    pub fn is_empty(&self) -> bool {
        self.json.is_empty()
    }

    /// Object `i`, parsed again.
    pub fn get(&self, i: usize) -> Object {
        let value = serde_json::from_str(self.json[i].get()).expect("written by add");
        Object::from_value(value, &self.inventory.origins[i]).expect("checked when added")
    }

    /// Where object `i` came from.
    pub fn origin(&self, i: usize) -> &str {
        &self.inventory.origins[i]
    }

    /// Every object with where it came from, parsed one at a time.
    pub fn iter(&self) -> impl Iterator<Item = (Object, &str)> {
        (0..self.len()).map(|i| (self.get(i), self.origin(i)))
    }
}

impl ObjectSource for &HeldObjects {
    fn object(&mut self, i: usize) -> Result<Cow<'_, Object>, crate::ObjectError> {
        Ok(Cow::Owned(self.get(i)))
    }
}

/// Objects spooled to an unnamed temporary file as JSON, with their [`Inventory`]: a backup
/// of a whole cluster holds a summary of each object in memory, not the objects (100,000
/// objects parsed took a gigabyte).
pub struct Spooled {
    pub inventory: Inventory,
    pub source: SpoolSource,
}

/// The objects of a [`Spooled`], read back one at a time.
pub struct SpoolSource {
    file: std::io::BufWriter<std::fs::File>,
    /// Offset and length of each object's JSON.
    at: Vec<(u64, u32)>,
    end: u64,
    flushed: bool,
}

impl Spooled {
    /// An empty spool in the system's temporary directory (removed when dropped, or by
    /// the system if the process dies).
    pub fn new() -> std::io::Result<Spooled> {
        Ok(Spooled {
            inventory: Inventory::default(),
            source: SpoolSource {
                file: std::io::BufWriter::with_capacity(1 << 20, tempfile::tempfile()?),
                at: Vec::new(),
                end: 0,
                flushed: true,
            },
        })
    }

    /// Adds an object; its index is its position in the inventory.
    pub fn add(&mut self, o: &Object, origin: String) -> std::io::Result<()> {
        use std::io::Write;
        let json = o.to_json();
        let src = &mut self.source;
        src.file.write_all(&json)?;
        src.at.push((src.end, json.len() as u32));
        src.end += json.len() as u64;
        src.flushed = false;
        self.inventory.add(o, origin);
        Ok(())
    }
}

impl ObjectSource for SpoolSource {
    fn object(&mut self, i: usize) -> Result<Cow<'_, Object>, crate::ObjectError> {
        use std::io::Write;
        use std::os::unix::fs::FileExt;
        let fail = |reason: String| crate::ObjectError {
            origin: "the backup's spool file".into(),
            reason,
        };
        if !self.flushed {
            self.file.flush().map_err(|e| fail(e.to_string()))?;
            self.flushed = true;
        }
        let (offset, len) = self.at[i];
        let mut bytes = vec![0; len as usize];
        self.file
            .get_ref()
            .read_exact_at(&mut bytes, offset)
            .map_err(|e| fail(format!("reading it back: {e}")))?;
        let value = serde_json::from_slice(&bytes).map_err(|e| fail(e.to_string()))?;
        Ok(Cow::Owned(Object::from_value(
            value,
            "the backup's spool file",
        )?))
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
) -> crate::Result<BackupOutcome> {
    let mut inventory = Inventory {
        problems: input_problems.to_vec(),
        ..Default::default()
    };
    for (o, origin) in objects {
        inventory.add(o, origin.clone());
    }
    backup_from(repo, name, &inventory, &mut { objects }, opts)
}

/// Backs up the manifests below `dir` as backup `name`, in two passes: selection runs over
/// summaries, then each file with a selected object is read again to store it. Memory then
/// grows with the number of objects, not with their size.
pub fn backup_dir(
    repo: &IndexedRepository,
    name: &str,
    dir: &Path,
    opts: &BackupOptions,
) -> crate::Result<BackupOutcome> {
    let (inventory, mut source) = scan_dir(dir);
    backup_from(repo, name, &inventory, &mut source, opts)
}

/// Backs up the objects of `inventory`, reading each selected one in full from `source`.
/// A name already in use is refused, as Velero refuses a second Backup of a name: a
/// restore by name must mean one backup.
pub fn backup_from(
    repo: &IndexedRepository,
    name: &str,
    inventory: &Inventory,
    source: &mut dyn ObjectSource,
    opts: &BackupOptions,
) -> crate::Result<BackupOutcome> {
    if let Some((id, snap)) = find_backup(repo, name)? {
        return Err(crate::Error::invalid(format!(
            "a backup named {name:?} already exists (snapshot {}, taken {}); choose \
                 another name, or remove that one first with `node-agent forget {}`",
            id.short(),
            snap.time,
            id.short()
        )));
    }
    let mut d = opts.discovery.clone();
    let mut results = Results::default();
    for p in &inventory.problems {
        results.errors.add("", p.clone());
    }
    for (ns, e) in &opts.errors {
        results.errors.add(ns, e.clone());
    }
    for (ns, w) in &opts.warnings {
        results.warnings.add(ns, w.clone());
    }
    // The first CRD of a name wins, as the first object of an identity is the one stored
    // at its path and restored.
    let mut crds_seen = std::collections::HashSet::new();
    for (o, origin) in &inventory.crds {
        if !crds_seen.insert(o.name()) {
            continue;
        }
        if let Err(e) = d.add_crd(o) {
            results.warnings.add(
                "",
                format!("{origin}: {e}; its custom resources are filed by guess"),
            );
        }
    }
    let filter = match &opts.resource_policies {
        Some(p) => {
            let mut f = opts.filter.clone();
            p.merge_into(&mut f, &d)?;
            Filter::new(&f, &d)?
        }
        None => Filter::new(&opts.filter, &d)?,
    };
    let mut selection = filter.select_summaries(&inventory.summaries, &d);
    if !opts.left_out_pods.is_empty() {
        selection.items.retain(|(i, _)| {
            let s = &inventory.summaries[*i];
            let key = (
                s.namespace().unwrap_or_default().to_string(),
                s.name().to_string(),
            );
            !(s.kind() == "Pod" && opts.left_out_pods.contains(&key))
        });
    }
    order_selection(
        &mut selection,
        inventory,
        &d,
        &opts.ordered_resources,
        &mut results,
    );
    for (ns, ws) in &selection.warnings {
        for w in ws {
            results.warnings.add(ns, w.clone());
        }
    }

    let writer = repo.writer(WriterOptions::default())?;
    let mut root = Dir::default();
    let mut resource_list: BTreeMap<String, Vec<String>> = BTreeMap::new();
    // Keyed by a digest of the path, not the path: at 100,000 objects the paths' strings
    // were a tenth of a backup's memory.
    let mut where_from: std::collections::HashMap<blake3::Hash, (&str, blake3::Hash)> =
        std::collections::HashMap::new();
    let path_key = |path: &[String]| blake3::hash(path.join("\0").as_bytes());
    let mut duplicates: BTreeMap<Vec<String>, usize> = BTreeMap::new();
    let mut items = 0;
    let total = selection.items.len();
    for (n, (i, _)) in selection.items.iter().enumerate() {
        opts.control.check()?;
        opts.control.report(n, total);
        let (summary, origin) = (&inventory.summaries[*i], &inventory.origins[*i]);
        let summary_ns = summary.namespace().unwrap_or_default();
        let o = match source.object(*i) {
            Ok(o) if summary.is_of(&o) => o,
            Ok(_) => {
                results.errors.add(
                    summary_ns,
                    format!("{origin}: changed while the backup ran; back it up again"),
                );
                continue;
            }
            Err(e) => {
                results.errors.add(summary_ns, e.to_string());
                continue;
            }
        };
        // Velero's backup item actions change few objects: only those are copied.
        let gr = d.group_resource_of(&o);
        let o = match gr.as_str() {
            "persistentvolumeclaims" => {
                let mut owned = o.into_owned();
                crate::backup_actions::prepare(&mut owned, &gr, name);
                Cow::Owned(owned)
            }
            _ => o,
        };
        let o = o.as_ref();
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
        if let Some((first, first_digest)) = where_from.get(&path_key(&path)) {
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
        where_from.insert(path_key(&path), (origin.as_str(), digest));
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
    if let Some(object) = &opts.backup_object {
        add_file(&[crate::catalog::BACKUP_OBJECT_FILE], object.clone())?;
    }
    for (name, bytes) in &opts.extra_files {
        add_file(&[name.as_str()], bytes.clone())?;
    }
    let log = backup_log(total, items, &results);
    add_file(&[crate::catalog::BACKUP_LOG_FILE], log.into_bytes())?;
    // No times in the tree: an unchanged directory of objects is then the same tree blob
    // in the next backup (the snapshot has the time).
    let entries = root.entries();
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
    snap.summary.entries = entries;
    snap.summary.new_blobs = stats.new_blobs;
    snap.summary.new_bytes = stats.new_bytes;
    snap.summary.stored_bytes = stats.stored_bytes;
    snap.expires = opts
        .ttl
        .map(|t| repo_core::time::format_rfc3339(std::time::SystemTime::now() + t));
    // The last moment to stop: nothing is committed, and what was written is unreferenced
    // data that maintenance removes.
    opts.control.check()?;
    let id = writer.commit(snap)?;
    opts.control.report(total, total);
    Ok(BackupOutcome {
        snapshot: id,
        items,
        new_bytes: stats.new_bytes,
        stored_bytes: stats.stored_bytes,
        results,
    })
}

/// The log stored beside a backup: what it selected and stored, one `level: message` line
/// each. No times and no name (the snapshot has them), and not the warnings and errors
/// (`results.json` has them; a log repeating them was rewritten whole by any change), so
/// the same backup stores the same log.
fn backup_log(selected: usize, stored: usize, results: &Results) -> String {
    format!(
        "info: {selected} objects selected\ninfo: {stored} objects stored, {} warnings, {} errors\n",
        results.warnings.len(),
        results.errors.len()
    )
}

/// The manifest files below `dir` (`.yaml`, `.yml`, `.json`), sorted so backups of the same
/// directory list objects in the same order, and directories that could not be listed.
fn manifest_files(dir: &Path) -> (Vec<PathBuf>, Vec<String>) {
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
    (paths, problems)
}

/// Reads one manifest file; `shown` names it in messages.
fn read_manifest(
    path: &Path,
    shown: &str,
) -> Result<crate::manifest::Manifest, crate::ObjectError> {
    std::fs::read(path)
        .map(|bytes| crate::manifest::read(&bytes, shown))
        .map_err(|e| crate::ObjectError {
            origin: shown.to_string(),
            reason: format!("cannot read: {e}"),
        })
}

/// Reads every manifest below `dir` into memory. Unreadable files and bad documents
/// become problems naming the file.
pub fn read_dir(dir: &Path) -> (Vec<(Object, String)>, Vec<String>) {
    let (paths, mut problems) = manifest_files(dir);
    let mut objects = Vec::new();
    for p in paths {
        let shown = p.strip_prefix(dir).unwrap_or(&p).display().to_string();
        match read_manifest(&p, &shown) {
            Ok(m) => {
                objects.extend(m.objects);
                problems.extend(m.problems.into_iter().map(|e| e.to_string()));
            }
            Err(e) => problems.push(e.to_string()),
        }
    }
    (objects, problems)
}

/// Objects read again from their manifest files, one file held at a time (a backup asks
/// for objects in input order, so each file is read once more).
pub struct DirSource {
    files: Vec<(PathBuf, String)>,
    /// Per object: its file and position among the file's objects.
    at: Vec<(u32, u32)>,
    held: Option<(u32, Vec<Object>)>,
}

impl ObjectSource for DirSource {
    fn object(&mut self, i: usize) -> Result<Cow<'_, Object>, crate::ObjectError> {
        let (file, pos) = self.at[i];
        if self.held.as_ref().map(|(f, _)| *f) != Some(file) {
            let (path, shown) = &self.files[file as usize];
            let m = read_manifest(path, shown)?;
            self.held = Some((file, m.objects.into_iter().map(|(o, _)| o).collect()));
        }
        let (_, objects) = self.held.as_ref().expect("just read");
        objects
            .get(pos as usize)
            .map(Cow::Borrowed)
            .ok_or_else(|| crate::ObjectError {
                origin: self.files[file as usize].1.clone(),
                reason: "changed while the backup ran; back it up again".into(),
            })
    }
}

/// Reads the manifests below `dir` once for selection: the inventory, and a source that
/// reads the objects again in full.
pub fn scan_dir(dir: &Path) -> (Inventory, DirSource) {
    let (paths, problems) = manifest_files(dir);
    let mut inventory = Inventory {
        problems,
        ..Default::default()
    };
    let mut files = Vec::with_capacity(paths.len());
    let mut at = Vec::new();
    for p in paths {
        let shown = p.strip_prefix(dir).unwrap_or(&p).display().to_string();
        match read_manifest(&p, &shown) {
            Ok(m) => {
                let file = files.len() as u32;
                for (pos, (o, origin)) in m.objects.into_iter().enumerate() {
                    inventory.add(&o, origin);
                    at.push((file, pos as u32));
                }
                let problems = m.problems.into_iter().map(|e| e.to_string());
                inventory.problems.extend(problems);
            }
            Err(e) => inventory.problems.push(e.to_string()),
        }
        files.push((p, shown));
    }
    let source = DirSource {
        files,
        at,
        held: None,
    };
    (inventory, source)
}

/// Calls `f` with the path (below `path`) and content of every file in `tree`, in name order.
/// Files are read in batches spread over threads (objects are small and many; one at a time
/// made restoring 100,000 of them take 18 s).
pub fn for_each_file(
    repo: &IndexedRepository,
    tree: BlobId,
    path: &str,
    budget: &WalkBudget,
    f: &mut dyn FnMut(&str, Vec<u8>) -> repo_core::Result<()>,
) -> repo_core::Result<()> {
    use rayon::prelude::*;
    let files = list_files(repo, tree, path, budget)?;
    for batch in files.chunks(1024) {
        let contents: Vec<repo_core::Result<Vec<u8>>> = batch
            .par_iter()
            .map(|(_, chunks)| {
                let limit = crate::manifest::MAX_MANIFEST_BYTES as u64;
                repo_core::reader::read_all(repo, chunks, limit)
            })
            .collect();
        for ((path, _), bytes) in batch.iter().zip(contents) {
            let bytes = bytes.map_err(|e| match e {
                Error::Invalid { reason, .. } => Error::corrupt(
                    path,
                    format!("{reason}: larger than any Kubernetes object (crafted or damaged)"),
                ),
                e => e,
            })?;
            f(path, bytes)?;
        }
    }
    Ok(())
}

/// The files below `tree` (paths below `path`) with their content, in name order; no
/// content is read. The walk is iterative and bounded by `budget`.
pub fn list_files(
    repo: &IndexedRepository,
    tree: BlobId,
    path: &str,
    budget: &WalkBudget,
) -> repo_core::Result<Vec<(String, Vec<ChunkRef>)>> {
    let mut out = Vec::new();
    for entry in Walk::new(repo, tree, PathBuf::from(path), true, budget) {
        let (here, node) = entry?;
        if node.kind == NodeKind::File {
            out.push((here.to_string_lossy().into_owned(), node.content));
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::filter::{Reason, Selection};
    use serde_json::json;

    /// Velero pkg/backup/item_collector_test.go TestSortOrderedResource: listed items
    /// first, in the order given; the others as they were; a missing one is a warning.
    #[test]
    fn ordered_resources_come_first_in_their_order() {
        let mut inventory = Inventory::default();
        let pod = |n: &str| json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": n, "namespace": "ns1"}});
        let pv = |n: &str| json!({"apiVersion": "v1", "kind": "PersistentVolume", "metadata": {"name": n}});
        for v in [
            pod("pod1"),
            pv("pv1"),
            pod("pod2"),
            pv("pv2"),
            pod("pod3"),
            pv("pv3"),
        ] {
            inventory.add(&Object::from_value(v, "t").unwrap(), "t".into());
        }
        let mut sel = Selection {
            items: (0..6).map(|i| (i, Reason::Selected)).collect(),
            ..Default::default()
        };
        let ordered = crate::resource_policy::parse_ordered_resources(
            "pods=ns1/pod2,ns1/pod1;pv=pv5,pv2,pv1",
        )
        .unwrap();
        let mut results = Results::default();
        order_selection(
            &mut sel,
            &inventory,
            &Discovery::built_in(),
            &ordered,
            &mut results,
        );
        let names: Vec<&str> = sel
            .items
            .iter()
            .map(|(i, _)| inventory.summaries[*i].name())
            .collect();
        // Each resource in its order, in the places its items had.
        assert_eq!(names, ["pod2", "pv2", "pod1", "pv1", "pod3", "pv3"]);
        assert_eq!(results.warnings.cluster, ["Cannot find resource 'pv5'."]);
    }
}
