//! Showing progress: a bar on a terminal, JSON lines with `--json` (Velero's `totalBytes` and
//! `bytesDone`), nothing otherwise. A reporter thread samples the library's counters.

use cairn_cli::outln;
use std::io::IsTerminal;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use indicatif::{ProgressBar, ProgressStyle};
use repo_fs::{Counters, Counts};

/// How progress is shown.
#[derive(Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    Bar,
    Json,
    Quiet,
}

impl Mode {
    pub fn choose(json: bool) -> Self {
        if json {
            Mode::Json
        } else if std::io::stderr().is_terminal() {
            Mode::Bar
        } else {
            Mode::Quiet
        }
    }
}

/// A running reporter; `stop` ends it and draws the last state.
pub struct Reporter {
    done: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

/// One JSON progress line.
pub fn json_line(phase: &str, c: &Counts, elapsed: Duration) -> serde_json::Value {
    serde_json::json!({
        "event": "progress",
        "phase": phase,
        "totalBytes": c.total_bytes,
        "bytesDone": c.bytes_done,
        "totalFiles": c.total_files,
        "filesDone": c.files_done,
        "filesNew": c.files_new,
        "filesChanged": c.files_changed,
        "filesUnchanged": c.files_unchanged,
        "errors": c.errors,
        "scanDone": c.scan_done,
        "elapsedSeconds": elapsed.as_secs_f64(),
    })
}

impl Reporter {
    pub fn start(
        mode: Mode,
        phase: &'static str,
        counters: Arc<Counters>,
        every: Duration,
    ) -> Self {
        let done = Arc::new(AtomicBool::new(false));
        if mode == Mode::Quiet {
            return Reporter { done, thread: None };
        }
        let d = done.clone();
        let thread = std::thread::spawn(move || {
            let started = Instant::now();
            let bar = (mode == Mode::Bar).then(|| {
                let b = ProgressBar::new(0);
                b.set_style(
                    ProgressStyle::with_template(
                        "{spinner} [{elapsed_precise}] {wide_bar} {bytes}/{total_bytes} {bytes_per_sec} ETA {eta} {msg}",
                    )
                    .expect("template is valid"),
                );
                b
            });
            let tick = if bar.is_some() {
                Duration::from_millis(200)
            } else {
                every
            };
            loop {
                let finished = d.load(Ordering::Relaxed);
                let c = counters.snapshot();
                match &bar {
                    Some(b) => {
                        b.set_length(c.total_bytes.max(c.bytes_done));
                        b.set_position(c.bytes_done);
                        b.set_message(format!(
                            "{}/{} files{}",
                            c.files_done,
                            if c.scan_done {
                                c.total_files.to_string()
                            } else {
                                "?".into()
                            },
                            if c.errors > 0 {
                                format!(", {} errors", c.errors)
                            } else {
                                String::new()
                            }
                        ));
                    }
                    None => outln!("{}", json_line(phase, &c, started.elapsed())),
                }
                if finished {
                    if let Some(b) = &bar {
                        b.finish_and_clear();
                    }
                    return;
                }
                // Sleep in small steps so `stop` is prompt.
                let until = Instant::now() + tick;
                while Instant::now() < until && !d.load(Ordering::Relaxed) {
                    std::thread::sleep(Duration::from_millis(20));
                }
            }
        });
        Reporter {
            done,
            thread: Some(thread),
        }
    }

    pub fn stop(mut self) {
        self.done.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// A flag set by SIGINT or SIGTERM: operations stop cleanly and keep what they uploaded. A
/// second signal ends the process at once.
pub fn cancel_on_signals() -> Arc<AtomicBool> {
    let flag = Arc::new(AtomicBool::new(false));
    for sig in [signal_hook::consts::SIGINT, signal_hook::consts::SIGTERM] {
        let _ = signal_hook::flag::register_conditional_shutdown(sig, 130, flag.clone());
        let _ = signal_hook::flag::register(sig, flag.clone());
    }
    flag
}
