//! CustomLog / SpreadErrorLog target grammar (CONTRACTS §4):
//! `target := alt ("," alt)*`, `alt := "$" name ["#" id]`, `name := group | "#hostname" | "#vhost"`.
//! The first alternative is used; each further one only when the previous could not be handed over.

use spread_sys::names::{self, MAX_GROUP_LEN, NameError};

/// Where one alternative sends its lines.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum GroupSpec {
    /// A fixed group.
    Named(String),
    /// `$#hostname`: the group is the request's (validated) host name.
    Hostname,
    /// `$#vhost`: the group is the host's hash bucket, the line gets a `host ` prefix.
    Vhost,
}

/// One alternative of a target: a group on a daemon.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Alternative {
    pub group: GroupSpec,
    pub daemon_id: u32,
    /// Its slot in [`crate::group_counters`] (given out at parse time, in the parent).
    pub tally: u16,
}

impl Alternative {
    pub fn new(group: GroupSpec, daemon_id: u32) -> Alternative {
        let tally = crate::group_counters::slot_for(match &group {
            GroupSpec::Named(g) => g,
            GroupSpec::Hostname => "#hostname",
            GroupSpec::Vhost => "#vhost",
        });
        Alternative {
            group,
            daemon_id,
            tally,
        }
    }
}

/// A parsed target: alternatives in failover order (never empty).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Target {
    pub alternatives: Vec<Alternative>,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TargetError {
    #[error("empty Spread target")]
    Empty,
    #[error(
        "alternative {0:?} must start with '$' (targets look like $group, $group#id, $a,$b#1, $#hostname, $#vhost)"
    )]
    MissingDollar(String),
    #[error("alternative {0:?} has an empty group name")]
    EmptyGroup(String),
    #[error("group name {name:?} is longer than {MAX_GROUP_LEN} bytes")]
    GroupTooLong { name: String },
    #[error(
        "group name {name:?} contains {byte:?}; allowed are printable ASCII from '$' to '~' except ',', '#' and '/'"
    )]
    BadGroupByte { name: String, byte: char },
    #[error("group {0:?} is the control channel between senders and collectors, not a log group")]
    ReservedGroup(String),
    #[error("magic group {0:?} is unknown (only #hostname and #vhost exist)")]
    UnknownMagic(String),
    #[error("daemon id {0:?} in a target is not a non-negative integer")]
    BadDaemonId(String),
}

/// True for targets this module owns (everything else is chained to mod_log_config's writer).
pub fn is_spread_target(target: &str) -> bool {
    target.starts_with('$')
}

/// Parse a whole target.
pub fn parse(target: &str) -> Result<Target, TargetError> {
    if target.trim().is_empty() {
        return Err(TargetError::Empty);
    }
    let alternatives = target
        .split(',')
        .map(|alt| parse_alternative(alt.trim()))
        .collect::<Result<Vec<_>, _>>()?;
    Ok(Target { alternatives })
}

fn parse_alternative(alt: &str) -> Result<Alternative, TargetError> {
    let rest = alt
        .strip_prefix('$')
        .ok_or_else(|| TargetError::MissingDollar(alt.to_owned()))?;
    // A leading '#' is a magic name; the daemon id follows the *last* '#' after the name.
    let (magic, body) = match rest.strip_prefix('#') {
        Some(after) => (true, after),
        None => (false, rest),
    };
    let (name, daemon_id) = match body.split_once('#') {
        Some((name, id)) => {
            let id = id
                .parse::<u32>()
                .map_err(|_| TargetError::BadDaemonId(id.to_owned()))?;
            (name, id)
        }
        None => (body, 0),
    };
    if name.is_empty() {
        return Err(TargetError::EmptyGroup(alt.to_owned()));
    }
    let group = if magic {
        match name {
            "hostname" => GroupSpec::Hostname,
            "vhost" => GroupSpec::Vhost,
            other => return Err(TargetError::UnknownMagic(format!("#{other}"))),
        }
    } else {
        validate_group_name(name)?;
        GroupSpec::Named(name.to_owned())
    };
    Ok(Alternative::new(group, daemon_id))
}

