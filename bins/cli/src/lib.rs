//! What `node-agent` and `cairn-server` share in front of a person.
//!
//! - [`outln!`] and [`out!`] print to standard output like `println!` and `print!`, except
//!   that a closed output (`node-agent ls -r latest | head -1`: `head` has read enough) ends
//!   the program quietly, with the status of a program killed by SIGPIPE (141), instead of
//!   a panic and a backtrace.
//! - [`Terminal::safe`] makes names from a repository or a cluster safe to print: control
//!   characters (escape sequences that could retitle or clear a terminal, newlines that could
//!   forge lines of output) are shown escaped. JSON output needs none of it: its encoder
//!   escapes them already.
//! - [`SecretSource`] reads a password from a file, a command, the environment or a prompt;
//!   [`RepoArgs`] are the repository options (location, password, S3, cache) of both.
//! - [`human`] shows sizes and times in tables as a person reads them.
//!
//! ```
//! use cairn_cli::{outln, Terminal};
//! outln!("{}", Terminal::safe("evil\x1b]0;PWNED\x07name"));
//! assert_eq!(Terminal::safe("a\nb"), "a\\nb");
//! ```

pub mod human;
mod repo_args;
mod secret;

use std::borrow::Cow;
use std::io::Write;

pub use repo_args::RepoArgs;
pub use secret::SecretSource;

/// Prints a line to standard output; a closed output ends the program quietly.
#[macro_export]
macro_rules! outln {
    () => { $crate::write_stdout(format_args!("\n")) };
    ($($arg:tt)*) => { $crate::write_stdout(format_args!("{}\n", format_args!($($arg)*))) };
}

/// Prints to standard output; a closed output ends the program quietly.
#[macro_export]
macro_rules! out {
    ($($arg:tt)*) => { $crate::write_stdout(format_args!($($arg)*)) };
}

/// Writes to standard output. The reader having gone away is the normal end of a pipeline
/// (`| head`), not an error: the program exits with [`EXIT_CLOSED_PIPE`] and says nothing. Any other
/// failure (a full disk under a redirect) is said on standard error, exit status 1.
pub fn write_stdout(args: std::fmt::Arguments) {
    let mut out = std::io::stdout().lock();
    if let Err(e) = out.write_fmt(args) {
        exit_on_stdout_error(e);
    }
}

/// The exit status after the reader of standard output went away: what a program killed by
/// SIGPIPE reports (128 + 13). Shells take it as the normal end of a pipeline, and it does
/// not claim that a cut-short `dump` or a `forget` that stopped before deleting succeeded.
pub const EXIT_CLOSED_PIPE: i32 = 141;

/// Ends the program after standard output failed: quietly when its reader has gone away.
pub fn exit_on_stdout_error(e: std::io::Error) -> ! {
    if e.kind() == std::io::ErrorKind::BrokenPipe {
        std::process::exit(EXIT_CLOSED_PIPE);
    }
    let _ = writeln!(std::io::stderr(), "writing to standard output failed: {e}");
    std::process::exit(1);
}

/// Says why a command failed on standard error: `program: message` for a person, or with
/// `json` one JSON line `{"error": message, "exitCode": code}` that scripts can parse.
pub fn report_failure(program: &str, message: &str, code: u8, json: bool) {
    if message.is_empty() {
        return;
    }
    let line = if json {
        serde_json::json!({"error": message, "exitCode": code}).to_string()
    } else {
        // Messages can quote names from a repository or a cluster.
        format!("{program}: {}", Terminal::safe(message))
    };
    let _ = writeln!(std::io::stderr(), "{line}");
}

/// Every argument of `cmd` and its subcommands that has no help text, as `cmd sub --flag`:
/// each binary's tests require none (`--help` must explain every flag).
/// Also runs clap's own consistency checks on `cmd` (they panic on a mistake).
pub fn undocumented(cmd: clap::Command) -> Vec<String> {
    cmd.clone().debug_assert();
    let mut out = Vec::new();
    let mut stack = vec![(cmd.get_name().to_string(), &cmd)];
    while let Some((path, c)) = stack.pop() {
        for arg in c.get_arguments() {
            let builtin = matches!(arg.get_id().as_str(), "help" | "version");
            if !builtin && arg.get_help().is_none() && arg.get_long_help().is_none() {
                let name = arg
                    .get_long()
                    .map(|l| format!("--{l}"))
                    .unwrap_or_else(|| arg.get_id().to_string());
                out.push(format!("{path} {name}"));
            }
        }
        for sub in c.get_subcommands() {
            if sub.get_about().is_none() && sub.get_name() != "help" {
                out.push(format!("{path} {} (no description)", sub.get_name()));
            }
            stack.push((format!("{path} {}", sub.get_name()), sub));
        }
    }
    out.sort();
    out
}

