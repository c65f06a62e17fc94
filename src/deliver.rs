//! The delivery policy for one formatted line (access log or error log): the target's
//! alternatives in order (failover), a line too long for one message cut with a marker, then the
//! spool. Plain Rust without C types: the FFI writer and the error-log hook convert what Apache
//! hands them and call [`deliver`]; what the operator must hear comes back as a [`Notice`],
//! already rate-limited.
//!
//! The request path allocates nothing here: the line goes out straight from mod_log_config's
//! pieces (one sendmsg); only a line that must be cut or spooled is copied, into a buffer of the
//! thread reused for every line.

use std::cell::RefCell;
use std::time::Duration;

use spread_sys::Error as SpreadError;

use crate::counters::{self, Counters};
use crate::group_counters;
use crate::host::{self, CleanHost};
use crate::line;
use crate::target::{GroupSpec, Target};
use crate::transport::{Delivery, SendFailure, Throttle, Transport};

/// Something to tell the operator (the caller writes it to Apache's error log).
#[derive(Debug)]
pub enum Notice<'a> {
    /// An alternative could not take the line; the next one (or the spool) is tried.
    FailedOver {
        group: &'a str,
        daemon_id: u32,
        why: &'a SendFailure,
    },
    /// No alternative took the line and the spool refused it: the line is lost (and counted).
    Lost {
        group: &'a str,
        spool: &'a std::path::Path,
        spool_full: u64,
        spool_errors: u64,
        last_error: Option<String>,
    },
}

impl std::fmt::Display for Notice<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Notice::FailedOver {
                group,
                daemon_id,
                why,
            } => write!(
                f,
                "mod_log_spread: ${group}#{daemon_id}: {why}; trying the next alternative or the spool"
            ),
            Notice::Lost {
                group,
                spool,
                spool_full,
                spool_errors,
                last_error,
            } => {
                let why = match last_error {
                    Some(e) => format!("; last spool error: {e}"),
                    None => String::new(),
                };
                write!(
                    f,
                    "mod_log_spread: LOST log lines for ${group}: no daemon took them and the spool {} \
                     refused them (spool full: {spool_full}, spool errors: {spool_errors}{why})",
                    spool.display()
                )
            }
        }
    }
}

/// The error-log level a notice deserves.
impl Notice<'_> {
    pub fn is_error(&self) -> bool {
        matches!(self, Notice::Lost { .. })
    }
}

thread_local! {
    /// The line buffer of this thread, reused for every line (no allocation per line).
    static LINE: RefCell<Vec<u8>> = RefCell::new(Vec::with_capacity(1024));
}

static DROP_NOTICE: Throttle = Throttle::new(Duration::from_secs(10));
static FAILOVER_NOTICE: Throttle = Throttle::new(Duration::from_secs(10));

/// Deliver one line, given as `pieces` to be concatenated, to `target`. `clean` is the request's
/// host when the target needs one (`$#hostname`, `$#vhost`; see [`needs_host`]).
///
/// The usual line (a named group, taken at once) goes out without touching the thread's line
/// buffer or any scratch space: everything else (failover, a line to cut, the spool) is
/// [`deliver_slowly`], told why the first attempt failed so that no line is sent twice.
pub fn deliver<'a>(
    transport: &Transport,
    target: &Target,
    clean: Option<&CleanHost>,
    pieces: impl Iterator<Item = &'a [u8]> + Clone,
    notice: &mut dyn FnMut(Notice<'_>),
) -> Delivery {
    let mut first_failure = None;
    if let Some(alt) = target.alternatives.first()
        && let GroupSpec::Named(group) = &alt.group
    {
        match transport.try_send_parts(alt.daemon_id, group, pieces.clone()) {
            Ok(bytes) => return count_sent(target, 0, bytes),
            Err(e) => first_failure = Some(e),
        }
    }
    deliver_slowly(transport, target, clean, pieces, first_failure, notice)
}

/// What [`deliver`] does when the first alternative did not simply take the line.
#[cold]
#[inline(never)]
fn deliver_slowly<'a>(
    transport: &Transport,
    target: &Target,
    clean: Option<&CleanHost>,
    pieces: impl Iterator<Item = &'a [u8]> + Clone,
    first_failure: Option<SendFailure>,
    notice: &mut dyn FnMut(Notice<'_>),
) -> Delivery {
    LINE.with(|cell| {
        let mut fresh = Vec::new();
        let mut guard = cell.try_borrow_mut();
        let buf = match &mut guard {
            Ok(b) => &mut **b,
            // Re-entered on this thread (cannot happen from mod_log_config): a fresh buffer.
            Err(_) => &mut fresh,
        };
        let route = Route {
            transport,
            target,
            clean,
        };
        deliver_with(buf, &route, pieces, first_failure, notice)
    })
}

/// Count a line alternative `i` of `target` took (`bytes` long).
fn count_sent(target: &Target, i: usize, bytes: usize) -> Delivery {
    let c = counters::get();
    Counters::add(&c.sent, 1);
    if let Some(alt) = target.alternatives.get(i) {
        group_counters::sent(alt.tally, bytes);
    }
    if i > 0 {
        Counters::add(&c.failed_over, 1);
    }
    Delivery::Sent(i)
}

/// Where one line goes: its target, through the process's transport, with the request's host.
struct Route<'r> {
    transport: &'r Transport,
    target: &'r Target,
    clean: Option<&'r CleanHost>,
}

/// Does any alternative of `target` need the request's host?
pub fn needs_host(target: &Target) -> bool {
    target
        .alternatives
        .iter()
        .any(|a| !matches!(a.group, GroupSpec::Named(_)))
}

/// Every alternative in turn (the first one is not tried again when [`deliver`] already saw
/// it fail: `first_failure`), then the spool.
fn deliver_with<'a>(
    buf: &mut Vec<u8>,
    route: &Route<'_>,
    pieces: impl Iterator<Item = &'a [u8]> + Clone,
    mut first_failure: Option<SendFailure>,
    notice: &mut dyn FnMut(Notice<'_>),
) -> Delivery {
    let Route {
        transport,
        target,
        clean,
    } = *route;
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
        let mut sent = if let Some(e) = first_failure.take() {
            Err(e)
        } else if built_with_prefix.is_none() {
            if prefix.is_empty() {
                // The common case, without the (empty) prefix chained in front of every piece.
                transport.try_send_parts(alt.daemon_id, group, pieces.clone())
            } else {
                transport.try_send_parts(
                    alt.daemon_id,
                    group,
                    prefix
                        .iter()
                        .copied()
                        .chain(pieces.clone().map(|p| -> &[u8] { p })),
                )
            }
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
            Ok(bytes) => return count_sent(target, i, bytes),
            Err(e) => {
                if target.alternatives.len() > 1 && FAILOVER_NOTICE.allow() {
                    notice(Notice::FailedOver {
                        group,
                        daemon_id: alt.daemon_id,
                        why: &e,
                    });
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
    if outcome == Delivery::Spooled
        && let Some(a) = target.alternatives.first()
    {
        group_counters::spooled(a.tally);
    }
    if outcome == Delivery::Dropped && DROP_NOTICE.allow() {
        notice(Notice::Lost {
            group,
            spool: &cfg.spool_path,
            spool_full: Counters::value(&c.dropped_spool_full),
            spool_errors: Counters::value(&c.dropped_spool_error),
            last_error: transport.last_spool_error(),
        });
    }
    outcome
}
