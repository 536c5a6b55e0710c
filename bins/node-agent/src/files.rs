//! File-tree commands: backup of paths, restore, ls, diff. Each parses nothing and decides
//! nothing: it calls repo-fs and prints.

use cairn_cli::{human, outln, Terminal};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use clap::Args;
use repo_core::tree::{Node, NodeKind};
use repo_fs::{BackupOptions, Counters, ExcludeOptions, Overwrite, ParentChoice, RestoreOptions};

use crate::report::{cancel_on_signals, Mode, Reporter};
use crate::{fail, print_json, CliResult, Global, EXIT_CANCELLED, EXIT_INCOMPLETE, EXIT_WARNINGS};

/// Options of `backup PATH...`.
#[derive(Args)]
pub struct TreeBackupArgs {
    /// Snapshot to compare against (id, prefix, `latest`, or `none`); default: the newest
    /// of the same source, or of the same `--parent-tag` values.
    #[arg(long)]
    pub parent: Option<String>,
    /// Tag key identifying the source when finding the parent (repeatable), e.g.
    /// `--tag pvc-uid=1234 --parent-tag pvc-uid`: found wherever the volume is mounted now.
    #[arg(long = "parent-tag")]
    pub parent_tags: Vec<String>,
    /// Read every file, even those the parent says are unchanged.
    #[arg(long)]
    pub force: bool,
    /// Gitignore-style pattern to leave out, anchored at the backup root (repeatable).
    #[arg(long)]
    pub exclude: Vec<String>,
    /// File of patterns, one per line (repeatable).
    #[arg(long)]
    pub exclude_file: Vec<PathBuf>,
    /// Per-directory ignore file name (gitignore syntax); `""` turns it off.
    #[arg(long, default_value = ".cairnignore")]
    pub ignore_file: String,
    /// Leave out directories holding a file of this name (repeatable), e.g. CACHEDIR.TAG.
    #[arg(long)]
    pub exclude_if_present: Vec<String>,
    /// Leave out files larger than this (e.g. 500M, 2G).
    #[arg(long, value_parser = parse_size)]
    pub exclude_larger_than: Option<u64>,
    /// Stay on the file system of each path.
    #[arg(long, short = 'x')]
    pub one_file_system: bool,
    /// Leave out cache directories (those with a CACHEDIR.TAG holding the standard
    /// signature).
    #[arg(long)]
    pub exclude_caches: bool,
    /// Back up the paths listed in this file too, one per line (`#` comments and blank
    /// lines ignored; repeatable).
    #[arg(long)]
    pub files_from: Vec<PathBuf>,
    /// Stop at the first entry that cannot be read (default: warn and go on).
    #[arg(long)]
    pub fail_fast: bool,
    /// Read and hash everything and say what would be added, but store nothing.
    #[arg(long, short = 'n')]
    pub dry_run: bool,
    /// Packs uploaded at once (default: 1 to a local directory, 3 to object storage). Each
    /// costs up to one pack in memory (16 MiB unless `init --pack-size-mib` said otherwise).
    #[arg(long, value_parser = clap::value_parser!(u16).range(1..=64))]
    pub upload_concurrency: Option<u16>,
    #[command(flatten)]
    pub run: RunArgs,
}

/// How a long command runs and reports.
#[derive(Args)]
pub struct RunArgs {
    /// Entries processed at once (default: CPU count; a restore from object storage uses at
    /// least 16, as it mostly waits on requests).
    #[arg(long)]
    pub threads: Option<usize>,
    /// Seconds between JSON progress lines.
    #[arg(long, default_value_t = 1.0)]
    pub progress_interval: f64,
}

impl RunArgs {
    fn every(&self) -> Duration {
        Duration::from_secs_f64(self.progress_interval.max(0.05))
    }
}

