//! mod_log_config's writer pair. `writer_init` runs in the parent for every log target: ours
//! (starting with `$`) get a handle holding only configuration; every other target is passed to
//! the previous init. `writer` runs in children on request threads: our handles are sent over
//! Spread, every other handle goes unchanged to the previous writer.

use std::cell::RefCell;
use std::ffi::{c_char, c_int, c_void};
use std::sync::atomic::Ordering;
use std::time::Duration;

use crate::apache::{self, apr_pool_t, apr_size_t, apr_status_t, request_rec, server_rec};
use crate::counters::{self, Counters};
use crate::host;
use crate::line;
use crate::target::{GroupSpec, Target};
use crate::transport::{Delivery, SendFailure, Throttle, Transport};
use spread_sys::Error as SpreadError;

use super::state::{self, PREV_INIT, PREV_WRITER, with_pending};
use super::util::{APLOG_ERR, guarded, log, opt_bytes, opt_str};

pub type InitFn =
    unsafe extern "C" fn(*mut apr_pool_t, *mut server_rec, *const c_char) -> *mut c_void;
pub type WriterFn = unsafe extern "C" fn(
    *mut request_rec,
    *mut c_void,
    *mut *const c_char,
    *mut c_int,
    c_int,
    apr_size_t,
) -> apr_status_t;

/// Our handle. The two leading zero words make mod_log_config's BufferedLogs child-exit flush,
/// which reads every handle as its own buffer struct (file pointer, byte count), see an empty
/// buffer and skip it.
#[repr(C)]
pub struct Handle {
    zero: [usize; 2],
    target: Target,
}

/// # Safety
/// Called by mod_log_config (as its writer-init) with a live pool, server and target name.
pub unsafe extern "C" fn writer_init(
    p: *mut apr_pool_t,
    s: *mut server_rec,
    name: *const c_char,
) -> *mut c_void {
    // SAFETY: mod_log_config passes a NUL-terminated target name.
    let target_name = unsafe { opt_str(name) };
    if !target_name.is_some_and(crate::target::is_spread_target) {
        let prev = PREV_INIT.load(Ordering::Acquire);
        if prev == 0 {
            return std::ptr::null_mut();
        }
        // SAFETY: PREV_INIT holds the init function mod_log_config returned (same prototype).
        let prev: InitFn = unsafe { std::mem::transmute::<usize, InitFn>(prev) };
        // SAFETY: forwarding the arguments we were given.
        return unsafe { prev(p, s, name) };
    }
    guarded("writer_init", std::ptr::null_mut(), || {
        let name = target_name.unwrap_or("");
        let parsed = with_pending(|pending| {
            let target = crate::config::parse_target(name)?;
            if let Some(cfg) = &pending.finalized {
                cfg.check_target(&target)?;
            }
            Ok::<_, crate::config::ConfigError>(target)
        });
        let target = match parsed {
            Ok(t) => t,
            Err(e) => {
                log(s, APLOG_ERR, &format!("mod_log_spread: {e}"));
                return std::ptr::null_mut();
            }
        };
        let handle = Box::into_raw(Box::new(Handle {
            zero: [0, 0],
            target,
        }));
        with_pending(|pending| pending.handles.push(handle as usize));
        // The handle must be freed before this DSO is unloaded. mod_log_config hands us `plog`,
        // which Apache clears *after* `pconf` has already dlclose()d the modules (a cleanup on
        // `plog` then calls into unmapped code; seen with mod_deflate loaded first). Cleanups
        // registered on `pconf` now run before the DSO unload cleanup registered at LoadModule
        // time (pool cleanups run in reverse order of registration).
        // SAFETY: `s` is the live server_rec mod_log_config passed; its process record and pconf
        // outlive this configuration generation.
        let pool = unsafe {
            let process = (*s).process;
            if process.is_null() || (*process).pconf.is_null() {
                p
            } else {
                (*process).pconf
            }
        };
        // SAFETY: the cleanup frees exactly this Box when the configuration pool goes away.
        unsafe {
            apache::apr_pool_cleanup_register(
                pool,
                handle.cast(),
                Some(free_handle),
                Some(apache::apr_pool_cleanup_null),
            );
        }
        handle.cast()
    })
}

