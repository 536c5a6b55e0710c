//! `node-agent forget` (the retention part of maintenance): dry runs change nothing, keep
//! rules and TTLs decide, ids remove exactly what they name, and the repository stays clean.

use std::io::Write;
use std::process::{Command, Stdio};

use cairn_tests::*;

fn run(c: &mut Command) -> String {
    let out = c.output().expect("spawn node-agent");
    assert!(
        out.status.success(),
        "{c:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

fn cli_backup(repo: &str, cache: &std::path::Path, data: &[u8], extra: &[&str]) -> String {
    let mut c = agent(repo, cache);
    c.args(["backup", "--stdin", "--stdin-name", "db.sql"])
        .args(extra);
    if !extra.contains(&"--source") {
        c.args(["--source", "db"]);
    }
    c.stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut child = c.spawn().unwrap();
    child.stdin.take().unwrap().write_all(data).unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap().trim().to_string()
}

fn ids(repo: &str, cache: &std::path::Path) -> Vec<String> {
    let list = run(agent(repo, cache).args(["snapshots", "--json"]));
    let v: serde_json::Value = serde_json::from_str(&list).unwrap();
    v.as_array()
        .unwrap()
        .iter()
        .map(|s| s["id"].as_str().unwrap().to_string())
        .collect()
}

#[test]
fn forget_by_policy_ttl_and_id() {
    let t = tempfile::tempdir().unwrap();
    let repo = t.path().join("repo").display().to_string();
    let cache = t.path().join("cache");
    run(agent(&repo, &cache).args(FAST_INIT));
    let a = cli_backup(&repo, &cache, b"one", &[]);
    let b = cli_backup(&repo, &cache, b"two", &[]);
    let c = cli_backup(&repo, &cache, b"three", &["--tag", "release=1"]);
    let d = cli_backup(&repo, &cache, b"four", &[]);
    let expiring = cli_backup(&repo, &cache, b"five", &["--ttl", "1s"]);
    let other = cli_backup(&repo, &cache, b"other", &["--source", "logs"]);
    std::thread::sleep(std::time::Duration::from_millis(1100));

    // A dry run prints decisions with reasons and removes nothing.
    let plan = run(agent(&repo, &cache).args([
        "forget",
        "--keep-last",
        "2",
        "--keep-tag",
        "release=1",
        "--dry-run",
        "--json",
    ]));
    let lines: Vec<serde_json::Value> = plan
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let keep: Vec<&str> = lines
        .iter()
        .filter(|l| l["keep"] == true)
        .map(|l| l["id"].as_str().unwrap())
        .collect();
    assert!(
        keep.contains(&d.as_str()) && keep.contains(&c.as_str()) && keep.contains(&other.as_str()),
        "{plan}"
    );
    assert!(
        !keep.contains(&expiring.as_str()),
        "an expired snapshot was kept: {plan}"
    );
    let ttl = lines.iter().find(|l| l["id"] == expiring.as_str()).unwrap();
    assert!(ttl["reasons"][0].as_str().unwrap().contains("TTL"), "{ttl}");
    assert_eq!(ids(&repo, &cache).len(), 6, "a dry run removed something");

    run(agent(&repo, &cache).args(["forget", "--keep-last", "2", "--keep-tag", "release=1"]));
    let mut left = ids(&repo, &cache);
    left.sort();
    // Source "db": the expired one goes; of the live ones, the two newest (d, c) stay, c
    // also by its tag; b and a go. Source "logs" is its own group.
    let mut want = vec![c.clone(), d.clone(), other.clone()];
    want.sort();
    assert_eq!(left, want);
    assert!(!left.contains(&a) && !left.contains(&b));

    // By id prefix.
    run(agent(&repo, &cache).args(["forget", &c[..12]]));
    assert!(!ids(&repo, &cache).contains(&c));
    let out = agent(&repo, &cache)
        .args(["forget", "ffffffffffff"])
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("no snapshot matches"));

    // The data of the remaining snapshots is intact.
    run(agent(&repo, &cache).args(["check", "--read-data"]));
    let dump = run(agent(&repo, &cache).args(["dump", &d, "db.sql"]));
    assert_eq!(dump, "four");
}

#[test]
fn read_data_subsets_are_deterministic_slices_that_cover_every_pack() {
    use repo_core::check::DataSubset;
    let t = tempfile::tempdir().unwrap();
    let repo_url = t.path().join("repo").display().to_string();
    let storage = repo_core::storage::open_url(&repo_url, &Default::default()).unwrap();
    let repo = init(storage);
    // Many small packs (1 MiB each) of random data.
    backup(&repo, &random_bytes(12 << 20, 9), "big", &[]);
    let read = |subset| {
        repo.check(
            &repo_core::CheckOptions {
                read_data: true,
                subset,
            },
            &repo_core::NoProgress,
        )
        .unwrap()
    };
    let all = read(DataSubset::All);
    assert!(
        all.is_clean() && all.packs_read >= 10,
        "{} packs",
        all.packs_read
    );
    let slices: usize = (1..=3)
        .map(|n| read(DataSubset::Slice { n, of: 3 }).packs_read)
        .sum();
    assert_eq!(
        slices, all.packs_read,
        "three slices read each pack exactly once"
    );
    assert_eq!(read(DataSubset::Percent(100.0)).packs_read, all.packs_read);
    let half = read(DataSubset::Percent(50.0)).packs_read;
    assert_eq!(
        half,
        read(DataSubset::Percent(50.0)).packs_read,
        "not deterministic"
    );
    assert!(DataSubset::parse("0/3").is_err() && DataSubset::parse("101%").is_err());
    assert_eq!(
        DataSubset::parse("2/5").unwrap(),
        DataSubset::Slice { n: 2, of: 5 }
    );

    // A damaged pack is found by the slice that holds it, and only by that one. A data
    // pack (the largest): the pack of the snapshot's tree is read by every slice's walk, so
    // damaging it (whichever the directory listed first) failed all three.
    let data = t.path().join("repo/data");
    let pack = std::fs::read_dir(&data)
        .unwrap()
        .flat_map(|d| std::fs::read_dir(d.unwrap().path()).unwrap())
        .map(|e| e.unwrap().path())
        .max_by_key(|p| (std::fs::metadata(p).unwrap().len(), p.clone()))
        .unwrap();
    let mut bytes = std::fs::read(&pack).unwrap();
    bytes[100] ^= 1;
    std::fs::write(&pack, bytes).unwrap();
    let with_problems = (1..=3)
        .filter(|&n| !read(DataSubset::Slice { n, of: 3 }).is_clean())
        .count();
    assert_eq!(with_problems, 1);
}
