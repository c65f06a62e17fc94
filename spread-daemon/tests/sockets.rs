//! The daemon over real sockets: handshake, groups, delivery, limits, misbehaving clients, clean stop.

mod common;

use std::time::Duration;

use common::*;
use spread_sys::wire::constants::*;
use spread_sys::wire::header::Header;

const T: Duration = Duration::from_secs(5);

#[test]
fn groups_membership_and_delivery_over_unix_and_tcp() {
    let (_dir, d) = daemon("basic", |_| {});
    let mut alice = RawClient::unix(&d, "alice");
    assert_eq!(alice.private_group, b"#alice#localhost");
    let mut bob = RawClient::handshake(connect_tcp(&d), "bob", true).unwrap();
    // A membership-less session (spreadlogd style) is listed but told nothing.
    let mut quiet = RawClient::handshake(connect_unix(&d), "quiet", false).unwrap();

    alice.join("grp");
    let m = alice.recv();
    let mm = membership(&m);
    assert_eq!(mm.service_type, REG_MEMB_MESS | CAUSED_BY_JOIN);
    assert_eq!(mm.members, vec!["#alice#localhost"]);
    assert_eq!(mm.group_id.unwrap().0[2], 1);

    bob.join("grp");
    for c in [&mut alice, &mut bob] {
        let m = c.recv();
        let mm = membership(&m);
        assert_eq!(mm.members, vec!["#alice#localhost", "#bob#localhost"]);
        assert_eq!(mm.changed_member.as_deref(), Some("#bob#localhost"));
        assert_eq!(mm.group_id.unwrap().0[2], 2);
    }
    quiet.join("grp");
    quiet.join("grp"); // duplicate join: silent
    for c in [&mut alice, &mut bob] {
        let m = c.recv();
        assert_eq!(membership(&m).members.len(), 3);
        assert_eq!(membership(&m).group_id.unwrap().0[2], 3);
    }

    alice.multicast(AGREED_MESS, &["grp"], 7, b"hello");
    for c in [&mut alice, &mut bob, &mut quiet] {
        let m = c.recv();
        let dm = data(&m);
        assert_eq!(dm.body, b"hello");
        assert_eq!(dm.sender, "#alice#localhost");
        assert_eq!(dm.mess_type, 7);
    }
    // SELF_DISCARD: not back to the sender; one copy per session for multi-group + private names.
    alice.multicast(
        SAFE_MESS | SELF_DISCARD,
        &["grp", "grp", "#bob#localhost", "nobody"],
        1,
        b"x",
    );
    assert_eq!(data(&bob.recv()).groups.len(), 4);
    assert_eq!(data(&quiet.recv()).body, b"x");
    bob.multicast(RELIABLE_MESS, &["grp"], 2, b"marker");
    for c in [&mut alice, &mut bob, &mut quiet] {
        assert_eq!(
            data(&c.recv()).body,
            b"marker",
            "exactly one copy of the multi-group message, then this"
        );
    }

    // Leave: self-leave to the leaver, CAUSED_BY_LEAVE to the rest; bogus leave is silent.
    bob.leave("grp");
    let m = bob.recv();
    assert_eq!(membership(&m).service_type, CAUSED_BY_LEAVE);
    let m = alice.recv();
    assert_eq!(membership(&m).service_type, REG_MEMB_MESS | CAUSED_BY_LEAVE);
    bob.leave("grp");
    bob.leave("never");
    assert!(bob.recv_timeout(Duration::from_millis(200)).is_none());

    // Disconnect (abrupt close) -> CAUSED_BY_DISCONNECT.
    drop(quiet);
    let m = alice.recv();
    assert_eq!(
        membership(&m).service_type,
        REG_MEMB_MESS | CAUSED_BY_DISCONNECT
    );
    assert_eq!(membership(&m).members, vec!["#alice#localhost"]);
    let st = d.stats();
    assert_eq!(st.groups, 1);
    assert_eq!(st.sessions, 2);
    d.stop().unwrap();
}

