//! repo-k8s against the real-world manifests in `../shared/k8s-corpus` (see its SOURCES.md):
//! every document is read, every object resolves or is kept with a warning, and a backup
//! filter with no options takes every object.

use std::path::{Path, PathBuf};

use repo_k8s::filter::{BackupFilter, Filter};
use repo_k8s::{manifest, Discovery, Object};

fn corpus() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../shared/k8s-corpus")
}

fn files(dir: &Path, out: &mut Vec<PathBuf>) {
    for e in std::fs::read_dir(dir).unwrap_or_else(|e| panic!("{}: {e}", dir.display())) {
        let p = e.unwrap().path();
        if p.is_dir() {
            files(&p, out);
        } else if matches!(
            p.extension().and_then(|x| x.to_str()),
            Some("yaml" | "yml" | "json")
        ) {
            out.push(p);
        }
    }
}

#[test]
fn the_corpus_reads_completely_and_a_default_backup_takes_every_object() {
    let mut paths = Vec::new();
    files(&corpus(), &mut paths);
    assert!(paths.len() >= 380, "corpus has {} files", paths.len());
    let mut objects: Vec<Object> = Vec::new();
    for p in &paths {
        let m = manifest::read(&std::fs::read(p).unwrap(), &p.display().to_string());
        assert!(m.problems.is_empty(), "{:?}", m.problems);
        objects.extend(m.objects.into_iter().map(|(o, _)| o));
    }
    // SOURCES.md: "objects after expanding lists: 840".
    assert_eq!(objects.len(), 840);
    let mut d = Discovery::built_in();
    let mut bad_crds = 0;
    for o in objects
        .iter()
        .filter(|o| o.kind() == "CustomResourceDefinition")
    {
        if d.add_crd(o).is_err() {
            bad_crds += 1;
        }
    }
    let unknown = objects.iter().filter(|o| d.for_object(o).is_none()).count();
    eprintln!(
        "{} resources known, {unknown} objects of unknown resources, {bad_crds} unusable CRDs",
        d.resources().len()
    );
    let filter = Filter::new(&BackupFilter::default(), &d).unwrap();
    let sel = filter.select(&objects, &d);
    let skipped: Vec<_> = sel
        .skipped
        .iter()
        .map(|(i, why)| {
            format!(
                "{} {}/{}: {why}",
                objects[*i].kind(),
                objects[*i].namespace().unwrap_or("-"),
                objects[*i].name()
            )
        })
        .collect();
    // Only objects marked for deletion (live dumps) may be left out, and each is named.
    assert!(
        skipped.iter().all(|s| s.contains("being deleted")),
        "{skipped:?}"
    );
    assert_eq!(sel.items.len() + skipped.len(), objects.len());
}

