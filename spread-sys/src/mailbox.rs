//! A blocking Spread client connection with libspread semantics and bounded time.
//!
//! I/O happens only here (and in the `socket` wrappers); every byte is produced and parsed by the
//! sans-IO [`wire`](crate::wire) codec. Properties callers rely on:
//! * the connect message and the auth choice each go out in one write (the daemon reads them with
//!   one read); the whole connect + handshake is bounded by `connect_timeout`;
//! * each `multicast` is one send(2) from a reusable buffer (no allocation once warm); a send that
//!   times out or fails part-way closes the mailbox, because the daemon would see a torn message;
//! * after any connection error every call returns [`Error::NetErrorOnSession`] (libspread's rule).

mod socket;

use std::io;
use std::os::fd::{AsRawFd, OwnedFd, RawFd};
use std::time::{Duration, Instant};

use crate::names::{check_group, check_private};
use crate::spread_name::{Endpoint, SpreadName};
use crate::wire::constants::{AUTH_CHOICE_LEN, DAEMON_KILL_LEN, MAX_GROUP_NAME, code};
use crate::wire::deframer::Deframer;
use crate::wire::handshake::{
    AcceptError, ConnectRequest, auth_list_len, encode_auth_choice, parse_accept_head,
    parse_auth_list,
};
use crate::wire::message::{
    Message, MessageRef, OneGroupHeader, encode_join, encode_kill, encode_leave, encode_multicast,
};
use crate::{Error, Result};

/// The only authentication method our client offers (the one every stock daemon enables).
const AUTH_METHOD: &str = "NULL";
/// How much we try to read per recv(2) when draining.
const READ_CHUNK: usize = 64 * 1024;
/// Upper bound of reads in one `receive_batch` so a flooding daemon cannot keep us there forever.
const MAX_READS_PER_BATCH: usize = 64;

/// How to connect (SP_connect's arguments plus our time bounds).
#[derive(Debug, Clone)]
pub struct ConnectOptions {
    /// Private name (<= 10 bytes in 0x24..0x7E); empty lets the daemon invent one.
    pub private_name: String,
    pub priority: bool,
    pub group_membership: bool,
    /// Bound on connect + handshake; None = block.
    pub connect_timeout: Option<Duration>,
    /// Bound on each send; None = block. A send that times out part-way leaves the stream
    /// unusable: the mailbox is then closed (CONNECTION_CLOSED / NetErrorOnSession afterwards).
    pub send_timeout: Option<Duration>,
}

impl ConnectOptions {
    /// Named session, membership messages on, no priority, no timeouts.
    pub fn named(private_name: &str) -> ConnectOptions {
        ConnectOptions {
            private_name: private_name.to_owned(),
            priority: false,
            group_membership: true,
            connect_timeout: None,
            send_timeout: None,
        }
    }
}

/// One session with a Spread daemon.
pub struct Mailbox {
    fd: OwnedFd,
    private_group: String,
    /// Outgoing bytes not yet written (queued multicasts); reused, so no allocation once warm.
    out: Vec<u8>,
    /// Counts the times `out` was emptied (an [`OpenMessage`] of an earlier filling is stale).
    out_generation: u64,
    inbuf: Deframer,
    send_timeout: Option<Duration>,
    /// A connection error happened: the stream is unusable (libspread's NET_ERROR_ON_SESSION).
    broken: bool,
    /// An error met after `receive_batch` had already delivered messages: reported by the next call.
    deferred: Option<Error>,
    /// Unique per connection in this process: ties a [`MulticastTemplate`] to its connection.
    id: u64,
}

/// Largest number of buffers [`Mailbox::multicast_parts`] hands to one sendmsg; more parts are
/// copied together into the last one.
pub const MAX_PARTS: usize = 30;

static NEXT_MAILBOX_ID: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(1);

/// A message at the end of the outgoing buffer that can still grow (see
/// [`Mailbox::queue_open`]).
#[derive(Debug, Clone, Copy)]
pub struct OpenMessage {
    start: usize,
    end: usize,
    body_len: usize,
    max_body: usize,
    /// Which filling of the outgoing buffer it belongs to (a write empties the buffer).
    generation: u64,
}