unsafe extern "C" fn free_handle(data: *mut c_void) -> apr_status_t {
    let addr = data as usize;
    with_pending(|pending| pending.handles.retain(|h| *h != addr));
    // SAFETY: `data` is the Box leaked in writer_init, registered once, freed once here.
    drop(unsafe { Box::from_raw(data.cast::<Handle>()) });
    0
}

thread_local! {
    /// The line buffer of this thread, reused for every line (no allocation per line).
    static LINE: RefCell<Vec<u8>> = RefCell::new(Vec::with_capacity(1024));
}

static DROP_NOTICE: Throttle = Throttle::new(Duration::from_secs(10));
static FAILOVER_NOTICE: Throttle = Throttle::new(Duration::from_secs(10));

/// # Safety
/// Called by mod_log_config (as its writer) with the request, a handle from an init, and
/// `nelts` valid (string, length) pairs.
pub unsafe extern "C" fn writer(
    r: *mut request_rec,
    handle: *mut c_void,
    strs: *mut *const c_char,
    strl: *mut c_int,
    nelts: c_int,
    len: apr_size_t,
) -> apr_status_t {
    let rt = state::runtime();
    let ours = match rt {
        Some(rt) => rt.owns(handle as usize),
        None => with_pending(|p| p.handles.contains(&(handle as usize))),
    };
    if !ours {
        let prev = PREV_WRITER.load(Ordering::Acquire);
        if prev == 0 {
            return apache::APR_EGENERAL as apr_status_t;
        }
        // SAFETY: PREV_WRITER holds mod_log_config's writer (same prototype); the handle is one
        // its init returned, passed through unchanged.
        let prev: WriterFn = unsafe { std::mem::transmute::<usize, WriterFn>(prev) };
        // SAFETY: forwarding our arguments.
        return unsafe { prev(r, handle, strs, strl, nelts, len) };
    }
    guarded("the log writer", 0, || {
        let Some(rt) = rt else {
            return apache::APR_EGENERAL as apr_status_t;
        };
        // SAFETY: `handle` is one of ours (checked above), alive for the generation.
        let handle = unsafe { &*(handle as *const Handle) };
        // SAFETY: mod_log_config passes `nelts` valid (pointer, length) pairs.
        let pieces = unsafe { pieces(strs, strl, nelts) };
        // SAFETY: `r` is the request being logged.
        let request = unsafe { &*r };
        send(
            &rt.transport,
            &handle.target,
            || request_host(request, rt.transport.config().trust_host_header),
            request.server,
            pieces,
        );
        0
    })
}

/// The (pointer, length) pairs as byte slices.
///
/// # Safety
/// `strs`/`strl` hold `nelts` valid entries.
unsafe fn pieces<'a>(
    strs: *mut *const c_char,
    strl: *mut c_int,
    nelts: c_int,
) -> impl Iterator<Item = &'a [u8]> + Clone {
    let n = nelts.max(0) as usize;
    (0..n).map(move |i| {
        // SAFETY: i < nelts; each string has at least strl[i] bytes.
        unsafe {
            let p = *strs.add(i);
            let l = (*strl.add(i)).max(0) as usize;
            if p.is_null() {
                &[][..]
            } else {
                std::slice::from_raw_parts(p.cast::<u8>(), l)
            }
        }
    })
}

/// The host a request names (raw, uncleaned): Apache's parsed `r->hostname` unless the admin
/// trusts the raw Host header as the original module did.
fn request_host(r: &request_rec, trust_raw: bool) -> Option<&[u8]> {
    if trust_raw && !r.headers_in.is_null() {
        // SAFETY: headers_in is the request's table; apr_table_get returns NULL or a C string.
        let raw = unsafe { apache::apr_table_get(r.headers_in, c"Host".as_ptr()) };
        // SAFETY: as above.
        if let Some(h) = unsafe { opt_bytes(raw) } {
            return Some(h);
        }
    }
    // SAFETY: r->hostname is NULL or a C string owned by the request.
    unsafe { opt_bytes(r.hostname) }
}

