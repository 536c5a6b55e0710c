//! Restoring from object storage: files are filled pack by pack, a wave at a time.
//!
//! The walk plans each directory as usual and does everything but file data at once
//! (directories, symlinks, devices, deletions). Files smaller than [`PARALLEL_FILE`] join
//! the current wave instead of being read one by one; when the wave is full (or the walk
//! ends) their blobs are read pack by pack with [`read_by_pack`], each range once, and each
//! file is created at its first chunk and finished (verified, metadata set) at its last.
//! Directories' metadata waits for the wave holding their files, so a directory whose mode
//! forbids writing still gets its files, and its times are set last.
//!
//! Memory and descriptors: a wave holds one descriptor per directory with waiting files
//! (files are opened only while a chunk is written) and about 90 bytes per chunk; it is
//! filled when either bound is reached, while the walkers wait, so one wave exists at a
//! time.

use std::os::fd::{AsRawFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use repo_core::packread::{read_by_pack, BlobSink};
use repo_core::tree::{ChunkRef, Node, NodeKind};
use repo_core::{Error, Result};

use super::{Action, Restorer, Step, PARALLEL_FILE};
use crate::safe_fs as sfs;

/// Most chunks in one wave: the plan costs about 90 bytes a chunk.
const WAVE_CHUNKS: usize = 256 * 1024;

/// Range requests a wave has in flight, each at most `packread::MAX_RANGE` (8 MiB).
/// Measured restoring the Linux tree from SeaweedFS, 2 cores, 3 runs each. With 20 ms round
/// trips (benches' latency-proxy): 2 requests 2.77–2.92 s at 131 MB, 4 2.37–2.39 s at 153
/// MB, 8 2.57–2.62 s at 188 MB, 16 2.51–2.58 s at 256 MB. On loopback: 4 2.25–2.37 s, 8
/// 2.20–2.25 s. The restore is bound by the CPU here; a store with less bandwidth per
/// connection may want more.
const PACK_READS: usize = 4;

/// Files waiting for their data, and directories waiting for their metadata.
#[derive(Default)]
pub(super) struct Wave {
    files: Vec<Pending>,
    dirs: Vec<DirMeta>,
    chunks: usize,
    /// Directory descriptors held.
    descriptors: usize,
}

/// A file of the wave. It is created when its first chunk arrives, so a file the walk
/// queued but the restore never filled (cancelled) leaves nothing behind.
struct Pending {
    dir: Arc<OwnedFd>,
    name: Vec<u8>,
    /// Something is in the way (a symlink is removed, never followed).
    replace: bool,
    node: Node,
    /// From the restore root.
    path: PathBuf,
    state: Mutex<FileState>,
    /// Chunks still to write: the file is finished when none are left.
    left: AtomicUsize,
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum FileState {
    Waiting,
    Created,
    /// Finished, or given up on.
    Done,
}

/// A directory whose metadata is set once its wave is filled.
struct DirMeta {
    fd: OwnedFd,
    node: Node,
    path: PathBuf,
}

/// Whether a planned step's data is read with the wave: a small or medium file to write.
/// Larger files are read on their own, several ranges at once.
pub(super) fn fills_later(s: &Step) -> bool {
    matches!(s.action, Action::Create | Action::Replace)
        && s.node
            .is_some_and(|n| n.kind == NodeKind::File && n.size < PARALLEL_FILE)
}

/// Most directory descriptors a wave holds: half of what the open-files limit leaves
/// (raised to its hard limit first), at most 16,384.
pub(super) fn wave_dirs() -> usize {
    let mut lim = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit and setrlimit only read and write the struct passed.
    unsafe {
        if libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) == 0 && lim.rlim_cur < lim.rlim_max {
            let raised = libc::rlimit {
                rlim_cur: lim.rlim_max,
                rlim_max: lim.rlim_max,
            };
            if libc::setrlimit(libc::RLIMIT_NOFILE, &raised) == 0 {
                lim = raised;
            }
        }
    }
    (lim.rlim_cur.saturating_sub(256) / 2).clamp(64, 16_384) as usize
}

impl Restorer<'_> {
    /// Puts these file steps of directory `dir` (at `rel`) in the wave. Files with no
    /// stored data (empty, or all holes) are made at once.
    pub(super) fn queue_files(&self, dir: i32, rel: &Path, steps: &[&Step]) -> Result<()> {
        if steps.is_empty() || self.halted() {
            return Ok(());
        }
        let shared = Arc::new(
            sfs::dup_dir(dir).map_err(|e| Error::io(format!("opening {}", rel.display()), e))?,
        );
        let mut files = Vec::with_capacity(steps.len());
        for s in steps {
            (self.visit)(s);
            let node = s.node.expect("file steps have a node");
            let name = s.path.file_name().map(|n| n.as_bytes()).unwrap_or(b"");
            let replace = s.action == Action::Replace;
            let left = node.content.iter().filter(|c| !c.is_hole()).count();
            // Files are created when their first chunk arrives, except those with nothing
            // to read, and all of them when include patterns are given: the walk removes
            // directories it only searched and found empty.
            let mut state = FileState::Waiting;
            if left == 0 || self.include.is_some() {
                let Some(f) = self.create(dir, name, replace, &s.path) else {
                    continue;
                };
                if let Err(e) = f.set_len(node.size) {
                    let _ = sfs::unlink_at(dir, name);
                    self.give_up(&s.path, &Error::io("writing restored file", e));
                    continue;
                }
                if left == 0 {
                    self.finish(&f, node, &s.path);
                    continue;
                }
                state = FileState::Created;
            }
            files.push(Pending {
                dir: shared.clone(),
                name: name.to_vec(),
                replace,
                node: node.clone(),
                path: s.path.clone(),
                state: Mutex::new(state),
                left: AtomicUsize::new(left),
            });
        }
        if files.is_empty() {
            return Ok(());
        }
        let mut wave = self.wave.lock().unwrap_or_else(|e| e.into_inner());
        wave.chunks += files.iter().map(|p| p.node.content.len()).sum::<usize>();
        wave.descriptors += 1;
        wave.files.extend(files);
        self.fill_if_full(&mut wave);
        Ok(())
    }

    /// Sets a directory's metadata after the wave holding its files is filled.
    pub(super) fn dir_meta_later(&self, fd: OwnedFd, node: &Node, path: &Path) {
        let mut wave = self.wave.lock().unwrap_or_else(|e| e.into_inner());
        wave.dirs.push(DirMeta {
            fd,
            node: node.clone(),
            path: path.to_path_buf(),
        });
        wave.descriptors += 1;
        self.fill_if_full(&mut wave);
    }

    /// Fills the wave when it holds as many descriptors or chunks as it may. Under the
    /// wave's lock: walkers wait for the fill, so one wave is open at a time.
    fn fill_if_full(&self, wave: &mut Wave) {
        if wave.descriptors >= self.wave_dirs || wave.chunks >= WAVE_CHUNKS {
            self.fill(std::mem::take(wave));
        }
    }

    /// Fills what is in the wave (at the end of the walk).
    pub(super) fn fill_wave(&self) {
        let wave = std::mem::take(&mut *self.wave.lock().unwrap_or_else(|e| e.into_inner()));
        self.fill(wave);
    }

    /// Reads a wave's data pack by pack (each file finished as its last chunk lands), then
    /// sets its directories' metadata, deepest first as the walk finished them.
    fn fill(&self, wave: Wave) {
        if !wave.files.is_empty() {
            let streams: Vec<&[ChunkRef]> = wave
                .files
                .iter()
                .map(|p| p.node.content.as_slice())
                .collect();
            let sink = WaveSink {
                restorer: self,
                files: &wave.files,
            };
            read_by_pack(self.repo, &streams, PACK_READS, &sink);
            // Stopped early (cancelled, or the disk is full): files begun and not
            // finished go, so none looks restored.
            for p in &wave.files {
                let mut st = p.state.lock().unwrap_or_else(|e| e.into_inner());
                if *st == FileState::Created {
                    let _ = sfs::unlink_at(p.dir.as_raw_fd(), &p.name);
                }
                *st = FileState::Done;
            }
        }
        for d in &wave.dirs {
            self.fd_meta(d.fd.as_raw_fd(), &d.node, &d.path);
        }
    }

    /// Records why a file was not restored. A full disk stops the restore; an error that
    /// is not about this file (storage unreachable after retries) ends it.
    fn give_up(&self, path: &Path, e: &Error) {
        if let Error::Io { source, .. } = e {
            if super::is_disk_full(source) {
                self.stop.store(true, Ordering::Relaxed);
            }
        }
        if !(e.is_data_loss() || matches!(e, Error::Io { .. })) {
            self.stop.store(true, Ordering::Relaxed);
            let mut fatal = self.fatal.lock().unwrap_or_else(|e| e.into_inner());
            if fatal.is_none() {
                *fatal = Some(Error::invalid(
                    "restore",
                    format!("stopped at {}: {e}", path.display()),
                ));
            }
            return;
        }
        self.fail(path, format!("not restored: {e}"));
    }
}

