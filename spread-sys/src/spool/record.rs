//! The spool's record format (CONTRACTS §5), pure: encoding, checksums and decoding over bytes.
//!
//! Append-only records, each with a length, a checksum, the daemon id, the group and the line.
//! A torn or corrupt tail is cut off (and reported), never fatal.
//!
//! # Record format (all integers little-endian)
//!
//! | Offset | Size | Field |
//! |---|---|---|
//! | 0 | 4 | magic `b"MLS1"` |
//! | 4 | 4 | `len`: payload length (bytes 12 .. 12+len) |
//! | 8 | 4 | CRC-32 (IEEE, as zlib) of the payload |
//! | 12 | 4 | daemon id (which configured daemon/target the line was meant for) |
//! | 16 | 1 | `group_len` (0..=31) |
//! | 17 | group_len | group name |
//! | 17+group_len | rest | the line, as given (usually with its `\n`) |
//!
//! A line that was already numbered and sent (a sender's acknowledgement window spooled at exit,
//! CONTRACTS "Acknowledged delivery") keeps its stream and number, in a record with magic
//! `b"MLS2"` whose payload starts with the daemon id, then the stream id (8 bytes) and the line's
//! number (8 bytes), then `group_len`, the group and the line as above. Replay resends it under
//! that stream and number, so a collector recognises it.
//!
//! A record is written with one write(2) on an `O_APPEND` descriptor, so concurrent appenders (threads
//! or processes) never interleave. A crash can leave a torn last record, a full disk a short one
//! followed by good records (an append that gets a short write tries the rest once, to report the
//! OS's reason, e.g. `ENOSPC`, and completes the record only if nothing landed in between). [`decode_all`] stops at the first record whose magic, length or
//! checksum is wrong and reports that tail; [`super::Spool::replay`] skips to the next intact record (if
//! any) and reports what it dropped in [`super::ReplaySummary::cut`].

use crate::wire::constants::MAX_GROUP_NAME;

pub(super) const MAGIC: [u8; 4] = *b"MLS1";
/// Magic of a record that keeps its line's stream and number.
pub(super) const MAGIC_NUMBERED: [u8; 4] = *b"MLS2";
const ORIGIN_LEN: usize = 16;

/// Whether `b` starts with a record magic of either kind.
pub(super) fn is_magic(b: &[u8]) -> bool {
    b.get(..4)
        .is_some_and(|m| m == MAGIC || m == MAGIC_NUMBERED)
}
/// Bytes before the payload: magic, length, checksum.
pub const RECORD_HEADER_LEN: usize = 12;
/// Largest payload accepted when reading: a longer length field means corruption.
pub const MAX_PAYLOAD: usize = 4 + ORIGIN_LEN + 1 + MAX_GROUP_NAME + 1024 * 1024;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SpoolRecord {
    pub daemon_id: u32,
    pub group: Vec<u8>,
    pub line: Vec<u8>,
    /// The stream and number the line was sent under, if it was sent before it was spooled.
    pub origin: Option<Origin>,
}

/// Which stream's line a spooled record is, and its number there.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Origin {
    pub stream: crate::stream::StreamId,
    pub number: u64,
}

const CRC_TABLE: [u32; 256] = {
    let mut table = [0u32; 256];
    let mut i = 0;
    while i < 256 {
        let mut c = i as u32;
        let mut k = 0;
        while k < 8 {
            c = if c & 1 != 0 {
                0xEDB8_8320 ^ (c >> 1)
            } else {
                c >> 1
            };
            k += 1;
        }
        table[i] = c;
        i += 1;
    }
    table
};

/// CRC-32 (IEEE 802.3, reflected, as zlib's `crc32`).
pub fn crc32(bytes: &[u8]) -> u32 {
    !bytes.iter().fold(!0u32, |c, &b| {
        CRC_TABLE[((c ^ b as u32) & 0xff) as usize] ^ (c >> 8)
    })
}

/// Encode one record (the caller writes it with one write(2) on an O_APPEND file). A group longer
/// than 31 bytes is cut (group names never are: the wire cannot carry them).
pub fn encode_record(daemon_id: u32, group: &[u8], line: &[u8], out: &mut Vec<u8>) {
    encode_any(daemon_id, group, line, None, out);
}

