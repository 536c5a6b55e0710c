//! The server's loop: run each waiting Backup and Restore, one at a time (so a restore
//! never overlaps a backup), woken by watches of the namespace's Backups and Restores (a
//! list, then a watch from its resourceVersion, listed again when the watch ends or is too
//! old), each watched for a second in turn. Call [`crate::startup::fail_interrupted`]
//! first.

use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use repo_k8s::velero::{resource, Backup, BackupPhase, Kind, Restore, RestorePhase};
use repo_k8s::Object;

use crate::backups::Controller;

/// How long one watch waits before the loop watches the other kind (and notices a stop).
const WAKE: Duration = Duration::from_secs(1);

/// Runs waiting Backups and Restores until `stop` is set.
pub fn run(controller: &Controller, stop: &AtomicBool) {
    while !stop.load(Ordering::Relaxed) {
        for b in waiting::<Backup>(controller, backup_waits) {
            if stop.load(Ordering::Relaxed) {
                return;
            }
            controller.run(&b);
        }
        for r in waiting::<Restore>(controller, restore_waits) {
            if stop.load(Ordering::Relaxed) {
                return;
            }
            controller.run_restore(&r);
        }
    }
}

fn backup_waits(b: &Backup) -> bool {
    matches!(
        b.status.as_ref().and_then(|s| s.phase),
        None | Some(BackupPhase::New)
    )
}

fn restore_waits(r: &Restore) -> bool {
    matches!(
        r.status.as_ref().and_then(|s| s.phase),
        None | Some(RestorePhase::New)
    )
}

/// The objects of kind `K` that wait, oldest first (as Velero takes them), after watching
/// for up to [`WAKE`] for one to appear.
fn waiting<K: Kind>(controller: &Controller, waits: fn(&K) -> bool) -> Vec<K> {
    let r = resource::<K>();
    let typed = |o: &Object| -> Option<K> {
        serde_json::from_value(serde_json::Value::Object(o.as_value().clone())).ok()
    };
    let any = |objs: &[Object]| objs.iter().filter_map(typed).any(|k| waits(&k));
    let ns = Some(controller.namespace.as_str());
    if controller
        .cluster
        .wait_for(&r, ns, None, Instant::now() + WAKE, &any)
        .is_err()
    {
        return Vec::new();
    }
    let mut ready: Vec<K> = controller
        .cluster
        .list(&r, ns)
        .unwrap_or_default()
        .iter()
        .filter_map(typed)
        .filter(waits)
        .collect();
    ready.sort_by(|a, b| {
        let key = |k: &K| {
            let m = k.metadata();
            (
                m.creation_timestamp.clone().unwrap_or_default(),
                m.name.clone(),
            )
        };
        key(a).cmp(&key(b))
    });
    ready
}
