//! Passwords: from a file, a command, the environment, or a prompt on the terminal, in that
//! order. An empty password is refused wherever it comes from: argon2 would accept it, and
//! a repository anyone can open is not what anybody meant.

use std::io::{BufRead, Write};
use std::path::Path;
use std::process::{Command, Stdio};

/// Where one secret may come from, and how a person names those places.
pub struct SecretSource<'a> {
    /// What it is, for messages and the prompt: `password`, `new password`.
    pub what: &'a str,
    /// The environment variable holding it: `CAIRN_PASSWORD`.
    pub env: &'a str,
    /// A file holding it (trailing line ends dropped), and the flag that named it.
    pub file: Option<&'a Path>,
    pub file_flag: &'a str,
    /// A command that prints it (run with `sh -c`), and the flag that named it.
    pub command: Option<&'a str>,
    pub command_flag: &'a str,
    /// Ask twice at a prompt (a new password).
    pub confirm: bool,
}

impl SecretSource<'_> {
    /// Reads the secret from the first place that is set. Errors say which place failed and
    /// what the other places are.
    pub fn read(&self) -> Result<Vec<u8>, String> {
        let secret = if let Some(file) = self.file {
            let mut s = std::fs::read(file).map_err(|e| {
                format!("cannot read the {} file {}: {e}", self.what, file.display())
            })?;
            trim_line_end(&mut s);
            self.non_empty(
                s,
                &format!("the file {} ({})", file.display(), self.file_flag),
            )?
        } else if let Some(cmd) = self.command {
            let s = run_command(cmd)
                .map_err(|e| format!("{} ({}) failed: {e}", self.command_flag, self.what))?;
            self.non_empty(s, &format!("the output of {}", self.command_flag))?
        } else if let Some(v) = std::env::var_os(self.env) {
            self.non_empty(v.into_encoded_bytes(), self.env)?
        } else if let Some(tty) = Terminal::open() {
            let s = tty.prompt(&format!("{}: ", capitalized(self.what)))?;
            let s = self.non_empty(s, "the prompt")?;
            if self.confirm {
                let again = tty.prompt(&format!("{} again: ", capitalized(self.what)))?;
                if again != s {
                    return Err(format!(
                        "the two {}s typed differ; nothing changed",
                        self.what
                    ));
                }
            }
            s
        } else {
            return Err(format!(
                "no {what}: set {env}, or pass {file} or {cmd} (or run on a terminal to be asked)",
                what = self.what,
                env = self.env,
                file = self.file_flag,
                cmd = self.command_flag
            ));
        };
        Ok(secret)
    }

    fn non_empty(&self, s: Vec<u8>, place: &str) -> Result<Vec<u8>, String> {
        if s.is_empty() {
            return Err(format!(
                "the {} from {place} is empty, and an empty {} is not accepted; \
                 set {}, or pass {} or {}",
                self.what, self.what, self.env, self.file_flag, self.command_flag
            ));
        }
        Ok(s)
    }
}

fn capitalized(s: &str) -> String {
    let mut c = s.chars();
    c.next()
        .map(|f| f.to_uppercase().chain(c).collect())
        .unwrap_or_default()
}

/// Drops trailing line ends (`\n`, `\r`), as cairn always has for password files: a
/// password never ends in one, and an editor may add several.
fn trim_line_end(s: &mut Vec<u8>) {
    while s.last().is_some_and(|c| *c == b'\n' || *c == b'\r') {
        s.pop();
    }
}

/// Runs `cmd` with `sh -c`, no input, its errors passed through to ours; its output less
/// trailing line ends is the secret.
fn run_command(cmd: &str) -> Result<Vec<u8>, String> {
    let out = Command::new("sh")
        .args(["-c", cmd])
        .stdin(Stdio::null())
        .stderr(Stdio::inherit())
        .output()
        .map_err(|e| format!("cannot run `sh -c {cmd:?}`: {e}"))?;
    if !out.status.success() {
        return Err(format!("`{cmd}` exited with {}", out.status));
    }
    let mut s = out.stdout;
    trim_line_end(&mut s);
    Ok(s)
}