/// [`encode_record`] of a line that keeps its stream and number (`MLS2`) when `origin` is given.
pub fn encode_any(
    daemon_id: u32,
    group: &[u8],
    line: &[u8],
    origin: Option<Origin>,
    out: &mut Vec<u8>,
) {
    let group = &group[..group.len().min(MAX_GROUP_NAME - 1)];
    let extra = if origin.is_some() { ORIGIN_LEN } else { 0 };
    let payload_len = 4 + extra + 1 + group.len() + line.len();
    let start = out.len();
    out.extend_from_slice(if origin.is_some() {
        &MAGIC_NUMBERED
    } else {
        &MAGIC
    });
    out.extend_from_slice(&(payload_len as u32).to_le_bytes());
    out.extend_from_slice(&[0; 4]);
    out.extend_from_slice(&daemon_id.to_le_bytes());
    if let Some(o) = origin {
        out.extend_from_slice(&o.stream.bits().to_le_bytes());
        out.extend_from_slice(&o.number.to_le_bytes());
    }
    out.push(group.len() as u8);
    out.extend_from_slice(group);
    out.extend_from_slice(line);
    let crc = crc32(&out[start + RECORD_HEADER_LEN..]);
    out[start + 8..start + 12].copy_from_slice(&crc.to_le_bytes());
}

/// Why decoding stopped before the end of the bytes.
pub(super) fn decode_one(bytes: &[u8]) -> Result<Option<(SpoolRecord, usize)>, String> {
    if bytes.is_empty() {
        return Ok(None);
    }
    let Some(head) = bytes.get(..RECORD_HEADER_LEN) else {
        return Err(format!("torn record header ({} bytes)", bytes.len()));
    };
    let numbered = match &head[..4] {
        m if m == MAGIC => false,
        m if m == MAGIC_NUMBERED => true,
        _ => return Err("bad record magic".into()),
    };
    let extra = if numbered { ORIGIN_LEN } else { 0 };
    let len = u32::from_le_bytes(head[4..8].try_into().unwrap()) as usize;
    if !(5 + extra..=MAX_PAYLOAD).contains(&len) {
        return Err(format!("implausible record length {len}"));
    }
    let Some(payload) = bytes.get(RECORD_HEADER_LEN..RECORD_HEADER_LEN + len) else {
        return Err(format!(
            "torn record: {} of {len} payload bytes",
            bytes.len() - RECORD_HEADER_LEN
        ));
    };
    if crc32(payload) != u32::from_le_bytes(head[8..12].try_into().unwrap()) {
        return Err("checksum mismatch".into());
    }
    let origin = numbered.then(|| Origin {
        stream: crate::stream::StreamId::from_bits(u64::from_le_bytes(
            payload[4..12].try_into().unwrap(),
        )),
        number: u64::from_le_bytes(payload[12..20].try_into().unwrap()),
    });
    let rest = &payload[4 + extra..];
    let group_len = rest[0] as usize;
    if group_len >= MAX_GROUP_NAME || 1 + group_len > rest.len() {
        return Err(format!("bad group length {group_len}"));
    }
    let record = SpoolRecord {
        daemon_id: u32::from_le_bytes(payload[..4].try_into().unwrap()),
        group: rest[1..1 + group_len].to_vec(),
        line: rest[1 + group_len..].to_vec(),
        origin,
    };
    Ok(Some((record, RECORD_HEADER_LEN + len)))
}

/// Decode one record at the start of `bytes`: Ok(None) = empty, Err = torn or corrupt (why).
pub fn decode_record(bytes: &[u8]) -> Result<Option<(SpoolRecord, usize)>, String> {
    decode_one(bytes)
}

/// What reading a spool segment found.
#[derive(Debug, Default)]
pub struct SpoolContents {
    pub records: Vec<SpoolRecord>,
    /// Offset where a torn or corrupt tail starts (the good records end there) and why.
    pub torn_tail: Option<(u64, String)>,
}