/// `10`, `10K`, `10M`, `10G`, `10T` (powers of 1024).
pub fn parse_size(s: &str) -> Result<u64, String> {
    let s = s.trim();
    let (num, mult) = match s.char_indices().last() {
        Some((i, c)) if c.is_ascii_alphabetic() => {
            let m = match c.to_ascii_uppercase() {
                'K' => 1u64 << 10,
                'M' => 1 << 20,
                'G' => 1 << 30,
                'T' => 1 << 40,
                'B' => 1,
                _ => return Err(format!("{s:?}: unknown unit (use K, M, G or T)")),
            };
            (&s[..i], m)
        }
        _ => (s, 1),
    };
    num.trim()
        .parse::<u64>()
        .map(|n| n.saturating_mul(mult))
        .map_err(|e| format!("{s:?}: {e}"))
}

pub struct Common<'a> {
    pub tags: &'a [String],
    pub source: Option<String>,
    pub host: Option<String>,
    /// RFC 3339 expiry from `--ttl`.
    pub expires: Option<String>,
    /// RFC 3339 time from `--time`.
    pub time: Option<String>,
    /// With `--stdin`: the stream's name.
    pub stdin_name: Option<&'a str>,
}

/// The paths of `--files-from` files: one per line, `#` comments and blank lines ignored.
fn files_from(lists: &[PathBuf]) -> CliResult<Vec<PathBuf>> {
    let mut out = Vec::new();
    for list in lists {
        let text = std::fs::read(list).map_err(|e| {
            fail(
                1,
                format!("cannot read --files-from {}: {e}", list.display()),
            )
        })?;
        for line in text.split(|b| *b == b'\n') {
            let line = line.strip_suffix(b"\r").unwrap_or(line);
            if line.is_empty() || line.starts_with(b"#") {
                continue;
            }
            use std::os::unix::ffi::OsStrExt;
            out.push(PathBuf::from(std::ffi::OsStr::from_bytes(line)));
        }
    }
    Ok(out)
}

/// `backup --stdin`: one stream as the only file of a snapshot.
fn backup_stdin(g: &Global, name: &str, common: Common) -> CliResult {
    let repo = g.open_indexed()?;
    let host = common.host.unwrap_or_else(repo_core::time::hostname);
    let source = common.source.unwrap_or_else(|| name.to_string());
    let mut snapshot =
        repo_core::Snapshot::new(&source, &host, common.tags.to_vec(), Default::default())?;
    snapshot.expires = common.expires;
    if let Some(t) = common.time {
        snapshot.time = t;
    }
    let writer = repo.writer(Default::default())?;
    let stdin = std::io::stdin().lock();
    let (id, snap) = writer.backup_stream(stdin, name, snapshot, &repo_core::NoProgress)?;
    if g.json {
        print_json(&serde_json::json!({"snapshot_id": id.to_string(), "summary": snap.summary}));
    } else {
        outln!("{id}");
    }
    Ok(())
}

