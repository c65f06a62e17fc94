//! Becoming a daemon, the pidfile, and dropping root after files and sockets are open.

use std::ffi::CString;
use std::io;
use std::path::{Path, PathBuf};

#[derive(Debug, thiserror::Error)]
pub enum ProcessError {
    #[error("cannot daemonise: {0}")]
    Daemonise(io::Error),
    #[error("cannot write pidfile {path}: {source}")]
    Pidfile { path: PathBuf, source: io::Error },
    #[error("unknown user {0:?}")]
    UnknownUser(String),
    #[error("unknown group {0:?}")]
    UnknownGroup(String),
    #[error("cannot drop privileges to {what}: {source}")]
    Drop { what: String, source: io::Error },
}

/// Fork twice, start a new session, chdir to `/`, point stdio at /dev/null. Must be called while
/// the process has only one thread.
pub fn daemonise() -> Result<(), ProcessError> {
    fn fork_and_exit_parent() -> io::Result<()> {
        // SAFETY: called before any thread is started, so the child is a consistent copy.
        match unsafe { libc::fork() } {
            -1 => Err(io::Error::last_os_error()),
            0 => Ok(()),
            // SAFETY: _exit skips destructors and atexit handlers, which belong to the child now.
            _ => unsafe { libc::_exit(0) },
        }
    }
    fork_and_exit_parent().map_err(ProcessError::Daemonise)?;
    // SAFETY: setsid has no memory effects.
    if unsafe { libc::setsid() } < 0 {
        return Err(ProcessError::Daemonise(io::Error::last_os_error()));
    }
    fork_and_exit_parent().map_err(ProcessError::Daemonise)?;
    std::env::set_current_dir("/").map_err(ProcessError::Daemonise)?;
    let null = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open("/dev/null")
        .map_err(ProcessError::Daemonise)?;
    use std::os::fd::AsRawFd;
    for fd in 0..3 {
        // SAFETY: dup2 onto the standard descriptors, from a descriptor we own.
        if unsafe { libc::dup2(null.as_raw_fd(), fd) } < 0 {
            return Err(ProcessError::Daemonise(io::Error::last_os_error()));
        }
    }
    Ok(())
}

pub fn write_pidfile(path: &Path) -> Result<(), ProcessError> {
    std::fs::write(path, format!("{}\n", std::process::id())).map_err(|source| {
        ProcessError::Pidfile {
            path: path.to_owned(),
            source,
        }
    })
}

/// The ids of `group` and of `user` (with its name, for initgroups); a user without a group
/// gets the user's primary group. `spreadlogd -t` checks them the same way.
#[allow(clippy::type_complexity)]
pub fn resolve_ids(
    user: Option<&str>,
    group: Option<&str>,
) -> Result<(Option<libc::gid_t>, Option<(libc::uid_t, CString)>), ProcessError> {
    let mut gid: Option<libc::gid_t> = None;
    if let Some(g) = group {
        let c = CString::new(g).map_err(|_| ProcessError::UnknownGroup(g.into()))?;
        // SAFETY: getgrnam reads a NUL-terminated string and returns a pointer to static storage,
        // which we read at once (single-threaded at this point).
        let gr = unsafe { libc::getgrnam(c.as_ptr()) };
        if gr.is_null() {
            return Err(ProcessError::UnknownGroup(g.into()));
        }
        // SAFETY: gr is non-null and points to a valid group entry.
        gid = Some(unsafe { (*gr).gr_gid });
    }
    let mut uid: Option<(libc::uid_t, CString)> = None;
    if let Some(u) = user {
        let c = CString::new(u).map_err(|_| ProcessError::UnknownUser(u.into()))?;
        // SAFETY: as for getgrnam above.
        let pw = unsafe { libc::getpwnam(c.as_ptr()) };
        if pw.is_null() {
            return Err(ProcessError::UnknownUser(u.into()));
        }
        // SAFETY: pw is non-null and points to a valid passwd entry.
        let (pu, pg) = unsafe { ((*pw).pw_uid, (*pw).pw_gid) };
        gid.get_or_insert(pg);
        uid = Some((pu, c));
    }
    Ok((gid, uid))
}

/// setgid/initgroups/setuid to `user` (and `group`, else the user's primary group). A no-op when
/// neither is given.
pub fn drop_privileges(user: Option<&str>, group: Option<&str>) -> Result<(), ProcessError> {
    if user.is_none() && group.is_none() {
        return Ok(());
    }
    let (gid, uid) = resolve_ids(user, group)?;
    let err = |what: String| ProcessError::Drop {
        what,
        source: io::Error::last_os_error(),
    };
    if let Some(g) = gid {
        // SAFETY: plain syscalls on integers / a NUL-terminated name.
        unsafe {
            if let Some((_, name)) = &uid
                && libc::initgroups(name.as_ptr(), g) != 0
            {
                return Err(err(format!(
                    "supplementary groups of {}",
                    user.unwrap_or_default()
                )));
            }
            if libc::setgid(g) != 0 {
                return Err(err(format!("group {g}")));
            }
        }
    }
    if let Some((u, _)) = uid {
        // SAFETY: plain syscall on an integer.
        if unsafe { libc::setuid(u) } != 0 {
            return Err(err(format!("user {u}")));
        }
    }
    Ok(())
}
