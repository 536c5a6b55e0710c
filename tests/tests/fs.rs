//! File-tree backup and restore through repo-fs, on the real local file system.

use std::fs;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use cairn_tests::*;
use repo_core::storage::open_url;
use repo_core::{IndexedRepository, NoProgress};
use repo_fs::{
    backup, restore, BackupOptions, BackupOutcome, Counters, ExcludeOptions, Overwrite,
    ParentChoice, RestoreOptions, RestoreOutcome,
};

fn repo_in(dir: &Path) -> IndexedRepository {
    let url = format!("file://{}", dir.join("repo").display());
    init(open_url(&url, &Default::default()).unwrap())
}

fn back_up(repo: &IndexedRepository, src: &Path, opts: &BackupOptions) -> BackupOutcome {
    backup(repo, &[src.to_path_buf()], opts, &Counters::default()).unwrap()
}

fn restore_to(
    repo: &IndexedRepository,
    snap: &str,
    target: &Path,
    opts: &RestoreOptions,
) -> RestoreOutcome {
    restore(repo, snap, "", target, opts, &Counters::default(), &|_| {}).unwrap()
}

fn write(p: &Path, data: &[u8]) {
    fs::create_dir_all(p.parent().unwrap()).unwrap();
    fs::write(p, data).unwrap();
}

/// A tree with one of everything a file system holds.
fn rich_tree(src: &Path) {
    write(&src.join("docs/readme.txt"), b"hello\n");
    write(&src.join("docs/empty"), b"");
    write(&src.join("data/big.bin"), &random_bytes(20 << 20, 1));
    write(&src.join("data/text.log"), &text_bytes(3 << 20, 2));
    fs::create_dir_all(src.join("empty-dir")).unwrap();
    // Non-UTF-8 name.
    let odd = src.join(std::ffi::OsStr::from_bytes(b"caf\xe9-\x01"));
    write(&odd, b"latin-1 name");
    std::os::unix::fs::symlink("../docs/readme.txt", src.join("data/rel-link")).unwrap();
    std::os::unix::fs::symlink("/etc/hostname", src.join("abs-link")).unwrap();
    std::os::unix::fs::symlink("does/not/exist", src.join("dangling")).unwrap();
    fs::hard_link(src.join("docs/readme.txt"), src.join("data/hard-readme")).unwrap();
    fs::hard_link(src.join("docs/readme.txt"), src.join("hard-2")).unwrap();
    let fifo = std::ffi::CString::new(src.join("pipe").as_os_str().as_bytes()).unwrap();
    assert_eq!(unsafe { libc::mkfifo(fifo.as_ptr(), 0o640) }, 0);
    // Bits a usual umask (022) takes away: a restore must set them again after mknod.
    fs::set_permissions(src.join("pipe"), fs::Permissions::from_mode(0o666)).unwrap();
    if unsafe { libc::geteuid() } == 0 {
        let dev = std::ffi::CString::new(src.join("null-dev").as_os_str().as_bytes()).unwrap();
        assert_eq!(
            unsafe { libc::mknod(dev.as_ptr(), libc::S_IFCHR | 0o600, libc::makedev(1, 3)) },
            0
        );
    }
    let _sock = std::os::unix::net::UnixListener::bind(src.join("sock")).unwrap();
    // Sparse: 64 MiB with 4 KiB of data in the middle.
    let f = fs::File::create(src.join("sparse.img")).unwrap();
    f.set_len(64 << 20).unwrap();
    std::os::unix::fs::FileExt::write_all_at(&f, b"in the middle", 30 << 20).unwrap();
    drop(f);
    set_xattr(
        &src.join("docs/readme.txt"),
        "user.origin",
        b"test\xff\x00bin",
    );
    set_xattr(&src.join("docs"), "user.dir-note", b"on a directory");
    fs::set_permissions(src.join("data/big.bin"), fs::Permissions::from_mode(0o4750)).unwrap();
    fs::set_permissions(src.join("docs/empty"), fs::Permissions::from_mode(0o000)).unwrap();
    fs::set_permissions(src.join("empty-dir"), fs::Permissions::from_mode(0o1777)).unwrap();
    if unsafe { libc::geteuid() } == 0 {
        let c = std::ffi::CString::new(src.join("docs/empty").as_os_str().as_bytes()).unwrap();
        assert_eq!(unsafe { libc::lchown(c.as_ptr(), 1234, 5678) }, 0);
    }
    // A large directory: split into several tree blobs.
    for i in 0..(repo_core::SPLIT_DIR_NODES + 1500) {
        write(
            &src.join(format!("many/f{i:05}")),
            format!("{i}").as_bytes(),
        );
    }
    // Times last (nanoseconds, pre-epoch too), directories after their contents.
    set_mtime(&src.join("docs/readme.txt"), 1_600_000_000, 123_456_789);
    set_mtime(&src.join("abs-link"), 1_500_000_000, 5);
    set_mtime(&src.join("data/text.log"), -86_400, 999_999_999);
    for d in ["docs", "data", "empty-dir", "many"] {
        set_mtime(&src.join(d), 1_700_000_000, 42);
    }
}

