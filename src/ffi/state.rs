//! Process-wide state of one configuration generation. Directives fill `PENDING` in the parent;
//! `check_config` freezes it; `child_init` builds the child's `Runtime` (connections, spool).
//! The DSO is reloaded on restart, so every static starts fresh with each generation.

use std::sync::atomic::{AtomicPtr, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

use crate::config::ModuleConfig;
use crate::target::Target;
use crate::transport::Transport;

/// `SpreadErrorLog` of one server (main or vhost).
#[derive(Debug, Clone)]
pub struct ErrorLogConf {
    pub target: Target,
    /// Highest level shipped (Apache numbering: 0 emerg .. 7 debug).
    pub max_level: u32,
}

/// What the directives set (parent, while the configuration is read).
#[derive(Default)]
pub struct Pending {
    pub cfg: ModuleConfig,
    /// `SpreadErrorLog` per server_rec address; vhosts without one use the main server's.
    pub error_logs: Vec<(usize, ErrorLogConf)>,
    /// Addresses of our writer handles (created in open_logs).
    pub handles: Vec<usize>,
    pub finalized: Option<Arc<ModuleConfig>>,
}

static PENDING: Mutex<Option<Pending>> = Mutex::new(None);

pub fn pending() -> MutexGuard<'static, Option<Pending>> {
    PENDING.lock().unwrap_or_else(|p| p.into_inner())
}

/// Run `f` on the pending state (created on first use).
pub fn with_pending<T>(f: impl FnOnce(&mut Pending) -> T) -> T {
    let mut guard = pending();
    f(guard.get_or_insert_with(Pending::default))
}

pub fn reset_pending() {
    *pending() = Some(Pending::default());
}

/// A child's state.
pub struct Runtime {
    pub transport: Transport,
    /// Sorted addresses of our writer handles (frozen at child_init: they never change after fork).
    pub handles: Box<[usize]>,
    pub error_logs: Vec<(usize, ErrorLogConf)>,
    pub main_server: usize,
    /// Set once by child_init; stopped (and waited for) by the child-exit cleanup.
    pub replay: std::sync::OnceLock<crate::replay::ReplayThread>,
}

impl Runtime {
    pub fn owns(&self, handle: usize) -> bool {
        self.handles.binary_search(&handle).is_ok()
    }

    pub fn error_log_for(&self, server: usize) -> Option<&ErrorLogConf> {
        let find = |s: usize| {
            self.error_logs
                .iter()
                .find(|(k, _)| *k == s)
                .map(|(_, c)| c)
        };
        find(server).or_else(|| find(self.main_server))
    }
}

static RUNTIME: AtomicPtr<Runtime> = AtomicPtr::new(std::ptr::null_mut());

/// The child's runtime, if child_init has run in this process.
pub fn runtime() -> Option<&'static Runtime> {
    let p = RUNTIME.load(Ordering::Acquire);
    // SAFETY: `p` is NULL or a leaked `Box<Runtime>` published by `install_runtime`; it is never
    // freed (threads may still hold it until the process exits).
    (!p.is_null()).then(|| unsafe { &*p })
}

pub fn install_runtime(rt: Runtime) -> &'static Runtime {
    let leaked: &'static mut Runtime = Box::leak(Box::new(rt));
    RUNTIME.store(leaked, Ordering::Release);
    leaked
}

/// mod_log_config's previous writer-init and writer (saved in open_logs, chained to).
pub static PREV_INIT: AtomicUsize = AtomicUsize::new(0);
pub static PREV_WRITER: AtomicUsize = AtomicUsize::new(0);
