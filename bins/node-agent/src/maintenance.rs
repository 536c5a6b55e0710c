//! `maintenance run|status` and `repair index|snapshots`: thin wrappers over
//! `repo_core::maintenance`, plus the Prometheus metrics file for the maintenance job.

use cairn_cli::{out, outln};
use std::path::{Path, PathBuf};
use std::time::Duration;

use clap::{Args, Subcommand, ValueEnum};
use repo_core::maintenance::{
    self, human_bytes, repair, MaintenanceOptions, Mode, Outcome, EAGER_GC, FAST_GC, NORMAL_GC,
};
use repo_core::{Error, NoProgress};

use crate::{fail, print_json, CliResult, Global};

/// Another maintenance run holds the lease.
pub const EXIT_BUSY: u8 = 10;

#[derive(Subcommand)]
pub enum MaintenanceCommand {
    /// Run maintenance: quick (index compaction, expired sessions) or full (also garbage
    /// collection, when due).
    Run(RunArgs),
    /// Explain the pending GC plan, what it waits for, the last runs and repository size.
    Status(TuningArgs),
}

#[derive(Subcommand)]
pub enum RepairCommand {
    /// Rebuild the index from the pack headers (new index files first, then the old ones
    /// are removed).
    Index {
        /// Report what would change, write nothing.
        #[arg(long)]
        dry_run: bool,
    },
    /// Find snapshots whose data is gone; with --forget, remove them.
    Snapshots {
        /// Remove the damaged snapshots (run without it first to see them).
        #[arg(long)]
        forget: bool,
    },
}

#[derive(Clone, Copy, ValueEnum)]
pub enum ModeArg {
    Quick,
    Full,
}

#[derive(Args)]
pub struct RunArgs {
    /// quick: merge index files and drop dead writers' sessions; full: that, plus garbage
    /// collection (sweep the pending plan, mark a new one).
    #[arg(long, value_enum, default_value = "full")]
    mode: ModeArg,
    /// Run even if full maintenance is not due.
    #[arg(long)]
    force: bool,
    /// Write Prometheus metrics (Velero's names) to this file at the end of the run.
    #[arg(long)]
    metrics_file: Option<PathBuf>,
    /// `repository_name` label of the metrics (default: the repository location).
    #[arg(long)]
    repository_name: Option<String>,
    /// How long the lease lasts without renewal (renewed every third of it); a run killed
    /// without releasing it blocks others this long.
    #[arg(long, default_value = "10m", value_parser = humantime::parse_duration)]
    lease_ttl: Duration,
    #[command(flatten)]
    tuning: TuningArgs,
}

#[derive(Args)]
pub struct TuningArgs {
    /// Interval of full maintenance: a duration (24h, 12h, 6h) or Velero's names normalGC
    /// (24h), fastGC (12h), eagerGC (6h).
    #[arg(long, default_value = "normalGC", value_parser = parse_interval)]
    full_interval: Duration,
    /// Repack packs whose unreferenced share reaches this fraction.
    #[arg(long, default_value_t = 0.2)]
    repack_threshold: f64,
    /// Then repack further until unreferenced data in kept packs is at most this fraction of
    /// the live data.
    #[arg(long, default_value_t = 0.02)]
    max_unused: f64,
    /// Memory for the mark set in MiB; beyond it, the mark spills to --spill-dir.
    #[arg(long, default_value_t = 64)]
    memory_budget_mib: usize,
    /// Directory for spilled mark runs (default: the system temporary directory).
    #[arg(long)]
    spill_dir: Option<PathBuf>,
    /// Delete packs no index lists only when older than this.
    #[arg(long, default_value = "1h", value_parser = humantime::parse_duration)]
    orphan_age: Duration,
}

fn parse_interval(s: &str) -> Result<Duration, String> {
    match s {
        "normalGC" => Ok(NORMAL_GC),
        "fastGC" => Ok(FAST_GC),
        "eagerGC" => Ok(EAGER_GC),
        _ => humantime::parse_duration(s).map_err(|e| {
            format!("{s:?}: {e}; give a duration like 24h or one of normalGC, fastGC, eagerGC")
        }),
    }
}

impl TuningArgs {
    fn options(&self, mode: Mode, force: bool) -> CliResult<MaintenanceOptions> {
        if !(0.0..=1.0).contains(&self.repack_threshold) || !(0.0..=1.0).contains(&self.max_unused)
        {
            return Err(fail(
                2,
                "--repack-threshold and --max-unused are fractions between 0 and 1",
            ));
        }
        let d = MaintenanceOptions::default();
        Ok(MaintenanceOptions {
            mode,
            force,
            full_interval: self.full_interval,
            repack_threshold: self.repack_threshold,
            max_unused: self.max_unused,
            memory_budget: self.memory_budget_mib.max(1) << 20,
            spill_dir: self.spill_dir.clone().unwrap_or(d.spill_dir),
            orphan_min_age: self.orphan_age,
            ..d
        })
    }
}

pub fn maintenance(g: &Global, c: &MaintenanceCommand) -> CliResult {
    match c {
        MaintenanceCommand::Run(a) => run(g, a),
        MaintenanceCommand::Status(t) => {
            let repo = g.open()?;
            let st = maintenance::status(&repo, &t.options(Mode::Full, false)?)?;
            if g.json {
                print_json(&serde_json::to_value(&st).expect("serializes"));
            } else {
                out!("{}", st.explain());
            }
            Ok(())
        }
    }
}

