//! File metadata: from `lstat` and extended attributes into a tree [`Node`] (backup), and the
//! times a node records back into `timespec`s (restore).
//!
//! Times are RFC 3339 with nanoseconds, so equal times compare equal as strings.

use std::collections::HashMap;
use std::ffi::CString;
use std::fs::Metadata;
use std::io;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::MetadataExt;
use std::path::Path;
use std::sync::Mutex;

use repo_core::tree::{ByteString, Name, Node, NodeKind, Xattr};

/// A time from seconds and nanoseconds since the epoch, as stored in trees.
pub fn format_time(secs: i64, nsecs: i64) -> String {
    repo_core::time::format_unix(secs, nsecs.clamp(0, 999_999_999) as u32)
}

/// A stored time as a `timespec` (`None` if it does not parse).
pub fn parse_time(s: &str) -> Option<libc::timespec> {
    let (secs, nanos) = repo_core::time::parse_unix(s)?;
    Some(libc::timespec {
        tv_sec: secs as libc::time_t,
        tv_nsec: nanos as _,
    })
}

/// The kind of entry `lstat` found.
pub fn kind_of(meta: &Metadata) -> NodeKind {
    match meta.mode() & libc::S_IFMT {
        libc::S_IFDIR => NodeKind::Dir,
        libc::S_IFLNK => NodeKind::Symlink,
        libc::S_IFBLK => NodeKind::BlockDev,
        libc::S_IFCHR => NodeKind::CharDev,
        libc::S_IFIFO => NodeKind::Fifo,
        libc::S_IFSOCK => NodeKind::Socket,
        _ => NodeKind::File,
    }
}

/// User and group names by id, looked up once each.
#[derive(Default)]
pub struct OwnerNames {
    users: Mutex<HashMap<u32, String>>,
    groups: Mutex<HashMap<u32, String>>,
}

impl OwnerNames {
    pub fn user(&self, uid: u32) -> String {
        let mut m = self.users.lock().unwrap_or_else(|e| e.into_inner());
        m.entry(uid).or_insert_with(|| lookup_user(uid)).clone()
    }

    pub fn group(&self, gid: u32) -> String {
        let mut m = self.groups.lock().unwrap_or_else(|e| e.into_inner());
        m.entry(gid).or_insert_with(|| lookup_group(gid)).clone()
    }
}

fn lookup_user(uid: u32) -> String {
    let mut buf = vec![0 as libc::c_char; 4096];
    let mut pwd: libc::passwd = unsafe { std::mem::zeroed() };
    let mut out = std::ptr::null_mut();
    let rc = unsafe { libc::getpwuid_r(uid, &mut pwd, buf.as_mut_ptr(), buf.len(), &mut out) };
    if rc != 0 || out.is_null() {
        return String::new();
    }
    unsafe { std::ffi::CStr::from_ptr(pwd.pw_name) }
        .to_string_lossy()
        .into_owned()
}

fn lookup_group(gid: u32) -> String {
    let mut buf = vec![0 as libc::c_char; 4096];
    let mut grp: libc::group = unsafe { std::mem::zeroed() };
    let mut out = std::ptr::null_mut();
    let rc = unsafe { libc::getgrgid_r(gid, &mut grp, buf.as_mut_ptr(), buf.len(), &mut out) };
    if rc != 0 || out.is_null() {
        return String::new();
    }
    unsafe { std::ffi::CStr::from_ptr(grp.gr_name) }
        .to_string_lossy()
        .into_owned()
}

