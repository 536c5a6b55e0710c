//! Hostile repositories: objects crafted by someone who holds a valid key (so authentication
//! passes and only the parsers and the logic are attacked), built through the library.
//! Every case must end in a clear refusal that names the object, never in a crash, a hang
//! or unbounded memory, and never lock out the right password.

use cairn_tests::*;
use repo_core::blob::BlobKind;
use repo_core::storage::{open_url, WriteMode};
use repo_core::walk::WalkBudget;
use repo_core::{
    CheckOptions, Error, IndexedRepository, NoProgress, ObjectId, Repository, Snapshot,
    WriterOptions,
};
use repo_fs::{browse, restore, Counters, RestoreOptions};

fn repo_in(dir: &std::path::Path) -> IndexedRepository {
    let url = format!("file://{}", dir.join("repo").display());
    init(open_url(&url, &Default::default()).unwrap())
}

/// Writes `trees` as tree blobs, exactly as given (each may name the ids of those before
/// it as `T0`, `T1`, …), and commits a snapshot whose root is the last one.
fn crafted_chain(repo: &IndexedRepository, trees: &[String]) -> ObjectId {
    let w = repo.writer(WriterOptions::default()).unwrap();
    let mut ids: Vec<String> = Vec::new();
    let mut root = None;
    for json in trees {
        // Each `"T<n>"` (quoted) becomes the n-th id.
        let mut parts = json.split("\"T");
        let mut out = parts.next().unwrap_or_default().to_string();
        for rest in parts {
            let digits = rest.find('"').unwrap();
            let n: usize = rest[..digits].parse().unwrap();
            out.push('"');
            out.push_str(&ids[n]);
            out.push_str(&rest[digits..]);
        }
        let json = out;
        let id = w.write_blob(BlobKind::Tree, json.as_bytes()).unwrap();
        ids.push(id.to_string());
        root = Some(id);
    }
    let snap = Snapshot::new("crafted", "attacker", vec![], root.unwrap()).unwrap();
    w.commit(snap).unwrap()
}

fn restore_with(
    repo: &IndexedRepository,
    snap: &ObjectId,
    target: &std::path::Path,
    opts: &RestoreOptions,
) -> repo_core::Result<repo_fs::RestoreOutcome> {
    let snap = snap.to_string();
    restore(repo, &snap, "", target, opts, &Counters::default(), &|_| {})
}

fn dry_run(repo: &IndexedRepository, snap: &ObjectId) -> repo_core::Result<()> {
    let opts = RestoreOptions {
        dry_run: true,
        ..Default::default()
    };
    let target = std::env::temp_dir().join("cairn-hostile-never-written");
    restore_with(repo, snap, &target, &opts).map(drop)
}

fn list_all(repo: &IndexedRepository, snap: &ObjectId) -> repo_core::Result<usize> {
    let mut n = 0;
    browse::list(repo, &snap.to_string(), "", true, &mut |_, _| n += 1)?;
    Ok(n)
}

#[test]
fn damaged_and_costly_key_files_do_not_lock_anyone_out() {
    let t = tempfile::tempdir().unwrap();
    let repo = repo_in(t.path());
    let storage = repo.storage().clone();
    let good = String::from_utf8(
        storage
            .get(&format!("keys/{}", repo.current_key()))
            .unwrap()
            .to_vec(),
    )
    .unwrap();
    let kf: serde_json::Value = serde_json::from_str(&good).unwrap();
    let variant = |f: &dyn Fn(&mut serde_json::Value)| {
        let mut v = kf.clone();
        f(&mut v);
        let bytes = serde_json::to_vec(&v).unwrap();
        let id = ObjectId::of(&bytes);
        storage
            .put(&format!("keys/{id}"), bytes.into(), WriteMode::Create)
            .unwrap();
    };
    variant(&|v| v["kdf"]["salt"] = "ab".into()); // one byte
    variant(&|v| v["kdf"]["salt"] = "not hex at all".into());
    variant(&|v| v["master_key"] = "00".into());
    variant(&|v| {
        // At the hard limits: 4 GiB and 100 passes, 120 s and 4 GiB per try.
        v["kdf"]["memory_kib"] = (4u64 << 20).into();
        v["kdf"]["iterations"] = 100.into();
    });
    // The right password opens the repository whatever order the files are listed in.
    let opened = Repository::open(storage.clone(), PASSWORD, open_opts()).unwrap();
    assert_eq!(opened.current_key(), repo.current_key());
    // A wrong one says which key files were not tried, and why: three damaged ones, and
    // the costly one (tried only on request, so a wrong password costs no 4 GiB).
    let err = Repository::open(storage.clone(), b"wrong", open_opts())
        .err()
        .unwrap();
    assert!(
        matches!(
            err,
            Error::WrongPassword {
                tried: 1,
                damaged: 3,
                costly: 1,
                ..
            }
        ),
        "{err}"
    );
    let m = err.to_string();
    assert!(m.contains("3 damaged key file(s) skipped"), "{m}");
    assert!(m.contains("--allow-costly-kdf"), "{m}");
    // New passwords beyond the caps are refused, not written.
    let costly = repo_core::KdfParams {
        memory_kib: 2 << 20,
        iterations: 3,
        parallelism: 4,
    };
    assert!(opened.add_key(b"another", costly).is_err());
}

