//! Request header validation (PROTOCOL.md §5.6), plus the two daemon-internal bits whose
//! acceptance crashes or confuses real Spread (§13). A violation kills only the offending session.

use spread_sys::wire::constants::{
    DAEMON_KILL_LEN, GROUPS_MESS, JOIN_MESS, KILL_MESS, LEAVE_MESS, MAX_GROUPS_PER_MESSAGE,
    MAX_MESSAGE_BODY_LEN, REGULAR_MESS, REJECT_MESS,
};
use spread_sys::wire::header::Header;

/// Why a request killed its session.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Violation {
    #[error("type {0:#x} must have exactly one service or request bit")]
    ServiceBits(u32),
    #[error("type {0:#x} carries a daemon-internal bit (GROUPS_MESS/REJECT_MESS)")]
    InternalBits(u32),
    #[error("sender field {0:?} is not this session's private group")]
    Sender(String),
    #[error("num_groups {0} outside 0..=100")]
    GroupCount(i32),
    #[error("hint {0:02x?} has bits outside 0x80ffff80")]
    Hint([u8; 4]),
    #[error("data_len {data_len} with {groups} groups exceeds the message size limit")]
    Length { data_len: i32, groups: i32 },
}

/// The bytes of a name field up to its first NUL; `name_len` bounds it (the sender field's byte 31
/// is forced to NUL, §5.6).
pub fn field_name(field: &[u8]) -> &[u8] {
    let end = field.iter().position(|&b| b == 0).unwrap_or(field.len());
    &field[..end]
}

/// Check a decoded request header of a session whose private group is `private_group`.
pub fn validate(h: &Header, private_group: &[u8]) -> Result<(), Violation> {
    let t = h.service_type;
    let bits =
        (t & REGULAR_MESS).count_ones() + (t & (JOIN_MESS | LEAVE_MESS | KILL_MESS)).count_ones();
    if bits != 1 {
        return Err(Violation::ServiceBits(t));
    }
    if t & (GROUPS_MESS | REJECT_MESS) != 0 {
        return Err(Violation::InternalBits(t));
    }
    let sender = field_name(&h.name.0[..31]);
    if sender != private_group {
        return Err(Violation::Sender(
            String::from_utf8_lossy(sender).into_owned(),
        ));
    }
    if h.num_groups < 0 || h.num_groups as usize > MAX_GROUPS_PER_MESSAGE {
        return Err(Violation::GroupCount(h.num_groups));
    }
    // The hint is judged as stored, in our (little-endian) order; a big-endian hint passes too.
    if u32::from_le_bytes(h.hint) & !0x80ff_ff80 != 0 {
        return Err(Violation::Hint(h.hint));
    }
    let total = h.data_len as i64 + 32 * h.num_groups as i64;
    if h.data_len < 0
        || h.data_len as usize > MAX_MESSAGE_BODY_LEN
        || total > DAEMON_KILL_LEN as i64
    {
        return Err(Violation::Length {
            data_len: h.data_len,
            groups: h.num_groups,
        });
    }
    Ok(())
}