fn run(g: &Global, a: &RunArgs) -> CliResult {
    let mode = match a.mode {
        ModeArg::Quick => Mode::Quick,
        ModeArg::Full => Mode::Full,
    };
    let opts = MaintenanceOptions {
        lease_ttl: a.lease_ttl,
        ..a.tuning.options(mode, a.force)?
    };
    let started = std::time::Instant::now();
    let repo = g.open()?;
    let name = a
        .repository_name
        .clone()
        .unwrap_or_else(|| repo.location().to_string());
    let result = maintenance::run(&repo, &opts, &NoProgress);
    let seconds = started.elapsed().as_secs_f64();
    // A busy repository is not a failed maintenance: the other run is doing the work.
    let counts = match &result {
        Ok(_) => Some(true),
        Err(Error::MaintenanceBusy { .. }) => None,
        Err(_) => Some(false),
    };
    if let (Some(path), Some(success)) = (&a.metrics_file, counts) {
        write_metrics(path, &name, success, seconds)?;
    }
    match result {
        Ok(report) => {
            if g.json {
                let mut v = serde_json::to_value(&report).expect("serializes");
                v["success"] = true.into();
                print_json(&v);
            } else {
                for line in &report.summary {
                    outln!("{line}");
                }
                if report.outcome == Outcome::Success {
                    outln!(
                        "maintenance ({}) done in {:.1} s; freed {}",
                        mode.as_str(),
                        report.duration_secs,
                        human_bytes(report.freed_bytes.max(0) as u64)
                    );
                }
            }
            Ok(())
        }
        Err(e) => {
            if g.json {
                print_json(&serde_json::json!({"success": false, "error": e.to_string()}));
            }
            Err(e.into())
        }
    }
}

/// Writes the metrics file in Prometheus text format, adding to the counters already in it
/// for the same repository (a textfile-collector file survives across job runs when it sits
/// on a volume).
fn write_metrics(path: &Path, repo: &str, success: bool, seconds: f64) -> CliResult {
    let label = repo
        .replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n");
    let previous = std::fs::read_to_string(path).unwrap_or_default();
    let old = |metric: &str| -> u64 {
        let prefix = format!("{metric}{{repository_name=\"{label}\"}} ");
        previous
            .lines()
            .find_map(|l| l.strip_prefix(&prefix))
            .and_then(|v| v.trim().parse::<f64>().ok())
            .map(|v| v as u64)
            .unwrap_or(0)
    };
    let ok = old("repo_maintenance_success_total") + u64::from(success);
    let failed = old("repo_maintenance_failure_total") + u64::from(!success);
    let text = format!(
        "# HELP repo_maintenance_success_total Total number of successful maintenance runs.\n\
         # TYPE repo_maintenance_success_total counter\n\
         repo_maintenance_success_total{{repository_name=\"{label}\"}} {ok}\n\
         # HELP repo_maintenance_failure_total Total number of failed maintenance runs.\n\
         # TYPE repo_maintenance_failure_total counter\n\
         repo_maintenance_failure_total{{repository_name=\"{label}\"}} {failed}\n\
         # HELP repo_maintenance_duration_seconds Duration of the last maintenance run.\n\
         # TYPE repo_maintenance_duration_seconds gauge\n\
         repo_maintenance_duration_seconds{{repository_name=\"{label}\"}} {seconds:.3}\n"
    );
    // Written next to the target and renamed, so a scraper never reads half a file.
    let tmp = path.with_extension("tmp");
    std::fs::write(&tmp, text)
        .and_then(|()| std::fs::rename(&tmp, path))
        .map_err(|e| fail(1, format!("writing metrics file {}: {e}", path.display())))
}

pub fn repair(g: &Global, c: &RepairCommand) -> CliResult {
    match c {
        RepairCommand::Index { dry_run } => {
            let repo = g.open()?;
            let r = repair::rebuild_index(
                &repo,
                *dry_run,
                maintenance::DEFAULT_LEASE_TTL,
                &NoProgress,
            )?;
            if g.json {
                print_json(&serde_json::to_value(&r).expect("serializes"));
                return Ok(());
            }
            for d in &r.damaged_packs {
                outln!(
                    "damaged pack {}: {} (its blobs are not in the new index)",
                    d.object,
                    d.reason
                );
            }
            outln!(
                "{} {} pack header(s) with {} blob(s): {} blob(s) the old index lacked, {} it listed that no pack holds",
                if r.dry_run { "would rebuild from" } else { "rebuilt from" },
                r.packs_read,
                r.blobs,
                r.recovered_blobs,
                r.lost_blobs
            );
            if !r.dry_run {
                outln!(
                    "wrote {} index file(s), removed {} old one(s)",
                    r.index_files_written,
                    r.index_files_removed
                );
            }
            if r.lost_blobs > 0 {
                outln!("snapshots that used the lost blobs are damaged: run `node-agent repair snapshots`");
            }
            Ok(())
        }
        RepairCommand::Snapshots { forget } => {
            let repo = g.open_indexed()?;
            let r = repair::check_snapshots(&repo, *forget, &NoProgress)?;
            if g.json {
                print_json(&serde_json::to_value(&r).expect("serializes"));
            } else {
                for d in &r.damaged {
                    outln!(
                        "snapshot {} ({} {} {}): {} blob(s) missing; first: {}",
                        &d.id[..12],
                        d.time,
                        d.host,
                        d.source,
                        d.missing_blobs,
                        d.first_problem
                    );
                }
                outln!(
                    "checked {} snapshot(s): {} damaged{}",
                    r.snapshots_checked,
                    r.damaged.len(),
                    if *forget {
                        format!(", {} removed", r.forgotten)
                    } else if r.damaged.is_empty() {
                        String::new()
                    } else {
                        "; run again with --forget to remove them".into()
                    }
                );
            }
            if !r.damaged.is_empty() && !*forget {
                return Err(fail(4, ""));
            }
            Ok(())
        }
    }
}
