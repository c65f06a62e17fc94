//! Host names for `$#hostname` and `$#vhost` (CONTRACTS §4): cleaning a raw `Host` header,
//! matching it against a virtual host's names, and the stable vhost bucket hash.
//!
//! Everything works on a fixed stack buffer: the request path allocates nothing here.

use spread_sys::names::{self, MAX_GROUP_LEN};

/// A cleaned host: lower-case letters, digits, `-` and `.`, 1..=31 bytes, no empty label.
#[derive(Clone, Copy)]
pub struct CleanHost {
    buf: [u8; MAX_GROUP_LEN],
    len: u8,
}

impl CleanHost {
    pub fn as_str(&self) -> &str {
        // Only ASCII bytes are ever stored.
        std::str::from_utf8(&self.buf[..self.len as usize]).unwrap_or("")
    }
}

impl std::fmt::Debug for CleanHost {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_tuple("CleanHost").field(&self.as_str()).finish()
    }
}

impl PartialEq<&str> for CleanHost {
    fn eq(&self, other: &&str) -> bool {
        self.as_str() == *other
    }
}

/// Clean a raw `Host` header (or a ServerName) for use as a group: the shared host rule
/// (`spread_sys::names::clean_host`: `:port` and one trailing dot dropped, lower-case, DNS labels,
/// none starting with `-`), at most 31 bytes, and a legal log group (never the control channel).
/// The caller falls back to the vhost's ServerName.
pub fn clean(raw: &[u8]) -> Option<CleanHost> {
    let mut out = CleanHost {
        buf: [0; MAX_GROUP_LEN],
        len: 0,
    };
    let len = names::clean_host(raw, MAX_GROUP_LEN, &mut out.buf)?.len();
    names::check_log_group(&out.buf[..len]).ok()?;
    out.len = len as u8;
    Some(out)
}

/// Apache-style case-insensitive wildcard match (`*` any run, `?` one byte), as ServerAlias uses.
pub fn wildcard_match(pattern: &str, host: &str) -> bool {
    let (p, h) = (pattern.as_bytes(), host.as_bytes());
    let (mut pi, mut hi) = (0usize, 0usize);
    let mut star: Option<(usize, usize)> = None;
    while hi < h.len() {
        if pi < p.len() && (p[pi] == b'?' || p[pi].eq_ignore_ascii_case(&h[hi])) {
            pi += 1;
            hi += 1;
        } else if pi < p.len() && p[pi] == b'*' {
            star = Some((pi, hi));
            pi += 1;
        } else if let Some((sp, sh)) = star {
            pi = sp + 1;
            hi = sh + 1;
            star = Some((sp, sh + 1));
        } else {
            return false;
        }
    }
    p[pi..].iter().all(|&c| c == b'*')
}

/// The host for `$#hostname`/`$#vhost` (and SpreadErrorLog): the request's host, cleaned, if
/// it names the line's virtual host (`names_vhost`) or the admin trusts the raw Host header;
/// else the vhost's ServerName; else `unknown-host`.
pub fn resolve(
    raw: Option<&[u8]>,
    trust_raw: bool,
    names_vhost: impl Fn(&str) -> bool,
    server_name: Option<&[u8]>,
) -> CleanHost {
    if let Some(h) = raw.and_then(clean)
        && (trust_raw || names_vhost(h.as_str()))
    {
        return h;
    }
    server_name
        .and_then(clean)
        .or_else(|| clean(b"unknown-host"))
        .expect("unknown-host is a clean host")
}

/// The stable `$#vhost` hash: 32-bit FNV-1a over the cleaned host's bytes (offset basis
/// 2166136261, prime 16777619). Same result on every machine, architecture and version.
pub use spread_sys::names::fnv1a32;

/// The `$#vhost` bucket of a cleaned host among `buckets` (>= 1).
pub fn vhost_bucket(host: &CleanHost, buckets: u32) -> u32 {
    fnv1a32(host.as_str().as_bytes()) % buckets.max(1)
}