/// A receiver's reads do not wake the daemon: a socket is watched for writes only while it
/// refuses bytes. One message at a time to one reader: one wake-up per message (its arrival).
/// Watched for writes all the time (edge-triggered), every read by the receiver woke the loop
/// too: two per message, each a context switch on a web host.
#[test]
fn a_receiver_reading_does_not_wake_the_daemon() {
    let (_dir, d) = daemon("wakeups", |_| {});
    let mut sender = RawClient::unix(&d, "sender");
    let mut reader = RawClient::handshake(connect_unix(&d), "reader", false).unwrap();
    reader.join("g");
    sender.multicast(AGREED_MESS, &["g"], 1, b"first");
    assert_eq!(data(&reader.recv()).body, b"first");
    std::thread::sleep(Duration::from_millis(50));
    let before = d.stats().wakeups;
    let n = 200u64;
    for _ in 0..n {
        sender.multicast(AGREED_MESS, &["g"], 1, b"x");
        assert_eq!(data(&reader.recv()).body, b"x");
        // The loop goes back to sleep before the next one.
        std::thread::sleep(Duration::from_millis(1));
    }
    let wakeups = d.stats().wakeups - before;
    assert!(
        wakeups >= n && wakeups < n * 3 / 2,
        "{wakeups} wake-ups for {n} messages"
    );
    d.stop().unwrap();
}

#[test]
fn handshake_rejects_duplicate_and_illegal_names() {
    let (_dir, d) = daemon("names", |_| {});
    let _a = RawClient::unix(&d, "dup");
    assert_eq!(
        RawClient::handshake(connect_unix(&d), "dup", true).err(),
        Some(0xFA)
    );
    assert_eq!(
        RawClient::handshake(connect_unix(&d), "a#b", true).err(),
        Some(0xFB)
    );
    // Empty name: the daemon invents r<N>-<fd>.
    let c = RawClient::handshake(connect_unix(&d), "", true).unwrap();
    let pg = String::from_utf8(c.private_group.clone()).unwrap();
    assert!(pg.starts_with("#r") && pg.ends_with("#localhost"), "{pg}");
    // Garbage instead of a connect message: an old version byte -> F9.
    let mut s = std::os::unix::net::UnixStream::connect(d.unix_path().unwrap()).unwrap();
    use std::io::{Read, Write};
    s.write_all(&[1, 0, 0, 3, b'a', b'b', b'c']).unwrap();
    let mut b = [0u8; 1];
    s.read_exact(&mut b).unwrap();
    assert_eq!(b[0], 0xF9);
}

#[test]
fn quota_of_997_sessions_answers_fd_to_the_998th() {
    raise_nofile(8192);
    let (_dir, d) = daemon("quota", |_| {});
    let mut clients = Vec::new();
    for i in 0..997 {
        clients.push(
            RawClient::handshake(connect_unix(&d), &format!("c{i}"), false).expect("within quota"),
        );
    }
    assert_eq!(
        RawClient::handshake(connect_unix(&d), "extra", false).err(),
        Some(0xFD)
    );
    assert_eq!(d.stats().sessions, 997);
    // A freed slot is usable again.
    drop(clients.pop());
    let deadline = std::time::Instant::now() + T;
    loop {
        match RawClient::handshake(connect_unix(&d), "again", false) {
            Ok(_) => break,
            Err(0xFD) if std::time::Instant::now() < deadline => {
                std::thread::sleep(Duration::from_millis(10))
            }
            Err(e) => panic!("reconnect after a departure failed: {e:#x}"),
        }
    }
}

#[test]
fn abrupt_disconnect_mid_message_is_a_plain_departure() {
    let (_dir, d) = daemon("abrupt", |_| {});
    let mut alice = RawClient::unix(&d, "alice");
    alice.join("g");
    alice.recv();
    let mut bob = RawClient::unix(&d, "bob");
    bob.join("g");
    alice.recv();
    bob.recv();
    let msg = bob.multicast_bytes(AGREED_MESS, &["g"], 0, &[b'z'; 5000]);
    bob.send_raw(&msg[..2000]).unwrap();
    std::thread::sleep(Duration::from_millis(50));
    drop(bob);
    let m = alice.recv();
    assert_eq!(
        membership(&m).service_type,
        REG_MEMB_MESS | CAUSED_BY_DISCONNECT
    );
    // The half message was never delivered, and the daemon serves on.
    alice.multicast(AGREED_MESS, &["g"], 0, b"still here");
    assert_eq!(data(&alice.recv()).body, b"still here");
}

