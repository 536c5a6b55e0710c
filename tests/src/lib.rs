//! Helpers shared by the integration tests: repositories with fast KDF settings, test data,
//! the `node-agent` binary, and the S3 test server's address.

pub mod apiserver;
pub mod browser;
pub mod control_plane;

use std::path::PathBuf;
use std::process::Command;

use rand::{Rng, SeedableRng};
use repo_core::storage::DynStorage;
use repo_core::{IndexedRepository, InitOptions, KdfParams, NoProgress, OpenOptions, Repository};

pub const PASSWORD: &[u8] = b"correct horse battery staple";

/// KDF parameters that make tests fast (the defaults cost ~0.25 s per open).
/// The repository of a `filesystem` BackupStorageLocation whose `config.path` is `dir`
/// and bucket `backups`, with the control-plane tests' password ("correct horse").
pub fn location_repo(dir: &std::path::Path) -> Repository {
    let url = dir.join("backups");
    let storage = repo_core::storage::open_url(url.to_str().unwrap(), &Default::default()).unwrap();
    let opts = OpenOptions {
        no_cache: true,
        ..Default::default()
    };
    Repository::open(storage, b"correct horse", opts).unwrap()
}

pub fn fast_kdf() -> KdfParams {
    KdfParams {
        memory_kib: 256,
        iterations: 1,
        parallelism: 1,
    }
}

/// Init options with fast KDF and small chunks and packs, so small inputs make many blobs.
pub fn small_init() -> InitOptions {
    InitOptions {
        chunker: repo_core::ChunkerParams {
            min_size: 16 * 1024,
            avg_size: 64 * 1024,
            max_size: 256 * 1024,
        },
        pack_size: 1024 * 1024,
        kdf: fast_kdf(),
        ..Default::default()
    }
}

/// Tiny chunks (1–16 KiB) and 1 MiB packs: a few hundred kilobytes make hundreds of blobs and
/// several packs (the maintenance tests want many of both).
pub fn tiny_init() -> InitOptions {
    InitOptions {
        chunker: repo_core::ChunkerParams {
            min_size: 1024,
            avg_size: 4096,
            max_size: 16384,
        },
        pack_size: 1024 * 1024,
        kdf: fast_kdf(),
        ..Default::default()
    }
}

pub fn open_opts() -> OpenOptions {
    OpenOptions {
        no_cache: true,
        ..Default::default()
    }
}

/// Creates a repository and returns it indexed.
pub fn init(storage: DynStorage) -> IndexedRepository {
    Repository::init(storage.clone(), PASSWORD, small_init(), open_opts()).expect("init");
    open(storage)
}

pub fn open(storage: DynStorage) -> IndexedRepository {
    Repository::open(storage, PASSWORD, open_opts())
        .expect("open")
        .load_index(&NoProgress)
        .expect("index")
}

/// Backs up `data` as stream `name` in a new snapshot of source `name`.
pub fn backup(
    repo: &IndexedRepository,
    data: &[u8],
    name: &str,
    tags: &[&str],
) -> (repo_core::ObjectId, repo_core::Snapshot) {
    let snap = repo_core::Snapshot::new(
        name,
        "test-host",
        tags.iter().map(|s| s.to_string()).collect(),
        Default::default(),
    )
    .expect("snapshot");
    repo.writer(repo_core::WriterOptions::default())
        .expect("writer")
        .backup_stream(data, name, snap, &NoProgress)
        .expect("backup")
}

/// Asserts `check --read-data` finds nothing wrong, listing the problems if it does.
pub fn assert_clean(repo: &IndexedRepository) {
    let report = repo
        .check(&repo_core::CheckOptions::read_all(), &NoProgress)
        .expect("check");
    assert!(
        report.is_clean(),
        "check found problems: {:?}",
        report.problems
    );
}

