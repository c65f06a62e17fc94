//! mod_log_config's writer pair. `writer_init` runs in the parent for every log target: ours
//! (starting with `$`) get a handle holding only configuration; every other target is passed to
//! the previous init. `writer` runs in children on request threads: our handles are sent over
//! Spread, every other handle goes unchanged to the previous writer.

use std::ffi::{c_char, c_int, c_void};
use std::sync::atomic::Ordering;

use crate::apache::{self, apr_pool_t, apr_size_t, apr_status_t, request_rec, server_rec};
use crate::deliver;
use crate::target::Target;

use super::server;
use super::state::{self, PREV_INIT, PREV_WRITER, with_pending};
use super::util::{APLOG_ERR, guarded, log, log_notice, opt_str};

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
        let clean = deliver::needs_host(&handle.target).then(|| {
            let trust = rt.transport.config().trust_host_header;
            server::resolve_host(server::request_host(request, trust), request.server, trust)
        });
        deliver::deliver(
            &rt.transport,
            &handle.target,
            clean.as_ref(),
            pieces,
            &mut log_notice,
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