#[test]
fn a_backup_of_the_corpus_lays_objects_out_like_velero_and_dedups_unchanged_ones() {
    use cairn_tests::*;
    use repo_k8s::backup::{self, BackupOptions};
    let s =
        repo_core::storage::open_url("memory://k8s-corpus-backup", &Default::default()).unwrap();
    let repo = init(s);
    let (objects, problems) = backup::read_dir(&corpus());
    assert!(problems.is_empty(), "{problems:?}");
    let out = backup::backup(&repo, "nightly", &objects, &[], &BackupOptions::default()).unwrap();
    // Duplicates in the corpus (the same object in two files) are kept once, with a warning
    // naming both files.
    let dup_warnings = out.results.warnings.len();
    eprintln!("{} items, {dup_warnings} warnings", out.items);
    // Every object is taken: identical duplicates once, differing ones both (the later under
    // duplicates/), each with a warning naming the files.
    let identical = out
        .results
        .warnings
        .messages()
        .filter(|(_, w)| w.contains("stored once"))
        .count();
    assert_eq!(out.items + identical, 840, "{:?}", out.results.warnings);
    let snap = repo.get_snapshot(&out.snapshot).unwrap();
    assert!(snap.tags.contains(&"backup-name=nightly".to_string()));
    let read = |path: &str| {
        let mut v = Vec::new();
        repo.dump_file(&out.snapshot, path, &mut v).unwrap();
        v
    };
    assert_eq!(read("metadata/version"), b"1.1.0");
    let list: std::collections::BTreeMap<String, Vec<String>> =
        serde_json::from_slice(&read("resource-list.json")).unwrap();
    let differing = out
        .results
        .warnings
        .messages()
        .filter(|(_, w)| w.contains("both kept"))
        .count();
    assert_eq!(
        list.values().map(Vec::len).sum::<usize>() + differing,
        out.items
    );
    let deploys = &list["apps/v1/Deployment"];
    let first = &deploys[0];
    let (ns, name) = first
        .split_once('/')
        .expect("namespaced entries are ns/name");
    let obj: serde_json::Value = serde_json::from_slice(&read(&format!(
        "resources/deployments.apps/namespaces/{ns}/{name}.json"
    )))
    .unwrap();
    assert_eq!(obj["kind"], "Deployment");
    assert_eq!(obj["metadata"]["name"], name);
    let crds = &list["apiextensions.k8s.io/v1/CustomResourceDefinition"];
    read(&format!(
        "resources/customresourcedefinitions.apiextensions.k8s.io/cluster/{}.json",
        crds[0]
    ));
    let results: backup::Results = serde_json::from_slice(&read("results.json")).unwrap();
    assert_eq!(results, out.results);

    // A second backup with one object changed stores little.
    let mut changed = objects.clone();
    let (o, _) = changed
        .iter_mut()
        .find(|(o, _)| o.kind() == "ConfigMap" && o.to_json().len() < 2000)
        .unwrap();
    o.map_at_mut(&["data"]).insert("added".into(), "1".into());
    let again =
        backup::backup(&repo, "nightly-2", &changed, &[], &BackupOptions::default()).unwrap();
    eprintln!(
        "first backup {} new bytes, second {}",
        out.new_bytes, again.new_bytes
    );
    // The object, the directory listings on its path, and results.json (its warnings
    // changed: the object was an identical duplicate and now differs).
    assert!(
        again.new_bytes * 33 < out.new_bytes,
        "{} vs {}",
        again.new_bytes,
        out.new_bytes
    );
}

