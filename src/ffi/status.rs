//! A plain-text status page of the counters (summed across children):
//! `<Location /spread-status> SetHandler log-spread-status </Location>`; with `?format=prometheus`
//! the same counters in Prometheus' text format.

use std::ffi::{CStr, c_int};

use crate::apache::{self, request_rec};
use crate::counters;

use super::util::guarded;

pub fn counters_line() -> String {
    counters::get()
        .snapshot()
        .iter()
        .map(|(k, v)| format!("{k}={v}"))
        .collect::<Vec<_>>()
        .join(" ")
}

/// # Safety
/// Called by Apache's handler hook with the live request.
pub unsafe extern "C" fn handler(r: *mut request_rec) -> c_int {
    guarded("the status handler", apache::DECLINED as c_int, || {
        // SAFETY: `r` is the request being handled; handler is NULL or a C string.
        let handler = unsafe { (*r).handler };
        // SAFETY: as above.
        if handler.is_null() || unsafe { CStr::from_ptr(handler) } != c"log-spread-status" {
            return apache::DECLINED as c_int;
        }
        // SAFETY: `args` is NULL or the request's query string, a C string.
        let args = unsafe { (*r).args };
        let prometheus = !args.is_null()
            // SAFETY: as above.
            && unsafe { CStr::from_ptr(args) }
                .to_bytes()
                .split(|&b| b == b'&')
                .any(|p| p == b"format=prometheus");
        let (body, content_type) = if prometheus {
            let page = spread_sys::metrics::render(&counters::get().samples());
            (page, c"text/plain; version=0.0.4; charset=utf-8")
        } else {
            let mut body =
                String::from("mod_log_spread counters (all children of this generation)\n");
            for (k, v) in counters::get().snapshot() {
                body.push_str(&format!("{k}: {v}\n"));
            }
            (body, c"text/plain; charset=utf-8")
        };
        // SAFETY: setting the content type and writing our buffer on the live request.
        unsafe {
            apache::ap_set_content_type(r, content_type.as_ptr());
            if (*r).header_only == 0 {
                apache::ap_rwrite(body.as_ptr().cast(), body.len() as c_int, r);
            }
        }
        apache::OK as c_int
    })
}