/// Does `host` name the virtual host `s` (ServerName, ServerAlias, wildcard aliases)?
fn matches_vhost(s: *const server_rec, host: &str) -> bool {
    if s.is_null() {
        return false;
    }
    // SAFETY: `s` is the request's server_rec, valid for the generation.
    let s = unsafe { &*s };
    // SAFETY: server_hostname is NULL or a C string.
    if unsafe { opt_str(s.server_hostname) }.is_some_and(|n| n.eq_ignore_ascii_case(host)) {
        return true;
    }
    // SAFETY: names/wild_names are NULL or APR arrays of `char *`.
    let any = |arr: *mut apache::apr_array_header_t, wild: bool| unsafe {
        if arr.is_null() {
            return false;
        }
        let arr = &*arr;
        let elts = arr.elts as *const *const c_char;
        (0..arr.nelts.max(0) as usize).any(|i| match opt_str(*elts.add(i)) {
            Some(name) if wild => host::wildcard_match(name, host),
            Some(name) => name.eq_ignore_ascii_case(host),
            None => false,
        })
    };
    any(s.names, false) || any(s.wild_names, true)
}

/// Host used for `$#hostname`/`$#vhost` (and SpreadErrorLog): cleaned, checked against the vhost
/// unless trusted, else the vhost's ServerName, else `unknown-host`.
pub(crate) fn resolve_host(
    raw: Option<&[u8]>,
    server: *const server_rec,
    trust_raw: bool,
) -> host::CleanHost {
    if let Some(h) = raw.and_then(host::clean)
        && (trust_raw || matches_vhost(server, h.as_str()))
    {
        return h;
    }
    if !server.is_null() {
        // SAFETY: the request's server_rec; server_hostname NULL or a C string.
        let name = unsafe { opt_bytes((*server).server_hostname) };
        if let Some(h) = name.and_then(host::clean) {
            return h;
        }
    }
    host::clean(b"unknown-host").expect("valid constant")
}

/// Send one formatted line to its target: alternatives in order, then the spool.
pub(crate) fn send<'a, 'h>(
    transport: &Transport,
    target: &Target,
    raw_host: impl FnOnce() -> Option<&'h [u8]>,
    server: *const server_rec,
    pieces: impl Iterator<Item = &'a [u8]> + Clone,
) -> Delivery {
    let cfg = transport.config();
    let needs_host = target
        .alternatives
        .iter()
        .any(|a| !matches!(a.group, GroupSpec::Named(_)));
    let clean = needs_host.then(|| resolve_host(raw_host(), server, cfg.trust_host_header));
    LINE.with(|cell| {
        let Ok(mut buf) = cell.try_borrow_mut() else {
            // Re-entered on this thread (cannot happen from mod_log_config); use a fresh buffer.
            return send_with(&mut Vec::new(), transport, target, clean.as_ref(), pieces);
        };
        send_with(&mut buf, transport, target, clean.as_ref(), pieces)
    })
}