pub fn backup(g: &Global, paths: &[PathBuf], common: Common, a: &TreeBackupArgs) -> CliResult {
    if let Some(name) = common.stdin_name {
        return backup_stdin(g, name, common);
    }
    let mut paths = paths.to_vec();
    paths.extend(files_from(&a.files_from)?);
    if paths.is_empty() {
        return Err(fail(
            2,
            "nothing to back up: the --files-from lists are empty",
        ));
    }
    let repo = g.open_indexed()?;
    let cancel = cancel_on_signals();
    let mode = g.progress_mode();
    let opts = BackupOptions {
        source: common.source,
        host: common.host,
        tags: common.tags.to_vec(),
        expires: common.expires,
        parent: match a.parent.as_deref() {
            None => ParentChoice::Auto,
            Some("none") => ParentChoice::None,
            Some(id) => ParentChoice::Given(id.to_string()),
        },
        parent_tags: a.parent_tags.clone(),
        force: a.force,
        exclude: ExcludeOptions {
            patterns: a.exclude.clone(),
            pattern_files: a.exclude_file.clone(),
            ignore_file: (!a.ignore_file.is_empty()).then(|| a.ignore_file.clone()),
            if_present: a.exclude_if_present.clone(),
            larger_than: a.exclude_larger_than,
            one_file_system: a.one_file_system,
            exclude_caches: a.exclude_caches,
        },
        fail_fast: a.fail_fast,
        threads: a.run.threads,
        // Counting ahead only pays when someone watches the total.
        scan: mode != Mode::Quiet,
        cancel,
        dry_run: a.dry_run,
        time: common.time,
        writer: repo_core::WriterOptions {
            upload_concurrency: a.upload_concurrency.map(usize::from),
            ..Default::default()
        },
    };
    let counters = Arc::new(Counters::default());
    let every = a.run.every();
    let reporter = Reporter::start(mode, "backup", counters.clone(), every);
    let result = repo_fs::backup(&repo, &paths, &opts, &counters);
    reporter.stop();
    let out = match result {
        Ok(o) => o,
        Err(repo_core::Error::Cancelled) => {
            return Err(fail(
                EXIT_CANCELLED,
                "backup cancelled; what was uploaded is kept and the next backup will not upload it again",
            ))
        }
        Err(e) => return Err(e.into()),
    };
    let s = &out.snapshot.summary;
    if g.json {
        print_json(&serde_json::json!({
            "event": "summary",
            "snapshot_id": out.id.to_string(),
            "parent": out.parent.map(|p| p.to_string()),
            "totalBytes": s.bytes,
            "bytesDone": s.bytes,
            "newBytes": s.new_bytes,
            "storedBytes": s.stored_bytes,
            "files": s.files,
            "filesNew": s.files_new,
            "filesChanged": s.files_changed,
            "filesUnchanged": s.files_unchanged,
            "dirs": s.dirs,
            "entries": s.entries,
            "dryRun": a.dry_run,
            "warnings": out.warnings.iter().map(|w| w.to_string()).collect::<Vec<_>>(),
            "durationSeconds": s.duration_secs,
        }));
    } else {
        for w in &out.warnings {
            eprintln!(
                "warning: {}: {}",
                Terminal::path(&w.path),
                Terminal::safe(&w.message)
            );
        }
        if !g.quiet {
            let others = s.entries.saturating_sub(s.files + s.dirs);
            let added = if a.dry_run {
                format!(
                    "would add {} (nothing was stored)",
                    human::bytes(s.new_bytes)
                )
            } else {
                format!(
                    "added {} ({} stored)",
                    human::bytes(s.new_bytes),
                    human::bytes(s.stored_bytes)
                )
            };
            eprintln!(
                "{} files ({} new, {} changed, {} unchanged), {} dirs, {others} other entries, {}; {added} in {:.1}s",
                s.files, s.files_new, s.files_changed, s.files_unchanged, s.dirs,
                human::bytes(s.bytes), s.duration_secs
            );
            if g.verbose && s.bytes > 0 {
                eprintln!(
                    "{:.1}% of the content was new; {} new blob(s)",
                    100.0 * s.new_bytes as f64 / s.bytes as f64,
                    s.new_blobs
                );
            }
        }
        if a.dry_run {
            eprintln!("dry run: no snapshot was written");
        } else {
            outln!("{}", out.id);
        }
    }
    if !out.warnings.is_empty() {
        return Err(fail(
            EXIT_WARNINGS,
            format!(
                "snapshot {} written, but {} entr(ies) could not be read (listed above and in the snapshot)",
                out.id.short(),
                out.warnings.len()
            ),
        ));
    }
    Ok(())
}

