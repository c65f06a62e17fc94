//! Mailbox behaviour on real sockets against small fake daemons: time bounds, local refusals,
//! broken-session rules, batching and zero-copy receive.

use std::io::{Read, Write};
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::PathBuf;
use std::thread;
use std::time::{Duration, Instant};

use spread_sys::spread_name::Endpoint;
use spread_sys::wire::constants::*;
use spread_sys::wire::header::{Header, hint_for_mess_type};
use spread_sys::wire::membership::{GroupId, encode_membership};
use spread_sys::{ConnectOptions, Error, Mailbox, Message};

struct Sock {
    _dir: tempfile::TempDir,
    path: PathBuf,
    listener: UnixListener,
}

fn sock() -> Sock {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("4803");
    let listener = UnixListener::bind(&path).unwrap();
    Sock {
        _dir: dir,
        path,
        listener,
    }
}

fn opts(name: &str) -> ConnectOptions {
    ConnectOptions {
        connect_timeout: Some(Duration::from_secs(5)),
        send_timeout: Some(Duration::from_secs(5)),
        ..ConnectOptions::named(name)
    }
}

/// Daemon side of a successful handshake; returns the stream and the private group.
fn serve_handshake(s: &mut UnixStream) -> Vec<u8> {
    s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    spread_sys::testing::serve_handshake(s).expect("daemon side of the handshake")
}

fn connect_with<F: FnOnce(UnixStream, Vec<u8>) + Send + 'static>(
    name: &str,
    daemon: F,
) -> (Mailbox, Sock, thread::JoinHandle<()>) {
    let s = sock();
    let l = s.listener.try_clone().unwrap();
    let t = thread::spawn(move || {
        let (mut c, _) = l.accept().unwrap();
        let pg = serve_handshake(&mut c);
        daemon(c, pg);
    });
    let mb = Mailbox::connect_endpoint(&Endpoint::Unix(s.path.clone()), &opts(name)).unwrap();
    (mb, s, t)
}

fn read_frame(s: &mut UnixStream) -> (Header, Vec<u8>) {
    let mut head = [0u8; 48];
    s.read_exact(&mut head).unwrap();
    let h = Header::decode(&head);
    let mut rest = vec![0u8; 32 * h.num_groups as usize + h.data_len as usize];
    s.read_exact(&mut rest).unwrap();
    (h, rest)
}

#[test]
fn connect_times_out_against_a_silent_daemon_unix_and_tcp() {
    let s = sock();
    let mut o = opts("alice");
    o.connect_timeout = Some(Duration::from_millis(300));
    let t0 = Instant::now();
    let e = Mailbox::connect_endpoint(&Endpoint::Unix(s.path.clone()), &o).unwrap_err();
    let took = t0.elapsed();
    assert!(matches!(e, Error::Timeout(_)), "{e}");
    assert!(
        took >= Duration::from_millis(290) && took < Duration::from_millis(1500),
        "{took:?}"
    );

    let tcp = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let t0 = Instant::now();
    let e = Mailbox::connect_endpoint(&Endpoint::Tcp(tcp.local_addr().unwrap()), &o).unwrap_err();
    assert!(matches!(e, Error::Timeout(_)), "{e}");
    assert!(t0.elapsed() < Duration::from_millis(1500));
    drop(s);
}

#[test]
fn connect_to_nothing_is_could_not_connect() {
    let dir = tempfile::tempdir().unwrap();
    let e = Mailbox::connect_endpoint(&Endpoint::Unix(dir.path().join("none")), &opts("a"))
        .unwrap_err();
    assert_eq!(e.code(), code::COULD_NOT_CONNECT, "{e}");
    let free = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap();
    let e = Mailbox::connect_endpoint(&Endpoint::Tcp(free), &opts("a")).unwrap_err();
    assert_eq!(e.code(), code::COULD_NOT_CONNECT, "{e}");
    let e = Mailbox::connect("nonsense", &opts("a")).unwrap_err();
    assert_eq!(e.code(), code::ILLEGAL_SPREAD);
}

