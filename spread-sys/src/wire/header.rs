//! The 48-byte message header and the endian-marker rules (PROTOCOL.md §4).

use super::constants::HEADER_LEN;
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

impl Header {
    /// Decode, swapping type/num_groups/data_len if the marker says the writer had the other order.
    pub fn decode(bytes: &[u8; HEADER_LEN]) -> Header {
        let _ = bytes;
        todo!()
    }
    /// Encode in little-endian with markers (as x86 libspread and Spread daemons write).
    pub fn encode(&self, out: &mut [u8; HEADER_LEN]) {
        let _ = out;
        todo!()
    }
    /// `mess_type` from the hint and whether the hint's creator had the other byte order.
    pub fn mess_type(&self) -> (i16, bool) {
        todo!()
    }
}

/// The hint bytes a little-endian client writes for `mess_type` (§4.4): `-2` -> `80 fe ff 80`.
pub fn hint_for_mess_type(mess_type: i16) -> [u8; 4] {
    let _ = mess_type;
    todo!()
}

/// The hint of daemon-generated messages: marker only.
pub const DAEMON_HINT: [u8; 4] = [0x80, 0, 0, 0x80];
