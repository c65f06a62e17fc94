//! Timestamp rewriting: the first `[…]` span of a line is replaced by the collector's receive time in
//! local time, so a farm's merged log is monotonic despite clock skew between web servers.
//! `CommonLogFormat` gives `[dd/Mon/yyyy:HH:MM:SS +hhmm]` with the real zone offset (the original
//! printed `+0000`); any other format goes through strftime(3) and replaces the brackets too.

use std::ffi::CString;

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TimestampFormat {
    CommonLogFormat,
    Strftime(CString),
}

impl TimestampFormat {
    pub fn strftime(fmt: &str) -> Result<TimestampFormat, String> {
        if fmt.is_empty() {
            return Err("empty strftime format".into());
        }
        if fmt.len() > 256 {
            return Err("strftime format longer than 256 bytes".into());
        }
        // A format without a conversion would put the same text into every line (a typo such as
        // `RewriteTimestamp = Common` is the usual cause).
        if !has_conversion(fmt) {
            return Err(format!(
                "strftime format {fmt:?} has no %-conversion: every line would get this fixed text \
                 (did you mean CommonLogFormat?)"
            ));
        }
        CString::new(fmt)
            .map(TimestampFormat::Strftime)
            .map_err(|_| "NUL byte in format".into())
    }
}

/// Does `fmt` hold a strftime conversion (a `%` followed by anything but another `%`)?
fn has_conversion(fmt: &str) -> bool {
    let mut chars = fmt.chars();
    while let Some(c) = chars.next() {
        if c == '%' {
            match chars.next() {
                Some('%') => {}
                Some(_) => return true,
                None => return false,
            }
        }
    }
    false
}

const MONTHS: [&str; 12] = [
    "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
];

/// Local broken-down time of `secs` (Unix time).
fn local_tm(secs: i64) -> libc::tm {
    let t: libc::time_t = secs as libc::time_t;
    // SAFETY: `tm` is plain old data, so all-zero is a valid value; localtime_r only writes into it
    // and reads `t`, both valid for the call; it is the thread-safe variant.
    unsafe {
        let mut tm: libc::tm = std::mem::zeroed();
        libc::localtime_r(&t, &mut tm);
        tm
    }
}

/// Format `secs` in local time.
pub fn format_time(format: &TimestampFormat, secs: i64) -> Vec<u8> {
    let tm = local_tm(secs);
    match format {
        TimestampFormat::CommonLogFormat => {
            let off = tm.tm_gmtoff / 60;
            let (sign, off) = if off < 0 { ('-', -off) } else { ('+', off) };
            format!(
                "[{:02}/{}/{:04}:{:02}:{:02}:{:02} {}{:02}{:02}]",
                tm.tm_mday,
                MONTHS[tm.tm_mon.clamp(0, 11) as usize],
                tm.tm_year + 1900,
                tm.tm_hour,
                tm.tm_min,
                tm.tm_sec,
                sign,
                off / 60,
                off % 60
            )
            .into_bytes()
        }
        TimestampFormat::Strftime(fmt) => {
            let mut buf = vec![0u8; 1024];
            // SAFETY: buf is writable for buf.len() bytes, fmt is NUL-terminated, tm is initialised;
            // strftime writes at most `max` bytes and returns how many (0 if it did not fit).
            let n =
                unsafe { libc::strftime(buf.as_mut_ptr().cast(), buf.len(), fmt.as_ptr(), &tm) };
            buf.truncate(n);
            buf
        }
    }
}

/// Rewrites timestamps, formatting at most once per second.
#[derive(Debug)]
pub struct Rewriter {
    format: TimestampFormat,
    cached_secs: i64,
    cached: Vec<u8>,
}

impl Rewriter {
    pub fn new(format: TimestampFormat) -> Rewriter {
        Rewriter {
            format,
            cached_secs: i64::MIN,
            cached: Vec::new(),
        }
    }

    /// Append `line` to `out` with its first `[…]` replaced by the time `now` (Unix seconds);
    /// a line without such a span is appended unchanged.
    pub fn rewrite_into(&mut self, line: &[u8], now: i64, out: &mut Vec<u8>) {
        let Some(open) = memchr(b'[', line) else {
            out.extend_from_slice(line);
            return;
        };
        let Some(close) = memchr(b']', &line[open..]).map(|c| open + c) else {
            out.extend_from_slice(line);
            return;
        };
        if now != self.cached_secs {
            self.cached = format_time(&self.format, now);
            self.cached_secs = now;
        }
        out.extend_from_slice(&line[..open]);
        out.extend_from_slice(&self.cached);
        out.extend_from_slice(&line[close + 1..]);
    }
}

fn memchr(b: u8, s: &[u8]) -> Option<usize> {
    s.iter().position(|&c| c == b)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn clf_has_the_real_offset() {
        let secs = 1_700_000_000; // 2023-11-14 22:13:20 UTC
        let tm = local_tm(secs);
        let s = String::from_utf8(format_time(&TimestampFormat::CommonLogFormat, secs)).unwrap();
        assert_eq!(s.len(), "[14/Nov/2023:22:13:20 +0000]".len(), "{s}");
        let off = tm.tm_gmtoff / 60;
        let want = format!(
            "{}{:02}{:02}]",
            if off < 0 { '-' } else { '+' },
            off.abs() / 60,
            off.abs() % 60
        );
        assert!(s.ends_with(&want), "{s} vs {want}");
        assert!(s.contains("/Nov/2023:") || s.contains("/2023:"), "{s}");
    }

    #[test]
    fn first_bracket_span_is_replaced() {
        let mut r = Rewriter::new(TimestampFormat::strftime("<%Y>").unwrap());
        let mut out = Vec::new();
        r.rewrite_into(
            b"1.2.3.4 - - [10/Oct/2000:13:55:36 -0700] \"GET /[x] HTTP/1.0\" 200\n",
            1_700_000_000,
            &mut out,
        );
        let year = String::from_utf8(format_time(
            &TimestampFormat::strftime("%Y").unwrap(),
            1_700_000_000,
        ))
        .unwrap();
        assert_eq!(
            out,
            format!("1.2.3.4 - - <{year}> \"GET /[x] HTTP/1.0\" 200\n").into_bytes()
        );
    }

    #[test]
    fn a_format_without_a_conversion_is_refused() {
        for bad in ["Common", "[fixed]", "100%%", "50%"] {
            let e = TimestampFormat::strftime(bad).unwrap_err();
            assert!(e.contains("no %-conversion"), "{bad}: {e}");
        }
        for good in ["%Y", "[%d/%b/%Y %H]", "%%%s"] {
            assert!(TimestampFormat::strftime(good).is_ok(), "{good}");
        }
    }

    #[test]
    fn lines_without_a_span_are_unchanged() {
        let mut r = Rewriter::new(TimestampFormat::CommonLogFormat);
        for l in [
            &b"no brackets\n"[..],
            b"open [ only\n",
            b"close ] then [\n",
            b"",
        ] {
            let mut out = Vec::new();
            r.rewrite_into(l, 5, &mut out);
            assert_eq!(out, l);
        }
    }
}