#[test]
fn illegal_private_name_is_refused_before_connecting() {
    let s = sock();
    s.listener.set_nonblocking(true).unwrap();
    for bad in ["a#b", "sp ace", "elevenchars"] {
        let e = Mailbox::connect_endpoint(&Endpoint::Unix(s.path.clone()), &opts(bad)).unwrap_err();
        assert_eq!(e.code(), code::REJECT_ILLEGAL_NAME, "{bad}");
    }
    // Nobody even connected.
    assert!(s.listener.accept().is_err());
    let mut o = opts("a");
    o.connect_timeout = Some(Duration::ZERO);
    assert_eq!(
        Mailbox::connect_endpoint(&Endpoint::Unix(s.path.clone()), &o)
            .unwrap_err()
            .code(),
        code::ILLEGAL_TIME
    );
}

#[test]
fn handshake_rejects_map_to_codes() {
    for (reply, want) in [
        (0xfau8, code::REJECT_NOT_UNIQUE),
        (0xfd, code::REJECT_QUOTA),
        (0xf9, code::REJECT_VERSION),
    ] {
        let s = sock();
        let l = s.listener.try_clone().unwrap();
        let t = thread::spawn(move || {
            let (mut c, _) = l.accept().unwrap();
            let mut buf = [0u8; 32];
            let _ = c.read(&mut buf).unwrap();
            c.write_all(&[reply]).unwrap();
        });
        let e =
            Mailbox::connect_endpoint(&Endpoint::Unix(s.path.clone()), &opts("dup")).unwrap_err();
        assert_eq!(e.code(), want, "{e}");
        t.join().unwrap();
    }
    // Auth list without NULL: libspread gives up with REJECT_AUTH.
    let s = sock();
    let l = s.listener.try_clone().unwrap();
    let t = thread::spawn(move || {
        let (mut c, _) = l.accept().unwrap();
        let mut buf = [0u8; 32];
        let _ = c.read(&mut buf).unwrap();
        c.write_all(b"\x03IP ").unwrap();
        let mut rest = Vec::new();
        let _ = c.read_to_end(&mut rest);
        assert!(rest.is_empty(), "no auth choice may be sent");
    });
    let e = Mailbox::connect_endpoint(&Endpoint::Unix(s.path.clone()), &opts("a")).unwrap_err();
    assert_eq!(e.code(), code::REJECT_AUTH);
    t.join().unwrap();
}

#[test]
fn local_refusals_send_nothing() {
    let (mut mb, _s, t) = connect_with("alice", |mut c, _| {
        let (h, rest) = read_frame(&mut c);
        // The only thing that arrives is the valid join after all the refused calls.
        assert_eq!(h.service_type, JOIN_MESS);
        assert_eq!(&rest[..3], b"ok\0");
    });
    assert_eq!(mb.join("#x").unwrap_err().code(), code::ILLEGAL_GROUP);
    assert_eq!(mb.join("").unwrap_err().code(), code::ILLEGAL_GROUP);
    assert_eq!(
        mb.leave(&"g".repeat(32)).unwrap_err().code(),
        code::ILLEGAL_GROUP
    );
    assert_eq!(
        mb.multicast(0, &["g"], 0, b"x").unwrap_err().code(),
        code::ILLEGAL_SERVICE
    );
    let many = vec!["g"; 101];
    assert!(matches!(
        mb.multicast(AGREED_MESS, &many, 0, b"x"),
        Err(Error::TooManyGroups(101))
    ));
    let big = vec![0u8; MAX_SAFE_MESSAGE_LEN - 31];
    assert_eq!(
        mb.multicast(AGREED_MESS, &["g"], 0, &big)
            .unwrap_err()
            .code(),
        code::MESSAGE_TOO_LONG
    );
    let ok = vec![0u8; MAX_SAFE_MESSAGE_LEN - 32];
    assert_eq!(mb.queued_bytes(), 0);
    mb.join("ok").unwrap();
    t.join().unwrap();
    // The largest legal message is accepted by the encoder (the daemon is gone, so it may fail later).
    let _ = mb.multicast(AGREED_MESS, &["g"], 0, &ok);
}

