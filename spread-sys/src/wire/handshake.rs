//! Session establishment (PROTOCOL.md §3): connect message, auth list, auth choice, accept/reject.
//! Both sides: the client encodes the connect message and decodes the replies; the daemon decodes the
//! connect message and encodes the replies.

use super::constants::AUTH_CHOICE_LEN;

/// The client's connect message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConnectRequest {
    pub major: u8,
    pub minor: u8,
    /// Present only when major*10000 + minor*100 > 31400.
    pub patch: Option<u8>,
    /// Raw flags byte (bit 0 membership, bit 4 priority).
    pub flags: u8,
    /// Private name bytes as sent (may be empty: the daemon invents one).
    pub name: Vec<u8>,
}

impl ConnectRequest {
    /// What our client sends: version 5.0.1.
    pub fn new(name: &[u8], priority: bool, group_membership: bool) -> ConnectRequest {
        let _ = (name, priority, group_membership);
        todo!()
    }
    pub fn group_membership(&self) -> bool {
        todo!()
    }
    pub fn priority(&self) -> i8 {
        todo!()
    }
    /// `major*10000 + minor*100 + patch`, bytes taken as signed chars as the daemon does.
    pub fn version_number(&self) -> i32 {
        todo!()
    }
    /// Whether the client does the auth exchange (V >= 31600).
    pub fn uses_auth_exchange(&self) -> bool {
        todo!()
    }
    /// Whether the accept reply carries the patch byte (V >= 31500).
    pub fn wants_patch_in_accept(&self) -> bool {
        todo!()
    }
    pub fn encode(&self, out: &mut Vec<u8>) {
        let _ = out;
        todo!()
    }
}

/// Result of the daemon parsing a connect message from what is buffered so far.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ConnectParse {
    /// Need more bytes (the daemon may decide to treat this as a short read instead).
    Incomplete,
    /// Reply this reject byte and close.
    Reject(RejectCode),
    /// A complete request and how many bytes it used.
    Complete(ConnectRequest, usize),
}

/// Daemon side: parse a connect message (signed-char version rules, name_len rules, name bytes).
/// Uniqueness and quota are the daemon's business.
pub fn parse_connect(buf: &[u8]) -> ConnectParse {
    let _ = buf;
    todo!()
}

/// Handshake reject codes as the single byte the daemon sends.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RejectCode {
    Quota,
    NoName,
    IllegalName,
    NotUnique,
    Version,
    Auth,
}

impl RejectCode {
    pub fn byte(self) -> u8 {
        todo!()
    }
    pub fn code(self) -> i32 {
        todo!()
    }
    pub fn from_byte(b: u8) -> Option<RejectCode> {
        let _ = b;
        todo!()
    }
}

/// Daemon: `L` + "NULL " style list.
pub fn encode_auth_list(methods: &[&str], out: &mut Vec<u8>) {
    let _ = (methods, out);
    todo!()
}

/// Client: the space-separated method names of an auth list body (after the length byte).
pub fn parse_auth_list(list: &[u8]) -> Vec<&[u8]> {
    let _ = list;
    todo!()
}

/// Client: the 90-byte choice record (three 30-byte NUL-padded slots).
pub fn encode_auth_choice(methods: &[&str]) -> [u8; AUTH_CHOICE_LEN] {
    let _ = methods;
    todo!()
}

/// Daemon: the method names in a choice record, from the first slot up to the first empty one.
pub fn parse_auth_choice(choice: &[u8; AUTH_CHOICE_LEN]) -> Vec<&[u8]> {
    let _ = choice;
    todo!()
}

/// The accept reply.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Accept {
    pub major: u8,
    pub minor: u8,
    pub patch: Option<u8>,
    pub private_group: Vec<u8>,
}

impl Accept {
    pub fn encode(&self, out: &mut Vec<u8>) {
        let _ = out;
        todo!()
    }
}
