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
    plans_from_the_repository_as_in_memory(&repo, &out.snapshot);

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

/// A restore plans a backup one object at a time, its CRDs read first; the plan must be
/// the one made from all of the backup's objects held in memory.
fn plans_from_the_repository_as_in_memory(
    repo: &repo_core::IndexedRepository,
    snapshot: &repo_core::ObjectId,
) {
    use repo_k8s::restore::{self, RestoreOptions};
    let opts = RestoreOptions {
        backup_name: "nightly".into(),
        namespace_mappings: [("default".to_string(), "copy".to_string())].into(),
        ..Default::default()
    };
    let d = restore::backup_discovery(repo, snapshot).unwrap();
    let (streamed, notes) = restore::plan_backup(repo, snapshot, &d, &opts).unwrap();
    // The corpus's differing duplicates are named, not restored.
    assert!(
        notes
            .iter()
            .all(|n| n.contains("only the first is restored")),
        "{notes:?}"
    );

    let snap = repo.get_snapshot(snapshot).unwrap();
    let resources = repo
        .read_dir(&snap.root)
        .unwrap()
        .into_iter()
        .find(|n| n.name.display() == "resources")
        .and_then(|n| n.subtree)
        .unwrap();
    let mut objects = Vec::new();
    let budget = repo_core::walk::WalkBudget::for_snapshot(snapshot, &snap);
    repo_k8s::backup::for_each_file(repo, resources, "resources", &budget, &mut |path, bytes| {
        let value = serde_json::from_slice(&bytes).unwrap();
        objects.push(Object::from_value(value, path).unwrap());
        Ok(())
    })
    .unwrap();
    let crds: Vec<String> = objects
        .iter()
        .filter(|o| o.kind() == "CustomResourceDefinition")
        .map(|o| {
            let plural = o.str_at(&["spec", "names", "plural"]).unwrap();
            format!("{plural}.{}", o.str_at(&["spec", "group"]).unwrap())
        })
        .collect();
    let in_memory = restore::plan(objects, &opts);
    let rows = |p: &restore::Plan| -> Vec<(String, Option<String>, String, String)> {
        p.items
            .iter()
            .map(|i| {
                let object = i.object.get().to_string();
                (
                    i.resource.clone(),
                    i.namespace.clone(),
                    i.name.clone(),
                    object,
                )
            })
            .collect()
    };
    assert_eq!(rows(&streamed), rows(&in_memory));
    assert_eq!(streamed.skipped, in_memory.skipped);
    // The CRD pass named custom resources as their CRDs do.
    let custom = streamed
        .items
        .iter()
        .filter(|i| crds.contains(&i.resource))
        .count();
    assert!(custom > 0, "no custom resources planned; CRDs: {crds:?}");
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
    // A resource name nothing has matches nothing, with a warning (Velero: ignored).
    let out = run(&[
        "backup",
        "unknown",
        "--from-dir",
        c,
        "--include-resources",
        "widgets",
        "--json",
    ]);
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["items"], 0, "{v}");
    let warnings = v["results"]["warnings"]["cluster"].as_array().unwrap();
    assert!(
        warnings
            .iter()
            .any(|w| w.as_str().unwrap().contains("\"widgets\"")),
        "{v}"
    );
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

