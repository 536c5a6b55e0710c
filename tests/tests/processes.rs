//! Real `node-agent` processes: two writers at once, SIGKILL at random moments, exit codes.

use std::io::Write;
use std::process::{Command, Stdio};
use std::time::Duration;

use cairn_tests::*;
use rand::{Rng, SeedableRng};

fn run_ok(mut c: Command) -> String {
    let out = c.output().expect("spawn node-agent");
    assert!(
        out.status.success(),
        "{:?} failed: {}",
        c,
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).expect("utf8")
}

fn backup_file(
    repo: &str,
    cache: &std::path::Path,
    file: &std::path::Path,
    name: &str,
) -> std::process::Child {
    let mut c = agent(repo, cache);
    c.args([
        "backup",
        "--stdin",
        "--stdin-name",
        name,
        "--json",
        "--tag",
        "test=concurrent",
    ])
    .stdin(std::fs::File::open(file).expect("input"))
    .stdout(Stdio::piped())
    .stderr(Stdio::piped());
    c.spawn().expect("spawn")
}

fn dump(repo: &str, cache: &std::path::Path, id: &str, name: &str) -> Vec<u8> {
    let out = agent(repo, cache)
        .args(["dump", id, name])
        .output()
        .expect("dump");
    assert!(
        out.status.success(),
        "dump {id} {name}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    out.stdout
}

fn snapshot_id(out: std::process::Output) -> String {
    assert!(
        out.status.success(),
        "backup failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).expect("JSON");
    v["snapshot_id"].as_str().expect("snapshot_id").to_string()
}

/// Two processes back up overlapping data to one repository at the same time.
pub fn two_writers(repo: &str) {
    let dir = tempfile::tempdir().unwrap();
    let cache = dir.path().join("cache");
    run_ok({
        let mut c = agent(repo, &cache);
        c.args(FAST_INIT);
        c
    });
    let shared = text_bytes(6_000_000, 1);
    let mut a = shared.clone();
    a.extend(random_bytes(3_000_000, 2));
    let mut b = random_bytes(3_000_000, 3);
    b.extend(&shared);
    let (fa, fb) = (dir.path().join("a"), dir.path().join("b"));
    std::fs::write(&fa, &a).unwrap();
    std::fs::write(&fb, &b).unwrap();
    let pa = backup_file(repo, &cache, &fa, "a");
    let pb = backup_file(repo, &cache, &fb, "b");
    let ida = snapshot_id(pa.wait_with_output().unwrap());
    let idb = snapshot_id(pb.wait_with_output().unwrap());
    assert_eq!(dump(repo, &cache, &ida, "a"), a);
    assert_eq!(dump(repo, &cache, &idb, "b"), b);
    run_ok({
        let mut c = agent(repo, &cache);
        c.args(["check", "--read-data"]);
        c
    });
}

#[test]
fn two_concurrent_writers_local() {
    let dir = tempfile::tempdir().unwrap();
    two_writers(dir.path().join("repo").to_str().unwrap());
}

#[test]
fn two_concurrent_writers_s3() {
    let Some(endpoint) = s3_endpoint() else {
        return;
    };
    let url = s3_bucket(&endpoint, "two-writers");
    two_writers(&url);
}

/// SIGKILL `backup --stdin` at random moments, at least 22 times: the repository opens and checks
/// clean each time, the first snapshot dumps byte-identical, and a final backup succeeds.
#[test]
fn sigkill_during_backup() {
    let dir = tempfile::tempdir().unwrap();
    let repo = dir.path().join("repo");
    let repo = repo.to_str().unwrap();
    let cache = dir.path().join("cache");
    run_ok({
        let mut c = agent(repo, &cache);
        c.args(FAST_INIT);
        c
    });
    let first = text_bytes(2_000_000, 7);
    let f0 = dir.path().join("first");
    std::fs::write(&f0, &first).unwrap();
    let id0 = snapshot_id(
        backup_file(repo, &cache, &f0, "first")
            .wait_with_output()
            .unwrap(),
    );
    let mut rng = rand::rngs::StdRng::seed_from_u64(2026);
    let big = dir.path().join("big");
    let mut big_data = text_bytes(20_000_000, 8);
    big_data.extend(random_bytes(20_000_000, 9));
    std::fs::write(&big, &big_data).unwrap();
    // How long a backup of `big` takes once its data is stored (what most runs below do),
    // to spread the kills over a run.
    let backup_time = || {
        let t = std::time::Instant::now();
        snapshot_id(
            backup_file(repo, &cache, &big, "big")
                .wait_with_output()
                .unwrap(),
        );
        t.elapsed()
    };
    backup_time();
    let full = backup_time().max(Duration::from_millis(30));
    let mut killed = 0;
    let mut run = 0;
    while killed < 22 && run < 80 {
        run += 1;
        let mut child = agent(repo, &cache)
            .args(["backup", "--stdin", "--stdin-name", "big"])
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        // Feed the input from a thread so the kill can land while data is still flowing.
        let mut stdin = child.stdin.take().unwrap();
        let data = big_data.clone();
        let feeder = std::thread::spawn(move || {
            let _ = stdin.write_all(&data);
        });
        std::thread::sleep(full.mul_f64(rng.gen_range(0.0..0.8)));
        if child.try_wait().unwrap().is_none() {
            child.kill().unwrap(); // SIGKILL
            killed += 1;
        }
        child.wait().unwrap();
        let _ = feeder.join();
        let out = agent(repo, &cache).args(["check"]).output().unwrap();
        assert!(
            out.status.success(),
            "run {run}: check failed after kill: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        assert_eq!(dump(repo, &cache, &id0, "first"), first, "run {run}");
    }
    assert!(
        killed >= 20,
        "only {killed} of {run} runs were killed mid-backup"
    );
    let id = snapshot_id(
        backup_file(repo, &cache, &big, "big")
            .wait_with_output()
            .unwrap(),
    );
    assert_eq!(dump(repo, &cache, &id, "big"), big_data);
    run_ok({
        let mut c = agent(repo, &cache);
        c.args(["check", "--read-data"]);
        c
    });
}

#[test]
fn exit_codes_and_messages() {
    let dir = tempfile::tempdir().unwrap();
    let repo = dir.path().join("repo");
    let repo = repo.to_str().unwrap();
    let cache = dir.path().join("cache");
    let out = agent(repo, &cache).args(["snapshots"]).output().unwrap();
    assert_eq!(
        out.status.code(),
        Some(5),
        "no repository: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8_lossy(&out.stderr).contains("node-agent init"));
    run_ok({
        let mut c = agent(repo, &cache);
        c.args(FAST_INIT);
        c
    });
    let out = agent(repo, &cache).args(FAST_INIT).output().unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("already exists"));
    let before: Vec<_> = walk(std::path::Path::new(repo));
    let out = agent(repo, &cache)
        .env("CAIRN_PASSWORD", "wrong")
        .args(["backup", "--stdin", "--stdin-name", "x"])
        .stdin(Stdio::null())
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(3));
    assert!(String::from_utf8_lossy(&out.stderr).contains("wrong password"));
    assert_eq!(
        walk(std::path::Path::new(repo)),
        before,
        "a wrong password wrote something"
    );
    // Password from a file; key add and list.
    let pw = dir.path().join("pw");
    std::fs::write(&pw, format!("{}\n", std::str::from_utf8(PASSWORD).unwrap())).unwrap();
    let out = agent(repo, &cache)
        .env_remove("CAIRN_PASSWORD")
        .args([
            "--password-file",
            pw.to_str().unwrap(),
            "key",
            "list",
            "--json",
        ])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let keys: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(keys.as_array().unwrap().len(), 1);
    // check exits 4 on damage and names the object.
    let id = snapshot_id(
        backup_file(repo, &cache, &pw, "pw")
            .wait_with_output()
            .unwrap(),
    );
    let snap = std::path::Path::new(repo).join("snapshots").join(&id);
    let mut b = std::fs::read(&snap).unwrap();
    let n = b.len();
    b[n - 3] ^= 1;
    std::fs::write(&snap, b).unwrap();
    let out = agent(repo, &cache).args(["check"]).output().unwrap();
    assert_eq!(out.status.code(), Some(4));
    assert!(
        String::from_utf8_lossy(&out.stdout).contains(&id),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
}

fn walk(p: &std::path::Path) -> Vec<String> {
    let mut out = Vec::new();
    for e in std::fs::read_dir(p).unwrap() {
        let e = e.unwrap();
        if e.file_type().unwrap().is_dir() {
            out.extend(walk(&e.path()));
        } else {
            out.push(e.path().display().to_string());
        }
    }
    out.sort();
    out
}
