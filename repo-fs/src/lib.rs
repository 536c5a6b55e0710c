//! # repo-fs: file trees on a cairn repository
//!
//! Back up directories into a [`repo_core`] repository (in parallel, incrementally against a
//! parent snapshot, with excludes) and restore them (in parallel, sparse-aware, never
//! writing outside the target). Errors are [`repo_core::Error`]s: an entry that cannot be
//! read is a [`Warning`] in the outcome, not an error.
//!
//! ```
//! use repo_core::{storage, InitOptions, KdfParams, NoProgress, OpenOptions, Repository};
//! use repo_fs::{backup, restore, BackupOptions, Counters, RestoreOptions};
//! # fn main() -> repo_core::Result<()> {
//! let dir = tempfile::tempdir().unwrap();
//! std::fs::create_dir_all(dir.path().join("src/docs")).unwrap();
//! std::fs::write(dir.path().join("src/docs/a.txt"), b"hello").unwrap();
//!
//! let store = storage::open_url("memory://repo-fs-example", &Default::default())?;
//! let init = InitOptions { kdf: KdfParams { memory_kib: 64, iterations: 1, parallelism: 1 }, ..Default::default() };
//! let opts = OpenOptions { no_cache: true, ..Default::default() };
//! Repository::init(store.clone(), b"pw", init, opts.clone())?;
//! let repo = Repository::open(store, b"pw", opts)?.load_index(&NoProgress)?;
//!
//! let progress = Counters::default(); // read it from another thread for a progress bar
//! let done = backup(&repo, &[dir.path().join("src")], &BackupOptions::default(), &progress)?;
//! assert_eq!(done.snapshot.summary.files, 1);
//!
//! let target = dir.path().join("restored");
//! restore(&repo, "latest", "", &target, &RestoreOptions::default(), &Counters::default(), &|_| {})?;
//! assert_eq!(std::fs::read(target.join("docs/a.txt")).unwrap(), b"hello");
//! # Ok(()) }
//! ```

/// Stack of each worker thread: directories are walked recursively, and Linux paths
/// (4,096 bytes) allow about 2,000 levels.
const WORKER_STACK: usize = 64 * 1024 * 1024;

/// Deepest directory nesting a restore accepts; deeper is a crafted snapshot.
pub use repo_core::tree::MAX_DEPTH;

pub mod backup;
pub mod dump;
pub mod exclude;
pub mod meta;
pub mod progress;
pub mod safe_fs;
pub mod stats;

pub use backup::{backup, BackupOptions, BackupOutcome, ParentChoice, Warning};
pub use exclude::ExcludeOptions;
pub use progress::{Counters, Counts};
pub mod restore;
pub use restore::{restore, Action, Overwrite, RestoreOptions, RestoreOutcome, Step};
pub mod browse;
