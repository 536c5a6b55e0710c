//! `node-agent restore-wait <restore-uid>`: what the `restore-wait` init container runs in
//! a restored pod. Each volume whose data is restored is mounted at `/restores/<volume>`;
//! the node-agent writes `.velero/<restore-uid>` into the volume when its data is back, or
//! `.velero/<restore-uid>.failed` with the reason when it could not be. This waits until
//! every volume has its done file, then removes only its own files (other restores' and
//! other pods' markers in a shared volume stay: Velero's helper removed them all, #7485),
//! and exits 0 so the pod's containers start.
//!
//! Unlike Velero's helper it does not wait forever (#3867, #7024): a volume whose restore
//! failed ends it at once with the reason, and `timeout` ends it with the volumes still
//! missing; either exits non-zero, so the pod shows why it does not start.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

/// The done file of restore `uid` in a volume mounted at `dir`.
pub fn done_file(dir: &Path, uid: &str) -> PathBuf {
    dir.join(".velero").join(uid)
}

/// The file that says the volume's restore failed (its content says why).
pub fn failed_file(dir: &Path, uid: &str) -> PathBuf {
    dir.join(".velero").join(format!("{uid}.failed"))
}

/// Waits for restore `uid`'s done file in every directory below `restores`, checking every
/// `every`, for at most `timeout`; then removes them. `Ok` lists the volumes; `Err` says
/// which volume failed and why, or which are still missing.
pub fn wait(
    restores: &Path,
    uid: &str,
    timeout: Duration,
    every: Duration,
) -> Result<Vec<String>, String> {
    if uid.is_empty() || uid.contains('/') || uid.starts_with('.') {
        return Err(format!("{uid:?} is not a restore UID"));
    }
    let started = Instant::now();
    loop {
        let mut volumes = Vec::new();
        let mut missing = Vec::new();
        let entries = std::fs::read_dir(restores)
            .map_err(|e| format!("cannot read {}: {e}", restores.display()))?;
        for e in entries.flatten() {
            let dir = e.path();
            if !dir.is_dir() {
                continue;
            }
            let name = e.file_name().to_string_lossy().to_string();
            if let Ok(why) = std::fs::read_to_string(failed_file(&dir, uid)) {
                return Err(format!(
                    "the data of volume {name} could not be restored: {}",
                    why.trim()
                ));
            }
            if done_file(&dir, uid).exists() {
                volumes.push(name);
            } else {
                missing.push(name);
            }
        }
        if missing.is_empty() {
            volumes.sort();
            for v in &volumes {
                let dir = restores.join(v);
                let _ = std::fs::remove_file(done_file(&dir, uid));
                // The marker directory goes once it holds nothing else.
                let _ = std::fs::remove_dir(dir.join(".velero"));
            }
            return Ok(volumes);
        }
        if started.elapsed() >= timeout {
            missing.sort();
            return Err(format!(
                "waited {} for the data of volumes {} (restore {uid}); check the PodVolumeRestores of this pod and the node-agent on its node",
                humantime::format_duration(timeout),
                missing.join(", ")
            ));
        }
        std::thread::sleep(every);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn marker(dir: &Path, name: &str, content: &str) {
        std::fs::create_dir_all(dir.join(".velero")).unwrap();
        std::fs::write(dir.join(".velero").join(name), content).unwrap();
    }

    #[test]
    fn waits_for_every_volume_and_removes_only_its_own_markers() {
        let r = tempfile::tempdir().unwrap();
        let (a, b) = (r.path().join("data"), r.path().join("cache"));
        std::fs::create_dir_all(&a).unwrap();
        std::fs::create_dir_all(&b).unwrap();
        marker(&a, "r1", "");
        marker(&a, "other-restore", "");
        let err = wait(r.path(), "r1", Duration::ZERO, Duration::ZERO).unwrap_err();
        assert!(err.contains("volumes cache"), "{err}");
        marker(&b, "r1", "");
        assert_eq!(
            wait(r.path(), "r1", Duration::ZERO, Duration::ZERO).unwrap(),
            ["cache", "data"]
        );
        assert!(!done_file(&a, "r1").exists());
        assert!(
            done_file(&a, "other-restore").exists(),
            "another restore's marker stays"
        );
        assert!(
            !b.join(".velero").exists(),
            "an empty marker directory goes"
        );
    }

    #[test]
    fn a_failed_volume_ends_the_wait_with_the_reason() {
        let r = tempfile::tempdir().unwrap();
        let a = r.path().join("data");
        std::fs::create_dir_all(&a).unwrap();
        marker(&a, "r1.failed", "the snapshot is damaged\n");
        let err = wait(r.path(), "r1", Duration::from_secs(60), Duration::ZERO).unwrap_err();
        assert_eq!(
            err,
            "the data of volume data could not be restored: the snapshot is damaged"
        );
        assert!(wait(r.path(), "../x", Duration::ZERO, Duration::ZERO).is_err());
    }
}
