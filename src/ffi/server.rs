//! What the delivery policy needs to know about a request's server, read from Apache's records:
//! the host a request names, whether a host names a virtual host, and the host to use for
//! `$#hostname`/`$#vhost` (the choice itself is `crate::host::resolve`).

use std::ffi::c_char;

use crate::apache::{self, request_rec, server_rec};
use crate::host::{self, CleanHost};

use super::util::{opt_bytes, opt_str};

/// The host a request names (raw, uncleaned): Apache's parsed `r->hostname` unless the admin
/// trusts the raw Host header as the original module did.
pub(crate) fn request_host(r: &request_rec, trust_raw: bool) -> Option<&[u8]> {
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

/// The host for `$#hostname`/`$#vhost` (and SpreadErrorLog) of a line from `server`.
pub(crate) fn resolve_host(
    raw: Option<&[u8]>,
    server: *const server_rec,
    trust_raw: bool,
) -> CleanHost {
    let server_name = if server.is_null() {
        None
    } else {
        // SAFETY: the request's server_rec; server_hostname NULL or a C string.
        unsafe { opt_bytes((*server).server_hostname) }
    };
    host::resolve(raw, trust_raw, |h| matches_vhost(server, h), server_name)
}
