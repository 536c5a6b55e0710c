//! Progress written while work runs: the work reports through a
//! [`repo_k8s::control::Control`] as often as it likes, and a thread of its own writes the
//! latest report at most every [`EVERY`], so a backup of 100,000 objects costs the API
//! server a patch a second, not 100,000.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use repo_k8s::control::{Control, Progress};

/// How often progress is written.
pub const EVERY: Duration = Duration::from_secs(1);

/// Runs `work` with a Control stopped by `cancel`, writing its progress with `write` every
/// [`EVERY`] while it runs (the caller writes the final counts with the result).
pub fn reporting<T>(
    cancel: &Arc<AtomicBool>,
    write: &(dyn Fn(Progress) + Sync),
    work: impl FnOnce(Control) -> T,
) -> T {
    let latest: Arc<Mutex<Option<Progress>>> = Arc::default();
    let sink = latest.clone();
    let control = Control::new(cancel.clone(), move |p| {
        *sink.lock().expect("not poisoned") = Some(p);
    });
    let done = AtomicBool::new(false);
    std::thread::scope(|s| {
        let writer = s.spawn(|| {
            let mut written = None;
            while !done.load(Ordering::Relaxed) {
                std::thread::park_timeout(EVERY);
                let now = *latest.lock().expect("not poisoned");
                if let Some(p) = now.filter(|_| now != written) {
                    if !done.load(Ordering::Relaxed) {
                        write(p);
                        written = now;
                    }
                }
            }
        });
        let out = work(control);
        done.store(true, Ordering::Relaxed);
        writer.thread().unpark();
        out
    })
}
