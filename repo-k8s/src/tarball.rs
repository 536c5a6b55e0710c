//! Velero backup tarballs, both ways.
//!
//! Velero stores a backup's objects as a gzipped tar:
//!
//! ```text
//! metadata/version                                                  "1.1.0"
//! resources/<resource.group>/namespaces/<ns>/<name>.json            legacy path
//! resources/<resource.group>/cluster/<name>.json
//! resources/<resource.group>/<version>-preferredversion/namespaces/<ns>/<name>.json
//! resources/<resource.group>/<version>-preferredversion/cluster/<name>.json
//! resources/<resource.group>/<version>/…                            other versions (optional)
//! ```
//!
//! [`export`] writes both the legacy path and the `-preferredversion` copy, so every Velero
//! since 1.4 restores it with or without `EnableAPIGroupVersions`. [`read`] takes a tarball
//! (gzipped or plain) into memory: one object per identity, preferring the legacy path, then
//! the preferred version; other versions of the same object are counted, not imported.
//!
//! A tarball is untrusted input. Reading never touches the filesystem, and it refuses the
//! whole tarball (nothing is imported) when an entry's path escapes (`..`, absolute), an
//! entry is a link or device, or sizes pass the [`Limits`].

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Read, Write};

use repo_core::IndexedRepository;
use serde_json::value::RawValue;

use crate::backup::{for_each_file, list_files, HeldObjects, FORMAT_VERSION};
use crate::discovery::{Discovery, Resource};
use crate::object::Object;

/// Limits on what a tarball may make us read.
#[derive(Clone, Debug)]
pub struct Limits {
    /// Largest entry. Kubernetes keeps objects under 1.5 MiB (etcd's request limit), so
    /// anything far bigger is not an object.
    pub max_entry_bytes: u64,
    /// Most bytes after decompression, headers included: a gzip bomb stops here.
    pub max_total_bytes: u64,
    /// Most entries.
    pub max_entries: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_entry_bytes: 32 << 20,
            max_total_bytes: 16 << 30,
            max_entries: 5_000_000,
        }
    }
}

/// Why a tarball was refused.
#[derive(Debug, thiserror::Error)]
pub enum TarballError {
    #[error("refusing the tarball: entry {entry:?} {why}; nothing was imported")]
    Hostile { entry: String, why: String },
    #[error("refusing the tarball: {0}; nothing was imported")]
    TooLarge(String),
    #[error("not a Velero backup tarball: {0}")]
    NotVelero(String),
    #[error("reading the tarball: {0} (is it truncated or not a tar/tar.gz file?)")]
    Io(#[from] std::io::Error),
}

/// What [`read`] found.
#[derive(Debug, Default)]
pub struct Imported {
    /// Objects with the tarball path each came from; back them up with
    /// [`backup_from`](crate::backup::backup_from), `objects.inventory` and `&objects`.
    pub objects: HeldObjects,
    /// Entries that were not objects, and mismatches between path and object.
    pub problems: Vec<String>,
    /// `metadata/version`.
    pub version: String,
    /// Copies of objects in other (non-preferred) API versions, not imported.
    pub other_versions: usize,
    /// Resources the tarball's paths name that the built-in table does not know (custom
    /// resources): pass it to the backup so they keep the tarball's resource names.
    pub discovery: Discovery,
}

/// Where in the layout an entry is.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Debug)]
enum Copy {
    Legacy,
    Preferred,
    OtherVersion,
}

/// (group resource, namespace, name) of an object in the tarball.
type Identity = (String, Option<String>, String);

/// A reader that fails once more than `left` bytes came through.
struct Capped<R> {
    inner: R,
    left: u64,
}

impl<R: Read> Read for Capped<R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.left = self.left.checked_sub(n as u64).ok_or_else(|| {
            std::io::Error::new(
                std::io::ErrorKind::FileTooLarge,
                "decompressed size passes the limit",
            )
        })?;
        Ok(n)
    }
}

