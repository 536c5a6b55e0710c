//! Generates a directory of Kubernetes manifests for the repo-k8s benchmark
//! (`benches/k8s.sh`): N objects of about 2 KB, spread over namespaces and mixed kinds, one
//! `kind: List` JSON file per namespace and kind (what `kubectl get -o json` writes).
//!
//! `gen-k8s OUT [--objects N] [--namespaces M] [--changed PERCENT] [--seed S]`
//!
//! The same seed gives the same objects; `--changed 1` then alters 1% of them (a new image
//! tag or data value), as a day in a cluster would.

use serde_json::{json, Value};

const KINDS: &[&str] = &[
    "Deployment",
    "Service",
    "ConfigMap",
    "Secret",
    "ServiceAccount",
    "PersistentVolumeClaim",
    "Pod",
    "Role",
    "RoleBinding",
    "Widget",
];

fn arg<T: std::str::FromStr>(args: &[String], name: &str, default: T) -> T {
    args.iter()
        .position(|a| a == name)
        .and_then(|i| args.get(i + 1))
        .map(|v| {
            v.parse()
                .unwrap_or_else(|_| panic!("{name}: cannot parse {v:?}"))
        })
        .unwrap_or(default)
}

/// A deterministic pseudo-random stream (splitmix64): no dependency, same output everywhere.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    fn hex(&mut self, n: usize) -> String {
        let mut s = String::with_capacity(n);
        while s.len() < n {
            s.push_str(&format!("{:016x}", self.next()));
        }
        s.truncate(n);
        s
    }
}