type MakeBad = Box<dyn Fn(&RawClient) -> Vec<u8>>;

/// Replace the type of an encoded little-endian request.
fn with_type(mut b: Vec<u8>, t: u32) -> Vec<u8> {
    b[0..4].copy_from_slice(&(t | ENDIAN_MARKER).to_le_bytes());
    b
}

#[test]
fn garbage_and_bad_headers_kill_only_the_offender() {
    let (_dir, d) = daemon("garbage", |_| {});
    let mut alice = RawClient::unix(&d, "alice");
    alice.join("g");
    alice.recv();
    let cases: Vec<(&str, MakeBad)> = vec![
        (
            "random bytes",
            Box::new(|_| (0..200u32).map(|i| (i * 37 + 11) as u8).collect()),
        ),
        (
            "two service bits",
            Box::new(|c| {
                with_type(
                    c.multicast_bytes(AGREED_MESS, &["g"], 0, b"x"),
                    AGREED_MESS | SAFE_MESS,
                )
            }),
        ),
        (
            "no service bit",
            Box::new(|c| {
                with_type(
                    c.multicast_bytes(AGREED_MESS, &["g"], 0, b"x"),
                    SELF_DISCARD,
                )
            }),
        ),
        (
            "GROUPS_MESS (crashed Spread 5.0.1)",
            Box::new(|c| {
                with_type(
                    c.multicast_bytes(AGREED_MESS, &["g"], 0, b"x"),
                    AGREED_MESS | GROUPS_MESS,
                )
            }),
        ),
        (
            "REJECT_MESS in a request",
            Box::new(|c| {
                with_type(
                    c.multicast_bytes(AGREED_MESS, &["g"], 0, b"x"),
                    AGREED_MESS | REJECT_MESS,
                )
            }),
        ),
        (
            "someone else's name",
            Box::new(|c| {
                let mut b = c.multicast_bytes(AGREED_MESS, &["g"], 0, b"x");
                b[5] = b'X';
                b
            }),
        ),
        (
            "over-size (crashed Spread 5.0.1 between 143153 and 143952)",
            Box::new(|c| {
                let mut b = c.multicast_bytes(AGREED_MESS, &["g"], 0, b"x");
                b[44..48].copy_from_slice(&143_921i32.to_le_bytes());
                b
            }),
        ),
        (
            "negative data_len",
            Box::new(|c| {
                let mut b = c.multicast_bytes(AGREED_MESS, &["g"], 0, b"");
                b[44..48].copy_from_slice(&(-5i32).to_le_bytes());
                b
            }),
        ),
        (
            "101 groups",
            Box::new(|c| {
                let mut b = c.multicast_bytes(AGREED_MESS, &["g"], 0, b"");
                b[36..40].copy_from_slice(&101i32.to_le_bytes());
                b
            }),
        ),
        (
            "bad hint",
            Box::new(|c| {
                let mut b = c.multicast_bytes(AGREED_MESS, &["g"], 0, b"");
                b[40] = 0x81;
                b
            }),
        ),
    ];
    for (i, (what, make)) in cases.iter().enumerate() {
        let mut bad = RawClient::unix(&d, &format!("bad{i}"));
        bad.join("g");
        bad.recv();
        alice.recv();
        let bytes = make(&bad);
        // A header alone must be enough to be judged (no waiting for a body that never comes).
        let _ = bad.send_raw(&bytes[..bytes.len().min(48)]);
        assert!(bad.closed_within(T), "{what}: offender not disconnected");
        let m = alice.recv();
        assert_eq!(
            membership(&m).service_type,
            REG_MEMB_MESS | CAUSED_BY_DISCONNECT,
            "{what}"
        );
    }
    assert_eq!(d.stats().kills_protocol, cases.len() as u64);
    alice.multicast(AGREED_MESS, &["g"], 0, b"alive");
    assert_eq!(data(&alice.recv()).body, b"alive");
}