#[test]
fn cairn_server_backup_from_dir_with_velero_flags() {
    use cairn_tests::*;
    let dir = tempfile::tempdir().unwrap();
    let repo = dir.path().join("repo");
    let repo = repo.to_str().unwrap();
    let cache = dir.path().join("cache");
    let out = agent(repo, &cache).args(FAST_INIT).output().unwrap();
    assert!(out.status.success());
    let server = node_agent().with_file_name("cairn-server");
    let run = |args: &[&str]| {
        std::process::Command::new(&server)
            .env("CAIRN_REPO", repo)
            .env("CAIRN_PASSWORD", std::str::from_utf8(PASSWORD).unwrap())
            .args(args)
            .output()
            .unwrap()
    };
    let corpus = corpus();
    let c = corpus.to_str().unwrap();
    let out = run(&["backup", "all", "--from-dir", c, "--json"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["phase"], "Completed");
    assert_eq!(v["items"], 703);
    let out = run(&[
        "backup",
        "some",
        "--from-dir",
        c,
        "--include-namespaces",
        "argo*",
        "--include-resources",
        "deploy,svc",
        "--ttl",
        "24h",
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let out = run(&["backups", "--json"]);
    let list: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let names: Vec<&str> = list
        .as_array()
        .unwrap()
        .iter()
        .map(|b| b["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, vec!["all", "some"]);
    assert!(list[1]["expires"].is_string());
    // Velero's validation errors, as errors naming the problem.
    for (args, msg) in [
        (
            vec!["--exclude-namespaces", "*"],
            "excludes list cannot contain '*'",
        ),
        (
            vec!["--include-resources", "widgets"],
            "unknown resource \"widgets\"",
        ),
        (
            vec!["--selector", "a=b", "--or-selector", "c=d"],
            "only one can be specified",
        ),
        (
            vec!["--include-namespaces", "a{b,c}"],
            "invalid namespace pattern",
        ),
        (
            vec![
                "--include-resources",
                "pods",
                "--include-cluster-scoped-resources",
                "sc",
            ],
            "cannot be used together",
        ),
    ] {
        let mut full = vec!["backup", "x", "--from-dir", c];
        full.extend(args);
        let out = run(&full);
        assert!(!out.status.success());
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains(msg), "{err}");
    }
    // Restore to a directory: numbered files in Velero's order, namespaces mapped, and every
    // object of the backup either planned, skipped by a named rule, or named as a duplicate.
    let out_dir = dir.path().join("restored");
    let out = run(&[
        "restore",
        "all",
        "--to-dir",
        out_dir.to_str().unwrap(),
        "--namespace-mappings",
        "argocd:argocd-copy",
        "--json",
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let planned = v["items"].as_array().unwrap().len();
    let skipped = v["skipped"].as_array().unwrap().len();
    let dups = v["notes"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|n| n.as_str().unwrap().contains("second, different object"))
        .count();
    assert_eq!(planned + skipped, 703 - dups, "{v}");
    let mut files: Vec<String> = std::fs::read_dir(&out_dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    files.sort();
    assert_eq!(files.len(), planned);
    assert!(
        files[0].starts_with("0001-customresourcedefinitions.apiextensions.k8s.io-"),
        "{}",
        files[0]
    );
    let first_ns = files
        .iter()
        .position(|f| f.contains("-namespaces-"))
        .unwrap();
    let first_pod = files.iter().position(|f| f.contains("-pods-")).unwrap();
    let first_deploy = files
        .iter()
        .position(|f| f.contains("-deployments.apps-"))
        .unwrap();
    assert!(first_ns < first_pod && first_pod < first_deploy);
    let namespaces: Vec<&str> = v["items"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|i| i["namespace"].as_str())
        .collect();
    assert!(
        namespaces.contains(&"argocd-copy") && !namespaces.contains(&"argocd"),
        "argocd is mapped"
    );
    let any: serde_json::Value =
        serde_json::from_slice(&std::fs::read(out_dir.join(&files[first_deploy])).unwrap())
            .unwrap();
    assert_eq!(any["metadata"]["labels"]["velero.io/backup-name"], "all");
    assert!(any["metadata"].get("uid").is_none() && any.get("status").is_none());
    // The same backup restores in the same order every time.
    let again = dir.path().join("again");
    let out = run(&[
        "restore",
        "all",
        "--to-dir",
        again.to_str().unwrap(),
        "--namespace-mappings",
        "argocd:argocd-copy",
    ]);
    assert!(out.status.success());
    let mut files2: Vec<String> = std::fs::read_dir(&again)
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    files2.sort();
    assert_eq!(files, files2);
    let out = run(&["restore", "all", "--to-dir", again.to_str().unwrap()]);
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("not empty"),
        "refuses a non-empty target"
    );
    let out = run(&["restore", "nope", "--dry-run"]);
    assert!(String::from_utf8_lossy(&out.stderr).contains("no backup named \"nope\""));

    // A directory with a malformed manifest: the backup is written, PartiallyFailed (exit
    // 8), and the error names the file.
    let bad = dir.path().join("bad");
    std::fs::create_dir(&bad).unwrap();
    std::fs::write(
        bad.join("ok.yaml"),
        "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: a, namespace: b}\n",
    )
    .unwrap();
    std::fs::write(bad.join("broken.yaml"), "apiVersion: v1\nkind: [\n").unwrap();
    std::fs::write(
        bad.join("noname.json"),
        r#"{"apiVersion":"v1","kind":"Secret","metadata":{}}"#,
    )
    .unwrap();
    let out = run(&["backup", "partial", "--from-dir", bad.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(8));
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains("broken.yaml (document 1): invalid YAML"),
        "{text}"
    );
    assert!(
        text.contains("noname.json (document 1): Secret has no `metadata.name`"),
        "{text}"
    );
    assert!(text.contains("PartiallyFailed: 1 item(s)"), "{text}");
}
