//! The library API end to end on real backends: round trips, dedup, seeking, keys, and
//! damage to every kind of object.

use std::io::{Read, Seek, SeekFrom};

use bytes::Bytes;
use cairn_tests::*;
use repo_core::storage::{self, WriteMode};
use repo_core::{Error, NoProgress, Repository, SnapshotFilter, WriterOptions};

fn dump(repo: &repo_core::IndexedRepository, id: &repo_core::ObjectId, name: &str) -> Vec<u8> {
    let mut out = Vec::new();
    repo.dump_file(id, name, &mut out).unwrap();
    out
}

fn local() -> (tempfile::TempDir, storage::DynStorage) {
    let dir = tempfile::tempdir().unwrap();
    let s = storage::open_url(
        dir.path().join("repo").to_str().unwrap(),
        &Default::default(),
    )
    .unwrap();
    (dir, s)
}

#[test]
fn roundtrip_and_dedup_on_local_and_memory() {
    let (_d, local) = local();
    for s in [
        local,
        storage::open_url("memory://roundtrip", &Default::default()).unwrap(),
    ] {
        let repo = init(s.clone());
        let data = text_bytes(3_000_000, 1);
        let (id, snap) = backup(&repo, &data, "a.txt", &["pvc=x"]);
        assert_eq!(dump(&repo, &id, "a.txt"), data);
        assert!(snap.summary.new_blobs > 10);
        // Same data again: nothing new but the tree (it records the backup time).
        let (id2, snap2) = backup(&repo, &data, "a.txt", &["pvc=x"]);
        assert!(
            snap2.summary.new_blobs <= 1 && snap2.summary.new_bytes < 10_000,
            "{:?}",
            snap2.summary
        );
        assert_eq!(dump(&repo, &id2, "a.txt"), data);
        // Insert bytes in the middle: only chunks around the edit are new.
        let mut edited = data.clone();
        edited.splice(1_500_000..1_500_000, b"an insertion".iter().copied());
        let (id3, snap3) = backup(&repo, &edited, "a.txt", &[]);
        assert!(
            snap3.summary.new_bytes < 600_000,
            "edit re-stored {} bytes",
            snap3.summary.new_bytes
        );
        assert_eq!(dump(&repo, &id3, "a.txt"), edited);
        // Reopen from storage (fresh index) and read again; filter by tag.
        let repo = open(s);
        assert_eq!(dump(&repo, &id, "a.txt"), data);
        let tagged = repo
            .list_snapshots(&SnapshotFilter {
                tags: vec!["pvc=x".into()],
                ..Default::default()
            })
            .unwrap();
        assert_eq!(tagged.len(), 2);
        assert_clean(&repo);
    }
}

#[test]
fn empty_and_tiny_streams() {
    let repo = init(storage::open_url("memory://tiny", &Default::default()).unwrap());
    for data in [&b""[..], b"x", &random_bytes(100, 3)] {
        let (id, snap) = backup(&repo, data, "s", &[]);
        assert_eq!(snap.summary.bytes, data.len() as u64);
        assert_eq!(dump(&repo, &id, "s"), data);
    }
}

#[test]
fn stream_reader_seeks() {
    let repo = init(storage::open_url("memory://seek", &Default::default()).unwrap());
    let data = random_bytes(2_000_000, 5);
    let (id, _) = backup(&repo, &data, "r", &[]);
    let node = repo
        .find_node(&repo.get_snapshot(&id).unwrap().root, "r")
        .unwrap();
    let mut r = repo_core::reader::StreamReader::new(&repo, node.content);
    for &pos in &[0u64, 1, 65_535, 999_999, 1_999_990] {
        r.seek(SeekFrom::Start(pos)).unwrap();
        let mut buf = [0u8; 10];
        let n = r.read(&mut buf).unwrap();
        assert!(n > 0);
        assert_eq!(&buf[..n], &data[pos as usize..pos as usize + n]);
    }
    r.seek(SeekFrom::End(-3)).unwrap();
    let mut rest = Vec::new();
    r.read_to_end(&mut rest).unwrap();
    assert_eq!(rest, &data[data.len() - 3..]);
}

