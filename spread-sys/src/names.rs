//! The name rules every part shares, in one place: which bytes a Spread name may hold, how long
//! each kind of name may be, which group no log may use, and how a host name is cleaned before it
//! becomes a group (`$#hostname`) or a file name (spreadlogd's `VhostDir`).
//!
//! One character rule for Spread names (PROTOCOL.md §10): bytes strictly above `#` up to `~`
//! (0x24..=0x7E), so a group never starts with `#` (that marks private groups). One length rule
//! per use:
//!
//! | name | longest | why |
//! |---|---|---|
//! | group | [`MAX_GROUP_LEN`] = 31 | the wire's name slot is `MAX_GROUP_NAME` = 32 bytes, the NUL included |
//! | private name | [`MAX_PRIVATE_LEN`] = 10 | Spread's `MAX_PRIVATE_NAME` |
//! | daemon name | [`MAX_DAEMON_LEN`] = 19 | `MAX_PROC_NAME` = 20, the NUL included |
//! | host as a VhostDir file | [`MAX_HOST_FILE_LEN`] = 253 | DNS's longest name |
//!
//! A host name is lower-case letters, digits and `-` in dot-separated labels of 1..=63 bytes, no
//! label starting with `-` (so no file name looks like an option), with an optional `:port` and
//! one trailing dot stripped.

use crate::control::CONTROL_GROUP;
use crate::wire::constants::{MAX_GROUP_NAME, MAX_PRIVATE_NAME, MAX_PROC_NAME};

/// Longest group name: the wire's 32-byte slot less its NUL.
pub const MAX_GROUP_LEN: usize = MAX_GROUP_NAME - 1;
/// Longest private (connection) name.
pub const MAX_PRIVATE_LEN: usize = MAX_PRIVATE_NAME;
/// Longest daemon name: the wire's 20-byte slot less its NUL.
pub const MAX_DAEMON_LEN: usize = MAX_PROC_NAME - 1;
/// Longest host name spreadlogd uses as a file name in a `VhostDir`.
pub const MAX_HOST_FILE_LEN: usize = 253;
/// Longest label of a host name (DNS).
const MAX_LABEL_LEN: usize = 63;

/// Why a name was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum NameError {
    #[error("empty name")]
    Empty,
    #[error("name is {len} bytes, at most {max} allowed")]
    TooLong { len: usize, max: usize },
    #[error("byte {byte:#04x} at offset {at} is outside 0x24..0x7E")]
    IllegalByte { byte: u8, at: usize },
    #[error(
        "{CONTROL_GROUP} and names starting with {} are bookkeeping between senders and \
         collectors, not log groups",
        crate::stream::TAG_PREFIX
    )]
    Reserved,
}

/// Whether `b` may appear in a private, group or daemon name (strictly above `#`, up to `~`).
/// FNV-1a 32 (private names' host digits, `$#vhost` buckets): one definition, since a sender
/// and a collector that hashed differently would disagree.
pub fn fnv1a32(bytes: &[u8]) -> u32 {
    let mut hash: u32 = 0x811c_9dc5;
    for &b in bytes {
        hash ^= u32::from(b);
        hash = hash.wrapping_mul(0x0100_0193);
    }
    hash
}

pub fn is_name_byte(b: u8) -> bool {
    (0x24..=0x7e).contains(&b)
}