/// The controlling terminal, when there is one and standard input is it.
struct Terminal(std::fs::File);

impl Terminal {
    fn open() -> Option<Terminal> {
        // SAFETY: isatty only inspects the descriptor.
        if unsafe { libc::isatty(libc::STDIN_FILENO) } != 1 {
            return None;
        }
        std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .open("/dev/tty")
            .ok()
            .map(Terminal)
    }

    /// Asks for a line with echo off, and puts the terminal back as it was.
    fn prompt(&self, question: &str) -> Result<Vec<u8>, String> {
        use std::os::fd::AsRawFd;
        let fd = self.0.as_raw_fd();
        let mut w = &self.0;
        let _ = w.write_all(question.as_bytes());
        let _ = w.flush();
        // SAFETY: termios is plain data; tcgetattr fills it for a terminal descriptor.
        let mut saved: libc::termios = unsafe { std::mem::zeroed() };
        let echo_off = unsafe { libc::tcgetattr(fd, &mut saved) } == 0 && {
            let mut quiet = saved;
            quiet.c_lflag &= !libc::ECHO;
            quiet.c_lflag |= libc::ECHONL;
            // SAFETY: sets attributes read from the same descriptor, echo cleared.
            unsafe { libc::tcsetattr(fd, libc::TCSANOW, &quiet) == 0 }
        };
        let mut line = Vec::new();
        let read = std::io::BufReader::new(&self.0).read_until(b'\n', &mut line);
        if echo_off {
            // SAFETY: restores the attributes saved above.
            unsafe { libc::tcsetattr(fd, libc::TCSANOW, &saved) };
        }
        read.map_err(|e| format!("reading from the terminal: {e}"))?;
        trim_line_end(&mut line);
        Ok(line)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn source<'a>(
        env: &'a str,
        file: Option<&'a Path>,
        command: Option<&'a str>,
    ) -> SecretSource<'a> {
        SecretSource {
            what: "password",
            env,
            file,
            file_flag: "--password-file",
            command,
            command_flag: "--password-command",
            confirm: false,
        }
    }

    #[test]
    fn a_file_a_command_and_the_environment_are_read_in_that_order() {
        let dir = std::env::temp_dir().join(format!("cairn-secret-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let file = dir.join("pw");
        std::fs::write(&file, b"from file\r\n").unwrap();
        std::env::set_var("CAIRN_TEST_SECRET_A", "from env");
        let s = source(
            "CAIRN_TEST_SECRET_A",
            Some(&file),
            Some("echo from command"),
        );
        assert_eq!(s.read().unwrap(), b"from file");
        let s = source(
            "CAIRN_TEST_SECRET_A",
            None,
            Some("printf 'from command\\r\\n\\n'"),
        );
        assert_eq!(s.read().unwrap(), b"from command");
        let s = source("CAIRN_TEST_SECRET_A", None, None);
        assert_eq!(s.read().unwrap(), b"from env");
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn empty_and_failing_sources_say_what_to_do() {
        std::env::set_var("CAIRN_TEST_SECRET_B", "");
        let e = source("CAIRN_TEST_SECRET_B", None, None)
            .read()
            .unwrap_err();
        assert!(e.contains("CAIRN_TEST_SECRET_B is empty"), "{e}");
        assert!(e.contains("--password-file") && !e.contains('…'), "{e}");
        let e = source("X", None, Some("exit 3")).read().unwrap_err();
        assert!(
            e.contains("--password-command") && e.contains("exit status: 3"),
            "{e}"
        );
        let e = source("X", None, Some("true")).read().unwrap_err();
        assert!(e.contains("output of --password-command is empty"), "{e}");
        let e = source("X", Some(Path::new("/nonexistent/pw")), None)
            .read()
            .unwrap_err();
        assert!(e.contains("/nonexistent/pw"), "{e}");
    }
}
