//! Client-side (and codec-level daemon-side) replay of every transcript recorded from a real
//! Spread 5.0.1 daemon (`tests/vectors`, format in its README.md):
//! * every daemon reply decodes, and re-encodes to the same bytes where we are the encoder too
//!   (auth list, accept, membership and self-leave messages, data messages after name normalising);
//! * every libspread request equals what our encoders produce for the same call (name tails after
//!   the NUL ignored) and matches the call in the `api` log;
//! * every `recv` in the `api` log equals what our decoder reports (libspread's view);
//! * raw clients (odd versions, names, auth choices, big-endian) get from the daemon-side parsers
//!   the reply byte the real daemon sent.

mod common;

use common::{Vector, check_recv, hex, hex_u32, normalise_names};
use serde_json::Value;
use spread_sys::wire::constants::{self as c, code};
use spread_sys::wire::deframer::Deframer;
use spread_sys::wire::handshake::*;
use spread_sys::wire::header::Header;
use spread_sys::wire::membership::{encode_membership, encode_self_leave};
use spread_sys::wire::message::*;
use spread_sys::wire::name::private_group_name;

const DAEMON_NAME: &[u8] = b"localhost";

/// What the client-side handshake decoding of a d2c stream found.
struct ClientHandshake {
    outcome: Result<Vec<u8>, i32>,
    /// Bytes of d2c the handshake used.
    used: usize,
}

/// libspread's reading of the daemon's handshake bytes (PROTOCOL §3.6), over a recorded stream.
fn client_decode_handshake(d2c: &[u8], req: &ConnectRequest) -> ClientHandshake {
    let mut at = 0;
    if req.uses_auth_exchange() {
        let Some(&len_byte) = d2c.first() else {
            return ClientHandshake {
                outcome: Err(code::CONNECTION_CLOSED),
                used: 0,
            };
        };
        let len = match auth_list_len(len_byte) {
            Ok(len) => len,
            Err(code) => {
                return ClientHandshake {
                    outcome: Err(code),
                    used: 1,
                };
            }
        };
        let list = &d2c[1..1 + len];
        // We are the daemon-side encoder of this list too.
        let mut ours = Vec::new();
        encode_auth_list(&["NULL"], &mut ours);
        assert_eq!(&d2c[..1 + len], &ours[..], "auth list");
        assert!(parse_auth_list(list).contains(&&b"NULL"[..]));
        at = 1 + len;
    }
    let rest = &d2c[at..];
    if !req.wants_patch_in_accept() {
        // Legacy (< 3.15) accept: 4 fixed bytes.
        let (accept, used) = match Accept::decode(rest, false) {
            Some(a) => a,
            None => {
                let code = rest
                    .first()
                    .map_or(code::CONNECTION_CLOSED, |&b| b as i8 as i32);
                return ClientHandshake {
                    outcome: Err(code),
                    used: at + rest.len().min(1),
                };
            }
        };
        return ClientHandshake {
            outcome: Ok(accept.private_group),
            used: at + used,
        };
    }
    let Some(head) = rest.first_chunk::<5>() else {
        let code = match rest.first() {
            Some(&b) if b != 1 => b as i8 as i32,
            _ => code::CONNECTION_CLOSED,
        };
        return ClientHandshake {
            outcome: Err(code),
            used: at + rest.len(),
        };
    };
    let head = match parse_accept_head(head) {
        Ok(h) => h,
        Err(AcceptError::Rejected(code)) => {
            return ClientHandshake {
                outcome: Err(code),
                used: at + 1,
            };
        }
        Err(e) => panic!("malformed accept: {e}"),
    };
    let name = rest[5..5 + head.name_len].to_vec();
    ClientHandshake {
        outcome: Ok(name),
        used: at + 5 + head.name_len,
    }
}

