//! Hook registration and the configuration-lifecycle hooks (all run in the parent except
//! child_init): pre_config resets, check_config validates everything `configtest` must catch,
//! post_config prepares shared counters and the spool directory, open_logs installs the writer.

use std::ffi::{c_int, c_void};
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use crate::apache::{self, apr_pool_t, server_rec};
use crate::config::{FoundTarget, ModuleConfig};
use crate::counters;
use crate::target;
use crate::transport::Transport;
use spread_sys::private_name::Role;

use super::state::{self, PREV_INIT, PREV_WRITER, Runtime, with_pending};
use super::util::{
    self, APLOG_EMERG, APLOG_ERR, APLOG_INFO, APLOG_NOTICE, APLOG_STARTUP, guarded, log, opt_str,
};
use super::{errorlog, status, writer};

const OK: c_int = apache::OK as c_int;
const DECLINED: c_int = apache::DECLINED as c_int;
const CONFIG_FAILED: c_int = apache::HTTP_INTERNAL_SERVER_ERROR as c_int;

/// # Safety
/// Called once (from the module record's `register_hooks`) with the configuration pool.
pub unsafe fn register(_p: *mut apr_pool_t) {
    let middle = apache::APR_HOOK_MIDDLE as c_int;
    // SAFETY: registering static functions with the documented signatures; NULL pre/succ lists.
    unsafe {
        apache::ap_hook_pre_config(Some(pre_config), std::ptr::null(), std::ptr::null(), middle);
        apache::ap_hook_check_config(
            Some(check_config),
            std::ptr::null(),
            std::ptr::null(),
            middle,
        );
        apache::ap_hook_post_config(
            Some(post_config),
            std::ptr::null(),
            std::ptr::null(),
            middle,
        );
        // Before mod_log_config's own open_logs, and after BufferedLogs swapped the writer.
        apache::ap_hook_open_logs(
            Some(open_logs),
            std::ptr::null(),
            std::ptr::null(),
            apache::APR_HOOK_REALLY_FIRST,
        );
        apache::ap_hook_child_init(Some(child_init), std::ptr::null(), std::ptr::null(), middle);
        apache::ap_hook_handler(
            Some(status::handler),
            std::ptr::null(),
            std::ptr::null(),
            middle,
        );
        apache::ap_hook_error_log(
            Some(errorlog::hook),
            std::ptr::null(),
            std::ptr::null(),
            middle,
        );
        apache::ap_hook_monitor(Some(monitor), std::ptr::null(), std::ptr::null(), middle);
    }
}

unsafe extern "C" fn pre_config(
    _pconf: *mut apr_pool_t,
    _plog: *mut apr_pool_t,
    _ptemp: *mut apr_pool_t,
) -> c_int {
    guarded("pre_config", OK, || {
        state::reset_pending();
        OK
    })
}

/// Walk the parsed configuration for CustomLog/TransferLog/GlobalLog with a Spread target.
///
/// # Safety
/// `node` is NULL or a node of Apache's configuration tree; `pool` a live pool.
unsafe fn collect_targets(
    pool: *mut apr_pool_t,
    mut node: *const apache::ap_directive_t,
    out: &mut Vec<FoundTarget>,
) {
    while !node.is_null() {
        // SAFETY: `node` is a valid tree node (caller contract); its strings are NUL-terminated.
        let n = unsafe { &*node };
        // SAFETY: directive names in the tree are NUL-terminated strings.
        let name = unsafe { opt_str(n.directive) }.unwrap_or("");
        if ["CustomLog", "TransferLog", "GlobalLog"]
            .iter()
            .any(|d| d.eq_ignore_ascii_case(name))
            && !n.args.is_null()
        {
            let mut args = n.args;
            // SAFETY: ap_getword_conf reads a NUL-terminated string, handles quotes, copies into pool.
            let first = unsafe { apache::ap_getword_conf(pool, &mut args) };
            // SAFETY: ap_getword_conf returns a NUL-terminated copy in the pool.
            if let Some(t) = unsafe { opt_str(first) }
                && target::is_spread_target(t)
            {
                // SAFETY: the node's file name is NULL or a NUL-terminated string.
                let file = unsafe { opt_str(n.filename) }.unwrap_or("?").to_owned();
                out.push(FoundTarget {
                    target: t.to_owned(),
                    file,
                    line: n.line_num,
                    directive: name.to_owned(),
                });
            }
        }
        if !n.first_child.is_null() {
            // SAFETY: children are valid tree nodes too.
            unsafe { collect_targets(pool, n.first_child, out) };
        }
        node = n.next;
    }
}

