//! How a caller watches and stops long work (a backup, a restore): a cancel flag the work
//! checks between objects, and a progress callback it calls as it goes. The control plane
//! sets the flag when the Backup or Restore object is deleted, and writes the progress
//! into the object's status.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

/// Progress of a backup or restore: objects done out of the objects it will handle.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Progress {
    pub done: usize,
    pub total: usize,
}

/// A cancel flag and a progress callback; the default has neither (never cancelled,
/// progress unreported).
#[derive(Clone, Default)]
pub struct Control {
    cancel: Option<Arc<AtomicBool>>,
    progress: Option<Arc<dyn Fn(Progress) + Send + Sync>>,
    phases: Option<Arc<PhaseHook>>,
    /// Past this, the work is stopped as if cancelled.
    deadline: Option<std::time::Instant>,
}

/// Told where a phased restore is: a sentence on the current phase, and the reports of the
/// phases so far (JSON, as `restore --json` prints them).
type PhaseHook = dyn Fn(&str, &serde_json::Value) + Send + Sync;

impl std::fmt::Debug for Control {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Control")
            .field("cancelled", &self.cancelled())
            .field("reports_progress", &self.progress.is_some())
            .finish()
    }
}

impl Control {
    /// Work stopped by `cancel` (once set) that reports to `progress`.
    pub fn new(
        cancel: Arc<AtomicBool>,
        progress: impl Fn(Progress) + Send + Sync + 'static,
    ) -> Control {
        Control {
            cancel: Some(cancel),
            progress: Some(Arc::new(progress)),
            phases: None,
            deadline: None,
        }
    }

    /// The same control, also stopping the work at `deadline` (the earlier of it and any
    /// deadline it had).
    pub fn until(&self, deadline: std::time::Instant) -> Control {
        let mut c = self.clone();
        c.deadline = Some(self.deadline.map_or(deadline, |d| d.min(deadline)));
        c
    }

    /// Whether its deadline has passed.
    pub fn timed_out(&self) -> bool {
        self.deadline
            .is_some_and(|d| std::time::Instant::now() >= d)
    }

    /// Also tells `hook` where a phased restore is, at each phase's start, gate and end.
    pub fn on_phase(
        mut self,
        hook: impl Fn(&str, &serde_json::Value) + Send + Sync + 'static,
    ) -> Control {
        self.phases = Some(Arc::new(hook));
        self
    }

    /// Where a phased restore is (see [`Control::on_phase`]).
    pub fn phase(&self, current: &str, reports: &serde_json::Value) {
        if let Some(h) = &self.phases {
            h(current, reports);
        }
    }

    /// Whether the work was asked to stop (or its deadline passed).
    pub fn cancelled(&self) -> bool {
        self.cancel
            .as_ref()
            .is_some_and(|c| c.load(Ordering::Relaxed))
            || self.timed_out()
    }

    /// `Err(Error::Cancelled)` once the work was asked to stop.
    pub fn check(&self) -> crate::Result<()> {
        if self.cancelled() {
            Err(crate::Error::Cancelled)
        } else {
            Ok(())
        }
    }

    /// Tells the caller how far the work is.
    pub fn report(&self, done: usize, total: usize) {
        if let Some(p) = &self.progress {
            p(Progress { done, total });
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Mutex;

    #[test]
    fn reports_and_cancels() {
        let seen = Arc::new(Mutex::new(Vec::new()));
        let cancel = Arc::new(AtomicBool::new(false));
        let s = seen.clone();
        let c = Control::new(cancel.clone(), move |p| s.lock().unwrap().push(p));
        c.report(1, 2);
        assert!(c.check().is_ok());
        cancel.store(true, Ordering::Relaxed);
        assert!(matches!(c.check(), Err(crate::Error::Cancelled)));
        assert_eq!(*seen.lock().unwrap(), [Progress { done: 1, total: 2 }]);
        assert!(!Control::default().cancelled());
        let now = std::time::Instant::now();
        let late = Control::default().until(now + std::time::Duration::from_secs(3600));
        assert!(!late.cancelled() && !late.timed_out());
        let over = late.until(now);
        assert!(over.cancelled() && over.timed_out());
        assert!(
            over.until(now + std::time::Duration::from_secs(7200))
                .timed_out(),
            "the earlier wins"
        );
    }
}
