//! The real `node-agent` on directories: SIGKILL during backup and restore, SIGINT, exit
//! codes for warnings, JSON progress, and the browsing commands.

use std::fs;
use std::path::Path;
use std::process::{Command, Output, Stdio};
use std::time::Duration;

use cairn_tests::*;
use rand::{Rng, SeedableRng};

fn ok(mut c: Command) -> String {
    let out = c.output().expect("spawn node-agent");
    assert!(
        out.status.success(),
        "{c:?} failed ({}): {}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).expect("utf8")
}

struct Setup {
    _t: tempfile::TempDir,
    root: std::path::PathBuf,
    repo: String,
    cache: std::path::PathBuf,
}

impl Setup {
    fn new() -> Self {
        let t = tempfile::tempdir().unwrap();
        let root = t.path().to_path_buf();
        let repo = root.join("repo").display().to_string();
        let cache = root.join("cache");
        let mut c = agent(&repo, &cache);
        c.args(FAST_INIT);
        ok(c);
        Setup {
            _t: t,
            root,
            repo,
            cache,
        }
    }

    fn agent(&self, args: &[&str]) -> Command {
        let mut c = agent(&self.repo, &self.cache);
        c.args(args);
        c
    }

    fn run(&self, args: &[&str]) -> Output {
        self.agent(args).output().expect("spawn")
    }

    fn check_clean(&self) {
        let out = self.run(&["check", "--read-data"]);
        assert!(
            out.status.success(),
            "check: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }
}

/// A source tree: `n` files of mixed sizes in a few directories.
fn make_source(dir: &Path, n: u64, seed: u64) {
    for i in 0..n {
        let p = dir.join(format!("d{}/f{i:04}", i % 5));
        fs::create_dir_all(p.parent().unwrap()).unwrap();
        let len = if i % 10 == 0 {
            600_000
        } else {
            3_000 + (i as usize * 37) % 20_000
        };
        fs::write(p, random_bytes(len, seed * 1000 + i)).unwrap();
    }
}

fn last_json(stdout: &[u8]) -> serde_json::Value {
    let text = String::from_utf8_lossy(stdout);
    let line = text.lines().last().expect("output");
    serde_json::from_str(line).unwrap_or_else(|e| panic!("{line}: {e}"))
}

#[test]
fn sigkill_during_backup_and_restore_then_rerun_finishes() {
    let s = Setup::new();
    let src = s.root.join("src");
    make_source(&src, 150, 1);
    let src_arg = src.display().to_string();
    let first = s.run(&["backup", &src_arg, "--json"]);
    assert!(first.status.success());
    let good = last_json(&first.stdout)["snapshot_id"]
        .as_str()
        .unwrap()
        .to_string();

    // Change the tree, then kill backups of it at random moments.
    make_source(&src, 150, 2);
    let mut rng = rand::rngs::StdRng::seed_from_u64(7);
    for round in 0..12 {
        let mut child = s
            .agent(&["backup", &src_arg])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        std::thread::sleep(Duration::from_millis(rng.gen_range(5..400)));
        let _ = child.kill();
        let _ = child.wait();
        if round % 4 == 3 {
            s.check_clean();
        }
    }
    s.check_clean();
    let after = s.run(&["backup", &src_arg, "--json"]);
    assert!(
        after.status.success(),
        "{}",
        String::from_utf8_lossy(&after.stderr)
    );
    let summary = last_json(&after.stdout);
    let newest = summary["snapshot_id"].as_str().unwrap().to_string();

    // Kill restores midway; a rerun finishes the job (if-changed skips what is complete).
    let target = s.root.join("target");
    let target_arg = target.display().to_string();
    for _ in 0..6 {
        let mut child = s
            .agent(&["restore", &newest, &target_arg])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        std::thread::sleep(Duration::from_millis(rng.gen_range(5..200)));
        let _ = child.kill();
        let _ = child.wait();
    }
    let out = s.run(&[
        "restore",
        &newest,
        &target_arg,
        "--overwrite",
        "if-changed",
        "--verify",
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(tree_state(&target), tree_state(&src));
    // The first snapshot still restores exactly what it held.
    let old = s.root.join("old");
    ok(s.agent(&["restore", &good, &old.display().to_string()]));
    assert_eq!(tree_state(&old).len(), tree_state(&src).len());
    s.check_clean();
}

#[test]
fn sigint_stops_cleanly_and_the_next_backup_reuses_the_uploads() {
    let s = Setup::new();
    let src = s.root.join("src");
    for i in 0..24 {
        let p = src.join(format!("big{i:02}"));
        fs::create_dir_all(&src).unwrap();
        fs::write(p, random_bytes(4 << 20, 50 + i)).unwrap();
    }
    let src_arg = src.display().to_string();
    let mut child = s
        .agent(&[
            "backup",
            &src_arg,
            "--json",
            "--threads",
            "1",
            "--progress-interval",
            "0.05",
        ])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // Wait for progress to show some bytes done, then SIGINT.
    let stdout = child.stdout.take().unwrap();
    let mut lines = std::io::BufRead::lines(std::io::BufReader::new(stdout));
    let mut saw_progress = false;
    for line in lines.by_ref() {
        let v: serde_json::Value = serde_json::from_str(&line.unwrap()).unwrap();
        if v["event"] == "progress" {
            assert!(v["totalBytes"].is_u64() && v["bytesDone"].is_u64(), "{v}");
            if v["bytesDone"].as_u64().unwrap() > 40 << 20 {
                saw_progress = true;
                break;
            }
        }
    }
    assert!(saw_progress, "no JSON progress with bytesDone");
    unsafe { libc::kill(child.id() as i32, libc::SIGINT) };
    for _ in lines {}
    let status = child.wait().unwrap();
    assert_eq!(status.code(), Some(130), "cancelled backup exit code");
    let list = ok(s.agent(&["snapshots", "--json"]));
    assert_eq!(
        serde_json::from_str::<serde_json::Value>(&list)
            .unwrap()
            .as_array()
            .unwrap()
            .len(),
        0
    );

    let out = s.run(&["backup", &src_arg, "--json"]);
    assert!(out.status.success());
    let summary = last_json(&out.stdout);
    let new_bytes = summary["newBytes"].as_u64().unwrap();
    assert!(
        new_bytes < 80 << 20,
        "uploads before SIGINT were uploaded again: {new_bytes} new bytes"
    );
    assert_eq!(summary["totalBytes"].as_u64().unwrap(), 96 << 20);
    s.check_clean();
}

#[test]
fn unreadable_files_give_exit_code_8_and_a_snapshot() {
    let s = Setup::new();
    let src = s.root.join("src");
    fs::create_dir_all(src.join("locked-dir")).unwrap();
    fs::write(src.join("readable"), b"ok").unwrap();
    fs::write(src.join("secret"), b"no").unwrap();
    use std::os::unix::fs::PermissionsExt;
    fs::set_permissions(src.join("secret"), fs::Permissions::from_mode(0o000)).unwrap();
    fs::set_permissions(src.join("locked-dir"), fs::Permissions::from_mode(0o000)).unwrap();
    let src_arg = src.display().to_string();
    // Root reads anything: run the agent as nobody where we are root.
    let mut cmd = if unsafe { libc::geteuid() } == 0 {
        for p in [&s.root, &src] {
            fs::set_permissions(p, fs::Permissions::from_mode(0o777)).unwrap();
        }
        Command::new("chmod")
            .args(["-R", "a+rwX", &s.repo])
            .status()
            .unwrap();
        fs::create_dir_all(&s.cache).unwrap();
        Command::new("chmod")
            .args(["-R", "a+rwX", &s.cache.display().to_string()])
            .status()
            .unwrap();
        let mut c = Command::new("setpriv");
        c.args(["--reuid=65534", "--regid=65534", "--clear-groups"])
            .arg(node_agent());
        c.env("CAIRN_REPO", &s.repo)
            .env("CAIRN_PASSWORD", std::str::from_utf8(PASSWORD).unwrap())
            .env("CAIRN_CACHE_DIR", &s.cache);
        c
    } else {
        s.agent(&[])
    };
    let out = cmd.args(["backup", &src_arg, "--json"]).output().unwrap();
    assert_eq!(
        out.status.code(),
        Some(8),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let summary = last_json(&out.stdout);
    let warnings = summary["warnings"].to_string();
    assert!(
        warnings.contains("secret") && warnings.contains("Permission denied"),
        "{warnings}"
    );
    assert!(warnings.contains("locked-dir"), "{warnings}");
    let id = summary["snapshot_id"].as_str().unwrap();
    let ls = ok(s.agent(&["ls", id]));
    assert!(ls.contains("readable") && !ls.contains("secret"), "{ls}");
}

#[test]
fn ls_diff_dump_and_snapshot_filters() {
    let s = Setup::new();
    let src = s.root.join("src");
    fs::create_dir_all(src.join("sub")).unwrap();
    fs::write(src.join("sub/a.txt"), b"alpha").unwrap();
    fs::write(src.join("b.txt"), b"beta").unwrap();
    let src_arg = src.display().to_string();
    let a = ok(s.agent(&["backup", &src_arg, "--tag", "pvc-uid=1", "--host", "node-1"]))
        .trim()
        .to_string();
    fs::write(src.join("b.txt"), b"beta 2").unwrap();
    fs::write(src.join("c.txt"), b"gamma").unwrap();
    let b = ok(s.agent(&["backup", &src_arg, "--tag", "pvc-uid=2", "--host", "node-2"]))
        .trim()
        .to_string();

    let ls = ok(s.agent(&["ls", &format!("{a}:sub")]));
    assert!(
        ls.contains("sub/a.txt") && ls.contains("alpha".len().to_string().as_str()),
        "{ls}"
    );
    let ls_r = json_paths(&ok(s.agent(&["ls", "-r", &b, "--json"])));
    assert_eq!(ls_r, ["b.txt", "c.txt", "sub", "sub/a.txt"]);
    let diff = ok(s.agent(&["diff", &a, &b]));
    assert_eq!(diff.lines().collect::<Vec<_>>(), ["M b.txt", "+ c.txt"]);
    let dump = s.agent(&["dump", &a, "sub/a.txt"]).output().unwrap();
    assert_eq!(dump.stdout, b"alpha");
    let filtered = ok(s.agent(&[
        "snapshots",
        "--json",
        "--tag",
        "pvc-uid=2",
        "--host",
        "node-2",
    ]));
    let v: serde_json::Value = serde_json::from_str(&filtered).unwrap();
    assert_eq!(v.as_array().unwrap().len(), 1);
    assert_eq!(v[0]["id"], b.as_str());
    // A dry run prints the plan and writes nothing.
    let plan = ok(s.agent(&[
        "restore",
        &b,
        &s.root.join("dry").display().to_string(),
        "--dry-run",
    ]));
    assert!(
        plan.contains("create") && plan.contains("sub/a.txt"),
        "{plan}"
    );
    assert!(!s.root.join("dry").exists());
    // The done file for Velero's restore-wait.
    let target = s.root.join("vol");
    ok(s.agent(&[
        "restore",
        &b,
        &target.display().to_string(),
        "--done-file-uid",
        "uid-1",
    ]));
    assert!(target.join(".velero/uid-1").exists());
}
