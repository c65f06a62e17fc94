//! Vhost splitting (`VhostDir`): the first space-separated token of a line is the host; the rest is
//! written to `VhostDir/<host>`. The host is cleaned by the shared host rule
//! (`spread_sys::names::clean_host`: lower-cased, `:port` stripped, DNS labels, none starting with
//! `-`, at most 253 bytes), so no name can leave the directory or look like an option. Anything
//! else goes to [`FALLBACK_FILE`] inside VhostDir, a name no cleaned host can have (it contains `_`).

use spread_sys::names::{self, MAX_HOST_FILE_LEN};

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
    names::clean_host(raw, MAX_HOST_FILE_LEN, &mut [0u8; MAX_HOST_FILE_LEN]).map(str::to_owned)
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
        // The host rule itself is spread_sys::names' (tested there with every hostile form);
        // here: what would escape VhostDir or look like an option, and the 253-byte limit.
        for h in [&b"../../x"[..], b"/abs", b"a/b", b"-x", b"a.-rf", b".."] {
            assert_eq!(clean_host(h), None, "{:?}", String::from_utf8_lossy(h));
        }
        assert_eq!(clean_host("a".repeat(300).as_bytes()), None);
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
