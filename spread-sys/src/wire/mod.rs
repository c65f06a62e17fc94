//! The sans-IO protocol core: bytes in, values out, and values in, bytes out. No sockets here.
//! Client and daemon both use it, so the two sides cannot drift. PROTOCOL.md is the specification.

pub mod constants;
pub mod deframer;
pub mod handshake;
pub mod header;
pub mod membership;
pub mod message;
pub mod name;

/// Test data helpers shared by the wire modules' tests.
#[cfg(test)]
pub(crate) mod test_data {
    use super::constants::CAUSED_BY_JOIN;
    use super::membership::{GroupId, encode_membership};

    /// The membership message a daemon sends when `joiner` joins `grp`, now holding `members`.
    pub fn join_message(members: &[&[u8]], joiner: &[u8], gid: GroupId) -> Vec<u8> {
        let mut v = Vec::new();
        encode_membership(CAUSED_BY_JOIN, b"grp", members, gid, joiner, &mut v);
        v
    }

    /// Bytes from a hex string (the recorded transcripts' notation).
    pub fn hex(s: &str) -> Vec<u8> {
        (0..s.len())
            .step_by(2)
            .map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap())
            .collect()
    }
}
