//! Which volumes of a pod are backed up file by file: Velero 1.18's rules
//! (`internal/volumehelper` `ShouldPerformFSBackup`, then `pkg/podvolume/backupper.go`).
//!
//! 1. Never: `hostPath`, `secret`, `configMap`, `projected` and `downwardAPI` volumes, claims
//!    when the backup leaves claims out, and volumes named `default-token*`.
//! 2. Then opt-in or opt-out: without `defaultVolumesToFsBackup`, only the volumes the
//!    annotation `backup.velero.io/backup-volumes` names; with it, every volume but those
//!    `backup.velero.io/backup-volumes-excludes` names.
//! 3. Then, for the volumes chosen: nothing for a pod that is not Running (not scheduled,
//!    or being deleted); a claim whose volume is a `hostPath` PV, a block volume, and a
//!    volume no container mounts are skipped, each with its reason; a claim another pod
//!    of the same backup already has is left to that pod ([`Claims`]).
//!
//! A volume policy ([`crate::volume_policy`]) that matches a volume decides before step 2:
//! `skip` leaves it, `fs-backup` backs it up file by file whatever the annotations say (step
//! 1 still holds), `snapshot` leaves it to the snapshot path ([`Chosen::snapshot`]).
//!
//! Unlike Velero, the annotations' lists are trimmed (`"a, b"` names `b`, not `" b"`), and
//! a name the annotation gives that the pod has no volume of is reported, not silently
//! dropped.

use std::collections::BTreeMap;

use serde_json::Value;

use crate::object::Object;

/// What to back up of one pod.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Chosen {
    /// The volumes to back up, with their claim if they are one.
    pub volumes: Vec<PodVolume>,
    /// Volumes opted out by the exclude annotation (their claims are then not backed up
    /// through this pod).
    pub opted_out: Vec<String>,
    /// Volumes chosen but not backed up, with why (for the backup's log and results).
    pub skipped: Vec<(String, String)>,
    /// Volumes a volume policy sends to a snapshot instead.
    pub snapshot: Vec<PodVolume>,
}

/// A pod volume to back up.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PodVolume {
    pub name: String,
    /// The PersistentVolumeClaim the volume is, if it is one.
    pub claim: Option<String>,
}

/// What the choice needs beyond the pod.
pub struct Context<'a> {
    /// `defaultVolumesToFsBackup` (the Backup's, else the server's).
    pub default_to_fs_backup: bool,
    /// Whether the backup leaves PersistentVolumeClaims out (its resource filter).
    pub exclude_claims: bool,
    /// The PersistentVolume bound to a claim of the pod's namespace, if any.
    pub volume_of_claim: &'a dyn Fn(&str) -> Option<Object>,
    /// The action of the volume policy that matches a pod volume (`spec.volumes[]`), if
    /// any.
    pub policy: Option<&'a PolicyOf<'a>>,
    /// Whether claims that are neither backed up file by file nor skipped go to the
    /// snapshot path (Velero's default when the Backup moves snapshot data and does not
    /// turn `snapshotVolumes` off).
    pub snapshot_claims: bool,
}

/// The action of the volume policy that matches a pod volume, if any.
pub type PolicyOf<'a> = dyn Fn(&Value) -> Option<crate::volume_policy::Action> + 'a;

fn list(o: &Object, key: &str) -> Option<Vec<String>> {
    let v = o.get(&["metadata", "annotations", key])?.as_str()?;
    Some(
        v.split(',')
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .map(str::to_string)
            .collect(),
    )
}

fn has(v: &Value, key: &str) -> bool {
    v.get(key).is_some_and(|x| !x.is_null())
}

/// Why a volume of this kind is never backed up file by file, if it is such a kind.
fn never(v: &Value, exclude_claims: bool) -> Option<&'static str> {
    let name = v["name"].as_str().unwrap_or_default();
    for (key, why) in [
        ("hostPath", "a hostPath volume"),
        ("secret", "a secret volume"),
        ("configMap", "a configMap volume"),
        ("projected", "a projected volume"),
        ("downwardAPI", "a downwardAPI volume"),
    ] {
        if has(v, key) {
            return Some(why);
        }
    }
    if exclude_claims && has(v, "persistentVolumeClaim") {
        return Some("a claim, and the backup leaves claims out");
    }
    if name.starts_with("default-token") {
        return Some("a service account token");
    }
    None
}

