//! cairn's Kubernetes layer: objects read from manifests or a cluster, resource discovery,
//! Velero's backup filters and restore order, and backups of objects into a cairn
//! repository (one blob per object).

pub mod backup;
pub mod cluster;
pub mod discovery;
pub mod execute;
pub mod filter;
pub mod manifest;
pub mod object;
pub mod phases;
pub mod restore;
pub mod selector;
pub mod summary;
pub mod tarball;

pub use discovery::{Discovery, Resource};
pub use object::{Object, ObjectError};