/// Options of `restore`.
#[derive(Args)]
pub struct RestoreArgs {
    /// SNAPSHOT or SNAPSHOT:SUBPATH (id, prefix or `latest`).
    pub snapshot: String,
    /// Directory to restore into (created if missing).
    pub target: PathBuf,
    /// Only restore entries matching this glob (repeatable); with a `/` it matches the path
    /// from the restore root, without one the name at any depth.
    #[arg(long)]
    pub include: Vec<String>,
    /// Do not restore entries matching this glob (repeatable).
    #[arg(long)]
    pub exclude: Vec<String>,
    /// What to do with existing entries: always, if-changed (size and mtime), never.
    #[arg(long, default_value = "always")]
    pub overwrite: String,
    /// Remove entries in TARGET that the snapshot does not have.
    #[arg(long)]
    pub delete: bool,
    /// Read every restored file back and check it against the snapshot.
    #[arg(long)]
    pub verify: bool,
    /// Print the plan; write nothing.
    #[arg(long)]
    pub dry_run: bool,
    /// After success, create TARGET/.velero/UID (Velero's restore-wait contract).
    #[arg(long)]
    pub done_file_uid: Option<String>,
    #[command(flatten)]
    pub run: RunArgs,
}

/// Splits `SNAPSHOT:SUBPATH`.
fn split_spec(spec: &str) -> (&str, &str) {
    spec.split_once(':').unwrap_or((spec, ""))
}

pub fn restore(g: &Global, a: &RestoreArgs) -> CliResult {
    let repo = g.open_indexed()?;
    let (snap, sub) = split_spec(&a.snapshot);
    let opts = RestoreOptions {
        include: a.include.clone(),
        exclude: a.exclude.clone(),
        overwrite: a.overwrite.parse::<Overwrite>()?,
        delete: a.delete,
        verify: a.verify,
        owners: None,
        dry_run: a.dry_run,
        done_file_uid: a.done_file_uid.clone(),
        threads: a.run.threads,
        cancel: cancel_on_signals(),
    };
    let counters = Arc::new(Counters::default());
    let mode = if a.dry_run {
        Mode::Quiet
    } else {
        g.progress_mode()
    };
    // A dry run prints its plan; -v prints what a real restore does, entry by entry.
    let show_steps = a.dry_run || (g.verbose && !g.json);
    let every = a.run.every();
    let reporter = Reporter::start(mode, "restore", counters.clone(), every);
    let json = g.json;
    let print_step = |s: &repo_fs::Step| {
        if !show_steps {
            return;
        }
        let (what, why) = match &s.action {
            repo_fs::Action::Create => ("create", String::new()),
            repo_fs::Action::Replace => ("replace", String::new()),
            repo_fs::Action::Merge => ("merge", String::new()),
            repo_fs::Action::Skip(r) => ("skip", r.clone()),
            repo_fs::Action::Delete => ("delete", String::new()),
            repo_fs::Action::Link(to) => ("link", to.display().to_string()),
        };
        let kind = s.node.map(kind_name).unwrap_or("-");
        if json {
            print_json(
                &serde_json::json!({"event": "plan", "action": what, "path": s.path.display().to_string(), "type": kind, "detail": why}),
            );
        } else {
            outln!(
                "{what:<8} {kind:<8} {}{}",
                Terminal::path(&s.path),
                if why.is_empty() {
                    String::new()
                } else {
                    format!("  ({})", Terminal::safe(&why))
                }
            );
        }
    };
    let result = repo_fs::restore(&repo, snap, sub, &a.target, &opts, &counters, &print_step);
    reporter.stop();
    let out = match result {
        Ok(o) => o,
        Err(repo_core::Error::Cancelled) => {
            return Err(fail(
                EXIT_CANCELLED,
                "restore cancelled; run it again to finish",
            ))
        }
        Err(e) => return Err(e.into()),
    };
    if json {
        print_json(&serde_json::json!({
            "event": "summary",
            "dryRun": a.dry_run,
            "files": out.files, "dirs": out.dirs, "others": out.others,
            "bytesDone": out.bytes, "totalBytes": out.bytes,
            "skipped": out.skipped, "deleted": out.deleted, "verified": out.verified,
            "notes": out.notes,
            "failures": out.failures.iter().map(|(p, e)| serde_json::json!({"path": p.display().to_string(), "error": e})).collect::<Vec<_>>(),
        }));
    } else {
        for n in out.notes.iter().filter(|_| !g.quiet) {
            eprintln!("note: {n}");
        }
        for (p, e) in &out.failures {
            eprintln!("error: {}: {}", Terminal::path(p), Terminal::safe(e));
        }
        if !a.dry_run && !g.quiet {
            eprintln!(
                "restored {} files, {} dirs, {} other entries, {} into {}; skipped {}, deleted {}{}",
                out.files,
                out.dirs,
                out.others,
                human::bytes(out.bytes),
                Terminal::path(&a.target),
                out.skipped,
                out.deleted,
                if a.verify {
                    format!(", verified {}", out.verified)
                } else {
                    String::new()
                }
            );
        }
    }
    if !out.failures.is_empty() {
        return Err(fail(
            EXIT_INCOMPLETE,
            format!(
                "restore incomplete: {} entr(ies) failed (listed above); fix the cause and run the restore again",
                out.failures.len()
            ),
        ));
    }
    Ok(())
}