/// Where a wave's blobs go.
struct WaveSink<'a, 'r> {
    restorer: &'a Restorer<'r>,
    files: &'a [Pending],
}

impl WaveSink<'_, '_> {
    /// Opens file `p` for a chunk, creating it (at its size) for the first.
    fn open(&self, p: &Pending) -> Option<std::fs::File> {
        let r = self.restorer;
        let mut st = p.state.lock().unwrap_or_else(|e| e.into_inner());
        let dir = p.dir.as_raw_fd();
        match *st {
            FileState::Done => None,
            FileState::Waiting => {
                let Some(f) = r.create(dir, &p.name, p.replace, &p.path) else {
                    *st = FileState::Done;
                    return None;
                };
                if let Err(e) = f.set_len(p.node.size) {
                    *st = FileState::Done;
                    let _ = sfs::unlink_at(dir, &p.name);
                    r.give_up(&p.path, &Error::io("writing restored file", e));
                    return None;
                }
                *st = FileState::Created;
                Some(f)
            }
            FileState::Created => match sfs::open_file(dir, &p.name) {
                Ok(f) => Some(f),
                Err(e) => {
                    *st = FileState::Done;
                    let _ = sfs::unlink_at(dir, &p.name);
                    r.give_up(&p.path, &Error::io("reopening restored file", e));
                    None
                }
            },
        }
    }

