//! A directory of a snapshot as a tar stream (`dump` of a directory), for moving a backup
//! to a machine without cairn: files, directories, symlinks, hard links, fifos and device
//! nodes, with modes, owners and modification times. Sockets are left out, as a restore
//! leaves them out. Nothing touches the local file system.

use std::collections::HashMap;
use std::io::Write;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

use repo_core::reader::StreamReader;
use repo_core::tree::{Node, NodeKind};
use repo_core::walk::{Walk, WalkBudget};
use repo_core::{Error, IndexedRepository, Result, SnapshotFilter};

/// What went into a tar stream.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct TarSummary {
    pub files: u64,
    pub dirs: u64,
    pub others: u64,
    pub bytes: u64,
}

/// Writes the directory at `path` of `snapshot` (the whole snapshot for `""`) to `out` as a
/// tar stream, entries named relative to that directory.
pub fn write_tar(
    repo: &IndexedRepository,
    snapshot: &str,
    path: &str,
    out: &mut dyn Write,
) -> Result<TarSummary> {
    let (id, snap) = repo.find_snapshot(snapshot, &SnapshotFilter::default())?;
    let path = path.trim_matches('/');
    let dir = if path.is_empty() {
        snap.root
    } else {
        match repo.find_node(&snap.root, path)? {
            Node {
                kind: NodeKind::Dir,
                subtree: Some(sub),
                ..
            } => sub,
            _ => {
                return Err(Error::invalid(
                    "path",
                    format!("{path} in snapshot {} is not a directory", id.short()),
                ))
            }
        }
    };
    let budget = WalkBudget::for_snapshot(&id, &snap);
    let mut tar = tar::Builder::new(out);
    tar.follow_symlinks(false);
    let mut summary = TarSummary::default();
    // First path of each hard-linked inode: later ones become link entries.
    let mut first_links: HashMap<(u64, u64), PathBuf> = HashMap::new();
    for entry in Walk::new(repo, dir, PathBuf::new(), true, &budget) {
        let (path, node) = entry?;
        append(repo, &mut tar, &path, &node, &mut first_links, &mut summary)?;
    }
    tar.into_inner()
        .and_then(|w| w.flush())
        .map_err(|e| Error::io("writing the tar stream", e))?;
    Ok(summary)
}

fn header_for(node: &Node, kind: tar::EntryType) -> tar::Header {
    let mut h = tar::Header::new_gnu();
    h.set_entry_type(kind);
    h.set_mode(node.mode & 0o7777);
    h.set_uid(node.uid as u64);
    h.set_gid(node.gid as u64);
    // Names that do not fit the header are left out rather than failing the stream.
    let _ = h.set_username(&node.user);
    let _ = h.set_groupname(&node.group);
    let mtime = crate::meta::parse_time(&node.mtime).map_or(0, |t| t.tv_sec.max(0) as u64);
    h.set_mtime(mtime);
    h.set_size(0);
    h
}

/// A PAX record `"<len> <key>=<value>\n"`, whose length counts itself.
fn pax_record(key: &str, value: &str) -> String {
    let body = format!(" {key}={value}\n");
    let mut len = body.len() + 1;
    while len.to_string().len() + body.len() != len {
        len = len.to_string().len() + body.len();
    }
    format!("{len}{body}")
}

/// The modification time to the nanosecond in a PAX extended header before the entry
/// (tar headers hold whole seconds; GNU and BSD tar read the PAX time).
fn append_precise_mtime(
    tar: &mut tar::Builder<&mut dyn Write>,
    node: &Node,
) -> std::io::Result<()> {
    let Some(t) = crate::meta::parse_time(&node.mtime) else {
        return Ok(());
    };
    if t.tv_nsec == 0 || t.tv_sec < 0 {
        return Ok(());
    }
    let record = pax_record("mtime", &format!("{}.{:09}", t.tv_sec, t.tv_nsec));
    let mut h = tar::Header::new_ustar();
    h.set_entry_type(tar::EntryType::XHeader);
    h.set_path("PaxHeader")?;
    h.set_mode(0o644);
    h.set_size(record.len() as u64);
    h.set_cksum();
    tar.append(&h, record.as_bytes())
}

fn append(
    repo: &IndexedRepository,
    tar: &mut tar::Builder<&mut dyn Write>,
    path: &Path,
    node: &Node,
    first_links: &mut HashMap<(u64, u64), PathBuf>,
    summary: &mut TarSummary,
) -> Result<()> {
    let io = |e| Error::io(format!("writing {} to the tar stream", path.display()), e);
    if node.kind != NodeKind::Socket {
        append_precise_mtime(tar, node).map_err(io)?;
    }
    match node.kind {
        NodeKind::File => {
            if node.links > 1 {
                let key = (node.device, node.inode);
                if let Some(first) = first_links.get(&key) {
                    let mut h = header_for(node, tar::EntryType::Link);
                    tar.append_link(&mut h, path, first).map_err(io)?;
                    summary.others += 1;
                    return Ok(());
                }
                first_links.insert(key, path.to_path_buf());
            }
            let mut h = header_for(node, tar::EntryType::Regular);
            h.set_size(node.size);
            let content = StreamReader::new(repo, node.content.clone());
            tar.append_data(&mut h, path, content).map_err(io)?;
            summary.files += 1;
            summary.bytes += node.size;
        }
        NodeKind::Dir => {
            let mut h = header_for(node, tar::EntryType::Directory);
            tar.append_data(&mut h, path, std::io::empty())
                .map_err(io)?;
            summary.dirs += 1;
        }
        NodeKind::Symlink => {
            let target = node.link_target.as_ref().map_or(&[][..], |t| &t.0[..]);
            let target = Path::new(std::ffi::OsStr::from_bytes(target));
            let mut h = header_for(node, tar::EntryType::Symlink);
            tar.append_link(&mut h, path, target).map_err(io)?;
            summary.others += 1;
        }
        NodeKind::Fifo | NodeKind::CharDev | NodeKind::BlockDev => {
            let kind = match node.kind {
                NodeKind::Fifo => tar::EntryType::Fifo,
                NodeKind::CharDev => tar::EntryType::Char,
                _ => tar::EntryType::Block,
            };
            let mut h = header_for(node, kind);
            if node.kind != NodeKind::Fifo {
                let (major, minor) = (libc::major(node.rdev), libc::minor(node.rdev));
                h.set_device_major(major).map_err(io)?;
                h.set_device_minor(minor).map_err(io)?;
            }
            tar.append_data(&mut h, path, std::io::empty())
                .map_err(io)?;
            summary.others += 1;
        }
        NodeKind::Socket => {}
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_pax_record_counts_its_own_length() {
        assert_eq!(pax_record("mtime", "1.5"), "13 mtime=1.5\n");
        let r = pax_record("mtime", "1796062638.154423816");
        assert_eq!(r.len().to_string(), r.split(' ').next().unwrap());
    }
}