fn object(kind: &str, ns: &str, name: &str, version: u64, rng: &mut Rng) -> Value {
    let app = format!("app-{}", rng.next() % 50);
    let tier = ["web", "api", "db", "cache"][(rng.next() % 4) as usize];
    let mut meta = json!({
        "name": name,
        "namespace": ns,
        "uid": format!("{}-{}-{}-{}-{}", rng.hex(8), rng.hex(4), rng.hex(4), rng.hex(4), rng.hex(12)),
        "resourceVersion": (rng.next() % 10_000_000).to_string(),
        "creationTimestamp": "2026-10-01T12:00:00Z",
        "labels": {
            "app.kubernetes.io/name": app,
            "app.kubernetes.io/part-of": "shop",
            "app.kubernetes.io/managed-by": "helm",
            "tier": tier,
            "release": format!("r{}", rng.next() % 7),
        },
        "annotations": {
            "meta.helm.sh/release-name": "shop",
            "meta.helm.sh/release-namespace": ns,
            "note": format!("generated object {name}, revision {version}"),
            "checksum/config": rng.hex(64),
        },
    });
    // Bulk that real objects carry: kubectl's last-applied-configuration.
    meta["annotations"]["kubectl.kubernetes.io/last-applied-configuration"] =
        Value::String(format!("{{\"spec\":{{\"hash\":\"{}\"}}}}", rng.hex(1150)));
    let (api_version, body) = match kind {
        "Deployment" => (
            "apps/v1",
            json!({"spec": {"replicas": 3, "selector": {"matchLabels": {"app": name}},
                "template": {"metadata": {"labels": {"app": name}}, "spec": {"containers": [
                    {"name": "main", "image": format!("registry.example.com/shop/{name}:v{version}"),
                     "ports": [{"containerPort": 8080}], "env": [{"name": "MODE", "value": "prod"}],
                     "resources": {"requests": {"cpu": "100m", "memory": "128Mi"}}}]}}},
                "status": {"replicas": 3, "readyReplicas": 3, "availableReplicas": 3}}),
        ),
        "Service" => (
            "v1",
            json!({"spec": {"type": "ClusterIP", "clusterIP": format!("10.96.{}.{}", rng.next() % 256, rng.next() % 256),
                "selector": {"app": name}, "ports": [{"port": 80, "targetPort": 8080, "protocol": "TCP"}]}}),
        ),
        "ConfigMap" => (
            "v1",
            json!({"data": {"config.yaml": format!("version: {version}\nkey: {}\n", rng.hex(200))}}),
        ),
        "Secret" => (
            "v1",
            json!({"type": "Opaque", "data": {"password": rng.hex(44), "token": rng.hex(120)}}),
        ),
        "ServiceAccount" => ("v1", json!({"automountServiceAccountToken": false})),
        "PersistentVolumeClaim" => (
            "v1",
            json!({"spec": {"accessModes": ["ReadWriteOnce"], "resources": {"requests": {"storage": "1Gi"}},
                "storageClassName": "standard"}, "status": {"phase": "Bound"}}),
        ),
        "Pod" => (
            "v1",
            json!({"spec": {"nodeName": format!("node-{}", rng.next() % 20), "containers": [
                {"name": "main", "image": format!("registry.example.com/shop/{name}:v{version}")}]},
                "status": {"phase": "Running"}}),
        ),
        "Role" => (
            "rbac.authorization.k8s.io/v1",
            json!({"rules": [{"apiGroups": [""], "resources": ["configmaps", "secrets"], "verbs": ["get", "list", "watch"]}]}),
        ),
        "RoleBinding" => (
            "rbac.authorization.k8s.io/v1",
            json!({"roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": name},
                "subjects": [{"kind": "ServiceAccount", "name": name, "namespace": ns}]}),
        ),
        _ => (
            "example.com/v1",
            json!({"spec": {"size": rng.next() % 10, "revision": version}}),
        ),
    };
    let mut o = body;
    o["apiVersion"] = Value::String(api_version.into());
    o["kind"] = Value::String(kind.into());
    o["metadata"] = meta;
    o
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let out = std::path::PathBuf::from(args.first().expect("usage: gen-k8s OUT [options]"));
    let objects: u64 = arg(&args, "--objects", 100_000);
    let namespaces: u64 = arg(&args, "--namespaces", 100);
    let changed: f64 = arg(&args, "--changed", 0.0);
    let seed: u64 = arg(&args, "--seed", 1);
    std::fs::create_dir_all(&out).expect("create OUT");
    let per_ns = objects / namespaces;
    let per_kind = per_ns.div_ceil(KINDS.len() as u64);
    let mut written = 0u64;
    let mut bytes = 0u64;
    let mut altered = 0u64;
    let crd = json!({"apiVersion": "apiextensions.k8s.io/v1", "kind": "CustomResourceDefinition",
        "metadata": {"name": "widgets.example.com"},
        "spec": {"group": "example.com", "scope": "Namespaced",
            "names": {"plural": "widgets", "singular": "widget", "kind": "Widget"},
            "versions": [{"name": "v1", "served": true, "storage": true}]}});
    std::fs::write(out.join("crd.json"), serde_json::to_vec(&crd).unwrap()).unwrap();
    for n in 0..namespaces {
        let ns = format!("team-{n:03}");
        let dir = out.join(&ns);
        std::fs::create_dir_all(&dir).unwrap();
        let nso = json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": ns}});
        std::fs::write(
            dir.join("namespace.json"),
            serde_json::to_vec(&nso).unwrap(),
        )
        .unwrap();
        for (k, kind) in KINDS.iter().enumerate() {
            let mut items = Vec::new();
            for i in 0..per_kind {
                if written >= objects || items.len() as u64 + (k as u64) * per_kind >= per_ns {
                    break;
                }
                let name = format!("{}-{i:04}", kind.to_ascii_lowercase());
                // The object's randomness depends only on its identity, so a second run
                // with --changed alters exactly the chosen objects.
                let id = blake3::hash(format!("{seed}/{ns}/{kind}/{name}").as_bytes());
                let mut rng = Rng(u64::from_le_bytes(id.as_bytes()[..8].try_into().unwrap()));
                let pick = u64::from_le_bytes(id.as_bytes()[8..16].try_into().unwrap());
                let version = if (pick % 10_000) as f64 / 100.0 < changed {
                    altered += 1;
                    2
                } else {
                    1
                };
                items.push(object(kind, &ns, &name, version, &mut rng));
                written += 1;
            }
            let list = json!({"apiVersion": "v1", "kind": "List", "items": items});
            let body = serde_json::to_vec(&list).unwrap();
            bytes += body.len() as u64;
            std::fs::write(
                dir.join(format!("{}.json", kind.to_ascii_lowercase())),
                body,
            )
            .unwrap();
        }
    }
    eprintln!(
        "gen-k8s: {written} objects ({} bytes each on average), {altered} changed, in {}",
        bytes / written.max(1),
        out.display()
    );
}