/// A node with everything `lstat` says about an entry (content, subtree and link target
/// are filled in by the caller).
pub fn node_from_meta(name: &[u8], meta: &Metadata, owners: &OwnerNames) -> Node {
    let kind = kind_of(meta);
    let links = if kind != NodeKind::Dir && meta.nlink() > 1 {
        meta.nlink()
    } else {
        0
    };
    Node {
        name: Name(name.to_vec()),
        kind,
        size: if kind == NodeKind::File {
            meta.size()
        } else {
            0
        },
        mode: meta.mode() & 0o7777,
        mtime: format_time(meta.mtime(), meta.mtime_nsec()),
        ctime: format_time(meta.ctime(), meta.ctime_nsec()),
        uid: meta.uid(),
        gid: meta.gid(),
        user: owners.user(meta.uid()),
        group: owners.group(meta.gid()),
        inode: meta.ino(),
        // The device matters only to tell hard links apart; keeping it off other entries
        // keeps trees equal when a volume is mounted with another device number.
        device: if links > 0 { meta.dev() } else { 0 },
        links,
        rdev: if matches!(kind, NodeKind::BlockDev | NodeKind::CharDev) {
            meta.rdev()
        } else {
            0
        },
        ..Default::default()
    }
}

fn c_path(path: &Path) -> io::Result<CString> {
    CString::new(path.as_os_str().as_bytes())
        .map_err(|e| io::Error::new(io::ErrorKind::InvalidInput, e))
}

/// Extended attributes of a path (not following a symlink), sorted by name. A file system
/// without xattr support has none.
pub fn read_xattrs(path: &Path) -> io::Result<Vec<Xattr>> {
    let p = c_path(path)?;
    read_xattrs_with(
        |buf| unsafe { libc::llistxattr(p.as_ptr(), buf.as_mut_ptr() as *mut _, buf.len()) },
        |name, buf| unsafe {
            libc::lgetxattr(
                p.as_ptr(),
                name.as_ptr(),
                buf.as_mut_ptr() as *mut _,
                buf.len(),
            )
        },
    )
}

/// Extended attributes of an open file (no path lookup: cheaper, and the same file that
/// was read).
pub fn read_xattrs_fd(fd: std::os::fd::RawFd) -> io::Result<Vec<Xattr>> {
    read_xattrs_with(
        |buf| unsafe { libc::flistxattr(fd, buf.as_mut_ptr() as *mut _, buf.len()) },
        |name, buf| unsafe {
            libc::fgetxattr(fd, name.as_ptr(), buf.as_mut_ptr() as *mut _, buf.len())
        },
    )
}

fn read_xattrs_with(
    list: impl Fn(&mut [u8]) -> isize,
    get: impl Fn(&CString, &mut [u8]) -> isize,
) -> io::Result<Vec<Xattr>> {
    let mut names = vec![0u8; 1024];
    let len = loop {
        let n = list(&mut names);
        if n >= 0 {
            break n as usize;
        }
        let e = io::Error::last_os_error();
        match e.raw_os_error() {
            Some(libc::ERANGE) => names.resize(names.len() * 4, 0),
            Some(libc::ENOTSUP) => return Ok(Vec::new()),
            _ => return Err(e),
        }
    };
    let mut out = Vec::new();
    for name in names[..len].split(|&b| b == 0).filter(|n| !n.is_empty()) {
        let cname =
            CString::new(name).map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e))?;
        let mut value = vec![0u8; 256];
        let n = loop {
            let n = get(&cname, &mut value);
            if n >= 0 {
                break Some(n as usize);
            }
            let e = io::Error::last_os_error();
            match e.raw_os_error() {
                Some(libc::ERANGE) if value.len() < 1 << 20 => value.resize(value.len() * 8, 0),
                // Removed between list and get.
                Some(libc::ENODATA) => break None,
                _ => return Err(e),
            }
        };
        if let Some(n) = n {
            value.truncate(n);
            out.push(Xattr {
                name: ByteString(name.to_vec()),
                value: ByteString(value),
            });
        }
    }
    out.sort_by(|a, b| a.name.cmp(&b.name));
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn times_round_trip_with_nanoseconds() {
        for (s, n) in [(0, 0), (1_700_000_000, 123_456_789), (-5, 250), (-1, 0)] {
            let text = format_time(s, n);
            let ts = parse_time(&text).unwrap();
            assert_eq!((ts.tv_sec, ts.tv_nsec), (s, n), "{text}");
        }
    }
}