/// Decode records from bytes (stops at the first bad record).
pub fn decode_all(bytes: &[u8]) -> SpoolContents {
    let mut contents = SpoolContents::default();
    let mut at = 0;
    loop {
        match decode_one(&bytes[at..]) {
            Ok(None) => return contents,
            Ok(Some((rec, used))) => {
                contents.records.push(rec);
                at += used;
            }
            Err(why) => {
                contents.torn_tail = Some((at as u64, why));
                return contents;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn crc32_known_values() {
        assert_eq!(crc32(b""), 0);
        assert_eq!(crc32(b"123456789"), 0xCBF4_3926);
        assert_eq!(
            crc32(b"The quick brown fox jumps over the lazy dog"),
            0x414F_A339
        );
    }

    #[test]
    fn record_round_trip_and_layout() {
        let mut v = Vec::new();
        encode_record(7, b"logs", b"GET /\n", &mut v);
        assert_eq!(&v[..4], b"MLS1");
        assert_eq!(
            u32::from_le_bytes(v[4..8].try_into().unwrap()),
            4 + 1 + 4 + 6
        );
        assert_eq!(&v[12..16], &7u32.to_le_bytes());
        assert_eq!(v[16], 4);
        let c = decode_all(&v);
        assert_eq!(
            c.records,
            vec![SpoolRecord {
                daemon_id: 7,
                group: b"logs".to_vec(),
                line: b"GET /\n".to_vec(),
                origin: None,
            }]
        );
        assert!(c.torn_tail.is_none());
    }

    #[test]
    fn numbered_records_keep_stream_and_number_beside_plain_ones() {
        let origin = Origin {
            stream: crate::stream::StreamId::from_bits(0xfeed),
            number: 1 << 40,
        };
        let mut v = Vec::new();
        encode_record(1, b"a", b"plain\n", &mut v);
        encode_any(2, b"www", b"sent before\n", Some(origin), &mut v);
        let c = decode_all(&v);
        assert!(c.torn_tail.is_none());
        assert_eq!(c.records[0].origin, None);
        assert_eq!(
            c.records[1],
            SpoolRecord {
                daemon_id: 2,
                group: b"www".to_vec(),
                line: b"sent before\n".to_vec(),
                origin: Some(origin),
            }
        );
        for cut in 0..v.len() {
            assert!(decode_all(&v[..cut]).records.len() <= 1);
        }
    }

    /// Two records (daemon, group, line) back to back, and where the second starts.
    fn two_records(a: (u32, &[u8], &[u8]), b: (u32, &[u8], &[u8])) -> (Vec<u8>, usize) {
        let mut v = Vec::new();
        encode_record(a.0, a.1, a.2, &mut v);
        let first = v.len();
        encode_record(b.0, b.1, b.2, &mut v);
        (v, first)
    }

    #[test]
    fn torn_tail_at_every_offset() {
        let (v, first) = two_records((1, b"a", b"first line\n"), (2, b"b", b"second line\n"));
        for cut in 0..v.len() {
            let c = decode_all(&v[..cut]);
            let whole = usize::from(cut >= first);
            assert_eq!(c.records.len(), whole, "cut at {cut}");
            let boundary = cut == 0 || cut == first;
            assert_eq!(c.torn_tail.is_some(), !boundary, "cut at {cut}");
            if let Some((at, _)) = c.torn_tail {
                assert_eq!(at as usize, if cut > first { first } else { 0 });
            }
        }
        assert_eq!(decode_all(&v).records.len(), 2);
    }

    #[test]
    fn corrupt_checksum_and_magic() {
        let (v, good) = two_records((1, b"a", b"x\n"), (1, b"a", b"y\n"));
        let mut bad = v.clone();
        *bad.last_mut().unwrap() ^= 1;
        let c = decode_all(&bad);
        assert_eq!(
            (c.records.len(), c.torn_tail.clone().unwrap()),
            (1, (good as u64, "checksum mismatch".into()))
        );
        let mut bad = v.clone();
        bad[good] = b'X';
        assert_eq!(decode_all(&bad).torn_tail.unwrap().1, "bad record magic");
        let mut bad = v;
        bad[good + 4..good + 8].copy_from_slice(&u32::MAX.to_le_bytes());
        assert!(
            decode_all(&bad)
                .torn_tail
                .unwrap()
                .1
                .contains("implausible")
        );
    }
}