    /// Marks `p` given up on and removes what was written of it.
    fn drop_file(&self, p: &Pending, e: &Error) {
        let mut st = p.state.lock().unwrap_or_else(|e| e.into_inner());
        let was = std::mem::replace(&mut *st, FileState::Done);
        if was == FileState::Done {
            return;
        }
        if was == FileState::Created {
            let _ = sfs::unlink_at(p.dir.as_raw_fd(), &p.name);
        }
        drop(st);
        self.restorer.give_up(&p.path, e);
    }
}

impl BlobSink for WaveSink<'_, '_> {
    fn write(&self, stream: usize, offset: u64, data: &[u8]) {
        let p = &self.files[stream];
        let Some(file) = self.open(p) else { return };
        if let Err(e) = file.write_all_at(data, offset) {
            return self.drop_file(p, &Error::io("writing restored file", e));
        }
        let r = self.restorer;
        r.counters.add(&r.counters.bytes_done, data.len() as u64);
        if p.left.fetch_sub(1, Ordering::AcqRel) == 1 {
            let mut st = p.state.lock().unwrap_or_else(|e| e.into_inner());
            if *st == FileState::Created {
                *st = FileState::Done;
                drop(st);
                r.finish(&file, &p.node, &p.path);
            }
        }
    }

    fn lost(&self, stream: usize, e: &Error) {
        self.drop_file(&self.files[stream], e);
    }

    fn halted(&self) -> bool {
        self.restorer.halted()
    }
}
