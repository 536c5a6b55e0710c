//! File-system operations beneath a restore target that can never reach outside it.
//!
//! Everything is relative to an open directory descriptor and done with `*at` calls and
//! `O_NOFOLLOW`: a symlink already in the target (or planted during the restore) is never
//! followed, and names are single components checked by [`Name::validate`]. Nothing here
//! takes a path with more than one component.

use std::ffi::CString;
use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};

use repo_core::tree::Name;

/// A name as a C string; a name that is not one safe component is refused here too, so a
/// bug elsewhere cannot turn into an escape.
pub fn c_name(name: &[u8]) -> io::Result<CString> {
    Name(name.to_vec())
        .validate()
        .map_err(|e| io::Error::new(io::ErrorKind::InvalidInput, e))?;
    CString::new(name).map_err(|e| io::Error::new(io::ErrorKind::InvalidInput, e))
}

fn check(rc: libc::c_int) -> io::Result<libc::c_int> {
    if rc < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(rc)
    }
}

/// Opens a directory by path (the restore target itself; the caller chose it).
pub fn open_root(path: &std::path::Path) -> io::Result<OwnedFd> {
    use std::os::unix::ffi::OsStrExt;
    let c = CString::new(path.as_os_str().as_bytes())
        .map_err(|e| io::Error::new(io::ErrorKind::InvalidInput, e))?;
    let fd = check(unsafe {
        libc::open(
            c.as_ptr(),
            libc::O_RDONLY | libc::O_DIRECTORY | libc::O_CLOEXEC,
        )
    })?;
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

/// Opens the subdirectory `name` of `dir`, refusing a symlink.
pub fn open_dir(dir: RawFd, name: &[u8]) -> io::Result<OwnedFd> {
    let c = c_name(name)?;
    let fd = check(unsafe {
        libc::openat(
            dir,
            c.as_ptr(),
            libc::O_RDONLY | libc::O_DIRECTORY | libc::O_NOFOLLOW | libc::O_CLOEXEC,
        )
    })?;
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

/// Opens an existing regular file for reading and writing, refusing a symlink.
pub fn open_file(dir: RawFd, name: &[u8]) -> io::Result<std::fs::File> {
    let c = c_name(name)?;
    let fd = check(unsafe {
        libc::openat(
            dir,
            c.as_ptr(),
            libc::O_RDWR | libc::O_NOFOLLOW | libc::O_CLOEXEC,
        )
    })?;
    Ok(unsafe { std::fs::File::from_raw_fd(fd) })
}

/// Opens (creating if needed) a regular file for writing, truncated, refusing a symlink.
pub fn create_file(dir: RawFd, name: &[u8]) -> io::Result<std::fs::File> {
    let c = c_name(name)?;
    let fd = check(unsafe {
        libc::openat(
            dir,
            c.as_ptr(),
            // Read-write so `verify` can read back through the same descriptor.
            libc::O_RDWR | libc::O_CREAT | libc::O_TRUNC | libc::O_NOFOLLOW | libc::O_CLOEXEC,
            0o600 as libc::c_uint,
        )
    })?;
    Ok(unsafe { std::fs::File::from_raw_fd(fd) })
}

/// `lstat` of `name` in `dir`; `None` when it does not exist.
pub fn stat_at(dir: RawFd, name: &[u8]) -> io::Result<Option<libc::stat>> {
    let c = c_name(name)?;
    let mut st: libc::stat = unsafe { std::mem::zeroed() };
    match check(unsafe { libc::fstatat(dir, c.as_ptr(), &mut st, libc::AT_SYMLINK_NOFOLLOW) }) {
        Ok(_) => Ok(Some(st)),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(e),
    }
}

pub fn mkdir_at(dir: RawFd, name: &[u8], mode: u32) -> io::Result<()> {
    let c = c_name(name)?;
    check(unsafe { libc::mkdirat(dir, c.as_ptr(), mode as libc::mode_t) }).map(drop)
}

pub fn symlink_at(dir: RawFd, name: &[u8], target: &[u8]) -> io::Result<()> {
    let c = c_name(name)?;
    let t = CString::new(target).map_err(|e| io::Error::new(io::ErrorKind::InvalidInput, e))?;
    check(unsafe { libc::symlinkat(t.as_ptr(), dir, c.as_ptr()) }).map(drop)
}

pub fn mknod_at(dir: RawFd, name: &[u8], mode: u32, rdev: u64) -> io::Result<()> {
    let c = c_name(name)?;
    check(unsafe { libc::mknodat(dir, c.as_ptr(), mode as libc::mode_t, rdev as libc::dev_t) })
        .map(drop)
}

/// Makes `to_name` in `to_dir` a hard link of `from_name` in `from_dir` (never following a
/// symlink at `from_name`).
pub fn link_at(from_dir: RawFd, from_name: &[u8], to_dir: RawFd, to_name: &[u8]) -> io::Result<()> {
    let (f, t) = (c_name(from_name)?, c_name(to_name)?);
    check(unsafe { libc::linkat(from_dir, f.as_ptr(), to_dir, t.as_ptr(), 0) }).map(drop)
}

/// Removes a non-directory entry.
pub fn unlink_at(dir: RawFd, name: &[u8]) -> io::Result<()> {
    let c = c_name(name)?;
    check(unsafe { libc::unlinkat(dir, c.as_ptr(), 0) }).map(drop)
}

/// Removes a directory and everything below it, without following symlinks.
pub fn remove_tree_at(dir: RawFd, name: &[u8]) -> io::Result<()> {
    let sub = open_dir(dir, name)?;
    for child in list_dir(sub.as_raw_fd())? {
        match stat_at(sub.as_raw_fd(), &child)? {
            Some(st) if st.st_mode & libc::S_IFMT == libc::S_IFDIR => {
                remove_tree_at(sub.as_raw_fd(), &child)?
            }
            Some(_) => unlink_at(sub.as_raw_fd(), &child)?,
            None => {}
        }
    }
    drop(sub);
    let c = c_name(name)?;
    check(unsafe { libc::unlinkat(dir, c.as_ptr(), libc::AT_REMOVEDIR) }).map(drop)
}

/// Names in a directory (without `.` and `..`), read through its descriptor.
pub fn list_dir(dir: RawFd) -> io::Result<Vec<Vec<u8>>> {
    let dup = check(unsafe { libc::fcntl(dir, libc::F_DUPFD_CLOEXEC, 0) })?;
    let stream = unsafe { libc::fdopendir(dup) };
    if stream.is_null() {
        let e = io::Error::last_os_error();
        unsafe { libc::close(dup) };
        return Err(e);
    }
    // The duplicate shares the original's offset: start from the beginning.
    unsafe { libc::rewinddir(stream) };
    let mut names = Vec::new();
    loop {
        let entry = unsafe { libc::readdir(stream) };
        if entry.is_null() {
            break;
        }
        let name = unsafe { std::ffi::CStr::from_ptr((*entry).d_name.as_ptr()) }.to_bytes();
        if name != b"." && name != b".." {
            names.push(name.to_vec());
        }
    }
    unsafe { libc::closedir(stream) };
    Ok(names)
}

/// Sets access and modification times of `name` in `dir`, not following a symlink
/// (`None` name: the directory itself).
pub fn set_times_at(dir: RawFd, name: Option<&[u8]>, mtime: libc::timespec) -> io::Result<()> {
    let times = [mtime, mtime];
    match name {
        None => check(unsafe { libc::futimens(dir, times.as_ptr()) }).map(drop),
        Some(n) => {
            let c = c_name(n)?;
            check(unsafe {
                libc::utimensat(dir, c.as_ptr(), times.as_ptr(), libc::AT_SYMLINK_NOFOLLOW)
            })
            .map(drop)
        }
    }
}

/// Sets owner of `name` in `dir` (or of `dir` itself), not following a symlink.
pub fn chown_at(dir: RawFd, name: Option<&[u8]>, uid: u32, gid: u32) -> io::Result<()> {
    match name {
        None => check(unsafe { libc::fchown(dir, uid, gid) }).map(drop),
        Some(n) => {
            let c = c_name(n)?;
            check(unsafe { libc::fchownat(dir, c.as_ptr(), uid, gid, libc::AT_SYMLINK_NOFOLLOW) })
                .map(drop)
        }
    }
}

/// Sets the mode of `name` in `dir`, a fifo or device node just made there, never
/// following a symlink: something swapped in meanwhile (a symlink to /etc/shadow, in a
/// target another user can write) is refused, not changed. Linux cannot set a symlink's
/// mode, and glibc's `fchmodat` with `AT_SYMLINK_NOFOLLOW` refuses one (`EOPNOTSUPP`).
pub fn chmod_special_at(dir: RawFd, name: &[u8], mode: u32) -> io::Result<()> {
    let n = c_name(name)?;
    // SAFETY: `n` is a NUL-terminated name, `dir` an open directory descriptor.
    let rc = unsafe {
        libc::fchmodat(
            dir,
            n.as_ptr(),
            (mode & 0o7777) as libc::mode_t,
            libc::AT_SYMLINK_NOFOLLOW,
        )
    };
    match check(rc) {
        Err(e) if e.raw_os_error() == Some(libc::EOPNOTSUPP) => Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            "a symlink is in the way; its mode is not set",
        )),
        r => r.map(drop),
    }
}

