//! The sans-IO core driven without sockets: thousands of sessions, fan-out, total order, the
//! slow-client limit, quota and handshake timeouts.

mod common;
use common::{core_join, core_multicast, core_session};

use std::time::{Duration, Instant};

use spread_daemon::Config;
use spread_daemon::core::{Action, Core, CoreSettings, Peer, SessionId};
use spread_sys::wire::constants::*;
use spread_sys::wire::handshake::{ConnectRequest, encode_auth_choice};
use spread_sys::wire::header::Header;
use spread_sys::wire::message::{MessageRef, encode_join, encode_multicast};

fn core(max_sessions: usize, max_msgs: usize) -> Core {
    let mut s = CoreSettings::from_config(&Config::default());
    s.max_sessions = max_sessions;
    s.max_session_messages = max_msgs;
    Core::new(s, 1_700_000_000, 7)
}

fn connect(c: &mut Core, name: &str, membership: bool, now: Instant) -> SessionId {
    let id = core_session(c, name, membership, 100, now);
    assert!(c.is_ready(id), "{name} established");
    id
}

/// The core closes `id` with `last_words`; `why` names the case in a failure.
fn assert_closed(c: &mut Core, id: SessionId, last_words: Vec<u8>, why: &str) {
    let actions = drain_all(c);
    assert!(
        actions.contains(&Action::Close { id, last_words }),
        "{why}: {actions:?}"
    );
}

/// `req` `n` times over, as one read.
fn repeated(req: &[u8], n: usize) -> Vec<u8> {
    req.iter().copied().cycle().take(req.len() * n).collect()
}

/// A new receiver `name` in group "g" whose socket is full, with `1 + n` copies of `req` (sent by
/// `fast`) queued for it.
fn blocked_receiver(
    c: &mut Core,
    name: &str,
    fast: SessionId,
    req: &[u8],
    n: usize,
    now: Instant,
) -> SessionId {
    let id = connect(c, name, false, now);
    take_output(c, id);
    core_join(c, id, b"g", now);
    c.received(fast, req, now);
    c.wrote(id, 0, true);
    c.received(fast, &repeated(req, n), now);
    id
}

/// Everything pending for `id`, as whole messages (handshake bytes skipped by the caller).
fn take_output(c: &mut Core, id: SessionId) -> Vec<u8> {
    let out = c.pending_output(id).to_vec();
    c.wrote(id, out.len(), false);
    out
}

fn split_messages(mut b: &[u8]) -> Vec<(Header, Vec<u8>)> {
    let mut v = Vec::new();
    while b.len() >= 48 {
        let h = Header::decode(b[..48].try_into().unwrap());
        // A reject carries its 4-byte old_type before the groups (PROTOCOL §6.5).
        let old_type = if h.service_type & REJECT_MESS != 0 {
            4
        } else {
            0
        };
        let len = 48 + old_type + 32 * h.num_groups as usize + h.data_len as usize;
        v.push((h, b[48..len].to_vec()));
        b = &b[len..];
    }
    assert!(b.is_empty());
    v
}

fn drain_all(c: &mut Core) -> Vec<Action> {
    let mut dirty = Vec::new();
    c.take_dirty(&mut dirty);
    let mut v = Vec::new();
    while let Some(a) = c.poll_action() {
        v.push(a);
    }
    v
}

#[test]
fn two_thousand_sessions_one_group() {
    let now = Instant::now();
    let mut c = core(2000, 1000);
    let watcher = connect(&mut c, "watcher", true, now);
    let mut ids = Vec::new();
    for i in 0..1999 {
        ids.push(connect(&mut c, &format!("s{i}"), false, now));
    }
    let mut hs_bytes: Vec<usize> = Vec::new();
    for &id in &ids {
        hs_bytes.push(take_output(&mut c, id).len());
    }
    take_output(&mut c, watcher);
    let mut req = Vec::new();
    encode_join(c.private_group(watcher).unwrap(), b"big", &mut req);
    c.received(watcher, &req, now);
    // Only the watcher asked for membership messages: one per join, listing every member so far.
    assert_eq!(split_messages(&take_output(&mut c, watcher)).len(), 1);
    let mut memb_count = 1;
    for (n, &id) in ids.iter().enumerate() {
        req.clear();
        encode_join(c.private_group(id).unwrap(), b"big", &mut req);
        c.received(id, &req, now);
        let memb = split_messages(&take_output(&mut c, watcher));
        memb_count += memb.len();
        assert_eq!(memb.last().unwrap().0.num_groups as usize, n + 2);
    }
    assert_eq!(c.group_members(b"big").len(), 2000);
    assert_eq!(memb_count, 2000);
    for &id in &ids {
        assert!(
            c.pending_output(id).is_empty(),
            "no membership to membership-less sessions"
        );
    }
    // One data message from one member reaches all 2000 (sender included) exactly once.
    let sender = ids[17];
    req.clear();
    encode_multicast(
        c.private_group(sender).unwrap(),
        AGREED_MESS,
        &[b"big", b"big"],
        9,
        b"fan-out",
        &mut req,
    )
    .unwrap();
    c.received(sender, &req, now);
    assert_eq!(c.stats().deliveries, 2000);
    for &id in ids.iter().chain([&watcher]) {
        let msgs = split_messages(&take_output(&mut c, id));
        assert_eq!(msgs.len(), 1);
        let (h, rest) = &msgs[0];
        let m = MessageRef::decode(*h, rest).unwrap();
        assert_eq!(m.body, b"fan-out");
    }
    // Half of them go away: the watcher hears of each departure.
    for &id in ids.iter().step_by(2) {
        c.closed(id);
    }
    let memb = split_messages(&take_output(&mut c, watcher));
    assert_eq!(memb.len(), 1000);
    assert!(
        memb.iter()
            .all(|(h, _)| h.service_type == REG_MEMB_MESS | CAUSED_BY_DISCONNECT)
    );
    assert_eq!(c.stats().sessions, 1000);
    assert_eq!(c.group_members(b"big").len(), 1000);
}

