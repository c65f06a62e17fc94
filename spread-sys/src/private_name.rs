//! Private names of every Spread connection this project opens (CONTRACTS "Names"), in one place:
//! 10 bytes, unique across a farm sharing one daemon and stable for a process's life.
//!
//! Senders (the module's children, spread-pipe): one role letter, four base-36 digits of the host
//! name's FNV-1a hash, five base-36 digits of the pid (pids < 36^5 = 60466176). When the daemon
//! still holds a name (REJECT_NOT_UNIQUE), `attempt` moves the role letter on. spreadlogd keeps
//! the original's `sld-<pid>` ([`collector`]).

const DIGITS: &[u8; 36] = b"0123456789abcdefghijklmnopqrstuvwxyz";

/// What a connection is for; each role has its own letter range so a child's sender and its
/// replayer never collide.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    /// Request-path sender (letters a..=m).
    Sender,
    /// Spool replayer (letters n..=s).
    Replayer,
    /// Membership probe (letters t..=z).
    Probe,
    /// spread-pipe (letters A..=M).
    Pipe,
    /// spread-pipe's membership probe (letters N..=Z).
    PipeProbe,
}

pub fn derive(role: Role, host: &str, pid: u32, attempt: u32) -> String {
    let (first, span) = match role {
        Role::Sender => (b'a', 13),
        Role::Replayer => (b'n', 6),
        Role::Probe => (b't', 7),
        Role::Pipe => (b'A', 13),
        Role::PipeProbe => (b'N', 13),
    };
    let mut name = Vec::with_capacity(10);
    name.push(first + (attempt % span) as u8);
    push_base36(
        &mut name,
        crate::names::fnv1a32(host.as_bytes()) % 36u32.pow(4),
        4,
    );
    push_base36(&mut name, pid % 36u32.pow(5), 5);
    String::from_utf8(name).expect("ASCII digits")
}

/// spreadlogd's name: `sld-<pid>` like the original, cut to Spread's 10 bytes; after a
/// REJECT_NOT_UNIQUE (the daemon still holds our old session) `s<attempt>-<pid>`.
pub fn collector(pid: u32, attempt: u32) -> String {
    let mut n = if attempt == 0 {
        format!("sld-{pid}")
    } else {
        format!("s{attempt}-{pid}")
    };
    n.truncate(10);
    n
}

/// This host's name (for [`derive`]); empty if the kernel will not say.
pub fn host_name() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|h| h.trim().to_owned())
        .unwrap_or_default()
}

fn push_base36(out: &mut Vec<u8>, mut value: u32, width: usize) {
    let start = out.len();
    for _ in 0..width {
        out.push(DIGITS[(value % 36) as usize]);
        value /= 36;
    }
    out[start..].reverse();
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ten_legal_bytes() {
        for (host, pid) in [
            ("web1", 1u32),
            ("a.very.long.host.name.example.com", 4_194_304),
            ("", 0),
        ] {
            let n = derive(Role::Sender, host, pid, 0);
            assert_eq!(n.len(), 10);
            assert!(n.bytes().all(|b| (0x24..=0x7e).contains(&b)), "{n}");
        }
    }

    #[test]
    fn distinct_by_pid_host_role_and_attempt() {
        let a = derive(Role::Sender, "web1", 100, 0);
        assert_ne!(a, derive(Role::Sender, "web1", 101, 0));
        assert_ne!(a, derive(Role::Sender, "web2", 100, 0));
        assert_ne!(a, derive(Role::Replayer, "web1", 100, 0));
        assert_ne!(a, derive(Role::Probe, "web1", 100, 0));
        assert_ne!(a, derive(Role::Pipe, "web1", 100, 0));
        assert_ne!(
            derive(Role::Pipe, "web1", 100, 0),
            derive(Role::PipeProbe, "web1", 100, 0)
        );
        assert!(collector(4_194_304, 0).len() <= 10 && collector(99, 3) == "s3-99");
        assert_ne!(a, derive(Role::Sender, "web1", 100, 1));
        assert_eq!(a, derive(Role::Sender, "web1", 100, 0));
        assert_eq!(
            derive(Role::Sender, "web1", 100, 0),
            derive(Role::Sender, "web1", 100, 13)
        );
    }
}