#[test]
fn a_directory_round_trips_byte_and_metadata_identical() {
    let t = tempfile::tempdir().unwrap();
    let src = t.path().join("src");
    rich_tree(&src);
    let repo = repo_in(t.path());
    let out = back_up(&repo, &src, &BackupOptions::default());
    assert!(out.warnings.is_empty(), "{:?}", out.warnings);
    assert_clean(&repo);

    let target = t.path().join("restored");
    let r = restore_to(
        &repo,
        &out.id.to_string(),
        &target,
        &RestoreOptions {
            verify: true,
            ..Default::default()
        },
    );
    assert!(
        r.failures.is_empty(),
        "{:?}",
        &r.failures[..r.failures.len().min(5)]
    );
    assert!(r.verified > 0);

    let mut want = tree_state(&src);
    want.remove(Path::new("sock")); // sockets are recorded, not restored
    let got = tree_state(&target);
    for (path, w) in &want {
        assert_eq!(got.get(path), Some(w), "{} differs", path.display());
    }
    assert_eq!(got.len(), want.len(), "extra entries restored");
    // Holes stay holes: 64 MiB file, a few KiB allocated.
    let m = fs::metadata(target.join("sparse.img")).unwrap();
    assert!(
        m.blocks() * 512 < 1 << 20,
        "sparse file restored dense: {} blocks",
        m.blocks()
    );
    // The split directory really was split, and reads back whole.
    let snap = repo.get_snapshot(&out.id).unwrap();
    let many = repo.find_node(&snap.root, "many").unwrap();
    let tree = repo.read_tree(&many.subtree.unwrap()).unwrap();
    assert!(tree.parts.len() >= 2, "large directory stored as one blob");
}

#[test]
fn unchanged_files_are_not_read_again_and_unchanged_trees_cost_nothing() {
    let t = tempfile::tempdir().unwrap();
    let src = t.path().join("src");
    for i in 0..200 {
        write(
            &src.join(format!("d{}/f{i}", i % 7)),
            &text_bytes(10_000 + i, i as u64),
        );
    }
    let repo = repo_in(t.path());
    let first = back_up(&repo, &src, &BackupOptions::default());
    assert_eq!(first.snapshot.summary.files_new, 200);

    let second = back_up(&repo, &src, &BackupOptions::default());
    let s = &second.snapshot.summary;
    assert_eq!(
        (s.files_unchanged, s.files_changed, s.files_new),
        (200, 0, 0)
    );
    assert_eq!(s.new_blobs, 0, "an unchanged tree wrote blobs");
    assert_eq!(second.snapshot.root, first.snapshot.root);
    assert_eq!(second.parent, Some(first.id));

    // Content change, and a metadata-only change (ctime moves): both re-read.
    write(&src.join("d0/f0"), b"changed");
    fs::set_permissions(src.join("d1/f1"), fs::Permissions::from_mode(0o600)).unwrap();
    write(&src.join("d2/new"), b"new file");
    let third = back_up(&repo, &src, &BackupOptions::default());
    let s = &third.snapshot.summary;
    assert_eq!(
        (s.files_new, s.files_changed, s.files_unchanged),
        (1, 2, 198)
    );
    assert!(s.new_bytes < 100_000, "re-stored too much: {}", s.new_bytes);

    let forced = back_up(
        &repo,
        &src,
        &BackupOptions {
            force: true,
            ..Default::default()
        },
    );
    assert_eq!(forced.snapshot.summary.files_changed, 201);
    assert_eq!(forced.snapshot.root, third.snapshot.root);
}

