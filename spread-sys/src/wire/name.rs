//! Name fields (32-byte NUL-padded slots) and the name rules of PROTOCOL.md §10.

use super::constants::MAX_GROUP_NAME;

/// A raw 32-byte name field as it travels on the wire. Only the bytes before the first NUL count.
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct NameField(pub [u8; MAX_GROUP_NAME]);

impl NameField {
    /// Zero-filled field holding `name` (at most 31 bytes; longer input is an error).
    pub fn new(name: &[u8]) -> Option<NameField> {
        let _ = name;
        todo!()
    }
    /// The significant bytes: up to the first NUL (or all 32).
    pub fn as_bytes(&self) -> &[u8] {
        todo!()
    }
}

impl std::fmt::Debug for NameField {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{:?}", String::from_utf8_lossy(self.as_bytes()))
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

/// Private (connection) name: 1..=10 bytes in 0x24..=0x7E.
pub fn check_private_name(name: &[u8]) -> Result<(), NameError> {
    let _ = name;
    todo!()
}

/// Group name for join/leave: 1..=31 bytes in 0x24..=0x7E (so it never starts with `#`).
pub fn check_group_name(name: &[u8]) -> Result<(), NameError> {
    let _ = name;
    todo!()
}

/// Daemon name: 1..=19 bytes in 0x24..=0x7E.
pub fn check_daemon_name(name: &[u8]) -> Result<(), NameError> {
    let _ = name;
    todo!()
}

/// Split a private group name `#priv#daemon` into (priv, daemon); None if it is not one.
pub fn parse_private_group(name: &[u8]) -> Option<(&[u8], &[u8])> {
    let _ = name;
    todo!()
}

/// `#priv#daemon`.
pub fn private_group_name(private: &[u8], daemon: &[u8]) -> Vec<u8> {
    let _ = (private, daemon);
    todo!()
}