/// A group name we can put on the wire and in a target (Spread: 1-31 bytes in 0x24..=0x7E).
pub fn validate_group_name(name: &str) -> Result<(), TargetError> {
    // The target grammar's own separators first: ',' between alternatives, '#' before an id.
    if let Some(bad) = name.bytes().find(|&b| b == b',' || b == b'#' || b == b'/') {
        return Err(TargetError::BadGroupByte {
            name: name.to_owned(),
            byte: bad as char,
        });
    }
    names::check_log_group(name.as_bytes()).map_err(|e| match e {
        NameError::Empty => TargetError::EmptyGroup(name.to_owned()),
        NameError::TooLong { .. } => TargetError::GroupTooLong {
            name: name.to_owned(),
        },
        NameError::IllegalByte { byte, .. } => TargetError::BadGroupByte {
            name: name.to_owned(),
            byte: byte as char,
        },
        NameError::Reserved => TargetError::ReservedGroup(name.to_owned()),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn named(g: &str, id: u32) -> Alternative {
        Alternative::new(GroupSpec::Named(g.into()), id)
    }

    #[test]
    fn every_form() {
        assert_eq!(parse("$www").unwrap().alternatives, vec![named("www", 0)]);
        assert_eq!(parse("$www#2").unwrap().alternatives, vec![named("www", 2)]);
        assert_eq!(
            parse("$a,$b#1").unwrap().alternatives,
            vec![named("a", 0), named("b", 1)]
        );
        assert_eq!(
            parse("$#hostname").unwrap().alternatives,
            vec![Alternative::new(GroupSpec::Hostname, 0)]
        );
        assert_eq!(
            parse("$#vhost#3,$fallback").unwrap().alternatives,
            vec![Alternative::new(GroupSpec::Vhost, 3), named("fallback", 0)]
        );
    }

    #[test]
    fn recognises_its_targets() {
        assert!(is_spread_target("$x"));
        assert!(!is_spread_target("logs/access.log"));
        assert!(!is_spread_target("|/usr/bin/rotatelogs"));
    }

    #[test]
    fn errors_are_specific() {
        assert_eq!(parse(""), Err(TargetError::Empty));
        assert!(matches!(parse("$a,b"), Err(TargetError::MissingDollar(_))));
        assert!(matches!(parse("$"), Err(TargetError::EmptyGroup(_))));
        assert!(matches!(parse("$#1"), Err(TargetError::UnknownMagic(_))));
        assert!(matches!(
            parse("$#bogus"),
            Err(TargetError::UnknownMagic(_))
        ));
        assert!(matches!(parse("$a#x"), Err(TargetError::BadDaemonId(_))));
        assert!(matches!(parse("$a#-1"), Err(TargetError::BadDaemonId(_))));
        assert!(matches!(
            parse(&format!("${}", "g".repeat(32))),
            Err(TargetError::GroupTooLong { .. })
        ));
        assert!(parse(&format!("${}", "g".repeat(31))).is_ok());
        assert!(matches!(
            parse("$a b"),
            Err(TargetError::BadGroupByte { .. })
        ));
        assert!(matches!(
            parse("$a/b"),
            Err(TargetError::BadGroupByte { .. })
        ));
        assert!(matches!(
            parse("$caf\u{e9}"),
            Err(TargetError::BadGroupByte { .. })
        ));
    }

    #[test]
    fn the_control_group_is_no_target() {
        assert_eq!(
            parse("$mls.control"),
            Err(TargetError::ReservedGroup("mls.control".into()))
        );
        assert!(parse("$www,$mls.control#1").is_err());
    }

    #[test]
    fn error_messages_name_the_problem() {
        let e = parse("$a#x").unwrap_err().to_string();
        assert!(e.contains("\"x\""), "{e}");
    }
}
