//! The process's handle on the spool file (CONTRACTS §5), opened lazily in the child.
//! TEMPORARY: waits for `spread_sys::spool::Spool` (branch `sys`).

use std::path::PathBuf;

pub enum SpoolResult {
    Written,
    Full,
    Error(String),
}

pub struct Spooler {
    path: PathBuf,
    cap: u64,
}

impl Spooler {
    pub fn new(path: PathBuf, cap: u64) -> Spooler {
        Spooler { path, cap }
    }
    pub fn append(&self, daemon_id: u32, group: &str, line: &[u8]) -> SpoolResult {
        let _ = (daemon_id, group, line, self.cap);
        SpoolResult::Error(format!(
            "spool {} not available in this build",
            self.path.display()
        ))
    }
}