/// Why the pod's volumes cannot be read now, if they cannot (Velero's `IsPodRunning`).
pub fn not_running(pod: &Object) -> Option<String> {
    let (ns, name) = (pod.namespace().unwrap_or_default(), pod.name());
    let phase = pod
        .get(&["status", "phase"])
        .and_then(Value::as_str)
        .unwrap_or("");
    let node = pod
        .get(&["spec", "nodeName"])
        .and_then(Value::as_str)
        .unwrap_or("");
    if node.is_empty() {
        return Some(format!(
            "pod {ns}/{name} is not scheduled (phase {phase:?}); its volumes cannot be read"
        ));
    }
    if pod.get(&["metadata", "deletionTimestamp"]).is_some() {
        return Some(format!(
            "pod {ns}/{name} is being deleted; its volumes are not read"
        ));
    }
    if phase != "Running" {
        return Some(format!(
            "pod {ns}/{name} is not running (phase {phase:?}); its volumes cannot be read"
        ));
    }
    None
}

/// The volumes of `pod` to back up (see the module documentation).
pub fn choose(pod: &Object, cx: &Context) -> Chosen {
    let mut out = choose_files(pod, cx);
    if !cx.snapshot_claims || cx.exclude_claims {
        return out;
    }
    let decided: Vec<String> = (out.volumes.iter().chain(&out.snapshot))
        .map(|v| v.name.clone())
        .chain(out.skipped.iter().map(|(n, _)| n.clone()))
        .collect();
    let volumes = pod.get(&["spec", "volumes"]).and_then(Value::as_array);
    for v in volumes.into_iter().flatten() {
        let (Some(name), Some(claim)) = (
            v["name"].as_str(),
            v["persistentVolumeClaim"]["claimName"].as_str(),
        ) else {
            continue;
        };
        if !decided.iter().any(|d| d == name) {
            out.snapshot.push(PodVolume {
                name: name.to_string(),
                claim: Some(claim.to_string()),
            });
        }
    }
    out
}