/// Checks an entry path: relative, no `..`, no empty or `.` components inside, UTF-8.
/// Returns its components (a leading `./` is dropped, as tar tools write it).
fn components(raw: &[u8]) -> Result<Vec<&str>, TarballError> {
    let hostile = |why: &str| TarballError::Hostile {
        entry: String::from_utf8_lossy(raw).into_owned(),
        why: why.to_string(),
    };
    let path = std::str::from_utf8(raw).map_err(|_| hostile("is not UTF-8"))?;
    if path.starts_with('/') {
        return Err(hostile("is absolute"));
    }
    if path.contains('\0') || path.contains('\\') {
        return Err(hostile("contains NUL or a backslash"));
    }
    let path = path.strip_prefix("./").unwrap_or(path);
    let path = path.strip_suffix('/').unwrap_or(path);
    let parts: Vec<&str> = path.split('/').collect();
    if parts.contains(&"..") {
        return Err(hostile("escapes the archive (`..`)"));
    }
    if parts.iter().any(|p| p.is_empty() || *p == ".") {
        return Err(hostile("has an empty or `.` component"));
    }
    Ok(parts)
}

/// Reads a Velero tarball (gzipped or plain tar). A refusal is [`crate::Error::Tarball`].
pub fn read(input: impl Read, limits: &Limits) -> crate::Result<Imported> {
    Ok(read_tarball(input, limits)?)
}

fn read_tarball(input: impl Read, limits: &Limits) -> Result<Imported, TarballError> {
    let mut input = BufReader::new(input);
    let gzipped = input.fill_buf()?.starts_with(&[0x1f, 0x8b]);
    let raw: Box<dyn Read> = if gzipped {
        Box::new(flate2::read::MultiGzDecoder::new(input))
    } else {
        Box::new(input)
    };
    let mut archive = tar::Archive::new(Capped {
        inner: raw,
        left: limits.max_total_bytes,
    });
    let mut out = Imported {
        discovery: Discovery::built_in(),
        ..Default::default()
    };
    // Each object's best copy so far, as compact JSON: parsed, 100,000 objects took 900 MB.
    let mut found: BTreeMap<Identity, (Copy, Box<RawValue>, String)> = BTreeMap::new();
    let mut version = None;
    let mut entries = 0usize;
    for entry in archive.entries().map_err(too_large_or_io)? {
        let mut entry = entry.map_err(too_large_or_io)?;
        entries += 1;
        if entries > limits.max_entries {
            return Err(TarballError::TooLarge(format!(
                "more than {} entries",
                limits.max_entries
            )));
        }
        let raw_path = entry.path_bytes().into_owned();
        let parts = components(&raw_path)?;
        let shown = parts.join("/");
        let kind = entry.header().entry_type();
        if kind.is_dir() {
            continue;
        }
        if !kind.is_file() {
            return Err(TarballError::Hostile {
                entry: shown,
                why: format!("is a {kind:?}, not a file (Velero writes only files)"),
            });
        }
        let size = entry.size();
        if size > limits.max_entry_bytes {
            return Err(TarballError::TooLarge(format!(
                "entry {shown:?} is {size} bytes, more than the {} allowed",
                limits.max_entry_bytes
            )));
        }
        let mut bytes = Vec::with_capacity(size as usize);
        entry
            .by_ref()
            .take(limits.max_entry_bytes + 1)
            .read_to_end(&mut bytes)
            .map_err(too_large_or_io)?;
        match parts.as_slice() {
            ["metadata", "version"] => {
                version = Some(String::from_utf8_lossy(&bytes).trim().to_string());
            }
            ["resources", rest @ ..] => match place(rest) {
                Some((gr, ns, file, copy)) => {
                    let Some(name) = file.strip_suffix(".json") else {
                        out.problems
                            .push(format!("{shown}: not a .json file; ignored"));
                        continue;
                    };
                    if copy == Copy::OtherVersion {
                        out.other_versions += 1;
                        continue;
                    }
                    let object = match serde_json::from_slice(&bytes)
                        .map_err(|e| e.to_string())
                        .and_then(|v| Object::from_value(v, &shown).map_err(|e| e.to_string()))
                    {
                        Ok(o) => o,
                        Err(e) => {
                            out.problems.push(format!("{shown}: not an object: {e}"));
                            continue;
                        }
                    };
                    let object = match check_identity(object, gr, ns, name, &shown) {
                        Ok(o) => o,
                        Err(p) => {
                            out.problems.push(p);
                            continue;
                        }
                    };
                    let key = (gr.to_string(), ns.map(str::to_string), name.to_string());
                    match found.get(&key) {
                        Some((have, ..)) if *have <= copy => {}
                        _ => {
                            found.insert(key, (copy, object.to_raw_json(), shown));
                        }
                    }
                }
                None => out
                    .problems
                    .push(format!("{shown}: not where Velero puts objects; ignored")),
            },
            _ => {}
        }
    }
    let version = version
        .ok_or_else(|| TarballError::NotVelero("it has no metadata/version entry".to_string()))?;
    if version.split('.').next() != Some("1") {
        return Err(TarballError::NotVelero(format!(
            "metadata/version is {version:?}; this reader knows format 1.x"
        )));
    }
    out.version = version;
    // A resource filed both ways (cairn files objects of unknown resources by whether they
    // name a namespace) is left to that same rule rather than learned.
    let mut scopes: BTreeMap<&str, (bool, bool)> = BTreeMap::new();
    for (gr, ns, _) in found.keys() {
        let s = scopes.entry(gr).or_default();
        if ns.is_some() {
            s.0 = true;
        } else {
            s.1 = true;
        }
    }
    let mixed: Vec<String> = scopes
        .into_iter()
        .filter(|(_, (a, b))| *a && *b)
        .map(|(gr, _)| gr.to_string())
        .collect();
    for ((gr, ns, _), (_, json, origin)) in found {
        let value = serde_json::from_str(json.get()).expect("written by to_raw_json");
        drop(json);
        let object = Object::from_value(value, &origin).expect("checked when read");
        if !mixed.contains(&gr) {
            let namespaced = ns.is_some();
            learn(
                &mut out.discovery,
                &gr,
                namespaced,
                &object,
                &origin,
                &mut out.problems,
            );
        }
        out.objects.add(&object, origin);
    }
    Ok(out)
}

