//! # repo-fs: file trees on a cairn repository
//!
//! Back up directories into a [`repo_core`] repository (in parallel, incrementally against a
//! parent snapshot, with excludes) and restore them (in parallel, sparse-aware, never
//! writing outside the target). Errors are [`repo_core::Error`]s.
//!
//! (example added below)

/// Stack of each worker thread: directories are walked recursively, and Linux paths
/// (4,096 bytes) allow about 2,000 levels.
const WORKER_STACK: usize = 64 * 1024 * 1024;

/// Deepest directory nesting a restore accepts; deeper is a crafted snapshot.
pub const MAX_DEPTH: usize = 4096;

pub mod backup;
pub mod exclude;
pub mod meta;
pub mod progress;
pub mod safe_fs;

pub use backup::{backup, BackupOptions, BackupOutcome, ParentChoice, Warning};
pub use exclude::ExcludeOptions;
pub use progress::{Counters, Counts};
pub mod restore;
pub use restore::{restore, Action, Overwrite, RestoreOptions, RestoreOutcome, Step};
pub mod browse;
