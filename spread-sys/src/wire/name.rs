//! Name fields (32-byte NUL-padded slots) and the name rules of PROTOCOL.md §10.

use super::constants::{MAX_GROUP_NAME, MAX_PRIVATE_NAME, MAX_PROC_NAME};

/// A raw 32-byte name field as it travels on the wire. Only the bytes before the first NUL count.
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct NameField(pub [u8; MAX_GROUP_NAME]);

impl NameField {
    /// Zero-filled field holding `name` (at most 31 bytes; longer input is an error).
    pub fn new(name: &[u8]) -> Option<NameField> {
        if name.len() >= MAX_GROUP_NAME {
            return None;
        }
        let mut field = [0u8; MAX_GROUP_NAME];
        field[..name.len()].copy_from_slice(name);
        Some(NameField(field))
    }
    /// The significant bytes: up to the first NUL (or all 32).
    pub fn as_bytes(&self) -> &[u8] {
        until_nul(&self.0)
    }
}

impl std::fmt::Debug for NameField {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{:?}", String::from_utf8_lossy(self.as_bytes()))
    }
}

/// The significant part of a raw name slot: up to the first NUL, or the whole slot.
pub fn until_nul(slot: &[u8]) -> &[u8] {
    match slot.iter().position(|&b| b == 0) {
        Some(end) => &slot[..end],
        None => slot,
    }
}

/// Why a name was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum NameError {
    #[error("empty name")]
    Empty,
    #[error("name is {len} bytes, at most {max} allowed")]
    TooLong { len: usize, max: usize },
    #[error("byte {byte:#04x} at offset {at} is outside 0x24..0x7E")]
    IllegalByte { byte: u8, at: usize },
}

/// Whether `b` may appear in a private, group or daemon name (strictly above `#`, up to `~`).
pub fn is_name_byte(b: u8) -> bool {
    (0x24..=0x7e).contains(&b)
}

/// Whether `name` is a session's private group as a daemon reports it (`#private#daemon`,
/// 3..=31 name bytes): the form a sender's identity takes in control records.
pub fn is_private_group(name: &[u8]) -> bool {
    (3..MAX_GROUP_NAME).contains(&name.len())
        && name[0] == b'#'
        && name[1..].contains(&b'#')
        && name[1..].iter().all(|&b| b == b'#' || is_name_byte(b))
}

fn check_name(name: &[u8], max: usize) -> Result<(), NameError> {
    if name.is_empty() {
        return Err(NameError::Empty);
    }
    if name.len() > max {
        return Err(NameError::TooLong {
            len: name.len(),
            max,
        });
    }
    match name.iter().position(|&b| !is_name_byte(b)) {
        Some(at) => Err(NameError::IllegalByte { byte: name[at], at }),
        None => Ok(()),
    }
}

/// Private (connection) name: 1..=10 bytes in 0x24..=0x7E.
pub fn check_private_name(name: &[u8]) -> Result<(), NameError> {
    check_name(name, MAX_PRIVATE_NAME)
}

/// Group name for join/leave: 1..=31 bytes in 0x24..=0x7E (so it never starts with `#`).
pub fn check_group_name(name: &[u8]) -> Result<(), NameError> {
    check_name(name, MAX_GROUP_NAME - 1)
}

/// Daemon name: 1..=19 bytes in 0x24..=0x7E.
pub fn check_daemon_name(name: &[u8]) -> Result<(), NameError> {
    check_name(name, MAX_PROC_NAME - 1)
}

/// Split a private group name `#priv#daemon` into (priv, daemon); None if it is not one.
/// Input is taken up to its first NUL (a raw name slot may be passed directly).
pub fn parse_private_group(name: &[u8]) -> Option<(&[u8], &[u8])> {
    let name = until_nul(name);
    let rest = name.strip_prefix(b"#")?;
    let split = rest.iter().position(|&b| b == b'#')?;
    let (private, daemon) = (&rest[..split], &rest[split + 1..]);
    check_private_name(private).ok()?;
    check_daemon_name(daemon).ok()?;
    Some((private, daemon))
}

/// `#priv#daemon`.
pub fn private_group_name(private: &[u8], daemon: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(private.len() + daemon.len() + 2);
    out.push(b'#');
    out.extend_from_slice(private);
    out.push(b'#');
    out.extend_from_slice(daemon);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn name_field_zero_fills_and_cuts_at_nul() {
        let f = NameField::new(b"grp").unwrap();
        assert_eq!(&f.0[..4], b"grp\0");
        assert!(f.0[3..].iter().all(|&b| b == 0));
        assert_eq!(f.as_bytes(), b"grp");
        assert!(NameField::new(&[b'a'; 31]).is_some());
        assert!(NameField::new(&[b'a'; 32]).is_none());
        let mut raw = [0xaau8; 32];
        raw[..4].copy_from_slice(b"abc\0");
        assert_eq!(NameField(raw).as_bytes(), b"abc");
        assert_eq!(NameField([b'x'; 32]).as_bytes(), &[b'x'; 32]);
    }

    #[test]
    fn private_names() {
        assert!(check_private_name(b"alice").is_ok());
        assert!(check_private_name(b"$~").is_ok());
        assert_eq!(check_private_name(b""), Err(NameError::Empty));
        assert_eq!(
            check_private_name(b"abcdefghijk"),
            Err(NameError::TooLong { len: 11, max: 10 })
        );
        assert_eq!(
            check_private_name(b"a#b"),
            Err(NameError::IllegalByte { byte: b'#', at: 1 })
        );
        assert!(check_private_name(b"sp ace").is_err());
        assert!(check_private_name("é".as_bytes()).is_err());
    }

    #[test]
    fn group_and_daemon_names() {
        assert!(check_group_name(&[b'g'; 31]).is_ok());
        assert!(check_group_name(&[b'g'; 32]).is_err());
        assert!(check_group_name(b"#x").is_err());
        assert!(check_daemon_name(&[b'd'; 19]).is_ok());
        assert!(check_daemon_name(&[b'd'; 20]).is_err());
    }

    #[test]
    fn private_group_round_trip() {
        let n = private_group_name(b"alice", b"localhost");
        assert_eq!(n, b"#alice#localhost");
        assert_eq!(
            parse_private_group(&n),
            Some((&b"alice"[..], &b"localhost"[..]))
        );
        assert_eq!(
            parse_private_group(b"#alice#localhost\0junk"),
            Some((&b"alice"[..], &b"localhost"[..]))
        );
        assert_eq!(parse_private_group(b"grp"), None);
        assert_eq!(parse_private_group(b"##localhost"), None);
        assert_eq!(parse_private_group(b"#a#"), None);
        assert_eq!(parse_private_group(b"#abcdefghijk#d"), None);
    }
}
