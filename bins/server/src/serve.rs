//! The server's loop, while this replica leads. Informers (kube-rs watchers) keep a local
//! copy of the Backups, Restores, DeleteBackupRequests and Namespaces; the loop wakes on
//! each change (or every [`WAKE`]) and:
//!
//! - on coming to lead, fails what was left InProgress ([`crate::startup`]);
//! - checks the locations and syncs them when due, answers ServerStatusRequests, asks
//!   for the deletion of expired backups every `gc_every`, and creates the Backups of
//!   Schedules that are due ([`crate::schedules`]);
//! - cancels a running Backup or Restore whose object was deleted, or a Backup a
//!   DeleteBackupRequest names (the request is processed once the backup has stopped);
//! - starts waiting Backups by the queue rule of [`crate::queue`] (`concurrent_backups`
//!   at once) and waiting Restores one at a time, each on a thread of its own.
//!
//! Losing the Lease or being stopped cancels what runs: the next leader would fail it
//! anyway, and two servers must never write the same object.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::ScopedJoinHandle;
use std::time::{Duration, Instant};

use repo_k8s::informer::{Changes, Informer};
use repo_k8s::velero::{
    resource, Backup, BackupPhase, DeleteBackupRequest, DeleteBackupRequestPhase, DownloadRequest,
    Kind, Restore, RestorePhase, Schedule, ServerStatusRequest,
};

use crate::backups::Controller;
use crate::queue::{self, Namespaces};

/// The longest the loop sleeps without a change (the Lease is checked this often).
const WAKE: Duration = Duration::from_secs(1);

/// How often work driven by the clock is looked at when nothing changes: schedules,
/// location checks and syncs (each with its own period), expiry.
const TICK: Duration = Duration::from_secs(5);

/// How the loop runs.
#[derive(Clone, Debug)]
pub struct Options {
    /// How often expired backups are looked for (`--garbage-collection-frequency`).
    pub gc_every: Duration,
    /// Backups run at once (`--concurrent-backups`, Velero's default 1).
    pub concurrent_backups: usize,
    /// Whether Schedules that do not say skip the run due when they are created or
    /// unpaused (`--schedule-skip-immediately`).
    pub schedule_skip_immediately: bool,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            gc_every: Duration::from_secs(3600),
            concurrent_backups: 1,
            schedule_skip_immediately: false,
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Work {
    Backup,
    Restore,
}

/// A Backup or Restore running on its own thread.
struct Job<'s> {
    work: Work,
    name: String,
    namespaces: Namespaces,
    cancel: Arc<AtomicBool>,
    thread: ScopedJoinHandle<'s, ()>,
}

/// The local copies the loop reads.
struct Watched {
    changes: Arc<Changes>,
    backups: Informer,
    restores: Informer,
    deletions: Informer,
    schedules: Informer,
    status_requests: Informer,
    download_requests: Informer,
    namespaces: Informer,
}

impl Watched {
    fn start(controller: &Controller) -> Watched {
        let changes = Changes::new();
        let ns = Some(controller.namespace.clone());
        let namespaces = repo_k8s::Discovery::built_in()
            .resolve("namespaces")
            .expect("built in")
            .clone();
        let wanted = [
            (resource::<Backup>(), ns.clone()),
            (resource::<Restore>(), ns.clone()),
            (resource::<DeleteBackupRequest>(), ns.clone()),
            (resource::<Schedule>(), ns.clone()),
            (resource::<ServerStatusRequest>(), ns.clone()),
            (resource::<DownloadRequest>(), ns),
            (namespaces, None),
        ];
        let informers = controller.cluster.informers(&wanted, changes.clone());
        let Ok(
            [backups, restores, deletions, schedules, status_requests, download_requests, namespaces],
        ) = <[Informer; 7]>::try_from(informers)
        else {
            unreachable!("one informer per resource asked for");
        };
        Watched {
            changes,
            backups,
            restores,
            deletions,
            schedules,
            status_requests,
            download_requests,
            namespaces,
        }
    }

    fn synced(&self) -> bool {
        [
            &self.backups,
            &self.restores,
            &self.deletions,
            &self.schedules,
            &self.status_requests,
            &self.download_requests,
            &self.namespaces,
        ]
        .iter()
        .all(|i| i.is_synced())
    }
}

