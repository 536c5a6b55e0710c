//! `forget`: remove snapshots by id or by a keep policy, printing the plan and its reasons.

use cairn_cli::{human, outln, Terminal};
use clap::Args;
use repo_core::forget::{self, GroupBy, KeepPolicy};
use repo_core::ObjectId;

use crate::{fail, print_json, CliResult, FilterArgs, Global};

/// Options of `forget`.
#[derive(Args)]
pub struct ForgetArgs {
    /// Snapshots to remove by id (or unique prefix); with none, the keep policy decides.
    pub ids: Vec<String>,
    /// Keep the N newest snapshots of each group.
    #[arg(long, default_value_t = 0)]
    pub keep_last: u32,
    /// Keep the newest snapshot of each of the N most recent hours that have one.
    #[arg(long, default_value_t = 0)]
    pub keep_hourly: u32,
    /// Keep the newest snapshot of each of the N most recent days that have one.
    #[arg(long, default_value_t = 0)]
    pub keep_daily: u32,
    /// Keep the newest snapshot of each of the N most recent ISO weeks that have one.
    #[arg(long, default_value_t = 0)]
    pub keep_weekly: u32,
    /// Keep the newest snapshot of each of the N most recent months that have one.
    #[arg(long, default_value_t = 0)]
    pub keep_monthly: u32,
    /// Keep the newest snapshot of each of the N most recent years that have one.
    #[arg(long, default_value_t = 0)]
    pub keep_yearly: u32,
    /// Keep everything newer than this before the group's newest snapshot (e.g. 7d, 36h).
    #[arg(long, value_parser = humantime::parse_duration)]
    pub keep_within: Option<std::time::Duration>,
    /// Keep snapshots with this `key=value` tag (repeatable).
    #[arg(long = "keep-tag")]
    pub keep_tags: Vec<String>,
    /// Group by any of host, source, tags (comma-separated).
    #[arg(long, default_value = "source")]
    pub group_by: String,
    /// Only consider snapshots matching these filters.
    #[command(flatten)]
    pub filter: FilterArgs,
    /// Print the plan and remove nothing.
    #[arg(long)]
    pub dry_run: bool,
    /// Then reclaim the space at once (two full maintenance runs: mark, then sweep), for
    /// repositories without the maintenance job. A writer at work meanwhile delays the
    /// sweep to the next maintenance run, as always.
    #[arg(long, visible_alias = "gc")]
    pub prune: bool,
}

pub fn forget(g: &Global, a: &ForgetArgs) -> CliResult {
    let repo = g.open()?;
    let snapshots = repo.list_snapshots(&a.filter.filter())?;
    let now = repo_core::time::unix_seconds(std::time::SystemTime::now());
    let plan = if a.ids.is_empty() {
        let policy = KeepPolicy {
            last: a.keep_last,
            hourly: a.keep_hourly,
            daily: a.keep_daily,
            weekly: a.keep_weekly,
            monthly: a.keep_monthly,
            yearly: a.keep_yearly,
            within: a.keep_within,
            tags: a.keep_tags.clone(),
        };
        forget::plan(snapshots, &policy, GroupBy::parse(&a.group_by)?, now)
    } else {
        by_ids(snapshots, &a.ids)?
    };
    for (group, decisions) in &plan.groups {
        if !g.json {
            outln!("{}:", Terminal::safe(group));
        }
        for d in decisions {
            let action = if d.keep {
                "keep"
            } else if a.dry_run {
                "would remove"
            } else {
                "remove"
            };
            if g.json {
                print_json(&serde_json::json!({
                    "group": group, "id": d.id.to_string(), "time": d.snapshot.time,
                    "keep": d.keep, "reasons": d.reasons,
                }));
            } else {
                outln!(
                    "  {action:<13} {} {}  ({})",
                    d.id.short(),
                    d.snapshot.time,
                    d.reasons.join(", ")
                );
            }
        }
    }
    let removing = plan.removals().count();
    if a.dry_run {
        eprintln!("dry run: {removing} snapshot(s) would be removed");
        return Ok(());
    }
    let n = repo.forget(&plan)?;
    if !a.prune {
        if !g.quiet {
            eprintln!(
                "removed {n} snapshot(s); their data is freed by the next maintenance run that collects garbage (or use --prune)"
            );
        }
        return Ok(());
    }
    let opts = repo_core::maintenance::MaintenanceOptions::default();
    let reports = repo_core::maintenance::collect_now(&repo, &opts, &repo_core::NoProgress)?;
    let freed: i64 = reports.iter().map(|r| r.freed_bytes).sum();
    if g.json {
        print_json(
            &serde_json::json!({"event": "prune", "removed": n, "freedBytes": freed, "runs": reports}),
        );
    } else if !g.quiet {
        for line in reports.iter().flat_map(|r| &r.summary) {
            eprintln!("{line}");
        }
        eprintln!(
            "removed {n} snapshot(s) and freed {}",
            human::bytes(freed.max(0) as u64)
        );
    }
    Ok(())
}

/// A plan removing exactly the snapshots named by `ids` (each an id or unique prefix).
fn by_ids(
    snapshots: Vec<(ObjectId, repo_core::Snapshot)>,
    ids: &[String],
) -> CliResult<forget::ForgetPlan> {
    let mut decisions = Vec::new();
    for want in ids {
        let want_lc = want.to_ascii_lowercase();
        let matching: Vec<_> = snapshots
            .iter()
            .filter(|(id, _)| id.to_hex().starts_with(&want_lc))
            .collect();
        match matching.as_slice() {
            [(id, s)] => decisions.push(forget::Decision {
                id: *id,
                snapshot: s.clone(),
                keep: false,
                reasons: vec!["named on the command line".into()],
            }),
            [] => {
                return Err(fail(
                    1,
                    format!("no snapshot matches {want:?}; see `node-agent snapshots`"),
                ))
            }
            _ => {
                return Err(fail(
                    1,
                    format!(
                        "{want:?} matches {} snapshots; give more characters",
                        matching.len()
                    ),
                ))
            }
        }
    }
    Ok(forget::ForgetPlan {
        groups: vec![("named".into(), decisions)],
    })
}