/// Everything configtest must refuse, as readable messages; on success the configuration is
/// frozen for the children.
fn finalize(found: &[FoundTarget]) -> Result<Arc<ModuleConfig>, Vec<String>> {
    with_pending(|p| {
        p.cfg
            .finalize(found, p.error_logs.iter().map(|(_, el)| &el.target))?;
        let frozen = Arc::new(p.cfg.clone());
        p.finalized = Some(frozen.clone());
        Ok(frozen)
    })
}

unsafe extern "C" fn check_config(
    _pconf: *mut apr_pool_t,
    _plog: *mut apr_pool_t,
    ptemp: *mut apr_pool_t,
    s: *mut server_rec,
) -> c_int {
    guarded("check_config", CONFIG_FAILED, || {
        let mut found = Vec::new();
        // SAFETY: ap_conftree is Apache's parsed tree, alive during check_config; ptemp is live.
        unsafe { collect_targets(ptemp, apache::ap_conftree, &mut found) };
        match finalize(&found) {
            Ok(_) => OK,
            Err(errors) => {
                for e in errors {
                    log(
                        s,
                        APLOG_EMERG | APLOG_STARTUP,
                        &format!("mod_log_spread: {e}"),
                    );
                }
                CONFIG_FAILED
            }
        }
    })
}

/// The parent's pid, taken in post_config (which only the parent runs).
static PARENT_PID: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);

/// The configuration pool's cleanup: the crash journal's slots go with the generation.
///
/// In the parent this runs after a stop or restart, once the MPM has reaped the children it
/// stopped, so the slots of children that died since the monitor's last look (up to ten
/// seconds ago, or a child that crashed on its way out of an ungraceful stop) are spooled now.
/// Children that a graceful restart left running keep their slots: the region is then retired,
/// not unmapped, and the next generation goes on looking at it. Children run this too (at
/// `exit()`), where only the unmapping is theirs to do.
unsafe extern "C" fn unmap_crash_journal(data: *mut c_void) -> apache::apr_status_t {
    guarded("crash journal cleanup", 0, || {
        let parent = std::process::id() == PARENT_PID.load(Ordering::Relaxed);
        if parent {
            spool_orphans(data.cast());
        }
        if !crate::crash_journal::uninstall(parent) {
            log(
                data.cast(),
                APLOG_ERR,
                &format!(
                    "mod_log_spread: children of an earlier generation are still running and \
                     their windows can no longer be watched (more than {} generations at once, \
                     or no memory for the table): lines they hold are lost if they crash",
                    crate::crash_journal::MAX_RETIRED
                ),
            );
        }
        0
    })
}

/// The parent's table of retired crash-journal regions ([`crate::crash_journal::Retired`]),
/// kept in Apache's process pool: it outlives this module, which a restart unloads.
fn adopt_retired_regions(s: *mut server_rec) {
    // The table's own format is in the key (`Retired`, `RetiredRegion`): a build that changes
    // them names another key, so it never reads an older build's table as its own.
    const KEY: &std::ffi::CStr = c"mod_log_spread/crash_journal/retired/1";
    // SAFETY: `s` is the main server Apache passed to post_config; its process record and the
    // process pool live as long as the process.
    let pool = unsafe { (*(*s).process).pool };
    let mut data: *mut c_void = std::ptr::null_mut();
    // SAFETY: reads the pool's user data under our key into `data`.
    unsafe { apache::apr_pool_userdata_get(&mut data, KEY.as_ptr(), pool) };
    if data.is_null() {
        let size = std::mem::size_of::<crate::crash_journal::Retired>();
        // SAFETY: allocates from the process pool, which lives as long as the process; the bytes
        // are zeroed before use (an all-zero table is empty) and published with no cleanup
        // (plain data). `apr_pool_userdata_set`, not `_setn`: the pool keeps a copy of the key,
        // since ours is in this DSO, which a restart unmaps (`_setn` keeps the pointer, and the
        // next generation's lookup then read freed memory: Apache crashed at startup).
        unsafe {
            data = apache::apr_palloc(pool, size as apache::apr_size_t);
            if data.is_null() {
                return;
            }
            std::ptr::write_bytes(data.cast::<u8>(), 0, size);
            apache::apr_pool_userdata_set(data, KEY.as_ptr(), None, pool);
        }
    }
    // SAFETY: the table lives in the process pool (valid for the whole process) and is only
    // used by this process's main thread; its entries were written by `uninstall` of this or an
    // earlier generation of this process, each describing one of its mappings.
    let kept = unsafe { crate::crash_journal::adopt_retired(data.cast()) };
    if kept > 0 {
        log(
            s,
            APLOG_INFO,
            &format!(
                "mod_log_spread: watching the windows of {kept} earlier generation(s) of \
                 children until they exit"
            ),
        );
    }
}