#[test]
fn the_parent_follows_a_volume_by_tag_when_its_path_changes() {
    let t = tempfile::tempdir().unwrap();
    let pod_a = t.path().join("pods/aaa/volumes/data");
    for i in 0..50 {
        write(&pod_a.join(format!("f{i}")), &random_bytes(5000, i));
    }
    let repo = repo_in(t.path());
    let opts = BackupOptions {
        tags: vec!["pvc-uid=1234".into()],
        parent_tags: vec!["pvc-uid".into()],
        ..Default::default()
    };
    let first = back_up(&repo, &pod_a, &opts);
    // The pod is replaced: same volume (same inodes), new mount path.
    let pod_b = t.path().join("pods/bbb/volumes/data");
    fs::create_dir_all(pod_b.parent().unwrap()).unwrap();
    fs::rename(&pod_a, &pod_b).unwrap();
    let second = back_up(&repo, &pod_b, &opts);
    assert_eq!(second.parent, Some(first.id));
    assert_eq!(second.snapshot.summary.files_unchanged, 50);
    // Another volume's tag does not match it.
    let other = BackupOptions {
        tags: vec!["pvc-uid=9999".into()],
        ..opts.clone()
    };
    assert_eq!(back_up(&repo, &pod_b, &other).parent, None);
    // A parent tag without a value in this backup's tags is refused, not matched loosely.
    let untagged = BackupOptions {
        parent_tags: vec!["pvc-uid".into()],
        ..Default::default()
    };
    let e = backup(
        &repo,
        std::slice::from_ref(&pod_b),
        &untagged,
        &Counters::default(),
    )
    .unwrap_err();
    assert!(e.to_string().contains("--tag pvc-uid="), "{e}");
    // An explicit parent wins; `None` reads everything.
    let given = BackupOptions {
        parent: ParentChoice::Given(first.id.to_string()),
        ..Default::default()
    };
    assert_eq!(back_up(&repo, &pod_b, &given).parent, Some(first.id));
    let none = BackupOptions {
        parent: ParentChoice::None,
        ..opts
    };
    assert_eq!(back_up(&repo, &pod_b, &none).snapshot.summary.files_new, 50);
}

fn names_in(repo: &IndexedRepository, out: &BackupOutcome) -> Vec<String> {
    let mut v = Vec::new();
    repo_fs::browse::list(repo, &out.id.to_string(), "", true, &mut |p, _| {
        v.push(p.display().to_string())
    })
    .unwrap();
    v.sort();
    v
}