fn send_with<'a>(
    buf: &mut Vec<u8>,
    transport: &Transport,
    target: &Target,
    clean: Option<&host::CleanHost>,
    pieces: impl Iterator<Item = &'a [u8]> + Clone,
) -> Delivery {
    let cfg = transport.config();
    let c = counters::get();
    let mut bucket_buf = [0u8; 48];
    let mut built_with_prefix: Option<bool> = None;
    let mut truncation_counted = false;
    // The first alternative's daemon and group, kept for the spool without allocating.
    let mut first: Option<(u32, usize)> = None;
    let mut first_group = [0u8; 48];
    // The line goes out straight from mod_log_config's pieces (one sendmsg, no copy), behind
    // the `host ` prefix for `$#vhost` alternatives. A line too long for one message is refused
    // before anything is written; it is then copied and cut into `buf`, as is a line that goes
    // to the spool.
    let prefix: [&[u8]; 2] = match clean {
        Some(h) => [h.as_str().as_bytes(), b" "],
        None => [b"", b""],
    };
    for (i, alt) in target.alternatives.iter().enumerate() {
        let with_prefix = alt.group == GroupSpec::Vhost;
        let group: &str = match &alt.group {
            GroupSpec::Named(g) => g,
            GroupSpec::Hostname => clean.map(|h| h.as_str()).unwrap_or("unknown-host"),
            GroupSpec::Vhost => {
                let bucket = clean
                    .map(|h| host::vhost_bucket(h, cfg.hash_size))
                    .unwrap_or(0);
                host::bucket_group(&cfg.hash_prefix, bucket, &mut bucket_buf)
            }
        };
        let prefix = if with_prefix { &prefix[..] } else { &[] };
        let mut sent = if built_with_prefix.is_none() {
            transport.try_send_parts(
                alt.daemon_id,
                group,
                prefix
                    .iter()
                    .copied()
                    .chain(pieces.clone().map(|p| -> &[u8] { p })),
            )
        } else {
            Err(SendFailure::Send(SpreadError::MessageTooLong {
                len: 0,
                max: 0,
            }))
        };
        if let Err(SendFailure::Send(SpreadError::MessageTooLong { .. })) = sent {
            if built_with_prefix != Some(with_prefix) {
                let host_prefix: [&[u8]; 2] = match (with_prefix, clean) {
                    (true, Some(h)) => [h.as_str().as_bytes(), b" "],
                    _ => [b"", b""],
                };
                if line::assemble(buf, &host_prefix, pieces.clone(), line::MAX_BODY)
                    && !truncation_counted
                {
                    Counters::add(&c.truncated, 1);
                    truncation_counted = true;
                }
                built_with_prefix = Some(with_prefix);
            }
            sent = transport.try_send(alt.daemon_id, group, buf);
        }
        match sent {
            Ok(()) => {
                Counters::add(&c.sent, 1);
                if i > 0 {
                    Counters::add(&c.failed_over, 1);
                }
                return Delivery::Sent(i);
            }
            Err(e) => {
                if target.alternatives.len() > 1
                    && FAILOVER_NOTICE.allow()
                    && !super::util::IN_ERROR_HOOK.with(|f| f.get())
                {
                    log(
                        super::util::main_server(),
                        super::util::APLOG_WARNING,
                        &format!(
                            "mod_log_spread: ${group}#{}: {e}; trying the next alternative or the spool",
                            alt.daemon_id
                        ),
                    );
                }
                if first.is_none() {
                    let n = group.len().min(first_group.len());
                    first_group[..n].copy_from_slice(&group.as_bytes()[..n]);
                    first = Some((alt.daemon_id, n));
                }
            }
        }
    }
    // Spool under the first alternative, with the line as that alternative would have sent it.
    let (daemon_id, n) = first.unwrap_or((0, 0));
    let group = std::str::from_utf8(&first_group[..n]).unwrap_or("");
    let first_prefixed = target
        .alternatives
        .first()
        .is_some_and(|a| a.group == GroupSpec::Vhost);
    if built_with_prefix != Some(first_prefixed) {
        let host_prefix: [&[u8]; 2] = match (first_prefixed, clean) {
            (true, Some(h)) => [h.as_str().as_bytes(), b" "],
            _ => [b"", b""],
        };
        line::assemble(buf, &host_prefix, pieces, line::MAX_BODY);
    }
    let outcome = transport.spool_line(daemon_id, group, buf);
    if outcome == Delivery::Dropped
        && DROP_NOTICE.allow()
        && !super::util::IN_ERROR_HOOK.with(|f| f.get())
    {
        let snap = c.snapshot();
        let why = match transport.last_spool_error() {
            Some(e) => format!("; last spool error: {e}"),
            None => String::new(),
        };
        log(
            super::util::main_server(),
            APLOG_ERR,
            &format!(
                "mod_log_spread: LOST log lines for ${group}: no daemon took them and the spool {} refused them (spool full: {}, spool errors: {}{why})",
                cfg.spool_path.display(),
                snap[5].1,
                snap[6].1
            ),
        );
    }
    outcome
}