#[test]
fn send_to_a_daemon_that_never_reads_times_out_and_closes() {
    let (keep_tx, keep_rx) = std::sync::mpsc::channel::<()>();
    let (mut mb, _s, t) = connect_with("slow", move |c, _| {
        let _ = keep_rx.recv(); // hold the socket open without reading
        drop(c);
    });
    let timeout = Duration::from_millis(200);
    mb.set_send_timeout(Some(timeout)).unwrap();
    let body = vec![b'x'; 10_000];
    let mut sent = 0;
    let err = loop {
        let t0 = Instant::now();
        match mb.multicast(AGREED_MESS, &["logs"], 0, &body) {
            Ok(_) => sent += 1,
            Err(e) => break (e, t0.elapsed()),
        }
        assert!(sent < 100_000, "the socket never filled");
    };
    assert!(matches!(err.0, Error::Timeout(_)), "{}", err.0);
    assert!(
        err.1 < timeout * 3 + Duration::from_millis(300),
        "took {:?}",
        err.1
    );
    assert!(!mb.is_usable());
    assert_eq!(
        mb.multicast(AGREED_MESS, &["logs"], 0, b"x")
            .unwrap_err()
            .code(),
        code::NET_ERROR_ON_SESSION
    );
    assert_eq!(mb.receive().unwrap_err().code(), code::NET_ERROR_ON_SESSION);
    keep_tx.send(()).unwrap();
    t.join().unwrap();
}

#[test]
fn daemon_close_is_connection_closed_then_net_error() {
    let (mut mb, _s, t) = connect_with("bob", |c, _| drop(c));
    t.join().unwrap();
    assert_eq!(mb.receive().unwrap_err().code(), code::CONNECTION_CLOSED);
    assert_eq!(mb.receive().unwrap_err().code(), code::NET_ERROR_ON_SESSION);
    assert_eq!(mb.join("g").unwrap_err().code(), code::NET_ERROR_ON_SESSION);
}

#[test]
fn queue_and_flush_keep_order_and_disconnect_sends_kill() {
    let (mut mb, _s, t) = connect_with("alice", |mut c, pg| {
        let (h, _) = read_frame(&mut c);
        assert_eq!(h.service_type, JOIN_MESS);
        for i in 0..200u32 {
            let (h, rest) = read_frame(&mut c);
            assert_eq!(h.service_type, SAFE_MESS);
            assert_eq!(h.name.as_bytes(), &pg[..]);
            assert_eq!(h.mess_type(), ((i % 64) as i16, false));
            assert_eq!(&rest[32..], format!("line {i}\n").as_bytes());
        }
        let (h, rest) = read_frame(&mut c);
        assert_eq!(h.service_type, KILL_MESS);
        assert_eq!(&rest[..pg.len()], &pg[..]);
        let mut end = Vec::new();
        c.read_to_end(&mut end).unwrap();
        assert!(end.is_empty());
    });
    mb.join("logs").unwrap();
    for i in 0..200u32 {
        mb.queue_multicast(
            SAFE_MESS,
            &["logs"],
            (i % 64) as i16,
            format!("line {i}\n").as_bytes(),
        )
        .unwrap();
        if i % 64 == 63 {
            mb.flush().unwrap();
            assert_eq!(mb.queued_bytes(), 0);
        }
    }
    // The last 8 are still queued: disconnect writes them before the KILL.
    assert!(mb.queued_bytes() > 0);
    mb.disconnect().unwrap();
    t.join().unwrap();
}

