//! Property tests: decoders never panic on arbitrary bytes; encoders and decoders agree.

use proptest::prelude::*;
use spread_sys::spool::{SpoolRecord, decode_all, encode_record};
use spread_sys::spread_name::SpreadName;
use spread_sys::wire::constants::*;
use spread_sys::wire::deframer::Deframer;
use spread_sys::wire::handshake::*;
use spread_sys::wire::header::{Header, mess_type_of_hint};
use spread_sys::wire::membership::{GroupId, decode_membership_body, encode_membership};
use spread_sys::wire::message::*;
use spread_sys::wire::name::NameField;

/// Names in 0x24..0x7E of 1..=max bytes.
fn name(max: usize) -> impl Strategy<Value = Vec<u8>> {
    proptest::collection::vec(0x24u8..=0x7e, 1..=max)
}

fn regular_service() -> impl Strategy<Value = u32> {
    (0u32..6, any::<bool>())
        .prop_map(|(bit, discard)| (1 << bit) | if discard { SELF_DISCARD } else { 0 })
}

proptest! {
    #[test]
    fn header_decode_never_panics_and_reencodes(bytes in proptest::array::uniform32(any::<u8>()), tail in proptest::array::uniform16(any::<u8>())) {
        let mut all = [0u8; 48];
        all[..32].copy_from_slice(&bytes);
        all[32..].copy_from_slice(&tail);
        let h = Header::decode(&all);
        let _ = h.mess_type();
        let mut again = [0u8; 48];
        if h.foreign_endian { h.encode_big_endian(&mut again) } else { h.encode(&mut again) }
        // Everything but the marker bits of `type` survives (the name field is kept raw).
        prop_assert_eq!(Header::decode(&again).service_type, h.service_type);
        prop_assert_eq!(&again[4..48], &all[4..48]);
    }

    #[test]
    fn connect_parsers_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..40)) {
        let _ = parse_connect(&bytes);
        let _ = parse_connect_final(&bytes);
        if let Ok(head) = <[u8; 5]>::try_from(&bytes[..bytes.len().min(5)]) {
            let _ = parse_accept_head(&head);
        }
        let _ = Accept::decode(&bytes, true);
        let _ = Accept::decode(&bytes, false);
        let _ = parse_auth_list(&bytes);
        if let Ok(c) = <[u8; AUTH_CHOICE_LEN]>::try_from(&bytes.repeat(3)[..]) {
            let _ = parse_auth_choice(&c);
        }
        let _ = SpreadName::parse(&String::from_utf8_lossy(&bytes));
    }

    #[test]
    fn connect_request_round_trip(n in proptest::option::of(name(10)), priority: bool, membership: bool) {
        let n = n.unwrap_or_default();
        let req = ConnectRequest::new(&n, priority, membership);
        let mut v = Vec::new();
        req.encode(&mut v);
        let ConnectParse::Complete(parsed, used) = parse_connect_final(&v) else { panic!("{v:?}") };
        prop_assert_eq!(used, v.len());
        prop_assert_eq!(parsed.group_membership(), membership);
        prop_assert_eq!(parsed.priority() > 0, priority);
        prop_assert_eq!(&parsed, &req);
    }

    #[test]
    fn accept_and_auth_round_trip(pg in name(31), patch: bool, m in proptest::collection::vec("[A-Z]{1,29}", 1..=3)) {
        let a = Accept { major: 5, minor: 0, patch: patch.then_some(1), private_group: pg };
        let mut v = Vec::new();
        a.encode(&mut v);
        prop_assert_eq!(Accept::decode(&v, patch), Some((a, v.len())));
        let methods: Vec<&str> = m.iter().map(|s| s.as_str()).collect();
        let choice = encode_auth_choice(&methods);
        let parsed: Vec<&[u8]> = parse_auth_choice(&choice);
        prop_assert_eq!(parsed, methods.iter().map(|s| s.as_bytes()).collect::<Vec<_>>());
        let mut list = Vec::new();
        encode_auth_list(&methods, &mut list);
        prop_assert_eq!(list[0] as usize, list.len() - 1);
        prop_assert_eq!(parse_auth_list(&list[1..]), methods.iter().map(|s| s.as_bytes()).collect::<Vec<_>>());
    }

    #[test]
    fn deframer_and_message_decode_never_panic(chunks in proptest::collection::vec(proptest::collection::vec(any::<u8>(), 0..200), 0..8), requests: bool) {
        let mut d = if requests { Deframer::for_requests(4096) } else { Deframer::new(4096) };
        for c in &chunks {
            d.push(c);
            let _ = d.missing();
            while let Some(f) = d.next_frame() {
                let Ok((h, rest)) = f else { break };
                let m = if requests { MessageRef::decode_request(h, rest) } else { MessageRef::decode(h, rest) };
                if let Ok(m) = m {
                    let _ = (m.is_regular(), m.is_membership(), m.is_self_leave(), m.sender(), m.group(0));
                    let _ = m.to_message(b"#me#localhost");
                }
            }
        }
    }

    #[test]
    fn arbitrary_frame_contents_decode_without_panic(service: u32, ng in 0i32..4, body in proptest::collection::vec(any::<u8>(), 0..120), groups in proptest::collection::vec(any::<u8>(), 0..128)) {
        // A well-framed message whose contents are garbage (e.g. a membership body of random bytes).
        let data_len = body.len() as i32;
        let h = Header { service_type: service & !ENDIAN_MARKER, name: NameField([b'x'; 32]), num_groups: ng, hint: [1, 2, 3, 4], data_len, foreign_endian: false };
        let mut rest = Vec::new();
        if h.service_type & REJECT_MESS != 0 { rest.extend_from_slice(&[0, 0, 0, 0]); }
        let mut g = groups.clone();
        g.resize(32 * ng as usize, 0);
        rest.extend_from_slice(&g);
        rest.extend_from_slice(&body);
        let m = MessageRef::decode(h, &rest).unwrap();
        let _ = m.to_message(b"#me#d");
        let _ = decode_membership_body(&body, false);
        let _ = decode_membership_body(&body, true);
        let _ = mess_type_of_hint([body.first().copied().unwrap_or(0), 0, 0, 0x80]);
    }

    #[test]
    fn multicast_round_trip(sender in name(31), service in regular_service(), groups in proptest::collection::vec(name(31), 0..5), mess_type: i16, body in proptest::collection::vec(any::<u8>(), 0..300)) {
        let gs: Vec<&[u8]> = groups.iter().map(|g| &g[..]).collect();
        let mut v = Vec::new();
        encode_multicast(&sender, service, &gs, mess_type, &body, &mut v).unwrap();
        // Split into arbitrary pieces: the deframer reassembles the same message.
        let mut d = Deframer::for_requests(DAEMON_KILL_LEN);
        let cut = v.len() / 3;
        d.push(&v[..cut]);
        prop_assert!(d.next_frame().is_none() || cut >= v.len());
        d.push(&v[cut..]);
        let (h, rest) = d.next_frame().unwrap().unwrap();
        let m = MessageRef::decode_request(h, rest).unwrap();
        prop_assert_eq!(m.sender(), &sender[..]);
        prop_assert_eq!(h.service_type, service);
        prop_assert_eq!(m.mess_type(), (mess_type, false));
        prop_assert_eq!(m.group_names().collect::<Vec<_>>(), gs);
        prop_assert_eq!(m.body, &body[..]);
    }

    #[test]
    fn join_leave_kill_round_trip(sender in name(31), group in name(31)) {
        for (kind, enc) in [(JOIN_MESS, encode_join as fn(&[u8], &[u8], &mut Vec<u8>)), (LEAVE_MESS, encode_leave)] {
            let mut v = Vec::new();
            enc(&sender, &group, &mut v);
            let h = Header::decode_prefix(&v).unwrap();
            let m = MessageRef::decode_request(h, &v[48..]).unwrap();
            prop_assert_eq!((h.service_type, m.sender(), m.group(0)), (kind, &sender[..], Some(&group[..])));
        }
        let mut v = Vec::new();
        encode_kill(&sender, &mut v);
        let h = Header::decode_prefix(&v).unwrap();
        prop_assert_eq!(h.service_type, KILL_MESS);
        prop_assert_eq!(&v[48..48 + sender.len()], &sender[..]);
    }

    #[test]
    fn membership_round_trip(group in name(31), members in proptest::collection::vec(name(31), 1..6), gid: [u32; 3], cause_bit in 0u32..3, who in 0usize..6) {
        let cause = [CAUSED_BY_JOIN, CAUSED_BY_LEAVE, CAUSED_BY_DISCONNECT][cause_bit as usize];
        let ms: Vec<&[u8]> = members.iter().map(|m| &m[..]).collect();
        let me = &members[who % members.len()];
        let mut v = Vec::new();
        encode_membership(cause, &group, &ms, GroupId(gid), me, &mut v);
        let h = Header::decode_prefix(&v).unwrap();
        let m = MessageRef::decode(h, &v[48..]).unwrap();
        let Message::Membership(mm) = m.to_message(me).unwrap() else { panic!() };
        prop_assert_eq!(mm.service_type, REG_MEMB_MESS | cause);
        prop_assert_eq!(mm.group.as_bytes(), &group[..]);
        prop_assert_eq!(mm.group_id, Some(GroupId(gid)));
        prop_assert_eq!(mm.changed_member.as_deref().map(str::as_bytes), Some(&me[..]));
        prop_assert_eq!(mm.mess_type as usize, members.iter().position(|x| x == me).unwrap());
        let body = decode_membership_body(m.body, false).unwrap();
        prop_assert_eq!(body.vs_sets, vec![vec![me.clone()]]);
    }

    #[test]
    fn spool_decode_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..300)) {
        let c = decode_all(&bytes);
        if let Some((at, _)) = c.torn_tail { prop_assert!(at as usize <= bytes.len()); }
    }

    #[test]
    fn spool_records_round_trip(recs in proptest::collection::vec((any::<u32>(), name(31), proptest::collection::vec(any::<u8>(), 0..200)), 0..10), garbage in proptest::collection::vec(any::<u8>(), 0..20)) {
        let mut v = Vec::new();
        for (id, g, line) in &recs {
            encode_record(*id, g, line, &mut v);
        }
        let good = v.len();
        v.extend_from_slice(&garbage);
        let c = decode_all(&v);
        let want: Vec<SpoolRecord> = recs.iter().map(|(id, g, l)| SpoolRecord { daemon_id: *id, group: g.clone(), line: l.clone(), origin: None }).collect();
        prop_assert_eq!(c.records, want);
        prop_assert_eq!(c.torn_tail.is_some(), !garbage.is_empty());
        if let Some((at, _)) = c.torn_tail { prop_assert_eq!(at as usize, good); }
    }
}