#[test]
fn big_messages_up_to_the_limit() {
    let (_dir, d) = daemon("big", |_| {});
    let mut alice = RawClient::unix(&d, "alice");
    let mut bob = RawClient::unix(&d, "bob");
    bob.join("g");
    bob.recv();
    // The largest body real Spread delivers (143120 to one group) and the largest it accepts.
    for len in [143_120usize, 143_952 - 32] {
        let body: Vec<u8> = (0..len).map(|i| (i % 251) as u8).collect();
        let mut b = Vec::new();
        spread_sys::wire::message::encode_multicast(
            &alice.private_group,
            AGREED_MESS,
            &[b"g"],
            3,
            &body,
            &mut b,
        )
        .or_else(|_| {
            // Our client refuses > 143152 (CONTRACTS §3); build the header by hand for the daemon limit.
            b.clear();
            let mut small = Vec::new();
            spread_sys::wire::message::encode_multicast(
                &alice.private_group,
                AGREED_MESS,
                &[b"g"],
                3,
                b"",
                &mut small,
            )
            .unwrap();
            small[44..48].copy_from_slice(&(len as i32).to_le_bytes());
            b.extend_from_slice(&small);
            b.extend_from_slice(&body);
            Ok::<(), ()>(())
        })
        .unwrap();
        alice.send_raw(&b).unwrap();
        let m = bob.recv();
        assert_eq!(data(&m).body, body, "{len}-byte body");
    }
    // One byte more: the sender is killed, the daemon survives.
    let mut b = alice.multicast_bytes(AGREED_MESS, &["g"], 0, b"");
    b[44..48].copy_from_slice(&(143_952 - 32 + 1i32).to_le_bytes());
    alice.send_raw(&b).unwrap();
    assert!(alice.closed_within(T));
    let mut carol = RawClient::unix(&d, "carol");
    carol.multicast(AGREED_MESS, &["g"], 0, b"ok");
    assert_eq!(data(&bob.recv()).body, b"ok");
}

#[test]
fn big_endian_client_is_understood_and_its_hint_forwarded() {
    let (_dir, d) = daemon("be", |_| {});
    let mut le = RawClient::unix(&d, "le");
    le.join("g");
    le.recv();
    let mut be = RawClient::unix(&d, "be");
    // A big-endian JOIN and data message, written by hand: no markers, integers big-endian.
    let mut join = Vec::new();
    let h = Header::new(
        JOIN_MESS,
        spread_sys::wire::name::NameField::new(&be.private_group).unwrap(),
        1,
        0,
    );
    let mut hb = [0u8; 48];
    h.encode_big_endian(&mut hb);
    join.extend_from_slice(&hb);
    join.extend_from_slice(
        spread_sys::wire::name::NameField::new(b"g")
            .unwrap()
            .0
            .as_slice(),
    );
    be.send_raw(&join).unwrap();
    let m = le.recv();
    assert_eq!(
        membership(&m).changed_member.as_deref(),
        Some("#be#localhost")
    );
    let h = Header {
        service_type: AGREED_MESS,
        num_groups: 1,
        hint: [0x00, 0x12, 0x34, 0x00],
        data_len: 3,
        ..h
    };
    h.encode_big_endian(&mut hb);
    let mut msg = hb.to_vec();
    msg.extend_from_slice(
        spread_sys::wire::name::NameField::new(b"g")
            .unwrap()
            .0
            .as_slice(),
    );
    msg.extend_from_slice(b"abc");
    be.send_raw(&msg).unwrap();
    let raw = le.recv_raw(T).unwrap();
    assert_eq!(
        &raw[0..4],
        &[0x90, 0, 0, 0x80],
        "type re-stamped in daemon (LE) order with the marker"
    );
    assert_eq!(
        &raw[40..44],
        &[0x00, 0x12, 0x34, 0x00],
        "hint forwarded verbatim"
    );
    assert_eq!(&raw[raw.len() - 3..], b"abc");
    let (mt, mismatch) = spread_sys::wire::header::mess_type_of_hint([0x00, 0x12, 0x34, 0x00]);
    assert_eq!((mt, mismatch), (0x1234, true));
}