/// The volumes of `pod` to back up file by file, and those a policy decided otherwise.
fn choose_files(pod: &Object, cx: &Context) -> Chosen {
    let mut out = Chosen::default();
    let volumes: Vec<&Value> = pod
        .get(&["spec", "volumes"])
        .and_then(Value::as_array)
        .map(|a| a.iter().collect())
        .unwrap_or_default();
    let by_name: BTreeMap<&str, &Value> = volumes
        .iter()
        .filter_map(|v| Some((v["name"].as_str()?, *v)))
        .collect();
    let (ns, pod_name) = (pod.namespace().unwrap_or_default(), pod.name());
    let mut wanted: Vec<&str> = Vec::new();
    // Volumes a policy decided; the annotations decide the others.
    let mut decided: Vec<&str> = Vec::new();
    if let Some(policy) = cx.policy {
        use crate::volume_policy::Action;
        for v in &volumes {
            let name = v["name"].as_str().unwrap_or_default();
            match policy(v) {
                None | Some(Action::Custom(_)) => continue,
                Some(Action::Skip) => out.skipped.push((
                    name.to_string(),
                    format!("volume {name} of pod {ns}/{pod_name}: a volume policy skips it"),
                )),
                Some(Action::Snapshot) => out.snapshot.push(PodVolume {
                    name: name.to_string(),
                    claim: v["persistentVolumeClaim"]["claimName"]
                        .as_str()
                        .map(str::to_string),
                }),
                Some(Action::FsBackup) => match never(v, cx.exclude_claims) {
                    Some(why) => out.skipped.push((
                        name.to_string(),
                        format!("volume {name} of pod {ns}/{pod_name} is {why}, which is not backed up file by file (a volume policy asked for it)"),
                    )),
                    None => wanted.push(name),
                },
            }
            decided.push(name);
        }
    }
    let undecided = |name: &str| !decided.contains(&name);
    if cx.default_to_fs_backup {
        let excluded = list(pod, super::BACKUP_VOLUMES_EXCLUDES).unwrap_or_default();
        for v in &volumes {
            let name = v["name"].as_str().unwrap_or_default();
            if !undecided(name) {
                continue;
            }
            if never(v, cx.exclude_claims).is_some() {
                continue;
            }
            if excluded.iter().any(|e| e == name) {
                out.opted_out.push(name.to_string());
                continue;
            }
            wanted.push(name);
        }
    } else {
        for name in list(pod, super::BACKUP_VOLUMES).unwrap_or_default() {
            if !undecided(&name) {
                continue;
            }
            match by_name.get(name.as_str()) {
                None => out.skipped.push((
                    name.clone(),
                    format!("pod {ns}/{pod_name} has no volume named {name:?} (annotation {})", super::BACKUP_VOLUMES),
                )),
                Some(v) => match never(v, cx.exclude_claims) {
                    Some(why) => out.skipped.push((
                        name.clone(),
                        format!("volume {name} of pod {ns}/{pod_name} is {why}, which is not backed up file by file"),
                    )),
                    None => wanted.push(by_name.get_key_value(name.as_str()).expect("found").0),
                },
            }
        }
    }
    if wanted.is_empty() {
        return out;
    }
    if let Some(why) = not_running(pod) {
        for name in wanted {
            out.skipped.push((name.to_string(), why.clone()));
        }
        return out;
    }
    let containers: Vec<&Value> = pod
        .get(&["spec", "containers"])
        .and_then(Value::as_array)
        .map(|a| a.iter().collect())
        .unwrap_or_default();
    let used_as = |field: &str, volume: &str| {
        containers.iter().any(|c| {
            c[field]
                .as_array()
                .is_some_and(|ms| ms.iter().any(|m| m["name"] == volume))
        })
    };
    for name in wanted {
        let v = by_name[name];
        let claim = v["persistentVolumeClaim"]["claimName"]
            .as_str()
            .map(str::to_string);
        if let Some(c) = &claim {
            let pv = (cx.volume_of_claim)(c);
            if pv
                .as_ref()
                .is_some_and(|pv| pv.get(&["spec", "hostPath"]).is_some())
            {
                out.skipped.push((name.to_string(), format!("volume {name} of pod {ns}/{pod_name} is claim {c}, whose volume is a hostPath volume, which is not backed up file by file")));
                continue;
            }
        }
        if used_as("volumeDevices", name) {
            out.skipped.push((name.to_string(), format!("volume {name} of pod {ns}/{pod_name} is a block volume; block volumes are not backed up file by file")));
            continue;
        }
        if !used_as("volumeMounts", name) {
            out.skipped.push((
                name.to_string(),
                format!("volume {name} of pod {ns}/{pod_name} is not mounted by any container"),
            ));
            continue;
        }
        out.volumes.push(PodVolume {
            name: name.to_string(),
            claim,
        });
    }
    out
}

