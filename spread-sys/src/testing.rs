//! For tests and benchmarks of clients: the daemon's side of a successful handshake over any
//! blocking stream, so a test can stand in for a daemon with a plain socket.

use std::io::{self, Read, Write};

use crate::wire::constants::AUTH_CHOICE_LEN;
use crate::wire::handshake::{Accept, ConnectParse, encode_auth_list, parse_connect};

/// Read the client's connect message (it must arrive in one read), offer `NULL` authentication,
/// read the choice and accept the session as `#<its name>#localhost`. Returns that private group.
pub fn serve_handshake<S: Read + Write>(s: &mut S) -> io::Result<Vec<u8>> {
    let mut buf = [0u8; 64];
    let n = s.read(&mut buf)?;
    let ConnectParse::Complete(req, used) = parse_connect(&buf[..n]) else {
        return Err(io::Error::other("bad connect message"));
    };
    if used != n {
        return Err(io::Error::other(
            "the connect message must arrive in one write",
        ));
    }
    let mut out = Vec::new();
    encode_auth_list(&["NULL"], &mut out);
    s.write_all(&out)?;
    let mut choice = [0u8; AUTH_CHOICE_LEN];
    s.read_exact(&mut choice)?;
    let private_group = [b"#", &req.name[..], b"#localhost"].concat();
    out.clear();
    Accept::for_client(&req, &private_group).encode(&mut out);
    s.write_all(&out)?;
    Ok(private_group)
}

/// A global allocator for tests that prove a path allocates nothing: it forwards every call to
/// the system allocator and counts the allocations made by threads inside [`allocations_in`]
/// only (the test harness's and helper threads' own allocations are not the path's). Declare it
/// in the test binary: `#[global_allocator] static A: CountingAlloc = CountingAlloc;`.
pub struct CountingAlloc;

thread_local! {
    static COUNTING: std::cell::Cell<bool> = const { std::cell::Cell::new(false) };
}

static ALLOCATIONS: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);

fn note_allocation() {
    // (try_with: the thread-local may already be gone while a thread exits.)
    if COUNTING.try_with(|c| c.get()).unwrap_or(false) {
        ALLOCATIONS.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    }
}

// SAFETY: every call is forwarded unchanged to the system allocator; counting touches only an
// atomic and a const-initialised thread-local, neither of which allocates.
unsafe impl std::alloc::GlobalAlloc for CountingAlloc {
    unsafe fn alloc(&self, layout: std::alloc::Layout) -> *mut u8 {
        note_allocation();
        // SAFETY: same contract as our caller's.
        unsafe { std::alloc::System.alloc(layout) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: std::alloc::Layout) {
        // SAFETY: `ptr` came from System.alloc with this layout.
        unsafe { std::alloc::System.dealloc(ptr, layout) }
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: std::alloc::Layout, new_size: usize) -> *mut u8 {
        note_allocation();
        // SAFETY: same contract as our caller's.
        unsafe { std::alloc::System.realloc(ptr, layout, new_size) }
    }
}

/// Run `f` and return its result with the number of heap allocations this thread made in it
/// (counted only where [`CountingAlloc`] is the global allocator; 0 elsewhere).
pub fn allocations_in<T>(f: impl FnOnce() -> T) -> (T, usize) {
    use std::sync::atomic::Ordering;
    COUNTING.with(|c| c.set(true));
    let before = ALLOCATIONS.load(Ordering::SeqCst);
    let out = f();
    let n = ALLOCATIONS.load(Ordering::SeqCst) - before;
    COUNTING.with(|c| c.set(false));
    (out, n)
}
