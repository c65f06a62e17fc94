//! Signals without a library: the handler only sets a flag and writes one byte to a non-blocking
//! self-pipe, so the main loop's poll(2) wakes at once (SIGHUP reopens immediately, not after the
//! next message as in the original). SIGPIPE is ignored so a dead piped program cannot kill us.

use std::os::fd::RawFd;
use std::sync::atomic::{AtomicBool, AtomicI32, Ordering};

static HUP: AtomicBool = AtomicBool::new(false);
static TERM: AtomicBool = AtomicBool::new(false);
static USR1: AtomicBool = AtomicBool::new(false);
static CHLD: AtomicBool = AtomicBool::new(false);
static WAKE_FD: AtomicI32 = AtomicI32::new(-1);

extern "C" fn on_signal(sig: libc::c_int) {
    match sig {
        libc::SIGHUP => HUP.store(true, Ordering::SeqCst),
        libc::SIGTERM | libc::SIGINT => TERM.store(true, Ordering::SeqCst),
        libc::SIGUSR1 => USR1.store(true, Ordering::SeqCst),
        libc::SIGCHLD => CHLD.store(true, Ordering::SeqCst),
        _ => {}
    }
    let fd = WAKE_FD.load(Ordering::SeqCst);
    if fd >= 0 {
        let saved = std::io::Error::last_os_error().raw_os_error().unwrap_or(0);
        // SAFETY: write(2) is async-signal-safe; the buffer is a valid 1-byte local. A full pipe
        // (EAGAIN) is fine: a wake-up is already pending.
        unsafe {
            let b = [sig as u8];
            libc::write(fd, b.as_ptr().cast(), 1);
            *libc::__errno_location() = saved;
        }
    }
}

/// The read end of the self-pipe, to be polled.
#[derive(Debug)]
pub struct Signals {
    read_fd: RawFd,
}

/// Which signals arrived since the last call.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Pending {
    pub hup: bool,
    pub term: bool,
    pub usr1: bool,
    pub chld: bool,
}

impl Signals {
    /// Install the handlers (once per process).
    pub fn install() -> std::io::Result<Signals> {
        let mut fds = [0 as libc::c_int; 2];
        // SAFETY: fds is a valid array of two ints for pipe2 to fill.
        if unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_NONBLOCK | libc::O_CLOEXEC) } != 0 {
            return Err(std::io::Error::last_os_error());
        }
        WAKE_FD.store(fds[1], Ordering::SeqCst);
        for sig in [
            libc::SIGHUP,
            libc::SIGTERM,
            libc::SIGINT,
            libc::SIGUSR1,
            libc::SIGCHLD,
        ] {
            // SAFETY: a zeroed sigaction is valid; we set a handler that only touches atomics and
            // calls write(2), both async-signal-safe. SA_RESTART keeps blocking I/O going.
            unsafe {
                let mut sa: libc::sigaction = std::mem::zeroed();
                sa.sa_sigaction = on_signal as *const () as usize;
                sa.sa_flags = libc::SA_RESTART;
                libc::sigemptyset(&mut sa.sa_mask);
                if libc::sigaction(sig, &sa, std::ptr::null_mut()) != 0 {
                    return Err(std::io::Error::last_os_error());
                }
            }
        }
        // SAFETY: ignoring SIGPIPE has no memory effects; writes then fail with EPIPE instead.
        unsafe { libc::signal(libc::SIGPIPE, libc::SIG_IGN) };
        Ok(Signals { read_fd: fds[0] })
    }

    pub fn fd(&self) -> RawFd {
        self.read_fd
    }

    /// Drain the self-pipe and return (and clear) the flags.
    pub fn take(&self) -> Pending {
        let mut buf = [0u8; 64];
        // SAFETY: reading into a valid local buffer from our own non-blocking pipe.
        while unsafe { libc::read(self.read_fd, buf.as_mut_ptr().cast(), buf.len()) } > 0 {}
        Pending {
            hup: HUP.swap(false, Ordering::SeqCst),
            term: TERM.swap(false, Ordering::SeqCst),
            usr1: USR1.swap(false, Ordering::SeqCst),
            chld: CHLD.swap(false, Ordering::SeqCst),
        }
    }

    /// Take (and clear) only the SIGTERM/SIGINT flag, for loops that ignore the others.
    pub fn take_term() -> bool {
        TERM.swap(false, Ordering::SeqCst)
    }

    /// Cheap check for the hot loop (no syscall).
    pub fn any_pending() -> bool {
        HUP.load(Ordering::Relaxed)
            || TERM.load(Ordering::Relaxed)
            || USR1.load(Ordering::Relaxed)
            || CHLD.load(Ordering::Relaxed)
    }
}