#[test]
fn excludes_patterns_ignore_files_markers_and_sizes() {
    let t = tempfile::tempdir().unwrap();
    let src = t.path().join("src");
    write(&src.join("keep.txt"), b"k");
    write(&src.join("debug.log"), b"l");
    write(&src.join("sub/trace.log"), b"l");
    write(&src.join("sub/important.log"), b"i");
    write(
        &src.join("sub/.cairnignore"),
        b"# comment\n*.tmp\n!important.log\n",
    );
    write(&src.join("sub/x.tmp"), b"t");
    write(&src.join("x.tmp"), b"kept: the ignore file is below");
    write(&src.join("cache/CACHEDIR.TAG"), b"");
    write(&src.join("cache/blob"), b"c");
    write(&src.join("build/out.o"), b"o");
    write(&src.join("huge.iso"), &vec![7u8; 300_000]);
    let pattern_file = t.path().join("patterns");
    write(&pattern_file, b"/build\n");
    let repo = repo_in(t.path());
    let opts = BackupOptions {
        exclude: ExcludeOptions {
            patterns: vec!["*.log".into()],
            pattern_files: vec![pattern_file],
            if_present: vec!["CACHEDIR.TAG".into()],
            larger_than: Some(100_000),
            ..Default::default()
        },
        ..Default::default()
    };
    let out = back_up(&repo, &src, &opts);
    assert_eq!(
        names_in(&repo, &out),
        [
            "keep.txt",
            "sub",
            "sub/.cairnignore",
            "sub/important.log",
            "x.tmp"
        ]
    );

    // --exclude-caches: only a CACHEDIR.TAG with the specification's signature counts.
    let caches = t.path().join("caches");
    write(
        &caches.join("real/CACHEDIR.TAG"),
        b"Signature: 8a477f597d28d172789f06886806bc55\n# a cache\n",
    );
    write(&caches.join("real/data"), b"cached");
    write(&caches.join("fake/CACHEDIR.TAG"), b"not the signature");
    write(&caches.join("fake/data"), b"kept");
    // A fifo under the tag's name must not stall the backup waiting for a writer.
    std::fs::create_dir_all(caches.join("fifo")).unwrap();
    let fifo =
        std::ffi::CString::new(caches.join("fifo/CACHEDIR.TAG").as_os_str().as_bytes()).unwrap();
    assert_eq!(unsafe { libc::mkfifo(fifo.as_ptr(), 0o644) }, 0);
    let opts = BackupOptions {
        exclude: ExcludeOptions {
            exclude_caches: true,
            ..Default::default()
        },
        ..Default::default()
    };
    let out = back_up(&repo, &caches, &opts);
    assert_eq!(
        names_in(&repo, &out),
        [
            "fake",
            "fake/CACHEDIR.TAG",
            "fake/data",
            "fifo",
            "fifo/CACHEDIR.TAG"
        ]
    );
}

#[test]
fn unreadable_and_changing_files_are_warnings_not_failures() {
    let t = tempfile::tempdir().unwrap();
    let src = t.path().join("src");
    write(&src.join("ok.txt"), b"fine");
    let growing = src.join("growing.log");
    write(&growing, &random_bytes(64 << 20, 3));
    let repo = repo_in(t.path());
    let stop = Arc::new(AtomicBool::new(false));
    let appender = {
        let (stop, path) = (stop.clone(), growing.clone());
        std::thread::spawn(move || {
            use std::io::Write;
            let mut f = fs::OpenOptions::new().append(true).open(path).unwrap();
            while !stop.load(Ordering::Relaxed) {
                f.write_all(&[b'x'; 4096]).unwrap();
                std::thread::sleep(std::time::Duration::from_micros(200));
            }
        })
    };
    let out = back_up(&repo, &src, &BackupOptions::default());
    stop.store(true, Ordering::Relaxed);
    appender.join().unwrap();
    assert!(
        out.warnings
            .iter()
            .any(|w| w.path == growing && w.message.contains("changed while being read")),
        "{:?}",
        out.warnings
    );
    assert!(out
        .snapshot
        .summary
        .warnings
        .iter()
        .any(|w| w.contains("growing.log")));
    assert_clean(&repo);
    // What was read is consistent: the restored file is a prefix of the file now.
    let target = t.path().join("r");
    restore_to(&repo, "latest", &target, &RestoreOptions::default());
    let got = fs::read(target.join("growing.log")).unwrap();
    let now = fs::read(&growing).unwrap();
    assert!(got.len() >= 64 << 20 && now.starts_with(&got));

    // fail_fast turns the same warning into an error.
    stop.store(false, Ordering::Relaxed);
    let appender = {
        let (stop, path) = (stop.clone(), growing.clone());
        std::thread::spawn(move || {
            use std::io::Write;
            let mut f = fs::OpenOptions::new().append(true).open(path).unwrap();
            while !stop.load(Ordering::Relaxed) {
                f.write_all(&[b'y'; 4096]).unwrap();
                std::thread::sleep(std::time::Duration::from_micros(200));
            }
        })
    };
    let r = backup(
        &repo,
        std::slice::from_ref(&src),
        &BackupOptions {
            fail_fast: true,
            force: true,
            ..Default::default()
        },
        &Counters::default(),
    );
    stop.store(true, Ordering::Relaxed);
    appender.join().unwrap();
    let e = r.expect_err("fail_fast backup succeeded");
    assert!(e.to_string().contains("growing.log"), "{e}");
}