/// Asserts stream `name` of snapshot `id` reads back as `data` and the repository checks clean.
pub fn assert_restores(
    repo: &IndexedRepository,
    id: &repo_core::ObjectId,
    name: &str,
    data: &[u8],
) {
    let mut out = Vec::new();
    repo.dump_file(id, name, &mut out).expect("dump");
    assert!(
        out == data,
        "stream {name} of snapshot {id} differs from what was backed up"
    );
    assert_clean(repo);
}

/// Random bytes from a seed.
pub fn random_bytes(len: usize, seed: u64) -> Vec<u8> {
    let mut v = vec![0u8; len];
    rand::rngs::StdRng::seed_from_u64(seed).fill(&mut v[..]);
    v
}

/// Text-like bytes: words from a small vocabulary, compressible like source code.
pub fn text_bytes(len: usize, seed: u64) -> Vec<u8> {
    const WORDS: &[&str] = &[
        "fn",
        "let",
        "mut",
        "self",
        "impl",
        "repository",
        "pack",
        "blob",
        "index",
        "return",
        "Ok(())",
        "match",
        "{",
        "}",
        "=>",
        "snapshot",
        "\n",
        "    ",
        "//",
        "error",
    ];
    let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
    let mut out = Vec::with_capacity(len + 16);
    while out.len() < len {
        out.extend_from_slice(WORDS[rng.gen_range(0..WORDS.len())].as_bytes());
        out.push(b' ');
        if rng.gen_ratio(1, 50) {
            out.extend_from_slice(format!("{}", rng.gen::<u32>()).as_bytes());
        }
    }
    out.truncate(len);
    out
}

/// Path of the `node-agent` binary built next to the test binary.
pub fn node_agent() -> PathBuf {
    let exe = std::env::current_exe().expect("test binary path");
    let dir = exe.parent().and_then(|d| d.parent()).expect("target dir");
    let bin = dir.join("node-agent");
    assert!(
        bin.exists(),
        "{} missing: build it first with `cargo build -p node-agent` (tests/run.sh does)",
        bin.display()
    );
    bin
}

/// A `node-agent` command for `repo` with the test password and fast KDF.
pub fn agent(repo: &str, cache: &std::path::Path) -> Command {
    let mut c = Command::new(node_agent());
    c.env("CAIRN_REPO", repo)
        .env(
            "CAIRN_PASSWORD",
            std::str::from_utf8(PASSWORD).expect("utf8"),
        )
        .env("CAIRN_CACHE_DIR", cache)
        .env_remove("CAIRN_PASSWORD_FILE");
    c
}

/// Arguments that make `init` fast.
pub const FAST_INIT: &[&str] = &[
    "init",
    "--argon2-memory-kib",
    "256",
    "--argon2-iterations",
    "1",
    "--argon2-parallelism",
    "1",
    "--chunk-avg-kib",
    "64",
    "--pack-size-mib",
    "1",
];

/// The S3 test server endpoint, if one is running (tests/run.sh starts moto_server and sets
/// `CAIRN_TEST_S3_ENDPOINT`). When `CAIRN_REQUIRE_S3=1`, a missing server fails the test
/// instead of skipping it, so CI cannot silently skip the S3 tests.
pub fn s3_endpoint() -> Option<String> {
    match std::env::var("CAIRN_TEST_S3_ENDPOINT") {
        Ok(e) if !e.is_empty() => Some(e),
        _ => {
            assert!(
                std::env::var("CAIRN_REQUIRE_S3").as_deref() != Ok("1"),
                "CAIRN_REQUIRE_S3=1 but CAIRN_TEST_S3_ENDPOINT is not set"
            );
            eprintln!("skipping: no S3 test server (run tests/run.sh)");
            None
        }
    }
}

