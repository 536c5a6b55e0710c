//! Where a pod volume's files are on its node. The kubelet keeps them at
//! `<pods dir>/<pod-uid>/volumes/<plugin>/<dir>` (the node-agent mounts the pods directory
//! at `/host_pods`): `<dir>` is the volume's name, or for a claim the name of its
//! PersistentVolume, with `/mount` below it for CSI volumes; `<plugin>` is the volume
//! plugin (`kubernetes.io~empty-dir`, `kubernetes.io~csi`, …). Exactly one match is
//! accepted (Velero's `SinglePathMatch`): none or several is an error naming the pattern.
//! A volume directory that is a symbolic link is refused: following it could read or
//! write anywhere on the node.

use std::path::{Path, PathBuf};

use serde_json::Value;

use crate::object::Object;

/// The directory name of `volume` of `pod` below its plugin directory: the volume's name,
/// or its PersistentVolume's (`pv`, for a claim), plus `/mount` for CSI volumes.
pub fn dir_name(pod: &Object, volume: &str, pv: Option<&Object>) -> Result<String, String> {
    let v = pod
        .get(&["spec", "volumes"])
        .and_then(Value::as_array)
        .and_then(|vs| vs.iter().find(|v| v["name"] == volume))
        .ok_or_else(|| {
            format!(
                "pod {}/{} has no volume named {volume:?}",
                pod.namespace().unwrap_or_default(),
                pod.name()
            )
        })?;
    if let Some(claim) = v["persistentVolumeClaim"]["claimName"].as_str() {
        let pv = pv.ok_or_else(|| {
            format!("claim {claim} of volume {volume} is not bound to a PersistentVolume")
        })?;
        let csi = pv.get(&["spec", "csi"]).is_some_and(|c| !c.is_null());
        return Ok(if csi {
            format!("{}/mount", pv.name())
        } else {
            pv.name().to_string()
        });
    }
    Ok(if v.get("csi").is_some_and(|c| !c.is_null()) {
        format!("{volume}/mount")
    } else {
        volume.to_string()
    })
}

