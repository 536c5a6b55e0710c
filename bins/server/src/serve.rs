//! The server's loop, while this replica leads: on coming to lead, fail what was left
//! InProgress; then, round after round, check the locations and sync them when due, answer
//! ServerStatusRequests, ask for the deletion of expired backups, and run each waiting
//! Backup, Restore and DeleteBackupRequest, one at a time (so a restore never overlaps a
//! backup). Each kind is watched for a second in turn (a list, then a watch from its
//! resourceVersion, listed again when the watch ends or is too old), so new objects are
//! taken within a few seconds.

use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use repo_k8s::velero::{
    resource, Backup, BackupPhase, DeleteBackupRequest, DeleteBackupRequestPhase, Kind, Restore,
    RestorePhase,
};
use repo_k8s::Object;

use crate::backups::Controller;

/// How long one watch waits before the loop watches the next kind (and notices a stop).
const WAKE: Duration = Duration::from_secs(1);

/// Serves until `stop` is set, while `leading` is (the replica holds the Lease; see
/// [`keep_leading`]). Work already started finishes. Each time the replica comes to lead,
/// it first fails what was left InProgress (by a server that stopped, or a leader that lost
/// the Lease) and tells `on_lead` what it found. Expired backups are looked for every
/// `gc_every`.
pub fn run(
    controller: &Controller,
    stop: &AtomicBool,
    leading: &AtomicBool,
    gc_every: Duration,
    on_lead: &dyn Fn(&crate::startup::Interrupted),
) {
    let go_on = || !stop.load(Ordering::Relaxed) && leading.load(Ordering::Relaxed);
    let mut led = false;
    let mut last_gc: Option<Instant> = None;
    while !stop.load(Ordering::Relaxed) {
        if !leading.load(Ordering::Relaxed) {
            led = false;
            std::thread::sleep(WAKE);
            continue;
        }
        if !led {
            led = true;
            let now = (controller.now)();
            on_lead(&crate::startup::fail_interrupted(
                controller.cluster,
                &controller.namespace,
                &now,
            ));
        }
        controller.check_locations(std::time::SystemTime::now());
        controller.sync(std::time::SystemTime::now());
        controller.serve_status_requests(std::time::SystemTime::now());
        if last_gc.is_none_or(|t| t.elapsed() >= gc_every) {
            controller.collect_expired(std::time::SystemTime::now());
            last_gc = Some(Instant::now());
        }
        for b in waiting::<Backup>(controller, backup_waits) {
            if !go_on() {
                break;
            }
            controller.run(&b);
        }
        for r in waiting::<Restore>(controller, restore_waits) {
            if !go_on() {
                break;
            }
            controller.run_restore(&r);
        }
        for d in waiting::<DeleteBackupRequest>(controller, deletion_waits) {
            if !go_on() {
                break;
            }
            controller.run_deletion(&d);
        }
    }
}

fn deletion_waits(d: &DeleteBackupRequest) -> bool {
    matches!(
        d.status.as_ref().and_then(|s| s.phase),
        None | Some(DeleteBackupRequestPhase::New)
    )
}

/// Takes and renews the Lease every third of its duration until `stop` is set, keeping
/// `leading` true only while this replica holds it. `report` is told each change.
pub fn keep_leading(
    elector: &crate::lease::Elector,
    stop: &AtomicBool,
    leading: &AtomicBool,
    report: &dyn Fn(&crate::lease::Leadership),
) {
    let mut last = None;
    while !stop.load(Ordering::Relaxed) {
        let now = std::time::SystemTime::now();
        let state = elector.try_lead(now);
        let leader = matches!(state, Ok(crate::lease::Leadership::Leader));
        leading.store(leader, Ordering::Relaxed);
        if let Ok(s) = &state {
            if last.as_ref() != Some(s) {
                report(s);
                last = Some(s.clone());
            }
        }
        std::thread::sleep(elector.duration / 3);
    }
    leading.store(false, Ordering::Relaxed);
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