/// Replay one client's handshake on both sides. Returns (c2d offset, d2c offset, private group)
/// where the framed phase starts, or None if the session never got there.
fn replay_handshake(v: &Vector, client: u64) -> Option<(usize, usize, Vec<u8>)> {
    let c2d = v.c2d(client);
    let d2c = v.d2c(client);
    let first = v.c2d_first.get(&client).map_or(&[][..], |b| b);
    let ctx = format!("{} client {client}", v.name);
    let api_connect = v.api_of(client).into_iter().find(|a| a["op"] == "connect");

    let req = match parse_connect_final(first) {
        ConnectParse::Complete(req, _) => req,
        ConnectParse::Reject(rc) => {
            assert_eq!(d2c, &[rc.byte()], "{ctx}: daemon-side reject byte");
            // libspread reads this byte as the auth-list length and returns it as the error.
            if let Some(a) = api_connect {
                assert_eq!(
                    auth_list_len(rc.byte()),
                    Err(a["ret"].as_i64().unwrap() as i32),
                    "{ctx}"
                );
            }
            return None;
        }
        ConnectParse::Incomplete => {
            // Only the quota reject comes before the daemon reads anything; a client that sends
            // nothing is closed silently after 1 s.
            assert!(c2d.is_empty(), "{ctx}: incomplete connect message");
            assert!(d2c.is_empty() || d2c == [RejectCode::Quota.byte()], "{ctx}");
            return None;
        }
    };
    let (_, used) = match parse_connect(c2d) {
        ConnectParse::Complete(r, n) => (r, n),
        other => panic!("{ctx}: {other:?}"),
    };
    let mut c_at = used;
    if !v.is_raw(client) {
        // Our client encoder produces libspread's connect message for the same call.
        let mut ours = Vec::new();
        ConnectRequest::new(&req.name, req.priority() > 0, req.group_membership())
            .encode(&mut ours);
        assert_eq!(&c2d[..used], &ours[..], "{ctx}: connect message");
    }
    if d2c.len() == 1 && d2c[0] == RejectCode::Quota.byte() {
        return None; // the daemon was full: decided before reading (reject_quota's libspread client)
    }
    if req.uses_auth_exchange() && d2c.first().is_some_and(|&b| (b as i8) < 0) {
        // Rejected instead of the auth list: only uniqueness can do that to a valid request.
        assert_eq!(d2c, &[RejectCode::NotUnique.byte()], "{ctx}");
        let hs = client_decode_handshake(d2c, &req);
        assert_eq!(hs.outcome, Err(code::REJECT_NOT_UNIQUE), "{ctx}");
        if let Some(a) = api_connect {
            assert_eq!(a["ret"], code::REJECT_NOT_UNIQUE, "{ctx}");
        }
        return None;
    }
    if req.uses_auth_exchange() {
        let choice = &c2d[c_at..c2d.len().min(c_at + c::AUTH_CHOICE_LEN)];
        let daemon_accepts = choice.len() == c::AUTH_CHOICE_LEN && {
            let methods = parse_auth_choice(choice.try_into().unwrap());
            !methods.is_empty() && methods.iter().all(|m| *m == b"NULL")
        };
        if !v.is_raw(client) {
            assert_eq!(
                choice,
                &encode_auth_choice(&["NULL"])[..],
                "{ctx}: auth choice"
            );
        }
        let hs = client_decode_handshake(d2c, &req);
        if !daemon_accepts {
            assert_eq!(
                &d2c[hs.used - 1..],
                &[RejectCode::Auth.byte()],
                "{ctx}: auth reject"
            );
            assert_eq!(hs.outcome, Err(code::REJECT_AUTH), "{ctx}");
            return None;
        }
        c_at += c::AUTH_CHOICE_LEN;
    }
    let hs = client_decode_handshake(d2c, &req);
    let api_ret = api_connect.map(|a| a["ret"].as_i64().unwrap() as i32);
    let private_group = match hs.outcome {
        Ok(pg) => pg,
        Err(code) => {
            assert_eq!(
                code,
                code::REJECT_NOT_UNIQUE,
                "{ctx}: only uniqueness is daemon state"
            );
            if let Some(ret) = api_ret {
                assert_eq!(ret, code, "{ctx}");
            }
            return None;
        }
    };
    if let Some(a) = api_connect {
        assert_eq!(a["ret"], 1, "{ctx}");
        assert_eq!(
            a["private_group"].as_str().unwrap().as_bytes(),
            &private_group[..],
            "{ctx}"
        );
    }
    if !req.name.is_empty() {
        assert_eq!(
            private_group,
            private_group_name(&req.name, DAEMON_NAME),
            "{ctx}"
        );
    }
    // We are the daemon-side encoder of the accept reply too.
    let mut ours = Vec::new();
    Accept::for_client(&req, &private_group).encode(&mut ours);
    assert_eq!(
        &d2c[hs.used - ours.len()..hs.used],
        &ours[..],
        "{ctx}: accept reply"
    );
    Some((c_at, hs.used, private_group))
}

/// One call in the api log that must have produced a request.
#[derive(Debug)]
enum Call {
    Join(String),
    Leave(String),
    Mcast {
        service_type: u32,
        mess_type: i16,
        len: usize,
        num_groups: usize,
    },
    Disconnect,
}

