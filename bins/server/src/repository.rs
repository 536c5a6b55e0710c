//! Opening a location's repository: its storage from the location, its credentials and
//! password from Secrets in the server's namespace. There is no default password: without
//! the Secret the location cannot be used, and the error says what to create.

use std::collections::HashMap;
use std::sync::Mutex;

use repo_core::{IndexedRepository, InitOptions, NoProgress, OpenOptions, Repository};
use repo_k8s::cluster::Cluster;
use repo_k8s::velero::BackupStorageLocation;
use repo_k8s::Discovery;

use crate::location::{self, PASSWORD_KEY};

/// A Secret's key, decoded. `Err` names the Secret and key and what to do.
pub fn secret_value(
    cluster: &Cluster,
    namespace: &str,
    name: &str,
    key: &str,
) -> Result<Vec<u8>, String> {
    let secrets = Discovery::built_in()
        .resolve("secrets")
        .expect("secrets are built in")
        .clone();
    let secret = cluster
        .get(&secrets, Some(namespace), name)
        .map_err(|e| e.to_string())?
        .ok_or_else(|| {
            format!("Secret {namespace}/{name} does not exist; create it with the key {key}")
        })?;
    let encoded = secret
        .str_at(&["data", key])
        .ok_or_else(|| format!("Secret {namespace}/{name} has no key {key}"))?;
    use base64::Engine;
    base64::engine::general_purpose::STANDARD
        .decode(encoded.trim())
        .map_err(|_| format!("Secret {namespace}/{name}: key {key} is not base64"))
}

/// Repositories already unlocked, by location URL and password. The key derivation costs
/// about a quarter of a second by design; a server pays it once per location and password,
/// not once per backup. Each use reads the config and the index afresh
/// ([`Repository::reopen`]), so a repository removed or replaced since is noticed.
#[derive(Default)]
pub struct Unlocked(Mutex<HashMap<(String, Vec<u8>), Repository>>);

/// Opens the repository of `bsl`, creating it when its place holds none and the location
/// may be written. A place holding a repository made with another password is refused,
/// never overwritten.
pub fn open(
    cluster: &Cluster,
    bsl: &BackupStorageLocation,
    namespace: &str,
    opts: &OpenOptions,
    unlocked: &Unlocked,
) -> Result<IndexedRepository, String> {
    let credentials =
        match &bsl.spec.credential {
            Some(c) => {
                let bytes = secret_value(cluster, namespace, &c.name, &c.key)?;
                Some(String::from_utf8(bytes).map_err(|_| {
                    format!("Secret {namespace}/{}: key {} is not text", c.name, c.key)
                })?)
            }
            None => None,
        };
    let target = location::target(bsl, credentials.as_deref())?;
    let (secret, key) = &target.password_secret;
    let password = secret_value(cluster, namespace, secret, key).map_err(|e| {
        format!("{e}; the repository password of location {} (key {PASSWORD_KEY}) is required, cairn has no default password", bsl.metadata.name)
    })?;
    let cache_key = (target.url.clone(), password.clone());
    let cached = unlocked
        .0
        .lock()
        .expect("not poisoned")
        .get(&cache_key)
        .map(Repository::reopen);
    let repo = match cached {
        Some(Ok(repo)) => repo,
        Some(Err(_)) | None => {
            unlocked.0.lock().expect("not poisoned").remove(&cache_key);
            let repo = unlock(bsl, namespace, opts, &target, &password)?;
            let again = repo
                .reopen()
                .map_err(|e| format!("location {}: {e}", bsl.metadata.name))?;
            unlocked
                .0
                .lock()
                .expect("not poisoned")
                .insert(cache_key, again);
            repo
        }
    };
    repo.load_index(&NoProgress)
        .map_err(|e| format!("location {}: {e}", bsl.metadata.name))
}

/// Opens (or creates) the repository with its password.
fn unlock(
    bsl: &BackupStorageLocation,
    namespace: &str,
    opts: &OpenOptions,
    target: &location::Target,
    password: &[u8],
) -> Result<Repository, String> {
    let secret = &target.password_secret.0;
    let storage = repo_core::storage::open_url(&target.url, &target.storage)
        .map_err(|e| format!("location {}: {e}", bsl.metadata.name))?;
    let repo = match Repository::open(storage.clone(), password, opts.clone()) {
        Ok(r) => r,
        Err(repo_core::Error::NoRepository { .. }) if !target.read_only => {
            match Repository::init(storage.clone(), password, InitOptions::default(), opts.clone()) {
                Ok(r) => r,
                // Another writer (a second volume, a second replica) made it just now.
                Err(e) => Repository::open(storage, password, opts.clone()).map_err(|_| {
                    format!("creating the repository of location {}: {e}", bsl.metadata.name)
                })?,
            }
        }
        Err(repo_core::Error::WrongPassword { .. }) => {
            return Err(format!(
                "the repository at {} was made with another password than the one in Secret {namespace}/{secret}; give that Secret the repository's password (it is never overwritten)",
                target.url
            ))
        }
        Err(e) => return Err(format!("location {}: {e}", bsl.metadata.name)),
    };
    Ok(repo)
}
