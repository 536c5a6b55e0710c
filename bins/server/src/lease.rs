//! Leader election with a `coordination.k8s.io/v1` Lease, as Kubernetes' own controllers
//! do it: of several replicas only the holder acts; it renews the Lease well within its
//! duration; another takes it over once a renewal is that long overdue. Every write
//! carries the resourceVersion it read, so two replicas never both win.

use std::time::{Duration, SystemTime};

use repo_k8s::cluster::{Cluster, Created};
use repo_k8s::{Discovery, Object, Resource};
use serde_json::json;

/// The Lease's name.
pub const LEASE_NAME: &str = "cairn-server";

/// One replica's view of the Lease.
pub struct Elector<'a> {
    cluster: &'a Cluster,
    namespace: String,
    /// This replica (its pod name in a cluster).
    pub identity: String,
    pub duration: Duration,
    lease: Resource,
}

/// What a try found.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Leadership {
    /// This replica holds the Lease (until `duration` after now, unless renewed).
    Leader,
    /// Another does: its identity.
    Follower(String),
}

impl<'a> Elector<'a> {
    pub fn new(cluster: &'a Cluster, namespace: &str, identity: &str, duration: Duration) -> Self {
        Elector {
            cluster,
            namespace: namespace.to_string(),
            identity: identity.to_string(),
            duration,
            lease: Discovery::built_in()
                .resolve("leases.coordination.k8s.io")
                .expect("leases are built in")
                .clone(),
        }
    }

    /// Takes or renews the Lease at time `now`; `Err` when the API server could not be
    /// asked (then nobody should act on this replica's say).
    pub fn try_lead(&self, now: SystemTime) -> Result<Leadership, String> {
        let stamp = micro_time(now);
        let ns = Some(self.namespace.as_str());
        let current = self
            .cluster
            .get(&self.lease, ns, LEASE_NAME)
            .map_err(|e| e.to_string())?;
        let Some(current) = current else {
            let lease = Object::from_value(
                json!({"apiVersion": "coordination.k8s.io/v1", "kind": "Lease",
                    "metadata": {"name": LEASE_NAME, "namespace": self.namespace},
                    "spec": {"holderIdentity": self.identity, "leaseDurationSeconds": self.duration.as_secs(),
                        "acquireTime": stamp, "renewTime": stamp, "leaseTransitions": 0}}),
                LEASE_NAME,
            )
            .map_err(|e| e.to_string())?;
            return match self
                .cluster
                .create(&self.lease, &lease)
                .map_err(|e| e.to_string())?
            {
                Created::Created(_) => Ok(Leadership::Leader),
                // Another replica made it first.
                Created::AlreadyExists(o) => Ok(Leadership::Follower(holder(&o))),
            };
        };
        let holder = holder(&current);
        let renewed = current
            .str_at(&["spec", "renewTime"])
            .and_then(parse_micro_time);
        let held_for = current
            .get(&["spec", "leaseDurationSeconds"])
            .and_then(|v| v.as_u64())
            .map(Duration::from_secs)
            .unwrap_or(self.duration);
        let expired = renewed.is_none_or(|t| t + held_for <= now);
        if holder != self.identity && !holder.is_empty() && !expired {
            return Ok(Leadership::Follower(holder));
        }
        let mut spec = json!({"holderIdentity": self.identity, "renewTime": stamp,
            "leaseDurationSeconds": self.duration.as_secs()});
        if holder != self.identity {
            let transitions = current
                .get(&["spec", "leaseTransitions"])
                .and_then(|v| v.as_u64())
                .unwrap_or(0);
            spec["acquireTime"] = stamp.clone().into();
            spec["leaseTransitions"] = (transitions + 1).into();
        }
        // The resourceVersion read: a replica that wrote in between makes this one lose.
        let version = current
            .str_at(&["metadata", "resourceVersion"])
            .unwrap_or("");
        let patch = json!({"metadata": {"resourceVersion": version}, "spec": spec});
        match self
            .cluster
            .merge_patch(&self.lease, ns, LEASE_NAME, &patch)
        {
            Ok(_) => Ok(Leadership::Leader),
            Err(repo_k8s::Error::Cluster(c)) if c.code == Some(409) => {
                let now_held = self
                    .cluster
                    .get(&self.lease, ns, LEASE_NAME)
                    .ok()
                    .flatten()
                    .map(|o| self::holder(&o))
                    .unwrap_or_default();
                Ok(Leadership::Follower(now_held))
            }
            Err(e) => Err(e.to_string()),
        }
    }
}

fn holder(lease: &Object) -> String {
    lease
        .str_at(&["spec", "holderIdentity"])
        .unwrap_or("")
        .to_string()
}

/// `metav1.MicroTime`: RFC 3339 with microseconds.
fn micro_time(t: SystemTime) -> String {
    let full = repo_core::time::format_rfc3339(t);
    match full.split_once('.') {
        Some((seconds, frac)) => format!("{seconds}.{:0<6.6}Z", frac.trim_end_matches('Z')),
        None => full,
    }
}

fn parse_micro_time(s: &str) -> Option<SystemTime> {
    repo_core::time::parse_rfc3339(s)
}

#[cfg(test)]
mod tests {
    #[test]
    fn micro_times_have_six_digits() {
        let t = std::time::UNIX_EPOCH + std::time::Duration::from_nanos(1_700_000_000_123_456_789);
        let s = super::micro_time(t);
        assert!(s.ends_with(".123456Z"), "{s}");
        assert_eq!(super::parse_micro_time(&s).map(|p| p <= t), Some(true));
    }
}
