//! The group table: who is in which group, in `strcmp` order of private group names, and each
//! group's change counter (group_id.id[2], PROTOCOL.md §7).

use std::collections::BTreeMap;

/// Names hash with foldhash: every multicast looks its group up, and SipHash (std's default)
/// was a sixth of the daemon's instructions per message. foldhash's seed is random per process,
/// and the number of groups is capped, so crafted names cannot make the table slow.
pub type NameMap<V> = foldhash::HashMap<Vec<u8>, V>;

use super::SessionId;

#[derive(Debug, Default)]
pub struct Group {
    /// Private group name -> session; byte-wise order = C `strcmp` order for NUL-free names.
    pub members: BTreeMap<Vec<u8>, SessionId>,
    /// 1 at creation, +1 on every change.
    pub counter: u32,
}

impl Group {
    /// The sorted member names, as the membership message lists them.
    pub fn member_names(&self) -> Vec<&[u8]> {
        self.members.keys().map(Vec::as_slice).collect()
    }
}

#[derive(Debug, Default)]
pub struct Groups {
    map: NameMap<Group>,
}

/// What a join or leave did.
#[derive(Debug, PartialEq, Eq)]
pub enum Change {
    /// Nothing changed (duplicate join, leave of a non-member): send nothing.
    None,
    /// The group changed and still has members.
    Changed,
    /// The last member left: the group is gone.
    Destroyed,
}

impl Groups {
    pub fn get(&self, name: &[u8]) -> Option<&Group> {
        self.map.get(name)
    }

    pub fn len(&self) -> usize {
        self.map.len()
    }

    pub fn join(&mut self, group: &[u8], private_group: &[u8], id: SessionId) -> Change {
        let g = self.map.entry(group.to_vec()).or_default();
        if g.members.contains_key(private_group) {
            return Change::None;
        }
        g.members.insert(private_group.to_vec(), id);
        g.counter += 1;
        Change::Changed
    }

    pub fn leave(&mut self, group: &[u8], private_group: &[u8]) -> Change {
        let Some(g) = self.map.get_mut(group) else {
            return Change::None;
        };
        if g.members.remove(private_group).is_none() {
            return Change::None;
        }
        if g.members.is_empty() {
            self.map.remove(group);
            return Change::Destroyed;
        }
        g.counter += 1;
        Change::Changed
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counters_and_destruction() {
        let mut gs = Groups::default();
        assert_eq!(gs.join(b"g", b"#b#x", 1), Change::Changed);
        assert_eq!(gs.get(b"g").unwrap().counter, 1);
        assert_eq!(gs.join(b"g", b"#b#x", 1), Change::None);
        assert_eq!(gs.join(b"g", b"#a#x", 2), Change::Changed);
        assert_eq!(gs.get(b"g").unwrap().counter, 2);
        assert_eq!(
            gs.get(b"g").unwrap().member_names(),
            vec![&b"#a#x"[..], &b"#b#x"[..]]
        );
        assert_eq!(gs.leave(b"g", b"#zz#x"), Change::None);
        assert_eq!(gs.leave(b"nope", b"#a#x"), Change::None);
        assert_eq!(gs.leave(b"g", b"#a#x"), Change::Changed);
        assert_eq!(gs.get(b"g").unwrap().counter, 3);
        assert_eq!(gs.leave(b"g", b"#b#x"), Change::Destroyed);
        assert!(gs.get(b"g").is_none());
        assert_eq!(gs.join(b"g", b"#b#x", 1), Change::Changed);
        assert_eq!(
            gs.get(b"g").unwrap().counter,
            1,
            "a re-created group starts again at 1"
        );
    }
}