/// The header of a one-group message from one connection, built once
/// ([`Mailbox::multicast_template`]): sender, service and group are checked and encoded then, and
/// each [`Mailbox::multicast_parts`] only patches `mess_type` and the length.
#[derive(Clone, Debug)]
pub struct MulticastTemplate {
    header: OneGroupHeader,
    mailbox: u64,
}

impl MulticastTemplate {
    /// Also address the next messages to the stream tag group `tag` (`crate::stream`).
    pub fn set_tag(&mut self, tag: Option<&str>) -> Result<()> {
        self.header.set_tag(tag.map(str::as_bytes))
    }

    /// The per-line form of [`MulticastTemplate::set_tag`]: a NUL-padded tag field as
    /// `crate::stream` builds it (not checked again).
    #[inline]
    pub fn set_tag_field(&mut self, field: &crate::stream::TagBuf) {
        self.header.set_tag_field(field);
    }
}

fn check_timeout(t: Option<Duration>) -> Result<()> {
    if t.is_some_and(|t| t.is_zero()) {
        Err(Error::IllegalTime)
    } else {
        Ok(())
    }
}

fn closed(what: &str, e: io::Error) -> Error {
    Error::ConnectionClosed(format!("{what}: {e}"))
}

/// Map a handshake code from the daemon (or libspread's own checks) to our error.
fn handshake_error(code: i32, name: &str) -> Error {
    match code {
        code::REJECT_QUOTA => Error::RejectQuota,
        code::REJECT_NO_NAME => Error::RejectNoName,
        code::REJECT_ILLEGAL_NAME => Error::RejectIllegalName(name.to_owned()),
        code::REJECT_NOT_UNIQUE => Error::RejectNotUnique(name.to_owned()),
        code::REJECT_VERSION => Error::RejectVersion,
        code::REJECT_AUTH => Error::RejectAuth,
        other => {
            Error::ConnectionClosed(format!("daemon answered the handshake with code {other}"))
        }
    }
}

/// The handshake's I/O on a non-blocking socket, every step bounded by the same deadline.
struct HandshakeIo<'a> {
    fd: RawFd,
    deadline: Option<Instant>,
    timeout: Option<Duration>,
    name: &'a str,
}