#[test]
fn cancelling_keeps_uploads_for_the_next_backup() {
    let t = tempfile::tempdir().unwrap();
    let src = t.path().join("src");
    for i in 0..40 {
        write(
            &src.join(format!("f{i:02}")),
            &random_bytes(1 << 20, 100 + i),
        );
    }
    let repo = repo_in(t.path());
    let cancel = Arc::new(AtomicBool::new(false));
    let counters = Counters::default();
    let opts = BackupOptions {
        cancel: cancel.clone(),
        threads: Some(1),
        ..Default::default()
    };
    let r = std::thread::scope(|s| {
        s.spawn(|| {
            while counters.snapshot().bytes_done < 20 << 20 {
                std::thread::yield_now();
            }
            cancel.store(true, Ordering::Relaxed);
        });
        backup(&repo, std::slice::from_ref(&src), &opts, &counters)
    });
    assert!(matches!(r, Err(repo_core::Error::Cancelled)), "{r:?}");
    assert!(repo.list_snapshots(&Default::default()).unwrap().is_empty());
    let again = back_up(&repo, &src, &BackupOptions::default());
    let s = &again.snapshot.summary;
    assert!(
        s.new_bytes < 25 << 20,
        "cancelled uploads were uploaded again: {} new bytes",
        s.new_bytes
    );
    assert_clean(&repo);
}

#[test]
fn restore_options_filter_overwrite_delete_and_done_file() {
    let t = tempfile::tempdir().unwrap();
    let src = t.path().join("src");
    write(&src.join("a/one.txt"), b"1");
    write(&src.join("a/two.log"), b"2");
    write(&src.join("b/three.txt"), b"3");
    let repo = repo_in(t.path());
    let snap = back_up(&repo, &src, &BackupOptions::default())
        .id
        .to_string();

    // include / exclude
    let only = t.path().join("only");
    restore_to(
        &repo,
        &snap,
        &only,
        &RestoreOptions {
            include: vec!["*.txt".into()],
            exclude: vec!["b".into()],
            ..Default::default()
        },
    );
    let got: Vec<_> = tree_state(&only).into_keys().collect();
    assert_eq!(got, [PathBuf::from("a"), PathBuf::from("a/one.txt")]);

    // dry run writes nothing
    let dry = t.path().join("dry");
    let steps = std::sync::Mutex::new(Vec::new());
    restore(
        &repo,
        &snap,
        "",
        &dry,
        &RestoreOptions {
            dry_run: true,
            ..Default::default()
        },
        &Counters::default(),
        &|s| steps.lock().unwrap().push(s.path.clone()),
    )
    .unwrap();
    assert!(!dry.exists());
    assert_eq!(steps.into_inner().unwrap().len(), 5);

    // overwrite policies
    let tgt = t.path().join("tgt");
    restore_to(&repo, &snap, &tgt, &RestoreOptions::default());
    write(&tgt.join("a/one.txt"), b"local edit");
    write(&tgt.join("extra"), b"not in the snapshot");
    restore_to(
        &repo,
        &snap,
        &tgt,
        &RestoreOptions {
            overwrite: Overwrite::Never,
            ..Default::default()
        },
    );
    assert_eq!(fs::read(tgt.join("a/one.txt")).unwrap(), b"local edit");
    let r = restore_to(
        &repo,
        &snap,
        &tgt,
        &RestoreOptions {
            overwrite: Overwrite::IfChanged,
            ..Default::default()
        },
    );
    assert_eq!(fs::read(tgt.join("a/one.txt")).unwrap(), b"1");
    assert_eq!(r.skipped, 2, "unchanged files were rewritten");
    assert!(tgt.join("extra").exists());
    let r = restore_to(
        &repo,
        &snap,
        &tgt,
        &RestoreOptions {
            delete: true,
            done_file_uid: Some("rst-42".into()),
            ..Default::default()
        },
    );
    assert_eq!(r.deleted, 1);
    assert!(!tgt.join("extra").exists());
    assert!(tgt.join(".velero/rst-42").is_file());

    // a subpath
    let sub = t.path().join("sub");
    restore(
        &repo,
        &snap[..12],
        "a",
        &sub,
        &RestoreOptions::default(),
        &Counters::default(),
        &|_| {},
    )
    .unwrap();
    assert_eq!(fs::read(sub.join("two.log")).unwrap(), b"2");
    assert!(!sub.join("b").exists());
}

