//! What a backup leaves out: gitignore-style patterns given on the command line or in files,
//! `.cairnignore` files found in the tree, marker files (`--exclude-if-present`), a size
//! limit, and other file systems.
//!
//! Patterns use gitignore syntax everywhere (`*.log`, `/build`, `cache/`, `!keep.log`,
//! `**/tmp`), anchored at the backup root for `--exclude`, at their own directory for
//! `.cairnignore` files. A deeper `.cairnignore` overrides a shallower one, as in git.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use ignore::gitignore::{Gitignore, GitignoreBuilder};
use repo_core::{Error, Result};

/// Options for leaving entries out of a backup.
#[derive(Clone, Debug)]
pub struct ExcludeOptions {
    /// Gitignore-style patterns, anchored at each backup root.
    pub patterns: Vec<String>,
    /// Files holding more patterns, one per line (`#` comments, blank lines ignored).
    pub pattern_files: Vec<PathBuf>,
    /// Name of per-directory ignore files; `None` turns them off.
    pub ignore_file: Option<String>,
    /// A directory holding a file of one of these names is left out (with its contents).
    pub if_present: Vec<String>,
    /// Files larger than this many bytes are left out.
    pub larger_than: Option<u64>,
    /// Do not descend into directories on other file systems than their backup root.
    pub one_file_system: bool,
    /// Leave out cache directories: those holding a `CACHEDIR.TAG` file that starts with
    /// the Cache Directory Tagging Specification's signature (bford.info/cachedir).
    pub exclude_caches: bool,
}

/// The file that marks a cache directory, and the signature it must start with (a file of
/// that name without it does not count, as the specification says).
const CACHEDIR_TAG: &str = "CACHEDIR.TAG";
const CACHEDIR_SIGNATURE: &[u8] = b"Signature: 8a477f597d28d172789f06886806bc55";

impl Default for ExcludeOptions {
    fn default() -> Self {
        ExcludeOptions {
            patterns: Vec::new(),
            pattern_files: Vec::new(),
            ignore_file: Some(".cairnignore".into()),
            if_present: Vec::new(),
            larger_than: None,
            one_file_system: false,
            exclude_caches: false,
        }
    }
}

/// The `.cairnignore` rules in effect in one directory: its own, then its ancestors'.
pub(crate) struct IgnoreLayer {
    rules: Gitignore,
    parent: Option<Arc<IgnoreLayer>>,
}

/// Compiled exclusion rules for one backup root.
pub(crate) struct Excluder {
    opts: ExcludeOptions,
    root_rules: Gitignore,
}

fn pattern_error(what: &str, e: impl std::fmt::Display) -> Error {
    Error::invalid("exclude pattern", format!("{what}: {e}"))
}

impl Excluder {
    pub fn new(opts: &ExcludeOptions, root: &Path) -> Result<Self> {
        let mut b = GitignoreBuilder::new(root);
        for p in &opts.patterns {
            b.add_line(None, p).map_err(|e| pattern_error(p, e))?;
        }
        for file in &opts.pattern_files {
            let text = std::fs::read_to_string(file)
                .map_err(|e| Error::io(format!("reading exclude file {}", file.display()), e))?;
            for line in text.lines() {
                b.add_line(Some(file.clone()), line)
                    .map_err(|e| pattern_error(line, e))?;
            }
        }
        let root_rules = b
            .build()
            .map_err(|e| pattern_error("building patterns", e))?;
        Ok(Excluder {
            opts: opts.clone(),
            root_rules,
        })
    }

    pub fn options(&self) -> &ExcludeOptions {
        &self.opts
    }

    /// The ignore rules for directory `dir`: its ignore file (if any) over `parent`'s.
    /// A malformed ignore file is an error the caller reports as a warning.
    pub fn layer_for(
        &self,
        dir: &Path,
        names: &[Vec<u8>],
        parent: &Option<Arc<IgnoreLayer>>,
    ) -> std::result::Result<Option<Arc<IgnoreLayer>>, String> {
        let Some(file) = &self.opts.ignore_file else {
            return Ok(parent.clone());
        };
        if !names.iter().any(|n| n.as_slice() == file.as_bytes()) {
            return Ok(parent.clone());
        }
        let path = dir.join(file);
        let mut b = GitignoreBuilder::new(dir);
        if let Some(e) = b.add(&path) {
            return Err(format!("{}: {e}", path.display()));
        }
        let rules = b.build().map_err(|e| format!("{}: {e}", path.display()))?;
        Ok(Some(Arc::new(IgnoreLayer {
            rules,
            parent: parent.clone(),
        })))
    }

    /// Whether a pattern leaves `path` out (the deepest rule that matches decides).
    pub fn excluded_by_patterns(
        &self,
        layer: &Option<Arc<IgnoreLayer>>,
        path: &Path,
        is_dir: bool,
    ) -> bool {
        let mut at = layer.as_ref();
        while let Some(l) = at {
            let m = l.rules.matched(path, is_dir);
            if !m.is_none() {
                return m.is_ignore();
            }
            at = l.parent.as_ref();
        }
        self.root_rules.matched(path, is_dir).is_ignore()
    }

    /// Whether a directory holds one of the marker files.
    pub fn has_marker(&self, dir: &Path) -> bool {
        self.opts
            .if_present
            .iter()
            .any(|m| std::fs::symlink_metadata(dir.join(m)).is_ok())
            || (self.opts.exclude_caches && is_cache_dir(dir))
    }
}

/// Whether `dir` holds a `CACHEDIR.TAG` with the specification's signature. Only a regular
/// file counts: the tag is opened without following a symlink and without blocking, so a
/// fifo planted under that name cannot stall the backup.
fn is_cache_dir(dir: &Path) -> bool {
    use std::io::Read;
    use std::os::unix::fs::OpenOptionsExt;
    let opened = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NOFOLLOW | libc::O_NONBLOCK)
        .open(dir.join(CACHEDIR_TAG));
    let Ok(file) = opened else {
        return false;
    };
    if !file.metadata().is_ok_and(|m| m.is_file()) {
        return false;
    }
    let mut start = Vec::with_capacity(CACHEDIR_SIGNATURE.len());
    file.take(CACHEDIR_SIGNATURE.len() as u64)
        .read_to_end(&mut start)
        .is_ok()
        && start == CACHEDIR_SIGNATURE
}