unsafe extern "C" fn post_config(
    pconf: *mut apr_pool_t,
    _plog: *mut apr_pool_t,
    _ptemp: *mut apr_pool_t,
    s: *mut server_rec,
) -> c_int {
    guarded("post_config", OK, || {
        PARENT_PID.store(std::process::id(), Ordering::Relaxed);
        adopt_retired_regions(s);
        if !counters::install_shared() {
            log(
                s,
                APLOG_ERR,
                "mod_log_spread: no shared memory for counters; counting per process",
            );
        }
        if !crate::group_counters::install_shared() {
            log(
                s,
                APLOG_ERR,
                "mod_log_spread: no shared memory for the counters per group; counting totals only",
            );
        }
        if !crate::gauges::install_shared() {
            log(
                s,
                APLOG_ERR,
                "mod_log_spread: no shared memory for the children's gauges; the status page \
                 shows only the serving child's",
            );
        }
        let cfg = with_pending(|p| p.finalized.clone());
        if let Some(cfg) = cfg.as_ref() {
            let mut limit: c_int = 0;
            // SAFETY: asks the MPM for a number into our variable.
            unsafe {
                apache::ap_mpm_query(apache::AP_MPMQ_HARD_LIMIT_DAEMONS as c_int, &mut limit)
            };
            // A request connection and a replayer connection per child and daemon.
            let slots = 2 * (limit.max(1) as usize) * cfg.daemons.len().max(1);
            // Lines plus a 16-byte header each: twice the window holds lines of 16 bytes on.
            // Without acks a slot holds only its connection's numbers.
            let ring_bytes = if cfg.acknowledge {
                2 * cfg.ack_window as usize
            } else {
                0
            };
            if crate::crash_journal::install(slots, ring_bytes) {
                // SAFETY: a static cleanup on the configuration pool, which runs before the
                // module is unloaded; its data is the main server, allocated in that same pool
                // (freed only after its cleanups ran).
                unsafe {
                    apache::apr_pool_cleanup_register(
                        pconf,
                        s.cast(),
                        Some(unmap_crash_journal),
                        Some(apache::apr_pool_cleanup_null),
                    );
                }
            } else {
                log(
                    s,
                    APLOG_ERR,
                    "mod_log_spread: no shared memory for the children's windows and numbers; \
                     lines held by a child that crashes are lost",
                );
            }
        }
        let (uid, gid) = apache_user();
        if let Some(cfg) = cfg
            && let Err(e) = crate::spooler::prepare_dir(&cfg.spool_path, uid, gid)
        {
            log(
                s,
                APLOG_ERR,
                &format!("mod_log_spread: spool {}: {e}", cfg.spool_path.display()),
            );
        }
        OK
    })
}

type SetInitFn = unsafe extern "C" fn(Option<writer::InitFn>) -> Option<writer::InitFn>;
type SetWriterFn = unsafe extern "C" fn(Option<writer::WriterFn>) -> Option<writer::WriterFn>;

unsafe extern "C" fn open_logs(
    _pconf: *mut apr_pool_t,
    _plog: *mut apr_pool_t,
    _ptemp: *mut apr_pool_t,
    s: *mut server_rec,
) -> c_int {
    guarded("open_logs", OK, || {
        // SAFETY: apr_dynamic_fn_retrieve looks a name up in APR's optional-function table.
        let (set_init, set_writer) = unsafe {
            (
                apache::apr_dynamic_fn_retrieve(c"ap_log_set_writer_init".as_ptr()),
                apache::apr_dynamic_fn_retrieve(c"ap_log_set_writer".as_ptr()),
            )
        };
        let (Some(set_init), Some(set_writer)) = (set_init, set_writer) else {
            log(
                s,
                APLOG_ERR | APLOG_STARTUP,
                "mod_log_spread: mod_log_config's writer API is missing; Spread targets cannot work",
            );
            return DECLINED;
        };
        // SAFETY: mod_log_config registered these optional functions with exactly these
        // prototypes (mod_log_config.h); APR stores them type-erased.
        let (set_init, set_writer): (SetInitFn, SetWriterFn) = unsafe {
            (
                std::mem::transmute::<unsafe extern "C" fn(), SetInitFn>(set_init),
                std::mem::transmute::<unsafe extern "C" fn(), SetWriterFn>(set_writer),
            )
        };
        // SAFETY: calling mod_log_config's setters with our functions of the right prototype.
        let (prev_init, prev_writer) = unsafe {
            (
                set_init(Some(writer::writer_init)),
                set_writer(Some(writer::writer)),
            )
        };
        // Never chain to ourselves (a second open_logs run in one generation).
        if let Some(f) = prev_init
            && f as usize != writer::writer_init as *const () as usize
        {
            PREV_INIT.store(f as usize, Ordering::Release);
        }
        if let Some(f) = prev_writer
            && f as usize != writer::writer as *const () as usize
        {
            PREV_WRITER.store(f as usize, Ordering::Release);
        }
        OK
    })
}

