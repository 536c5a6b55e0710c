//! Velero's volume policies (`internal/resourcepolicies`, the resource-policy ConfigMap,
//! version v1): per volume, the first policy whose conditions all match gives the action
//! (`skip`, `fs-backup`, `snapshot`, `custom`); none matching leaves Velero's defaults.
//!
//! ```yaml
//! version: v1
//! volumePolicies:
//! - conditions: {capacity: "0,5Gi", csi: {driver: ebs.csi.aws.com}}
//!   action: {type: snapshot}
//! - conditions: {nfs: {server: 10.0.0.5}}
//!   action: {type: fs-backup}
//! - conditions: {pvcPhase: [Pending, Lost]}
//!   action: {type: skip}
//! ```
//!
//! Conditions: `capacity` ("lower,upper", Kubernetes quantities, either side may be
//! empty), `storageClass` (a list), `nfs` (`{}`: any NFS volume; given fields must be
//! equal), `csi` (`{}`: any CSI volume; `driver`, and `volumeAttributes` that must all be
//! there), `volumeTypes` (the volume's source kind), `pvcLabels` (a subset of the claim's
//! labels) and `pvcPhase`. Every problem is reported in Velero's words.

use std::collections::BTreeMap;

use serde::Deserialize;
use serde_json::Value;

use crate::object::Object;

/// What to do with a volume.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Action {
    Skip,
    FsBackup,
    Snapshot,
    /// Left to a plugin; cairn treats it as no policy.
    Custom(Value),
}

/// The volume types a `volumeTypes` condition may name (Velero's list).
pub const VOLUME_TYPES: &[&str] = &[
    "awsAzureDisk",
    "awsElasticBlockStore",
    "azureDisk",
    "azureFile",
    "cinder",
    "cephfs",
    "configMap",
    "csi",
    "downwardAPI",
    "emptyDir",
    "ephemeral",
    "fc",
    "flocker",
    "flexVolume",
    "gitRepo",
    "glusterfs",
    "gcePersistentDisk",
    "hostPath",
    "iscsi",
    "local",
    "nfs",
    "photonPersistentDisk",
    "portworxVolume",
    "projected",
    "quobyte",
    "rbd",
    "scaleIO",
    "secret",
    "storageOS",
    "vsphereVolume",
];

#[derive(Clone, Debug, Default, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct Nfs {
    #[serde(default)]
    pub server: String,
    #[serde(default)]
    pub path: String,
}

#[derive(Clone, Debug, Default, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct Csi {
    #[serde(default)]
    pub driver: String,
    #[serde(default)]
    pub volume_attributes: BTreeMap<String, String>,
}

#[derive(Clone, Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct RawConditions {
    #[serde(default)]
    capacity: Option<String>,
    #[serde(default)]
    storage_class: Option<Vec<String>>,
    #[serde(default)]
    nfs: Option<Nfs>,
    #[serde(default)]
    csi: Option<Csi>,
    #[serde(default)]
    volume_types: Option<Vec<String>>,
    #[serde(default)]
    pvc_labels: Option<Value>,
    #[serde(default)]
    pvc_phase: Option<Vec<String>>,
}

/// A policy's conditions, checked.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Conditions {
    /// Bytes, inclusive; 0 is "no bound".
    pub capacity: Option<(u128, u128)>,
    pub storage_class: Option<Vec<String>>,
    pub nfs: Option<Nfs>,
    pub csi: Option<Csi>,
    pub volume_types: Option<Vec<String>>,
    pub pvc_labels: Option<BTreeMap<String, String>>,
    pub pvc_phase: Option<Vec<String>>,
}

/// One policy.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct VolumePolicy {
    pub conditions: Conditions,
    pub action: Action,
}

/// A backup's volume policies, in order.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct VolumePolicies {
    pub policies: Vec<VolumePolicy>,
}

/// A Kubernetes quantity in bytes, rounded up (`5Gi`, `100M`, `1.5Gi`, `2e3`).
pub fn parse_quantity(s: &str) -> Option<u128> {
    let s = s.trim();
    let suffixes: [(&str, f64); 13] = [
        ("Ki", 1024f64),
        ("Mi", 1024f64.powi(2)),
        ("Gi", 1024f64.powi(3)),
        ("Ti", 1024f64.powi(4)),
        ("Pi", 1024f64.powi(5)),
        ("Ei", 1024f64.powi(6)),
        ("k", 1e3),
        ("M", 1e6),
        ("G", 1e9),
        ("T", 1e12),
        ("P", 1e15),
        ("E", 1e18),
        ("m", 1e-3),
    ];
    let (number, scale) = suffixes
        .iter()
        .find_map(|(suffix, scale)| s.strip_suffix(suffix).map(|n| (n, *scale)))
        .unwrap_or((s, 1.0));
    if number.is_empty() || number.starts_with('-') {
        return None;
    }
    let n: f64 = number.parse().ok()?;
    if !n.is_finite() {
        return None;
    }
    Some((n * scale).ceil() as u128)
}

