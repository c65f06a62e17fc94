//! Vhost splitting (`VhostDir`): the first space-separated token of a line is the host; the rest is
//! written to `VhostDir/<host>`. The host is cleaned so that no name can leave the directory:
//! lower-cased, `:port` stripped, and then it must be a valid host name (letters, digits, `-`, `.`,
//! labels not empty, at most 253 bytes). Anything else goes to [`FALLBACK_FILE`] inside VhostDir, a
//! name no cleaned host can have (it contains `_`).

/// Where lines with an unusable host go, inside VhostDir. `_` never appears in a cleaned host.
pub const FALLBACK_FILE: &str = "_invalid_host_";

/// Split a vhost line into (host token, rest). No space: the whole line is the "rest" and the host
/// is missing (the original ran off the end of the buffer here).
pub fn split_line(line: &[u8]) -> (Option<&[u8]>, &[u8]) {
    match line.iter().position(|&b| b == b' ') {
        Some(i) => (Some(&line[..i]), &line[i + 1..]),
        None => (None, line),
    }
}

/// The file name for a host token: the cleaned host, or [`FALLBACK_FILE`].
pub fn file_name_for(host: Option<&[u8]>) -> String {
    host.and_then(clean_host)
        .unwrap_or_else(|| FALLBACK_FILE.to_owned())
}

/// Lower-case, strip `:port`, validate. `None` if it is not a host name we can use as a file name.
pub fn clean_host(raw: &[u8]) -> Option<String> {
    let host = match raw.iter().rposition(|&b| b == b':') {
        Some(i) if i > 0 && raw[i + 1..].iter().all(u8::is_ascii_digit) => &raw[..i],
        Some(_) => return None,
        None => raw,
    };
    // One trailing dot (fully qualified form) names the same host.
    let host = host.strip_suffix(b".").unwrap_or(host);
    if host.is_empty() || host.len() > 253 {
        return None;
    }
    for label in host.split(|&b| b == b'.') {
        if label.is_empty() || label.len() > 63 {
            return None;
        }
        if !label
            .iter()
            .all(|&b| b.is_ascii_alphanumeric() || b == b'-')
        {
            return None;
        }
    }
    Some(String::from_utf8_lossy(host).to_ascii_lowercase())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn good_hosts() {
        assert_eq!(
            clean_host(b"WWW.Example.COM").as_deref(),
            Some("www.example.com")
        );
        assert_eq!(
            clean_host(b"example.com:8080").as_deref(),
            Some("example.com")
        );
        assert_eq!(clean_host(b"example.com.").as_deref(), Some("example.com"));
        assert_eq!(clean_host(b"a-b.c9").as_deref(), Some("a-b.c9"));
        assert_eq!(clean_host(b"localhost").as_deref(), Some("localhost"));
    }

    #[test]
    fn hostile_hosts_are_refused() {
        let long = "a".repeat(300);
        let bad: &[&[u8]] = &[
            b"..",
            b".",
            b"../etc",
            b"../../x",
            b"a/b",
            b"/abs",
            b"a\nb",
            b"a\x1bb",
            b"a\0b",
            b"",
            b":80",
            b"host:abc",
            b"[::1]:80",
            b"a..b",
            "h\u{e9}llo".as_bytes(),
            b"under_score",
            b"x y",
            long.as_bytes(),
            b"\xff\xfe",
        ];
        for h in bad {
            assert_eq!(clean_host(h), None, "{:?}", String::from_utf8_lossy(h));
        }
        assert_eq!(clean_host(&[b'a'; 64]), None);
    }

    #[test]
    fn fallback_is_not_a_host_name() {
        assert_eq!(clean_host(FALLBACK_FILE.as_bytes()), None);
        assert_eq!(file_name_for(Some(b"../x")), FALLBACK_FILE);
        assert_eq!(file_name_for(None), FALLBACK_FILE);
    }

    #[test]
    fn split() {
        assert_eq!(
            split_line(b"h.com GET /\n"),
            (Some(&b"h.com"[..]), &b"GET /\n"[..])
        );
        assert_eq!(split_line(b"nospace\n"), (None, &b"nospace\n"[..]));
    }
}
