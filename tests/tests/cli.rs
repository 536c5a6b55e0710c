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

/// Writes `yaml` as `dir/manifests/all.yaml` and returns the directory.
fn manifests(dir: &std::path::Path, yaml: &str) -> String {
    let m = dir.join("manifests");
    std::fs::create_dir_all(&m).unwrap();
    std::fs::write(m.join("all.yaml"), yaml).unwrap();
    m.to_str().unwrap().to_string()
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
        // Quietly, with the status of a program killed by SIGPIPE (a command that printed
        // nothing, like `diff` of equal snapshots, succeeds).
        assert!(
            !stderr.contains("panicked") && matches!(out.status.code(), Some(141) | Some(0)),
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
    // With --json, the error is one JSON line scripts can parse.
    let out = agent(typo.to_str().unwrap(), &cache)
        .args(["snapshots", "--json"])
        .output()
        .unwrap();
    let (_, stderr) = text(&out);
    let e: serde_json::Value = serde_json::from_str(stderr.trim()).unwrap();
    assert_eq!(e["exitCode"], 5);
    assert!(
        e["error"].as_str().unwrap().contains("no cairn repository"),
        "{e}"
    );
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
    let names = json_paths(&json);
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
    let dir = &manifests(
        t.path(),
        "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: a, namespace: shop}\ndata: {k: v}\n",
    );
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
        out.status.code() == Some(141) && !stderr.contains("panicked"),
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

/// `cairn-server restore` takes Velero's restore filters (pkg/restore/restore_test.go
/// TestRestoreResourceFiltering, restore_controller_test.go validation) and plans only what
/// they select.
#[test]
fn cairn_server_restore_filters_select_and_validate_as_velero() {
    let t = tempfile::tempdir().unwrap();
    let run = cairn_server_on(t.path());
    let dir = manifests(
        t.path(),
        "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: a, namespace: shop, labels: {app: web}}\n---\n\
         apiVersion: v1\nkind: ConfigMap\nmetadata: {name: b, namespace: shop}\n---\n\
         apiVersion: v1\nkind: Secret\nmetadata: {name: s, namespace: shop}\n---\n\
         apiVersion: v1\nkind: ConfigMap\nmetadata: {name: c, namespace: blog}\n---\n\
         apiVersion: rbac.authorization.k8s.io/v1\nkind: ClusterRole\nmetadata: {name: reader}\n",
    );
    ok(run(&["backup", "day", "--from-dir", &dir]));
    let planned = |args: &[&str]| -> Vec<String> {
        let mut all = vec!["restore", "day", "--dry-run", "--json"];
        all.extend_from_slice(args);
        let v: serde_json::Value = serde_json::from_str(&ok(run(&all))).unwrap();
        let mut names: Vec<String> = v["items"]
            .as_array()
            .unwrap()
            .iter()
            .map(|i| {
                format!(
                    "{} {}/{}",
                    i["resource"].as_str().unwrap(),
                    i["namespace"].as_str().unwrap_or("-"),
                    i["name"].as_str().unwrap()
                )
            })
            .collect();
        names.sort();
        names
    };
    assert_eq!(planned(&[]).len(), 5);
    assert_eq!(
        planned(&["--include-namespaces", "shop", "--include-resources", "cm"]),
        ["configmaps shop/a", "configmaps shop/b"]
    );
    // Only the cluster-scoped role: namespaces filtered out, cluster resources asked for.
    assert_eq!(
        planned(&[
            "--exclude-namespaces",
            "shop,blog",
            "--include-cluster-resources",
            "true"
        ]),
        ["clusterroles.rbac.authorization.k8s.io -/reader"]
    );
    assert_eq!(planned(&["-l", "app=web"]), ["configmaps shop/a"]);
    assert_eq!(
        planned(&[
            "--or-selector",
            "app=web or app=none",
            "--include-namespaces",
            "s*"
        ]),
        ["configmaps shop/a"]
    );
    // Velero's validation, with its words; exit 2.
    let out = run(&[
        "restore",
        "day",
        "--dry-run",
        "--include-resources",
        "nodes",
    ]);
    let (_, stderr) = text(&out);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(
        stderr.contains("nodes are non-restorable resources"),
        "{stderr}"
    );
    let out = run(&["restore", "day", "--dry-run", "--exclude-namespaces", "*"]);
    let (_, stderr) = text(&out);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(
        stderr.contains("excludes list cannot contain '*'"),
        "{stderr}"
    );
}

/// What restic and Kopia users reach for: plain tags, --time, --dry-run, --files-from,
/// --stdin without a name, stats, find, dump of a directory as tar, tag, completions,
/// forget --prune, -q.
#[test]
fn what_restic_users_expect_is_there() {
    let t = tempfile::tempdir().unwrap();
    let repo = t.path().join("repo").to_str().unwrap().to_string();
    let cache = t.path().join("cache");
    let run = |args: &[&str]| agent(&repo, &cache).args(args).output().unwrap();
    ok(run(FAST_INIT));
    let src = t.path().join("src");
    for (name, data) in [
        ("a/notes.txt", &b"notes"[..]),
        ("a/big.bin", &random_bytes(300_000, 9)[..]),
        ("b/readme.txt", b"read me"),
    ] {
        std::fs::create_dir_all(src.join(name).parent().unwrap()).unwrap();
        std::fs::write(src.join(name), data).unwrap();
    }
    let s = src.to_str().unwrap();

    // A dry run stores nothing and says what it would add.
    let out = run(&["backup", s, "--dry-run"]);
    let (stdout, stderr) = text(&out);
    assert!(out.status.success(), "{stderr}");
    assert!(
        stdout.is_empty() && stderr.contains("would add"),
        "{stderr}"
    );
    assert!(ok(run(&["snapshots", "--json"])).trim() == "[]");

    // Plain tags, --time, -q (only the id on stdout, nothing on stderr).
    let out = run(&[
        "backup",
        s,
        "--tag",
        "weekly",
        "--tag",
        "app=shop",
        "--time",
        "2025-01-02 03:04:05",
        "-q",
    ]);
    let (first, stderr) = text(&out);
    assert!(out.status.success() && stderr.is_empty(), "{stderr}");
    let first = first.trim().to_string();
    let list: serde_json::Value =
        serde_json::from_str(&ok(run(&["snapshots", "--json", "--tag", "weekly"]))).unwrap();
    assert_eq!(list[0]["tags"], serde_json::json!(["app=shop", "weekly"]));
    assert!(
        list[0]["time"].as_str().unwrap().starts_with("2025-01-02T"),
        "{list}"
    );

    // --files-from, and a second snapshot of the same data for the stats.
    let listfile = t.path().join("list");
    std::fs::write(&listfile, format!("# what to back up\n{s}\n\n")).unwrap();
    ok(run(&[
        "backup",
        "--files-from",
        listfile.to_str().unwrap(),
        "--source",
        s,
    ]));
    let stats: serde_json::Value = serde_json::from_str(&ok(run(&["stats", "--json"]))).unwrap();
    assert_eq!(stats["snapshots"], 2);
    assert_eq!(stats["files"], 6);
    let raw = stats["raw_data"].as_u64().unwrap();
    assert_eq!(
        stats["restore_size"].as_u64().unwrap(),
        2 * (300_000 + 5 + 7)
    );
    assert!((300_012..2 * 300_012).contains(&raw), "{stats}");
    assert!(stats["dedup_ratio"].as_f64().unwrap() > 1.9, "{stats}");

    // find across snapshots, by name and by path.
    let found = ok(run(&["find", "*.txt"]));
    assert_eq!(found.lines().count(), 4, "{found}");
    let found = ok(run(&["find", "a/**", "--snapshot", &first]));
    assert_eq!(found.lines().count(), 2, "{found}");

    // dump of a directory is a tar stream that tar unpacks.
    let tar_out = t.path().join("untarred");
    std::fs::create_dir_all(&tar_out).unwrap();
    let dump = run(&["dump", &first, "a"]);
    assert!(dump.status.success());
    let mut untar = Command::new("tar")
        .args(["-x", "-C", tar_out.to_str().unwrap()])
        .stdin(Stdio::piped())
        .spawn()
        .unwrap();
    use std::io::Write;
    untar.stdin.take().unwrap().write_all(&dump.stdout).unwrap();
    assert!(untar.wait().unwrap().success());
    assert_eq!(tree_state(&src.join("a")), tree_state(&tar_out));

    // tag changes a snapshot's tags (and so its id).
    let changed = ok(run(&["tag", &first, "--add", "keep", "--remove", "weekly"]));
    assert!(changed.contains("->"), "{changed}");
    let list: serde_json::Value =
        serde_json::from_str(&ok(run(&["snapshots", "--json", "--tag", "keep"]))).unwrap();
    assert_eq!(list[0]["tags"], serde_json::json!(["app=shop", "keep"]));

    // A stream without a name is called `stdin`.
    let mut c = agent(&repo, &cache);
    c.args(["backup", "--stdin", "-q"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped());
    let mut child = c.spawn().unwrap();
    child.stdin.take().unwrap().write_all(b"streamed").unwrap();
    let id = String::from_utf8(child.wait_with_output().unwrap().stdout).unwrap();
    assert_eq!(ok(run(&["dump", id.trim(), "stdin"])), "streamed");

    // Completions for a shell.
    let script = ok(run(&["completion", "bash"]));
    assert!(script.contains("node-agent") && script.contains("--exclude-caches"));

    // forget --prune reclaims at once: the packs that only the forgotten snapshots used go.
    let packs = || walk_count(&t.path().join("repo/data"));
    let before = packs();
    let out = run(&[
        "forget",
        "--keep-last",
        "1",
        "--group-by",
        "",
        "--prune",
        "--json",
    ]);
    let (stdout, stderr) = text(&out);
    assert!(out.status.success(), "{stderr}");
    let last: serde_json::Value = serde_json::from_str(stdout.lines().last().unwrap()).unwrap();
    assert!(last["freedBytes"].as_i64().unwrap() > 0, "{last}");
    assert!(packs() < before, "no pack removed");
    ok(run(&["check", "--read-data"]));
}

/// Files below `dir`.
fn walk_count(dir: &std::path::Path) -> usize {
    let mut n = 0;
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).unwrap() {
            let p = e.unwrap().path();
            if p.is_dir() {
                stack.push(p);
            } else {
                n += 1;
            }
        }
    }
    n
}

/// Velero's opt-in restore modifiers through the CLI, from files in Velero's formats:
/// resource modifiers (internal/resourcemodifiers), change-storage-class and
/// change-image-name (pkg/restore/actions), as their ConfigMap manifests. Bad files are
/// refused before anything is restored, with Velero's wording.
#[test]
fn cairn_server_restore_modifiers_from_velero_config_maps() {
    let t = tempfile::tempdir().unwrap();
    let run = cairn_server_on(t.path());
    let dir = manifests(
        t.path(),
        "apiVersion: apps/v1\nkind: Deployment\nmetadata: {name: web, namespace: shop}\n\
         spec: {replicas: 3, template: {spec: {containers: [{name: web, image: 'old.registry:5000/web:1'}]}}}\n---\n\
         apiVersion: v1\nkind: PersistentVolumeClaim\nmetadata: {name: data, namespace: shop}\nspec: {storageClassName: gp2}\n---\n\
         apiVersion: v1\nkind: ConfigMap\nmetadata: {name: settings, namespace: shop}\ndata: {mode: prod}\n",
    );
    ok(run(&["backup", "day", "--from-dir", &dir]));
    let file = |name: &str, text: &str| {
        let p = t.path().join(name);
        std::fs::write(&p, text).unwrap();
        p.to_str().unwrap().to_string()
    };
    let rules = file(
        "modifiers.yaml",
        "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: mods, namespace: velero}\ndata:\n  rules.yaml: |\n\
         \x20   version: v1\n\
         \x20   resourceModifierRules:\n\
         \x20   - conditions: {groupResource: deployments.apps, namespaces: [shop]}\n\
         \x20     patches: [{operation: replace, path: /spec/replicas, value: \"1\"}]\n\
         \x20   - conditions: {groupResource: configmaps}\n\
         \x20     mergePatches: [{patchData: '{\"data\": {\"mode\": \"dr\"}}'}]\n",
    );
    let classes = file(
        "classes.yaml",
        "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: sc, namespace: velero, labels: {velero.io/plugin-config: '', velero.io/change-storage-class: RestoreItemAction}}\ndata: {gp2: gp3}\n",
    );
    let images = file(
        "images.yaml",
        "registry: 'old.registry:5000 , new.registry:443'\n",
    );
    let out = t.path().join("out");
    ok(run(&[
        "restore",
        "day",
        "--to-dir",
        out.to_str().unwrap(),
        "--resource-modifier-configmap",
        &rules,
        "--change-storage-class",
        &classes,
        "--change-image-name",
        &images,
    ]));
    let restored: Vec<serde_json::Value> = {
        let mut files: Vec<_> = std::fs::read_dir(&out)
            .unwrap()
            .map(|e| e.unwrap().path())
            .collect();
        files.sort();
        files
            .iter()
            .map(|p| serde_json::from_slice(&std::fs::read(p).unwrap()).unwrap())
            .collect()
    };
    let get = |kind: &str| restored.iter().find(|o| o["kind"] == kind).unwrap();
    let web = get("Deployment");
    assert_eq!(web["spec"]["replicas"], 1);
    assert_eq!(
        web["spec"]["template"]["spec"]["containers"][0]["image"],
        "new.registry:443/web:1"
    );
    assert_eq!(
        get("PersistentVolumeClaim")["spec"]["storageClassName"],
        "gp3"
    );
    assert_eq!(get("ConfigMap")["data"]["mode"], "dr");
    // Refused with Velero's wording, exit 2, nothing written.
    let bad = file("bad.yaml", "version: v2\nresourceModifierRules: []\n");
    let out2 = t.path().join("out2");
    let o = run(&[
        "restore",
        "day",
        "--to-dir",
        out2.to_str().unwrap(),
        "--resource-modifier-configmap",
        &bad,
    ]);
    let (_, stderr) = text(&o);
    assert_eq!(o.status.code(), Some(2), "{stderr}");
    assert!(
        stderr.contains("unsupported resource modifier version v2"),
        "{stderr}"
    );
    assert!(!out2.exists());
}

/// Velero's resource policies (internal/resourcepolicies, include/exclude policy) and
/// --ordered-resources through `cairn-server backup`.
#[test]
fn cairn_server_backup_reads_velero_resource_policies() {
    let t = tempfile::tempdir().unwrap();
    let run = cairn_server_on(t.path());
    let dir = manifests(
        t.path(),
        "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: c, namespace: shop}\n---\n\
         apiVersion: v1\nkind: Secret\nmetadata: {name: s, namespace: shop}\n---\n\
         apiVersion: apps/v1\nkind: Deployment\nmetadata: {name: d, namespace: shop}\n",
    );
    let policy = t.path().join("policy.yaml");
    std::fs::write(
        &policy,
        "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: p, namespace: velero}\ndata:\n  policy.yaml: |\n\
         \x20   version: v1\n\
         \x20   includeExcludePolicy:\n\
         \x20     excludedNamespaceScopedResources: [secrets]\n",
    )
    .unwrap();
    let p = policy.to_str().unwrap();
    let out = ok(run(&[
        "backup",
        "day",
        "--from-dir",
        &dir,
        "--resource-policies-configmap",
        p,
        "--ordered-resources",
        "deployments=shop/d,shop/gone",
        "--json",
    ]));
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(
        v["items"], 2,
        "the config map and the deployment, not the secret: {v}"
    );
    assert!(
        v["results"]["warnings"]["namespaces"]["shop"]
            .to_string()
            .contains("Cannot find resource 'shop/gone'."),
        "{v}"
    );
    // Old filters with an include/exclude policy: Velero's refusal.
    let o = run(&[
        "backup",
        "day2",
        "--from-dir",
        &dir,
        "--resource-policies-configmap",
        p,
        "--include-resources",
        "pods",
    ]);
    let (_, stderr) = text(&o);
    assert_eq!(o.status.code(), Some(2), "{stderr}");
    assert!(stderr.contains("old filter parameters"), "{stderr}");
}
