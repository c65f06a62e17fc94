//! Spool replay off the request path: a background thread in each child. TEMPORARY until the
//! spool lands on branch `sys`.

use std::sync::atomic::AtomicBool;

use crate::config::ModuleConfig;

pub fn start(cfg: ModuleConfig, host: String, pid: u32, stop: &'static AtomicBool) {
    let _ = (cfg, host, pid, stop);
}
