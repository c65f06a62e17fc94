//! A blocking Spread client connection with libspread semantics and bounded time.

use std::os::fd::{AsRawFd, RawFd};
use std::time::Duration;

use crate::Result;
use crate::spread_name::Endpoint;
use crate::wire::message::{Message, MessageRef};

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
    _private: (),
}

impl Mailbox {
    /// `spread_name` as CONTRACTS §3 (parsed and resolved here; see `connect_endpoint` to avoid
    /// resolving on a hot path).
    pub fn connect(spread_name: &str, opts: &ConnectOptions) -> Result<Mailbox> {
        let _ = (spread_name, opts);
        todo!()
    }
    pub fn connect_endpoint(endpoint: &Endpoint, opts: &ConnectOptions) -> Result<Mailbox> {
        let _ = (endpoint, opts);
        todo!()
    }
    /// `#name#daemon` as the daemon assigned it.
    pub fn private_group(&self) -> &str {
        todo!()
    }
    pub fn join(&mut self, group: &str) -> Result<()> {
        let _ = group;
        todo!()
    }
    pub fn leave(&mut self, group: &str) -> Result<()> {
        let _ = group;
        todo!()
    }
    /// One message to `groups`, one write(2). Returns the body length sent.
    pub fn multicast(
        &mut self,
        service_type: u32,
        groups: &[&str],
        mess_type: i16,
        data: &[u8],
    ) -> Result<usize> {
        let _ = (service_type, groups, mess_type, data);
        todo!()
    }
    /// Queue a message in the mailbox's outgoing buffer without writing (batching senders).
    pub fn queue_multicast(
        &mut self,
        service_type: u32,
        groups: &[&str],
        mess_type: i16,
        data: &[u8],
    ) -> Result<()> {
        let _ = (service_type, groups, mess_type, data);
        todo!()
    }
    /// Write everything queued (as few writes as the kernel allows), bounded by the send timeout.
    pub fn flush(&mut self) -> Result<()> {
        todo!()
    }
    pub fn set_send_timeout(&mut self, timeout: Option<Duration>) -> Result<()> {
        let _ = timeout;
        todo!()
    }
    /// Block until one message arrives (SP_receive with room for everything).
    pub fn receive(&mut self) -> Result<Message> {
        todo!()
    }
    /// Wait up to `timeout` for something to read (None = no wait). Buffered data counts.
    pub fn poll(&mut self, timeout: Option<Duration>) -> Result<bool> {
        let _ = timeout;
        todo!()
    }
    /// Zero-copy batch receive: call `f` for every whole message already buffered or readable now
    /// without blocking (after blocking for the first one if `block`). Returns how many were handled.
    pub fn receive_batch<F: FnMut(MessageRef<'_>)>(&mut self, block: bool, f: F) -> Result<usize> {
        let _ = (block, f);
        todo!()
    }
    /// SP_disconnect: KILL request, then close.
    pub fn disconnect(self) -> Result<()> {
        todo!()
    }
}

impl AsRawFd for Mailbox {
    fn as_raw_fd(&self) -> RawFd {
        todo!()
    }
}
