//! The 48-byte message header and the endian-marker rules (PROTOCOL.md §4).
//!
//! We always write little-endian with the marker bits `0x80000080` set in `type` and `hint`, as x86
//! libspread and Spread daemons do, whatever the host. A reader decides the order of each of the two
//! marked words from its own marker: `type` governs `num_groups`/`data_len` (and membership bodies),
//! `hint` only itself, because the daemon forwards it untouched from whoever created it.

use super::constants::{ENDIAN_MARKER, HEADER_LEN, MAX_GROUP_NAME};
use super::name::NameField;

/// A decoded header, integers already in host order.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Header {
    /// `type` with the endian marker bits cleared.
    pub service_type: u32,
    /// Sender's private group (data, requests) or group name (membership).
    pub name: NameField,
    pub num_groups: i32,
    /// The hint exactly as its 4 bytes were on the wire: the daemon forwards it verbatim and it keeps
    /// the order of whoever created it.
    pub hint: [u8; 4],
    pub data_len: i32,
    /// The header was written in the other byte order (big-endian peer).
    pub foreign_endian: bool,
}

/// Whether a marked 32-bit word (as its 4 wire bytes) was written little-endian. The marker pattern
/// `80 00 00 80` is byte-palindromic, so the test works before knowing the order.
pub fn is_little_endian_word(bytes: [u8; 4]) -> bool {
    u32::from_le_bytes(bytes) & ENDIAN_MARKER == ENDIAN_MARKER
}

/// Read a 32-bit word in the order given by a marker test.
pub fn read_u32(bytes: [u8; 4], little_endian: bool) -> u32 {
    if little_endian {
        u32::from_le_bytes(bytes)
    } else {
        u32::from_be_bytes(bytes)
    }
}

fn word(bytes: &[u8], at: usize) -> [u8; 4] {
    [bytes[at], bytes[at + 1], bytes[at + 2], bytes[at + 3]]
}

impl Header {
    /// A header in our own byte order with a zero hint (set `hint` for a `mess_type`).
    pub fn new(service_type: u32, name: NameField, num_groups: i32, data_len: i32) -> Header {
        Header {
            service_type,
            name,
            num_groups,
            hint: [0; 4],
            data_len,
            foreign_endian: false,
        }
    }

    /// Decode, swapping type/num_groups/data_len if the marker says the writer had the other order.
    pub fn decode(bytes: &[u8; HEADER_LEN]) -> Header {
        let type_word = word(bytes, 0);
        let le = is_little_endian_word(type_word);
        let mut name = [0u8; MAX_GROUP_NAME];
        name.copy_from_slice(&bytes[4..36]);
        Header {
            service_type: read_u32(type_word, le) & !ENDIAN_MARKER,
            name: NameField(name),
            num_groups: read_u32(word(bytes, 36), le) as i32,
            hint: word(bytes, 40),
            data_len: read_u32(word(bytes, 44), le) as i32,
            foreign_endian: !le,
        }
    }
    /// Decode from the first 48 bytes of a slice (None if shorter).
    pub fn decode_prefix(bytes: &[u8]) -> Option<Header> {
        let head: &[u8; HEADER_LEN] = bytes.get(..HEADER_LEN)?.try_into().ok()?;
        Some(Header::decode(head))
    }
    /// Encode in little-endian with markers (as x86 libspread and Spread daemons write).
    pub fn encode(&self, out: &mut [u8; HEADER_LEN]) {
        out[0..4].copy_from_slice(&(self.service_type | ENDIAN_MARKER).to_le_bytes());
        out[4..36].copy_from_slice(&self.name.0);
        out[36..40].copy_from_slice(&self.num_groups.to_le_bytes());
        out[40..44].copy_from_slice(&self.hint);
        out[44..48].copy_from_slice(&self.data_len.to_le_bytes());
    }
    /// Encode in big-endian without markers, as a big-endian host would (tests and interop checks).
    /// The hint is written as stored.
    pub fn encode_big_endian(&self, out: &mut [u8; HEADER_LEN]) {
        out[0..4].copy_from_slice(&(self.service_type & !ENDIAN_MARKER).to_be_bytes());
        out[4..36].copy_from_slice(&self.name.0);
        out[36..40].copy_from_slice(&self.num_groups.to_be_bytes());
        out[40..44].copy_from_slice(&self.hint);
        out[44..48].copy_from_slice(&self.data_len.to_be_bytes());
    }
    /// `mess_type` from the hint and whether the hint's creator had the other byte order.
    pub fn mess_type(&self) -> (i16, bool) {
        mess_type_of_hint(self.hint)
    }
}