fn hostname() -> String {
    let mut buf = [0u8; 256];
    // SAFETY: gethostname writes at most buf.len() bytes into our buffer.
    let rc = unsafe { libc::gethostname(buf.as_mut_ptr().cast(), buf.len()) };
    if rc != 0 {
        return "localhost".to_owned();
    }
    let end = buf.iter().position(|&b| b == 0).unwrap_or(buf.len());
    String::from_utf8_lossy(&buf[..end]).into_owned()
}

unsafe extern "C" fn child_init(pchild: *mut apr_pool_t, _s: *mut server_rec) {
    guarded("child_init", (), || {
        let (cfg, handles, error_logs) =
            with_pending(|p| (p.finalized.clone(), p.handles.clone(), p.error_logs.clone()));
        crate::crash_journal::forget_retired();
        let Some(cfg) = cfg else { return };
        let mut handles = handles.into_boxed_slice();
        handles.sort_unstable();
        // The only getpid of the child: connections and private names are per process.
        // SAFETY: getpid has no preconditions.
        let pid = unsafe { libc::getpid() } as u32;
        let host = hostname();
        let transport = Transport::new((*cfg).clone(), Role::Sender, host.clone(), pid);
        let rt = state::install_runtime(Runtime {
            transport,
            handles,
            error_logs,
            main_server: util::main_server() as usize,
            replay: std::sync::OnceLock::new(),
        });
        if let Some(thread) =
            crate::replay::start((*cfg).clone(), host, pid, &rt.transport, replay_log)
        {
            let _ = rt.replay.set(thread);
        }
        // SAFETY: registering a static cleanup with NULL data on the child's pool.
        unsafe {
            apache::apr_pool_cleanup_register(
                pchild,
                std::ptr::null(),
                Some(child_exit),
                Some(apache::apr_pool_cleanup_null),
            );
        }
    })
}

/// Replay-thread messages go to the main server's error log (never from a request thread).
fn replay_log(message: &str) {
    log(util::main_server(), APLOG_ERR, message);
}

unsafe extern "C" fn child_exit(_data: *mut c_void) -> apache::apr_status_t {
    guarded("child exit", 0, || {
        if let Some(rt) = state::runtime() {
            // Before exit() unloads this DSO, no thread of ours may still run its code.
            if let Some(thread) = rt.replay.get()
                && !thread.stop_and_wait(Duration::from_secs(3))
            {
                log(
                    util::main_server(),
                    APLOG_ERR,
                    "mod_log_spread: the spool replay thread did not stop within 3 s",
                );
            }
            let report = rt.transport.close_all(crate::replay::CLOSE_LINGER);
            log_exit(&report);
            crate::gauges::release(std::process::id());
        }
        0
    })
}

/// A child's [`crate::transport::ExitReport`] in the error log.
fn log_exit(report: &crate::transport::ExitReport) {
    use crate::transport::ExitSeverity;
    for (severity, message) in report.messages(std::process::id(), "") {
        let level = match severity {
            ExitSeverity::Info => APLOG_INFO,
            ExitSeverity::Warning => apache::APLOG_WARNING as c_int,
            ExitSeverity::Error => APLOG_ERR,
        };
        util::log_unshipped(util::main_server(), level, &message);
    }
}

static LAST_NOTICE: std::sync::Mutex<Option<Instant>> = std::sync::Mutex::new(None);

/// Apache's `User` and `Group` (mod_unixd), whom spool files belong to.
fn apache_user() -> (u32, u32) {
    // SAFETY: plain reads of mod_unixd's configuration record (filled by User/Group).
    unsafe {
        (
            apache::ap_unixd_config.user_id,
            apache::ap_unixd_config.group_id,
        )
    }
}

/// The parent's spool handle, for lines of children that died.
static PARENT_SPOOL: std::sync::OnceLock<crate::spooler::Spooler> = std::sync::OnceLock::new();

