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

/// One figure of "now" on the status page.
struct Gauge {
    key: &'static str,
    name: &'static str,
    help: &'static str,
    value: f64,
}

impl Gauge {
    fn sample(&self) -> spread_sys::metrics::Sample {
        spread_sys::metrics::Sample::gauge(self.name, self.help, self.value)
    }
}

/// What the live children hold (`crate::gauges`) and the spool's fill.
fn gauges() -> Vec<Gauge> {
    let (h, children) = crate::gauges::total();
    let (spool, cap) = super::state::runtime()
        .map(|rt| (rt.transport.spool.pending(), rt.transport.spool.cap()))
        .unwrap_or((0, 0));
    let g = |key, name, help, value| Gauge {
        key,
        name,
        help,
        value,
    };
    vec![
        g(
            "unacked_lines",
            "mod_log_spread_unacked_lines",
            "Lines handed over and held until a collector acknowledges them.",
            h.unacked as f64,
        ),
        g(
            "unacked_bytes",
            "mod_log_spread_unacked_bytes",
            "Bytes of the lines held unacknowledged.",
            h.unacked_bytes as f64,
        ),
        g(
            "oldest_unacked_seconds",
            "mod_log_spread_oldest_unacked_seconds",
            "Age of the oldest unacknowledged line (0: none).",
            h.oldest_ms as f64 / 1000.0,
        ),
        g(
            "connections_up",
            "mod_log_spread_connections_up",
            "Connections to Spread daemons that are open, over all children.",
            h.connected as f64,
        ),
        g(
            "children_reporting",
            "mod_log_spread_children_reporting",
            "Children whose figures are summed here.",
            children as f64,
        ),
        g(
            "spool_bytes",
            "mod_log_spread_spool_bytes",
            "Bytes waiting in the spool.",
            spool as f64,
        ),
        g(
            "spool_fill_ratio",
            "mod_log_spread_spool_fill_ratio",
            "Spool bytes over SpreadSpoolSize (1: full, lines are dropped).",
            if cap == 0 {
                0.0
            } else {
                spool as f64 / cap as f64
            },
        ),
    ]
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
        let gauges = gauges();
        let (body, content_type) = if prometheus {
            let mut samples = counters::get().samples();
            samples.extend(crate::group_counters::samples());
            samples.extend(gauges.iter().map(|g| g.sample()));
            let page = spread_sys::metrics::render(&samples);
            (page, c"text/plain; version=0.0.4; charset=utf-8")
        } else {
            let mut body =
                String::from("mod_log_spread counters (all children of this generation)\n");
            for (k, v) in counters::get().snapshot() {
                body.push_str(&format!("{k}: {v}\n"));
            }
            for l in crate::group_counters::lines() {
                body.push_str(&l);
                body.push('\n');
            }
            body.push_str("now (live children, and the spool)\n");
            for g in &gauges {
                body.push_str(&format!("{}: {}\n", g.key, g.value));
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
