//! DownloadRequests, so Velero's own CLI works against cairn (`velero backup logs`,
//! `velero backup describe --details`, `velero restore describe`, `velero backup download`):
//! the CLI creates a DownloadRequest for a backup's or restore's log, results, resource
//! list or contents, waits for `status.downloadURL`, and GETs it. Velero answers with a
//! presigned object-store URL; the data here is encrypted in the repository, so cairn-server
//! prepares the file itself and serves it at an unguessable URL (256 random bits) on its
//! HTTP port, valid ten minutes. Expired requests and files are removed.
//!
//! Everything but BackupContents is gzipped, as Velero's CLI expects. Kinds cairn has no
//! data for (volume snapshots, item operations, volume infos) answer 404, which the CLI
//! reads as "none". Restore logs and results are kept by the server that ran the restore
//! (in its data directory), not in the repository: a restarted server no longer has them.

use std::collections::HashMap;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::{Duration, SystemTime};

use repo_k8s::velero::{resource, DownloadRequest, DownloadRequestPhase, DownloadTargetKind};
use serde_json::json;

use crate::backups::{kube_time, Controller};

/// How long a download URL works (Velero's signed URLs last ten minutes).
pub const VALID_FOR: Duration = Duration::from_secs(600);

/// A file ready for download.
#[derive(Clone, Debug)]
pub struct Ready {
    pub path: PathBuf,
    pub expires: SystemTime,
}

/// The files being served, by token, and the restores' logs and results.
pub struct Downloads {
    dir: tempfile::TempDir,
    ready: Mutex<HashMap<String, Ready>>,
    /// Where URLs point: `http://host:port` of this server, as clients reach it.
    pub base_url: Mutex<String>,
}

impl Default for Downloads {
    fn default() -> Self {
        Downloads {
            dir: tempfile::Builder::new()
                .prefix("cairn-server-")
                .tempdir()
                .expect("a temporary directory can be made"),
            ready: Mutex::default(),
            base_url: Mutex::new("http://localhost:8085".into()),
        }
    }
}

impl Downloads {
    /// The file for `token`, if it exists and has not expired.
    pub fn get(&self, token: &str, now: SystemTime) -> Option<PathBuf> {
        let ready = self.ready.lock().expect("not poisoned");
        ready
            .get(token)
            .filter(|r| r.expires > now)
            .map(|r| r.path.clone())
    }

    /// Keeps `bytes` under a new token until `expires`; returns the token.
    fn add(&self, bytes: &[u8], expires: SystemTime) -> std::io::Result<String> {
        let mut raw = [0u8; 32];
        rand::RngCore::fill_bytes(&mut rand::rngs::OsRng, &mut raw);
        let token: String = raw.iter().map(|b| format!("{b:02x}")).collect();
        let path = self.dir.path().join(&token);
        std::fs::write(&path, bytes)?;
        self.ready
            .lock()
            .expect("not poisoned")
            .insert(token.clone(), Ready { path, expires });
        Ok(token)
    }

    /// The URL of `token` (`none`: a URL that answers 404).
    fn url(&self, token: &str) -> String {
        let base = self.base_url.lock().expect("not poisoned");
        format!("{base}/download/{token}")
    }

    /// Removes what expired.
    fn expire(&self, now: SystemTime) {
        let mut ready = self.ready.lock().expect("not poisoned");
        ready.retain(|_, r| {
            let keep = r.expires > now;
            if !keep {
                let _ = std::fs::remove_file(&r.path);
            }
            keep
        });
    }

    fn restore_file(&self, restore: &str, what: &str) -> PathBuf {
        self.dir.path().join(format!("restore-{restore}.{what}"))
    }

    /// Keeps a restore's log and results for later DownloadRequests.
    pub fn keep_restore(&self, restore: &str, log: &str, results: &serde_json::Value) {
        let _ = std::fs::write(self.restore_file(restore, "log"), log);
        let _ = std::fs::write(
            self.restore_file(restore, "results"),
            serde_json::to_vec(results).expect("JSON"),
        );
    }

    /// A restore's results as kept (`{"warnings": …, "errors": …}`), if it ran here.
    pub fn restore_results(&self, restore: &str) -> Option<serde_json::Value> {
        let bytes = std::fs::read(self.restore_file(restore, "results")).ok()?;
        serde_json::from_slice(&bytes).ok()
    }

    fn dir(&self) -> &Path {
        self.dir.path()
    }
}