/// The tar crate reports our cap as an I/O error; give it its own message.
fn too_large_or_io(e: std::io::Error) -> TarballError {
    if e.kind() == std::io::ErrorKind::FileTooLarge {
        TarballError::TooLarge(e.to_string())
    } else {
        TarballError::Io(e)
    }
}

/// Splits a path below `resources/` into (group resource, namespace, file, which copy).
fn place<'a>(rest: &[&'a str]) -> Option<(&'a str, Option<&'a str>, &'a str, Copy)> {
    match *rest {
        [gr, "namespaces", ns, file] => Some((gr, Some(ns), file, Copy::Legacy)),
        [gr, "cluster", file] => Some((gr, None, file, Copy::Legacy)),
        [gr, ver, "namespaces", ns, file] => Some((gr, Some(ns), file, version_copy(ver))),
        [gr, ver, "cluster", file] => Some((gr, None, file, version_copy(ver))),
        _ => None,
    }
}

fn version_copy(dir: &str) -> Copy {
    if dir.ends_with("-preferredversion") {
        Copy::Preferred
    } else {
        Copy::OtherVersion
    }
}

/// Makes the object agree with its path: the path's namespace wins (Velero's restore reads
/// it from there); a name that disagrees with the file name is a problem.
fn check_identity(
    mut o: Object,
    gr: &str,
    ns: Option<&str>,
    name: &str,
    shown: &str,
) -> Result<Object, String> {
    if o.name() != name {
        return Err(format!(
            "{shown}: the object inside is named {:?}; ignored",
            o.name()
        ));
    }
    let (group, _) = o.group_version();
    let in_group = if group.is_empty() {
        !gr.contains('.')
    } else {
        gr.strip_suffix(group)
            .is_some_and(|p| p.ends_with('.') && p.len() > 1)
    };
    if !in_group {
        return Err(format!(
            "{shown}: a {} of API group {group:?} filed under resource {gr:?}; ignored",
            o.kind()
        ));
    }
    if let Some(ns) = ns {
        if o.namespace() != Some(ns) {
            o.set_namespace(Some(ns));
        }
    }
    Ok(o)
}