#[test]
fn diff_lists_what_changed() {
    let t = tempfile::tempdir().unwrap();
    let src = t.path().join("src");
    write(&src.join("same"), b"s");
    write(&src.join("edit"), b"e");
    write(&src.join("gone/x"), b"g");
    let repo = repo_in(t.path());
    let a = back_up(&repo, &src, &BackupOptions::default())
        .id
        .to_string();
    write(&src.join("edit"), b"edited");
    fs::remove_dir_all(src.join("gone")).unwrap();
    write(&src.join("new"), b"n");
    let b = back_up(&repo, &src, &BackupOptions::default())
        .id
        .to_string();
    let mut changes = Vec::new();
    repo_fs::browse::diff(&repo, &a, &b, &mut |p, c| {
        changes.push(format!("{} {}", c.marker(), p.display()))
    })
    .unwrap();
    assert_eq!(changes, ["M edit", "- gone", "- gone/x", "+ new"]);
}

/// Data loss (a pack deleted, the index rebuilt from the packs left): restoring the damaged
/// snapshot names what it cannot restore and restores the rest; the next backup reads the
/// files whose data went with the pack instead of carrying the parent's references over, so
/// its snapshot is whole, and the lost blobs are stored again (same content, same ids),
/// which heals the damaged snapshot too.
#[test]
fn a_backup_after_data_loss_reads_lost_files_again() {
    use repo_core::maintenance::repair;
    let t = tempfile::tempdir().unwrap();
    let src = t.path().join("src");
    for i in 0..12 {
        write(
            &src.join(format!("d/f{i:02}")),
            &random_bytes(300_000, 50 + i),
        );
    }
    let repo = repo_in(t.path());
    let first = back_up(&repo, &src, &BackupOptions::default());

    // Lose the pack holding the start of d/f03.
    let f03 = repo.find_node(&first.snapshot.root, "d/f03").unwrap();
    let pack = repo.index().lookup(&f03.content[0].0).unwrap().pack;
    let storage = repo.storage().clone();
    storage.delete(&repo_core::pack::pack_key(&pack)).unwrap();
    let plain = repo_core::Repository::open(storage.clone(), PASSWORD, open_opts()).unwrap();
    repair::rebuild_index(
        &plain,
        false,
        std::time::Duration::from_secs(60),
        &NoProgress,
    )
    .unwrap();
    let repo = open(storage);
    let damaged = repair::check_snapshots(&repo, false, &NoProgress)
        .unwrap()
        .damaged;
    assert_eq!(damaged.len(), 1, "{damaged:?}");

    // The damaged snapshot: d/f03 is named, every file not in the lost pack is restored.
    let out = t.path().join("partial");
    let partial = restore_to(
        &repo,
        &first.id.to_string(),
        &out,
        &RestoreOptions::default(),
    );
    let failed: Vec<String> = partial
        .failures
        .iter()
        .map(|(p, _)| p.display().to_string())
        .collect();
    assert!(failed.contains(&"d/f03".to_string()), "{failed:?}");
    assert!(partial.files >= 1 && partial.files + failed.len() as u64 == 12);
    for (p, why) in &partial.failures {
        assert!(why.contains("not in the index"), "{}: {why}", p.display());
        assert!(!out.join(p).exists(), "{} left half-restored", p.display());
    }

    let second = back_up(&repo, &src, &BackupOptions::default());
    assert_eq!(second.parent, Some(first.id));
    let s = &second.snapshot.summary;
    assert!(s.files_changed >= 1 && s.files_unchanged >= 1, "{s:?}");
    let damaged = repair::check_snapshots(&repo, false, &NoProgress)
        .unwrap()
        .damaged;
    assert!(damaged.is_empty(), "{damaged:?}");
    for snap in [&second.id, &first.id] {
        let out = t.path().join(format!("whole-{snap}"));
        let whole = restore_to(&repo, &snap.to_string(), &out, &RestoreOptions::default());
        assert!(whole.failures.is_empty(), "{:?}", whole.failures);
        assert_eq!(tree_state(&src), tree_state(&out));
    }
}