/// The Azurite endpoint, if running (tests/run.sh starts it and sets
/// `CAIRN_TEST_AZURE_ENDPOINT`); with `CAIRN_REQUIRE_AZURE=1` a missing one fails the test.
pub fn azure_endpoint() -> Option<String> {
    match std::env::var("CAIRN_TEST_AZURE_ENDPOINT") {
        Ok(e) if !e.is_empty() => Some(e),
        _ => {
            assert!(
                std::env::var("CAIRN_REQUIRE_AZURE").as_deref() != Ok("1"),
                "CAIRN_REQUIRE_AZURE=1 but CAIRN_TEST_AZURE_ENDPOINT is not set"
            );
            eprintln!("skipping: no Azure emulator (run tests/run.sh)");
            None
        }
    }
}

/// Points object_store's emulator mode at Azurite, creates `container` there (with the Azure
/// SDK from PyPI; cairn itself never creates containers) and returns the repository URL.
pub fn azure_container(endpoint: &str, container: &str) -> String {
    std::env::set_var("AZURE_STORAGE_USE_EMULATOR", "true");
    std::env::set_var("AZURITE_BLOB_STORAGE_URL", endpoint);
    let script = format!(
        "from azure.storage.blob import BlobServiceClient\n\
         cs = 'DefaultEndpointsProtocol=http;AccountName=devstoreaccount1;AccountKey=Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw==;BlobEndpoint={endpoint}/devstoreaccount1;'\n\
         BlobServiceClient.from_connection_string(cs).create_container('{container}')\n"
    );
    let status = Command::new("python3")
        .args(["-c", &script])
        .status()
        .expect("python3");
    assert!(status.success(), "creating container {container}");
    format!("az://{container}/repo")
}

/// Eight threads create the same key at once with different bytes: exactly one wins, the
/// others get `AlreadyExists`, and the stored bytes are the winner's.
pub fn assert_create_only_race(s: &DynStorage) {
    use repo_core::storage::WriteMode;
    for round in 0..5 {
        let key = format!("race/{round}");
        let barrier = std::sync::Arc::new(std::sync::Barrier::new(8));
        let handles: Vec<_> = (0..8u8)
            .map(|i| {
                let (s, key, barrier) = (s.clone(), key.clone(), barrier.clone());
                std::thread::spawn(move || {
                    barrier.wait();
                    s.put(
                        &key,
                        bytes::Bytes::from(vec![i; 1000]).into(),
                        WriteMode::Create,
                    )
                })
            })
            .collect();
        let results: Vec<_> = handles
            .into_iter()
            .map(|h| h.join().expect("thread"))
            .collect();
        let winners: Vec<usize> = results
            .iter()
            .enumerate()
            .filter(|(_, r)| r.is_ok())
            .map(|(i, _)| i)
            .collect();
        assert_eq!(winners.len(), 1, "round {round}: {results:?}");
        assert!(
            results
                .iter()
                .all(|r| r.is_ok() || matches!(r, Err(repo_core::Error::AlreadyExists { .. }))),
            "{results:?}"
        );
        assert_eq!(
            s.get(&key).expect("get").as_ref(),
            &vec![winners[0] as u8; 1000][..]
        );
    }
}

/// Sets the AWS variables for the S3 test server and creates `bucket` there (signed, as
/// SeaweedFS requires; moto takes any key). tests/run.sh runs the S3 tests against moto and
/// again against SeaweedFS, whose identity is `test`/`test` too.
pub fn s3_bucket(endpoint: &str, bucket: &str) -> String {
    std::env::set_var("AWS_ACCESS_KEY_ID", "test");
    std::env::set_var("AWS_SECRET_ACCESS_KEY", "test");
    std::env::set_var("AWS_REGION", "us-east-1");
    std::env::set_var("AWS_ENDPOINT_URL", endpoint);
    std::env::set_var("AWS_ALLOW_HTTP", "true");
    let script = format!(
        "import boto3\n\
         s3 = boto3.client('s3', endpoint_url='{endpoint}', region_name='us-east-1', \
         aws_access_key_id='test', aws_secret_access_key='test')\n\
         if '{bucket}' not in [b['Name'] for b in s3.list_buckets()['Buckets']]: \
         s3.create_bucket(Bucket='{bucket}')\n"
    );
    let status = Command::new("python3")
        .args(["-c", &script])
        .status()
        .expect("python3");
    assert!(status.success(), "creating bucket {bucket}");
    format!("s3://{bucket}/repo")
}