fn gzip(bytes: &[u8]) -> Vec<u8> {
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    gz.write_all(bytes).expect("writing to memory");
    gz.finish().expect("writing to memory")
}

impl Controller<'_> {
    /// Answers waiting DownloadRequests and removes expired ones; returns how many were
    /// answered.
    pub fn serve_download_requests(&self, now: SystemTime) -> usize {
        let r = resource::<DownloadRequest>();
        let ns = Some(self.namespace.as_str());
        self.downloads.expire(now);
        let Ok(list) = self.cluster.list(&r, ns) else {
            return 0;
        };
        let mut answered = 0;
        for req in list.iter().filter_map(crate::typed::<DownloadRequest>) {
            let status = req.status.clone().unwrap_or_default();
            let name = &req.metadata.name;
            if status.phase == Some(DownloadRequestPhase::Processed) {
                let expired = status
                    .expiration
                    .as_deref()
                    .and_then(repo_core::time::parse_rfc3339)
                    .is_none_or(|t| t <= now);
                if expired {
                    let _ = self.cluster.delete(&r, ns, name);
                }
                continue;
            }
            let expires = now + VALID_FOR;
            let url = match self.prepare(&req.spec.target.kind, &req.spec.target.name) {
                Ok(Some(bytes)) => match self.downloads.add(&bytes, expires) {
                    Ok(token) => self.downloads.url(&token),
                    Err(e) => {
                        let dir = self.downloads.dir().display().to_string();
                        self.event(
                            &req,
                            crate::events::Level::Warning,
                            "NotPrepared",
                            &format!("could not write the file under {dir}: {e}"),
                        );
                        continue;
                    }
                },
                // Nothing of that kind: a URL that answers 404, as a missing object does.
                Ok(None) => self.downloads.url("none"),
                Err(e) => {
                    self.event(&req, crate::events::Level::Warning, "NotPrepared", &e);
                    self.downloads.url("none")
                }
            };
            let status =
                json!({"phase": "Processed", "downloadURL": url, "expiration": kube_time(expires)});
            let _ = self
                .cluster
                .merge_patch(&r, ns, name, &json!({ "status": status }));
            answered += 1;
        }
        answered
    }

    /// The file for a target: `None` when cairn has no such data.
    fn prepare(&self, kind: &DownloadTargetKind, name: &str) -> Result<Option<Vec<u8>>, String> {
        use DownloadTargetKind as K;
        match kind {
            K::BackupLog | K::BackupResults | K::BackupResourceList | K::BackupContents => {
                self.prepare_backup(kind, name).map(Some)
            }
            K::RestoreLog | K::RestoreResults => {
                let what = if *kind == K::RestoreLog {
                    "log"
                } else {
                    "results"
                };
                match std::fs::read(self.downloads.restore_file(name, what)) {
                    Ok(bytes) => Ok(Some(gzip(&bytes))),
                    Err(_) => Ok(None),
                }
            }
            _ => Ok(None),
        }
    }

    fn prepare_backup(&self, kind: &DownloadTargetKind, name: &str) -> Result<Vec<u8>, String> {
        use DownloadTargetKind as K;
        let backup = crate::typed::<repo_k8s::velero::Backup>(
            &self
                .cluster
                .get(
                    &resource::<repo_k8s::velero::Backup>(),
                    Some(&self.namespace),
                    name,
                )
                .map_err(|e| e.to_string())?
                .ok_or_else(|| format!("backup {name} does not exist"))?,
        )
        .ok_or_else(|| format!("backup {name} is not readable"))?;
        let location = self.location(backup.spec.storage_location.as_deref())?;
        let repo = self.open_repository(&location)?;
        let snapshot =
            repo_k8s::catalog::backup_snapshot(&repo, name).map_err(|e| e.to_string())?;
        let text = |e: repo_k8s::Error| e.to_string();
        Ok(match kind {
            K::BackupLog => gzip(&repo_k8s::catalog::backup_log(&repo, &snapshot).map_err(text)?),
            K::BackupResults => {
                let results = repo_k8s::catalog::results(&repo, &snapshot).map_err(text)?;
                gzip(&serde_json::to_vec(&results).expect("JSON"))
            }
            K::BackupResourceList => {
                let list = repo_k8s::catalog::resource_list(&repo, &snapshot).map_err(text)?;
                gzip(&serde_json::to_vec(&list).expect("JSON"))
            }
            _ => {
                let mut out = Vec::new();
                repo_k8s::tarball::export(&repo, &snapshot, &mut out).map_err(text)?;
                out
            }
        })
    }
}