/// A backup that runs out of space (a real full file system: a small tmpfs, when this test
/// may mount one) fails with the storage's error, and every pack it managed to store is
/// indexed, so the next backup does not upload it again and nothing is stranded.
#[test]
fn a_full_disk_fails_the_backup_and_strands_nothing() {
    let t = tempfile::tempdir().unwrap();
    let disk = t.path().join("disk");
    fs::create_dir_all(&disk).unwrap();
    let mounted = std::process::Command::new("mount")
        .args(["-t", "tmpfs", "-o", "size=6m", "tmpfs"])
        .arg(&disk)
        .status()
        .is_ok_and(|s| s.success());
    if !mounted {
        eprintln!("skipped: cannot mount a tmpfs here (needs root)");
        return;
    }
    struct Unmount<'a>(&'a Path);
    impl Drop for Unmount<'_> {
        fn drop(&mut self) {
            let _ = std::process::Command::new("umount").arg(self.0).status();
        }
    }
    let _unmount = Unmount(&disk);
    let src = t.path().join("src");
    for i in 0..16 {
        write(
            &src.join(format!("f{i:02}")),
            &random_bytes(700_000, 70 + i),
        );
    }
    let repo = repo_in(&disk);
    let err = backup(
        &repo,
        std::slice::from_ref(&src),
        &BackupOptions::default(),
        &Counters::default(),
    )
    .unwrap_err();
    assert!(err.to_string().contains("No space left on device"), "{err}");
    assert!(repo.snapshot_ids().unwrap().is_empty());
    let repo = open(repo.storage().clone());
    let stored = repo.storage().list("data/").unwrap();
    assert!(
        stored.len() >= 2,
        "too few packs stored to test: {}",
        stored.len()
    );
    let index = repo.index();
    for pack in &stored {
        let id: repo_core::ObjectId = pack.key.rsplit('/').next().unwrap().parse().unwrap();
        assert!(
            index.packs().contains(&id),
            "{} is stored but not indexed",
            pack.key
        );
    }
}