/// What a file-tree comparison looks at for one entry.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct EntryState {
    pub kind: u32,
    pub mode: u32,
    pub uid: u32,
    pub gid: u32,
    pub size: u64,
    /// Modification time in nanoseconds (not for symlinks' targets, for the entry itself).
    pub mtime_ns: i128,
    pub content: Option<blake3::Hash>,
    pub link_target: Option<Vec<u8>>,
    pub xattrs: Vec<(Vec<u8>, Vec<u8>)>,
    /// The first path (in walk order) sharing this entry's inode, for hard links.
    pub same_as: Option<std::path::PathBuf>,
    pub rdev: u64,
}

/// Every entry below `root` (not `root` itself), by relative path, with what a faithful
/// restore must reproduce.
pub fn tree_state(
    root: &std::path::Path,
) -> std::collections::BTreeMap<std::path::PathBuf, EntryState> {
    use std::os::unix::fs::MetadataExt;
    let mut out = std::collections::BTreeMap::new();
    let mut inodes: std::collections::HashMap<u64, std::path::PathBuf> = Default::default();
    let mut stack = vec![root.to_path_buf()];
    let mut paths = Vec::new();
    while let Some(dir) = stack.pop() {
        for e in std::fs::read_dir(&dir).unwrap() {
            let p = e.unwrap().path();
            if std::fs::symlink_metadata(&p).unwrap().is_dir() {
                stack.push(p.clone());
            }
            paths.push(p);
        }
    }
    paths.sort();
    for p in paths {
        let m = std::fs::symlink_metadata(&p).unwrap();
        let rel = p.strip_prefix(root).unwrap().to_path_buf();
        let kind = m.mode() & libc::S_IFMT;
        let same_as = if m.nlink() > 1 && !m.is_dir() {
            let first = inodes.entry(m.ino()).or_insert_with(|| rel.clone()).clone();
            (first != rel).then_some(first)
        } else {
            None
        };
        out.insert(
            rel,
            EntryState {
                kind,
                mode: m.mode() & 0o7777,
                uid: m.uid(),
                gid: m.gid(),
                size: if m.is_file() { m.size() } else { 0 },
                mtime_ns: m.mtime() as i128 * 1_000_000_000 + m.mtime_nsec() as i128,
                content: m
                    .is_file()
                    .then(|| blake3::hash(&std::fs::read(&p).unwrap())),
                link_target: m.file_type().is_symlink().then(|| {
                    use std::os::unix::ffi::OsStrExt;
                    std::fs::read_link(&p)
                        .unwrap()
                        .as_os_str()
                        .as_bytes()
                        .to_vec()
                }),
                xattrs: if m.file_type().is_symlink() {
                    Vec::new()
                } else {
                    xattrs_of(&p)
                },
                same_as,
                rdev: if kind == libc::S_IFCHR || kind == libc::S_IFBLK {
                    m.rdev()
                } else {
                    0
                },
            },
        );
    }
    out
}

/// User extended attributes of a path, sorted.
pub fn xattrs_of(p: &std::path::Path) -> Vec<(Vec<u8>, Vec<u8>)> {
    use std::os::unix::ffi::OsStrExt;
    let c = std::ffi::CString::new(p.as_os_str().as_bytes()).unwrap();
    let mut names = vec![0u8; 4096];
    let n = unsafe { libc::llistxattr(c.as_ptr(), names.as_mut_ptr() as *mut _, names.len()) };
    if n <= 0 {
        return Vec::new();
    }
    let mut out = Vec::new();
    for name in names[..n as usize]
        .split(|b| *b == 0)
        .filter(|n| !n.is_empty())
    {
        let cn = std::ffi::CString::new(name).unwrap();
        let mut v = vec![0u8; 65536];
        let k =
            unsafe { libc::lgetxattr(c.as_ptr(), cn.as_ptr(), v.as_mut_ptr() as *mut _, v.len()) };
        if k >= 0 {
            v.truncate(k as usize);
            out.push((name.to_vec(), v));
        }
    }
    out.sort();
    out
}

