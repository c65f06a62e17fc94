//! `SpreadErrorLog`: error-log lines shipped through `ap_hook_error_log` (no core patch). The
//! hook runs after Apache wrote the line to its own ErrorLog. It formats a readable prefix into a
//! per-thread buffer (never a request or server pool), and nothing in it may call `ap_log_*`
//! (that would recurse): a thread-local flag turns our own logging off while it runs.

use std::cell::RefCell;
use std::ffi::c_char;
use std::io::Write;

use crate::apache::ap_errorlog_info;
use crate::config::level_name;
use crate::counters::{self, Counters};
use crate::deliver;
use crate::transport::Delivery;

use super::server;
use super::state;
use super::util::{IN_ERROR_HOOK, guarded, log_notice, opt_bytes, opt_str};

thread_local! {
    static PREFIX: RefCell<Vec<u8>> = RefCell::new(Vec::with_capacity(256));
}

/// # Safety
/// Called by Apache's error_log hook with a valid info struct and message.
pub unsafe extern "C" fn hook(info: *const ap_errorlog_info, errstr: *const c_char) {
    if info.is_null() || IN_ERROR_HOOK.with(|f| f.replace(true)) {
        return;
    }
    guarded("the error-log hook", (), || {
        // SAFETY: Apache passes a valid info struct and message for the duration of the hook.
        unsafe { ship(&*info, errstr) }
    });
    IN_ERROR_HOOK.with(|f| f.set(false));
}

/// # Safety
/// `info` and `errstr` as Apache passes them to the error_log hook.
unsafe fn ship(info: &ap_errorlog_info, errstr: *const c_char) {
    // Startup messages (no server yet) and the parent (no child runtime) are not shipped.
    if info.s.is_null() {
        return;
    }
    let Some(rt) = state::runtime() else { return };
    let Some(conf) = rt.error_log_for(info.s as usize) else {
        return;
    };
    if info.level < 0 || info.level as u32 > conf.max_level {
        return;
    }
    // SAFETY: errstr is the NUL-terminated message.
    let message = unsafe { opt_bytes(errstr) }.unwrap_or(b"");
    // SAFETY: server_rec fields are NULL or C strings.
    let vhost = unsafe { opt_str((*info.s).server_hostname) }.unwrap_or("-");
    let (client, raw_host) = unsafe { client_and_host(info) };
    PREFIX.with(|cell| {
        let Ok(mut prefix) = cell.try_borrow_mut() else {
            return;
        };
        prefix.clear();
        write_time(&mut prefix);
        let _ = write!(
            prefix,
            " [{}] [{}] [client {}] ",
            level_name(info.level as u32),
            vhost,
            client
        );
        let pieces = [&prefix[..], message, b"\n"];
        let clean = deliver::needs_host(&conf.target).then(|| {
            server::resolve_host(raw_host, info.s, rt.transport.config().trust_host_header)
        });
        let outcome = deliver::deliver(
            &rt.transport,
            &conf.target,
            clean.as_ref(),
            pieces.into_iter(),
            &mut log_notice,
        );
        if outcome != Delivery::Dropped {
            Counters::add(&counters::get().error_lines, 1);
        }
    });
}

/// The client address and requested host, when the message belongs to a connection or request.
///
/// # Safety
/// `info`'s pointers are NULL or valid for the hook's duration.
unsafe fn client_and_host(info: &ap_errorlog_info) -> (&str, Option<&[u8]>) {
    // SAFETY: per the contract, each pointer is NULL or valid; strings are NUL-terminated.
    unsafe {
        if !info.r.is_null() {
            let r = &*info.r;
            return (
                opt_str(r.useragent_ip).unwrap_or("-"),
                opt_bytes(r.hostname),
            );
        }
        if !info.c.is_null() {
            return (opt_str((*info.c).client_ip).unwrap_or("-"), None);
        }
    }
    ("-", None)
}

/// `[Mon Nov 23 22:45:01.123456 2026]` in local time, like Apache's default ErrorLogFormat.
fn write_time(out: &mut Vec<u8>) {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: clock_gettime writes into our timespec.
    unsafe { libc::clock_gettime(libc::CLOCK_REALTIME, &mut ts) };
    // SAFETY: a zeroed tm is a valid out-parameter; localtime_r is the thread-safe variant.
    let mut tm: libc::tm = unsafe { std::mem::zeroed() };
    unsafe { libc::localtime_r(&ts.tv_sec, &mut tm) };
    let mut day = [0u8; 16];
    let mut clock = [0u8; 16];
    // SAFETY: strftime writes at most the given size into our buffers, with valid formats.
    let (n1, n2) = unsafe {
        (
            libc::strftime(
                day.as_mut_ptr().cast(),
                day.len(),
                c"%a %b %d".as_ptr(),
                &tm,
            ),
            libc::strftime(
                clock.as_mut_ptr().cast(),
                clock.len(),
                c"%H:%M:%S".as_ptr(),
                &tm,
            ),
        )
    };
    out.push(b'[');
    out.extend_from_slice(&day[..n1]);
    out.push(b' ');
    out.extend_from_slice(&clock[..n2]);
    let _ = write!(out, ".{:06} {}]", ts.tv_nsec / 1000, tm.tm_year + 1900);
}