#[test]
fn receive_batch_drains_everything_zero_copy() {
    const N: usize = 3000;
    let (mut mb, _s, t) = connect_with("reader", |mut c, pg| {
        let mut all = Vec::new();
        // A membership message first, then N data messages written in a few big writes.
        let gid = GroupId([482_711_334, 1, 1]);
        encode_membership(CAUSED_BY_JOIN, b"logs", &[&pg[..]], gid, &pg, &mut all);
        for i in 0..N {
            let body = format!("{i:05} GET / HTTP/1.1\n");
            spread_sys::wire::message::encode_multicast(
                b"#web1#localhost",
                AGREED_MESS,
                &[b"logs"],
                i as i16,
                body.as_bytes(),
                &mut all,
            )
            .unwrap();
        }
        for chunk in all.chunks(7777) {
            c.write_all(chunk).unwrap();
        }
        let mut end = [0u8; 1];
        let _ = c.read(&mut end);
    });
    let mut seen = 0usize;
    let mut memberships = 0;
    let mut calls = 0;
    while seen < N {
        calls += 1;
        mb.receive_batch(true, |m| {
            if m.is_membership() {
                memberships += 1;
                assert_eq!(m.sender(), b"logs");
                return;
            }
            assert!(m.is_regular());
            assert_eq!(m.sender(), b"#web1#localhost");
            assert_eq!(m.group(0), Some(&b"logs"[..]));
            assert_eq!(m.mess_type(), (seen as i16, false));
            assert_eq!(m.body, format!("{seen:05} GET / HTTP/1.1\n").as_bytes());
            seen += 1;
        })
        .unwrap();
    }
    assert_eq!(memberships, 1);
    assert!(calls < N / 10, "batching did not batch: {calls} calls");
    // Nothing more: a non-blocking batch returns 0 and poll says not readable.
    assert_eq!(
        mb.receive_batch(false, |_| panic!("no more messages"))
            .unwrap(),
        0
    );
    assert!(!mb.poll(Some(Duration::from_millis(10))).unwrap());
    drop(mb);
    t.join().unwrap();
}

#[test]
fn receive_reports_libspread_values() {
    let (mut mb, _s, t) = connect_with("bob", |mut c, pg| {
        let mut out = Vec::new();
        let gid = GroupId([1, 2, 3]);
        encode_membership(
            CAUSED_BY_JOIN,
            b"grp",
            &[b"#alice#localhost", &pg[..]],
            gid,
            &pg,
            &mut out,
        );
        spread_sys::wire::membership::encode_self_leave(b"grp", &mut out);
        // A REJECT_MESS (never sent by a stock daemon): header, old_type, groups, body.
        let mut h = Header {
            service_type: REJECT_MESS,
            name: spread_sys::wire::name::NameField::new(&pg).unwrap(),
            num_groups: 1,
            hint: hint_for_mess_type(9),
            data_len: 2,
            foreign_endian: false,
        };
        let mut head = [0u8; 48];
        h.encode(&mut head);
        out.extend_from_slice(&head);
        out.extend_from_slice(&(AGREED_MESS | ENDIAN_MARKER).to_le_bytes());
        out.extend_from_slice(&spread_sys::wire::name::NameField::new(b"grp").unwrap().0);
        out.extend_from_slice(b"no");
        // A big-endian sender's data message as the daemon forwards it: hint verbatim.
        h.service_type = AGREED_MESS;
        h.hint = [0, 0x12, 0x34, 0];
        h.data_len = 3;
        h.encode(&mut head);
        out.extend_from_slice(&head);
        out.extend_from_slice(&spread_sys::wire::name::NameField::new(b"grp").unwrap().0);
        out.extend_from_slice(b"abc");
        c.write_all(&out).unwrap();
        let mut end = [0u8; 1];
        let _ = c.read(&mut end);
    });
    assert!(mb.poll(Some(Duration::from_secs(5))).unwrap());
    let Message::Membership(m) = mb.receive().unwrap() else {
        panic!()
    };
    assert_eq!(
        (m.mess_type, m.members.len(), m.changed_member.as_deref()),
        (1, 2, Some("#bob#localhost"))
    );
    let Message::Membership(m) = mb.receive().unwrap() else {
        panic!()
    };
    assert_eq!(
        (m.service_type, m.mess_type, m.group_id),
        (CAUSED_BY_LEAVE, -1, None)
    );
    let Message::Data(d) = mb.receive().unwrap() else {
        panic!()
    };
    assert_eq!(
        (d.service_type, d.mess_type, &d.body[..]),
        (REJECT_MESS | AGREED_MESS, 9, &b"no"[..])
    );
    let Message::Data(d) = mb.receive().unwrap() else {
        panic!()
    };
    assert_eq!(
        (d.mess_type, d.endian_mismatch, &d.body[..]),
        (0x1234, true, &b"abc"[..])
    );
    drop(mb);
    t.join().unwrap();
}