impl HandshakeIo<'_> {
    fn timed_out(&self) -> Error {
        Error::Timeout(self.timeout.unwrap_or_default())
    }
    /// Write `buf` (normally in one send: the socket is fresh and the messages are tiny).
    /// Wait until the socket is ready for `events`, within the handshake's deadline.
    fn wait_ready(&self, events: libc::c_short) -> Result<()> {
        if socket::wait(self.fd, events, self.deadline).map_err(|e| closed("poll", e))? {
            Ok(())
        } else {
            Err(self.timed_out())
        }
    }

    fn write_all(&self, mut buf: &[u8]) -> Result<()> {
        while !buf.is_empty() {
            match socket::send(self.fd, buf, true) {
                Ok(n) => buf = &buf[n..],
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                    self.wait_ready(libc::POLLOUT)?
                }
                Err(e) => return Err(closed("sending the handshake", e)),
            }
        }
        Ok(())
    }
    /// Fill `buf`; returns how many bytes arrived before EOF (== buf.len() unless the daemon closed).
    fn read_exact(&self, buf: &mut [u8]) -> Result<usize> {
        let mut got = 0;
        while got < buf.len() {
            match socket::recv(self.fd, &mut buf[got..], true) {
                Ok(0) => return Ok(got),
                Ok(n) => got += n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => self.wait_ready(libc::POLLIN)?,
                Err(e) => return Err(closed("reading the handshake", e)),
            }
        }
        Ok(got)
    }
    fn eof(&self) -> Error {
        Error::ConnectionClosed(format!(
            "daemon closed the connection during the handshake of {:?}",
            self.name
        ))
    }

    /// PROTOCOL §3 / §14.1 step 2, client side. Returns the private group name.
    fn run(&self, opts: &ConnectOptions) -> Result<String> {
        let mut msg = Vec::with_capacity(16);
        ConnectRequest::new(
            opts.private_name.as_bytes(),
            opts.priority,
            opts.group_membership,
        )
        .encode(&mut msg);
        self.write_all(&msg)?;

        let mut len_byte = [0u8; 1];
        if self.read_exact(&mut len_byte)? == 0 {
            return Err(self.eof());
        }
        let len = auth_list_len(len_byte[0]).map_err(|c| handshake_error(c, self.name))?;
        let mut list = [0u8; AUTH_CHOICE_LEN];
        if self.read_exact(&mut list[..len])? < len {
            return Err(self.eof());
        }
        if !parse_auth_list(&list[..len]).contains(&AUTH_METHOD.as_bytes()) {
            // libspread gives up without sending anything when its method is not offered.
            return Err(Error::RejectAuth);
        }
        self.write_all(&encode_auth_choice(&[AUTH_METHOD]))?;

        let mut head = [0u8; 5];
        let got = self.read_exact(&mut head)?;
        if got < head.len() {
            // A reject byte arrives this way (REJECT_AUTH), followed by the close.
            return Err(match got {
                0 => self.eof(),
                _ if head[0] != 1 => handshake_error(head[0] as i8 as i32, self.name),
                _ => self.eof(),
            });
        }
        let head = parse_accept_head(&head).map_err(|e| match e {
            AcceptError::Rejected(c) => handshake_error(c, self.name),
            AcceptError::DaemonTooOld(_) => Error::RejectVersion,
            AcceptError::Malformed => Error::ConnectionClosed("malformed accept reply".into()),
        })?;
        let mut name = [0u8; MAX_GROUP_NAME];
        if self.read_exact(&mut name[..head.name_len])? < head.name_len {
            return Err(self.eof());
        }
        String::from_utf8(name[..head.name_len].to_vec())
            .map_err(|_| Error::ConnectionClosed("private group name is not ASCII".into()))
    }
}

impl Mailbox {
    /// `spread_name` as CONTRACTS §3 (parsed and resolved here; see `connect_endpoint` to avoid
    /// resolving on a hot path).
    pub fn connect(spread_name: &str, opts: &ConnectOptions) -> Result<Mailbox> {
        let endpoint = SpreadName::parse(spread_name)?.resolve()?;
        Mailbox::connect_endpoint(&endpoint, opts)
    }

    pub fn connect_endpoint(endpoint: &Endpoint, opts: &ConnectOptions) -> Result<Mailbox> {
        // Refuse a bad name before touching the network (the daemon would answer REJECT_ILLEGAL_NAME).
        if !opts.private_name.is_empty() {
            check_private(opts.private_name.as_bytes())
                .map_err(|_| Error::RejectIllegalName(opts.private_name.clone()))?;
        }
        check_timeout(opts.connect_timeout)?;
        check_timeout(opts.send_timeout)?;
        let deadline = opts.connect_timeout.map(|t| Instant::now() + t);
        let connected = match endpoint {
            Endpoint::Unix(path) => socket::connect_unix(path, deadline),
            Endpoint::Tcp(addr) => socket::connect_tcp(addr, deadline),
        };
        let fd = connected.map_err(|e| match e.kind() {
            io::ErrorKind::TimedOut => Error::Timeout(opts.connect_timeout.unwrap_or_default()),
            _ => Error::CouldNotConnect {
                target: endpoint.to_string(),
                source: e,
            },
        })?;
        let hs = HandshakeIo {
            fd: fd.as_raw_fd(),
            deadline,
            timeout: opts.connect_timeout,
            name: &opts.private_name,
        };
        let private_group = hs.run(opts)?;
        socket::set_nonblocking(fd.as_raw_fd(), false).map_err(|e| closed("fcntl", e))?;
        socket::set_send_timeout(fd.as_raw_fd(), opts.send_timeout)
            .map_err(|e| closed("setsockopt", e))?;
        Ok(Mailbox {
            fd,
            private_group,
            out: Vec::with_capacity(4096),
            out_generation: 0,
            inbuf: Deframer::new(DAEMON_KILL_LEN),
            send_timeout: opts.send_timeout,
            broken: false,
            deferred: None,
            id: NEXT_MAILBOX_ID.fetch_add(1, std::sync::atomic::Ordering::Relaxed),
        })
    }