#[test]
fn keys_add_change_remove_without_touching_data() {
    let (_d, s) = local();
    let repo = init(s.clone());
    let (id, _) = backup(&repo, b"payload", "p", &[]);
    let data_before = s.list("data/").unwrap();
    let r = Repository::open(s.clone(), PASSWORD, open_opts()).unwrap();
    let second = r.add_key(b"second", fast_kdf()).unwrap();
    assert_eq!(r.list_keys().unwrap().len(), 2);
    // Both passwords open it.
    let mut r2 = Repository::open(s.clone(), b"second", open_opts()).unwrap();
    assert_eq!(r2.current_key(), second);
    // Cannot remove the key in use, nor by a wrong id.
    assert!(r2.remove_key(&second).is_err());
    r2.change_password(b"third", fast_kdf()).unwrap();
    assert!(matches!(
        Repository::open(s.clone(), b"second", open_opts()),
        Err(Error::WrongPassword { .. })
    ));
    let r3 = Repository::open(s.clone(), b"third", open_opts())
        .unwrap()
        .load_index(&NoProgress)
        .unwrap();
    assert_eq!(dump(&r3, &id, "p"), b"payload");
    // Remove the original password with the new one; the last key cannot go.
    r3.remove_key(&r.current_key()).unwrap();
    assert!(matches!(
        Repository::open(s.clone(), PASSWORD, open_opts()),
        Err(Error::WrongPassword { .. })
    ));
    assert!(r3.remove_key(&r3.current_key()).is_err());
    assert_eq!(
        s.list("data/").unwrap(),
        data_before,
        "key changes must not touch data"
    );
}

#[test]
fn wrong_password_writes_nothing() {
    let (_d, s) = local();
    init(s.clone());
    let before: Vec<_> = s.list("").unwrap().into_iter().map(|i| i.key).collect();
    let err = Repository::open(s.clone(), b"nope", open_opts())
        .err()
        .unwrap();
    assert!(
        matches!(err, Error::WrongPassword { tried: 1, .. }),
        "{err}"
    );
    assert!(err.to_string().contains("CAIRN_PASSWORD"));
    let after: Vec<_> = s.list("").unwrap().into_iter().map(|i| i.key).collect();
    assert_eq!(before, after);
}

#[test]
fn init_refuses_existing_and_open_refuses_missing() {
    let (_d, s) = local();
    assert!(matches!(
        Repository::open(s.clone(), PASSWORD, open_opts()),
        Err(Error::NoRepository { .. })
    ));
    init(s.clone());
    assert!(matches!(
        Repository::init(s.clone(), PASSWORD, small_init(), open_opts()),
        Err(Error::AlreadyInitialized { .. })
    ));
}

/// Flips one byte in, or truncates, each kind of object: every read path reports the object,
/// `check --read-data` lists it, nothing panics.
#[test]
fn damage_to_every_object_kind_is_detected() {
    for kind in ["data/", "index/", "snapshots/", "keys/", "config"] {
        for truncate in [false, true] {
            let (_d, s) = local();
            let repo = init(s.clone());
            let data = text_bytes(500_000, 9);
            let (id, _) = backup(&repo, &data, "f", &[]);
            drop(repo);
            let victim = if kind == "config" {
                kind.to_string()
            } else {
                s.list(kind)
                    .unwrap()
                    .into_iter()
                    .map(|i| i.key)
                    .next()
                    .unwrap()
            };
            let mut bytes = s.get(&victim).unwrap().to_vec();
            if truncate {
                bytes.truncate(bytes.len() - 7);
            } else {
                let at = bytes.len() / 2;
                bytes[at] ^= 0x40;
            }
            s.put(&victim, Bytes::from(bytes).into(), WriteMode::Overwrite)
                .unwrap();
            let what = format!("{victim} truncate={truncate}");
            let opened = Repository::open(s.clone(), PASSWORD, open_opts());
            match kind {
                "keys/" => {
                    // A damaged key file cannot unwrap the key: the password looks wrong, or
                    // the file does not parse; either way an error, never a panic.
                    assert!(opened.is_err(), "{what}");
                    continue;
                }
                "config" => {
                    let e = opened.err().unwrap_or_else(|| panic!("{what} opened"));
                    assert!(e.to_string().contains("config"), "{what}: {e}");
                    continue;
                }
                _ => {}
            }
            let repo = match opened.unwrap().load_index(&NoProgress) {
                Ok(r) => r,
                Err(e) => {
                    assert_eq!(kind, "index/", "{what}: {e}");
                    assert!(e.to_string().contains(&victim), "{what}: {e}");
                    continue;
                }
            };
            let report = repo
                .check(&repo_core::CheckOptions::read_all(), &NoProgress)
                .unwrap();
            assert!(!report.is_clean(), "{what}: check found nothing");
            assert!(
                report.problems.iter().any(|p| p.object == victim),
                "{what}: {:?}",
                report.problems
            );
            let mut out = Vec::new();
            let r = repo.dump_file(&id, "f", &mut out);
            match r {
                // Damage outside the blobs (a pack's header, a stale index copy) may leave
                // the data readable; then it must be exactly right.
                Ok(_) => assert_eq!(out, data, "{what}: dump returned wrong bytes"),
                Err(e) => assert!(
                    e.to_string().contains(&victim[..victim.len().min(20)]),
                    "{what}: {e}"
                ),
            }
            if kind == "snapshots/" || (kind == "data/" && !truncate) {
                assert!(
                    repo.dump_file(&id, "f", &mut Vec::new()).is_err(),
                    "{what}: damaged data read without error"
                );
            }
        }
    }
}

