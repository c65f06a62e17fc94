//! `--metrics-listen`: the daemon's counters as a Prometheus page.

use spread_sys::metrics::{Sample, render};

use crate::core::Stats;

/// The `/metrics` page for `s`.
pub fn page(s: &Stats) -> String {
    let g = |name, help, v: usize| Sample::gauge(name, help, v as f64);
    let c = Sample::counter;
    render(&[
        g(
            "spread_daemon_sessions",
            "Client sessions past the handshake.",
            s.sessions,
        ),
        g(
            "spread_daemon_handshaking",
            "Connections still in the handshake.",
            s.handshaking,
        ),
        g(
            "spread_daemon_groups",
            "Groups with at least one member.",
            s.groups,
        ),
        g(
            "spread_daemon_queued_messages",
            "Messages waiting in output queues.",
            s.queued_messages,
        ),
        g(
            "spread_daemon_queued_bytes",
            "Bytes waiting in output queues.",
            s.queued_bytes,
        ),
        c(
            "spread_daemon_accepted_connections_total",
            "Connections accepted.",
            s.accepted_total,
        ),
        c(
            "spread_daemon_rejected_connections_total",
            "Connections refused (limits, allow list, handshake).",
            s.rejected_connects,
        ),
        c(
            "spread_daemon_requests_in_total",
            "Requests received from clients (multicasts, joins, leaves).",
            s.messages_in,
        ),
        c(
            "spread_daemon_deliveries_total",
            "Data messages queued to receivers (one per receiving session).",
            s.deliveries,
        ),
        c(
            "spread_daemon_slow_client_kills_total",
            "Sessions killed for not reading their queue.",
            s.kills_slow,
        ),
        c(
            "spread_daemon_protocol_kills_total",
            "Sessions killed for protocol violations.",
            s.kills_protocol,
        ),
        c(
            "spread_daemon_throttles_total",
            "Times input throttling began.",
            s.throttles,
        ),
        c(
            "spread_daemon_reads_total",
            "read(2) calls that returned client bytes (requests_in over this: messages per read).",
            s.reads,
        ),
        c(
            "spread_daemon_writes_total",
            "write(2) calls that sent bytes to clients (deliveries over this: messages per write).",
            s.writes,
        ),
        c(
            "spread_daemon_wakeups_total",
            "Times the event loop woke with events to handle (each a context switch).",
            s.wakeups,
        ),
        c(
            "spread_daemon_rejected_joins_total",
            "Joins answered with a reject message (group caps, memory).",
            s.rejected_joins,
        ),
    ])
}