/// The claims of one backup and the pod that has each: a claim mounted by several pods is
/// backed up once, through the first pod whose volume is taken (Velero's tracker). A claim
/// opted out in one pod is not backed up through another.
#[derive(Debug, Default)]
pub struct Claims {
    /// `(namespace, claim)` → (opted out, the pod that took it).
    seen: BTreeMap<(String, String), Claim>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Claim {
    OptedOut(String),
    Taken(String),
}

impl Claims {
    /// Applies the claims seen so far to `chosen` (volumes of `pod`): drops claims already
    /// taken or opted out, records the rest as taken by `pod` and the opted-out ones.
    pub fn apply(&mut self, pod: &Object, chosen: &mut Chosen) {
        let ns = pod.namespace().unwrap_or_default().to_string();
        let volumes_of = |name: &str| -> Option<String> {
            pod.get(&["spec", "volumes"])?
                .as_array()?
                .iter()
                .find(|v| v["name"] == name)?["persistentVolumeClaim"]["claimName"]
                .as_str()
                .map(str::to_string)
        };
        for name in &chosen.opted_out {
            if let Some(c) = volumes_of(name) {
                self.seen
                    .entry((ns.clone(), c))
                    .or_insert(Claim::OptedOut(pod.name().to_string()));
            }
        }
        let mut kept = Vec::new();
        for v in std::mem::take(&mut chosen.volumes) {
            let Some(c) = &v.claim else {
                kept.push(v);
                continue;
            };
            match self.seen.get(&(ns.clone(), c.clone())) {
                Some(Claim::Taken(other)) => chosen.skipped.push((
                    v.name.clone(),
                    format!("claim {ns}/{c} is backed up through pod {ns}/{other}"),
                )),
                Some(Claim::OptedOut(other)) => chosen.skipped.push((
                    v.name.clone(),
                    format!(
                        "claim {ns}/{c} is opted out by pod {ns}/{other} ({})",
                        super::BACKUP_VOLUMES_EXCLUDES
                    ),
                )),
                None => {
                    self.seen.insert(
                        (ns.clone(), c.clone()),
                        Claim::Taken(pod.name().to_string()),
                    );
                    kept.push(v);
                }
            }
        }
        chosen.volumes = kept;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn pod(annotations: Value, volumes: Value, mounts: &[&str]) -> Object {
        let mounts: Vec<Value> = mounts
            .iter()
            .map(|m| json!({"name": m, "mountPath": format!("/{m}")}))
            .collect();
        Object::from_value(
            json!({"apiVersion": "v1", "kind": "Pod",
                "metadata": {"name": "web-0", "namespace": "shop", "uid": "u1", "annotations": annotations},
                "spec": {"nodeName": "node-a", "volumes": volumes,
                    "containers": [{"name": "web", "image": "nginx", "volumeMounts": mounts}]},
                "status": {"phase": "Running"}}),
            "test",
        )
        .unwrap()
    }

    fn names(c: &Chosen) -> Vec<&str> {
        c.volumes.iter().map(|v| v.name.as_str()).collect()
    }

    const NO_PV: &dyn Fn(&str) -> Option<Object> = &|_| None;

    fn cx(default: bool) -> Context<'static> {
        Context {
            default_to_fs_backup: default,
            exclude_claims: false,
            volume_of_claim: NO_PV,
            policy: None,
            snapshot_claims: false,
        }
    }

    fn plain(names: &[&str]) -> Value {
        Value::Array(
            names
                .iter()
                .map(|n| json!({"name": n, "emptyDir": {}}))
                .collect(),
        )
    }

    // Velero TestGetVolumesByPod "should get PVs from VolumesToBackupAnnotation when
    // defaultVolumesToFsBackup is false", with trimming.
    #[test]
    fn opt_in_takes_the_annotated_volumes() {
        let p = pod(
            json!({BACKUP_VOLUMES_KEY: "a, b,c"}),
            plain(&["a", "b", "c", "d"]),
            &["a", "b", "c", "d"],
        );
        assert_eq!(names(&choose(&p, &cx(false))), ["a", "b", "c"]);
        let none = pod(json!({}), plain(&["a"]), &["a"]);
        assert!(choose(&none, &cx(false)).volumes.is_empty());
    }

    const BACKUP_VOLUMES_KEY: &str = super::super::BACKUP_VOLUMES;
    const EXCLUDES_KEY: &str = super::super::BACKUP_VOLUMES_EXCLUDES;

    // "should get all pod volumes except ones excluded when defaultVolumesToFsBackup is true"
    #[test]
    fn opt_out_takes_all_but_the_excluded() {
        let p = pod(
            json!({EXCLUDES_KEY: "b"}),
            plain(&["a", "b", "c"]),
            &["a", "b", "c"],
        );
        let c = choose(&p, &cx(true));
        assert_eq!(names(&c), ["a", "c"]);
        assert_eq!(c.opted_out, ["b"]);
    }

