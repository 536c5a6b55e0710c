//! What the server does when it starts, before it takes any work: a Backup or Restore left
//! `InProgress` by a server that stopped can never finish, so it is marked `Failed` with
//! Velero's reason (Velero `markInProgressCRsFailed`), and no backup stays stuck (velero
//! #7568).

use repo_k8s::cluster::Cluster;
use repo_k8s::velero::{resource, Backup, BackupPhase, Kind, Restore, RestorePhase};
use serde_json::json;

/// What the start found and did.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Interrupted {
    pub backups: Vec<String>,
    pub restores: Vec<String>,
    /// Objects that could not be read or marked, with why.
    pub problems: Vec<String>,
}

/// Marks every InProgress Backup and Restore in `namespace` Failed, with Velero's
/// failureReason and `now` as the completion time.
pub fn fail_interrupted(cluster: &Cluster, namespace: &str, now: &str) -> Interrupted {
    let mut out = Interrupted::default();
    mark::<Backup>(
        cluster,
        namespace,
        now,
        &mut out.backups,
        &mut out.problems,
        |b| b.status.as_ref().and_then(|s| s.phase) == Some(BackupPhase::InProgress),
    );
    mark::<Restore>(
        cluster,
        namespace,
        now,
        &mut out.restores,
        &mut out.problems,
        |r| r.status.as_ref().and_then(|s| s.phase) == Some(RestorePhase::InProgress),
    );
    out
}

fn mark<K: Kind>(
    cluster: &Cluster,
    namespace: &str,
    now: &str,
    marked: &mut Vec<String>,
    problems: &mut Vec<String>,
    in_progress: impl Fn(&K) -> bool,
) {
    let r = resource::<K>();
    let what = K::KIND.to_ascii_lowercase();
    let list = match cluster.list(&r, Some(namespace)) {
        Ok(l) => l,
        Err(e) => {
            problems.push(format!("listing {}: {e}", r.group_resource()));
            return;
        }
    };
    for o in list {
        let typed: K = match serde_json::from_value(o.as_value().clone().into()) {
            Ok(t) => t,
            Err(e) => {
                problems.push(format!("{what} {}: not readable: {e}", o.name()));
                continue;
            }
        };
        if !in_progress(&typed) {
            continue;
        }
        let patch = json!({"status": {
            "phase": "Failed",
            "failureReason": format!("found a {what} with status \"InProgress\" during the server starting, mark it as \"Failed\""),
            "completionTimestamp": now,
        }});
        match cluster.merge_patch(&r, Some(namespace), o.name(), &patch) {
            Ok(_) => marked.push(o.name().to_string()),
            Err(e) => problems.push(format!("marking {what} {} Failed: {e}", o.name())),
        }
    }
}
