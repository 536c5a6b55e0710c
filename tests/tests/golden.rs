//! Golden vectors: bytes committed under tests/golden/ that this cairn must keep reading
//! (a whole small repository) and keep producing (deterministic encodings). A format change
//! fails here. To regenerate deliberately, after bumping the format version:
//! `CAIRN_BLESS=1 cargo test -p cairn-tests --test golden`.

use std::path::{Path, PathBuf};

use repo_core::index::IndexFile;
use repo_core::pack::BlobRecord;
use repo_core::tree::{ByteString, ChunkRef, Name, Node, NodeKind, Tree, Xattr};
use repo_core::{BlobId, MasterKey, NoProgress, ObjectId, OpenOptions, Repository};

const PASSWORD: &[u8] = b"golden";

fn dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("golden")
}

fn bless() -> bool {
    std::env::var("CAIRN_BLESS").as_deref() == Ok("1")
}

/// The stream stored in the golden repository.
fn golden_stream() -> Vec<u8> {
    (0..20_000)
        .flat_map(|i| format!("cairn golden vector line {i}\n").into_bytes())
        .collect()
}

fn check_bytes(name: &str, actual: &[u8]) {
    let path = dir().join(name);
    if bless() {
        std::fs::write(&path, actual).unwrap();
    }
    let expected = std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    assert_eq!(
        actual,
        &expected[..],
        "{name} changed: the on-disk format drifted"
    );
}

#[test]
fn golden_repository_still_reads() {
    let repo_dir = dir().join("repo");
    if bless() {
        let _ = std::fs::remove_dir_all(&repo_dir);
        let s =
            repo_core::storage::open_url(repo_dir.to_str().unwrap(), &Default::default()).unwrap();
        let init = repo_core::InitOptions {
            chunker: repo_core::ChunkerParams {
                min_size: 4096,
                avg_size: 16384,
                max_size: 65536,
            },
            pack_size: 1024 * 1024,
            kdf: repo_core::KdfParams {
                memory_kib: 256,
                iterations: 1,
                parallelism: 1,
            },
            ..Default::default()
        };
        let opts = OpenOptions {
            no_cache: true,
            ..Default::default()
        };
        let repo = Repository::init(s, PASSWORD, init, opts)
            .unwrap()
            .load_index(&NoProgress)
            .unwrap();
        let snap = repo_core::Snapshot::new(
            "golden.txt",
            "golden-host",
            vec!["kind=golden".into()],
            Default::default(),
        )
        .unwrap();
        repo.writer(Default::default())
            .unwrap()
            .backup_stream(&golden_stream()[..], "golden.txt", snap, &NoProgress)
            .unwrap();
    }
    // Open a copy, so nothing (not even a cache) touches the committed files.
    let tmp = tempfile::tempdir().unwrap();
    copy_dir(&repo_dir, tmp.path());
    let s =
        repo_core::storage::open_url(tmp.path().to_str().unwrap(), &Default::default()).unwrap();
    let repo = Repository::open(
        s,
        PASSWORD,
        OpenOptions {
            no_cache: true,
            ..Default::default()
        },
    )
    .unwrap()
    .load_index(&NoProgress)
    .unwrap();
    let snaps = repo.list_snapshots(&Default::default()).unwrap();
    assert_eq!(snaps.len(), 1);
    let (id, snap) = &snaps[0];
    assert_eq!(snap.tags, vec!["kind=golden".to_string()]);
    let mut out = Vec::new();
    repo.dump_file(id, "golden.txt", &mut out).unwrap();
    assert_eq!(out, golden_stream());
    assert!(repo
        .check(&repo_core::CheckOptions::read_all(), &NoProgress)
        .unwrap()
        .is_clean());
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for e in std::fs::read_dir(from).unwrap() {
        let e = e.unwrap();
        let target = to.join(e.file_name());
        if e.file_type().unwrap().is_dir() {
            copy_dir(&e.path(), &target);
        } else {
            std::fs::copy(e.path(), target).unwrap();
        }
    }
}

#[test]
fn deterministic_encodings_are_pinned() {
    let key = MasterKey::from_secret([1; 32]);
    let id = key.blob_id(b"cairn");
    check_bytes("blob-id.txt", format!("{id}\n").as_bytes());
    check_bytes(
        "chunker-seed.txt",
        format!("{}\n", key.chunker_seed()).as_bytes(),
    );

    let tree = Tree {
        nodes: vec![
            Node {
                name: Name(b"a.txt".to_vec()),
                kind: NodeKind::File,
                size: 5,
                mode: 0o644,
                mtime: "2026-11-21T00:00:00Z".into(),
                content: vec![ChunkRef(id, 5)],
                subtree: None,
                ..Default::default()
            },
            Node {
                name: Name(vec![0xff, 0xfe]),
                kind: NodeKind::Dir,
                size: 0,
                mode: 0o755,
                mtime: String::new(),
                content: vec![],
                subtree: Some(BlobId([2; 32])),
                ..Default::default()
            },
        ],
        ..Default::default()
    };
    check_bytes("tree.json", &tree.encode());

    // The file-tree fields (issue 3): owners, times, hardlink identity, xattrs, holes, and
    // the non-file kinds; plus a split directory.
    let full = Tree {
        nodes: vec![
            Node {
                name: Name(b"sparse".to_vec()),
                kind: NodeKind::File,
                size: 4101,
                mode: 0o4755,
                mtime: "2026-11-21T00:00:00.123456789Z".into(),
                ctime: "2026-11-21T00:00:01Z".into(),
                uid: 1000,
                gid: 100,
                user: "alice".into(),
                group: "users".into(),
                inode: 42,
                device: 2049,
                links: 2,
                xattrs: vec![Xattr {
                    name: ByteString(b"user.note".to_vec()),
                    value: ByteString(vec![0xff, 0]),
                }],
                content: vec![ChunkRef(id, 5), ChunkRef::hole(4096)],
                ..Default::default()
            },
            Node {
                name: Name(b"tty".to_vec()),
                kind: NodeKind::CharDev,
                rdev: 0x0501,
                ..Default::default()
            },
            Node {
                name: Name(b"z-link".to_vec()),
                kind: NodeKind::Symlink,
                link_target: Some(ByteString(b"../a.txt".to_vec())),
                ..Default::default()
            },
        ],
        ..Default::default()
    };
    check_bytes("tree-full.json", &full.encode());
    let split = Tree {
        nodes: vec![],
        parts: vec![BlobId([4; 32]), BlobId([5; 32])],
    };
    check_bytes("tree-split.json", &split.encode());

    let index = IndexFile {
        supersedes: vec![ObjectId([9; 32])],
        packs: vec![(
            ObjectId([3; 32]),
            vec![BlobRecord {
                id,
                kind: repo_core::blob::BlobKind::Data,
                offset: 0,
                stored_len: 46,
                raw_len: 5,
            }],
        )],
    };
    check_bytes("index-payload.bin", &index.encode_payload());

    // A sealed unit made once must keep opening (salt is random, so only reading is pinned).
    let unit_path = dir().join("sealed-unit.bin");
    if bless() {
        std::fs::write(
            &unit_path,
            repo_core::crypto::seal(&[5; 32], b"cairn golden", b"sealed golden plaintext"),
        )
        .unwrap();
    }
    let unit = std::fs::read(&unit_path).unwrap();
    assert_eq!(
        repo_core::crypto::open(&[5; 32], b"cairn golden", &unit).unwrap(),
        b"sealed golden plaintext"
    );
}