fn check(name: &[u8], max: usize) -> Result<(), NameError> {
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

/// A group name as the wire carries it (join, leave, multicast).
pub fn check_group(name: &[u8]) -> Result<(), NameError> {
    check(name, MAX_GROUP_LEN)
}

/// A group a log may be written to: a legal group that is not the control channel.
pub fn check_log_group(name: &[u8]) -> Result<(), NameError> {
    check_group(name)?;
    if is_reserved_group(name) {
        return Err(NameError::Reserved);
    }
    Ok(())
}

/// Groups no log configuration may name: the control channel (`crate::control`) and the stream
/// tags (`crate::stream`).
pub fn is_reserved_group(name: &[u8]) -> bool {
    name == CONTROL_GROUP.as_bytes() || name.starts_with(crate::stream::TAG_PREFIX.as_bytes())
}

/// A private (connection) name.
pub fn check_private(name: &[u8]) -> Result<(), NameError> {
    check(name, MAX_PRIVATE_LEN)
}

/// A daemon name.
pub fn check_daemon(name: &[u8]) -> Result<(), NameError> {
    check(name, MAX_DAEMON_LEN)
}

/// Whether `name` is a session's private group as a daemon reports it (`#private#daemon`,
/// 3..=31 bytes): the form a sender's identity takes in control records.
pub fn is_private_group(name: &[u8]) -> bool {
    (3..=MAX_GROUP_LEN).contains(&name.len())
        && name[0] == b'#'
        && name[1..].contains(&b'#')
        && name[1..].iter().all(|&b| b == b'#' || is_name_byte(b))
}

/// Clean a raw host name (a `Host` header, a ServerName, a vhost line's first token) for a use
/// whose longest name is `max_len`: strip a `:port` and one trailing dot, lower-case it into
/// `out`, and check the host rule (module docs). None when it is no usable host name or does not
/// fit. Allocates nothing.
pub fn clean_host<'o>(raw: &[u8], max_len: usize, out: &'o mut [u8]) -> Option<&'o str> {
    let mut host = raw;
    if let Some(colon) = host.iter().rposition(|&b| b == b':') {
        if !host[colon + 1..].iter().all(u8::is_ascii_digit) {
            return None;
        }
        host = &host[..colon];
    }
    let host = host.strip_suffix(b".").unwrap_or(host);
    if host.is_empty() || host.len() > max_len.min(out.len()) {
        return None;
    }
    let label_ok = |l: &[u8]| {
        (1..=MAX_LABEL_LEN).contains(&l.len())
            && l[0] != b'-'
            && l.iter().all(|&b| b.is_ascii_alphanumeric() || b == b'-')
    };
    if !host.split(|&b| b == b'.').all(label_ok) {
        return None;
    }
    let out = &mut out[..host.len()];
    for (o, b) in out.iter_mut().zip(host) {
        *o = b.to_ascii_lowercase();
    }
    std::str::from_utf8(out).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn clean(raw: &[u8], max: usize) -> Option<String> {
        clean_host(raw, max, &mut [0u8; 300]).map(str::to_owned)
    }

    #[test]
    fn one_length_rule_per_use() {
        assert!(check_group(&[b'g'; 31]).is_ok());
        assert_eq!(
            check_group(&[b'g'; 32]),
            Err(NameError::TooLong { len: 32, max: 31 })
        );
        assert_eq!(MAX_GROUP_LEN + 1, MAX_GROUP_NAME, "the slot counts the NUL");
        assert!(check_private(b"alice").is_ok());
        assert!(check_private(b"abcdefghijk").is_err());
        assert!(check_daemon(&[b'd'; 19]).is_ok());
        assert!(check_daemon(&[b'd'; 20]).is_err());
        assert_eq!(clean(&[b'a'; 31], MAX_GROUP_LEN).map(|h| h.len()), Some(31));
        assert_eq!(clean(&[b'a'; 32], MAX_GROUP_LEN), None);
        let long = [
            "a".repeat(63),
            "b".repeat(63),
            "c".repeat(63),
            "d".repeat(61),
        ]
        .join(".");
        assert_eq!(long.len(), 253);
        assert_eq!(
            clean(long.as_bytes(), MAX_HOST_FILE_LEN),
            Some(long.clone())
        );
        assert_eq!(
            clean(format!("{long}x").as_bytes(), MAX_HOST_FILE_LEN),
            None
        );
        assert_eq!(
            clean(&[b'a'; 64], MAX_HOST_FILE_LEN),
            None,
            "a label has at most 63"
        );
    }

    #[test]
    fn one_character_rule() {
        assert!(check_group(b"$~").is_ok());
        assert_eq!(
            check_group(b"#x"),
            Err(NameError::IllegalByte { byte: b'#', at: 0 })
        );
        assert!(check_group(b"sp ace").is_err());
        assert!(check_group("é".as_bytes()).is_err());
        assert_eq!(check_group(b""), Err(NameError::Empty));
        assert_eq!(
            check_private(b"a#b"),
            Err(NameError::IllegalByte { byte: b'#', at: 1 })
        );
    }

    #[test]
    fn the_control_channel_is_no_log_group() {
        assert!(check_group(CONTROL_GROUP.as_bytes()).is_ok());
        assert_eq!(
            check_log_group(CONTROL_GROUP.as_bytes()),
            Err(NameError::Reserved)
        );
        assert!(check_log_group(b"www").is_ok());
        assert!(NameError::Reserved.to_string().contains("mls.control"));
        assert_eq!(
            check_log_group(b"mls~0123456789ab~1"),
            Err(NameError::Reserved),
            "stream tags are no log groups either"
        );
        assert!(check_log_group(b"mls").is_ok());
    }

    /// Host names no use accepts: path escapes, separators, control bytes, non-ASCII, IPv6
    /// literals, bad ports, empty labels, labels starting with '-', underscores.
    const HOSTILE: &[&[u8]] = &[
        b"..",
        b".",
        b"../etc",
        b"../../x",
        b"a/b",
        b"/abs",
        b"a\\b",
        b"a\nb",
        b"a\x1bb",
        b"a\0b",
        b"a\x7fb",
        b"",
        b":80",
        b"host:abc",
        b"host:port",
        b"[::1]:80",
        b"::1",
        b"a..b",
        b".a",
        b".lead",
        b"-",
        b"-a",
        b"-x",
        b"a.-b",
        b"a.-rf",
        b"under_score",
        b"a_b",
        b"_invalid_host_",
        b"x y",
        b"a%2e%2e",
        b"\xff\xfe",
        "h\u{e9}llo".as_bytes(),
        "caf\u{e9}.fr".as_bytes(),
    ];

    #[test]
    fn hosts_are_cleaned_the_same_for_every_use() {
        for max in [MAX_GROUP_LEN, MAX_HOST_FILE_LEN] {
            assert_eq!(
                clean(b"WWW.Example.COM", max).as_deref(),
                Some("www.example.com")
            );
            assert_eq!(
                clean(b"example.com:8080", max).as_deref(),
                Some("example.com")
            );
            assert_eq!(clean(b"example.com.", max).as_deref(), Some("example.com"));
            assert_eq!(clean(b"host:", max).as_deref(), Some("host"));
            assert_eq!(clean(b"a-b.c9", max).as_deref(), Some("a-b.c9"));
            for bad in HOSTILE {
                assert_eq!(clean(bad, max), None, "{:?}", String::from_utf8_lossy(bad));
            }
        }
        // Into a buffer too small for it: refused, never cut.
        assert_eq!(clean_host(b"abcdef", 253, &mut [0u8; 4]), None);
    }

    #[test]
    fn private_groups() {
        assert!(is_private_group(b"#a#h"));
        assert!(is_private_group(b"#a1b2c#web1"));
        assert!(!is_private_group(b"##"));
        assert!(!is_private_group(b"plain"));
        assert!(!is_private_group(b"#a b#h"));
        assert!(!is_private_group(&[b'#'; 32]));
    }
}
