//! Session establishment (PROTOCOL.md §3): connect message, auth list, auth choice, accept/reject.
//! Both sides: the client encodes the connect message and decodes the replies; the daemon decodes the
//! connect message and encodes the replies.
//!
//! The daemon reads every byte of the connect message as a *signed* char, so versions such as
//! 0xff.0xff count as -1.-1 (rejected); the patch byte exists only for versions above 3.14, and
//! clients below 3.16 skip the auth exchange (§3.8).

use super::constants::{AUTH_CHOICE_LEN, MAX_AUTH_NAME, MAX_GROUP_NAME, MAX_PRIVATE_NAME, VERSION};
use super::name::until_nul;
use crate::names::is_name_byte;

/// Version numbers at which the protocol changed (major*10000 + minor*100 + patch).
const FIRST_WITH_PATCH_BYTE: i32 = 31400; // strictly above: the patch byte is sent
const FIRST_ACCEPTED: i32 = 30100;
const FIRST_PATCH_IN_ACCEPT: i32 = 31500;
const FIRST_AUTH_EXCHANGE: i32 = 31600;

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

fn signed(b: u8) -> i32 {
    b as i8 as i32
}

fn base_version(major: u8, minor: u8) -> i32 {
    signed(major) * 10000 + signed(minor) * 100
}

impl ConnectRequest {
    /// What our client sends: version 5.0.1. Like libspread, a name longer than 10 bytes is cut.
    pub fn new(name: &[u8], priority: bool, group_membership: bool) -> ConnectRequest {
        let (major, minor, patch) = VERSION;
        ConnectRequest {
            major,
            minor,
            patch: Some(patch),
            flags: u8::from(group_membership) | if priority { 0x10 } else { 0 },
            name: name[..name.len().min(MAX_PRIVATE_NAME)].to_vec(),
        }
    }
    pub fn group_membership(&self) -> bool {
        // C's `%` keeps the sign: a negative odd flags byte does not ask for membership.
        signed(self.flags) % 2 == 1
    }
    pub fn priority(&self) -> i8 {
        (signed(self.flags) / 16) as i8
    }
    /// `major*10000 + minor*100 + patch`, bytes taken as signed chars as the daemon does.
    pub fn version_number(&self) -> i32 {
        base_version(self.major, self.minor) + self.patch.map_or(0, signed)
    }
    /// Whether the client does the auth exchange (V >= 31600).
    pub fn uses_auth_exchange(&self) -> bool {
        self.version_number() >= FIRST_AUTH_EXCHANGE
    }
    /// Whether the accept reply carries the patch byte (V >= 31500).
    pub fn wants_patch_in_accept(&self) -> bool {
        self.version_number() >= FIRST_PATCH_IN_ACCEPT
    }
    pub fn encode(&self, out: &mut Vec<u8>) {
        out.push(self.major);
        out.push(self.minor);
        if let Some(p) = self.patch {
            out.push(p);
        }
        out.push(self.flags);
        out.push(self.name.len() as u8);
        out.extend_from_slice(&self.name);
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
    parse_connect_inner(buf, false)
}

/// Daemon side, once the connect message has been read the way Spread 5.0.1 reads it (everything
/// available after the socket became readable): a name shorter than announced, or more name bytes
/// than announced within the 10-byte name read, is REJECT_ILLEGAL_NAME rather than `Incomplete`.
/// `Incomplete` remains only when the message ends before `name_len` (the daemon just closes).
pub fn parse_connect_final(buf: &[u8]) -> ConnectParse {
    parse_connect_inner(buf, true)
}

fn parse_connect_inner(buf: &[u8], final_read: bool) -> ConnectParse {
    let (Some(&major), Some(&minor)) = (buf.first(), buf.get(1)) else {
        return ConnectParse::Incomplete;
    };
    let mut at = 2;
    let patch = if base_version(major, minor) > FIRST_WITH_PATCH_BYTE {
        let Some(&p) = buf.get(at) else {
            return ConnectParse::Incomplete;
        };
        at += 1;
        Some(p)
    } else {
        None
    };
    if base_version(major, minor) + patch.map_or(0, signed) < FIRST_ACCEPTED {
        return ConnectParse::Reject(RejectCode::Version);
    }
    let (Some(&flags), Some(&len_byte)) = (buf.get(at), buf.get(at + 1)) else {
        return ConnectParse::Incomplete;
    };
    at += 2;
    let name_len = signed(len_byte);
    if !(0..=MAX_PRIVATE_NAME as i32).contains(&name_len) {
        return ConnectParse::Reject(RejectCode::IllegalName);
    }
    let name_len = name_len as usize;
    let rest = &buf[at..];
    if final_read && name_len > 0 && rest.len().min(MAX_PRIVATE_NAME) != name_len {
        return ConnectParse::Reject(RejectCode::IllegalName);
    }
    let Some(name) = rest.get(..name_len) else {
        return ConnectParse::Incomplete;
    };
    if !name.iter().all(|&b| is_name_byte(b)) {
        return ConnectParse::Reject(RejectCode::IllegalName);
    }
    let req = ConnectRequest {
        major,
        minor,
        patch,
        flags,
        name: name.to_vec(),
    };
    ConnectParse::Complete(req, at + name_len)
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
        self.code() as i8 as u8
    }
    pub fn code(self) -> i32 {
        use super::constants::code::*;
        match self {
            RejectCode::Quota => REJECT_QUOTA,
            RejectCode::NoName => REJECT_NO_NAME,
            RejectCode::IllegalName => REJECT_ILLEGAL_NAME,
            RejectCode::NotUnique => REJECT_NOT_UNIQUE,
            RejectCode::Version => REJECT_VERSION,
            RejectCode::Auth => REJECT_AUTH,
        }
    }
    pub fn from_byte(b: u8) -> Option<RejectCode> {
        [
            RejectCode::Quota,
            RejectCode::NoName,
            RejectCode::IllegalName,
            RejectCode::NotUnique,
            RejectCode::Version,
            RejectCode::Auth,
        ]
        .into_iter()
        .find(|r| r.byte() == b)
    }
}