    // "should exclude default service account token / host path / secrets / ConfigMaps /
    // projected / DownwardAPI volumes", and claims when the backup leaves them out.
    #[test]
    fn some_kinds_are_never_backed_up() {
        let volumes = json!([
            {"name": "default-token-5xq45", "emptyDir": {}},
            {"name": "host", "hostPath": {"path": "/var"}},
            {"name": "sec", "secret": {"secretName": "s"}},
            {"name": "cm", "configMap": {"name": "c"}},
            {"name": "proj", "projected": {"sources": []}},
            {"name": "down", "downwardAPI": {"items": []}},
            {"name": "data", "persistentVolumeClaim": {"claimName": "data-0"}},
            {"name": "cache", "emptyDir": {}},
        ]);
        let all = [
            "default-token-5xq45",
            "host",
            "sec",
            "cm",
            "proj",
            "down",
            "data",
            "cache",
        ];
        let p = pod(json!({}), volumes.clone(), &all);
        assert_eq!(names(&choose(&p, &cx(true))), ["data", "cache"]);
        let no_claims = Context {
            exclude_claims: true,
            ..cx(true)
        };
        assert_eq!(names(&choose(&p, &no_claims)), ["cache"]);
        // Named in the opt-in annotation: skipped, with the reason.
        let p = pod(json!({BACKUP_VOLUMES_KEY: "sec,cache,gone"}), volumes, &all);
        let c = choose(&p, &cx(false));
        assert_eq!(names(&c), ["cache"]);
        assert!(c.skipped[0].1.contains("is a secret volume"), "{c:?}");
        assert!(
            c.skipped[1].1.contains("has no volume named \"gone\""),
            "{c:?}"
        );
    }

    // backupper.go: pods not running; hostPath PVs, block volumes, unmounted volumes.
    #[test]
    fn what_cannot_be_read_is_skipped_with_its_reason() {
        let volumes = json!([
            {"name": "data", "persistentVolumeClaim": {"claimName": "data-0"}},
            {"name": "raw", "persistentVolumeClaim": {"claimName": "raw-0"}},
            {"name": "spare", "emptyDir": {}},
        ]);
        let mut v = pod(json!({}), volumes, &["data"]).as_value().clone();
        v["spec"]["containers"][0]["volumeDevices"] =
            json!([{"name": "raw", "devicePath": "/dev/raw"}]);
        let p = Object::from_value(Value::Object(v), "test").unwrap();
        let host_pv = |c: &str| {
            (c == "data-0").then(|| {
                Object::from_value(
                    json!({"apiVersion": "v1", "kind": "PersistentVolume", "metadata": {"name": "pv-1"},
                        "spec": {"hostPath": {"path": "/mnt"}}}),
                    "test",
                )
                .unwrap()
            })
        };
        let cx = Context {
            volume_of_claim: &host_pv,
            ..cx(true)
        };
        let c = choose(&p, &cx);
        assert!(c.volumes.is_empty(), "{c:?}");
        let reasons: Vec<&str> = c.skipped.iter().map(|(_, r)| r.as_str()).collect();
        assert!(
            reasons[0].contains("whose volume is a hostPath volume"),
            "{reasons:?}"
        );
        assert!(reasons[1].contains("is a block volume"), "{reasons:?}");
        assert!(
            reasons[2].contains("not mounted by any container"),
            "{reasons:?}"
        );
    }

    #[test]
    fn pods_not_running_have_nothing_read() {
        let mut v = pod(json!({}), plain(&["a"]), &["a"]).as_value().clone();
        v["status"]["phase"] = json!("Pending");
        let p = Object::from_value(Value::Object(v.clone()), "test").unwrap();
        let c = choose(&p, &cx(true));
        assert!(c.volumes.is_empty());
        assert!(
            c.skipped[0]
                .1
                .contains("is not running (phase \"Pending\")"),
            "{c:?}"
        );
        v["status"]["phase"] = json!("Running");
        v["spec"]["nodeName"] = json!("");
        let p = Object::from_value(Value::Object(v.clone()), "test").unwrap();
        assert!(choose(&p, &cx(true)).skipped[0]
            .1
            .contains("is not scheduled"));
        v["spec"]["nodeName"] = json!("node-a");
        v["metadata"]["deletionTimestamp"] = json!("2026-12-01T00:00:00Z");
        let p = Object::from_value(Value::Object(v), "test").unwrap();
        assert!(choose(&p, &cx(true)).skipped[0]
            .1
            .contains("is being deleted"));
    }

