//! The hot paths do not allocate once warm: `multicast` and `multicast_parts` (module) and
//! `receive_batch` (spreadlogd).
//! A counting global allocator (this test binary only) checks it.

use std::io::{Read, Write};
use std::os::unix::net::UnixListener;
use std::thread;

use spread_sys::spread_name::Endpoint;
use spread_sys::testing::{CountingAlloc, allocations_in};
use spread_sys::wire::constants::AGREED_MESS;
use spread_sys::wire::message::encode_multicast;
use spread_sys::{ConnectOptions, Mailbox};

#[global_allocator]
static GLOBAL: CountingAlloc = CountingAlloc;

fn handshake(s: &mut std::os::unix::net::UnixStream) {
    spread_sys::testing::serve_handshake(s).unwrap();
}

/// Only one test in this binary: the counter is global.
#[test]
fn multicast_and_receive_batch_do_not_allocate_once_warm() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("4803");
    let l = UnixListener::bind(&path).unwrap();
    // The fake daemon drains what we send, then sends a prepared burst back.
    let mut burst = Vec::new();
    for i in 0..2000 {
        encode_multicast(
            b"#web#localhost",
            AGREED_MESS,
            &[b"logs"],
            i as i16,
            &[b'x'; 150],
            &mut burst,
        )
        .unwrap();
    }
    let (go_tx, go_rx) = std::sync::mpsc::channel::<()>();
    let t = thread::spawn(move || {
        let (mut s, _) = l.accept().unwrap();
        handshake(&mut s);
        let mut buf = vec![0u8; 1 << 16];
        let mut want = 2010 * (48 + 32 + 200);
        while want > 0 {
            want -= s.read(&mut buf).unwrap();
        }
        let first = 100 * (48 + 32 + 150);
        go_rx.recv().unwrap();
        s.write_all(&burst[..first]).unwrap();
        go_rx.recv().unwrap();
        s.write_all(&burst[first..]).unwrap();
        let _ = s.read(&mut buf);
    });
    let mut mb =
        Mailbox::connect_endpoint(&Endpoint::Unix(path), &ConnectOptions::named("alloc")).unwrap();
    let body = [b'y'; 200];
    for i in 0..10 {
        mb.multicast(AGREED_MESS, &["logs"], i, &body).unwrap();
    }
    // The counter itself works: one deliberate allocation is seen.
    let (v, n) = allocations_in(|| Vec::<u8>::with_capacity(64));
    assert_eq!(
        (n, v.capacity() >= 64),
        (1, true),
        "the allocation counter counts"
    );
    let ((), n) = allocations_in(|| {
        for i in 0..1000 {
            mb.multicast(AGREED_MESS, &["logs"], i, &body).unwrap();
        }
    });
    assert_eq!(n, 0, "multicast allocated");
    // The module's path: a template built once, then the line's pieces.
    let mut tpl = mb.multicast_template(AGREED_MESS, "logs").unwrap();
    let ((), n) = allocations_in(|| {
        for i in 0..1000 {
            let parts: [&[u8]; 3] = [&body[..10], &body[10..150], &body[150..]];
            mb.multicast_parts(&mut tpl, i, parts).unwrap();
        }
    });
    assert_eq!(n, 0, "multicast_parts allocated");

    go_tx.send(()).unwrap();
    // Warm the receive buffer with the first batch, then count the rest.
    let mut got = 0usize;
    while got < 100 {
        got += mb.receive_batch(true, |_| {}).unwrap();
    }
    assert_eq!(got, 100);
    go_tx.send(()).unwrap(); // (a channel send may allocate: before counting)
    let mut bytes = 0usize;
    let ((), n) = allocations_in(|| {
        while got < 2000 {
            got += mb.receive_batch(true, |m| bytes += m.body.len()).unwrap();
        }
    });
    assert_eq!(n, 0, "receive_batch allocated");
    assert!(bytes > 0);
    drop(mb);
    t.join().unwrap();
}
