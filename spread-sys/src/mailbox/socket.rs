//! The only `unsafe` of the Mailbox: thin wrappers over socket(2), connect(2), poll(2), send(2),
//! recv(2) and setsockopt(2) that std does not offer with the control we need (non-blocking connect
//! for unix sockets, MSG_NOSIGNAL, MSG_DONTWAIT, SO_SNDTIMEO).

use std::io;
use std::mem::{size_of, zeroed};
use std::net::SocketAddr;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::os::unix::ffi::OsStrExt;
use std::path::Path;
use std::time::{Duration, Instant};

/// Milliseconds left until `deadline` for poll(2) (-1 = wait forever), rounded up so we never spin.
pub fn poll_millis(deadline: Option<Instant>) -> i32 {
    match deadline {
        None => -1,
        Some(d) => {
            let left = d.saturating_duration_since(Instant::now());
            left.as_micros().div_ceil(1000).min(i32::MAX as u128) as i32
        }
    }
}

/// Wait until `fd` has one of `events` (POLLIN/POLLOUT) or the deadline passes. Ok(false) = timeout.
/// Errors and hang-ups count as ready: the following read/write reports them.
pub fn wait(fd: RawFd, events: libc::c_short, deadline: Option<Instant>) -> io::Result<bool> {
    loop {
        let mut pfd = libc::pollfd {
            fd,
            events,
            revents: 0,
        };
        let ms = poll_millis(deadline);
        // SAFETY: `pfd` is a valid, initialised pollfd and we pass a count of exactly 1.
        let r = unsafe { libc::poll(&mut pfd, 1, ms) };
        if r < 0 {
            let e = io::Error::last_os_error();
            if e.kind() == io::ErrorKind::Interrupted {
                continue;
            }
            return Err(e);
        }
        if r == 0 {
            if deadline.is_some_and(|d| Instant::now() >= d) {
                return Ok(false);
            }
            continue;
        }
        return Ok(true);
    }
}

fn cvt(r: libc::c_int) -> io::Result<libc::c_int> {
    if r < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(r)
    }
}

fn new_socket(domain: libc::c_int) -> io::Result<OwnedFd> {
    // SAFETY: plain syscall with constant arguments; the result is checked before use.
    let fd = cvt(unsafe {
        libc::socket(
            domain,
            libc::SOCK_STREAM | libc::SOCK_CLOEXEC | libc::SOCK_NONBLOCK,
            0,
        )
    })?;
    // SAFETY: `fd` was just returned by socket(2) and is owned by nobody else.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

fn set_int_opt(
    fd: RawFd,
    level: libc::c_int,
    name: libc::c_int,
    value: libc::c_int,
) -> io::Result<()> {
    // SAFETY: we pass a pointer to a live c_int and its exact size.
    cvt(unsafe {
        libc::setsockopt(
            fd,
            level,
            name,
            (&value as *const libc::c_int).cast(),
            size_of::<libc::c_int>() as u32,
        )
    })
    .map(drop)
}

/// Socket buffer size Spread's own library asks for (best effort; the kernel may cap it).
const SOCKET_BUFFER: libc::c_int = 200 * 1024;

/// Start a non-blocking connect and finish it by `deadline`. The returned socket is non-blocking.
pub fn connect_unix(path: &Path, deadline: Option<Instant>) -> io::Result<OwnedFd> {
    // SAFETY: sockaddr_un is plain old data; all-zero is a valid value.
    let mut addr: libc::sockaddr_un = unsafe { zeroed() };
    addr.sun_family = libc::AF_UNIX as libc::sa_family_t;
    let bytes = path.as_os_str().as_bytes();
    if bytes.len() >= addr.sun_path.len() || bytes.contains(&0) {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            "unix socket path too long or contains NUL",
        ));
    }
    for (dst, &src) in addr.sun_path.iter_mut().zip(bytes) {
        *dst = src as libc::c_char;
    }
    let len = (size_of::<libc::sa_family_t>() + bytes.len() + 1) as libc::socklen_t;
    let fd = new_socket(libc::AF_UNIX)?;
    set_int_opt(
        fd.as_raw_fd(),
        libc::SOL_SOCKET,
        libc::SO_SNDBUF,
        SOCKET_BUFFER,
    )
    .ok();
    set_int_opt(
        fd.as_raw_fd(),
        libc::SOL_SOCKET,
        libc::SO_RCVBUF,
        SOCKET_BUFFER,
    )
    .ok();
    loop {
        // SAFETY: `addr` is a valid sockaddr_un and `len` does not exceed its size.
        let r = unsafe {
            libc::connect(
                fd.as_raw_fd(),
                (&addr as *const libc::sockaddr_un).cast(),
                len,
            )
        };
        if r == 0 {
            return Ok(fd);
        }
        let e = io::Error::last_os_error();
        match e.raw_os_error() {
            Some(libc::EINTR) => continue,
            // A full listen backlog on a unix socket: no completion to wait for, so retry.
            Some(libc::EAGAIN) => {
                if deadline.is_some_and(|d| Instant::now() >= d) {
                    return Err(io::Error::new(
                        io::ErrorKind::TimedOut,
                        "connect timed out (backlog full)",
                    ));
                }
                std::thread::sleep(Duration::from_millis(5));
            }
            Some(libc::EINPROGRESS) => return finish_connect(fd, deadline),
            _ => return Err(e),
        }
    }
}

