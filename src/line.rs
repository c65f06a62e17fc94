//! Building the message body of one log line: mod_log_config's pieces copied once into a reusable
//! buffer, an optional `host ` prefix, and truncation with a visible marker (CONTRACTS §3).

/// Largest line: a message to the log group and the stream tag, 143152 - 2 × 32 (CONTRACTS
/// "Names").
pub const MAX_BODY: usize = spread_sys::stream::MAX_LINE;

/// What ends a truncated line (it keeps the line's newline, so files stay line-oriented).
pub const TRUNCATION_MARKER: &[u8] = b"...[mod_log_spread: line truncated]\n";

/// Fill `out` with `prefix` followed by the pieces, cut to `max` bytes with the marker.
/// Returns true when the line was truncated.
pub fn assemble<'p>(
    out: &mut Vec<u8>,
    prefix: &[&[u8]],
    pieces: impl Iterator<Item = &'p [u8]>,
    max: usize,
) -> bool {
    out.clear();
    for p in prefix {
        out.extend_from_slice(p);
    }
    for piece in pieces {
        push_piece(out, piece);
    }
    truncate(out, max)
}

/// mod_log_config hands over many one- and two-byte pieces (`" "`, `"\" "`): those are pushed
/// inline instead of through a call into memcpy each.
#[inline]
fn push_piece(out: &mut Vec<u8>, piece: &[u8]) {
    match piece {
        [b] => out.push(*b),
        [a, b] => out.extend_from_slice(&[*a, *b]),
        _ => out.extend_from_slice(piece),
    }
}

/// Cut `line` to at most `max` bytes, ending with the marker. Returns true when it cut.
pub fn truncate(line: &mut Vec<u8>, max: usize) -> bool {
    if line.len() <= max {
        return false;
    }
    let keep = max.saturating_sub(TRUNCATION_MARKER.len());
    line.truncate(keep);
    line.extend_from_slice(&TRUNCATION_MARKER[..TRUNCATION_MARKER.len().min(max)]);
    true
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn short_lines_are_copied_whole() {
        let mut out = Vec::new();
        let pieces: [&[u8]; 3] = [b"GET ", b"/x", b"\n"];
        assert!(!assemble(
            &mut out,
            &[b"h.example ", b""],
            pieces.into_iter(),
            MAX_BODY
        ));
        assert_eq!(out, b"h.example GET /x\n");
    }

    #[test]
    fn long_lines_are_cut_with_marker() {
        let big = vec![b'x'; MAX_BODY + 10];
        let mut out = Vec::new();
        assert!(assemble(
            &mut out,
            &[],
            [&big[..], b"\n"].into_iter(),
            MAX_BODY
        ));
        assert_eq!(out.len(), MAX_BODY);
        assert!(out.ends_with(TRUNCATION_MARKER));
        assert!(out.starts_with(b"xxxx"));
    }

    #[test]
    fn exact_fit_is_not_cut() {
        let mut line = vec![b'y'; 100];
        assert!(!truncate(&mut line, 100));
        assert!(truncate(&mut line, 99));
        assert_eq!(line.len(), 99);
    }
}