/// A restore from object storage fills files pack by pack (`repo-fs/src/restore/fill.rs`);
/// an in-memory store counts as object storage. It must give what the local path gives:
/// the same bytes and metadata, the same entries under include patterns, the same named
/// failures for damaged data, and nothing half-written left behind.
#[test]
fn a_restore_from_object_storage_fills_pack_by_pack_as_the_local_path_restores() {
    let t = tempfile::tempdir().unwrap();
    let src = t.path().join("src");
    rich_tree(&src);
    // The same content in many files (one blob, written to each), and files of several
    // chunks in a directory without write permission.
    let shared = random_bytes(200_000, 7);
    for i in 0..20 {
        write(&src.join(format!("same/copy{i:02}")), &shared);
    }
    for i in 0..3 {
        write(
            &src.join(format!("locked/multi{i}")),
            &random_bytes(6 << 20, 80 + i),
        );
    }
    fs::set_permissions(src.join("locked"), fs::Permissions::from_mode(0o555)).unwrap();
    set_mtime(&src.join("locked"), 1_650_000_000, 7);

    let url = format!("memory://by-pack-{}", std::process::id());
    let repo = init(open_url(&url, &Default::default()).unwrap());
    assert!(!repo.is_local());
    let out = back_up(&repo, &src, &BackupOptions::default());
    let id = out.id.to_string();

    let whole = t.path().join("whole");
    let verify = RestoreOptions {
        verify: true,
        ..Default::default()
    };
    let r = restore_to(&repo, &id, &whole, &verify);
    assert!(r.failures.is_empty(), "{:?}", r.failures);
    assert!(r.verified > 0);
    let mut want = tree_state(&src);
    want.remove(Path::new("sock"));
    assert_eq!(tree_state(&whole), want);

    // Include patterns: the same entries as a restore from a local copy of the repository.
    let local = repo_in(t.path());
    let local_id = back_up(&local, &src, &BackupOptions::default())
        .id
        .to_string();
    let include = RestoreOptions {
        include: vec!["docs".into(), "many/f0001*".into(), "multi1".into()],
        ..Default::default()
    };
    let (a, b) = (t.path().join("inc-s3"), t.path().join("inc-local"));
    let ra = restore_to(&repo, &id, &a, &include);
    let rb = restore_to(&local, &local_id, &b, &include);
    assert!(ra.failures.is_empty() && rb.failures.is_empty());
    assert_eq!((ra.files, ra.dirs), (rb.files, rb.dirs));
    assert_eq!(tree_state(&a), tree_state(&b));
    assert!(a.join("locked/multi1").exists() && !a.join("same").exists());

    // Damage the pack holding one copy's blob: every file needing it is named, none is
    // left half-written, everything else is restored.
    let node = repo.find_node(&out.snapshot.root, "same/copy00").unwrap();
    let pack = repo.index().lookup(&node.content[0].0).unwrap().pack;
    let key = repo_core::pack::pack_key(&pack);
    let storage = repo.storage().clone();
    let mut bytes = storage.get(&key).unwrap().to_vec();
    let loc = repo.index().lookup(&node.content[0].0).unwrap();
    bytes[loc.offset as usize + 40] ^= 0xff;
    storage
        .put(&key, bytes.into(), repo_core::storage::WriteMode::Overwrite)
        .unwrap();
    let damaged = t.path().join("damaged");
    let r = restore_to(&repo, &id, &damaged, &RestoreOptions::default());
    let named: Vec<String> = r
        .failures
        .iter()
        .map(|(p, _)| p.display().to_string())
        .collect();
    for i in 0..20 {
        let p = format!("same/copy{i:02}");
        assert!(named.contains(&p), "{p} not named: {named:?}");
        assert!(!damaged.join(&p).exists(), "{p} left half-written");
    }
    for (p, why) in &r.failures {
        assert!(why.contains("authentication"), "{}: {why}", p.display());
    }
    assert_eq!(
        fs::read(damaged.join("docs/readme.txt")).unwrap(),
        b"hello\n"
    );
    fs::set_permissions(src.join("locked"), fs::Permissions::from_mode(0o755)).unwrap();
    for d in [&whole, &a, &b] {
        let _ = fs::set_permissions(d.join("locked"), fs::Permissions::from_mode(0o755));
    }
}
