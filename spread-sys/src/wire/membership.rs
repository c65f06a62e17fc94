//! Membership messages (PROTOCOL.md §6.2-§6.4, §7.2): group ids, the body layout, self-leave.
//!
//! Body of a regular membership message (integers in the *header's* byte order):
//! group_id (3 x u32), `num_vs_sets` (u32), `local_vs_set_offset` (u32, counted from byte 20), then the
//! vs_sets back to back, each a u32 member count followed by that many 32-byte name fields.

use super::constants::{CAUSED_BY_LEAVE, MAX_GROUP_NAME, REG_MEMB_MESS};
use super::header::{DAEMON_HINT, push_header, push_name};
use super::name::until_nul;

/// group_id = (daemon virtual id, ring time, per-group counter).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct GroupId(pub [u32; 3]);

/// Body length of a lightweight (one vs_set with one member) membership message.
pub const LIGHTWEIGHT_BODY_LEN: usize = 20 + 4 + MAX_GROUP_NAME;

/// The 5.x virtual id of a daemon name (Jenkins one-at-a-time over name + NUL, signed chars).
/// `localhost` -> 482711334.
pub fn virtual_id(daemon_name: &[u8]) -> u32 {
    let n = daemon_name.len() as u32 + 1;
    let mut h = n;
    for &b in daemon_name.iter().chain(std::iter::once(&0u8)) {
        h = h.wrapping_add(b as i8 as i32 as u32);
        h = h.wrapping_add(h << 10);
        h ^= h >> 6;
    }
    h = h.wrapping_add(h << 3);
    h ^= h >> 11;
    h = h.wrapping_add(h << 15);
    if h == 0 || h == u32::MAX {
        h = n << 16;
        if h == 0 {
            h = 1 << 16;
        }
    }
    h
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
    push_header(
        out,
        REG_MEMB_MESS | cause,
        group,
        members.len(),
        DAEMON_HINT,
        LIGHTWEIGHT_BODY_LEN,
    );
    for m in members {
        push_name(out, m);
    }
    for id in group_id.0 {
        out.extend_from_slice(&id.to_le_bytes());
    }
    out.extend_from_slice(&1u32.to_le_bytes()); // num_vs_sets
    out.extend_from_slice(&0u32.to_le_bytes()); // local_vs_set_offset
    out.extend_from_slice(&1u32.to_le_bytes()); // members of that set
    push_name(out, changed);
}

/// Daemon: append the 48-byte self-leave message for `group`.
pub fn encode_self_leave(group: &[u8], out: &mut Vec<u8>) {
    push_header(out, CAUSED_BY_LEAVE, group, 0, DAEMON_HINT, 0);
}

/// Decoded membership body (integers in the header's order; `swap` if the header was foreign).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MembershipBody {
    pub group_id: GroupId,
    pub vs_sets: Vec<Vec<Vec<u8>>>,
    pub local_vs_set_offset: u32,
}

impl MembershipBody {
    /// Index of the vs_set `local_vs_set_offset` points at, if it points at the start of one.
    pub fn local_vs_set_index(&self) -> Option<usize> {
        let mut offset = 0usize;
        for (i, set) in self.vs_sets.iter().enumerate() {
            if offset == self.local_vs_set_offset as usize {
                return Some(i);
            }
            offset += 4 + MAX_GROUP_NAME * set.len();
        }
        None
    }
}

fn u32_at(body: &[u8], at: usize, swap: bool) -> Option<u32> {
    let w: [u8; 4] = body.get(at..at + 4)?.try_into().ok()?;
    Some(if swap {
        u32::from_be_bytes(w)
    } else {
        u32::from_le_bytes(w)
    })
}

/// Decode a group_id (the first 12 bytes of a membership or transitional body).
pub fn decode_group_id(body: &[u8], swap: bool) -> Option<GroupId> {
    Some(GroupId([
        u32_at(body, 0, swap)?,
        u32_at(body, 4, swap)?,
        u32_at(body, 8, swap)?,
    ]))
}

pub fn decode_membership_body(body: &[u8], swap: bool) -> Option<MembershipBody> {
    let group_id = decode_group_id(body, swap)?;
    let num_sets = u32_at(body, 12, swap)?;
    let local_vs_set_offset = u32_at(body, 16, swap)?;
    let mut at = 20;
    let mut vs_sets = Vec::new();
    for _ in 0..num_sets {
        let count = u32_at(body, at, swap)? as usize;
        at += 4;
        // Check the bound before allocating: `count` comes from the wire.
        let names = body.get(at..at.checked_add(count.checked_mul(MAX_GROUP_NAME)?)?)?;
        vs_sets.push(
            names
                .chunks(MAX_GROUP_NAME)
                .map(|n| until_nul(n).to_vec())
                .collect(),
        );
        at += names.len();
    }
    Some(MembershipBody {
        group_id,
        vs_sets,
        local_vs_set_offset,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    use crate::wire::test_data::hex;

    #[test]
    fn virtual_id_of_localhost() {
        assert_eq!(virtual_id(b"localhost"), 482_711_334);
        assert_ne!(virtual_id(b"other"), virtual_id(b"localhost"));
    }

    #[test]
    fn recorded_join_message_round_trips() {
        // PROTOCOL.md §6.2, vector leave_group: bob joins grp which holds alice.
        let rec = hex(concat!(
            "801100806772700000000000000000000000000000000000000000000000000000000000020000008000008038000000",
            "23616c696365236c6f63616c686f73740000000000000000000000000000000023626f62236c6f63616c686f73740000",
            "000000000000000000000000000000002697c51cd1ab046b0200000001000000000000000100000023626f62236c6f63",
            "616c686f7374000000000000000000000000000000000000",
        ));
        let gid = GroupId([482_711_334, 1_795_468_241, 2]);
        let members: [&[u8]; 2] = [b"#alice#localhost", b"#bob#localhost"];
        let v = crate::wire::test_data::join_message(&members, b"#bob#localhost", gid);
        assert_eq!(v, rec);
        let body = decode_membership_body(&v[48 + 64..], false).unwrap();
        assert_eq!(body.group_id, gid);
        assert_eq!(body.vs_sets, vec![vec![b"#bob#localhost".to_vec()]]);
        assert_eq!(body.local_vs_set_index(), Some(0));
    }

    #[test]
    fn self_leave_bytes() {
        let mut v = Vec::new();
        encode_self_leave(b"grp", &mut v);
        assert_eq!(v.len(), 48);
        assert_eq!(&v[..8], &hex("8002008067727000")[..]);
        assert_eq!(&v[40..48], &hex("8000008000000000")[..]);
    }

    #[test]
    fn malformed_bodies_are_refused() {
        assert!(decode_membership_body(&[0; 19], false).is_none());
        let mut b = vec![0u8; 20];
        b[12..16].copy_from_slice(&1u32.to_le_bytes());
        assert!(decode_membership_body(&b, false).is_none());
        b.extend_from_slice(&u32::MAX.to_le_bytes());
        assert!(decode_membership_body(&b, false).is_none());
        let mut b = vec![0u8; 20];
        b[12..16].copy_from_slice(&1u32.to_be_bytes());
        b.extend_from_slice(&0u32.to_be_bytes());
        let d = decode_membership_body(&b, true).unwrap();
        assert_eq!(d.vs_sets, vec![Vec::<Vec<u8>>::new()]);
    }
}