/// Sets a user extended attribute.
pub fn set_xattr(p: &std::path::Path, name: &str, value: &[u8]) {
    use std::os::unix::ffi::OsStrExt;
    let c = std::ffi::CString::new(p.as_os_str().as_bytes()).unwrap();
    let n = std::ffi::CString::new(name).unwrap();
    let rc = unsafe {
        libc::lsetxattr(
            c.as_ptr(),
            n.as_ptr(),
            value.as_ptr() as *const _,
            value.len(),
            0,
        )
    };
    assert_eq!(
        rc,
        0,
        "setxattr {}: {}",
        p.display(),
        std::io::Error::last_os_error()
    );
}

/// Sets a path's modification time (not following symlinks), in nanoseconds.
pub fn set_mtime(p: &std::path::Path, secs: i64, nsecs: i64) {
    use std::os::unix::ffi::OsStrExt;
    let c = std::ffi::CString::new(p.as_os_str().as_bytes()).unwrap();
    let t = libc::timespec {
        tv_sec: secs,
        tv_nsec: nsecs,
    };
    let rc = unsafe {
        libc::utimensat(
            libc::AT_FDCWD,
            c.as_ptr(),
            [t, t].as_ptr(),
            libc::AT_SYMLINK_NOFOLLOW,
        )
    };
    assert_eq!(rc, 0);
}

/// A repository in `dir` (fast KDF) and a way to run `cairn-server` on it; `KUBECONFIG`
/// is cleared so a test names its cluster explicitly.
pub fn cairn_server_on(dir: &std::path::Path) -> impl Fn(&[&str]) -> std::process::Output {
    let repo = dir
        .join("repo")
        .to_str()
        .expect("UTF-8 temp path")
        .to_string();
    let out = agent(&repo, &dir.join("cache"))
        .args(FAST_INIT)
        .output()
        .expect("run node-agent");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let bin = node_agent().with_file_name("cairn-server");
    move |args: &[&str]| {
        Command::new(&bin)
            .env("CAIRN_REPO", &repo)
            .env(
                "CAIRN_PASSWORD",
                std::str::from_utf8(PASSWORD).expect("ASCII"),
            )
            .env_remove("KUBECONFIG")
            .args(args)
            .output()
            .expect("run cairn-server")
    }
}

/// The `path` of each JSON line `ls --json` (or `find --json`) printed.
pub fn json_paths(out: &str) -> Vec<String> {
    out.lines()
        .map(|l| {
            let v: serde_json::Value = serde_json::from_str(l).expect("a JSON line");
            v["path"].as_str().expect("a path").to_string()
        })
        .collect()
}

/// Sets its flag when dropped: stops the threads of a test's `serve` loops even when the
/// test fails.
pub struct StopOnDrop<'a>(pub &'a std::sync::atomic::AtomicBool);

impl Drop for StopOnDrop<'_> {
    fn drop(&mut self) {
        self.0.store(true, std::sync::atomic::Ordering::Relaxed);
    }
}

/// Waits up to `secs` for `f` to give something; fails the test naming `what` otherwise.
pub fn eventually<T>(secs: u64, what: &str, f: impl Fn() -> Option<T>) -> T {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(secs);
    loop {
        if let Some(v) = f() {
            return v;
        }
        assert!(std::time::Instant::now() < deadline, "timed out: {what}");
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
}
