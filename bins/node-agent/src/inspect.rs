//! Looking across snapshots and labelling them: `stats`, `find`, `tag`. Each calls one
//! library function and prints.

use std::path::Path;

use cairn_cli::{human, outln, Terminal};
use clap::Args;
use repo_core::tree::Node;
use repo_core::{ObjectId, Snapshot, SnapshotFilter};

use crate::{fail, print_json, CliResult, FilterArgs, Global};

/// The snapshots named (ids, prefixes or `latest`), or all that match the filter.
fn chosen(
    repo: &repo_core::Repository,
    ids: &[String],
    filter: &FilterArgs,
) -> CliResult<Vec<(ObjectId, Snapshot)>> {
    if ids.is_empty() {
        let (list, unreadable) = repo.list_snapshots_lenient(&filter.filter())?;
        for (id, e) in &unreadable {
            eprintln!("node-agent: snapshot {id} is unreadable and left out: {e}");
        }
        return Ok(list);
    }
    ids.iter()
        .map(|s| Ok(repo.find_snapshot(s, &filter.filter())?))
        .collect()
}

/// Options of `stats`.
#[derive(Args)]
pub struct StatsArgs {
    /// Snapshots (ids, prefixes or `latest`); default: every snapshot the filter matches.
    pub ids: Vec<String>,
    #[command(flatten)]
    pub filter: FilterArgs,
}

pub fn stats(g: &Global, a: &StatsArgs) -> CliResult {
    let repo = g.open_indexed()?;
    let snapshots = chosen(&repo, &a.ids, &a.filter)?;
    let s = repo_fs::stats::stats(&repo, &snapshots)?;
    if g.json {
        print_json(&serde_json::to_value(&s).expect("serializes"));
        return Ok(());
    }
    outln!("snapshots:          {}", s.snapshots);
    outln!(
        "entries:            {} files, {} dirs, {} others",
        s.files,
        s.dirs,
        s.others
    );
    outln!(
        "restore size:       {} (what restoring all of them writes)",
        human::bytes(s.restore_size)
    );
    outln!(
        "distinct data:      {} in {} chunks",
        human::bytes(s.raw_data),
        s.blobs
    );
    outln!(
        "stored:             {} (compressed and encrypted)",
        human::bytes(s.stored_data)
    );
    outln!("deduplication:      {:.2}x", s.dedup_ratio);
    outln!("compression:        {:.2}x", s.compression_ratio);
    Ok(())
}

/// Options of `find`.
#[derive(Args)]
pub struct FindArgs {
    /// Glob matched against entry names (`*.conf`), or against paths from the snapshot root
    /// when it holds a `/` (`etc/**/passwd`).
    pub pattern: String,
    /// Only in these snapshots (repeatable; default: every snapshot the filter matches).
    #[arg(long = "snapshot", short = 's')]
    pub snapshots: Vec<String>,
    #[command(flatten)]
    pub filter: FilterArgs,
}

pub fn find(g: &Global, a: &FindArgs) -> CliResult {
    let repo = g.open_indexed()?;
    let snapshots = chosen(&repo, &a.snapshots, &a.filter)?;
    let json = g.json;
    let mut found = 0u64;
    repo_fs::browse::find(
        &repo,
        &snapshots,
        &a.pattern,
        &mut |id: &ObjectId, p: &Path, n: &Node| {
            found += 1;
            if json {
                print_json(&serde_json::json!({
                    "snapshot": id.to_string(), "path": p.display().to_string(),
                    "type": crate::files::kind_name(n), "size": n.size, "mtime": n.mtime,
                }));
            } else {
                outln!(
                    "{} {:>10}  {}  {}",
                    id.short(),
                    human::bytes(n.size),
                    human::local_time(&n.mtime),
                    Terminal::path(p)
                );
            }
        },
    )?;
    if !json && !g.quiet {
        eprintln!("{found} match(es) in {} snapshot(s)", snapshots.len());
    }
    Ok(())
}

/// Options of `tag`.
#[derive(Args)]
pub struct TagArgs {
    /// Snapshots to change (ids, prefixes or `latest`); default: every snapshot the filter
    /// matches.
    pub ids: Vec<String>,
    /// Add this tag (repeatable).
    #[arg(long)]
    pub add: Vec<String>,
    /// Remove this tag (repeatable).
    #[arg(long)]
    pub remove: Vec<String>,
    /// Replace all tags with these (repeatable; give it once with "" to clear them).
    #[arg(long)]
    pub set: Vec<String>,
    #[command(flatten)]
    pub filter: FilterArgs,
}

pub fn tag(g: &Global, a: &TagArgs) -> CliResult {
    if a.add.is_empty() && a.remove.is_empty() && a.set.is_empty() {
        return Err(fail(2, "say what to change: --add, --remove or --set"));
    }
    if a.ids.is_empty() && a.filter.is_empty() {
        return Err(fail(
            2,
            "name the snapshots to change, or select them with --tag, --source or --host",
        ));
    }
    let repo = g.open()?;
    let set: Vec<String> = a.set.iter().filter(|t| !t.is_empty()).cloned().collect();
    let set = (!a.set.is_empty()).then_some(set.as_slice());
    // Every change first, then the report: a closed output must not stop it half-way.
    let mut changed = Vec::new();
    for (id, _) in chosen(&repo, &a.ids, &a.filter)? {
        if let Some(new) = repo.retag(&id, &a.add, &a.remove, set)? {
            changed.push((id, new));
        }
    }
    for (old, new) in &changed {
        if g.json {
            print_json(&serde_json::json!({"old": old.to_string(), "new": new.to_string()}));
        } else {
            outln!("{} -> {}", old.short(), new.short());
        }
    }
    if !g.json && !g.quiet {
        eprintln!(
            "{} snapshot(s) changed (a changed snapshot gets a new id)",
            changed.len()
        );
    }
    Ok(())
}

/// `dump`: a file's content, or a directory as a tar stream.
pub fn dump(g: &Global, snapshot: &str, path: &str) -> CliResult {
    use std::io::Write;
    let repo = g.open_indexed()?;
    let (id, snap) = repo.find_snapshot(snapshot, &SnapshotFilter::default())?;
    let is_dir = path.trim_matches('/').is_empty()
        || repo.find_node(&snap.root, path)?.kind == repo_core::tree::NodeKind::Dir;
    let mut out = cairn_cli::Stdout::new();
    if is_dir {
        repo_fs::dump::write_tar(&repo, &id.to_string(), path, &mut out)?;
    } else {
        repo.dump_file(&id, path, &mut out)?;
    }
    let _ = out.flush(); // a failure has ended the program already
    Ok(())
}