#[test]
fn batch_delivers_what_arrived_before_the_close_then_reports_it() {
    let (mut mb, _s, t) = connect_with("late", |mut c, _| {
        let mut out = Vec::new();
        for i in 0..5 {
            spread_sys::wire::message::encode_multicast(
                b"#w#localhost",
                AGREED_MESS,
                &[b"g"],
                i,
                b"x",
                &mut out,
            )
            .unwrap();
        }
        c.write_all(&out).unwrap();
        // Closing right after: the reader may see data and EOF in one drain.
    });
    t.join().unwrap();
    let mut n = 0;
    let e = loop {
        match mb.receive_batch(true, |_| n += 1) {
            Ok(_) => continue,
            Err(e) => break e,
        }
    };
    assert_eq!(n, 5);
    assert_eq!(e.code(), code::CONNECTION_CLOSED, "{e}");
    assert_eq!(
        mb.receive_batch(true, |_| {}).unwrap_err().code(),
        code::NET_ERROR_ON_SESSION
    );
}

#[test]
fn tcp_over_ipv6_loopback() {
    let Ok(l) = std::net::TcpListener::bind("[::1]:0") else {
        eprintln!("no IPv6 loopback here; skipping");
        return;
    };
    let addr = l.local_addr().unwrap();
    let t = thread::spawn(move || {
        let (c, _) = l.accept().unwrap();
        let mut c = c;
        c.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        assert_eq!(
            spread_sys::testing::serve_handshake(&mut c).unwrap(),
            b"#six#localhost"
        );
        let mut head = [0u8; 48];
        c.read_exact(&mut head).unwrap();
        assert_eq!(Header::decode(&head).service_type, JOIN_MESS);
    });
    let mut mb = Mailbox::connect(&format!("{}@[::1]", addr.port()), &opts("six")).unwrap();
    assert_eq!(mb.private_group(), "#six#localhost");
    mb.join("g").unwrap();
    t.join().unwrap();
}

/// Every byte the daemon reads until the client closes.
fn read_all(mut c: UnixStream) -> Vec<u8> {
    let mut all = Vec::new();
    c.read_to_end(&mut all).unwrap();
    all
}

#[test]
fn multicast_parts_puts_the_same_bytes_on_the_wire_as_multicast() {
    let (tx, rx) = std::sync::mpsc::channel();
    let (mut mb, _s, t) = connect_with("parts", move |c, _| tx.send(read_all(c)).unwrap());
    // A spread of shapes: empty body, empty parts, many small parts (beyond MAX_PARTS: the rest
    // is copied), a large body, negative and numbered mess_types, another service.
    let many: Vec<Vec<u8>> = (0..200).map(|i| format!("{i} ").into_bytes()).collect();
    let big = vec![b'b'; 100_000];
    let cases: Vec<(u32, &str, i16, Vec<&[u8]>)> = vec![
        (AGREED_MESS, "www", 0, vec![]),
        (AGREED_MESS, "www", -2, vec![b"", b"GET /", b"", b" 200\n"]),
        (
            SAFE_MESS,
            "a-31-byte-group-name-xxxxxxxxxx",
            0x7F00u16 as i16,
            vec![b"x"],
        ),
        (
            FIFO_MESS,
            "g",
            (0x8000u16 | 1234) as i16,
            many.iter().map(|v| &v[..]).collect(),
        ),
        (AGREED_MESS, "www", 7, vec![&big[..50_000], &big[50_000..]]),
    ];
    let mut expected = Vec::new();
    let mut templates: Vec<_> = cases
        .iter()
        .map(|(svc, g, _, _)| mb.multicast_template(*svc, g).unwrap())
        .collect();
    for ((svc, g, mt, parts), tpl) in cases.iter().zip(&mut templates) {
        let body = parts.concat();
        // Reference bytes: what `multicast` writes for the same message.
        let mut one = Vec::new();
        spread_sys::wire::message::encode_multicast(
            mb.private_group().as_bytes(),
            *svc,
            &[g.as_bytes()],
            *mt,
            &body,
            &mut one,
        )
        .unwrap();
        expected.extend_from_slice(&one);
        assert_eq!(
            mb.multicast_parts(tpl, *mt, parts.iter().copied()).unwrap(),
            body.len()
        );
        // The same template again, interleaved with plain multicast.
        expected.extend_from_slice(&one);
        mb.multicast(*svc, &[g], *mt, &body).unwrap();
    }
    // With a stream tag: the same bytes as a multicast to the group and the tag; then without.
    let tag = "mls~0123456789ab~1f";
    for tagged in [Some(tag), None] {
        templates[1].set_tag(tagged).unwrap();
        let groups: Vec<&[u8]> = [&b"www"[..]]
            .into_iter()
            .chain(tagged.map(str::as_bytes))
            .collect();
        let mut one = Vec::new();
        spread_sys::wire::message::encode_multicast(
            mb.private_group().as_bytes(),
            AGREED_MESS,
            &groups,
            -2,
            b"tagged line\n",
            &mut one,
        )
        .unwrap();
        expected.extend_from_slice(&one);
        mb.multicast_parts(&mut templates[1], -2, [&b"tagged "[..], b"line\n"])
            .unwrap();
    }
    templates[1].set_tag(Some(tag)).unwrap();
    let too_long = vec![b't'; MAX_SAFE_MESSAGE_LEN - 63];
    assert_eq!(
        mb.multicast_parts(&mut templates[1], 0, [&too_long[..]])
            .unwrap_err()
            .code(),
        code::MESSAGE_TOO_LONG,
        "a tag takes 32 bytes of the message"
    );
    assert!(templates[1].set_tag(Some("no spaces")).is_err());
    // Too long: refused locally, nothing sent, the connection stays usable.
    let huge = vec![b'h'; MAX_SAFE_MESSAGE_LEN];
    let err = mb
        .multicast_parts(&mut templates[0], 0, [&huge[..]])
        .unwrap_err();
    assert_eq!(err.code(), code::MESSAGE_TOO_LONG, "{err}");
    assert!(mb.is_usable());
    drop(mb);
    t.join().unwrap();
    let got = rx.recv().unwrap();
    assert_eq!(got.len(), expected.len());
    assert!(got == expected, "wire bytes differ from multicast's");
}