fn api_calls(v: &Vector, client: u64) -> Vec<Call> {
    let mut calls = Vec::new();
    for a in v.api_of(client) {
        if a["ret"].as_i64().is_some_and(|r| r < 0) {
            continue;
        }
        match a["op"].as_str().unwrap() {
            "join" => calls.push(Call::Join(a["group"].as_str().unwrap().to_owned())),
            "leave" => calls.push(Call::Leave(a["group"].as_str().unwrap().to_owned())),
            "mcast" => calls.push(Call::Mcast {
                service_type: hex_u32(&a["service_type"]),
                mess_type: a["mess_type"].as_i64().unwrap() as i16,
                len: a["len"].as_u64().unwrap() as usize,
                num_groups: a["num_groups"].as_u64().unwrap() as usize,
            }),
            "disconnect" => calls.push(Call::Disconnect),
            _ => {}
        }
    }
    calls
}

/// Replay the client's requests: each equals our encoding of the same call.
fn replay_requests(v: &Vector, client: u64, c_at: usize) -> usize {
    let ctx = format!("{} client {client}", v.name);
    let raw = v.is_raw(client);
    let mut d = Deframer::for_requests(c::DAEMON_KILL_LEN);
    d.push(&v.c2d(client)[c_at..]);
    let mut calls = api_calls(v, client).into_iter();
    let check_calls = v.api_of(client).iter().any(|a| a["op"] == "connect");
    let mut n = 0;
    while let Some(frame) = d.next_frame() {
        let Ok((header, rest)) = frame else {
            assert!(raw, "{ctx}: libspread sent an unframeable request");
            return n; // a raw client testing the daemon's header validation
        };
        let m = MessageRef::decode_request(header, rest).unwrap();
        n += 1;
        if raw || header.foreign_endian {
            continue; // hand-made requests: decoding them is the check
        }
        let sender = m.sender().to_vec();
        let t = header.service_type;
        let mut ours = Vec::new();
        let call = if check_calls { calls.next() } else { None };
        if t & (c::JOIN_MESS | c::LEAVE_MESS) != 0 {
            let (group, join) = (m.group(0).unwrap(), t & c::JOIN_MESS != 0);
            if join {
                encode_join(&sender, group, &mut ours);
            } else {
                encode_leave(&sender, group, &mut ours);
            }
            if let Some(call) = &call {
                let called = match call {
                    Call::Join(g) if join => g.as_bytes() == group,
                    Call::Leave(g) if !join => g.as_bytes() == group,
                    _ => false,
                };
                assert!(called, "{ctx}: {call:?}");
            }
        } else if t & c::KILL_MESS != 0 {
            encode_kill(&sender, &mut ours);
            if let Some(call) = &call {
                assert!(matches!(call, Call::Disconnect), "{ctx}: {call:?}");
            }
        } else {
            let groups: Vec<&[u8]> = m.group_names().collect();
            let (mess_type, _) = m.mess_type();
            encode_multicast(&sender, t, &groups, mess_type, m.body, &mut ours).unwrap();
            if let Some(call) = &call {
                let Call::Mcast {
                    service_type,
                    mess_type: mt,
                    len,
                    num_groups,
                } = call
                else {
                    panic!("{ctx}: {call:?} vs data request")
                };
                assert_eq!(
                    (*service_type, *mt, *len, *num_groups),
                    (t, mess_type, m.body.len(), groups.len())
                );
            }
        }
        let recorded_len = 48 + rest.len();
        let start = v.c2d(client).len() - d.buffered() - recorded_len;
        let recorded = &v.c2d(client)[start..start + recorded_len];
        let ng = header.num_groups as usize;
        assert_eq!(
            normalise_names(recorded, ng, false),
            ours,
            "{ctx}: request {n}"
        );
    }
    assert_eq!(d.buffered(), 0, "{ctx}: trailing request bytes");
    if check_calls {
        assert!(
            calls.next().is_none(),
            "{ctx}: an api call produced no request"
        );
    }
    n
}