#[test]
fn a_tree_deeper_than_any_reader_walks_is_refused_not_a_crash() {
    let t = tempfile::tempdir().unwrap();
    let repo = repo_in(t.path());
    // 20,000 directories, each holding the next: a recursive walk overflows its stack.
    let mut trees = vec![r#"{"nodes":[{"name":"f","type":"file"}]}"#.to_string()];
    for i in 0..20_000 {
        trees.push(format!(
            r#"{{"nodes":[{{"name":"d","type":"dir","subtree":"T{i}"}}]}}"#
        ));
    }
    let snap = crafted_chain(&repo, &trees);
    let e = list_all(&repo, &snap).unwrap_err();
    assert!(e.to_string().contains("nested deeper than 4096"), "{e}");
    let e = dry_run(&repo, &snap).unwrap_err();
    assert!(e.to_string().contains("nested deeper than 4096"), "{e}");
    let report = repo.check(&CheckOptions::default(), &NoProgress).unwrap();
    assert!(
        report
            .problems
            .iter()
            .any(|p| p.message.contains("nested deeper than 4096")),
        "{:?}",
        report.problems
    );
    // The Kubernetes side walks trees too (the export and the restore planner).
    let root = repo.get_snapshot(&snap).unwrap().root;
    let budget = WalkBudget::unlimited();
    let e = repo_k8s::backup::list_files(&repo, root, "x", &budget).unwrap_err();
    assert!(e.to_string().contains("nested deeper than 4096"), "{e}");
}

#[test]
fn shared_subtrees_that_expand_without_end_are_refused() {
    let t = tempfile::tempdir().unwrap();
    let repo = repo_in(t.path());
    // Three levels of 8,192 entries, each naming the level below: 8,192³ entries from
    // four small blobs.
    let fanout = |below: usize| {
        let nodes: Vec<String> = (0..8192)
            .map(|i| format!(r#"{{"name":"d{i:04}","type":"dir","subtree":"T{below}"}}"#))
            .collect();
        format!(r#"{{"nodes":[{}]}}"#, nodes.join(","))
    };
    let trees = vec![
        r#"{"nodes":[{"name":"f","type":"file"}]}"#.to_string(),
        fanout(0),
        fanout(1),
        fanout(2),
    ];
    let snap = crafted_chain(&repo, &trees);
    let short = snap.to_string();
    for e in [
        list_all(&repo, &snap).unwrap_err(),
        dry_run(&repo, &snap).unwrap_err(),
    ] {
        assert!(e.is_corrupt(), "{e}");
        let m = e.to_string();
        assert!(m.contains(&short) && m.contains("name each other"), "{m}");
    }
    let root = repo.get_snapshot(&snap).unwrap().root;
    let budget = WalkBudget::for_snapshot(&snap, &repo.get_snapshot(&snap).unwrap());
    let e = repo_k8s::backup::list_files(&repo, root, "x", &budget).unwrap_err();
    assert!(e.to_string().contains("name each other"), "{e}");
}

#[test]
fn a_chunk_larger_than_the_chunker_makes_is_refused() {
    let t = tempfile::tempdir().unwrap();
    let repo = repo_in(t.path());
    // 64 MiB of zeros compress to almost nothing: a "zip bomb" of a chunk, far past the
    // repository's largest chunk (256 KiB in these tests).
    let big = vec![0u8; 64 << 20];
    let w = repo.writer(WriterOptions::default()).unwrap();
    let id = w.write_blob(BlobKind::Data, &big).unwrap();
    let file = format!(
        r#"{{"nodes":[{{"name":"bomb","type":"file","size":{},"content":[["{id}",{}]]}}]}}"#,
        big.len(),
        big.len()
    );
    let root = w.write_blob(BlobKind::Tree, file.as_bytes()).unwrap();
    let snap = w
        .commit(Snapshot::new("bomb", "attacker", vec![], root).unwrap())
        .unwrap();
    drop(big);
    let target = t.path().join("target");
    let out = restore_with(&repo, &snap, &target, &RestoreOptions::default()).unwrap();
    assert_eq!(out.failures.len(), 1, "{:?}", out.failures);
    assert!(
        out.failures[0].1.contains("more than 262144"),
        "{:?}",
        out.failures
    );
    assert!(!target.join("bomb").exists());
    let report = repo.check(&CheckOptions::read_all(), &NoProgress).unwrap();
    assert!(
        report
            .problems
            .iter()
            .any(|p| p.message.contains("more than 262144")),
        "{:?}",
        report.problems
    );
}

#[test]
fn check_refuses_the_trees_a_restore_refuses() {
    let t = tempfile::tempdir().unwrap();
    let repo = repo_in(t.path());
    let part = |names: &[&str]| {
        let nodes: Vec<String> = names
            .iter()
            .map(|n| format!(r#"{{"name":"{n}","type":"file"}}"#))
            .collect();
        format!(r#"{{"nodes":[{}]}}"#, nodes.join(","))
    };
    let w = repo.writer(WriterOptions::default()).unwrap();
    let chunk = w.write_blob(BlobKind::Data, b"twelve bytes").unwrap();
    drop(w);
    let cases: Vec<(&str, Vec<String>)> = vec![
        (
            "a part repeated",
            vec![
                part(&["a", "b"]),
                r#"{"nodes":[],"parts":["T0","T0"]}"#.into(),
            ],
        ),
        (
            "parts that share a name",
            vec![
                part(&["a", "b"]),
                part(&["b", "c"]),
                r#"{"nodes":[],"parts":["T0","T1"]}"#.into(),
            ],
        ),
        (
            "a nested part",
            vec![
                part(&["a"]),
                r#"{"nodes":[],"parts":["T0"]}"#.into(),
                r#"{"nodes":[],"parts":["T1"]}"#.into(),
            ],
        ),
        (
            "a chunk whose length disagrees with its blob",
            vec![format!(
                r#"{{"nodes":[{{"name":"f","type":"file","size":20,"content":[["{chunk}",20]]}}]}}"#
            )],
        ),
        (
            "a hole past the limit",
            vec![format!(
                r#"{{"nodes":[{{"name":"f","type":"file","size":3000000000,"content":[["{}",3000000000]]}}]}}"#,
                repo_core::BlobId::default()
            )],
        ),
    ];
    for (what, trees) in cases {
        let snap = crafted_chain(&repo, &trees);
        let report = repo.check(&CheckOptions::default(), &NoProgress).unwrap();
        let about_it: Vec<_> = report
            .problems
            .iter()
            .filter(|p| p.object.contains(&snap.to_string()))
            .collect();
        assert!(
            !about_it.is_empty(),
            "{what}: check found nothing: {:?}",
            report.problems
        );
        let target = t.path().join("target");
        let restored = restore_with(&repo, &snap, &target, &RestoreOptions::default());
        let refused = match restored {
            Err(_) => true,
            Ok(out) => !out.failures.is_empty(),
        };
        assert!(refused, "{what}: the restore took it");
        repo.delete_snapshot(&snap).unwrap();
    }
}

#[test]
fn one_unreadable_snapshot_does_not_hide_the_others() {
    let t = tempfile::tempdir().unwrap();
    let repo = repo_in(t.path());
    let (good, _) = backup(&repo, b"fine", "fine", &[]);
    let bad = ObjectId::of(b"not a snapshot");
    repo.storage()
        .put(
            &format!("snapshots/{bad}"),
            b"not a snapshot".to_vec().into(),
            WriteMode::Create,
        )
        .unwrap();
    let (listed, unreadable) = repo.list_snapshots_lenient(&Default::default()).unwrap();
    assert_eq!(listed.iter().map(|s| s.0).collect::<Vec<_>>(), vec![good]);
    assert_eq!(unreadable.len(), 1);
    assert_eq!(unreadable[0].0, bad);
    // What decides about data still sees every snapshot, and fails.
    assert!(repo.list_snapshots(&Default::default()).is_err());
}

#[test]
fn a_kubernetes_object_of_a_terabyte_of_holes_is_refused_before_it_is_allocated() {
    let t = tempfile::tempdir().unwrap();
    let repo = repo_in(t.path());
    let hole = format!("[\"{}\",{}]", repo_core::BlobId::default(), 1u64 << 30);
    let holes = vec![hole; 1024].join(",");
    let trees = vec![
        format!(
            r#"{{"nodes":[{{"name":"x.json","type":"file","size":{},"content":[{holes}]}}]}}"#,
            1u64 << 40
        ),
        r#"{"nodes":[{"name":"namespaces","type":"dir","subtree":"T0"}]}"#.into(),
        r#"{"nodes":[{"name":"configmaps","type":"dir","subtree":"T1"}]}"#.into(),
        r#"{"nodes":[{"name":"resources","type":"dir","subtree":"T2"}]}"#.into(),
    ];
    let snap = crafted_chain(&repo, &trees);
    let d = repo_k8s::restore::backup_discovery(&repo, &snap).unwrap();
    let e = repo_k8s::restore::plan_backup(&repo, &snap, &d, &Default::default()).unwrap_err();
    let m = e.to_string();
    assert!(
        m.contains("larger than any Kubernetes object") && m.contains("x.json"),
        "{m}"
    );
}
