//! Membership messages (PROTOCOL.md §6.2-§6.4, §7.2): group ids, the body layout, self-leave.

use super::constants::HEADER_LEN;

/// group_id = (daemon virtual id, ring time, per-group counter).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct GroupId(pub [u32; 3]);

/// The 5.x virtual id of a daemon name (Jenkins one-at-a-time over name + NUL, signed chars).
/// `localhost` -> 482711334.
pub fn virtual_id(daemon_name: &[u8]) -> u32 {
    let _ = daemon_name;
    todo!()
}

/// Daemon: append a lightweight REG_MEMB message (`cause` = CAUSED_BY_JOIN/LEAVE/DISCONNECT) for
/// `group` with the sorted `members` and the one changed member.
pub fn encode_membership(
    cause: u32,
    group: &[u8],
    members: &[&[u8]],
    group_id: GroupId,
    changed: &[u8],
    out: &mut Vec<u8>,
) {
    let _ = (cause, group, members, group_id, changed, out);
    todo!()
}

/// Daemon: append the 48-byte self-leave message for `group`.
pub fn encode_self_leave(group: &[u8], out: &mut Vec<u8>) {
    let _ = (group, out);
    todo!()
}

/// Decoded membership body (integers in the header's order; `swap` if the header was foreign).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MembershipBody {
    pub group_id: GroupId,
    pub vs_sets: Vec<Vec<Vec<u8>>>,
    pub local_vs_set_offset: u32,
}

pub fn decode_membership_body(body: &[u8], swap: bool) -> Option<MembershipBody> {
    let _ = (body, swap);
    todo!()
}

const _: usize = HEADER_LEN;