fn parse_capacity(s: &str) -> Result<Option<(u128, u128)>, String> {
    if s.is_empty() {
        return Ok(None);
    }
    let parts: Vec<&str> = s.split(',').collect();
    if parts.len() != 2 {
        return Err(format!("wrong format of Capacity {s}"));
    }
    let side = |p: &str| -> Result<u128, String> {
        let p = p.trim();
        if p.is_empty() {
            return Ok(0);
        }
        parse_quantity(p).ok_or_else(|| {
            format!("wrong format of Capacity {p} with err quantities must match the regular expression")
        })
    };
    let (lower, upper) = (side(parts[0])?, side(parts[1])?);
    if lower > 0 && upper > 0 && upper < lower {
        return Err(format!("illegal values for capacity {s}"));
    }
    Ok(Some((lower, upper)))
}

impl Conditions {
    fn parse(v: &Value) -> Result<Conditions, String> {
        let raw: RawConditions = if v.is_null() {
            RawConditions::default()
        } else {
            serde_json::from_value(v.clone())
                .map_err(|e| format!("failed to decode volume conditions: {e}"))?
        };
        let pvc_labels = match raw.pvc_labels {
            None => None,
            Some(Value::Object(m)) => Some(
                m.into_iter()
                    .map(|(k, v)| match v {
                        Value::String(s) => Ok((k, s)),
                        other => Ok((k, other.to_string())),
                    })
                    .collect::<Result<_, String>>()?,
            ),
            Some(other) => {
                return Err(format!(
                    "pvcLabels must be a map of string to string, got {}",
                    match other {
                        Value::Array(_) => "[]interface {}",
                        Value::String(_) => "string",
                        _ => "another type",
                    }
                ))
            }
        };
        if let Some(c) = &raw.csi {
            if c.driver.is_empty() && !c.volume_attributes.is_empty() {
                return Err(
                    "csi driver should not be empty when filtering by volume attributes".into(),
                );
            }
        }
        if let Some(types) = &raw.volume_types {
            if let Some(t) = types.iter().find(|t| !VOLUME_TYPES.contains(&t.as_str())) {
                return Err(format!("unknown volume type {t:?} in volumeTypes"));
            }
        }
        Ok(Conditions {
            capacity: parse_capacity(raw.capacity.as_deref().unwrap_or(""))?,
            storage_class: raw.storage_class,
            nfs: raw.nfs,
            csi: raw.csi,
            volume_types: raw.volume_types,
            pvc_labels,
            pvc_phase: raw.pvc_phase,
        })
    }
}

impl VolumePolicies {
    /// The `volumePolicies` of a resource policies document, checked.
    pub fn parse(values: &[Value]) -> crate::Result<VolumePolicies> {
        let mut policies = Vec::new();
        for v in values {
            let action = match v.pointer("/action/type").and_then(Value::as_str) {
                Some("skip") => Action::Skip,
                Some("fs-backup") => Action::FsBackup,
                Some("snapshot") => Action::Snapshot,
                Some("custom") => Action::Custom(v["action"]["parameters"].clone()),
                other => {
                    return Err(crate::Error::invalid(format!(
                        "invalid action type {}",
                        other.unwrap_or("")
                    )))
                }
            };
            let conditions = Conditions::parse(&v["conditions"]).map_err(crate::Error::invalid)?;
            policies.push(VolumePolicy { conditions, action });
        }
        Ok(VolumePolicies { policies })
    }

    /// The action of the first policy whose conditions all match `v`.
    pub fn action_for(&self, v: &Volume) -> Option<&Action> {
        self.policies
            .iter()
            .find(|p| v.matches(&p.conditions))
            .map(|p| &p.action)
    }
}

/// A volume as the conditions see it: a PersistentVolume (with its claim), a pod's volume
/// (with its claim, if it is one), or a claim alone (unbound).
#[derive(Clone, Copy, Debug, Default)]
pub struct Volume<'a> {
    pub pv: Option<&'a Object>,
    /// The pod's `spec.volumes[]` entry.
    pub pod_volume: Option<&'a Value>,
    pub pvc: Option<&'a Object>,
}

