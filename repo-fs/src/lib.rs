//! # repo-fs: file trees on a cairn repository
//!
//! Back up directories into a [`repo_core`] repository (in parallel, incrementally against a
//! parent snapshot, with excludes) and restore them (in parallel, sparse-aware, never
//! writing outside the target). Errors are [`repo_core::Error`]s.
//!
//! (example added below)

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
