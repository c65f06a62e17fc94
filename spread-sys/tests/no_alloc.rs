//! The hot paths do not allocate once warm: `multicast` and `multicast_parts` (module) and
//! `receive_batch` (spreadlogd).
//! A counting global allocator (this test binary only) checks it.

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;
use std::io::{Read, Write};
use std::os::unix::net::UnixListener;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::thread;

use spread_sys::spread_name::Endpoint;
use spread_sys::wire::constants::AGREED_MESS;
use spread_sys::wire::message::encode_multicast;
use spread_sys::{ConnectOptions, Mailbox};

struct Counting;
thread_local! {
    /// Count only this thread's allocations (the fake daemon thread and std internals are not ours).
    static COUNTING: Cell<bool> = const { Cell::new(false) };
}

fn counting(on: bool) {
    COUNTING.with(|c| c.set(on));
}

fn is_counting() -> bool {
    COUNTING.try_with(|c| c.get()).unwrap_or(false)
}
static ALLOCS: AtomicUsize = AtomicUsize::new(0);

// SAFETY: every call is forwarded unchanged to the system allocator; we only count.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        if is_counting() {
            ALLOCS.fetch_add(1, Ordering::Relaxed);
        }
        // SAFETY: same contract as our caller's.
        unsafe { System.alloc(layout) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: `ptr` came from System.alloc with this layout.
        unsafe { System.dealloc(ptr, layout) }
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        if is_counting() {
            ALLOCS.fetch_add(1, Ordering::Relaxed);
        }
        // SAFETY: same contract as our caller's.
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

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
    counting(true);
    for i in 0..1000 {
        mb.multicast(AGREED_MESS, &["logs"], i, &body).unwrap();
    }
    counting(false);
    assert_eq!(ALLOCS.load(Ordering::SeqCst), 0, "multicast allocated");
    // The module's path: a template built once, then the line's pieces.
    let mut tpl = mb.multicast_template(AGREED_MESS, "logs").unwrap();
    counting(true);
    for i in 0..1000 {
        let parts: [&[u8]; 3] = [&body[..10], &body[10..150], &body[150..]];
        mb.multicast_parts(&mut tpl, i, parts).unwrap();
    }
    counting(false);
    assert_eq!(
        ALLOCS.load(Ordering::SeqCst),
        0,
        "multicast_parts allocated"
    );

    go_tx.send(()).unwrap();
    // Warm the receive buffer with the first batch, then count the rest.
    let mut got = 0usize;
    while got < 100 {
        got += mb.receive_batch(true, |_| {}).unwrap();
    }
    assert_eq!(got, 100);
    go_tx.send(()).unwrap(); // (a channel send may allocate: before counting)
    counting(true);
    let mut bytes = 0usize;
    while got < 2000 {
        got += mb.receive_batch(true, |m| bytes += m.body.len()).unwrap();
    }
    counting(false);
    assert_eq!(ALLOCS.load(Ordering::SeqCst), 0, "receive_batch allocated");
    assert!(bytes > 0);
    drop(mb);
    t.join().unwrap();
}