/// Daemon: `L` + "NULL " style list. Methods are listed until the 255-byte length would overflow.
pub fn encode_auth_list(methods: &[&str], out: &mut Vec<u8>) {
    let at = out.len();
    out.push(0);
    for m in methods {
        if out.len() - at - 1 + m.len() + 1 > u8::MAX as usize {
            break;
        }
        out.extend_from_slice(m.as_bytes());
        out.push(b' ');
    }
    out[at] = (out.len() - at - 1) as u8;
}

/// Client: the space-separated method names of an auth list body (after the length byte).
pub fn parse_auth_list(list: &[u8]) -> Vec<&[u8]> {
    list.split(|&b| b == b' ')
        .filter(|w| !w.is_empty())
        .collect()
}

/// Client, first byte of the daemon's reply: the auth-list length (read as a signed char, as
/// libspread does), or the Spread error code it stands for.
pub fn auth_list_len(byte: u8) -> Result<usize, i32> {
    match signed(byte) {
        n if n < 0 => Err(n),
        n if n as usize > AUTH_CHOICE_LEN => Err(super::constants::code::CONNECTION_CLOSED),
        n => Ok(n as usize),
    }
}

/// Client: the 90-byte choice record (three 30-byte NUL-padded slots). Extra methods are ignored,
/// names are cut to 29 bytes so each slot stays NUL-terminated.
pub fn encode_auth_choice(methods: &[&str]) -> [u8; AUTH_CHOICE_LEN] {
    let mut out = [0u8; AUTH_CHOICE_LEN];
    for (slot, m) in out.chunks_mut(MAX_AUTH_NAME).zip(methods) {
        let n = m.len().min(MAX_AUTH_NAME - 1);
        slot[..n].copy_from_slice(&m.as_bytes()[..n]);
    }
    out
}

/// Daemon: the method names in a choice record, from the first slot up to the first empty one.
pub fn parse_auth_choice(choice: &[u8; AUTH_CHOICE_LEN]) -> Vec<&[u8]> {
    choice
        .chunks(MAX_AUTH_NAME)
        .map(until_nul)
        .take_while(|m| !m.is_empty())
        .collect()
}

/// The accept reply.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Accept {
    pub major: u8,
    pub minor: u8,
    pub patch: Option<u8>,
    pub private_group: Vec<u8>,
}

/// Why a client refuses the daemon's accept reply.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum AcceptError {
    /// Byte 0 was not ACCEPT_SESSION: that byte, as a signed Spread code.
    #[error("daemon rejected the session with code {0}")]
    Rejected(i32),
    /// Negative version bytes or a name length outside 0..32 (libspread: CONNECTION_CLOSED).
    #[error("malformed accept reply")]
    Malformed,
    /// Daemon major version below 3.
    #[error("daemon version {0} is too old")]
    DaemonTooOld(i32),
}

/// What the client knows after the fixed 5-byte part of the accept reply (libspread 5.x always
/// reads 5 bytes: accept, major, minor, patch, name length).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AcceptHead {
    pub major: u8,
    pub minor: u8,
    pub patch: u8,
    pub name_len: usize,
}