/// libspread's reading of a hint: `(int16)((hint & ~marker) >> 8)` after swapping a foreign hint.
pub fn mess_type_of_hint(hint: [u8; 4]) -> (i16, bool) {
    let le = is_little_endian_word(hint);
    let value = read_u32(hint, le) & !ENDIAN_MARKER;
    ((value >> 8) as u16 as i16, !le)
}

/// Append a header (LE with markers) to `out`; `name` longer than 31 bytes is cut to 31.
pub(crate) fn push_header(
    out: &mut Vec<u8>,
    service_type: u32,
    name: &[u8],
    num_groups: usize,
    hint: [u8; 4],
    data_len: usize,
) {
    out.extend_from_slice(&(service_type | ENDIAN_MARKER).to_le_bytes());
    push_name(out, name);
    out.extend_from_slice(&(num_groups as u32).to_le_bytes());
    out.extend_from_slice(&hint);
    out.extend_from_slice(&(data_len as u32).to_le_bytes());
}

/// Append one zero-filled 32-byte name field (cut to 31 bytes so a NUL always ends it).
pub(crate) fn push_name(out: &mut Vec<u8>, name: &[u8]) {
    let name = &name[..name.len().min(MAX_GROUP_NAME - 1)];
    out.extend_from_slice(name);
    out.resize(out.len() + MAX_GROUP_NAME - name.len(), 0);
}

/// The hint bytes a little-endian client writes for `mess_type` (§4.4): `-2` -> `80 fe ff 80`.
pub fn hint_for_mess_type(mess_type: i16) -> [u8; 4] {
    let value = (((mess_type as i32 as u32) << 8) & 0x00ff_ff00) | ENDIAN_MARKER;
    value.to_le_bytes()
}

/// The hint of daemon-generated messages: marker only.
pub const DAEMON_HINT: [u8; 4] = [0x80, 0, 0, 0x80];

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wire::constants::*;

    use crate::wire::test_data::hex;

    #[test]
    fn hints() {
        assert_eq!(hint_for_mess_type(-2), [0x80, 0xfe, 0xff, 0x80]);
        assert_eq!(hint_for_mess_type(5), [0x80, 0x05, 0x00, 0x80]);
        assert_eq!(hint_for_mess_type(0), DAEMON_HINT);
        assert_eq!(mess_type_of_hint([0x80, 0xfe, 0xff, 0x80]), (-2, false));
        // A big-endian writer's hint reaches us verbatim: mess_type 0x1234, mismatch.
        assert_eq!(mess_type_of_hint([0x00, 0x12, 0x34, 0x00]), (0x1234, true));
        for m in [i16::MIN, -1, 0, 1, 0x7fff, 0x1234] {
            assert_eq!(mess_type_of_hint(hint_for_mess_type(m)), (m, false));
        }
    }

    #[test]
    fn decode_recorded_multicast_header() {
        let bytes = hex(
            "9000008023616c696365236c6f63616c686f737400000000000000000000000000000000010000008005008006000000",
        );
        let h = Header::decode(bytes[..48].try_into().unwrap());
        assert_eq!(h.service_type, AGREED_MESS);
        assert_eq!(h.name.as_bytes(), b"#alice#localhost");
        assert_eq!((h.num_groups, h.data_len, h.foreign_endian), (1, 6, false));
        assert_eq!(h.mess_type(), (5, false));
        let mut again = [0u8; 48];
        h.encode(&mut again);
        assert_eq!(&again[..], &bytes[..]);
    }

    #[test]
    fn big_endian_header_is_swapped() {
        let h = Header {
            hint: [0, 0x12, 0x34, 0],
            ..Header::new(
                RELIABLE_MESS,
                NameField::new(b"#be#localhost").unwrap(),
                2,
                300,
            )
        };
        let mut be = [0u8; 48];
        h.encode_big_endian(&mut be);
        assert_eq!(&be[..4], &[0, 0, 0, 2]);
        let d = Header::decode(&be);
        assert!(d.foreign_endian);
        assert_eq!(
            (d.service_type, d.num_groups, d.data_len),
            (RELIABLE_MESS, 2, 300)
        );
        assert_eq!(d.mess_type(), (0x1234, true));
    }

    #[test]
    fn push_header_matches_encode() {
        let mut v = Vec::new();
        push_header(&mut v, JOIN_MESS, b"#a#b", 1, DAEMON_HINT, 0);
        assert_eq!(v.len(), 48);
        let h = Header::decode(v[..].try_into().unwrap());
        let mut again = [0u8; 48];
        h.encode(&mut again);
        assert_eq!(&again[..], &v[..]);
        assert_eq!(&v[..4], &[0x80, 0, 1, 0x80]);
    }
}