fn ok_json(out: std::process::Output) -> serde_json::Value {
    assert!(
        out.status.success(),
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap()
}

#[test]
fn a_velero_tarball_round_trips_through_export_and_import() {
    let dir = tempfile::tempdir().unwrap();
    let run = cairn_tests::cairn_server_on(dir.path());
    let c = corpus();
    ok_json(run(&[
        "backup",
        "all",
        "--from-dir",
        c.to_str().unwrap(),
        "--json",
    ]));
    let tgz = dir.path().join("all.tar.gz");
    let v = ok_json(run(&[
        "export-velero",
        "all",
        tgz.to_str().unwrap(),
        "--json",
    ]));
    // 69 objects in the corpus are second, different copies of an identity: the backup keeps
    // them under duplicates/, a tarball holds one object per identity.
    assert_eq!(v["duplicatesLeftOut"], 69);
    assert_eq!(v["items"], 703 - 69);

    // GNU tar reads it, with Velero's layout.
    let list = std::process::Command::new("tar")
        .arg("-tzf")
        .arg(&tgz)
        .output()
        .unwrap();
    assert!(list.status.success());
    let list = String::from_utf8(list.stdout).unwrap();
    let names: Vec<&str> = list.lines().collect();
    assert_eq!(names[0], "metadata/version");
    assert_eq!(names.len(), 1 + 2 * (703 - 69));
    assert!(names.contains(&"resources/namespaces/cluster/velero.json"));
    assert!(names.contains(&"resources/namespaces/v1-preferredversion/cluster/velero.json"));
    assert!(names
        .iter()
        .any(|n| n.starts_with("resources/deployments.apps/v1-preferredversion/namespaces/")));
    let version = std::process::Command::new("tar")
        .args(["-xzOf"])
        .arg(&tgz)
        .arg("metadata/version")
        .output()
        .unwrap();
    assert_eq!(version.stdout, b"1.1.0");

    // Import it under another name: the same objects, in the same restore order.
    let v = ok_json(run(&[
        "import-velero",
        tgz.to_str().unwrap(),
        "copy",
        "--json",
    ]));
    assert_eq!(v["phase"], "Completed", "{v}");
    assert_eq!(v["items"], 703 - 69);
    let plan = |name: &str| {
        let v = ok_json(run(&["restore", name, "--dry-run", "--json"]));
        v["items"].clone()
    };
    assert_eq!(plan("all"), plan("copy"));
    // Exporting the import gives the same entries with the same objects; the only change is
    // that a namespaced object that named no namespace now names the one its path says
    // (Velero's restore takes it from the path too).
    let tgz2 = dir.path().join("copy.tar.gz");
    ok_json(run(&[
        "export-velero",
        "copy",
        tgz2.to_str().unwrap(),
        "--json",
    ]));
    let entries = |p: &Path| {
        let file = std::fs::File::open(p).unwrap();
        let mut a = tar::Archive::new(flate2::read::GzDecoder::new(file));
        let mut out = Vec::new();
        for e in a.entries().unwrap() {
            let mut e = e.unwrap();
            let mut bytes = Vec::new();
            std::io::Read::read_to_end(&mut e, &mut bytes).unwrap();
            out.push((e.path().unwrap().display().to_string(), bytes));
        }
        out
    };
    let (a, b) = (entries(&tgz), entries(&tgz2));
    assert_eq!(a.len(), b.len());
    let mut namespace_filled = 0;
    for ((path, x), (path2, y)) in a.iter().zip(&b).skip(1) {
        assert_eq!(path, path2);
        if x == y {
            continue;
        }
        let x: serde_json::Value = serde_json::from_slice(x).unwrap();
        let mut y: serde_json::Value = serde_json::from_slice(y).unwrap();
        assert!(x["metadata"].get("namespace").is_none(), "{path}");
        let ns = y["metadata"].as_object_mut().unwrap().remove("namespace");
        assert_eq!(
            ns.as_ref().and_then(|n| n.as_str()),
            path.split('/').nth_back(1)
        );
        assert_eq!(x, y, "{path}");
        namespace_filled += 1;
    }
    assert!(namespace_filled > 0);
    // A second round trip changes nothing.
    ok_json(run(&[
        "import-velero",
        tgz2.to_str().unwrap(),
        "copy2",
        "--json",
    ]));
    let tgz3 = dir.path().join("copy2.tar.gz");
    ok_json(run(&[
        "export-velero",
        "copy2",
        tgz3.to_str().unwrap(),
        "--json",
    ]));
    assert!(entries(&tgz2) == entries(&tgz3));
    // The file name names the backup when NAME is not given; a name in use is refused.
    let out = run(&["import-velero", tgz3.to_str().unwrap()]);
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("\"copy2\" already exists"), "{stderr}");
    let tgz4 = dir.path().join("copy3.tar.gz");
    std::fs::copy(&tgz3, &tgz4).unwrap();
    let v = ok_json(run(&["import-velero", tgz4.to_str().unwrap(), "--json"]));
    assert_eq!(v["name"], "copy3");
}