    // Velero TestOptoutVolume, and the first pod taking a shared claim.
    #[test]
    fn a_claim_is_backed_up_once_and_an_opt_out_holds_for_other_pods() {
        let volumes = json!([
            {"name": "pod-vol-1", "persistentVolumeClaim": {"claimName": "pvc-1"}},
            {"name": "pod-vol-2", "persistentVolumeClaim": {"claimName": "pvc-2"}},
        ]);
        let mounts = ["pod-vol-1", "pod-vol-2"];
        let first = pod(json!({EXCLUDES_KEY: "pod-vol-1"}), volumes.clone(), &mounts);
        let mut v = pod(json!({}), volumes, &mounts).as_value().clone();
        v["metadata"]["name"] = json!("web-1");
        let second = Object::from_value(Value::Object(v), "test").unwrap();
        let mut claims = Claims::default();
        let mut c1 = choose(&first, &cx(true));
        claims.apply(&first, &mut c1);
        assert_eq!(names(&c1), ["pod-vol-2"]);
        let mut c2 = choose(&second, &cx(true));
        claims.apply(&second, &mut c2);
        assert!(c2.volumes.is_empty(), "{c2:?}");
        assert!(
            c2.skipped[0].1.contains("opted out by pod shop/web-0"),
            "{c2:?}"
        );
        assert!(
            c2.skipped[1].1.contains("backed up through pod shop/web-0"),
            "{c2:?}"
        );
    }

    // Velero's volume helper: a matching policy decides before the annotations (skip,
    // fs-backup without any annotation, snapshot); the never-list still holds.
    #[test]
    fn volume_policies_decide_before_the_annotations() {
        use crate::volume_policy::Action;
        let p = pod(
            json!({"backup.velero.io/backup-volumes": "skipped"}),
            json!([
                {"name": "skipped", "emptyDir": {}},
                {"name": "data", "persistentVolumeClaim": {"claimName": "data-0"}},
                {"name": "logs", "hostPath": {"path": "/var/log"}},
                {"name": "cache", "emptyDir": {}},
                {"name": "other", "emptyDir": {}}
            ]),
            &["skipped", "data", "logs", "cache", "other"],
        );
        let policy = |v: &Value| match v["name"].as_str() {
            Some("skipped") => Some(Action::Skip),
            Some("data") => Some(Action::Snapshot),
            Some("logs") | Some("cache") => Some(Action::FsBackup),
            _ => None,
        };
        let cx = Context {
            policy: Some(&policy),
            ..cx(false)
        };
        let c = choose(&p, &cx);
        assert_eq!(names(&c), ["cache"], "{c:?}");
        assert_eq!(
            c.snapshot,
            [PodVolume {
                name: "data".into(),
                claim: Some("data-0".into())
            }]
        );
        let reasons: Vec<&str> = c.skipped.iter().map(|(_, r)| r.as_str()).collect();
        assert!(
            reasons[0].contains("a volume policy skips it"),
            "{reasons:?}"
        );
        assert!(
            reasons[1].contains("hostPath") && reasons[1].contains("a volume policy asked for it"),
            "{reasons:?}"
        );
    }

    // With snapshot data movement on, a claim that is neither backed up file by file nor
    // skipped is snapshotted (an opted-out one too: opting out of the file-by-file backup
    // is how Velero's users ask for a snapshot); other volumes never are.
    #[test]
    fn claims_left_over_go_to_snapshots_when_data_is_moved() {
        let p = pod(
            json!({"backup.velero.io/backup-volumes-excludes": "db"}),
            json!([
                {"name": "www", "persistentVolumeClaim": {"claimName": "www-0"}},
                {"name": "db", "persistentVolumeClaim": {"claimName": "db-0"}},
                {"name": "old", "persistentVolumeClaim": {"claimName": "old-0"}},
                {"name": "cache", "emptyDir": {}}
            ]),
            &["www", "db", "old", "cache"],
        );
        use crate::volume_policy::Action;
        let policy = |v: &Value| (v["name"] == "old").then_some(Action::Skip);
        let moving = Context {
            policy: Some(&policy),
            snapshot_claims: true,
            ..cx(true)
        };
        let c = choose(&p, &moving);
        assert_eq!(names(&c), ["www", "cache"], "{c:?}");
        let snapshots: Vec<&str> = c.snapshot.iter().map(|v| v.name.as_str()).collect();
        assert_eq!(snapshots, ["db"]);
        let excluded = Context {
            exclude_claims: true,
            snapshot_claims: true,
            ..cx(false)
        };
        assert!(choose(&p, &excluded).snapshot.is_empty());
    }
}
