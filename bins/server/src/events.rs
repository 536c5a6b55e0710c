//! Kubernetes Events on Velero's objects (`kubectl describe` and `kubectl get events`
//! show them): what the server did to an object, and why it did not do something
//! (a schedule's run deferred, a location unavailable). An Event that cannot be written is
//! dropped: Events inform, they never hold work up.

use repo_k8s::velero::Kind;
use serde_json::json;

use crate::backups::Controller;

/// `Normal` or `Warning`, as Kubernetes has them.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Level {
    Normal,
    Warning,
}

impl Controller<'_> {
    /// Records an Event about `object` (of kind `K`, in the server's namespace).
    pub fn event<K: Kind>(&self, object: &K, level: Level, reason: &str, message: &str) {
        let meta = object.metadata();
        let now = (self.now)();
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap_or_default()
            .as_nanos();
        // client-go's naming: the object's name and a unique suffix.
        let name = format!("{}.{nanos:x}", meta.name);
        let event = json!({
            "apiVersion": "v1", "kind": "Event",
            "metadata": {"name": name, "namespace": self.namespace},
            "involvedObject": {"apiVersion": "velero.io/v1", "kind": K::KIND, "name": meta.name,
                "namespace": self.namespace, "uid": meta.uid},
            "reason": reason, "message": message,
            "type": match level { Level::Normal => "Normal", Level::Warning => "Warning" },
            "source": {"component": "cairn-server"},
            "reportingComponent": "cairn-server",
            "firstTimestamp": now, "lastTimestamp": now, "count": 1,
        });
        let events = repo_k8s::Discovery::built_in()
            .resolve("events")
            .expect("built in")
            .clone();
        if let Ok(o) = repo_k8s::Object::from_value(event, "events") {
            let _ = self.cluster.create(&events, &o);
        }
    }
}