#[test]
fn a_template_from_another_connection_is_refused() {
    let (mb1, _s1, t1) = connect_with("one", |c, _| drop(read_all(c)));
    let (mut mb2, _s2, t2) = connect_with("two", |c, _| assert!(read_all(c).is_empty()));
    let mut tpl = mb1.multicast_template(AGREED_MESS, "g").unwrap();
    assert_eq!(
        mb2.multicast_parts(&mut tpl, 0, [&b"x"[..]])
            .unwrap_err()
            .code(),
        code::ILLEGAL_MESSAGE
    );
    assert!(
        mb2.multicast_template(AGREED_MESS | SAFE_MESS, "g")
            .is_err()
    );
    assert!(
        mb2.multicast_template(AGREED_MESS, "a-32-byte-group-name-xxxxxxxxxxx")
            .is_err()
    );
    drop((mb1, mb2));
    t1.join().unwrap();
    t2.join().unwrap();
}

#[test]
fn multicast_parts_to_a_daemon_that_never_reads_times_out_and_closes() {
    let (keep_tx, keep_rx) = std::sync::mpsc::channel::<()>();
    let (mut mb, _s, t) = connect_with("slowparts", move |c, _| {
        let _ = keep_rx.recv(); // hold the socket open without reading
        drop(c);
    });
    let timeout = Duration::from_millis(200);
    mb.set_send_timeout(Some(timeout)).unwrap();
    let mut tpl = mb.multicast_template(AGREED_MESS, "logs").unwrap();
    let body = vec![b'x'; 5_000];
    let mut sent = 0;
    let err = loop {
        let t0 = Instant::now();
        match mb.multicast_parts(&mut tpl, 0, [&body[..], &body[..], b"\n"]) {
            Ok(n) => {
                assert_eq!(n, 10_001);
                sent += 1
            }
            Err(e) => break (e, t0.elapsed()),
        }
        assert!(sent < 100_000, "the socket never filled");
    };
    assert!(matches!(err.0, Error::Timeout(_)), "{}", err.0);
    assert!(
        err.1 < timeout * 3 + Duration::from_millis(300),
        "took {:?}",
        err.1
    );
    assert!(!mb.is_usable(), "a short write closes the stream");
    assert_eq!(
        mb.multicast_parts(&mut tpl, 0, [&b"x"[..]])
            .unwrap_err()
            .code(),
        code::NET_ERROR_ON_SESSION
    );
    keep_tx.send(()).unwrap();
    t.join().unwrap();
}