pub fn connect_tcp(addr: &SocketAddr, deadline: Option<Instant>) -> io::Result<OwnedFd> {
    // SAFETY: sockaddr_storage is plain old data; all-zero is a valid value.
    let mut storage: libc::sockaddr_storage = unsafe { zeroed() };
    let (domain, len) = match addr {
        SocketAddr::V4(a) => {
            // SAFETY: sockaddr_storage is large enough and suitably aligned for sockaddr_in.
            let sin = unsafe {
                &mut *(&mut storage as *mut libc::sockaddr_storage).cast::<libc::sockaddr_in>()
            };
            sin.sin_family = libc::AF_INET as libc::sa_family_t;
            sin.sin_port = a.port().to_be();
            sin.sin_addr.s_addr = u32::from_ne_bytes(a.ip().octets());
            (libc::AF_INET, size_of::<libc::sockaddr_in>())
        }
        SocketAddr::V6(a) => {
            // SAFETY: sockaddr_storage is large enough and suitably aligned for sockaddr_in6.
            let sin6 = unsafe {
                &mut *(&mut storage as *mut libc::sockaddr_storage).cast::<libc::sockaddr_in6>()
            };
            sin6.sin6_family = libc::AF_INET6 as libc::sa_family_t;
            sin6.sin6_port = a.port().to_be();
            sin6.sin6_addr.s6_addr = a.ip().octets();
            sin6.sin6_flowinfo = a.flowinfo();
            sin6.sin6_scope_id = a.scope_id();
            (libc::AF_INET6, size_of::<libc::sockaddr_in6>())
        }
    };
    let fd = new_socket(domain)?;
    let raw = fd.as_raw_fd();
    set_int_opt(raw, libc::IPPROTO_TCP, libc::TCP_NODELAY, 1)?;
    set_int_opt(raw, libc::SOL_SOCKET, libc::SO_KEEPALIVE, 1).ok();
    set_int_opt(raw, libc::SOL_SOCKET, libc::SO_SNDBUF, SOCKET_BUFFER).ok();
    set_int_opt(raw, libc::SOL_SOCKET, libc::SO_RCVBUF, SOCKET_BUFFER).ok();
    loop {
        // SAFETY: `storage` holds a valid sockaddr of `len` bytes for `domain`.
        let r = unsafe {
            libc::connect(
                raw,
                (&storage as *const libc::sockaddr_storage).cast(),
                len as u32,
            )
        };
        if r == 0 {
            return Ok(fd);
        }
        let e = io::Error::last_os_error();
        match e.raw_os_error() {
            Some(libc::EINTR) => continue,
            Some(libc::EINPROGRESS) => return finish_connect(fd, deadline),
            _ => return Err(e),
        }
    }
}