/// The one directory of a pod volume below `pods_dir`: `<pods_dir>/<pod_uid>/volumes/*/<dir>`.
pub fn find(pods_dir: &Path, pod_uid: &str, dir: &str) -> Result<PathBuf, String> {
    let pattern = format!("{}/{pod_uid}/volumes/*/{dir}", pods_dir.display());
    let plain = |s: &str| !s.is_empty() && s != "." && s != ".." && !s.contains('\0');
    if !plain(pod_uid) || pod_uid.contains('/') || !dir.split('/').all(plain) {
        return Err(format!(
            "refusing the volume path {pattern}: the pod UID and volume directory must be plain names"
        ));
    }
    let plugins = pods_dir.join(pod_uid).join("volumes");
    let entries = std::fs::read_dir(&plugins).map_err(|e| {
        format!(
            "expected one directory matching {pattern}, found none: {}: {e}",
            plugins.display()
        )
    })?;
    let mut found = Vec::new();
    for e in entries.flatten() {
        let candidate = e.path().join(dir);
        if std::fs::symlink_metadata(&candidate).is_ok() {
            found.push(candidate);
        }
    }
    found.sort();
    let [one] = &found[..] else {
        let list: Vec<String> = found.iter().map(|p| p.display().to_string()).collect();
        return Err(format!(
            "expected one directory matching {pattern}, found {}{}",
            found.len(),
            if list.is_empty() {
                String::new()
            } else {
                format!(": {}", list.join(", "))
            }
        ));
    };
    // Every component from the pod's directory down must be a real directory.
    let mut at = pods_dir.join(pod_uid);
    let below = one.strip_prefix(&at).expect("built below it").to_path_buf();
    for part in below.components() {
        at.push(part);
        let meta = std::fs::symlink_metadata(&at).map_err(|e| format!("{}: {e}", at.display()))?;
        if meta.file_type().is_symlink() {
            return Err(format!(
                "{} is a symbolic link; refusing to follow it out of the pod's volume (replace it with the volume's directory)",
                at.display()
            ));
        }
        if !meta.is_dir() {
            return Err(format!("{} is not a directory", at.display()));
        }
    }
    Ok(one.clone())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn pod() -> Object {
        Object::from_value(
            json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "db-0", "namespace": "shop", "uid": "u1"},
                "spec": {"volumes": [
                    {"name": "data", "persistentVolumeClaim": {"claimName": "data-db-0"}},
                    {"name": "cache", "emptyDir": {}},
                    {"name": "inline", "csi": {"driver": "x"}}]}}),
            "test",
        )
        .unwrap()
    }

    fn pv(csi: bool) -> Object {
        let mut v = json!({"apiVersion": "v1", "kind": "PersistentVolume", "metadata": {"name": "pvc-123"}, "spec": {}});
        if csi {
            v["spec"]["csi"] = json!({"driver": "hostpath.csi.k8s.io", "volumeHandle": "h"});
        }
        Object::from_value(v, "test").unwrap()
    }

    // Velero GetVolumeDirectory: the volume's name, the PV's for a claim, /mount for CSI.
    #[test]
    fn directory_names() {
        let p = pod();
        assert_eq!(dir_name(&p, "cache", None).unwrap(), "cache");
        assert_eq!(dir_name(&p, "inline", None).unwrap(), "inline/mount");
        assert_eq!(dir_name(&p, "data", Some(&pv(false))).unwrap(), "pvc-123");
        assert_eq!(
            dir_name(&p, "data", Some(&pv(true))).unwrap(),
            "pvc-123/mount"
        );
        assert!(dir_name(&p, "data", None)
            .unwrap_err()
            .contains("not bound"));
        assert!(dir_name(&p, "nope", None)
            .unwrap_err()
            .contains("no volume named \"nope\""));
    }

    #[test]
    fn exactly_one_real_directory() {
        let root = tempfile::tempdir().unwrap();
        let vols = root.path().join("u1/volumes");
        std::fs::create_dir_all(vols.join("kubernetes.io~empty-dir/cache")).unwrap();
        std::fs::create_dir_all(vols.join("kubernetes.io~csi/pvc-123/mount")).unwrap();
        assert_eq!(
            find(root.path(), "u1", "cache").unwrap(),
            vols.join("kubernetes.io~empty-dir/cache")
        );
        assert_eq!(
            find(root.path(), "u1", "pvc-123/mount").unwrap(),
            vols.join("kubernetes.io~csi/pvc-123/mount")
        );
        let none = find(root.path(), "u1", "gone").unwrap_err();
        assert!(
            none.contains("expected one directory matching") && none.contains("found 0"),
            "{none}"
        );
        std::fs::create_dir_all(vols.join("kubernetes.io~nfs/cache")).unwrap();
        let two = find(root.path(), "u1", "cache").unwrap_err();
        assert!(two.contains("found 2"), "{two}");
        assert!(find(root.path(), "nobody", "cache")
            .unwrap_err()
            .contains("found none"));
        assert!(find(root.path(), "..", "cache")
            .unwrap_err()
            .contains("plain names"));
        assert!(find(root.path(), "u1", "../../etc")
            .unwrap_err()
            .contains("plain names"));
    }

    #[test]
    fn a_symlinked_volume_directory_is_refused() {
        let root = tempfile::tempdir().unwrap();
        let outside = tempfile::tempdir().unwrap();
        let plugin = root.path().join("u1/volumes/kubernetes.io~empty-dir");
        std::fs::create_dir_all(&plugin).unwrap();
        std::os::unix::fs::symlink(outside.path(), plugin.join("cache")).unwrap();
        let e = find(root.path(), "u1", "cache").unwrap_err();
        assert!(e.contains("is a symbolic link"), "{e}");
    }
}
