//! Small safe-ish helpers at the Apache boundary: C strings, pool strings, error-log lines, and
//! the `catch_unwind` guard every callback goes through.

use std::ffi::{CStr, CString, c_char, c_int};
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::atomic::{AtomicI32, Ordering};

use crate::apache;

pub const APLOG_EMERG: c_int = apache::APLOG_EMERG as c_int;
pub const APLOG_ERR: c_int = apache::APLOG_ERR as c_int;
pub const APLOG_WARNING: c_int = apache::APLOG_WARNING as c_int;
pub const APLOG_NOTICE: c_int = apache::APLOG_NOTICE as c_int;
pub const APLOG_INFO: c_int = apache::APLOG_INFO as c_int;
pub const APLOG_STARTUP: c_int = apache::APLOG_STARTUP as c_int;

/// Borrow a C string as UTF-8 (lossy bytes become None).
///
/// # Safety
/// `p` is NULL or a NUL-terminated string that outlives `'a`.
pub unsafe fn opt_str<'a>(p: *const c_char) -> Option<&'a str> {
    if p.is_null() {
        return None;
    }
    // SAFETY: non-null and NUL-terminated per the caller's contract.
    unsafe { CStr::from_ptr(p) }.to_str().ok()
}

/// Borrow a C string's bytes.
///
/// # Safety
/// As `opt_str`.
pub unsafe fn opt_bytes<'a>(p: *const c_char) -> Option<&'a [u8]> {
    if p.is_null() {
        return None;
    }
    // SAFETY: non-null and NUL-terminated per the caller's contract.
    Some(unsafe { CStr::from_ptr(p) }.to_bytes())
}

/// Copy `s` into `pool` as a C string (directive error messages must live in a pool).
///
/// # Safety
/// `pool` is a live APR pool.
pub unsafe fn pool_str(pool: *mut apache::apr_pool_t, s: &str) -> *const c_char {
    // SAFETY: apr_pstrmemdup copies exactly `len` bytes from a valid slice and NUL-terminates.
    unsafe { apache::apr_pstrmemdup(pool, s.as_ptr().cast(), s.len() as apache::apr_size_t) }
}

/// This module's index (for per-module LogLevel), as httpd assigned it at load time.
static MODULE_INDEX: AtomicI32 = AtomicI32::new(-1);

/// Record the module's index (once, when httpd registers our hooks).
pub fn set_module_index(index: c_int) {
    MODULE_INDEX.store(index, Ordering::Relaxed);
}

pub fn module_index() -> c_int {
    MODULE_INDEX.load(Ordering::Relaxed)
}

/// One line in Apache's error log (through `ap_log_error_`, `"%s"` so no format injection).
pub(crate) fn log(s: *const apache::server_rec, level: c_int, message: &str) {
    let text = CString::new(message.replace('\0', "\\0")).unwrap_or_default();
    // SAFETY: all pointers are valid C strings; `s` may be NULL (Apache then logs to stderr or
    // the main error log); the variadic argument matches the "%s" format.
    unsafe {
        apache::ap_log_error_(
            c"mod_log_spread".as_ptr(),
            0,
            module_index(),
            level,
            0,
            s,
            c"%s".as_ptr(),
            text.as_ptr(),
        );
    }
}

/// The main server, if Apache has one yet.
pub fn main_server() -> *const apache::server_rec {
    // SAFETY: a plain read of Apache's global pointer (NULL before config is read).
    unsafe { apache::ap_server_conf }
}

/// A delivery notice (`crate::deliver::Notice`) in the main server's error log, unless this
/// thread is inside our error-log hook (logging there would recurse).
pub fn log_notice(n: crate::deliver::Notice<'_>) {
    if IN_ERROR_HOOK.with(|f| f.get()) {
        return;
    }
    let level = if n.is_error() {
        APLOG_ERR
    } else {
        APLOG_WARNING
    };
    log(main_server(), level, &n.to_string());
}

/// One line in Apache's error log that `SpreadErrorLog` does not ship: said once the
/// connections are closed (a child's exit), where shipping it would open a new one that nothing
/// closes, announces or spools.
pub(crate) fn log_unshipped(s: *const apache::server_rec, level: c_int, message: &str) {
    let was = IN_ERROR_HOOK.with(|f| f.replace(true));
    log(s, level, message);
    IN_ERROR_HOOK.with(|f| f.set(was));
}

thread_local! {
    /// Set while this thread is inside our error-log hook (nothing we do then may log), or
    /// logs a line that is not to be shipped ([`log_unshipped`]).
    pub static IN_ERROR_HOOK: std::cell::Cell<bool> = const { std::cell::Cell::new(false) };
}

/// Run a callback body; a panic becomes an error-log line and `fallback`.
pub fn guarded<T>(what: &str, fallback: T, body: impl FnOnce() -> T) -> T {
    match catch_unwind(AssertUnwindSafe(body)) {
        Ok(v) => v,
        Err(payload) => {
            let why = payload
                .downcast_ref::<&str>()
                .map(|s| (*s).to_owned())
                .or_else(|| payload.downcast_ref::<String>().cloned())
                .unwrap_or_else(|| "unknown panic".to_owned());
            if !IN_ERROR_HOOK.with(|f| f.get()) {
                log(
                    main_server(),
                    APLOG_ERR,
                    &format!("mod_log_spread: internal error in {what}: {why}"),
                );
            }
            fallback
        }
    }
}