    /// `#name#daemon` as the daemon assigned it.
    pub fn private_group(&self) -> &str {
        &self.private_group
    }

    /// False once a connection error made the session unusable.
    pub fn is_usable(&self) -> bool {
        !self.broken
    }

    fn check_usable(&mut self) -> Result<()> {
        if let Some(e) = self.deferred.take() {
            return Err(e);
        }
        if self.broken {
            Err(Error::NetErrorOnSession)
        } else {
            Ok(())
        }
    }

    /// The stream can no longer be trusted: close our side so the daemon drops the session too.
    fn fail(&mut self, e: Error) -> Error {
        self.broken = true;
        self.clear_out();
        socket::shutdown(self.fd.as_raw_fd());
        e
    }

    pub fn join(&mut self, group: &str) -> Result<()> {
        self.group_request(group, encode_join)
    }

    pub fn leave(&mut self, group: &str) -> Result<()> {
        self.group_request(group, encode_leave)
    }

    /// A join or leave of `group`, encoded by `encode` and sent at once.
    fn group_request(&mut self, group: &str, encode: fn(&[u8], &[u8], &mut Vec<u8>)) -> Result<()> {
        self.check_usable()?;
        check_group(group.as_bytes()).map_err(|_| Error::IllegalGroup(group.to_owned()))?;
        encode(
            self.private_group.as_bytes(),
            group.as_bytes(),
            &mut self.out,
        );
        self.flush()
    }

    /// One message to `groups`, one write(2). Returns the body length sent.
    pub fn multicast(
        &mut self,
        service_type: u32,
        groups: &[&str],
        mess_type: i16,
        data: &[u8],
    ) -> Result<usize> {
        self.queue_multicast(service_type, groups, mess_type, data)?;
        self.flush()?;
        Ok(data.len())
    }

    /// A header template for one-group messages from this connection to `group` with
    /// `service_type`, for [`Mailbox::multicast_parts`]. Checks what `multicast` checks per message.
    pub fn multicast_template(&self, service_type: u32, group: &str) -> Result<MulticastTemplate> {
        Ok(MulticastTemplate {
            header: OneGroupHeader::new(
                self.private_group.as_bytes(),
                service_type,
                group.as_bytes(),
            )?,
            mailbox: self.id,
        })
    }