/// Serves until `stop` is set, acting only while `leading` is (the replica holds the
/// Lease; see [`keep_leading`]). Each time the replica comes to lead, it first fails what
/// was left InProgress and tells `on_lead` what it found.
pub fn run(
    controller: &Controller,
    stop: &AtomicBool,
    leading: &AtomicBool,
    options: &Options,
    on_lead: &dyn Fn(&crate::startup::Interrupted),
) {
    let watched = Watched::start(controller);
    std::thread::scope(|s| {
        let mut jobs: Vec<Job> = Vec::new();
        let mut led = false;
        let mut last_gc: Option<Instant> = None;
        let mut seen = 0;
        let mut last_tick: Option<Instant> = None;
        let mut schedules = crate::schedules::Schedules::new(options.schedule_skip_immediately);
        while !stop.load(Ordering::Relaxed) {
            let count = watched.changes.wait_past(seen, WAKE);
            let changed = count != seen;
            seen = count;
            let running = jobs.len();
            jobs.retain(|j| !j.thread.is_finished());
            let finished = jobs.len() != running;
            controller.health.turned(watched.synced());
            let m = &controller.metrics;
            m.set("velero_backup_total", "", watched.backups.len() as f64);
            m.set("velero_restore_total", "", watched.restores.len() as f64);
            let leads = leading.load(Ordering::Relaxed);
            m.set("cairn_server_leader", "", if leads { 1.0 } else { 0.0 });
            if !leads {
                cancel_all(&jobs);
                led = false;
                continue;
            }
            if !watched.synced() {
                continue;
            }
            if !led {
                led = true;
                last_tick = None;
                let now = (controller.now)();
                on_lead(&crate::startup::fail_interrupted(
                    controller.cluster,
                    &controller.namespace,
                    &now,
                ));
            }
            // Idle, nothing changed: only the clock's work, every TICK.
            let tick = last_tick.is_none_or(|t| t.elapsed() >= TICK);
            if !(changed || finished || tick) {
                continue;
            }
            let now = std::time::SystemTime::now();
            if tick {
                last_tick = Some(Instant::now());
                controller.check_locations(now);
                controller.sync(now);
                if last_gc.is_none_or(|t| t.elapsed() >= options.gc_every) {
                    controller.collect_expired(now);
                    last_gc = Some(Instant::now());
                }
            }
            answer_requests(controller, &watched, now);
            schedules.run(
                controller,
                now,
                &all::<Schedule>(&watched.schedules),
                &all::<Backup>(&watched.backups),
            );
            refuse_unreadable::<Backup>(controller, &watched.backups);
            refuse_unreadable::<Restore>(controller, &watched.restores);
            refuse_unreadable::<Schedule>(controller, &watched.schedules);
            cancel_deleted(&jobs, &watched, &controller.namespace);
            run_deletions(controller, &jobs, &watched);
            start_backups(
                s,
                controller,
                &mut jobs,
                &watched,
                options.concurrent_backups,
            );
            start_restores(s, controller, &mut jobs, &watched);
        }
        cancel_all(&jobs);
    });
}

/// ServerStatusRequests and DownloadRequests, when there are any (answered ones are
/// removed once they expire).
fn answer_requests(controller: &Controller, watched: &Watched, now: std::time::SystemTime) {
    if !watched.status_requests.is_empty() {
        controller.serve_status_requests(now);
    }
    if !watched.download_requests.is_empty() {
        controller.serve_download_requests(now);
    }
}

fn cancel_all(jobs: &[Job]) {
    for j in jobs {
        j.cancel.store(true, Ordering::Relaxed);
    }
}

/// Cancels the jobs whose objects are gone.
fn cancel_deleted(jobs: &[Job], watched: &Watched, namespace: &str) {
    for j in jobs {
        let informer = match j.work {
            Work::Backup => &watched.backups,
            Work::Restore => &watched.restores,
        };
        if informer.get(Some(namespace), &j.name).is_none() && !j.cancel.load(Ordering::Relaxed) {
            tracing::info!(name = %j.name, work = ?j.work, "its object was deleted: cancelling");
            j.cancel.store(true, Ordering::Relaxed);
        }
    }
}

/// Processes waiting DeleteBackupRequests, oldest first; one naming a running backup
/// cancels it and waits until it has stopped.
fn run_deletions(controller: &Controller, jobs: &[Job], watched: &Watched) {
    let waiting = waiting::<DeleteBackupRequest>(&watched.deletions, |d| {
        matches!(
            d.status.as_ref().and_then(|s| s.phase),
            None | Some(DeleteBackupRequestPhase::New)
        )
    });
    for d in waiting {
        let running = jobs
            .iter()
            .find(|j| j.work == Work::Backup && j.name == d.spec.backup_name);
        match running {
            Some(j) => {
                if !j.cancel.swap(true, Ordering::Relaxed) {
                    tracing::info!(backup = %j.name, request = %d.metadata.name, "a DeleteBackupRequest names the running backup: cancelling it first");
                }
            }
            None => {
                controller.run_deletion(&d);
            }
        }
    }
}