#[test]
fn slow_consumer_is_killed_and_logged_others_unaffected() {
    let (_dir, d) = daemon("slow", |c| c.max_session_messages = 100);
    let mut watcher = RawClient::unix(&d, "watcher");
    watcher.join("g");
    watcher.recv();
    let mut sleeper = RawClient::unix(&d, "sleeper");
    sleeper.join("g");
    watcher.recv();
    let mut fast = RawClient::unix(&d, "fast");
    let body = vec![b'q'; 10_000];
    let msg = fast.multicast_bytes(RELIABLE_MESS, &["#watcher#localhost", "g"], 0, &body);
    // ~400 KiB of kernel buffers + 100 queued messages: 200 messages of 10 kB overflow it.
    let mut got_watcher = 0;
    let mut disconnect_seen = false;
    for _ in 0..200 {
        fast.send_raw(&msg).unwrap();
        // The watcher reads as it goes, so only the sleeper falls behind.
        while let Some(m) = watcher.recv_timeout(Duration::from_millis(1)) {
            match m {
                spread_sys::Message::Data(_) => got_watcher += 1,
                spread_sys::Message::Membership(mm) => {
                    assert_eq!(mm.service_type, REG_MEMB_MESS | CAUSED_BY_DISCONNECT);
                    assert_eq!(mm.changed_member.as_deref(), Some("#sleeper#localhost"));
                    disconnect_seen = true;
                }
            }
        }
    }
    while let Some(m) = watcher.recv_timeout(Duration::from_millis(300)) {
        match m {
            spread_sys::Message::Data(_) => got_watcher += 1,
            spread_sys::Message::Membership(_) => disconnect_seen = true,
        }
    }
    assert_eq!(got_watcher, 200, "the reading member got every message");
    assert!(disconnect_seen, "others were told the slow member left");
    assert!(sleeper.closed_within(T), "slow member's stream ends");
    let st = d.stats();
    assert_eq!(st.kills_slow, 1);
    assert_eq!(st.queued_messages, 0);
    assert_eq!(
        st.queued_bytes, 0,
        "the victim's bytes leave the memory budget's count"
    );
}