#[test]
fn one_total_order_for_all_receivers() {
    let now = Instant::now();
    let mut c = core(997, 100_000);
    let ids: Vec<SessionId> = (0..6)
        .map(|i| connect(&mut c, &format!("n{i}"), false, now))
        .collect();
    for &id in &ids {
        take_output(&mut c, id);
        let mut req = Vec::new();
        encode_join(c.private_group(id).unwrap(), b"g", &mut req);
        c.received(id, &req, now);
    }
    // Senders interleave, partly in fragments.
    for round in 0..200u32 {
        let s = ids[(round as usize * 7) % ids.len()];
        let mut req = Vec::new();
        encode_multicast(
            c.private_group(s).unwrap(),
            FIFO_MESS,
            &[b"g"],
            0,
            &round.to_le_bytes(),
            &mut req,
        )
        .unwrap();
        let (a, b) = req.split_at(round as usize % req.len());
        c.received(s, a, now);
        c.received(s, b, now);
    }
    let orders: Vec<Vec<Vec<u8>>> = ids
        .iter()
        .map(|&id| {
            split_messages(&take_output(&mut c, id))
                .into_iter()
                .map(|(h, r)| r[32 * h.num_groups as usize..].to_vec())
                .collect()
        })
        .collect();
    assert_eq!(orders[0].len(), 200);
    for o in &orders {
        assert_eq!(o, &orders[0]);
    }
}

#[test]
fn slow_client_killed_past_the_limit_only_when_blocked() {
    let now = Instant::now();
    let mut c = core(997, 1000);
    let slow = connect(&mut c, "slow", false, now);
    let fast = connect(&mut c, "fast", true, now);
    take_output(&mut c, slow);
    take_output(&mut c, fast);
    for id in [slow, fast] {
        core_join(&mut c, id, b"g", now);
    }
    take_output(&mut c, fast);
    let mut req = Vec::new();
    encode_multicast(
        c.private_group(fast).unwrap(),
        AGREED_MESS,
        &[b"g"],
        0,
        b"m",
        &mut req,
    )
    .unwrap();
    let batch: Vec<u8> = req.iter().copied().cycle().take(req.len() * 1500).collect();
    // Not yet blocked: a big read may queue more than the limit before the next write attempt.
    c.received(fast, &batch, now);
    assert!(c.is_ready(slow));
    take_output(&mut c, fast);
    // The write attempt leaves > 1000 unwritten: killed, and the fast member is told.
    c.wrote(slow, 1000, true);
    assert!(!c.is_ready(slow));
    let actions = drain_all(&mut c);
    assert!(
        actions
            .iter()
            .any(|a| matches!(a, Action::Close { id, .. } if *id == slow))
    );
    assert!(actions.iter().any(|a| matches!(a, Action::Log(l) if l.contains("slow consumer") && l.contains("#slow#localhost"))));
    let memb = split_messages(&take_output(&mut c, fast));
    assert_eq!(
        memb.last().unwrap().0.service_type,
        REG_MEMB_MESS | CAUSED_BY_DISCONNECT
    );
    assert_eq!(c.stats().kills_slow, 1);
    assert_eq!(c.stats().queued_messages, 0, "the victim's queue is freed");

    // At exactly the limit a blocked session survives.
    let slow2 = blocked_receiver(&mut c, "slow2", fast, &req, 999, now);
    assert!(
        c.is_ready(slow2),
        "1000 queued = MaxSessionMessages: still alive"
    );
    c.received(fast, &req, now);
    assert!(
        c.is_ready(slow2),
        "the 1001st message alone does not kill: the blocked flag is from an earlier write, the \
         reader may have emptied its socket since"
    );
    let mut pressured = Vec::new();
    c.take_pressured(&mut pressured);
    assert!(
        pressured.contains(&slow2),
        "a queue past MaxSessionMessages/2 is reported for an immediate write"
    );
    // That write attempt takes a little but leaves it over the limit: now it is killed.
    c.wrote(slow2, 10, true);
    assert!(
        !c.is_ready(slow2),
        "still over the limit after a fresh write attempt: killed"
    );
    assert_eq!(c.stats().kills_slow, 2);

    // A reader that empties its socket in time survives a burst past the limit.
    let slow3 = blocked_receiver(&mut c, "slow3", fast, &req, 1100, now);
    let out = c.pending_output(slow3).len();
    c.wrote(slow3, out, false);
    assert!(c.is_ready(slow3), "drained by the fresh write: alive");

    // Backstop when nobody flushes: a blocked session is killed past twice the limit (>= +1024).
    c.received(fast, &req, now);
    c.wrote(slow3, 0, true);
    c.received(fast, &repeated(&req, 2023), now);
    assert!(
        c.is_ready(slow3),
        "2024 queued = the backstop (max(2 x 1000, 1000 + 1024)): still alive"
    );
    c.received(fast, &req, now);
    assert!(
        !c.is_ready(slow3),
        "past the backstop: killed without a write"
    );
    assert_eq!(c.stats().kills_slow, 3);
    assert_eq!(c.stats().queued_bytes, c.pending_output(fast).len());
}