pub fn kind_name(n: &Node) -> &'static str {
    match n.kind {
        NodeKind::File => "file",
        NodeKind::Dir => "dir",
        NodeKind::Symlink => "symlink",
        NodeKind::BlockDev => "blockdev",
        NodeKind::CharDev => "chardev",
        NodeKind::Fifo => "fifo",
        NodeKind::Socket => "socket",
    }
}

fn mode_string(n: &Node) -> String {
    let t = match n.kind {
        NodeKind::Dir => 'd',
        NodeKind::Symlink => 'l',
        NodeKind::BlockDev => 'b',
        NodeKind::CharDev => 'c',
        NodeKind::Fifo => 'p',
        NodeKind::Socket => 's',
        NodeKind::File => '-',
    };
    let mut s = String::from(t);
    for shift in [6, 3, 0] {
        let b = (n.mode >> shift) & 7;
        s.push(if b & 4 != 0 { 'r' } else { '-' });
        s.push(if b & 2 != 0 { 'w' } else { '-' });
        s.push(if b & 1 != 0 { 'x' } else { '-' });
    }
    s
}

pub fn ls(g: &Global, spec: &str, recursive: bool) -> CliResult {
    let repo = g.open_indexed()?;
    let (snap, path) = split_spec(spec);
    let json = g.json;
    repo_fs::browse::list(&repo, snap, path, recursive, &mut |p: &Path, n: &Node| {
        if json {
            print_json(&serde_json::json!({
                "path": p.display().to_string(), "type": kind_name(n), "size": n.size,
                "mode": n.mode, "mtime": n.mtime, "uid": n.uid, "gid": n.gid,
                "user": n.user, "group": n.group,
                "link_target": n.link_target.as_ref().map(|t| t.display()),
            }));
        } else {
            let link = n
                .link_target
                .as_ref()
                .map(|t| format!(" -> {}", Terminal::safe_bytes(&t.0)))
                .unwrap_or_default();
            let owner = if n.user.is_empty() {
                n.uid.to_string()
            } else {
                Terminal::safe(&n.user).into_owned()
            };
            let group = if n.group.is_empty() {
                n.gid.to_string()
            } else {
                Terminal::safe(&n.group).into_owned()
            };
            let time = n.mtime.get(..19).unwrap_or(&n.mtime);
            outln!(
                "{} {owner:>8} {group:>8} {:>12} {time} {}{link}",
                mode_string(n),
                n.size,
                Terminal::path(p)
            );
        }
    })?;
    Ok(())
}

pub fn diff(g: &Global, a: &str, b: &str) -> CliResult {
    let repo = g.open_indexed()?;
    let json = g.json;
    let mut n = 0u64;
    repo_fs::browse::diff(&repo, a, b, &mut |p: &Path, c: repo_fs::browse::Change| {
        n += 1;
        if json {
            print_json(
                &serde_json::json!({"path": p.display().to_string(), "change": format!("{c:?}").to_lowercase()}),
            );
        } else {
            outln!("{} {}", c.marker(), Terminal::path(p));
        }
    })?;
    if !json {
        eprintln!("{n} change(s)");
    }
    Ok(())
}