fn start_backups<'s>(
    s: &'s std::thread::Scope<'s, '_>,
    controller: &'s Controller,
    jobs: &mut Vec<Job<'s>>,
    watched: &Watched,
    concurrent: usize,
) {
    let waiting = waiting::<Backup>(&watched.backups, |b| {
        matches!(
            b.status.as_ref().and_then(|s| s.phase),
            None | Some(BackupPhase::New)
        )
    });
    let waiting: Vec<Backup> = waiting
        .into_iter()
        .filter(|b| {
            jobs.iter()
                .all(|j| j.name != b.metadata.name || j.work != Work::Backup)
        })
        .collect();
    if waiting.is_empty() {
        return;
    }
    let cluster_namespaces: Vec<String> = watched
        .namespaces
        .objects()
        .iter()
        .map(|o| o.name().to_string())
        .collect();
    let wanted: Vec<Namespaces> = waiting
        .iter()
        .map(|b| queue::of_backup(b, &cluster_namespaces))
        .collect();
    let running: Vec<Namespaces> = jobs.iter().map(|j| j.namespaces.clone()).collect();
    let running_backups = jobs.iter().filter(|j| j.work == Work::Backup).count();
    for i in queue::startable_backups(&wanted, &running, running_backups, concurrent) {
        let backup = waiting[i].clone();
        let cancel = Arc::new(AtomicBool::new(false));
        let c = cancel.clone();
        jobs.push(Job {
            work: Work::Backup,
            name: backup.metadata.name.clone(),
            namespaces: wanted[i].clone(),
            cancel,
            thread: s.spawn(move || {
                controller.run_cancellable(&backup, &c);
            }),
        });
    }
}

fn start_restores<'s>(
    s: &'s std::thread::Scope<'s, '_>,
    controller: &'s Controller,
    jobs: &mut Vec<Job<'s>>,
    watched: &Watched,
) {
    if jobs.iter().any(|j| j.work == Work::Restore) {
        return;
    }
    let waiting = waiting::<Restore>(&watched.restores, |r| {
        matches!(
            r.status.as_ref().and_then(|s| s.phase),
            None | Some(RestorePhase::New)
        )
    });
    for restore in waiting {
        let namespaces = queue::of_restore(&restore);
        if jobs.iter().any(|j| j.namespaces.overlaps(&namespaces)) {
            continue;
        }
        let cancel = Arc::new(AtomicBool::new(false));
        let c = cancel.clone();
        jobs.push(Job {
            work: Work::Restore,
            name: restore.metadata.name.clone(),
            namespaces,
            cancel,
            thread: s.spawn(move || {
                controller.run_restore_cancellable(&restore, &c);
            }),
        });
        return;
    }
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

/// Marks the objects of kind `K` that do not read as `K` and have no phase yet
/// `FailedValidation`, naming the field: a field of the wrong type (which an API server
/// checking the CRD's schema refuses, but `kubectl --validate=false` against an older or
/// lax one lets through) must not make an object silently ignored.
fn refuse_unreadable<K: Kind>(controller: &Controller, informer: &Informer) {
    for o in informer.objects() {
        let phase = o.get(&["status", "phase"]).and_then(|p| p.as_str());
        if !matches!(phase, None | Some("New")) {
            continue;
        }
        let value = serde_json::Value::Object(o.as_value().clone());
        let Err(e) = serde_path_to_error::deserialize::<_, K>(value) else {
            continue;
        };
        let problem = format!(
            "field {} does not read as Velero's {} has it: {}; fix the field",
            e.path(),
            K::KIND,
            e.inner()
        );
        tracing::warn!(name = %o.name(), kind = K::KIND, "{problem}");
        let status = serde_json::json!({"status": {"phase": "FailedValidation", "validationErrors": [problem]}});
        let _ = controller.cluster.merge_patch(
            &resource::<K>(),
            Some(&controller.namespace),
            o.name(),
            &status,
        );
    }
}

/// The objects of an informer, typed (those that do not read as `K` are left out).
fn all<K: Kind>(informer: &Informer) -> Vec<K> {
    informer.objects().iter().filter_map(crate::typed).collect()
}

/// The objects of an informer that wait, oldest first (as Velero takes them).
fn waiting<K: Kind>(informer: &Informer, waits: fn(&K) -> bool) -> Vec<K> {
    let mut ready: Vec<K> = all(informer).into_iter().filter(waits).collect();
    ready.sort_by_cached_key(|k: &K| {
        let m = k.metadata();
        (
            m.creation_timestamp.clone().unwrap_or_default(),
            m.name.clone(),
        )
    });
    ready
}