/// Private group names as a daemon reports them: `#name#host`, at most 31 bytes.
fn private_group() -> impl Strategy<Value = Vec<u8>> {
    (name(10), proptest::collection::vec(0x24u8..=0x7e, 1..=19)).prop_map(|(n, h)| {
        let mut g = vec![b'#'];
        g.extend(n.into_iter().map(|b| if b == b'#' { b'x' } else { b }));
        g.push(b'#');
        g.extend(h);
        g
    })
}

proptest! {
    #[test]
    fn control_records_round_trip(old in private_group(), group in name(31), next in any::<u64>()) {
        use spread_sys::control::{CONTROL_MESS_TYPE, Record, decode, encode};
        let records = [
            Record::Next { group: &group, next },
            Record::Handover { old: &old, group: &group, next },
        ];
        let mut body = Vec::new();
        for r in &records {
            prop_assert!(encode(r, &mut body));
        }
        let back: Vec<_> = decode(CONTROL_MESS_TYPE, &body).unwrap().collect();
        prop_assert_eq!(back, records.iter().map(|r| Ok(*r)).collect::<Vec<_>>());
        // Any other mess_type is no control message.
        prop_assert!(decode(CONTROL_MESS_TYPE ^ 1, &body).is_none());
        // A cut body never reads as the whole: its last record is malformed or missing.
        for cut in 0..body.len() {
            let back: Vec<_> = decode(CONTROL_MESS_TYPE, &body[..cut]).unwrap().collect();
            prop_assert!(back.len() < 2 || back[1] != Ok(records[1]));
        }
    }

    #[test]
    fn control_decode_never_panics_and_reads_only_canonical_records(
        body in proptest::collection::vec(any::<u8>(), 0..96),
        suffix in proptest::collection::vec(0x20u8..=0x7e, 0..48),
    ) {
        use spread_sys::control::{CONTROL_MESS_TYPE, decode, encode};
        let mut b = b"mls1 next ".to_vec();
        b.extend_from_slice(&suffix);
        b.push(b'\n');
        for candidate in [&body, &b] {
            let lines: Vec<&[u8]> = candidate.split_inclusive(|&c| c == b'\n').collect();
            let records: Vec<_> = decode(CONTROL_MESS_TYPE, candidate).unwrap().collect();
            prop_assert_eq!(records.len(), lines.len());
            for (r, line) in records.iter().zip(lines) {
                if let Ok(r) = r {
                    let mut again = Vec::new();
                    prop_assert!(encode(r, &mut again));
                    prop_assert_eq!(&again[..], line);
                }
            }
        }
    }

    #[test]
    fn previous_handover_decode_never_panics_and_only_accepts_canonical_bodies(body in proptest::collection::vec(any::<u8>(), 0..64), suffix in proptest::collection::vec(any::<u8>(), 0..40)) {
        use spread_sys::seq::{HANDOVER_MESS_TYPE, decode_handover};
        let mut b = b"mls-seq-handover ".to_vec();
        b.extend_from_slice(&suffix);
        for candidate in [&body, &b] {
            if let Some((old, next)) = decode_handover(HANDOVER_MESS_TYPE, candidate) {
                let mut again = b"mls-seq-handover ".to_vec();
                again.extend_from_slice(old);
                again.extend_from_slice(format!(" {next}\n").as_bytes());
                prop_assert_eq!(&again, candidate);
            }
        }
    }

    #[test]
    fn previous_handover_decodes(old in private_group(), next in 0u16..=spread_sys::seq::MAX_SEQ) {
        use spread_sys::seq::{HANDOVER_MESS_TYPE, decode_handover};
        let mut body = b"mls-seq-handover ".to_vec();
        body.extend_from_slice(&old);
        body.extend_from_slice(format!(" {next}\n").as_bytes());
        prop_assert_eq!(decode_handover(HANDOVER_MESS_TYPE, &body), Some((&old[..], next)));
        prop_assert_eq!(decode_handover(HANDOVER_MESS_TYPE ^ 1, &body), None);
        for cut in 0..body.len() {
            prop_assert_eq!(decode_handover(HANDOVER_MESS_TYPE, &body[..cut]), None);
        }
    }
}
