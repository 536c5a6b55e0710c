//! Progress written while work runs: the work reports through a
//! [`repo_k8s::control::Control`] as often as it likes, and a thread of its own writes the
//! latest report at most every [`EVERY`], so a backup of 100,000 objects costs the API
//! server a patch a second, not 100,000. Phased restores also report where they are.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use repo_k8s::control::{Control, Progress};
use serde_json::Value;

/// How often progress is written.
pub const EVERY: Duration = Duration::from_secs(1);

/// Where a phased restore is: the current phase, and the reports of the phases so far.
pub type PhaseState = (String, Value);

/// How progress is written.
pub struct Writers<'a> {
    pub progress: &'a (dyn Fn(Progress) + Sync),
    pub phase: &'a (dyn Fn(&PhaseState) + Sync),
}

/// Runs `work` with a Control stopped by `cancel`, writing its progress (and phases) with
/// `write` every [`EVERY`] while it runs (the caller writes the final counts with the
/// result).
pub fn reporting<T>(
    cancel: &Arc<AtomicBool>,
    write: &Writers,
    work: impl FnOnce(Control) -> T,
) -> T {
    let latest: Arc<Mutex<Option<Progress>>> = Arc::default();
    let phase: Arc<Mutex<Option<PhaseState>>> = Arc::default();
    let (sink, phase_sink) = (latest.clone(), phase.clone());
    let control = Control::new(cancel.clone(), move |p| {
        *sink.lock().expect("not poisoned") = Some(p);
    })
    .on_phase(move |current, reports| {
        *phase_sink.lock().expect("not poisoned") = Some((current.to_string(), reports.clone()));
    });
    let done = AtomicBool::new(false);
    std::thread::scope(|s| {
        let writer = s.spawn(|| {
            let mut written = None;
            let mut phase_written = None;
            while !done.load(Ordering::Relaxed) {
                std::thread::park_timeout(EVERY);
                if done.load(Ordering::Relaxed) {
                    break;
                }
                let now = *latest.lock().expect("not poisoned");
                if let Some(p) = now.filter(|_| now != written) {
                    (write.progress)(p);
                    written = now;
                }
                let now = phase.lock().expect("not poisoned").clone();
                if let Some(p) = now.as_ref().filter(|_| now != phase_written) {
                    (write.phase)(p);
                    phase_written = now;
                }
            }
        });
        let out = work(control);
        done.store(true, Ordering::Relaxed);
        writer.thread().unpark();
        out
    })
}