/// Sets permission bits on an open file or directory.
pub fn chmod_fd(fd: RawFd, mode: u32) -> io::Result<()> {
    check(unsafe { libc::fchmod(fd, mode as libc::mode_t) }).map(drop)
}

/// Sets one extended attribute on an open file or directory.
pub fn set_xattr_fd(fd: RawFd, name: &[u8], value: &[u8]) -> io::Result<()> {
    let c = CString::new(name).map_err(|e| io::Error::new(io::ErrorKind::InvalidInput, e))?;
    check(unsafe {
        libc::fsetxattr(
            fd,
            c.as_ptr(),
            value.as_ptr() as *const libc::c_void,
            value.len(),
            0,
        )
    })
    .map(drop)
}

/// The process runs as root (owners and device nodes can be restored).
pub fn is_root() -> bool {
    unsafe { libc::geteuid() == 0 }
}

/// Removes an empty directory.
pub fn unlink_dir(dir: RawFd, name: &[u8]) -> io::Result<()> {
    let c = c_name(name)?;
    check(unsafe { libc::unlinkat(dir, c.as_ptr(), libc::AT_REMOVEDIR) }).map(drop)
}

/// A new descriptor for the same directory.
pub fn dup_dir(dir: RawFd) -> io::Result<OwnedFd> {
    let d = check(unsafe { libc::fcntl(dir, libc::F_DUPFD_CLOEXEC, 0) })?;
    Ok(unsafe { OwnedFd::from_raw_fd(d) })
}
