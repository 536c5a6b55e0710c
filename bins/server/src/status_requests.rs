//! ServerStatusRequests (what `velero version` and `velero plugin get` create): answered
//! `Processed` with the server's version, and removed a minute after, as Velero does.

use std::time::{Duration, SystemTime};

use repo_k8s::velero::{resource, ServerStatusRequest, ServerStatusRequestPhase};
use serde_json::json;

use crate::backups::{kube_time, Controller};
use crate::typed;

/// How long a processed request is kept (Velero's).
pub const KEEP_PROCESSED: Duration = Duration::from_secs(60);

/// The version a ServerStatusRequest reports.
pub fn server_version() -> String {
    format!("v{} (cairn)", env!("CARGO_PKG_VERSION"))
}

impl Controller<'_> {
    /// Answers new ServerStatusRequests and removes those processed over a minute before
    /// `now`. Returns (answered, removed).
    pub fn serve_status_requests(&self, now: SystemTime) -> (usize, usize) {
        let r = resource::<ServerStatusRequest>();
        let ns = Some(self.namespace.as_str());
        let (mut answered, mut removed) = (0, 0);
        for o in self.cluster.list(&r, ns).unwrap_or_default() {
            let Some(req) = typed::<ServerStatusRequest>(&o) else {
                continue;
            };
            let status = req.status.unwrap_or_default();
            match status.phase {
                None | Some(ServerStatusRequestPhase::New) => {
                    let patch = json!({"status": {"phase": "Processed", "serverVersion": server_version(),
                        "processedTimestamp": kube_time(now), "plugins": []}});
                    if self.cluster.merge_patch(&r, ns, o.name(), &patch).is_ok() {
                        answered += 1;
                    }
                }
                Some(ServerStatusRequestPhase::Processed) => {
                    let at = status
                        .processed_timestamp
                        .as_deref()
                        .and_then(repo_core::time::parse_rfc3339);
                    if at.is_none_or(|t| t + KEEP_PROCESSED <= now)
                        && self.cluster.delete(&r, ns, o.name()).is_ok()
                    {
                        removed += 1;
                    }
                }
            }
        }
        (answered, removed)
    }
}