/// Client: check the 5-byte head of the accept reply as libspread does (§3.6).
pub fn parse_accept_head(head: &[u8; 5]) -> Result<AcceptHead, AcceptError> {
    if head[0] != 1 {
        return Err(AcceptError::Rejected(signed(head[0])));
    }
    if head[1..].iter().any(|&b| signed(b) < 0) || head[4] as usize >= MAX_GROUP_NAME {
        return Err(AcceptError::Malformed);
    }
    if head[1] < 3 {
        return Err(AcceptError::DaemonTooOld(head[1] as i32));
    }
    Ok(AcceptHead {
        major: head[1],
        minor: head[2],
        patch: head[3],
        name_len: head[4] as usize,
    })
}

impl Accept {
    /// What our daemon replies to `req`: its version, and the patch byte only if the client expects it.
    pub fn for_client(req: &ConnectRequest, private_group: &[u8]) -> Accept {
        let (major, minor, patch) = VERSION;
        Accept {
            major,
            minor,
            patch: req.wants_patch_in_accept().then_some(patch),
            private_group: private_group.to_vec(),
        }
    }
    pub fn encode(&self, out: &mut Vec<u8>) {
        out.push(1);
        out.push(self.major);
        out.push(self.minor);
        if let Some(p) = self.patch {
            out.push(p);
        }
        out.push(self.private_group.len() as u8);
        out.extend_from_slice(&self.private_group);
    }
    /// Decode a complete accept reply (with or without the patch byte) and the bytes it used;
    /// None if incomplete or not an accept.
    pub fn decode(buf: &[u8], with_patch: bool) -> Option<(Accept, usize)> {
        let fixed = if with_patch { 5 } else { 4 };
        let head = buf.get(..fixed)?;
        if head[0] != 1 {
            return None;
        }
        let len = head[fixed - 1] as usize;
        let name = buf.get(fixed..fixed + len)?;
        let accept = Accept {
            major: head[1],
            minor: head[2],
            patch: with_patch.then_some(head[3]),
            private_group: name.to_vec(),
        };
        Some((accept, fixed + len))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn bytes(r: &ConnectRequest) -> Vec<u8> {
        let mut v = Vec::new();
        r.encode(&mut v);
        v
    }

    #[test]
    fn client_connect_messages() {
        // (name, priority, membership) -> the bytes libspread sends.
        let cases: [(&[u8], bool, bool, &[u8]); 4] = [
            (b"alice", false, true, b"\x05\x00\x01\x01\x05alice"),
            (b"logger", true, false, b"\x05\x00\x01\x10\x06logger"),
            (b"", false, true, b"\x05\x00\x01\x01\x00"),
            (
                b"abcdefghijkl",
                false,
                false,
                b"\x05\x00\x01\x00\x0aabcdefghij",
            ),
        ];
        for (name, priority, membership, want) in cases {
            let got = bytes(&ConnectRequest::new(name, priority, membership));
            assert_eq!(got, want, "{:?}", String::from_utf8_lossy(name));
        }
    }

    #[test]
    fn daemon_parses_versions() {
        let ok = |b: &[u8]| match parse_connect(b) {
            ConnectParse::Complete(r, n) => (r, n),
            other => panic!("{other:?}"),
        };
        let (r, n) = ok(b"\x05\x00\x01\x01\x05alice");
        assert_eq!(
            (n, r.version_number(), r.group_membership(), r.priority()),
            (10, 50001, true, 0)
        );
        assert!(r.uses_auth_exchange() && r.wants_patch_in_accept());
        // 3.14: no patch byte, no auth, no patch in accept.
        let (r, n) = ok(b"\x03\x0e\x01\x04v314");
        assert_eq!((n, r.patch, r.version_number()), (8, None, 31400));
        assert!(!r.uses_auth_exchange() && !r.wants_patch_in_accept());
        let (r, _) = ok(b"\x03\x0f\x00\x01\x05v3150");
        assert!(!r.uses_auth_exchange() && r.wants_patch_in_accept());
        let (r, _) = ok(b"\x03\x10\x00\x01\x05v3160");
        assert!(r.uses_auth_exchange());
        let (r, _) = ok(b"\x05\x00\x01\x10\x06logger");
        assert_eq!((r.priority(), r.group_membership()), (1, false));
        assert_eq!(
            parse_connect(b"\x02\x00\x00\x01\x03old"),
            ConnectParse::Reject(RejectCode::Version)
        );
        assert_eq!(
            parse_connect(b"\x03\x00\x01\x03v30"),
            ConnectParse::Reject(RejectCode::Version)
        );
        assert_eq!(
            parse_connect(b"\xff\xff\xff\x01\x02ff"),
            ConnectParse::Reject(RejectCode::Version)
        );
        assert_eq!(parse_connect(b"\x05\x00"), ConnectParse::Incomplete);
        assert_eq!(parse_connect(b"\x05\x00\x01\x01"), ConnectParse::Incomplete);
    }

    #[test]
    fn daemon_name_rules() {
        let ill = ConnectParse::Reject(RejectCode::IllegalName);
        assert_eq!(parse_connect(b"\x05\x00\x01\x01\x0babcdefghijk"), ill);
        assert_eq!(parse_connect(b"\x05\x00\x01\x01\xff"), ill);
        assert_eq!(parse_connect(b"\x05\x00\x01\x01\x06sp ace"), ill);
        assert_eq!(parse_connect(b"\x05\x00\x01\x01\x03a#b"), ill);
        assert_eq!(
            parse_connect(b"\x05\x00\x01\x01\x05ab"),
            ConnectParse::Incomplete
        );
        assert_eq!(parse_connect_final(b"\x05\x00\x01\x01\x05ab"), ill);
        assert_eq!(parse_connect_final(b"\x05\x00\x01\x01\x02abXYZ"), ill);
        assert!(matches!(
            parse_connect_final(b"\x05\x00\x01\x01\x00"),
            ConnectParse::Complete(_, 5)
        ));
    }

    #[test]
    fn reject_bytes() {
        assert_eq!(RejectCode::Quota.byte(), 0xfd);
        assert_eq!(RejectCode::IllegalName.byte(), 0xfb);
        assert_eq!(RejectCode::NotUnique.byte(), 0xfa);
        assert_eq!(RejectCode::Version.byte(), 0xf9);
        assert_eq!(RejectCode::Auth.byte(), 0xf7);
        assert_eq!(RejectCode::from_byte(0xfc), Some(RejectCode::NoName));
        assert_eq!(RejectCode::from_byte(0x01), None);
    }

    #[test]
    fn auth() {
        let mut v = Vec::new();
        encode_auth_list(&["NULL"], &mut v);
        assert_eq!(v, b"\x05NULL ");
        v.clear();
        encode_auth_list(&["NULL", "IP"], &mut v);
        assert_eq!(v, b"\x08NULL IP ");
        assert_eq!(parse_auth_list(b"NULL IP "), vec![&b"NULL"[..], b"IP"]);
        assert_eq!(auth_list_len(0x05), Ok(5));
        assert_eq!(auth_list_len(0xfa), Err(-6));
        assert_eq!(auth_list_len(91), Err(-8));
        let c = encode_auth_choice(&["NULL"]);
        assert_eq!(&c[..5], b"NULL\0");
        assert!(c[4..].iter().all(|&b| b == 0));
        assert_eq!(parse_auth_choice(&c), vec![&b"NULL"[..]]);
        assert!(parse_auth_choice(&[0; 90]).is_empty());
        let two = encode_auth_choice(&["NULL", "IP"]);
        assert_eq!(parse_auth_choice(&two), vec![&b"NULL"[..], b"IP"]);
    }

    #[test]
    fn accept_round_trip() {
        let a = Accept {
            major: 5,
            minor: 0,
            patch: Some(1),
            private_group: b"#alice#localhost".to_vec(),
        };
        let mut v = Vec::new();
        a.encode(&mut v);
        assert_eq!(&v[..5], b"\x01\x05\x00\x01\x10");
        assert_eq!(Accept::decode(&v, true), Some((a, v.len())));
        assert_eq!(Accept::decode(&v[..10], true), None);
        let head: [u8; 5] = v[..5].try_into().unwrap();
        assert_eq!(parse_accept_head(&head).unwrap().name_len, 16);
        assert_eq!(
            parse_accept_head(&[0xf7, 0, 0, 0, 0]),
            Err(AcceptError::Rejected(-9))
        );
        assert_eq!(
            parse_accept_head(&[1, 5, 0, 1, 32]),
            Err(AcceptError::Malformed)
        );
        assert_eq!(
            parse_accept_head(&[1, 2, 0, 1, 3]),
            Err(AcceptError::DaemonTooOld(2))
        );
        let old = ConnectRequest {
            major: 3,
            minor: 14,
            patch: None,
            flags: 1,
            name: b"x".to_vec(),
        };
        let mut v = Vec::new();
        Accept::for_client(&old, b"#x#localhost").encode(&mut v);
        assert_eq!(&v[..4], b"\x01\x05\x00\x0c");
    }
}
