//! The backups in a repository: each is a snapshot tagged `backup-name=<name>`. Listing and
//! lookup by name live here, for the CLI today and the controller next.

use repo_core::{ObjectId, Repository, Snapshot, SnapshotFilter};
use serde::Serialize;

/// Tag key naming the backup.
pub const BACKUP_NAME_TAG: &str = "backup-name";

/// One backup of the repository.
#[derive(Clone, Debug, Serialize)]
pub struct BackupEntry {
    pub name: String,
    #[serde(rename = "snapshot_id", serialize_with = "as_string")]
    pub snapshot: ObjectId,
    /// RFC 3339 time the backup started.
    pub time: String,
    /// Objects stored.
    pub items: u64,
    /// RFC 3339 time after which the backup expires (its TTL).
    pub expires: Option<String>,
}

fn as_string<S: serde::Serializer>(id: &ObjectId, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(&id.to_string())
}

/// The backups, oldest first, and the snapshots that could not be read (they are not
/// listed, and the caller should say so: one may be a backup).
#[derive(Debug, Default)]
pub struct Listing {
    pub backups: Vec<BackupEntry>,
    pub unreadable: Vec<(ObjectId, repo_core::Error)>,
}

/// Lists the repository's backups.
pub fn list_backups(repo: &Repository) -> crate::Result<Listing> {
    let prefix = format!("{BACKUP_NAME_TAG}=");
    let (snapshots, unreadable) = repo.list_snapshots_lenient(&SnapshotFilter::default())?;
    let backups = snapshots
        .into_iter()
        .filter_map(|(id, s)| {
            let name = s.tags.iter().find_map(|t| t.strip_prefix(&prefix))?;
            Some(BackupEntry {
                name: name.to_string(),
                snapshot: id,
                time: s.time.clone(),
                items: s.summary.files,
                expires: s.expires.clone(),
            })
        })
        .collect();
    Ok(Listing {
        backups,
        unreadable,
    })
}

/// The snapshot of backup `name`, if there is one (the newest, should several exist from
/// before names were checked). An unreadable snapshot is no backup to find.
pub fn find_backup(repo: &Repository, name: &str) -> crate::Result<Option<(ObjectId, Snapshot)>> {
    let filter = SnapshotFilter {
        tags: vec![format!("{BACKUP_NAME_TAG}={name}")],
        ..Default::default()
    };
    // Oldest first: the last is the newest.
    Ok(repo.list_snapshots_lenient(&filter)?.0.pop())
}

/// The file beside a backup's objects that holds the Velero Backup object it was made for.
pub const BACKUP_OBJECT_FILE: &str = "velero-backup.json";

/// The backup's log, stored beside its objects: what it selected and stored (Velero keeps a
/// log beside each backup; `velero backup logs`). [`backup_log`] adds the warnings and
/// errors from the results.
pub const BACKUP_LOG_FILE: &str = "backup.log";

/// A backup's log: what it stored (nothing for backups made before logs were kept), then
/// a line per warning and error.
pub fn backup_log(
    repo: &repo_core::IndexedRepository,
    snapshot: &ObjectId,
) -> crate::Result<Vec<u8>> {
    let mut log = root_file(repo, snapshot, BACKUP_LOG_FILE)?.unwrap_or_default();
    let r = results(repo, snapshot)?;
    log.extend_from_slice(r.warnings.log_lines("warning").as_bytes());
    log.extend_from_slice(r.errors.log_lines("error").as_bytes());
    Ok(log)
}

/// A backup's resource list (`resource-list.json`: `apiVersion/Kind` to `ns/name`s).
pub fn resource_list(
    repo: &repo_core::IndexedRepository,
    snapshot: &ObjectId,
) -> crate::Result<std::collections::BTreeMap<String, Vec<String>>> {
    match root_file(repo, snapshot, "resource-list.json")? {
        Some(bytes) => parse(snapshot, "resource-list.json", &bytes),
        None => Ok(Default::default()),
    }
}

/// A backup's `results.json` (its warnings and errors), as stored beside its objects.
pub fn results(
    repo: &repo_core::IndexedRepository,
    snapshot: &ObjectId,
) -> crate::Result<crate::velero::Results> {
    match root_file(repo, snapshot, "results.json")? {
        Some(bytes) => parse(snapshot, "results.json", &bytes),
        None => Ok(Default::default()),
    }
}

/// The Velero Backup object a backup was made for, if it was made by the control plane.
pub fn backup_object(
    repo: &repo_core::IndexedRepository,
    snapshot: &ObjectId,
) -> crate::Result<Option<crate::velero::Backup>> {
    match root_file(repo, snapshot, BACKUP_OBJECT_FILE)? {
        Some(bytes) => parse(snapshot, BACKUP_OBJECT_FILE, &bytes).map(Some),
        None => Ok(None),
    }
}

/// A file at the root of a backup's tree, read whole (within the manifest size limit);
/// `None` if the backup has no such file.
pub fn root_file(
    repo: &repo_core::IndexedRepository,
    snapshot: &ObjectId,
    name: &str,
) -> crate::Result<Option<Vec<u8>>> {
    let snap = repo.get_snapshot(snapshot)?;
    let node = repo
        .read_dir(&snap.root)?
        .into_iter()
        .find(|n| n.name.display() == name && n.kind == repo_core::tree::NodeKind::File);
    let Some(node) = node else {
        return Ok(None);
    };
    let limit = crate::manifest::MAX_MANIFEST_BYTES as u64;
    Ok(Some(repo_core::reader::read_all(
        repo,
        &node.content,
        limit,
    )?))
}

fn parse<T: serde::de::DeserializeOwned>(
    snapshot: &ObjectId,
    name: &str,
    bytes: &[u8],
) -> crate::Result<T> {
    serde_json::from_slice(bytes).map_err(|e| {
        crate::Error::Object(crate::ObjectError {
            origin: format!("snapshot {}: {name}", snapshot.short()),
            reason: e.to_string(),
        })
    })
}

/// The snapshot of backup `name`, or [`crate::Error::BackupNotFound`].
pub fn backup_snapshot(repo: &Repository, name: &str) -> crate::Result<ObjectId> {
    match find_backup(repo, name)? {
        Some((id, _)) => Ok(id),
        None => Err(crate::Error::BackupNotFound(name.to_string())),
    }
}
