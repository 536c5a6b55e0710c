//! The one error type of repo-core.
//!
//! Every variant names the object (storage key), blob or field it is about, and its message
//! says what to do. Callers match on [`Error`] variants; binaries map them to exit codes.

use std::fmt;

/// Result alias used throughout repo-core.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// What went wrong, with enough context to act on it.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// No key file in the repository accepts the password.
    #[error("wrong password: none of the {tried} key(s) in {repo} accepts it{}; check CAIRN_PASSWORD, CAIRN_PASSWORD_FILE, --password-file or --password-command", skipped_keys(*damaged, *costly, *newer))]
    WrongPassword {
        repo: String,
        tried: usize,
        /// Key files that could not be read, skipped.
        damaged: usize,
        /// Key files whose argon2 parameters cost more than cairn tries by default.
        costly: usize,
        /// A key file written by a newer cairn was skipped.
        newer: bool,
    },

    /// The repository (or one of its objects) was written by a newer cairn.
    #[error("{object} needs {what}, which this cairn (format {supported}) does not understand; upgrade cairn to read this repository")]
    NewerFormat {
        object: String,
        what: String,
        supported: u16,
    },

    /// Bytes read from storage failed authentication or did not decode.
    #[error("corrupt object {object}{}: {reason}; run `node-agent check --read-data` to list all damage", blob.map(|b| format!(" (blob {b})")).unwrap_or_default())]
    Corrupt {
        object: String,
        blob: Option<crate::BlobId>,
        reason: String,
    },

    /// An object the repository needs is missing.
    #[error("{what} not found: {object}")]
    NotFound { what: &'static str, object: String },

    /// There is no repository at this location.
    #[error(
        "no cairn repository at {repo} (no `config` object): check the location, or create one with `node-agent init` (node-agent is cairn's repository tool, the binary beside cairn-server)"
    )]
    NoRepository { repo: String },

    /// `init` found an existing repository.
    #[error("a repository already exists at {repo}; refusing to overwrite it")]
    AlreadyInitialized { repo: String },

    /// A create-only object already exists with other content.
    #[error("object {object} already exists")]
    AlreadyExists { object: String },

    /// The storage failed (after retries, for transient errors).
    #[error("storage error on {object} at {repo}: {message}{}", if *.transient { " (gave up after retries; check the network and the storage service, then run again)" } else { "" })]
    Storage {
        repo: String,
        object: String,
        message: String,
        transient: bool,
    },

    /// A writer's session lapsed and what it deduplicated against may be gone.
    #[error("session {session} expired while writing and {missing} referenced blob(s) are no longer in the repository (first: {first}); nothing was committed: run the backup again")]
    SessionExpired {
        session: String,
        missing: usize,
        first: crate::BlobId,
    },

    /// Another maintenance run holds the lease.
    #[error("maintenance is already running on {repo}: {holder} on host {host} (pid {pid}) holds the lease since {since}; it expires in {expires_in_secs} s unless renewed. Wait for that run to finish; if its process is gone, the lease expires by itself")]
    MaintenanceBusy {
        repo: String,
        holder: String,
        host: String,
        pid: u32,
        since: String,
        expires_in_secs: u64,
    },

    /// This maintenance run lost its lease (it was suspended past the lease TTL, or its
    /// renewals failed) and stopped before its next destructive step.
    #[error("maintenance lost its lease on {repo} ({reason}); it stopped before deleting anything further. Nothing is lost: run maintenance again")]
    LeaseLost { repo: String, reason: String },

    /// Invalid input from a caller (options, names, URLs, tags).
    #[error("invalid {field}: {reason}")]
    Invalid { field: String, reason: String },

    /// Local I/O (cache, reading input) failed.
    #[error("{context}: {source}")]
    Io {
        context: String,
        #[source]
        source: std::io::Error,
    },

    /// The operation was cancelled by the caller.
    #[error("cancelled")]
    Cancelled,
}

/// The part of a wrong-password message about key files that were not tried.
fn skipped_keys(damaged: usize, costly: usize, newer: bool) -> String {
    let mut parts = Vec::new();
    if damaged > 0 {
        parts.push(format!(
            "{damaged} damaged key file(s) skipped: `node-agent check` names them"
        ));
    }
    if costly > 0 {
        parts.push(format!(
            "{costly} key file(s) whose argon2 parameters cost more than 1 GiB or 10 passes \
             not tried: if yours is one, pass --allow-costly-kdf"
        ));
    }
    if newer {
        parts.push("a key file written by a newer cairn skipped: upgrade cairn".into());
    }
    if parts.is_empty() {
        String::new()
    } else {
        format!(" ({})", parts.join("; "))
    }
}

impl Error {
    pub fn corrupt(object: impl fmt::Display, reason: impl fmt::Display) -> Self {
        Error::Corrupt {
            object: object.to_string(),
            blob: None,
            reason: reason.to_string(),
        }
    }

    pub fn corrupt_blob(
        object: impl fmt::Display,
        blob: crate::BlobId,
        reason: impl fmt::Display,
    ) -> Self {
        Error::Corrupt {
            object: object.to_string(),
            blob: Some(blob),
            reason: reason.to_string(),
        }
    }

    pub fn invalid(field: impl Into<String>, reason: impl fmt::Display) -> Self {
        Error::Invalid {
            field: field.into(),
            reason: reason.to_string(),
        }
    }

    pub fn io(context: impl fmt::Display, source: std::io::Error) -> Self {
        Error::Io {
            context: context.to_string(),
            source,
        }
    }

    /// True when the error is worth retrying (a transient storage failure).
    pub fn is_transient(&self) -> bool {
        matches!(
            self,
            Error::Storage {
                transient: true,
                ..
            }
        )
    }

    /// True when the error means data in the repository is damaged.
    pub fn is_corrupt(&self) -> bool {
        matches!(self, Error::Corrupt { .. })
    }

    /// True when data a snapshot references is damaged or gone (a corrupt blob, a blob no
    /// index lists, a missing pack): the entry that needs it is lost, the rest may not be.
    /// A restore names the entry and goes on.
    pub fn is_data_loss(&self) -> bool {
        match self {
            Error::Corrupt { .. } => true,
            Error::NotFound { what, .. } => matches!(
                *what,
                "blob (not in the index)" | "tree blob (not in the index)" | "pack"
            ),
            _ => false,
        }
    }
}
