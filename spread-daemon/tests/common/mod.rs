//! Test helpers: private temp dirs, in-process daemons, and a raw client built on
//! `spread_sys::wire` (so tests can also send what no well-behaved client sends).
#![allow(dead_code, unused_imports)]

use std::io::{Read, Write};
use std::os::unix::net::UnixStream;
use std::time::Duration;

use spread_daemon::{Config, Daemon, DaemonHandle};
use spread_sys::wire::constants::HEADER_LEN;
use spread_sys::wire::handshake::{ConnectRequest, encode_auth_choice};
use spread_sys::wire::header::Header;
use spread_sys::wire::message::{Message, MessageRef, encode_join, encode_leave, encode_multicast};

pub use systest::TempDir;
pub use systest::bins::bin as bin_path;

/// An in-process daemon in its own dir (unix socket) with TCP on an ephemeral loopback port.
pub fn daemon(tag: &str, tweak: impl FnOnce(&mut Config)) -> (TempDir, DaemonHandle) {
    let dir = TempDir::new(tag);
    let mut cfg = Config::for_test(dir.path());
    tweak(&mut cfg);
    let d = Daemon::start(cfg).expect("daemon starts");
    (dir, d)
}

/// Raise the open-file limit (the quota test needs ~2000 descriptors in this one process).
pub fn raise_nofile(want: u64) {
    let mut lim = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit/setrlimit read/write a live rlimit struct of the right type.
    unsafe {
        libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim);
        if lim.rlim_cur < want {
            lim.rlim_cur = want.min(lim.rlim_max);
            libc::setrlimit(libc::RLIMIT_NOFILE, &lim);
        }
    }
}

pub enum Sock {
    Unix(UnixStream),
    Tcp(std::net::TcpStream),
}

impl Sock {
    fn r(&mut self) -> &mut dyn Read {
        match self {
            Sock::Unix(s) => s,
            Sock::Tcp(s) => s,
        }
    }
    fn w(&mut self) -> &mut dyn Write {
        match self {
            Sock::Unix(s) => s,
            Sock::Tcp(s) => s,
        }
    }
    fn set_timeout(&self, t: Option<Duration>) {
        match self {
            Sock::Unix(s) => s.set_read_timeout(t).unwrap(),
            Sock::Tcp(s) => s.set_read_timeout(t).unwrap(),
        }
    }
}

/// A client speaking the protocol through `spread_sys::wire`, one request per write.
pub struct RawClient {
    pub sock: Sock,
    pub private_group: Vec<u8>,
}

pub fn connect_unix(d: &DaemonHandle) -> Sock {
    Sock::Unix(UnixStream::connect(d.unix_path().unwrap()).unwrap())
}

pub fn connect_tcp(d: &DaemonHandle) -> Sock {
    let s = std::net::TcpStream::connect(d.tcp_addr().unwrap()).unwrap();
    s.set_nodelay(true).unwrap();
    Sock::Tcp(s)
}

impl RawClient {
    /// Handshake; Err(reject byte) if the daemon refused.
    pub fn handshake(mut sock: Sock, name: &str, membership: bool) -> Result<RawClient, u8> {
        sock.set_timeout(Some(Duration::from_secs(10)));
        let mut hello = Vec::new();
        ConnectRequest::new(name.as_bytes(), false, membership).encode(&mut hello);
        sock.w().write_all(&hello).unwrap();
        let mut len = [0u8];
        sock.r().read_exact(&mut len).map_err(|_| 0u8)?;
        if len[0] as i8 <= 0 {
            return Err(len[0]);
        }
        let mut list = vec![0u8; len[0] as usize];
        sock.r().read_exact(&mut list).unwrap();
        sock.w().write_all(&encode_auth_choice(&["NULL"])).unwrap();
        let mut acc = [0u8; 5];
        let n = read_up_to(sock.r(), &mut acc);
        if n == 0 || acc[0] != 1 {
            return Err(acc[0]);
        }
        let mut pg = vec![0u8; acc[4] as usize];
        sock.r().read_exact(&mut pg).unwrap();
        Ok(RawClient {
            sock,
            private_group: pg,
        })
    }

    pub fn unix(d: &DaemonHandle, name: &str) -> RawClient {
        RawClient::handshake(connect_unix(d), name, true).expect("accepted")
    }

    pub fn send_raw(&mut self, bytes: &[u8]) -> std::io::Result<()> {
        self.sock.w().write_all(bytes)
    }

    pub fn join(&mut self, group: &str) {
        let mut b = Vec::new();
        encode_join(&self.private_group, group.as_bytes(), &mut b);
        self.send_raw(&b).unwrap();
    }

    pub fn leave(&mut self, group: &str) {
        let mut b = Vec::new();
        encode_leave(&self.private_group, group.as_bytes(), &mut b);
        self.send_raw(&b).unwrap();
    }

    pub fn multicast_bytes(
        &self,
        service: u32,
        groups: &[&str],
        mess_type: i16,
        body: &[u8],
    ) -> Vec<u8> {
        let mut b = Vec::new();
        let gs: Vec<&[u8]> = groups.iter().map(|g| g.as_bytes()).collect();
        encode_multicast(&self.private_group, service, &gs, mess_type, body, &mut b).unwrap();
        b
    }

