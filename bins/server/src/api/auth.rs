//! Who may call the API: bearer tokens from the Secret `cairn-api-tokens` in the server's
//! namespace. The key `admin` holds tokens that may do anything, `read` tokens that may
//! only read (several tokens per key, one a line). No Secret, no tokens: every call is
//! refused (there is no API without a token). The Secret is read again every
//! [`REFRESH`], so a rotated token works within seconds without a restart.

use std::sync::Mutex;
use std::time::{Duration, Instant};

use repo_k8s::cluster::Cluster;
use serde_json::Value;

/// The Secret holding the tokens.
pub const SECRET: &str = "cairn-api-tokens";
/// How long tokens read from the Secret are used before it is read again.
pub const REFRESH: Duration = Duration::from_secs(10);

/// What a token may do.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Role {
    Read,
    Admin,
}

/// Tokens with their roles.
type Known = Vec<(Role, Vec<u8>)>;

/// The tokens, as last read, and when.
#[derive(Default)]
pub struct Tokens {
    cached: Mutex<Option<(Instant, Known)>>,
}

/// Equal, in a time that does not depend on where they differ.
fn same(a: &[u8], b: &[u8]) -> bool {
    if a.len() != b.len() {
        return false;
    }
    a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// The tokens of a Secret's `data` (base64), by role.
pub fn tokens_of(secret: &Value) -> Known {
    use base64::Engine as _;
    let mut out = Vec::new();
    for (key, role) in [("admin", Role::Admin), ("read", Role::Read)] {
        let Some(text) = secret["data"][key].as_str() else {
            continue;
        };
        let Ok(bytes) = base64::engine::general_purpose::STANDARD.decode(text) else {
            continue;
        };
        for line in String::from_utf8_lossy(&bytes).lines() {
            let t = line.trim();
            // Short tokens are guessable: they are not accepted.
            if t.len() >= 16 {
                out.push((role, t.as_bytes().to_vec()));
            }
        }
    }
    out
}

impl Tokens {
    /// The role of `token`, reading the Secret when the cached copy is old.
    pub fn role_of(&self, cluster: &Cluster, namespace: &str, token: &str) -> Option<Role> {
        let mut cached = self.cached.lock().unwrap_or_else(|e| e.into_inner());
        let stale = cached
            .as_ref()
            .is_none_or(|(at, _)| at.elapsed() >= REFRESH);
        if stale {
            let r = repo_k8s::Discovery::built_in()
                .resolve("secrets")
                .expect("built in")
                .clone();
            let read = cluster.get(&r, Some(namespace), SECRET);
            let tokens = match read {
                Ok(Some(s)) => tokens_of(&Value::Object(s.as_value().clone())),
                Ok(None) => Vec::new(),
                // The API server is unreachable: keep what we had.
                Err(_) => cached.take().map(|(_, t)| t).unwrap_or_default(),
            };
            *cached = Some((Instant::now(), tokens));
        }
        let tokens = &cached.as_ref().expect("just read").1;
        // Every token is compared, so the time does not tell which one nearly matched.
        let mut found = None;
        for (role, t) in tokens {
            if same(t, token.as_bytes()) {
                found = found.max(Some(*role));
            }
        }
        found
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn tokens_by_role_one_a_line_and_long_enough() {
        use base64::Engine as _;
        let b = |s: &str| base64::engine::general_purpose::STANDARD.encode(s);
        let secret = json!({"data": {"admin": b("admin-token-0123456789\n"),
            "read": b("read-token-0123456789\nshort\n  other-read-token-abcdef  ")}});
        let t = tokens_of(&secret);
        assert_eq!(
            t,
            [
                (Role::Admin, b"admin-token-0123456789".to_vec()),
                (Role::Read, b"read-token-0123456789".to_vec()),
                (Role::Read, b"other-read-token-abcdef".to_vec()),
            ]
        );
        assert!(same(b"abc", b"abc") && !same(b"abc", b"abd") && !same(b"abc", b"ab"));
    }
}