/// Parent: spool the lines a child that died (SIGKILL, a crash) still held unacknowledged.
fn spool_orphans(s: *mut server_rec) {
    let Some(cfg) = with_pending(|p| p.finalized.clone()) else {
        return;
    };
    let spool = PARENT_SPOOL
        .get_or_init(|| crate::spooler::Spooler::new(cfg.spool_path.clone(), cfg.spool_cap));
    let c = counters::get();
    let (mut kept, mut lost) = (0u64, 0u64);
    let collected = crate::crash_journal::collect_orphans(|o| {
        let group = String::from_utf8_lossy(o.group);
        let (counter, tally) = match spool.append_any(o.daemon_id, &group, o.line, Some(o.origin)) {
            crate::spooler::SpoolResult::Written => (&c.orphans_spooled, &mut kept),
            crate::spooler::SpoolResult::Full => (&c.dropped_spool_full, &mut lost),
            crate::spooler::SpoolResult::Error(_) => (&c.dropped_spool_error, &mut lost),
        };
        *tally += 1;
        counters::Counters::add(counter, 1);
    });
    announce_tails(s, &cfg, &collected.tails);
    let found = collected.lines;
    if found == 0 {
        return;
    }
    // The parent runs as root: files it created go to Apache's User like the others.
    let (uid, gid) = apache_user();
    let _ = crate::spooler::prepare_dir(&cfg.spool_path, uid, gid);
    log(
        s,
        apache::APLOG_WARNING as c_int,
        &format!(
            "mod_log_spread: a child died holding {found} unacknowledged line(s); {kept} spooled \
             for resending{}",
            if lost > 0 {
                format!(", {lost} lost (spool full or unwritable)")
            } else {
                String::new()
            }
        ),
    );
}

/// Parent: announce the numbers of a dead child's streams (connections without
/// acknowledgements) that it did not announce itself, so that collectors count the lines it
/// numbered but never wrote (a batch not yet flushed) as missing instead of never knowing.
fn announce_tails(s: *mut server_rec, cfg: &ModuleConfig, tails: &[crate::crash_journal::Tail]) {
    let mut daemons: Vec<u32> = tails.iter().map(|t| t.daemon_id).collect();
    daemons.sort_unstable();
    daemons.dedup();
    for id in daemons {
        let Some(daemon) = cfg.daemon(id) else {
            continue;
        };
        let streams: Vec<_> = tails
            .iter()
            .filter(|t| t.daemon_id == id)
            .map(|t| (t.stream, t.group.as_slice(), t.numbered))
            .collect();
        let name =
            spread_sys::private_name::derive(Role::Probe, &hostname(), std::process::id(), 0);
        let said = match spread_sys::sender::announce_for(
            &daemon.endpoint,
            name,
            cfg.service_type,
            &streams,
            cfg.connect_timeout,
        ) {
            Ok(_) => format!(
                "mod_log_spread: a child ended without announcing how many lines it had numbered \
                 (SpreadAcknowledge Off: it died, or lost its daemon at exit); its numbers on {} \
                 group(s) were announced to daemon {}, so collectors count the lines that never \
                 reached them as missing",
                streams.len(),
                daemon.name
            ),
            Err(e) => format!(
                "mod_log_spread: a child ended without announcing how many lines it had numbered \
                 (SpreadAcknowledge Off: it died, or lost its daemon at exit), and they could not \
                 be announced to daemon {} either: {e}; lines that never reached it are lost \
                 without being counted",
                daemon.name
            ),
        };
        log(s, apache::APLOG_WARNING as c_int, &said);
    }
}

/// Parent, when Apache runs its monitor (about every 10 s): the lines of children that died, and
/// the periodic counter notice (SpreadStatsInterval).
unsafe extern "C" fn monitor(_p: *mut apr_pool_t, s: *mut server_rec) -> c_int {
    guarded("monitor", DECLINED, || {
        spool_orphans(s);
        let interval = with_pending(|p| p.finalized.as_ref().map(|c| c.stats_interval))
            .unwrap_or(Duration::ZERO);
        if interval.is_zero() {
            return DECLINED;
        }
        let mut last = LAST_NOTICE.lock().unwrap_or_else(|p| p.into_inner());
        let now = Instant::now();
        if last.is_some_and(|t| now < t + interval) {
            return DECLINED;
        }
        *last = Some(now);
        log(
            s,
            APLOG_NOTICE,
            &format!("mod_log_spread counters: {}", status::counters_line()),
        );
        DECLINED
    })
}