impl Volume<'_> {
    /// The volume's source: the PersistentVolume's spec, else the pod volume.
    fn source(&self) -> Option<&Value> {
        match self.pv {
            Some(pv) => pv.get(&["spec"]),
            None => self.pod_volume,
        }
    }

    /// The volume's type (Velero's names), `""` when it has none of them.
    pub fn volume_type(&self) -> &'static str {
        let Some(src) = self.source() else { return "" };
        VOLUME_TYPES
            .iter()
            .find(|t| {
                let key = match **t {
                    "storageOS" => "storageos",
                    other => other,
                };
                src.get(key).is_some_and(|v| !v.is_null())
            })
            .copied()
            .unwrap_or("")
    }

    /// Bytes: the PersistentVolume's capacity; 0 for a pod volume or a claim alone.
    fn size(&self) -> u128 {
        self.pv
            .and_then(|pv| pv.str_at(&["spec", "capacity", "storage"]))
            .and_then(parse_quantity)
            .unwrap_or(0)
    }

    fn matches(&self, c: &Conditions) -> bool {
        let src = self.source();
        let capacity = c.capacity.is_none_or(|(lower, upper)| {
            let size = self.size();
            (lower == 0 || size >= lower) && (upper == 0 || size <= upper)
        });
        let class = c.storage_class.as_ref().is_none_or(|classes| {
            let class = self
                .pv
                .and_then(|pv| pv.str_at(&["spec", "storageClassName"]))
                .or_else(|| {
                    self.pvc
                        .and_then(|pvc| pvc.str_at(&["spec", "storageClassName"]))
                })
                .unwrap_or("");
            classes.is_empty() || classes.iter().any(|c| c == class)
        });
        let nfs = c.nfs.as_ref().is_none_or(|want| {
            let Some(n) = src.and_then(|s| s.get("nfs")).filter(|n| n.is_object()) else {
                return false;
            };
            (want.server.is_empty() || n["server"] == want.server.as_str())
                && (want.path.is_empty() || n["path"] == want.path.as_str())
        });
        let csi = c.csi.as_ref().is_none_or(|want| {
            let Some(v) = src.and_then(|s| s.get("csi")).filter(|v| v.is_object()) else {
                return false;
            };
            (want.driver.is_empty() || v["driver"] == want.driver.as_str())
                && want
                    .volume_attributes
                    .iter()
                    .all(|(k, val)| v["volumeAttributes"][k] == val.as_str())
        });
        let types = c
            .volume_types
            .as_ref()
            .is_none_or(|ts| ts.is_empty() || ts.iter().any(|t| t == self.volume_type()));
        let labels = c.pvc_labels.as_ref().is_none_or(|want| {
            want.is_empty()
                || self
                    .pvc
                    .is_some_and(|pvc| want.iter().all(|(k, v)| pvc.label(k) == Some(v.as_str())))
        });
        let phase = c.pvc_phase.as_ref().is_none_or(|phases| {
            phases.is_empty()
                || self.pvc.is_some_and(|pvc| {
                    let p = pvc.str_at(&["status", "phase"]).unwrap_or("");
                    phases.iter().any(|w| w == p)
                })
        });
        capacity && class && nfs && csi && types && labels && phase
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn obj(v: Value) -> Object {
        Object::from_value(v, "test").unwrap()
    }

    fn policies(yaml: &str) -> crate::Result<VolumePolicies> {
        let v: Value = yaml_serde::from_str(yaml).unwrap();
        VolumePolicies::parse(v.as_array().unwrap())
    }

    fn pv(spec: Value) -> Object {
        obj(
            json!({"apiVersion": "v1", "kind": "PersistentVolume", "metadata": {"name": "pv"}, "spec": spec}),
        )
    }

    fn pvc(labels: Value, phase: &str) -> Object {
        obj(json!({"apiVersion": "v1", "kind": "PersistentVolumeClaim",
            "metadata": {"name": "c", "namespace": "ns", "labels": labels}, "spec": {}, "status": {"phase": phase}}))
    }

    // Velero TestParseCapacity and TestCapacityIsInRange.
    #[test]
    fn capacities() {
        let gi = 1u128 << 30;
        assert_eq!(parse_capacity("10Gi,20Gi"), Ok(Some((10 * gi, 20 * gi))));
        assert_eq!(parse_capacity("10Gi,"), Ok(Some((10 * gi, 0))));
        assert_eq!(parse_capacity(""), Ok(None));
        assert_eq!(
            parse_capacity("10Gi"),
            Err("wrong format of Capacity 10Gi".into())
        );
        assert!(parse_capacity("20Gi,10Gi")
            .unwrap_err()
            .starts_with("illegal values"));
        assert!(parse_capacity("x,10Gi")
            .unwrap_err()
            .starts_with("wrong format of Capacity x"));
        assert_eq!(parse_quantity("1.5Gi"), Some(gi * 3 / 2));
        assert_eq!(parse_quantity("100M"), Some(100_000_000));
        assert_eq!(parse_quantity("500m"), Some(1));
        let p = policies(r#"[{conditions: {capacity: "0,5Gi"}, action: {type: skip}}, {conditions: {capacity: "5Gi,"}, action: {type: snapshot}}]"#).unwrap();
        let small = pv(json!({"capacity": {"storage": "1Gi"}}));
        let big = pv(json!({"capacity": {"storage": "50Gi"}}));
        let edge = pv(json!({"capacity": {"storage": "5Gi"}}));
        let of = |pv: &Object| {
            p.action_for(&Volume {
                pv: Some(pv),
                ..Default::default()
            })
            .cloned()
        };
        assert_eq!(of(&small), Some(Action::Skip));
        assert_eq!(of(&big), Some(Action::Snapshot));
        assert_eq!(of(&edge), Some(Action::Skip), "inclusive, first match wins");
    }

    // Velero TestGetMatchAction and TestGetResourceMatchedAction.
    #[test]
    fn the_first_policy_whose_conditions_all_match_wins() {
        let p = policies(
            r#"
- conditions: {csi: {driver: files.csi.azure.com, volumeAttributes: {protocol: nfs}}}
  action: {type: skip}
- conditions: {nfs: {}}
  action: {type: fs-backup}
- conditions: {storageClass: [gp2, gp3], pvcLabels: {tier: gold}}
  action: {type: snapshot}
- conditions: {volumeTypes: [local, hostPath]}
  action: {type: skip}
- conditions: {pvcPhase: [Pending, Lost]}
  action: {type: skip}
"#,
        )
        .unwrap();
        let afs_nfs = pv(
            json!({"csi": {"driver": "files.csi.azure.com", "volumeAttributes": {"protocol": "nfs"}}}),
        );
        let afs_smb = pv(
            json!({"csi": {"driver": "files.csi.azure.com", "volumeAttributes": {"protocol": "smb"}}}),
        );
        let nfs = pv(json!({"nfs": {"server": "10.0.0.5", "path": "/x"}}));
        let gold = pvc(json!({"tier": "gold", "extra": "yes"}), "Bound");
        let silver = pvc(json!({"tier": "silver"}), "Bound");
        let gp3 = pv(json!({"storageClassName": "gp3", "csi": {"driver": "ebs.csi.aws.com"}}));
        let of = |pv: Option<&Object>, pvc: Option<&Object>, pod_volume: Option<&Value>| {
            p.action_for(&Volume {
                pv,
                pvc,
                pod_volume,
            })
            .cloned()
        };
        assert_eq!(of(Some(&afs_nfs), None, None), Some(Action::Skip));
        assert_eq!(of(Some(&afs_smb), None, None), None);
        assert_eq!(of(Some(&nfs), None, None), Some(Action::FsBackup));
        assert_eq!(of(Some(&gp3), Some(&gold), None), Some(Action::Snapshot));
        assert_eq!(of(Some(&gp3), Some(&silver), None), None);
        let host = json!({"name": "logs", "hostPath": {"path": "/var/log"}});
        assert_eq!(of(None, None, Some(&host)), Some(Action::Skip));
        let empty_dir = json!({"name": "tmp", "emptyDir": {}});
        assert_eq!(of(None, None, Some(&empty_dir)), None);
        let pending = pvc(json!({}), "Pending");
        assert_eq!(of(None, Some(&pending), None), Some(Action::Skip));
        // Empty conditions match everything.
        let all = policies("[{action: {type: skip}}]").unwrap();
        assert_eq!(all.action_for(&Volume::default()), Some(&Action::Skip));
        assert_eq!(
            Volume {
                pv: Some(&gp3),
                ..Default::default()
            }
            .volume_type(),
            "csi"
        );
    }

    // Velero TestValidate and TestUnmarshalVolumeConditions.
    #[test]
    fn malformed_policies_are_refused_in_veleros_words() {
        for (yaml, want) in [
            (
                "[{conditions: {nope: 1}, action: {type: skip}}]",
                "failed to decode volume conditions",
            ),
            (
                "[{conditions: {storageClass: gp2}, action: {type: skip}}]",
                "failed to decode volume conditions",
            ),
            (
                "[{conditions: {csi: ebs}, action: {type: skip}}]",
                "failed to decode volume conditions",
            ),
            (
                "[{conditions: {csi: {volumeAttributes: {a: b}}}, action: {type: skip}}]",
                "csi driver should not be empty when filtering by volume attributes",
            ),
            (
                "[{conditions: {pvcLabels: [a]}, action: {type: skip}}]",
                "pvcLabels must be a map of string to string",
            ),
            (
                "[{conditions: {capacity: 10Gi}, action: {type: skip}}]",
                "wrong format of Capacity 10Gi",
            ),
            (
                "[{conditions: {}, action: {type: unsupported}}]",
                "invalid action type unsupported",
            ),
            (
                "[{conditions: {volumeTypes: [disk]}, action: {type: skip}}]",
                "unknown volume type",
            ),
        ] {
            let e = policies(yaml).unwrap_err().to_string();
            assert!(e.contains(want), "{yaml}: {e}");
        }
    }
}