/// Adds the resource an object's path names when discovery does not know its kind.
fn learn(
    d: &mut Discovery,
    gr: &str,
    namespaced: bool,
    o: &Object,
    origin: &str,
    problems: &mut Vec<String>,
) {
    if let Some(r) = d.for_object(o) {
        if r.group_resource() != gr || r.namespaced != namespaced {
            problems.push(format!(
                "{origin}: a {} is {} ({}); the tarball files it as {gr} ({})",
                o.kind(),
                r.group_resource(),
                scope(r.namespaced),
                scope(namespaced)
            ));
        }
        return;
    }
    let (group, version) = o.group_version();
    let plural = gr.split('.').next().unwrap_or(gr).to_string();
    d.add(Resource {
        group: group.to_string(),
        version: version.to_string(),
        kind: o.kind().to_string(),
        singular: o.kind().to_ascii_lowercase(),
        plural,
        short_names: Vec::new(),
        namespaced,
    });
}

fn scope(namespaced: bool) -> &'static str {
    if namespaced {
        "namespaced"
    } else {
        "cluster-scoped"
    }
}

/// What [`export`] wrote.
#[derive(Clone, Debug, Default, serde::Serialize)]
pub struct Exported {
    pub items: usize,
    /// Second, different objects with an identity already exported (the backup keeps them
    /// under `duplicates/`): a tarball holds one object per identity, so they are left out.
    pub duplicates_left_out: usize,
}

