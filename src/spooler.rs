//! The process's handle on the spool file (CONTRACTS §5): opened lazily in the child (after it
//! dropped privileges), shared by the request threads (append) and the replay thread.

use std::path::{Path, PathBuf};
use std::sync::{Mutex, OnceLock};

use spread_sys::spool::{Appended, Spool};

/// Create the spool's directory (as root, before the children drop privileges) and give it to
/// Apache's `User` (`uid`, `gid`), so children can create, rename and lock spool segments there.
/// Spool files left by a process running as root (e.g. `apache2 -X` started by hand) are handed
/// over too. Not root: only the directory is created, if missing.
pub fn prepare_dir(spool: &Path, uid: u32, gid: u32) -> std::io::Result<()> {
    use std::os::unix::fs::{MetadataExt, PermissionsExt, chown};
    let Some(dir) = spool.parent() else {
        return Ok(());
    };
    // SAFETY: geteuid has no preconditions.
    let root = unsafe { libc::geteuid() } == 0;
    if !dir.as_os_str().is_empty() && !dir.exists() {
        std::fs::create_dir_all(dir)?;
        if root {
            chown(dir, Some(uid), Some(gid))?;
        }
        std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o750))?;
    }
    if root {
        for path in spread_sys::spool::files_for(spool).all() {
            if std::fs::metadata(path).is_ok_and(|m| m.uid() == 0) {
                chown(path, Some(uid), Some(gid))?;
            }
        }
    }
    Ok(())
}

pub enum SpoolResult {
    Written,
    Full,
    Error(String),
}

pub struct Spooler {
    path: PathBuf,
    cap: u64,
    spool: OnceLock<Spool>,
    /// Serialises the first open, so exactly one `Spool` (one set of descriptors, hence one
    /// owner of the fcntl replay lock) exists per process.
    opening: Mutex<()>,
}

impl Spooler {
    pub fn new(path: PathBuf, cap: u64) -> Spooler {
        Spooler {
            path,
            cap,
            spool: OnceLock::new(),
            opening: Mutex::new(()),
        }
    }

    /// The spool's size cap (bytes).
    pub fn cap(&self) -> u64 {
        self.cap
    }

    pub fn path(&self) -> &std::path::Path {
        &self.path
    }

    /// The open spool, opening it on first use (an error is retried on the next call).
    pub fn get(&self) -> Result<&Spool, String> {
        if let Some(s) = self.spool.get() {
            return Ok(s);
        }
        let _guard = self.opening.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(s) = self.spool.get() {
            return Ok(s);
        }
        let spool = Spool::open(&self.path, self.cap)
            .map_err(|e| format!("cannot open spool {}: {e}", self.path.display()))?;
        Ok(self.spool.get_or_init(|| spool))
    }

    pub fn append(&self, daemon_id: u32, group: &str, line: &[u8]) -> SpoolResult {
        self.append_any(daemon_id, group, line, None)
    }

    /// [`Spooler::append`] of a line sent before, keeping its stream and number (`origin`).
    pub fn append_any(
        &self,
        daemon_id: u32,
        group: &str,
        line: &[u8],
        origin: Option<spread_sys::spool::Origin>,
    ) -> SpoolResult {
        let spool = match self.get() {
            Ok(s) => s,
            Err(e) => return SpoolResult::Error(e),
        };
        match spool.append_any(daemon_id, group.as_bytes(), line, origin) {
            Ok(Appended::Written) => SpoolResult::Written,
            Ok(Appended::Full) => SpoolResult::Full,
            Err(e) => SpoolResult::Error(e.to_string()),
        }
    }

    /// Bytes waiting (0 when the spool was never opened and does not exist).
    pub fn pending(&self) -> u64 {
        if self.spool.get().is_none() && !self.path.exists() {
            return 0;
        }
        self.get().map(Spool::pending_bytes).unwrap_or(0)
    }
}
