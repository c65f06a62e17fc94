//! Whole messages after the handshake: encoding requests (client) and data/membership messages
//! (daemon), and decoding what arrives (client, daemon). PROTOCOL.md §5, §6.

use super::header::Header;
use crate::Result;

pub use super::membership::GroupId;

/// A received message, borrowing the receive buffer (the zero-copy path spreadlogd uses).
#[derive(Debug, Clone, Copy)]
pub struct MessageRef<'a> {
    pub header: Header,
    /// `num_groups` raw 32-byte name fields.
    pub groups: &'a [u8],
    pub body: &'a [u8],
}

impl<'a> MessageRef<'a> {
    pub fn is_regular(&self) -> bool {
        todo!()
    }
    pub fn is_membership(&self) -> bool {
        todo!()
    }
    pub fn is_self_leave(&self) -> bool {
        todo!()
    }
    /// Sender's private group (data) or the group (membership), up to the NUL.
    pub fn sender(&self) -> &'a [u8] {
        todo!()
    }
    /// The i-th destination/member name, up to the NUL.
    pub fn group(&self, i: usize) -> Option<&'a [u8]> {
        let _ = i;
        todo!()
    }
    pub fn group_count(&self) -> usize {
        todo!()
    }
    /// libspread's view, owned: `my_private_group` is needed for the member index of REG_MEMB.
    pub fn to_message(&self, my_private_group: &[u8]) -> Result<Message> {
        let _ = my_private_group;
        todo!()
    }
}

/// What `Mailbox::receive` returns: libspread's `SP_receive` + `SP_get_memb_info`, owned.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Message {
    Data(DataMessage),
    Membership(MembershipMessage),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DataMessage {
    /// Marker bits cleared; REJECT_MESS | old_type for rejects.
    pub service_type: u32,
    pub sender: String,
    pub groups: Vec<String>,
    pub mess_type: i16,
    pub endian_mismatch: bool,
    pub body: Vec<u8>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MembershipMessage {
    pub service_type: u32,
    /// The group the change is about.
    pub group: String,
    /// New member list (empty for self-leave and transitional).
    pub members: Vec<String>,
    /// Own index in `members` for REG_MEMB, -1 for self-leave/transitional (as libspread).
    pub mess_type: i16,
    /// None for self-leave.
    pub group_id: Option<GroupId>,
    /// vs_sets of the body (one with the changed member for JOIN/LEAVE/DISCONNECT).
    pub vs_sets: Vec<Vec<String>>,
    pub local_vs_set_index: usize,
    /// The member that joined/left/disconnected (first member of the local vs_set).
    pub changed_member: Option<String>,
}

/// Append a JOIN request.
pub fn encode_join(sender: &[u8], group: &[u8], out: &mut Vec<u8>) {
    let _ = (sender, group, out);
    todo!()
}
/// Append a LEAVE request.
pub fn encode_leave(sender: &[u8], group: &[u8], out: &mut Vec<u8>) {
    let _ = (sender, group, out);
    todo!()
}
/// Append a KILL (disconnect) request; the name field is our own private group, zero-filled.
pub fn encode_kill(sender: &[u8], out: &mut Vec<u8>) {
    let _ = (sender, out);
    todo!()
}
/// Append a data message (client request, LE with markers), checking service bits, group count and
/// the size limit (body + 32 x groups <= MAX_SAFE_MESSAGE_LEN). Group names are not validated
/// (libspread does not), but each must fit 31 bytes.
pub fn encode_multicast(
    sender: &[u8],
    service_type: u32,
    groups: &[&[u8]],
    mess_type: i16,
    body: &[u8],
    out: &mut Vec<u8>,
) -> Result<()> {
    let _ = (sender, service_type, groups, mess_type, body, out);
    todo!()
}
