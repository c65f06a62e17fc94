//! Whole messages after the handshake: encoding requests (client) and data/membership messages
//! (daemon), and decoding what arrives (client, daemon). PROTOCOL.md §5, §6.

use super::constants::*;
use super::header::{DAEMON_HINT, Header, hint_for_mess_type, push_header, push_name};
use super::membership::{decode_group_id, decode_membership_body};
use super::name::until_nul;
use crate::{Error, Result};

pub use super::membership::GroupId;

/// A received message, borrowing the receive buffer (the zero-copy path spreadlogd uses).
#[derive(Debug, Clone, Copy)]
pub struct MessageRef<'a> {
    pub header: Header,
    /// `num_groups` raw 32-byte name fields.
    pub groups: &'a [u8],
    pub body: &'a [u8],
    /// For a REJECT_MESS from a daemon: the original `type` (host order, marker cleared).
    pub reject_old_type: Option<u32>,
}

impl<'a> MessageRef<'a> {
    /// Split a daemon -> client frame (`rest` = the bytes after the 48-byte header, as the
    /// [`Deframer`](super::deframer::Deframer) returns them).
    pub fn decode(header: Header, rest: &'a [u8]) -> Result<MessageRef<'a>> {
        if header.service_type & REJECT_MESS != 0 {
            let Some((old, rest)) = rest.split_first_chunk::<4>() else {
                return Err(Error::IllegalMessage(
                    "reject message without old_type".into(),
                ));
            };
            let old = if header.foreign_endian {
                u32::from_be_bytes(*old)
            } else {
                u32::from_le_bytes(*old)
            };
            let mut m = Self::split(header, rest)?;
            m.reject_old_type = Some(old & !ENDIAN_MARKER);
            Ok(m)
        } else {
            Self::split(header, rest)
        }
    }
    /// Split a client -> daemon request frame (no reject `old_type`, whatever the bits say).
    pub fn decode_request(header: Header, rest: &'a [u8]) -> Result<MessageRef<'a>> {
        Self::split(header, rest)
    }
    fn split(header: Header, rest: &'a [u8]) -> Result<MessageRef<'a>> {
        let (Ok(groups), Ok(data)) = (
            usize::try_from(header.num_groups),
            usize::try_from(header.data_len),
        ) else {
            return Err(Error::IllegalMessage(format!(
                "negative num_groups {} or data_len {}",
                header.num_groups, header.data_len
            )));
        };
        let names = groups
            .checked_mul(MAX_GROUP_NAME)
            .filter(|&n| n.checked_add(data) == Some(rest.len()));
        let Some(names) = names else {
            return Err(Error::IllegalMessage(format!(
                "{} bytes after the header, header says {groups} groups and {data} body bytes",
                rest.len()
            )));
        };
        Ok(MessageRef {
            header,
            groups: &rest[..names],
            body: &rest[names..],
            reject_old_type: None,
        })
    }
    pub fn is_regular(&self) -> bool {
        let t = self.header.service_type;
        t & REGULAR_MESS != 0 && t & REJECT_MESS == 0
    }
    pub fn is_membership(&self) -> bool {
        let t = self.header.service_type;
        t & MEMBERSHIP_MESS != 0 && t & REJECT_MESS == 0
    }
    pub fn is_self_leave(&self) -> bool {
        let t = self.header.service_type;
        self.is_membership()
            && t & CAUSED_BY_LEAVE != 0
            && t & (REG_MEMB_MESS | TRANSITION_MESS) == 0
    }
    /// Sender's private group (data) or the group (membership), up to the NUL.
    /// (Borrows `self`, not the buffer: the header is decoded by value.)
    pub fn sender(&self) -> &[u8] {
        self.header.name.as_bytes()
    }
    /// The i-th destination/member name, up to the NUL.
    pub fn group(&self, i: usize) -> Option<&'a [u8]> {
        let slot = self
            .groups
            .get(i * MAX_GROUP_NAME..(i + 1) * MAX_GROUP_NAME)?;
        Some(until_nul(slot))
    }
    pub fn group_count(&self) -> usize {
        self.groups.len() / MAX_GROUP_NAME
    }
    /// Iterate the destination/member names, each up to its NUL.
    pub fn group_names(&self) -> impl Iterator<Item = &'a [u8]> + 'a {
        self.groups.chunks(MAX_GROUP_NAME).map(until_nul)
    }
    /// `mess_type` and `endian_mismatch` as libspread reports them for a data (or reject) message.
    pub fn mess_type(&self) -> (i16, bool) {
        self.header.mess_type()
    }
    /// libspread's view, owned: `my_private_group` is needed for the member index of REG_MEMB.
    pub fn to_message(&self, my_private_group: &[u8]) -> Result<Message> {
        let lossy = |b: &[u8]| String::from_utf8_lossy(b).into_owned();
        let t = self.header.service_type;
        let names: Vec<String> = self.group_names().map(lossy).collect();
        if !self.is_membership() {
            let (mess_type, endian_mismatch) = self.mess_type();
            let service_type = match self.reject_old_type {
                Some(old) => old | REJECT_MESS,
                None => t,
            };
            return Ok(Message::Data(DataMessage {
                service_type,
                sender: lossy(self.header.name.as_bytes()),
                groups: names,
                mess_type,
                endian_mismatch,
                body: self.body.to_vec(),
            }));
        }
        let group = lossy(self.header.name.as_bytes());
        let swap = self.header.foreign_endian;
        if t & REG_MEMB_MESS != 0 {
            let bad =
                || Error::IllegalMessage(format!("malformed membership body for group {group:?}"));
            let body = decode_membership_body(self.body, swap).ok_or_else(bad)?;
            let local = body.local_vs_set_index().ok_or_else(bad)?;
            let my = until_nul(my_private_group);
            let mess_type = self
                .group_names()
                .position(|g| g == my)
                .map_or(-1, |i| i as i16);
            let vs_sets: Vec<Vec<String>> = body
                .vs_sets
                .iter()
                .map(|s| s.iter().map(|n| lossy(n)).collect())
                .collect();
            let changed_member =
                if t & (CAUSED_BY_JOIN | CAUSED_BY_LEAVE | CAUSED_BY_DISCONNECT) != 0 {
                    vs_sets[local].first().cloned()
                } else {
                    None
                };
            return Ok(Message::Membership(MembershipMessage {
                service_type: t,
                group,
                members: names,
                mess_type,
                group_id: Some(body.group_id),
                vs_sets,
                local_vs_set_index: local,
                changed_member,
            }));
        }
        // Transitional (body = group_id) or self-leave (no body).
        let group_id = if t & TRANSITION_MESS != 0 {
            decode_group_id(self.body, swap)
        } else {
            None
        };
        Ok(Message::Membership(MembershipMessage {
            service_type: t,
            group,
            members: names,
            mess_type: -1,
            group_id,
            vs_sets: Vec::new(),
            local_vs_set_index: 0,
            changed_member: None,
        }))
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

fn encode_one_group_request(kind: u32, sender: &[u8], group: &[u8], out: &mut Vec<u8>) {
    push_header(out, kind, sender, 1, DAEMON_HINT, 0);
    push_name(out, group);
}

/// Append a JOIN request.
pub fn encode_join(sender: &[u8], group: &[u8], out: &mut Vec<u8>) {
    encode_one_group_request(JOIN_MESS, sender, group, out);
}
/// Append a LEAVE request.
pub fn encode_leave(sender: &[u8], group: &[u8], out: &mut Vec<u8>) {
    encode_one_group_request(LEAVE_MESS, sender, group, out);
}
/// Append a KILL (disconnect) request; the name field is our own private group, zero-filled.
pub fn encode_kill(sender: &[u8], out: &mut Vec<u8>) {
    encode_one_group_request(KILL_MESS, sender, sender, out);
}

/// Append the daemon's reject of `sender`'s JOIN or LEAVE of `group` (PROTOCOL §6.5): type
/// REJECT_MESS, the request's hint, then `old_type` (the request's type with JOIN/LEAVE replaced
/// by CAUSED_BY_JOIN/CAUSED_BY_LEAVE), then `group` and the sender's private group appended.
/// libspread reports it as `old_type | REJECT_MESS`.
pub fn encode_reject_group_request(
    request_type: u32,
    sender: &[u8],
    group: &[u8],
    hint: [u8; 4],
    out: &mut Vec<u8>,
) {
    let mut old_type = request_type & !(JOIN_MESS | LEAVE_MESS | ENDIAN_MARKER);
    if request_type & JOIN_MESS != 0 {
        old_type |= CAUSED_BY_JOIN;
    }
    if request_type & LEAVE_MESS != 0 {
        old_type |= CAUSED_BY_LEAVE;
    }
    push_header(out, REJECT_MESS, sender, 2, hint, 0);
    out.extend_from_slice(&(old_type | ENDIAN_MARKER).to_le_bytes());
    push_name(out, group);
    push_name(out, sender);
}

/// Type bits a client must never put in a data message: requests of another kind, the
/// daemon-to-daemon GROUPS_MESS (crashes a 5.0.1 daemon) and daemon-generated kinds.
const FORBIDDEN_IN_MULTICAST: u32 =
    JOIN_MESS | LEAVE_MESS | KILL_MESS | GROUPS_MESS | REJECT_MESS | MEMBERSHIP_MESS;

/// Check a multicast before encoding it: exactly one of the six regular bits, no request or
/// daemon-internal bits, at most 100 groups each of at most 31 bytes, and
/// `body + 32 x groups <= MAX_SAFE_MESSAGE_LEN`.
pub fn check_multicast(service_type: u32, groups: &[&[u8]], body_len: usize) -> Result<()> {
    let service = service_type & !ENDIAN_MARKER;
    if (service & REGULAR_MESS).count_ones() != 1 || service & FORBIDDEN_IN_MULTICAST != 0 {
        return Err(Error::IllegalService(service_type));
    }
    if groups.len() > MAX_GROUPS_PER_MESSAGE {
        return Err(Error::TooManyGroups(groups.len()));
    }
    if let Some(g) = groups
        .iter()
        .find(|g| g.len() >= MAX_GROUP_NAME || g.contains(&0))
    {
        return Err(Error::IllegalGroup(String::from_utf8_lossy(g).into_owned()));
    }
    let len = body_len + MAX_GROUP_NAME * groups.len();
    if len > MAX_SAFE_MESSAGE_LEN {
        return Err(Error::MessageTooLong {
            len,
            max: MAX_SAFE_MESSAGE_LEN,
        });
    }
    Ok(())
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
    check_multicast(service_type, groups, body.len())?;
    out.reserve(HEADER_LEN + MAX_GROUP_NAME * groups.len() + body.len());
    push_header(
        out,
        service_type & !ENDIAN_MARKER,
        sender,
        groups.len(),
        hint_for_mess_type(mess_type),
        body.len(),
    );
    for g in groups {
        push_name(out, g);
    }
    out.extend_from_slice(body);
    Ok(())
}

/// The header and group field of a one-group data message, built once per (sender, service,
/// group) and patched per message: only the hint (`mess_type`) and the body length change.
/// `bytes()` followed by the body is exactly what [`encode_multicast`] writes for that message.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct OneGroupHeader {
    bytes: [u8; HEADER_LEN + 2 * MAX_GROUP_NAME],
    /// A second destination, the stream tag (`crate::stream`), follows the group.
    tagged: bool,
}

impl OneGroupHeader {
    /// Offset of the group count in the header.
    const GROUPS_AT: usize = 36;
    /// Offset of the hint in the header.
    const HINT_AT: usize = 40;
    /// Offset of the body length in the header.
    pub const LEN_AT: usize = 44;
    /// The largest body a one-group message carries (CONTRACTS §3).
    pub const MAX_BODY: usize = MAX_SAFE_MESSAGE_LEN - MAX_GROUP_NAME;
    /// The largest body of a message with a tag group as well.
    pub const MAX_TAGGED_BODY: usize = MAX_SAFE_MESSAGE_LEN - 2 * MAX_GROUP_NAME;

    /// Checks the service and the group name once (as [`encode_multicast`] does per message).
    pub fn new(sender: &[u8], service_type: u32, group: &[u8]) -> Result<OneGroupHeader> {
        check_multicast(service_type, &[group], 0)?;
        let mut v = Vec::with_capacity(HEADER_LEN + MAX_GROUP_NAME);
        push_header(
            &mut v,
            service_type & !ENDIAN_MARKER,
            sender,
            1,
            hint_for_mess_type(0),
            0,
        );
        push_name(&mut v, group);
        let mut bytes = [0u8; HEADER_LEN + 2 * MAX_GROUP_NAME];
        bytes[..v.len()].copy_from_slice(&v);
        Ok(OneGroupHeader {
            bytes,
            tagged: false,
        })
    }

    /// Send the next messages to `tag` as well (a group name nobody joins: it only carries the
    /// stream and number, `crate::stream`); `None` goes back to the group alone. Checked like a
    /// group name; no allocation.
    pub fn set_tag(&mut self, tag: Option<&[u8]>) -> Result<()> {
        let field = &mut self.bytes[HEADER_LEN + MAX_GROUP_NAME..];
        match tag {
            Some(t) => {
                crate::names::check_group(t)
                    .map_err(|_| Error::IllegalGroup(String::from_utf8_lossy(t).into_owned()))?;
                field.fill(0);
                field[..t.len()].copy_from_slice(t);
                self.tagged = true;
            }
            None => self.tagged = false,
        }
        let groups = 1 + u32::from(self.tagged);
        self.bytes[Self::GROUPS_AT..Self::GROUPS_AT + 4].copy_from_slice(&groups.to_le_bytes());
        Ok(())
    }

    /// [`Self::set_tag`] from a whole NUL-padded name field built by `crate::stream` (a valid
    /// group name by construction: not checked again, this runs per line).
    #[inline]
    pub fn set_tag_field(&mut self, field: &[u8; MAX_GROUP_NAME]) {
        debug_assert!(
            field
                .iter()
                .position(|&b| b == 0)
                .is_some_and(|end| { crate::names::check_group(&field[..end]).is_ok() })
        );
        self.bytes[HEADER_LEN + MAX_GROUP_NAME..].copy_from_slice(field);
        if !self.tagged {
            self.tagged = true;
            self.bytes[Self::GROUPS_AT..Self::GROUPS_AT + 4].copy_from_slice(&2u32.to_le_bytes());
        }
    }

    /// Set `mess_type` and the body length; `body_len` must be at most [`Self::MAX_BODY`]
    /// ([`Self::MAX_TAGGED_BODY`] with a tag).
    #[inline]
    pub fn set(&mut self, mess_type: i16, body_len: usize) -> Result<()> {
        if body_len > self.max_body() {
            return Err(Error::MessageTooLong {
                len: body_len + MAX_GROUP_NAME * (1 + usize::from(self.tagged)),
                max: MAX_SAFE_MESSAGE_LEN,
            });
        }
        self.bytes[Self::HINT_AT..Self::HINT_AT + 4]
            .copy_from_slice(&hint_for_mess_type(mess_type));
        self.bytes[Self::LEN_AT..Self::LEN_AT + 4]
            .copy_from_slice(&(body_len as u32).to_le_bytes());
        Ok(())
    }

    #[inline]
    pub fn bytes(&self) -> &[u8] {
        &self.bytes[..HEADER_LEN + MAX_GROUP_NAME * (1 + usize::from(self.tagged))]
    }

    /// The largest body this header can announce.
    #[inline]
    pub fn max_body(&self) -> usize {
        if self.tagged {
            Self::MAX_TAGGED_BODY
        } else {
            Self::MAX_BODY
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    use crate::wire::test_data::hex;

    fn split(frame: &[u8]) -> MessageRef<'_> {
        let h = Header::decode_prefix(frame).unwrap();
        MessageRef::decode(h, &frame[HEADER_LEN..]).unwrap()
    }

    #[test]
    fn recorded_requests() {
        let mut v = Vec::new();
        encode_join(b"#alice#localhost", b"grp", &mut v);
        assert_eq!(
            v,
            hex(concat!(
                "8000018023616c696365236c6f63616c686f7374000000000000000000000000000000000100000080000080",
                "000000006772700000000000000000000000000000000000000000000000000000000000"
            ))
        );
        v.clear();
        encode_multicast(
            b"#alice#localhost",
            AGREED_MESS,
            &[b"grp"],
            5,
            b"agreed",
            &mut v,
        )
        .unwrap();
        assert_eq!(
            v,
            hex(concat!(
                "9000008023616c696365236c6f63616c686f7374000000000000000000000000000000000100000080050080",
                "06000000677270000000000000000000000000000000000000000000000000000000000061677265656",
                "4"
            ))
        );
        let m = split(&v);
        assert!(m.is_regular() && !m.is_membership());
        assert_eq!(
            (m.sender(), m.group(0), m.group_count(), m.body),
            (
                &b"#alice#localhost"[..],
                Some(&b"grp"[..]),
                1,
                &b"agreed"[..]
            )
        );
        v.clear();
        encode_kill(b"#alice#localhost", &mut v);
        assert_eq!(&v[..4], &[0x80, 0, 4, 0x80]);
        assert_eq!(&v[48..64], b"#alice#localhost");
        assert!(v[64..].iter().all(|&b| b == 0));
        v.clear();
        encode_leave(b"#a#b", b"g", &mut v);
        assert_eq!(&v[..4], &[0x80, 0, 2, 0x80]);
    }

    #[test]
    fn multicast_checks() {
        let mut v = Vec::new();
        let s = b"#a#b";
        assert!(matches!(
            encode_multicast(s, 0, &[b"g"], 0, b"", &mut v),
            Err(Error::IllegalService(0))
        ));
        assert!(matches!(
            encode_multicast(s, AGREED_MESS | SAFE_MESS, &[b"g"], 0, b"", &mut v),
            Err(Error::IllegalService(_))
        ));
        assert!(matches!(
            encode_multicast(s, AGREED_MESS | GROUPS_MESS, &[b"g"], 0, b"", &mut v),
            Err(Error::IllegalService(_))
        ));
        assert!(encode_multicast(s, AGREED_MESS | SELF_DISCARD, &[b"g"], 0, b"", &mut v).is_ok());
        let many: Vec<&[u8]> = vec![b"g"; 101];
        assert!(matches!(
            encode_multicast(s, AGREED_MESS, &many, 0, b"", &mut v),
            Err(Error::TooManyGroups(101))
        ));
        assert!(matches!(
            encode_multicast(s, AGREED_MESS, &[&[b'g'; 32]], 0, b"", &mut v),
            Err(Error::IllegalGroup(_))
        ));
        let big = vec![0u8; MAX_SAFE_MESSAGE_LEN - 32];
        assert!(encode_multicast(s, AGREED_MESS, &[b"g"], 0, &big, &mut v).is_ok());
        let big = vec![0u8; MAX_SAFE_MESSAGE_LEN - 31];
        assert!(matches!(
            encode_multicast(s, AGREED_MESS, &[b"g"], 0, &big, &mut v),
            Err(Error::MessageTooLong {
                len: 143_153,
                max: 143_152
            })
        ));
    }

    #[test]
    fn membership_to_message() {
        let gid = GroupId([1, 2, 3]);
        let mut v = crate::wire::test_data::join_message(&[b"#alice#d", b"#bob#d"], b"#bob#d", gid);
        let m = split(&v);
        assert!(m.is_membership() && !m.is_self_leave() && !m.is_regular());
        let Message::Membership(mm) = m.to_message(b"#bob#d").unwrap() else {
            panic!()
        };
        assert_eq!(mm.mess_type, 1);
        assert_eq!(mm.group, "grp");
        assert_eq!(mm.members, vec!["#alice#d", "#bob#d"]);
        assert_eq!(mm.group_id, Some(gid));
        assert_eq!(mm.changed_member.as_deref(), Some("#bob#d"));
        let Message::Membership(mm) = m.to_message(b"#alice#d").unwrap() else {
            panic!()
        };
        assert_eq!(mm.mess_type, 0);
        v.clear();
        crate::wire::membership::encode_self_leave(b"grp", &mut v);
        let m = split(&v);
        assert!(m.is_self_leave());
        let Message::Membership(mm) = m.to_message(b"#bob#d").unwrap() else {
            panic!()
        };
        assert_eq!((mm.mess_type, mm.group_id), (-1, None));
    }

    #[test]
    fn rejected_join_as_libspread_reads_it() {
        let mut v = Vec::new();
        encode_reject_group_request(JOIN_MESS, b"#a#d", b"g", DAEMON_HINT, &mut v);
        let m = split(&v);
        assert!(!m.is_regular() && !m.is_membership());
        let Message::Data(d) = m.to_message(b"#a#d").unwrap() else {
            panic!()
        };
        assert_eq!(d.service_type, REJECT_MESS | CAUSED_BY_JOIN);
        assert_eq!(d.groups, vec!["g".to_owned(), "#a#d".to_owned()]);
        assert!(d.body.is_empty());
    }

    #[test]
    fn reject_message() {
        let mut v = Vec::new();
        push_header(&mut v, REJECT_MESS, b"#a#d", 2, hint_for_mess_type(7), 2);
        v.extend_from_slice(&(AGREED_MESS | ENDIAN_MARKER).to_le_bytes());
        push_name(&mut v, b"g");
        push_name(&mut v, b"#a#d");
        v.extend_from_slice(b"hi");
        let m = split(&v);
        assert!(!m.is_regular() && !m.is_membership());
        let Message::Data(d) = m.to_message(b"#a#d").unwrap() else {
            panic!()
        };
        assert_eq!(d.service_type, REJECT_MESS | AGREED_MESS);
        assert_eq!(
            (d.mess_type, d.body.as_slice(), d.groups.len()),
            (7, &b"hi"[..], 2)
        );
    }

    #[test]
    fn inconsistent_lengths_are_errors() {
        let mut v = Vec::new();
        encode_join(b"#a#d", b"g", &mut v);
        let h = Header::decode_prefix(&v).unwrap();
        assert!(MessageRef::decode(h, &v[HEADER_LEN..v.len() - 1]).is_err());
        assert!(MessageRef::decode_request(h, &v[HEADER_LEN..]).is_ok());
    }
}