fn finish_connect(fd: OwnedFd, deadline: Option<Instant>) -> io::Result<OwnedFd> {
    if !wait(fd.as_raw_fd(), libc::POLLOUT, deadline)? {
        return Err(io::Error::new(io::ErrorKind::TimedOut, "connect timed out"));
    }
    let mut err: libc::c_int = 0;
    let mut len = size_of::<libc::c_int>() as libc::socklen_t;
    // SAFETY: `err` and `len` are live and `len` is the size of `err`.
    cvt(unsafe {
        libc::getsockopt(
            fd.as_raw_fd(),
            libc::SOL_SOCKET,
            libc::SO_ERROR,
            (&mut err as *mut libc::c_int).cast(),
            &mut len,
        )
    })?;
    if err != 0 {
        return Err(io::Error::from_raw_os_error(err));
    }
    Ok(fd)
}

pub fn set_nonblocking(fd: RawFd, on: bool) -> io::Result<()> {
    // SAFETY: F_GETFL/F_SETFL on a descriptor we own; no pointers involved.
    let flags = cvt(unsafe { libc::fcntl(fd, libc::F_GETFL) })?;
    let flags = if on {
        flags | libc::O_NONBLOCK
    } else {
        flags & !libc::O_NONBLOCK
    };
    // SAFETY: as above.
    cvt(unsafe { libc::fcntl(fd, libc::F_SETFL, flags) }).map(drop)
}

/// SO_SNDTIMEO (None = block forever). A zero duration would mean "forever" to the kernel, so the
/// caller refuses it first.
pub fn set_send_timeout(fd: RawFd, timeout: Option<Duration>) -> io::Result<()> {
    let tv = match timeout {
        None => libc::timeval {
            tv_sec: 0,
            tv_usec: 0,
        },
        Some(d) => libc::timeval {
            tv_sec: d.as_secs().min(i32::MAX as u64) as libc::time_t,
            tv_usec: d.subsec_micros() as libc::suseconds_t,
        },
    };
    // SAFETY: we pass a pointer to a live timeval and its exact size.
    cvt(unsafe {
        libc::setsockopt(
            fd,
            libc::SOL_SOCKET,
            libc::SO_SNDTIMEO,
            (&tv as *const libc::timeval).cast(),
            size_of::<libc::timeval>() as u32,
        )
    })
    .map(drop)
}

/// One send(2) without SIGPIPE (the module runs inside Apache, where SIGPIPE may not be ignored).
pub fn send(fd: RawFd, buf: &[u8], dont_wait: bool) -> io::Result<usize> {
    let flags = libc::MSG_NOSIGNAL | if dont_wait { libc::MSG_DONTWAIT } else { 0 };
    // SAFETY: `buf` is a live slice and we pass its exact length.
    let n = unsafe { libc::send(fd, buf.as_ptr().cast(), buf.len(), flags) };
    if n < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(n as usize)
    }
}

/// One sendmsg(2) of the buffers `iov` describes (gather write), without SIGPIPE.
pub fn send_vectored(fd: RawFd, iov: &[libc::iovec]) -> io::Result<usize> {
    // SAFETY: an all-zero msghdr is valid (no name, no control data).
    let mut msg: libc::msghdr = unsafe { std::mem::zeroed() };
    msg.msg_iov = iov.as_ptr().cast_mut();
    msg.msg_iovlen = iov.len() as _;
    // SAFETY: `msg` points at `iov`, whose entries the caller built from live slices (checked in
    // `Mailbox::multicast_parts`); sendmsg only reads them.
    let n = unsafe { libc::sendmsg(fd, &msg, libc::MSG_NOSIGNAL) };
    if n < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(n as usize)
    }
}

/// One recv(2); `dont_wait` makes it non-blocking whatever the descriptor's mode.
pub fn recv(fd: RawFd, buf: &mut [u8], dont_wait: bool) -> io::Result<usize> {
    let flags = if dont_wait { libc::MSG_DONTWAIT } else { 0 };
    // SAFETY: `buf` is a live, writable slice and we pass its exact length.
    let n = unsafe { libc::recv(fd, buf.as_mut_ptr().cast(), buf.len(), flags) };
    if n < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(n as usize)
    }
}

pub fn shutdown(fd: RawFd) {
    // SAFETY: shutdown(2) on a descriptor we own; failure (already closed by peer) is harmless.
    unsafe { libc::shutdown(fd, libc::SHUT_RDWR) };
}