/// Writes backup `snapshot` as a gzipped Velero tarball. Entries are in tree order with the
/// snapshot's time, so the same backup always exports to the same bytes.
pub fn export(
    repo: &IndexedRepository,
    snapshot: &repo_core::ObjectId,
    out: impl Write,
) -> crate::Result<Exported> {
    let snap = repo.get_snapshot(snapshot)?;
    let budget = repo_core::walk::WalkBudget::for_snapshot(snapshot, &snap);
    let mtime = repo_core::time::parse_rfc3339(&snap.time)
        .map(repo_core::time::unix_seconds)
        .unwrap_or(0)
        .max(0) as u64;
    let gz = flate2::write::GzEncoder::new(out, flate2::Compression::default());
    let mut tar = tar::Builder::new(gz);
    let io = |e: std::io::Error| repo_core::Error::io("writing the tarball", e);
    let mut stats = Exported::default();
    let append = |tar: &mut tar::Builder<_>, path: &str, bytes: &[u8]| {
        let mut h = tar::Header::new_gnu();
        h.set_size(bytes.len() as u64);
        h.set_mode(0o644);
        h.set_mtime(mtime);
        h.set_entry_type(tar::EntryType::Regular);
        tar.append_data(&mut h, path, bytes).map_err(io)
    };
    append(&mut tar, "metadata/version", FORMAT_VERSION.as_bytes())?;
    let root = repo.read_dir(&snap.root)?;
    if let Some(resources) = root
        .iter()
        .find(|n| n.name.display() == "resources")
        .and_then(|n| n.subtree)
    {
        for_each_file(repo, resources, "resources", &budget, &mut |path, bytes| {
            append(&mut tar, path, &bytes)?;
            // resources/<gr>/<rest…>: the preferred-version copy goes in between.
            let mut parts = path.splitn(3, '/');
            let (Some(_), Some(gr), Some(rest)) = (parts.next(), parts.next(), parts.next()) else {
                return Ok(());
            };
            // Only apiVersion is read; the rest of the object is skipped, not built.
            #[derive(serde::Deserialize)]
            struct Typed {
                #[serde(rename = "apiVersion")]
                api_version: String,
            }
            if let Ok(Typed { api_version }) = serde_json::from_slice(&bytes) {
                let version = crate::object::split_api_version(&api_version).1;
                append(
                    &mut tar,
                    &format!("resources/{gr}/{version}-preferredversion/{rest}"),
                    &bytes,
                )?;
            }
            stats.items += 1;
            Ok(())
        })?;
    }
    if let Some(dups) = root
        .iter()
        .find(|n| n.name.display() == "duplicates")
        .and_then(|n| n.subtree)
    {
        stats.duplicates_left_out = list_files(repo, dups, "duplicates", &budget)?.len();
    }
    let gz = tar.into_inner().map_err(io)?;
    gz.finish().map_err(io)?;
    Ok(stats)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tar_of(entries: &[(&str, &[u8])]) -> Vec<u8> {
        let mut b = tar::Builder::new(Vec::new());
        for (path, bytes) in entries {
            let mut h = tar::Header::new_gnu();
            h.set_size(bytes.len() as u64);
            h.set_mode(0o644);
            h.set_entry_type(tar::EntryType::Regular);
            // Write the name raw: append_data refuses `..`, and hostile tarballs have it.
            h.as_gnu_mut().unwrap().name[..path.len()].copy_from_slice(path.as_bytes());
            h.set_cksum();
            b.append(&h, *bytes).unwrap();
        }
        b.into_inner().unwrap()
    }

    const CM: &[u8] =
        br#"{"apiVersion":"v1","kind":"ConfigMap","metadata":{"name":"cfg","namespace":"shop"}}"#;

    #[test]
    fn reads_legacy_and_preferred_copies_once() {
        let t = tar_of(&[
            ("metadata/version", b"1.1.0\n"),
            ("resources/configmaps/namespaces/shop/cfg.json", CM),
            (
                "resources/configmaps/v1-preferredversion/namespaces/shop/cfg.json",
                CM,
            ),
            ("resources/configmaps/v1beta1/namespaces/shop/cfg.json", CM),
        ]);
        let got = read(&t[..], &Limits::default()).unwrap();
        assert_eq!(got.version, "1.1.0");
        assert_eq!(got.objects.len(), 1);
        assert_eq!(
            got.objects.origin(0),
            "resources/configmaps/namespaces/shop/cfg.json"
        );
        assert_eq!(got.other_versions, 1);
        assert!(got.problems.is_empty(), "{:?}", got.problems);
    }

    #[test]
    fn preferred_copy_alone_is_enough() {
        let t = tar_of(&[
            ("metadata/version", b"1.1.0"),
            (
                "resources/configmaps/v1-preferredversion/namespaces/shop/cfg.json",
                CM,
            ),
        ]);
        let got = read(&t[..], &Limits::default()).unwrap();
        assert_eq!(got.objects.len(), 1);
    }

    #[test]
    fn escaping_and_absolute_paths_refuse_the_whole_tarball() {
        for bad in [
            "../etc/passwd",
            "resources/../../x.json",
            "/etc/passwd",
            "resources//x",
        ] {
            let t = tar_of(&[("metadata/version", b"1.1.0"), (bad, CM)]);
            let e = read_tarball(&t[..], &Limits::default()).unwrap_err();
            assert!(
                matches!(&e, TarballError::Hostile { entry, .. } if entry == bad),
                "{bad}: {e}"
            );
            assert!(e.to_string().contains("nothing was imported"), "{e}");
        }
    }

    #[test]
    fn links_are_refused() {
        let mut b = tar::Builder::new(Vec::new());
        let mut h = tar::Header::new_gnu();
        h.set_entry_type(tar::EntryType::Symlink);
        h.set_size(0);
        b.append_link(&mut h, "resources/x.json", "/etc/shadow")
            .unwrap();
        let t = b.into_inner().unwrap();
        let e = read(&t[..], &Limits::default()).unwrap_err();
        assert!(e.to_string().contains("not a file"), "{e}");
    }

    #[test]
    fn absurd_sizes_are_refused() {
        let big = vec![b' '; 2000];
        let t = tar_of(&[("metadata/version", b"1.1.0"), ("resources/a.json", &big)]);
        let small = Limits {
            max_entry_bytes: 1000,
            ..Default::default()
        };
        let e = read(&t[..], &small).unwrap_err();
        assert!(
            matches!(e, crate::Error::Tarball(TarballError::TooLarge(_))),
            "{e}"
        );
        let tiny_total = Limits {
            max_total_bytes: 1500,
            ..Default::default()
        };
        let e = read(&t[..], &tiny_total).unwrap_err();
        assert!(
            matches!(e, crate::Error::Tarball(TarballError::TooLarge(_))),
            "{e}"
        );
        // A header that claims far more than the archive holds is a truncated archive.
        let mut t = tar_of(&[("metadata/version", b"1.1.0"), ("resources/a.json", &big)]);
        t.truncate(1024 + 512 + 100);
        assert!(read(&t[..], &Limits::default()).is_err());
    }

    #[test]
    fn missing_or_unknown_version_is_not_velero() {
        let t = tar_of(&[("resources/configmaps/namespaces/shop/cfg.json", CM)]);
        let e = read(&t[..], &Limits::default()).unwrap_err();
        assert!(e.to_string().contains("metadata/version"), "{e}");
        let t = tar_of(&[("metadata/version", b"2.0.0")]);
        assert!(matches!(
            read(&t[..], &Limits::default()),
            Err(crate::Error::Tarball(TarballError::NotVelero(_)))
        ));
    }

    #[test]
    fn mismatches_are_problems_not_crashes() {
        let t = tar_of(&[
            ("metadata/version", b"1.1.0"),
            // name differs from the file
            ("resources/configmaps/namespaces/shop/other.json", CM),
            // wrong group for the resource
            ("resources/deployments.apps/namespaces/shop/cfg.json", CM),
            // not JSON
            ("resources/configmaps/namespaces/shop/x.json", b"{nope"),
            // unexpected place
            ("resources/configmaps/cfg.json", CM),
            // namespace from the path wins
            ("resources/configmaps/namespaces/shop2/cfg.json", CM),
        ]);
        let got = read(&t[..], &Limits::default()).unwrap();
        assert_eq!(got.problems.len(), 4, "{:#?}", got.problems);
        assert_eq!(got.objects.len(), 1);
        assert_eq!(got.objects.get(0).namespace(), Some("shop2"));
    }

    #[test]
    fn unknown_custom_resources_keep_the_tarball_names() {
        let cr = br#"{"apiVersion":"example.com/v2","kind":"Widget","metadata":{"name":"w","namespace":"shop"}}"#;
        let t = tar_of(&[
            ("metadata/version", b"1.1.0"),
            ("resources/widgetz.example.com/namespaces/shop/w.json", cr),
        ]);
        let got = read(&t[..], &Limits::default()).unwrap();
        let r = got.discovery.for_object(&got.objects.get(0)).unwrap();
        assert_eq!(r.group_resource(), "widgetz.example.com");
        assert!(r.namespaced);
    }

    #[test]
    fn gzip_is_detected() {
        let t = tar_of(&[
            ("metadata/version", b"1.1.0"),
            ("resources/configmaps/namespaces/shop/cfg.json", CM),
        ]);
        let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        gz.write_all(&t).unwrap();
        let got = read(&gz.finish().unwrap()[..], &Limits::default()).unwrap();
        assert_eq!(got.objects.len(), 1);
    }
}