/// Buffered standard output for bulk data (`dump`): any write failure ends the program as
/// [`exit_on_stdout_error`] does, so callers never see one.
pub struct Stdout(std::io::BufWriter<std::io::StdoutLock<'static>>);

impl Stdout {
    pub fn new() -> Self {
        Stdout(std::io::BufWriter::with_capacity(
            1 << 20,
            std::io::stdout().lock(),
        ))
    }
}

impl Default for Stdout {
    fn default() -> Self {
        Stdout::new()
    }
}

impl Write for Stdout {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.write(buf).or_else(|e| exit_on_stdout_error(e))
    }

    fn flush(&mut self) -> std::io::Result<()> {
        self.0.flush().or_else(|e| exit_on_stdout_error(e))
    }
}

/// Names and messages made safe for a terminal.
pub struct Terminal;

impl Terminal {
    /// `text` with every control character (C0, DEL, C1) escaped as Rust does (`\n`, `\t`,
    /// `\u{1b}`), and backslashes doubled so an escape cannot be forged. Text without any
    /// is returned as it is.
    pub fn safe(text: &str) -> Cow<'_, str> {
        if !text.chars().any(|c| c.is_control() || c == '\\') {
            return Cow::Borrowed(text);
        }
        let mut out = String::with_capacity(text.len() + 8);
        for c in text.chars() {
            match c {
                '\\' => out.push_str("\\\\"),
                c if c.is_control() => out.extend(c.escape_default()),
                c => out.push(c),
            }
        }
        Cow::Owned(out)
    }

    /// A path, made safe as [`Terminal::safe_bytes`] does.
    pub fn path(path: &std::path::Path) -> Cow<'_, str> {
        use std::os::unix::ffi::OsStrExt;
        Terminal::safe_bytes(path.as_os_str().as_bytes())
    }

    /// Like [`Terminal::safe`] for bytes that may not be UTF-8 (file names): invalid
    /// sequences are shown as `\xNN`.
    pub fn safe_bytes(bytes: &[u8]) -> Cow<'_, str> {
        match std::str::from_utf8(bytes) {
            Ok(text) => Terminal::safe(text),
            Err(_) => {
                let mut out = String::with_capacity(bytes.len() + 8);
                for chunk in bytes.utf8_chunks() {
                    out.push_str(&Terminal::safe(chunk.valid()));
                    for b in chunk.invalid() {
                        out.push_str(&format!("\\x{b:02x}"));
                    }
                }
                Cow::Owned(out)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn control_characters_are_escaped_and_plain_text_is_not() {
        assert!(matches!(Terminal::safe("plain name.txt"), Cow::Borrowed(_)));
        assert_eq!(
            Terminal::safe("\x1b]0;PWNED\x07\x1b[2J"),
            "\\u{1b}]0;PWNED\\u{7}\\u{1b}[2J"
        );
        assert_eq!(Terminal::safe("two\nlines\r\t"), "two\\nlines\\r\\t");
        assert_eq!(Terminal::safe("C1 \u{9b}31m"), "C1 \\u{9b}31m");
        // A backslash is doubled, so a name cannot pretend to be an escape.
        assert_eq!(Terminal::safe("a\\nb"), "a\\\\nb");
        assert_eq!(Terminal::safe("ünïcödé ok"), "ünïcödé ok");
    }

    #[test]
    fn invalid_utf8_is_shown_as_hex() {
        assert_eq!(Terminal::safe_bytes(b"caf\xe9\x1b"), "caf\\xe9\\u{1b}");
        assert_eq!(Terminal::safe_bytes(b"ok"), "ok");
    }
}