#[test]
fn clean_stop_delivers_everything_sent_then_removes_the_socket() {
    let (_dir, d) = daemon("stop", |_| {});
    let path = d.unix_path().unwrap().to_owned();
    let mut rx = RawClient::unix(&d, "rx");
    rx.join("g");
    rx.recv();
    let mut tx = RawClient::unix(&d, "tx");
    let msg = tx.multicast_bytes(AGREED_MESS, &["g"], 0, &[b'm'; 200]);
    let batch: Vec<u8> = msg.iter().copied().cycle().take(msg.len() * 2000).collect();
    tx.send_raw(&batch).unwrap();
    let reader = std::thread::spawn(move || {
        let mut n = 0;
        while rx.recv_timeout(T).is_some() {
            n += 1;
        }
        n
    });
    d.stop().unwrap();
    assert_eq!(
        reader.join().unwrap(),
        2000,
        "every message handed over before the stop was delivered"
    );
    assert!(!path.exists(), "unix socket removed on clean exit");
    // The sender's stream is closed now: writing fails (the module spools on this).
    let mut failed = false;
    for _ in 0..50 {
        if tx.send_raw(&msg).is_err() {
            failed = true;
            break;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    assert!(failed, "writes to a stopped daemon fail");
}

#[test]
fn tcp_peers_beyond_loopback_need_the_allow_list_and_ip_auth_works() {
    // IP auth on loopback TCP with a matching rule; unix peers never match the IP method.
    let (_dir, d) = daemon("ipauth", |c| {
        c.auth_methods = vec![
            spread_daemon::AuthMethod::Null,
            spread_daemon::AuthMethod::Ip,
        ];
        c.allow = vec!["127.0.0.0/8".parse().unwrap()];
    });
    use std::io::{Read, Write};
    let mut s = std::net::TcpStream::connect(d.tcp_addr().unwrap()).unwrap();
    let mut hello = Vec::new();
    spread_sys::wire::handshake::ConnectRequest::new(b"ipc", false, false).encode(&mut hello);
    s.write_all(&hello).unwrap();
    let mut list = [0u8; 9];
    s.read_exact(&mut list).unwrap();
    assert_eq!(&list, b"\x08NULL IP ");
    s.write_all(&spread_sys::wire::handshake::encode_auth_choice(&["IP"]))
        .unwrap();
    let mut acc = [0u8; 1];
    s.read_exact(&mut acc).unwrap();
    assert_eq!(acc[0], 1, "IP auth from 127.0.0.1 accepted");

    let mut hello2 = Vec::new();
    spread_sys::wire::handshake::ConnectRequest::new(b"ipu", false, false).encode(&mut hello2);
    let mut u = std::os::unix::net::UnixStream::connect(d.unix_path().unwrap()).unwrap();
    u.write_all(&hello2).unwrap();
    u.read_exact(&mut list).unwrap();
    u.write_all(&spread_sys::wire::handshake::encode_auth_choice(&["IP"]))
        .unwrap();
    u.read_exact(&mut acc).unwrap();
    assert_eq!(acc[0], 0xF7, "IP auth never matches a unix peer");
}

/// Regression: data and EOF arriving together (one edge) must not leave a dead session behind.
#[test]
fn eof_right_behind_partial_data_ends_the_session() {
    let (_dir, d) = daemon("eof", |_| {});
    let variants: Vec<(&str, MakeBad)> = vec![
        ("nothing", Box::new(|_| vec![])),
        (
            "half header",
            Box::new(|c| c.multicast_bytes(AGREED_MESS, &["h"], 0, b"abc")[..20].to_vec()),
        ),
        (
            "half body",
            Box::new(|c| c.multicast_bytes(AGREED_MESS, &["h"], 0, &[1u8; 3000])[..1000].to_vec()),
        ),
        (
            "whole message + garbage tail",
            Box::new(|c| {
                let mut b = c.multicast_bytes(AGREED_MESS, &["h"], 0, b"x");
                b.extend_from_slice(&[0x55; 30]);
                b
            }),
        ),
    ];
    for (what, make) in &variants {
        for tcp in [false, true] {
            let sock = if tcp {
                connect_tcp(&d)
            } else {
                connect_unix(&d)
            };
            let mut c = RawClient::handshake(sock, "p", true).unwrap();
            let b = make(&c);
            c.send_raw(&b).unwrap();
            drop(c);
            let deadline = std::time::Instant::now() + T;
            while d.stats().sessions != 0 {
                assert!(
                    std::time::Instant::now() < deadline,
                    "{what} (tcp {tcp}): session left behind"
                );
                std::thread::sleep(Duration::from_millis(5));
            }
        }
    }
}

#[test]
fn unix_socket_mode_is_configurable_and_a_stale_file_is_replaced() {
    use std::os::unix::fs::PermissionsExt;
    let dir = TempDir::new("mode");
    // A stale socket left by a killed daemon is replaced; a regular file is refused.
    let stale = std::os::unix::net::UnixListener::bind(dir.path().join("4803")).unwrap();
    drop(stale);
    let mut cfg = spread_daemon::Config::for_test(dir.path());
    cfg.unix_mode = 0o660;
    let d = spread_daemon::Daemon::start(cfg.clone()).unwrap();
    let mode = std::fs::metadata(d.unix_path().unwrap())
        .unwrap()
        .permissions()
        .mode()
        & 0o777;
    assert_eq!(mode, 0o660);
    d.stop().unwrap();
    std::fs::write(dir.path().join("4803"), b"not a socket").unwrap();
    let err = spread_daemon::Daemon::start(cfg).err().expect("refused");
    assert!(err.to_string().contains("not a socket"), "{err}");
}

#[test]
fn failed_start_leaves_no_socket_file() {
    let dir = TempDir::new("failstart");
    let mut cfg = spread_daemon::Config::for_test(dir.path());
    cfg.tcp_port_file = Some(dir.path().join("no/such/dir/port"));
    let err = spread_daemon::Daemon::start(cfg)
        .err()
        .expect("start fails");
    assert!(err.to_string().contains("cannot write"), "{err}");
    assert!(
        !dir.path().join("4803").exists(),
        "socket file removed after a failed start"
    );
}