/// Writes `prefix` + decimal bucket into `out` and returns it as a group name.
pub fn bucket_group<'a>(prefix: &str, bucket: u32, out: &'a mut [u8; 48]) -> &'a str {
    use std::io::Write;
    let mut cursor = std::io::Cursor::new(&mut out[..]);
    let _ = write!(cursor, "{prefix}{bucket}");
    let n = cursor.position() as usize;
    std::str::from_utf8(&out[..n]).unwrap_or("0")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn resolve_prefers_a_host_of_the_vhost_then_its_server_name() {
        let vhost = |h: &str| h == "www.example.com";
        assert_eq!(
            resolve(Some(b"WWW.example.com:80"), false, vhost, Some(b"main")),
            "www.example.com"
        );
        assert_eq!(
            resolve(Some(b"other.example"), false, vhost, Some(b"Main.Example")),
            "main.example"
        );
        assert_eq!(
            resolve(Some(b"other.example"), true, vhost, Some(b"main")),
            "other.example"
        );
        assert_eq!(resolve(Some(b"../x"), true, vhost, Some(b"main")), "main");
        assert_eq!(resolve(None, false, vhost, None), "unknown-host");
        assert_eq!(
            resolve(Some(b"mls.control"), true, vhost, Some(b"bad host")),
            "unknown-host"
        );
    }

    #[test]
    fn the_control_group_is_no_host_group() {
        assert!(clean(b"mls.control").is_none());
        assert!(clean(b"MLS.Control:80").is_none());
    }

    #[test]
    fn cleans_ordinary_hosts() {
        assert_eq!(clean(b"WWW.Example.COM").unwrap(), "www.example.com");
        assert_eq!(clean(b"www.example.com:8080").unwrap(), "www.example.com");
        assert_eq!(clean(b"example.com.").unwrap(), "example.com");
        assert_eq!(clean(b"a-b.c").unwrap(), "a-b.c");
        assert_eq!(clean(b"10.0.0.1:80").unwrap(), "10.0.0.1");
    }

    #[test]
    fn refuses_hostile_hosts() {
        // The host rule itself is spread_sys::names' (tested there with every hostile form);
        // here: a group's 31-byte limit, and a few forms through this module's entry point.
        for bad in [&b"../etc"[..], b"a b", b"-a", b"[::1]:80", b"a_b"] {
            assert!(clean(bad).is_none(), "{:?}", String::from_utf8_lossy(bad));
        }
        let long = "a".repeat(32);
        assert!(clean(long.as_bytes()).is_none());
        assert_eq!(
            clean("a".repeat(31).as_bytes()).unwrap(),
            "a".repeat(31).as_str()
        );
        assert!(clean("x".repeat(100_000).as_bytes()).is_none());
    }

    #[test]
    fn wildcards_match_like_apache() {
        assert!(wildcard_match("*.example.com", "www.example.com"));
        assert!(wildcard_match("*.EXAMPLE.com", "a.b.example.com"));
        assert!(!wildcard_match("*.example.com", "example.com"));
        assert!(wildcard_match("www?.example.com", "www1.example.com"));
        assert!(!wildcard_match("www?.example.com", "www12.example.com"));
        assert!(wildcard_match("*", "anything"));
        assert!(wildcard_match("exact", "EXACT"));
    }

    #[test]
    fn fnv1a_reference_values() {
        // Published FNV-1a 32 test vectors.
        assert_eq!(fnv1a32(b""), 0x811c9dc5);
        assert_eq!(fnv1a32(b"a"), 0xe40c292c);
        assert_eq!(fnv1a32(b"foobar"), 0xbf9cf968);
    }

    #[test]
    fn buckets_are_stable_and_in_range() {
        let h = clean(b"www.example.com").unwrap();
        let b = vhost_bucket(&h, 32);
        assert!(b < 32);
        assert_eq!(b, fnv1a32(b"www.example.com") % 32);
        let mut buf = [0u8; 48];
        assert_eq!(bucket_group("apache-", 7, &mut buf), "apache-7");
        assert_eq!(bucket_group("", 31, &mut buf), "31");
    }
}
