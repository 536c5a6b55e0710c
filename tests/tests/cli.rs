//! What a person at a terminal meets: both binaries run as real processes. Closed pipes,
//! mistyped locations, empty passwords, hostile names, reused backup names.

use std::os::unix::ffi::OsStrExt;
use std::process::{Command, Output, Stdio};

use cairn_tests::*;

fn text(out: &Output) -> (String, String) {
    (
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

fn ok(out: Output) -> String {
    let (stdout, stderr) = text(&out);
    assert!(out.status.success(), "failed: {stderr}");
    stdout
}

/// A repository in `dir/repo` with one backup of a tree of 3,000 files.
fn repo_with_a_tree(dir: &std::path::Path) -> String {
    let repo = dir.join("repo").to_str().unwrap().to_string();
    ok(agent(&repo, &dir.join("cache"))
        .args(FAST_INIT)
        .output()
        .unwrap());
    let src = dir.join("src");
    for i in 0..3000 {
        let d = src.join(format!("d{}", i % 30));
        std::fs::create_dir_all(&d).unwrap();
        std::fs::write(d.join(format!("file-{i:05}")), i.to_string()).unwrap();
    }
    ok(agent(&repo, &dir.join("cache"))
        .arg("backup")
        .arg(&src)
        .output()
        .unwrap());
    repo
}

/// Runs `c` with its standard output closed before it writes: the first write fails with
/// EPIPE, as when `head` has read enough.
fn with_closed_stdout(mut c: Command) -> Output {
    let mut child = c
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    drop(child.stdout.take());
    child.wait_with_output().unwrap()
}

#[test]
fn a_closed_pipe_ends_every_printing_command_quietly() {
    let t = tempfile::tempdir().unwrap();
    let repo = repo_with_a_tree(t.path());
    let cache = t.path().join("cache");
    let target = t.path().join("target");
    let commands: Vec<Vec<&str>> = vec![
        vec!["ls", "-r", "latest"],
        vec!["ls", "-r", "latest", "--json"],
        vec!["snapshots"],
        vec!["restore", "latest", target.to_str().unwrap(), "--dry-run"],
        vec!["dump", "latest", "d0/file-00000"],
        vec!["diff", "latest", "latest"],
        vec!["check"],
    ];
    for args in commands {
        let mut c = agent(&repo, &cache);
        c.args(&args);
        let out = with_closed_stdout(c);
        let (_, stderr) = text(&out);
        assert!(
            !stderr.contains("panicked") && out.status.code() == Some(0),
            "node-agent {args:?}: {:?} {stderr}",
            out.status
        );
    }
    assert!(!target.exists(), "a dry run wrote");
}

#[test]
fn a_mistyped_location_is_refused_and_nothing_is_created() {
    let t = tempfile::tempdir().unwrap();
    let cache = t.path().join("cache");
    let typo = t.path().join("typo/repo");
    for args in [&["snapshots"][..], &["check"], &["ls", "latest"]] {
        let out = agent(typo.to_str().unwrap(), &cache)
            .args(args)
            .output()
            .unwrap();
        let (_, stderr) = text(&out);
        assert_eq!(out.status.code(), Some(5), "{args:?}: {stderr}");
        assert!(stderr.contains("no cairn repository"), "{stderr}");
        assert!(
            !t.path().join("typo").exists(),
            "{args:?} created the directory"
        );
    }
    // Another tool's location syntax is not a local directory named `sftp:user@host:`.
    let cwd = tempfile::tempdir().unwrap();
    let out = agent("sftp:user@host:/srv/repo", &cache)
        .current_dir(cwd.path())
        .arg("snapshots")
        .output()
        .unwrap();
    let (_, stderr) = text(&out);
    assert!(!out.status.success());
    assert!(
        stderr.contains("\"sftp\" is not a storage cairn supports") && stderr.contains("s3://"),
        "{stderr}"
    );
    assert_eq!(
        std::fs::read_dir(cwd.path()).unwrap().count(),
        0,
        "something was created"
    );
    // init refuses a directory that holds something else.
    let busy = t.path().join("busy");
    std::fs::create_dir_all(&busy).unwrap();
    std::fs::write(busy.join("notes.txt"), b"mine").unwrap();
    let out = agent(busy.to_str().unwrap(), &cache)
        .args(FAST_INIT)
        .output()
        .unwrap();
    let (_, stderr) = text(&out);
    assert!(!out.status.success());
    assert!(
        stderr.contains("is not empty") && stderr.contains("notes.txt"),
        "{stderr}"
    );
    assert_eq!(std::fs::read_dir(&busy).unwrap().count(), 1);
}

#[test]
fn passwords_come_from_a_command_and_an_empty_one_says_what_to_do() {
    let t = tempfile::tempdir().unwrap();
    let repo = repo_with_a_tree(t.path());
    let cache = t.path().join("cache");
    let out = agent(&repo, &cache)
        .env("CAIRN_PASSWORD", "")
        .arg("snapshots")
        .stdin(Stdio::null())
        .output()
        .unwrap();
    let (_, stderr) = text(&out);
    assert!(!out.status.success());
    assert!(
        stderr.contains("CAIRN_PASSWORD is empty") && stderr.contains("--password-command"),
        "{stderr}"
    );
    assert!(!stderr.contains('…'), "{stderr}");
    let password = std::str::from_utf8(PASSWORD).unwrap();
    ok(agent(&repo, &cache)
        .env_remove("CAIRN_PASSWORD")
        .args(["snapshots", "--password-command"])
        .arg(format!("echo '{password}'"))
        .output()
        .unwrap());
    let out = agent(&repo, &cache)
        .env_remove("CAIRN_PASSWORD")
        .args(["snapshots", "--password-command", "exit 7"])
        .output()
        .unwrap();
    let (_, stderr) = text(&out);
    assert!(
        stderr.contains("--password-command") && stderr.contains("7"),
        "{stderr}"
    );
}

#[test]
fn a_plain_http_endpoint_names_the_flag_that_allows_it_at_once() {
    let t = tempfile::tempdir().unwrap();
    let started = std::time::Instant::now();
    let out = agent("s3://bucket/prefix", &t.path().join("cache"))
        .env_remove("AWS_ALLOW_HTTP")
        .args(["snapshots", "--s3-endpoint", "http://127.0.0.1:9"])
        .output()
        .unwrap();
    let (_, stderr) = text(&out);
    assert!(!out.status.success());
    assert!(stderr.contains("--s3-allow-http"), "{stderr}");
    // Refused before any request, not retried as a network fault (which took 8 s).
    assert!(started.elapsed() < std::time::Duration::from_secs(5));
}

#[test]
fn names_with_control_characters_cannot_drive_the_terminal() {
    let t = tempfile::tempdir().unwrap();
    let repo = t.path().join("repo").to_str().unwrap().to_string();
    let cache = t.path().join("cache");
    ok(agent(&repo, &cache).args(FAST_INIT).output().unwrap());
    let src = t.path().join("src");
    std::fs::create_dir_all(&src).unwrap();
    let evil: &[u8] = b"\x1b]0;PWNED\x07\x1b[2J";
    std::fs::write(src.join(std::ffi::OsStr::from_bytes(evil)), b"x").unwrap();
    std::fs::write(src.join("two\nlines"), b"y").unwrap();
    ok(agent(&repo, &cache)
        .arg("backup")
        .arg(&src)
        .output()
        .unwrap());
    let human = ok(agent(&repo, &cache)
        .args(["ls", "latest"])
        .output()
        .unwrap());
    assert!(
        !human.contains('\x1b') && !human.contains('\x07'),
        "{human:?}"
    );
    assert!(human.contains("\\u{1b}]0;PWNED\\u{7}\\u{1b}[2J"), "{human}");
    assert!(human.contains("two\\nlines"), "{human}");
    assert_eq!(human.lines().count(), 2, "{human}");
    // JSON keeps the names, escaped as JSON escapes them.
    let json = ok(agent(&repo, &cache)
        .args(["ls", "latest", "--json"])
        .output()
        .unwrap());
    let names: Vec<String> = json
        .lines()
        .map(|l| {
            serde_json::from_str::<serde_json::Value>(l).unwrap()["path"]
                .as_str()
                .unwrap()
                .to_string()
        })
        .collect();
    assert!(
        names.contains(&String::from_utf8(evil.to_vec()).unwrap()),
        "{names:?}"
    );
    assert!(names.contains(&"two\nlines".to_string()), "{names:?}");
}

#[test]
fn cairn_server_refuses_a_backup_name_in_use_and_names_every_restore_mode() {
    let t = tempfile::tempdir().unwrap();
    let run = cairn_server_on(t.path());
    let manifests = t.path().join("manifests");
    std::fs::create_dir_all(&manifests).unwrap();
    std::fs::write(
        manifests.join("cm.yaml"),
        "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: a, namespace: shop}\ndata: {k: v}\n",
    )
    .unwrap();
    let dir = manifests.to_str().unwrap();
    ok(run(&["backup", "nightly", "--from-dir", dir]));
    let out = run(&["backup", "nightly", "--from-dir", dir]);
    let (_, stderr) = text(&out);
    assert!(!out.status.success());
    assert!(
        stderr.contains("a backup named \"nightly\" already exists"),
        "{stderr}"
    );
    let listed = ok(run(&["backups", "--json"]));
    let v: serde_json::Value = serde_json::from_str(&listed).unwrap();
    assert_eq!(v.as_array().unwrap().len(), 1, "{listed}");

    let out = run(&["restore", "nightly"]);
    let (_, stderr) = text(&out);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    for mode in ["--to-dir", "--to-cluster", "--dry-run"] {
        assert!(stderr.contains(mode), "{mode} not named: {stderr}");
    }
    // Its output ends quietly on a closed pipe too.
    let bin = node_agent().with_file_name("cairn-server");
    let mut c = Command::new(bin);
    c.env("CAIRN_REPO", t.path().join("repo"))
        .env("CAIRN_PASSWORD", std::str::from_utf8(PASSWORD).unwrap())
        .args(["restore", "nightly", "--dry-run"]);
    let out = with_closed_stdout(c);
    let (_, stderr) = text(&out);
    assert!(
        out.status.success() && !stderr.contains("panicked"),
        "{stderr}"
    );
    // A missing repository names the other binary for what `init` is.
    let out = Command::new(node_agent().with_file_name("cairn-server"))
        .env("CAIRN_REPO", t.path().join("nowhere"))
        .env("CAIRN_PASSWORD", "x")
        .arg("backups")
        .output()
        .unwrap();
    let (_, stderr) = text(&out);
    assert!(
        stderr.contains("node-agent is cairn's repository tool"),
        "{stderr}"
    );
}
