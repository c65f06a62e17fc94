//! A minimal epoll + eventfd + setsockopt wrapper: the event loop's only `unsafe`, at the FFI boundary.

use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::time::Duration;

pub const READABLE: u32 = libc::EPOLLIN as u32;
pub const WRITABLE: u32 = libc::EPOLLOUT as u32;
pub const HANGUP: u32 = (libc::EPOLLHUP | libc::EPOLLRDHUP | libc::EPOLLERR) as u32;

pub struct Poller {
    epfd: OwnedFd,
    events: Vec<libc::epoll_event>,
}

/// One readiness report.
#[derive(Debug, Clone, Copy)]
pub struct Event {
    pub token: u64,
    pub flags: u32,
}

fn cvt(r: libc::c_int) -> io::Result<libc::c_int> {
    if r < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(r)
    }
}

impl Poller {
    pub fn new() -> io::Result<Poller> {
        // SAFETY: epoll_create1 takes no pointers; a non-negative result is a fresh descriptor we own.
        let fd = cvt(unsafe { libc::epoll_create1(libc::EPOLL_CLOEXEC) })?;
        // SAFETY: `fd` was just returned by the kernel and is owned by nobody else.
        let epfd = unsafe { OwnedFd::from_raw_fd(fd) };
        Ok(Poller {
            epfd,
            events: vec![libc::epoll_event { events: 0, u64: 0 }; 1024],
        })
    }

    /// Register `fd`, edge-triggered, for reads (and writes if `write`).
    pub fn add(&self, fd: RawFd, token: u64, write: bool) -> io::Result<()> {
        self.ctl(libc::EPOLL_CTL_ADD, fd, token, write)
    }

    /// Watch `fd` for writes too, or no longer (its registration by [`Poller::add`] is kept).
    /// Edge-triggered, EPOLLOUT fires each time the peer reads: a socket watched for writes all
    /// the time would wake the loop once per message the peer takes, so only a socket that
    /// refused bytes is watched.
    pub fn watch_writes(&self, fd: RawFd, token: u64, write: bool) -> io::Result<()> {
        self.ctl(libc::EPOLL_CTL_MOD, fd, token, write)
    }

    fn ctl(&self, op: libc::c_int, fd: RawFd, token: u64, write: bool) -> io::Result<()> {
        let mut flags = libc::EPOLLIN | libc::EPOLLRDHUP | libc::EPOLLET;
        if write {
            flags |= libc::EPOLLOUT;
        }
        let mut ev = libc::epoll_event {
            events: flags as u32,
            u64: token,
        };
        // SAFETY: `ev` is a valid epoll_event for the duration of the call; the kernel copies it.
        cvt(unsafe { libc::epoll_ctl(self.epfd.as_raw_fd(), op, fd, &mut ev) })?;
        Ok(())
    }

    pub fn delete(&self, fd: RawFd) {
        // SAFETY: a null event pointer is allowed for EPOLL_CTL_DEL; failure (fd already gone) is harmless.
        unsafe {
            libc::epoll_ctl(
                self.epfd.as_raw_fd(),
                libc::EPOLL_CTL_DEL,
                fd,
                std::ptr::null_mut(),
            );
        }
    }

    /// Wait for events; `None` = forever.
    pub fn wait(&mut self, timeout: Option<Duration>) -> io::Result<&[libc::epoll_event]> {
        let ms = match timeout {
            None => -1,
            Some(d) => {
                d.as_millis().min(60_000) as libc::c_int
                    + i32::from(d.subsec_nanos() % 1_000_000 != 0)
            }
        };
        // SAFETY: `events` is a live buffer of `len` epoll_event entries the kernel may fill.
        let n = unsafe {
            libc::epoll_wait(
                self.epfd.as_raw_fd(),
                self.events.as_mut_ptr(),
                self.events.len() as libc::c_int,
                ms,
            )
        };
        match cvt(n) {
            Ok(n) => Ok(&self.events[..n as usize]),
            Err(e) if e.kind() == io::ErrorKind::Interrupted => Ok(&self.events[..0]),
            Err(e) => Err(e),
        }
    }
}

/// Cross-thread wake-up for the event loop.
pub struct EventFd {
    fd: OwnedFd,
}

impl EventFd {
    pub fn new() -> io::Result<EventFd> {
        // SAFETY: eventfd takes no pointers; a non-negative result is a fresh descriptor we own.
        let fd = cvt(unsafe { libc::eventfd(0, libc::EFD_CLOEXEC | libc::EFD_NONBLOCK) })?;
        // SAFETY: `fd` is fresh and owned by nobody else.
        Ok(EventFd {
            fd: unsafe { OwnedFd::from_raw_fd(fd) },
        })
    }

    pub fn wake(&self) {
        let one: u64 = 1;
        // SAFETY: writes 8 bytes from a live u64; an eventfd write can only fail on overflow, when a
        // wake-up is already pending anyway.
        unsafe {
            libc::write(self.fd.as_raw_fd(), (&one as *const u64).cast(), 8);
        }
    }

    pub fn drain(&self) {
        let mut v: u64 = 0;
        // SAFETY: reads at most 8 bytes into a live u64; EAGAIN when nothing is pending is fine.
        unsafe {
            libc::read(self.fd.as_raw_fd(), (&mut v as *mut u64).cast(), 8);
        }
    }
}

impl AsRawFd for EventFd {
    fn as_raw_fd(&self) -> RawFd {
        self.fd.as_raw_fd()
    }
}

/// Raise a socket's send and receive buffers to about 200 KiB, as Spread does (this also sets how
/// many messages a slow client can have in flight before the daemon-side queue starts to count).
pub fn set_socket_buffers(fd: RawFd, bytes: libc::c_int) {
    for opt in [libc::SO_SNDBUF, libc::SO_RCVBUF] {
        // SAFETY: passes a pointer to a live c_int and its exact size; failure leaves the default.
        unsafe {
            libc::setsockopt(
                fd,
                libc::SOL_SOCKET,
                opt,
                (&bytes as *const libc::c_int).cast(),
                std::mem::size_of::<libc::c_int>() as libc::socklen_t,
            );
        }
    }
}

/// SO_KEEPALIVE, as Spread sets on TCP sessions: a vanished remote web server is noticed eventually.
pub fn set_keepalive(fd: RawFd) {
    let on: libc::c_int = 1;
    // SAFETY: passes a pointer to a live c_int and its exact size; failure leaves keepalive off.
    unsafe {
        libc::setsockopt(
            fd,
            libc::SOL_SOCKET,
            libc::SO_KEEPALIVE,
            (&on as *const libc::c_int).cast(),
            std::mem::size_of::<libc::c_int>() as libc::socklen_t,
        );
    }
}