#[test]
fn a_hostile_tarball_is_refused_whole() {
    let dir = tempfile::tempdir().unwrap();
    let run = cairn_tests::cairn_server_on(dir.path());
    let mut b = tar::Builder::new(flate2::write::GzEncoder::new(
        Vec::new(),
        flate2::Compression::fast(),
    ));
    let cm = br#"{"apiVersion":"v1","kind":"ConfigMap","metadata":{"name":"a","namespace":"b"}}"#;
    for path in [
        "metadata/version",
        "resources/configmaps/namespaces/b/a.json",
        "../../evil.json",
    ] {
        let bytes: &[u8] = if path == "metadata/version" {
            b"1.1.0"
        } else {
            cm
        };
        let mut h = tar::Header::new_gnu();
        h.set_size(bytes.len() as u64);
        h.set_mode(0o644);
        h.as_gnu_mut().unwrap().name[..path.len()].copy_from_slice(path.as_bytes());
        h.set_cksum();
        b.append(&h, bytes).unwrap();
    }
    let tgz = dir.path().join("evil.tar.gz");
    std::fs::write(&tgz, b.into_inner().unwrap().finish().unwrap()).unwrap();
    let out = run(&["import-velero", tgz.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("\"../../evil.json\" escapes the archive")
            && err.contains("nothing was imported"),
        "{err}"
    );
    let v = ok_json(run(&["backups", "--json"]));
    assert_eq!(v, serde_json::json!([]), "no backup was written");
    // A truncated tarball says so.
    let bytes = std::fs::read(&tgz).unwrap();
    std::fs::write(&tgz, &bytes[..bytes.len() / 2]).unwrap();
    let out = run(&["import-velero", tgz.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("truncated"));
}

#[test]
fn a_backup_from_a_directory_reads_objects_twice_and_notices_changes_in_between() {
    use cairn_tests::*;
    use repo_k8s::backup::{self, BackupOptions};
    let s = repo_core::storage::open_url("memory://k8s-two-pass", &Default::default()).unwrap();
    let repo = init(s);
    // The two-pass backup of the corpus stores exactly what the in-memory one does.
    let opts = BackupOptions::default();
    let (objects, problems) = backup::read_dir(&corpus());
    let in_memory = backup::backup(&repo, "a", &objects, &problems, &opts).unwrap();
    let two_pass = backup::backup_dir(&repo, "b", &corpus(), &opts).unwrap();
    let root = |id| repo.get_snapshot(id).unwrap().root;
    assert_eq!(root(&in_memory.snapshot), root(&two_pass.snapshot));
    assert_eq!(two_pass.new_bytes, 0, "nothing new the second time");

    // A file rewritten between the passes: its objects are errors naming it, not wrong data.
    let dir = tempfile::tempdir().unwrap();
    let cm = |name: &str| {
        format!("apiVersion: v1\nkind: ConfigMap\nmetadata: {{name: {name}, namespace: x}}\n")
    };
    std::fs::write(dir.path().join("a.yaml"), cm("one")).unwrap();
    std::fs::write(dir.path().join("b.yaml"), cm("two")).unwrap();
    let (inventory, mut source) = backup::scan_dir(dir.path());
    std::fs::write(dir.path().join("a.yaml"), cm("other")).unwrap();
    let out = backup::backup_from(&repo, "c", &inventory, &mut source, &opts).unwrap();
    assert_eq!(out.items, 1, "only b.yaml's object is stored");
    let errors: Vec<_> = out.results.errors.messages().collect();
    assert_eq!(
        errors,
        [(
            Some("x"),
            "a.yaml (document 1): changed while the backup ran; back it up again"
        )]
    );
}
