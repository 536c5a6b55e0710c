//! The server's loop: run each waiting Backup, one at a time, woken by a watch of the
//! namespace's Backups (a list, then a watch from its resourceVersion, listed again when
//! the watch ends or is too old). Call [`crate::startup::fail_interrupted`] first.

use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use repo_k8s::velero::{resource, Backup, BackupPhase};
use repo_k8s::Object;

use crate::backups::Controller;

/// How long one watch waits before the loop looks again (and notices a stop).
const WAKE: Duration = Duration::from_secs(5);

/// Runs waiting Backups until `stop` is set.
pub fn run(controller: &Controller, stop: &AtomicBool) {
    let r = resource::<Backup>();
    while !stop.load(Ordering::Relaxed) {
        let any_waiting = |objs: &[Object]| objs.iter().any(|o| waiting(o).is_some());
        let objs = match controller.cluster.wait_for(
            &r,
            Some(&controller.namespace),
            None,
            Instant::now() + WAKE,
            &any_waiting,
        ) {
            // Something waits: list again for the current objects.
            Ok(()) => controller
                .cluster
                .list(&r, Some(&controller.namespace))
                .unwrap_or_default(),
            Err(_) => continue,
        };
        // Oldest first, as Velero takes them.
        let mut ready: Vec<Backup> = objs.iter().filter_map(waiting).collect();
        ready.sort_by(|a, b| {
            let at = |x: &Backup| x.metadata.creation_timestamp.clone().unwrap_or_default();
            at(a)
                .cmp(&at(b))
                .then_with(|| a.metadata.name.cmp(&b.metadata.name))
        });
        for b in ready {
            if stop.load(Ordering::Relaxed) {
                break;
            }
            controller.run(&b);
        }
    }
}

/// The Backup, if it waits to run (phase empty or New).
fn waiting(o: &Object) -> Option<Backup> {
    let b: Backup = serde_json::from_value(serde_json::Value::Object(o.as_value().clone())).ok()?;
    let phase = b.status.as_ref().and_then(|s| s.phase);
    matches!(phase, None | Some(BackupPhase::New)).then_some(b)
}
