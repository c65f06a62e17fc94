//! Name fields (32-byte NUL-padded slots) and private group names (`#private#daemon`) on the
//! wire. The rules for names themselves are in [`crate::names`].

use super::constants::MAX_GROUP_NAME;
use crate::names::{check_daemon, check_private};

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

/// Split a private group name `#priv#daemon` into (priv, daemon); None if it is not one.
/// Input is taken up to its first NUL (a raw name slot may be passed directly).
pub fn parse_private_group(name: &[u8]) -> Option<(&[u8], &[u8])> {
    let name = until_nul(name);
    let rest = name.strip_prefix(b"#")?;
    let split = rest.iter().position(|&b| b == b'#')?;
    let (private, daemon) = (&rest[..split], &rest[split + 1..]);
    check_private(private).ok()?;
    check_daemon(daemon).ok()?;
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