    pub fn multicast(&mut self, service: u32, groups: &[&str], mess_type: i16, body: &[u8]) {
        let b = self.multicast_bytes(service, groups, mess_type, body);
        self.send_raw(&b).unwrap();
    }

    /// Next message as raw bytes (header + rest), or None on EOF/timeout.
    pub fn recv_raw(&mut self, timeout: Duration) -> Option<Vec<u8>> {
        self.sock.set_timeout(Some(timeout));
        let mut h = [0u8; HEADER_LEN];
        self.sock.r().read_exact(&mut h).ok()?;
        let header = Header::decode(&h);
        let len = 32 * header.num_groups as usize + header.data_len as usize;
        let mut all = h.to_vec();
        all.resize(HEADER_LEN + len, 0);
        self.sock.r().read_exact(&mut all[HEADER_LEN..]).ok()?;
        Some(all)
    }

    pub fn recv_timeout(&mut self, timeout: Duration) -> Option<Message> {
        let raw = self.recv_raw(timeout)?;
        let h: &[u8; HEADER_LEN] = raw[..HEADER_LEN].try_into().unwrap();
        let header = Header::decode(h);
        let m = MessageRef::decode(header, &raw[HEADER_LEN..]).unwrap();
        Some(m.to_message(&self.private_group).unwrap())
    }

    pub fn recv(&mut self) -> Message {
        self.recv_timeout(Duration::from_secs(10))
            .expect("a message within 10 s")
    }

    /// The daemon closed the connection (EOF or reset) within `timeout`, skipping pending data.
    pub fn closed_within(&mut self, timeout: Duration) -> bool {
        self.sock.set_timeout(Some(timeout));
        let mut buf = [0u8; 65536];
        let deadline = std::time::Instant::now() + timeout;
        loop {
            match self.sock.r().read(&mut buf) {
                Ok(0) => return true,
                Ok(_) => {
                    if std::time::Instant::now() > deadline {
                        return false;
                    }
                }
                Err(e)
                    if e.kind() == std::io::ErrorKind::WouldBlock
                        || e.kind() == std::io::ErrorKind::TimedOut =>
                {
                    return false;
                }
                Err(_) => return true,
            }
        }
    }
}

fn read_up_to(r: &mut dyn Read, buf: &mut [u8]) -> usize {
    let mut n = 0;
    while n < buf.len() {
        match r.read(&mut buf[n..]) {
            Ok(0) | Err(_) => break,
            Ok(k) => n += k,
        }
    }
    n
}

pub fn membership(m: &Message) -> &spread_sys::MembershipMessage {
    match m {
        Message::Membership(mm) => mm,
        other => panic!("expected a membership message, got {other:?}"),
    }
}

pub fn data(m: &Message) -> &spread_sys::DataMessage {
    match m {
        Message::Data(d) => d,
        other => panic!("expected a data message, got {other:?}"),
    }
}

/// Calls the macro `$m` with the name of every transcript recorded from Spread 5.0.1
/// (`spread-sys/tests/vectors`), so each replay test file lists them from one place.
#[allow(unused_macros)]
macro_rules! with_every_vector {
    ($m:ident) => {
        $m!(
            auth_rejects,
            big_endian_raw_client,
            client_versions,
            connect_duplicate_name,
            connect_empty_name,
            connect_illegal_name,
            connect_named_membership,
            connect_no_membership_priority,
            daemon_accepts_odd_requests,
            daemon_kills_bad_requests,
            join_group,
            large_message_100k,
            leave_group,
            member_disconnect,
            multicast_service_types,
            multigroup_multicast,
            private_group_message,
            reject_quota,
            second_member_join,
            spuser_session,
            unix_socket_connect,
        );
    };
}

/// A session that completed its handshake with the sans-IO `core` (accepted as connection
/// number `conn_no`).
pub fn core_session(
    c: &mut spread_daemon::core::Core,
    name: &str,
    membership: bool,
    conn_no: u32,
    now: std::time::Instant,
) -> spread_daemon::core::SessionId {
    let id = c.accept(spread_daemon::core::Peer::Unix, conn_no, now);
    let mut hello = Vec::new();
    ConnectRequest::new(name.as_bytes(), false, membership).encode(&mut hello);
    c.received(id, &hello, now);
    c.received(id, &encode_auth_choice(&["NULL"]), now);
    id
}

/// Session `id` of the sans-IO `core` joins `group`.
pub fn core_join(
    c: &mut spread_daemon::core::Core,
    id: spread_daemon::core::SessionId,
    group: &[u8],
    now: std::time::Instant,
) {
    let mut j = Vec::new();
    encode_join(c.private_group(id).unwrap(), group, &mut j);
    c.received(id, &j, now);
}

/// Bytes from a hex string (the transcripts' notation).
pub fn unhex(s: &str) -> Vec<u8> {
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap())
        .collect()
}

/// The bytes of a multicast of `body` (mess_type 0) by session `id` of the sans-IO `core`.
pub fn core_multicast(
    c: &spread_daemon::core::Core,
    id: spread_daemon::core::SessionId,
    service: u32,
    groups: &[&[u8]],
    body: &[u8],
) -> Vec<u8> {
    let mut m = Vec::new();
    encode_multicast(
        c.private_group(id).unwrap(),
        service,
        groups,
        0,
        body,
        &mut m,
    )
    .unwrap();
    m
}
