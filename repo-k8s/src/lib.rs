//! cairn's Kubernetes layer: objects read from manifests or a cluster, resource discovery,
//! Velero's backup filters and restore order, backups of objects into a cairn repository
//! (one blob per object), Velero tarballs both ways, and restores into a cluster in phases
//! (feature `cluster`, on by default: the kube-rs adapter and the executor).

pub mod backup;
pub mod backup_actions;
pub mod catalog;
#[cfg(feature = "cluster")]
pub mod cluster;
pub mod control;
pub mod csi;
pub mod data_move;
pub mod discovery;
pub mod error;
#[cfg(feature = "cluster")]
pub mod execute;
pub mod existing;
pub mod filter;
pub mod hooks;
#[cfg(feature = "cluster")]
pub mod informer;
pub mod manifest;
pub mod modifiers;
pub mod object;
pub mod phases;
pub mod podvolumes;
pub mod resource_policy;
pub mod restore;
pub mod restore_filter;
pub mod selector;
pub mod summary;
pub mod tarball;
pub mod velero;
pub mod volume_policy;

pub use discovery::{Discovery, Resource};
pub use error::{Error, Result};
pub use object::{Object, ObjectError};