#[test]
fn newer_format_objects_are_refused_clearly() {
    let (_d, s) = local();
    let repo = init(s.clone());
    let (id, _) = backup(&repo, b"x", "x", &[]);
    let key = format!("snapshots/{id}");
    let mut b = s.get(&key).unwrap().to_vec();
    b[6] = 2; // format version 2
    s.put(&key, Bytes::from(b).into(), WriteMode::Overwrite)
        .unwrap();
    let e = repo.get_snapshot(&id).unwrap_err();
    assert!(matches!(
        e,
        Error::Corrupt { .. } | Error::NewerFormat { .. }
    ));
    let snap_bytes = s.get(&key).unwrap();
    let e = repo_core::format::check_header(repo_core::format::Kind::Snapshot, &snap_bytes, &key)
        .unwrap_err();
    assert!(e.to_string().contains("upgrade cairn"), "{e}");
}

#[test]
fn index_cache_is_used_and_rebuilt_when_corrupt() {
    let (dir, s) = local();
    let cache = dir.path().join("cache");
    let opts = repo_core::OpenOptions {
        cache_dir: Some(cache.clone()),
        ..Default::default()
    };
    Repository::init(s.clone(), PASSWORD, small_init(), opts.clone()).unwrap();
    let repo = Repository::open(s.clone(), PASSWORD, opts.clone())
        .unwrap()
        .load_index(&NoProgress)
        .unwrap();
    let data = random_bytes(3_000_000, 11);
    let (id, _) = backup(&repo, &data, "c", &[]);
    drop(repo);
    // Load once to fill the cache, then count storage reads of index files on the next open.
    let repo = Repository::open(s.clone(), PASSWORD, opts.clone())
        .unwrap()
        .load_index(&NoProgress)
        .unwrap();
    drop(repo);
    let counting = std::sync::Arc::new(Counting {
        inner: s.clone(),
        index_gets: Default::default(),
    });
    let repo = Repository::open(counting.clone(), PASSWORD, opts.clone())
        .unwrap()
        .load_index(&NoProgress)
        .unwrap();
    assert_eq!(
        counting
            .index_gets
            .load(std::sync::atomic::Ordering::SeqCst),
        0,
        "index files fetched despite the cache"
    );
    assert_eq!(dump(&repo, &id, "c"), data);
    drop(repo);
    // Corrupt the cache file: it is detected, rebuilt, and results stay right.
    let db = std::fs::read_dir(&cache)
        .unwrap()
        .next()
        .unwrap()
        .unwrap()
        .path()
        .join("index.redb");
    std::fs::write(&db, b"garbage garbage garbage").unwrap();
    let repo = Repository::open(counting.clone(), PASSWORD, opts)
        .unwrap()
        .load_index(&NoProgress)
        .unwrap();
    assert!(
        counting
            .index_gets
            .load(std::sync::atomic::Ordering::SeqCst)
            > 0
    );
    assert_eq!(dump(&repo, &id, "c"), data);
}

struct Counting {
    inner: storage::DynStorage,
    index_gets: std::sync::atomic::AtomicUsize,
}

impl storage::Storage for Counting {
    fn location(&self) -> &str {
        self.inner.location()
    }
    fn put(&self, k: &str, d: storage::Payload, m: WriteMode) -> repo_core::Result<()> {
        self.inner.put(k, d, m)
    }
    fn get(&self, k: &str) -> repo_core::Result<Bytes> {
        if k.starts_with("index/") {
            self.index_gets
                .fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        }
        self.inner.get(k)
    }
    fn get_range(&self, k: &str, r: std::ops::Range<u64>) -> repo_core::Result<Bytes> {
        self.inner.get_range(k, r)
    }
    fn head(&self, k: &str) -> repo_core::Result<storage::ObjectInfo> {
        self.inner.head(k)
    }
    fn list(&self, p: &str) -> repo_core::Result<Vec<storage::ObjectInfo>> {
        self.inner.list(p)
    }
    fn delete(&self, k: &str) -> repo_core::Result<()> {
        self.inner.delete(k)
    }
}

#[test]
fn objects_have_ids_and_seekable_readers() {
    let repo = init(storage::open_url("memory://objects", &Default::default()).unwrap());
    let data = text_bytes(1_500_000, 21);
    let w = repo.writer(WriterOptions::default()).unwrap();
    let id = w.write_object(&data[..], &NoProgress).unwrap();
    assert_eq!(
        w.write_object(&data[..], &NoProgress).unwrap(),
        id,
        "equal streams, equal ids"
    );
    w.flush().unwrap();
    drop(w);
    let mut r = repo.open_object(&id).unwrap();
    assert_eq!(r.len(), data.len() as u64);
    r.seek(SeekFrom::Start(1_000_000)).unwrap();
    let mut tail = Vec::new();
    r.read_to_end(&mut tail).unwrap();
    assert_eq!(tail, &data[1_000_000..]);
}