/// Decode the daemon's messages to this client; re-encode them; compare with the api's `recv`s.
fn replay_deliveries(v: &Vector, client: u64, d_at: usize, my_group: &[u8]) -> usize {
    let ctx = format!("{} client {client}", v.name);
    let d2c = v.d2c(client);
    let mut d = Deframer::new(c::DAEMON_KILL_LEN);
    d.push(&d2c[d_at..]);
    let mut offset = d_at;
    let mut messages = Vec::new();
    while let Some(frame) = d.next_frame() {
        let (header, rest) = frame.expect("daemon frames are well-formed");
        let recorded = &d2c[offset..offset + 48 + rest.len()];
        offset += recorded.len();
        let m = MessageRef::decode(header, rest).unwrap();
        let msg = m
            .to_message(my_group)
            .unwrap_or_else(|e| panic!("{ctx}: {e}"));
        let mut ours = Vec::new();
        match &msg {
            Message::Membership(mm) if mm.group_id.is_some() => {
                let members: Vec<&[u8]> = mm.members.iter().map(|s| s.as_bytes()).collect();
                let cause = mm.service_type & !c::REG_MEMB_MESS;
                let changed = mm.changed_member.as_ref().unwrap();
                encode_membership(
                    cause,
                    mm.group.as_bytes(),
                    &members,
                    mm.group_id.unwrap(),
                    changed.as_bytes(),
                    &mut ours,
                );
                assert_eq!(recorded, &ours[..], "{ctx}: membership message");
            }
            Message::Membership(mm) => {
                assert!(m.is_self_leave());
                encode_self_leave(mm.group.as_bytes(), &mut ours);
                assert_eq!(recorded, &ours[..], "{ctx}: self-leave");
            }
            Message::Data(_) => {
                let mut head = [0u8; 48];
                header.encode(&mut head);
                ours.extend_from_slice(&head);
                ours.extend_from_slice(m.groups);
                ours.extend_from_slice(m.body);
                let ng = header.num_groups as usize;
                assert_eq!(
                    normalise_names(recorded, ng, false),
                    normalise_names(&ours, ng, false),
                    "{ctx}"
                );
            }
        }
        messages.push(msg);
    }
    assert_eq!(d.buffered(), 0, "{ctx}: trailing bytes from the daemon");

    let recvs: Vec<&Value> = v
        .api_of(client)
        .into_iter()
        .filter(|a| a["op"] == "recv")
        .collect();
    assert!(
        recvs.len() <= messages.len(),
        "{ctx}: api saw more messages than the wire carried"
    );
    for (i, (a, msg)) in recvs.iter().zip(&messages).enumerate() {
        check_recv(&format!("{ctx} recv {i}"), a, msg);
    }
    messages.len()
}

/// Replay a whole scenario; returns (sessions established, requests, deliveries) for sanity checks.
fn replay(name: &str) -> (usize, usize, usize) {
    let v = common::load_one(name);
    let (mut sessions, mut requests, mut deliveries) = (0, 0, 0);
    for client in v.clients() {
        let Some((c_at, d_at, pg)) = replay_handshake(&v, client) else {
            continue;
        };
        sessions += 1;
        requests += replay_requests(&v, client, c_at);
        deliveries += replay_deliveries(&v, client, d_at, &pg);
    }
    (sessions, requests, deliveries)
}

#[test]
fn all_21_scenarios_are_present() {
    let all = common::load_all();
    let names: Vec<&str> = all.iter().map(|v| v.name.as_str()).collect();
    assert_eq!(names.len(), 21, "{names:?}");
    for n in common::SCENARIOS {
        assert!(names.contains(n), "missing {n}");
    }
}

macro_rules! scenario_tests {
    ($($name:ident => $min:expr),* $(,)?) => {$(
        #[test]
        fn $name() {
            let (sessions, requests, deliveries) = replay(stringify!($name));
            let (s, r, d) = $min;
            assert!(sessions >= s && requests >= r && deliveries >= d,
                "replayed too little: {sessions} sessions, {requests} requests, {deliveries} deliveries");
        }
    )*};
}

scenario_tests! {
    auth_rejects => (0, 0, 0),
    big_endian_raw_client => (2, 4, 6),
    client_versions => (5, 0, 0),
    connect_duplicate_name => (1, 1, 0),
    connect_empty_name => (2, 2, 0),
    connect_illegal_name => (0, 0, 0),
    connect_named_membership => (1, 1, 0),
    connect_no_membership_priority => (2, 4, 3),
    daemon_accepts_odd_requests => (2, 5, 6),
    daemon_kills_bad_requests => (2, 2, 1),
    join_group => (1, 2, 1),
    large_message_100k => (2, 5, 6),
    leave_group => (2, 8, 7),
    member_disconnect => (3, 7, 13),
    multicast_service_types => (2, 13, 21),
    multigroup_multicast => (3, 8, 11),
    private_group_message => (2, 7, 2),
    reject_quota => (0, 0, 0),
    second_member_join => (2, 4, 4),
    spuser_session => (2, 6, 4),
    unix_socket_connect => (1, 3, 2),
}

#[test]
fn big_endian_sender_reaches_le_receiver_with_mismatch() {
    let v = common::load_one("big_endian_raw_client");
    // The raw BE client's AGREED request: header swapped on decode, hint kept verbatim.
    let req = hex(v
        .api_of(2)
        .iter()
        .find(|a| a["what"] == "AGREED mess_type 0x1234, big-endian header")
        .unwrap()["hex"]
        .as_str()
        .unwrap());
    let h = Header::decode_prefix(&req).unwrap();
    assert!(h.foreign_endian);
    assert_eq!(
        (h.service_type, h.num_groups, h.data_len),
        (c::AGREED_MESS, 1, 5)
    );
    assert_eq!(h.mess_type(), (0x1234, true));
}
