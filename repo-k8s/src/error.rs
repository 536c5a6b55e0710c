//! repo-k8s's one error type. Each kind is a variant callers can match on: bad input (every
//! problem found, so one run shows them all), an object that cannot be used, a resource
//! name that does not resolve, the API server, a refused tarball, a backup that does not
//! exist, and the repository underneath.

use crate::discovery::ResolveError;
use crate::object::ObjectError;
use crate::tarball::TarballError;

/// Why a repo-k8s call failed.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// Input that cannot be used as given (filters, selectors, phases, mappings,
    /// modifiers): every problem found, each a sentence naming the value and the fix.
    #[error("{}", .0.join("; "))]
    Invalid(Vec<String>),
    /// An object that cannot be used (malformed, or missing what its kind needs).
    #[error(transparent)]
    Object(#[from] ObjectError),
    /// A resource name that does not resolve to one resource.
    #[error(transparent)]
    Resolve(#[from] ResolveError),
    /// A call to the API server that failed.
    #[error(transparent)]
    Cluster(#[from] ClusterError),
    /// A Velero tarball that was refused.
    #[error(transparent)]
    Tarball(#[from] TarballError),
    /// No backup of this name is in the repository.
    #[error("no backup named {0:?} in the repository; list them with `cairn-server backups`")]
    BackupNotFound(String),
    /// The repository failed (wrong password, storage, damage): its own error, whose kind
    /// says which.
    #[error(transparent)]
    Repository(#[from] repo_core::Error),
    /// The work was cancelled (see [`crate::control::Control`]); nothing was committed.
    #[error("cancelled before it finished; nothing of it was kept")]
    Cancelled,
}

impl Error {
    /// One problem with the input.
    pub fn invalid(problem: impl Into<String>) -> Self {
        Error::Invalid(vec![problem.into()])
    }

    /// The problems of an [`Error::Invalid`] (empty for other kinds).
    pub fn problems(&self) -> &[String] {
        match self {
            Error::Invalid(p) => p,
            _ => &[],
        }
    }
}

/// A repo-k8s result.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Why a call to the API server failed, with what it was about.
#[derive(Debug, thiserror::Error)]
#[error("{what}: {message}")]
pub struct ClusterError {
    /// The call and object, e.g. `creating deployments.apps shop/web`.
    pub what: String,
    pub message: String,
    /// The API server's HTTP code and reason, when it answered.
    pub code: Option<u16>,
    pub reason: String,
    /// The messages of the causes it gave (`details.causes`), for an invalid object.
    pub causes: Vec<String>,
}
