//! The daemon with `spread_sys::Mailbox` clients (the client the module and spreadlogd use), over
//! the unix socket and TCP.

mod common;

use std::time::Duration;

use common::*;
use spread_sys::wire::constants::*;
use spread_sys::{ConnectOptions, Error, Mailbox, Message};

fn opts(name: &str) -> ConnectOptions {
    let mut o = ConnectOptions::named(name);
    o.connect_timeout = Some(Duration::from_secs(5));
    o
}

fn recv_within(mb: &mut Mailbox, ms: u64) -> Option<Message> {
    if mb.poll(Some(Duration::from_millis(ms))).unwrap() {
        Some(mb.receive().unwrap())
    } else {
        None
    }
}

#[test]
fn mailboxes_over_unix_and_tcp_see_one_group() {
    let (_dir, d) = daemon("mb-basic", |_| {});
    let unix_name = d.unix_path().unwrap().display().to_string();
    let tcp_name = format!("{}@127.0.0.1", d.tcp_addr().unwrap().port());
    let mut alice = Mailbox::connect(&unix_name, &opts("alice")).unwrap();
    assert_eq!(alice.private_group(), "#alice#localhost");
    let mut logger = Mailbox::connect(
        &tcp_name,
        &ConnectOptions {
            group_membership: false,
            priority: true,
            ..opts("sld-1234")
        },
    )
    .unwrap();
    alice.join("logs").unwrap();
    let m = alice.receive().unwrap();
    assert!(
        matches!(&m, Message::Membership(mm) if mm.members == ["#alice#localhost"] && mm.mess_type == 0)
    );
    logger.join("logs").unwrap();
    logger.join("logs").unwrap(); // spreadlogd re-joins every 5 s: silent
    let m = alice.receive().unwrap();
    let Message::Membership(mm) = m else { panic!() };
    assert_eq!(mm.members, ["#alice#localhost", "#sld-1234#localhost"]);
    assert_eq!(mm.changed_member.as_deref(), Some("#sld-1234#localhost"));
    for i in 0..100i16 {
        alice
            .multicast(AGREED_MESS, &["logs"], i, format!("line {i}\n").as_bytes())
            .unwrap();
    }
    for i in 0..100i16 {
        let Message::Data(dm) = logger.receive().unwrap() else {
            panic!("membership to a no-membership session")
        };
        assert_eq!(dm.mess_type, i);
        assert_eq!(dm.body, format!("line {i}\n").as_bytes());
        assert_eq!(dm.sender, "#alice#localhost");
    }
    // The sender gets its own messages too (no SELF_DISCARD).
    for _ in 0..100 {
        assert!(matches!(alice.receive().unwrap(), Message::Data(_)));
    }
    // Batching sender: many messages per write.
    for i in 0..500i16 {
        alice
            .queue_multicast(RELIABLE_MESS | SELF_DISCARD, &["logs"], i, b"batched")
            .unwrap();
    }
    alice.flush().unwrap();
    let mut n = 0;
    while n < 500 {
        n += logger
            .receive_batch(true, |m| assert_eq!(m.body, b"batched"))
            .unwrap();
    }
    assert_eq!(n, 500);
    assert!(recv_within(&mut alice, 100).is_none(), "SELF_DISCARD");
    logger.disconnect().unwrap();
    let Message::Membership(mm) = alice.receive().unwrap() else {
        panic!()
    };
    assert_eq!(mm.service_type, REG_MEMB_MESS | CAUSED_BY_DISCONNECT);
    // After SP_disconnect the name is free again.
    let again = Mailbox::connect(&tcp_name, &opts("sld-1234"));
    assert!(again.is_ok(), "{:?}", again.err());
}

#[test]
fn mailbox_errors_map_to_spread_codes() {
    raise_nofile(8192);
    let (_dir, d) = daemon("mb-quota", |c| c.max_sessions = 997);
    let name = d.unix_path().unwrap().display().to_string();
    let _a = Mailbox::connect(&name, &opts("same")).unwrap();
    let e = Mailbox::connect(&name, &opts("same")).err().unwrap();
    assert!(matches!(e, Error::RejectNotUnique(_)), "{e}");
    assert_eq!(e.code(), code::REJECT_NOT_UNIQUE);
    let mut all = Vec::new();
    for i in 0..996 {
        all.push(
            Mailbox::connect(
                &name,
                &ConnectOptions {
                    group_membership: false,
                    ..opts(&format!("q{i}"))
                },
            )
            .unwrap(),
        );
    }
    let e = Mailbox::connect(&name, &opts("one-more")).err().unwrap();
    assert_eq!(e.code(), code::REJECT_QUOTA, "{e}");
}

#[test]
fn largest_message_reaches_a_mailbox() {
    let (_dir, d) = daemon("mb-big", |_| {});
    let name = d.unix_path().unwrap().display().to_string();
    let mut tx = Mailbox::connect(&name, &opts("tx")).unwrap();
    let mut rx = Mailbox::connect(&name, &opts("rx")).unwrap();
    rx.join("g").unwrap();
    rx.receive().unwrap();
    let body: Vec<u8> = (0..MAX_SAFE_MESSAGE_LEN - 32)
        .map(|i| (i * 7) as u8)
        .collect();
    tx.multicast(SAFE_MESS, &["g"], -2, &body).unwrap();
    let Message::Data(dm) = rx.receive().unwrap() else {
        panic!()
    };
    assert_eq!(dm.body.len(), 143_120);
    assert_eq!(dm.body, body);
    assert_eq!(dm.mess_type, -2);
}

#[test]
fn private_group_messages_and_total_order_between_mailboxes() {
    let (_dir, d) = daemon("mb-order", |_| {});
    let name = d.unix_path().unwrap().display().to_string();
    let mut rxs: Vec<Mailbox> = (0..3)
        .map(|i| Mailbox::connect(&name, &opts(&format!("rx{i}"))).unwrap())
        .collect();
    for rx in rxs.iter_mut() {
        rx.join("g").unwrap();
    }
    for rx in rxs.iter_mut() {
        for _ in 0..3 {
            let _ = recv_within(rx, 100);
        }
    }
    let senders: Vec<std::thread::JoinHandle<()>> = (0..3)
        .map(|s| {
            let name = name.clone();
            std::thread::spawn(move || {
                let mut tx = Mailbox::connect(&name, &opts(&format!("tx{s}"))).unwrap();
                for i in 0..300 {
                    tx.multicast(AGREED_MESS, &["g"], 0, format!("{s}:{i}").as_bytes())
                        .unwrap();
                }
                tx.multicast(AGREED_MESS, &["#rx0#localhost"], 1, b"direct")
                    .unwrap();
                tx.disconnect().unwrap();
            })
        })
        .collect();
    for s in senders {
        s.join().unwrap();
    }
    let mut orders = Vec::new();
    for (i, rx) in rxs.iter_mut().enumerate() {
        let mut order = Vec::new();
        let mut direct = 0;
        while let Some(m) = recv_within(rx, 300) {
            if let Message::Data(dm) = m {
                if dm.mess_type == 1 {
                    direct += 1;
                } else {
                    order.push(dm.body);
                }
            }
        }
        assert_eq!(order.len(), 900);
        assert_eq!(direct, if i == 0 { 3 } else { 0 });
        orders.push(order);
    }
    assert_eq!(orders[0], orders[1]);
    assert_eq!(orders[1], orders[2]);
}
