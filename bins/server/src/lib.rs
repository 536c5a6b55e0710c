//! cairn-server's control plane, as a library that tests drive in-process: what the server
//! does with Velero's objects in its namespace. `main.rs` parses arguments and wires.
//!
//! - [`serve`]: the loop, while this replica holds the Lease ([`lease`]);
//! - [`startup`]: what a new leader fails first;
//! - [`backups`], [`restores`], [`deletions`]: the work of one Backup, Restore or
//!   DeleteBackupRequest, and the garbage collector;
//! - [`location`], [`credentials`], [`repository`], [`location_status`], [`sync`]: storage
//!   locations as repositories, their checks, and disaster-recovery sync;
//! - ServerStatusRequests: [`status_requests`].

pub mod api;
pub mod backups;
pub mod credentials;
pub mod cron;
pub mod deletions;
pub mod downloads;
pub mod events;
pub mod http;
pub mod lease;
pub mod location;
pub mod location_status;
pub mod metrics;
pub mod pod_volumes;
pub mod progress;
pub mod queue;
pub mod repository;
pub mod restores;
pub mod schedules;
pub mod serve;
pub mod snapshot_move;
pub mod startup;
pub mod status_requests;
pub mod sync;
pub mod workflow;

/// An object as a Velero kind (or any type it deserializes into); `None` if it does not read.
pub(crate) fn typed<K: serde::de::DeserializeOwned>(o: &repo_k8s::Object) -> Option<K> {
    serde_json::from_value(serde_json::Value::Object(o.as_value().clone())).ok()
}