    /// One message to the template's group whose body is `parts` concatenated: the same bytes on
    /// the wire as [`Mailbox::multicast`] with that body, written with ONE sendmsg(2) straight
    /// from the parts (no copy of the body; beyond [`MAX_PARTS`] parts the rest is copied into
    /// one buffer). Bounded by the send timeout like `multicast`; a short or timed-out write
    /// closes the stream. Returns the body length. `template` must come from this connection
    /// (else `IllegalMessage`, nothing sent).
    pub fn multicast_parts<'p>(
        &mut self,
        template: &mut MulticastTemplate,
        mess_type: i16,
        parts: impl IntoIterator<Item = &'p [u8]>,
    ) -> Result<usize> {
        self.check_template(template)?;
        if !self.out.is_empty() {
            self.flush()?;
        }
        let empty = libc::iovec {
            iov_base: std::ptr::null_mut(),
            iov_len: 0,
        };
        let mut iov = [empty; MAX_PARTS + 2];
        let mut n = 1;
        let mut body_len = 0usize;
        let mut parts = parts.into_iter();
        for p in parts.by_ref() {
            if p.is_empty() {
                continue;
            }
            body_len += p.len();
            if n == MAX_PARTS + 1 {
                // Too many parts: the rest go through the (reused) outgoing buffer.
                self.out.extend_from_slice(p);
                break;
            }
            iov[n] = libc::iovec {
                iov_base: p.as_ptr().cast_mut().cast(),
                iov_len: p.len(),
            };
            n += 1;
        }
        if n == MAX_PARTS + 1 && !self.out.is_empty() {
            for p in parts {
                body_len += p.len();
                self.out.extend_from_slice(p);
            }
            iov[n] = libc::iovec {
                iov_base: self.out.as_mut_ptr().cast(),
                iov_len: self.out.len(),
            };
            n += 1;
        }
        if let Err(e) = template.header.set(mess_type, body_len) {
            self.clear_out();
            return Err(e);
        }
        let header = template.header.bytes();
        iov[0] = libc::iovec {
            iov_base: header.as_ptr().cast_mut().cast(),
            iov_len: header.len(),
        };
        let result = self.send_iov(&mut iov[..n], header.len() + body_len);
        self.clear_out();
        result.map(|()| body_len)
    }

    /// [`Mailbox::multicast_parts`]'s message queued in the outgoing buffer instead of written:
    /// the same bytes, sent by the next [`Mailbox::flush`] (or before the next message that is
    /// written at once) together with every other queued message, one write for them all. Only
    /// checks can fail here (`MessageTooLong`, a template of another connection); nothing is
    /// queued then and the connection stays usable. Returns the body length.
    pub fn queue_parts<'p, P>(
        &mut self,
        template: &mut MulticastTemplate,
        mess_type: i16,
        parts: P,
    ) -> Result<usize>
    where
        P: IntoIterator<Item = &'p [u8]> + Clone,
    {
        // A message that nothing joins: the open one's copy, without a head.
        self.queue_open(template, mess_type, &[], parts)
            .map(|open| open.body_len)
    }

    /// [`Mailbox::queue_parts`] of a message whose body is `head` then `parts`, and that may take
    /// more body later ([`Mailbox::extend_open`]): several lines in one message (a batch).
    pub fn queue_open<'p, P>(
        &mut self,
        template: &mut MulticastTemplate,
        mess_type: i16,
        head: &[u8],
        parts: P,
    ) -> Result<OpenMessage>
    where
        P: IntoIterator<Item = &'p [u8]> + Clone,
    {
        self.check_template(template)?;
        let body_len = head.len() + parts.clone().into_iter().map(<[u8]>::len).sum::<usize>();
        template.header.set(mess_type, body_len)?;
        let start = self.out.len();
        self.out.reserve(template.header.bytes().len() + body_len);
        self.out.extend_from_slice(template.header.bytes());
        // Empty pieces are common (no batch-entry head; the second slice of a window line
        // that did not wrap): skipping them skips a call.
        if !head.is_empty() {
            self.out.extend_from_slice(head);
        }
        for p in parts {
            if !p.is_empty() {
                self.out.extend_from_slice(p);
            }
        }
        Ok(OpenMessage {
            start,
            end: self.out.len(),
            body_len,
            max_body: template.header.max_body(),
            generation: self.out_generation,
        })
    }

    /// Append `head` then `parts` to the body of `open`, still the last message queued and not
    /// written yet. False (nothing appended) when it was written or is no longer last, or when
    /// the body would pass the largest message.
    pub fn extend_open<'p, P>(&mut self, open: &mut OpenMessage, head: &[u8], parts: P) -> bool
    where
        P: IntoIterator<Item = &'p [u8]> + Clone,
    {
        if open.generation != self.out_generation || open.end != self.out.len() {
            return false;
        }
        let add = head.len() + parts.clone().into_iter().map(<[u8]>::len).sum::<usize>();
        if open.body_len + add > open.max_body {
            return false;
        }
        self.out.extend_from_slice(head);
        for p in parts {
            self.out.extend_from_slice(p);
        }
        open.body_len += add;
        open.end = self.out.len();
        let at = open.start + crate::wire::message::OneGroupHeader::LEN_AT;
        self.out[at..at + 4].copy_from_slice(&(open.body_len as u32).to_le_bytes());
        true
    }

    /// Write all of `iov` (sendmsg, then the rest after a partial write), bounded by the send
    /// timeout; any failure closes the stream.
    fn send_iov(&mut self, mut iov: &mut [libc::iovec], total: usize) -> Result<()> {
        let mut deadline = None;
        let mut left = total;
        loop {
            let mut n = match socket::send_vectored(self.fd.as_raw_fd(), iov) {
                Ok(n) => n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                    let t = self.send_timeout.unwrap_or_default();
                    return Err(self.fail(Error::Timeout(t)));
                }
                Err(e) => return Err(self.fail(closed("send", e))),
            };
            if n == left {
                return Ok(());
            }
            left -= n;
            // Skip what was written.
            while let Some(first) = iov.first_mut() {
                if n < first.iov_len {
                    // SAFETY: `n` < the buffer's length: the pointer stays inside it.
                    first.iov_base = unsafe { first.iov_base.cast::<u8>().add(n) }.cast();
                    first.iov_len -= n;
                    break;
                }
                n -= first.iov_len;
                iov = &mut iov[1..];
            }
            if iov.is_empty() {
                return Ok(());
            }
            if let Some(t) = self.send_timeout {
                // A partial write: SO_SNDTIMEO restarts per call, so bound the total ourselves.
                let d = *deadline.get_or_insert_with(|| Instant::now() + t);
                if Instant::now() >= d {
                    return Err(self.fail(Error::Timeout(t)));
                }
            }
        }
    }

    /// Queue a message in the mailbox's outgoing buffer without writing (batching senders).
    pub fn queue_multicast(
        &mut self,
        service_type: u32,
        groups: &[&str],
        mess_type: i16,
        data: &[u8],
    ) -> Result<()> {
        self.check_usable()?;
        // Most sends have one group: keep the name slices on the stack.
        const ON_STACK: usize = 8;
        let mut small: [&[u8]; ON_STACK] = [&[]; ON_STACK];
        let heap: Vec<&[u8]>;
        let names: &[&[u8]] = if groups.len() <= ON_STACK {
            for (slot, g) in small.iter_mut().zip(groups) {
                *slot = g.as_bytes();
            }
            &small[..groups.len()]
        } else {
            heap = groups.iter().map(|g| g.as_bytes()).collect();
            &heap
        };
        encode_multicast(
            self.private_group.as_bytes(),
            service_type,
            names,
            mess_type,
            data,
            &mut self.out,
        )
    }

    /// The connection is usable and `template` is one of its own.
    fn check_template(&mut self, template: &MulticastTemplate) -> Result<()> {
        self.check_usable()?;
        if template.mailbox != self.id {
            return Err(Error::IllegalMessage(
                "template from another connection".into(),
            ));
        }
        Ok(())
    }

    fn clear_out(&mut self) {
        self.out.clear();
        self.out_generation += 1;
    }

    /// Bytes queued and not yet written.
    pub fn queued_bytes(&self) -> usize {
        self.out.len()
    }

    /// Write everything queued (as few writes as the kernel allows), bounded by the send timeout.
    pub fn flush(&mut self) -> Result<()> {
        self.check_usable()?;
        let mut sent = 0;
        let mut deadline = None;
        while sent < self.out.len() {
            match socket::send(self.fd.as_raw_fd(), &self.out[sent..], false) {
                Ok(n) => sent += n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                    // SO_SNDTIMEO expired with nothing more taken.
                    let t = self.send_timeout.unwrap_or_default();
                    return Err(self.fail(Error::Timeout(t)));
                }
                Err(e) => return Err(self.fail(closed("send", e))),
            }
            if sent < self.out.len()
                && let Some(t) = self.send_timeout
            {
                // A partial write: SO_SNDTIMEO restarts per call, so bound the total ourselves.
                let d = *deadline.get_or_insert_with(|| Instant::now() + t);
                if Instant::now() >= d {
                    return Err(self.fail(Error::Timeout(t)));
                }
            }
        }
        self.clear_out();
        Ok(())
    }

    pub fn set_send_timeout(&mut self, timeout: Option<Duration>) -> Result<()> {
        self.check_usable()?;
        check_timeout(timeout)?;
        socket::set_send_timeout(self.fd.as_raw_fd(), timeout)
            .map_err(|e| closed("setsockopt", e))?;
        self.send_timeout = timeout;
        Ok(())
    }

    /// Read once into the receive buffer. Ok(0) = nothing available (only with `dont_wait`).
    fn fill(&mut self, dont_wait: bool) -> Result<usize> {
        let want = self.inbuf.missing().max(READ_CHUNK);
        loop {
            let spare = self.inbuf.spare(want);
            match socket::recv(self.fd.as_raw_fd(), spare, dont_wait) {
                Ok(0) => {
                    return Err(self.fail(Error::ConnectionClosed(
                        "daemon closed the connection".into(),
                    )));
                }
                Ok(n) => {
                    self.inbuf.filled(n);
                    return Ok(n);
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Ok(0),
                Err(e) => return Err(self.fail(closed("recv", e))),
            }
        }
    }

    /// Block until one message arrives (SP_receive with room for everything).
    pub fn receive(&mut self) -> Result<Message> {
        self.check_usable()?;
        loop {
            let decoded = match self.inbuf.next_frame() {
                None => None,
                Some(Err(e)) => Some(Err(e)),
                Some(Ok((header, rest))) => Some(Ok(MessageRef::decode(header, rest)
                    .and_then(|m| m.to_message(self.private_group.as_bytes())))),
            };
            match decoded {
                Some(Ok(message)) => return message,
                Some(Err(e)) => return Err(self.fail(Error::IllegalMessage(e.to_string()))),
                None => {
                    self.fill(false)?;
                }
            }
        }
    }

    /// Wait up to `timeout` for something to read (None = no wait). Buffered data counts.
    pub fn poll(&mut self, timeout: Option<Duration>) -> Result<bool> {
        self.check_usable()?;
        if self.inbuf.buffered() > 0 && self.inbuf.missing() == 0 {
            return Ok(true);
        }
        let deadline = Some(Instant::now() + timeout.unwrap_or_default());
        socket::wait(self.fd.as_raw_fd(), libc::POLLIN, deadline)
            .map_err(|e| self.fail(closed("poll", e)))
    }

    /// Zero-copy batch receive: call `f` for every whole message already buffered or readable now
    /// without blocking (after blocking for the first one if `block`). Returns how many were handled.
    pub fn receive_batch<F: FnMut(MessageRef<'_>)>(
        &mut self,
        block: bool,
        mut f: F,
    ) -> Result<usize> {
        self.check_usable()?;
        let mut handled = 0;
        let mut reads = 0;
        loop {
            let bad_frame = loop {
                match self.inbuf.next_frame() {
                    None => break None,
                    Some(Err(e)) => break Some(e.to_string()),
                    Some(Ok((header, rest))) => match MessageRef::decode(header, rest) {
                        Ok(m) => {
                            f(m);
                            handled += 1;
                        }
                        Err(e) => break Some(e.to_string()),
                    },
                }
            };
            if let Some(why) = bad_frame {
                return Err(self.fail(Error::IllegalMessage(why)));
            }
            if reads == MAX_READS_PER_BATCH {
                break;
            }
            reads += 1;
            let wait_for_first = block && handled == 0;
            match self.fill(!wait_for_first) {
                Ok(0) => break,
                Ok(_) => {}
                // Report what was delivered now and the error on the next call.
                Err(e) if handled > 0 => {
                    self.deferred = Some(e);
                    break;
                }
                Err(e) => return Err(e),
            }
        }
        Ok(handled)
    }

    /// SP_disconnect: KILL request, then close.
    pub fn disconnect(mut self) -> Result<()> {
        if self.broken {
            return Ok(()); // nothing to tell the daemon: the session is already gone
        }
        // Anything still queued goes first, as the caller queued it before disconnecting.
        encode_kill(self.private_group.as_bytes(), &mut self.out);
        let sent = self.flush();
        drop(self);
        sent
    }
}

impl AsRawFd for Mailbox {
    fn as_raw_fd(&self) -> RawFd {
        self.fd.as_raw_fd()
    }
}

impl std::fmt::Debug for Mailbox {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Mailbox")
            .field("fd", &self.fd.as_raw_fd())
            .field("private_group", &self.private_group)
            .field("queued", &self.out.len())
            .field("buffered", &self.inbuf.buffered())
            .field("broken", &self.broken)
            .finish()
    }
}