#[test]
fn quota_and_handshake_timeouts() {
    let now = Instant::now();
    let mut c = core(3, 1000);
    let _a = connect(&mut c, "a", true, now);
    let silent = c.accept(Peer::Unix, 5, now);
    let partial = c.accept(Peer::Unix, 6, now);
    let fourth = c.accept(Peer::Unix, 7, now);
    assert_closed(&mut c, fourth, vec![0xFD], "quota");
    c.received(partial, &[5, 0, 1, 1, 5, b'a', b'b'], now);
    // Before the deadline nothing happens.
    c.tick(now + Duration::from_millis(50));
    assert!(
        drain_all(&mut c)
            .iter()
            .all(|a| !matches!(a, Action::Close { .. }))
    );
    c.tick(now + Duration::from_millis(150));
    assert_closed(&mut c, partial, vec![0xFB], "short name");
    c.tick(now + Duration::from_millis(1001));
    assert_closed(&mut c, silent, vec![], "silent 1 s");
    assert_eq!(c.stats().sessions, 1);
    assert_eq!(c.next_deadline(), None);
}

#[test]
fn tcp_peers_outside_the_allow_list_get_reject_auth() {
    let now = Instant::now();
    let mut s = CoreSettings::from_config(&Config::default());
    s.allow = vec!["192.168.0.0/16".parse().unwrap()];
    let mut c = Core::new(s.clone(), 1, 1);
    let peer = |ip: [u8; 4]| Peer::Tcp(std::net::SocketAddr::from((ip, 5555)));
    let outsider = c.accept(peer([10, 0, 0, 5]), 9, now);
    let actions = drain_all(&mut c);
    assert!(
        actions.contains(&Action::Close {
            id: outsider,
            last_words: vec![0xF7]
        }),
        "{actions:?}"
    );
    let insider = c.accept(peer([192, 168, 3, 4]), 10, now);
    let local = c.accept(peer([127, 0, 0, 1]), 11, now);
    assert!(
        drain_all(&mut c)
            .iter()
            .all(|a| !matches!(a, Action::Close { .. }))
    );
    let unix = c.accept(Peer::Unix, 12, now);
    for (id, name) in [(insider, "in"), (local, "lo"), (unix, "ux")] {
        let mut hello = Vec::new();
        ConnectRequest::new(name.as_bytes(), false, true).encode(&mut hello);
        c.received(id, &hello, now);
        c.received(id, &encode_auth_choice(&["NULL"]), now);
        assert!(c.is_ready(id), "{name}");
    }
    // Waived: anybody.
    s.allow.clear();
    s.allow_any = true;
    let mut c = Core::new(s, 1, 1);
    c.accept(peer([8, 8, 8, 8]), 9, now);
    assert!(
        drain_all(&mut c)
            .iter()
            .all(|a| !matches!(a, Action::Close { .. }))
    );
}

#[test]
fn a_name_field_without_nul_is_its_first_31_bytes() {
    let now = Instant::now();
    let mut c = core(10, 1000);
    let a = connect(&mut c, "a", true, now);
    take_output(&mut c, a);
    let mut req = Vec::new();
    encode_join(c.private_group(a).unwrap(), b"x", &mut req);
    req[48..80].copy_from_slice(&[b'G'; 32]);
    c.received(a, &req, now);
    assert_eq!(c.group_members(&[b'G'; 31]), vec![b"#a#localhost".to_vec()]);
    let memb = split_messages(&take_output(&mut c, a));
    assert_eq!(memb[0].0.name.as_bytes(), &[b'G'; 31]);
    // Data to the same unterminated name reaches the group.
    req.clear();
    encode_multicast(
        c.private_group(a).unwrap(),
        AGREED_MESS,
        &[b"x"],
        0,
        b"d",
        &mut req,
    )
    .unwrap();
    req[48..80].copy_from_slice(&[b'G'; 32]);
    c.received(a, &req, now);
    let got = split_messages(&take_output(&mut c, a));
    assert_eq!(got.len(), 1);
    assert_eq!(
        &got[0].1[..32],
        &[b'G'; 32],
        "destination field forwarded verbatim"
    );
}

#[test]
fn memory_budget_sheds_the_longest_blocked_queue() {
    let now = Instant::now();
    let mut s = CoreSettings::from_config(&Config::default());
    s.max_queued_bytes = 4 * 1024 * 1024;
    let mut c = Core::new(s, 1, 1);
    let tx = connect(&mut c, "tx", false, now);
    let a = connect(&mut c, "a", false, now);
    let b = connect(&mut c, "b", false, now);
    for id in [tx, a, b] {
        take_output(&mut c, id);
    }
    for id in [a, b] {
        core_join(&mut c, id, b"g", now);
    }
    let big = core_multicast(&c, tx, AGREED_MESS, &[b"g"], &[7u8; 100_000]);
    // Both receivers stall; `a` drains a little, so `b` has the longer queue.
    c.received(tx, &big, now);
    c.wrote(a, 0, true);
    c.wrote(b, 0, true);
    let mut killed = None;
    for i in 0..100 {
        c.received(tx, &big, now);
        if i % 2 == 0 && c.is_ready(a) {
            c.wrote(a, 50_000, true);
        }
        if !c.is_ready(b) {
            killed = Some(i);
            break;
        }
    }
    assert!(killed.is_some(), "the budget was enforced");
    assert!(c.is_ready(a), "the shorter queue survives");
    let st = c.stats();
    assert!(st.queued_bytes <= 4 * 1024 * 1024 + 200_000, "{st:?}");
    assert_eq!(st.kills_slow, 1);
    let actions = drain_all(&mut c);
    assert!(actions.iter().any(
        |a| matches!(a, Action::Log(l) if l.contains("#b#localhost") && l.contains("budget"))
    ));
}

#[test]
fn joins_past_the_caps_get_a_reject_message_and_the_session_lives() {
    let now = Instant::now();
    let mut s = CoreSettings::from_config(&Config::default());
    s.max_groups_per_session = 3;
    s.max_groups = 4;
    let mut c = Core::new(s.clone(), 1, 1);
    let a = connect(&mut c, "a", false, now);
    let b = connect(&mut c, "b", false, now);
    for id in [a, b] {
        take_output(&mut c, id);
    }
    for g in [&b"g1"[..], b"g2", b"g3", b"g4"] {
        core_join(&mut c, a, g, now);
    }
    // The fourth group is one too many for a session: rejected, not joined, `a` still there.
    let out = split_messages(&take_output(&mut c, a));
    assert_eq!(out.len(), 1, "one reject message");
    assert_eq!(out[0].0.service_type, REJECT_MESS);
    assert!(c.is_ready(a));
    assert!(c.group_members(b"g4").is_empty());
    // b may create one more group (4 in all), not a fifth.
    core_join(&mut c, b, b"g4", now);
    core_join(&mut c, b, b"g5", now);
    let out = split_messages(&take_output(&mut c, b));
    assert_eq!(out.len(), 1);
    assert_eq!(out[0].0.service_type, REJECT_MESS);
    assert_eq!(c.group_members(b"g4"), vec![b"#b#localhost".to_vec()]);
    assert!(c.group_members(b"g5").is_empty());
    // Joining a group already held is no new membership: no reject.
    core_join(&mut c, a, b"g1", now);
    assert!(take_output(&mut c, a).is_empty());
    assert_eq!(c.stats().rejected_joins, 2);

    // Memberships count against the memory budget: a tiny budget rejects the first join.
    s.max_queued_bytes = 100;
    let mut c = Core::new(s, 1, 1);
    let a = connect(&mut c, "a", false, now);
    take_output(&mut c, a);
    core_join(&mut c, a, b"g1", now);
    assert_eq!(
        split_messages(&take_output(&mut c, a))[0].0.service_type,
        REJECT_MESS
    );
    assert!(c.is_ready(a));
}
