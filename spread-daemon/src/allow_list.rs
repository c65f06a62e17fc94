//! IP allow-list rules (`a.b.c.d/prefix`, `localhost`, `unix`), as Spread's `spread.access_ip` file
//! lists them. Used for the `IP` auth method and to gate TCP peers when listening beyond loopback.

use std::net::IpAddr;
use std::str::FromStr;

/// One allow-list entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum IpRule {
    /// An address block: `10.0.0.0/8`, `192.168.1.7` (= /32), `::1/128`.
    Net { addr: IpAddr, prefix: u8 },
    /// `localhost`: 127.0.0.0/8 and ::1.
    Localhost,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum IpRuleError {
    #[error("{0:?} is not an address or address/prefix")]
    BadAddress(String),
    #[error("prefix /{prefix} is too long for {addr}")]
    BadPrefix { addr: IpAddr, prefix: u8 },
}

impl FromStr for IpRule {
    type Err = IpRuleError;
    fn from_str(s: &str) -> Result<IpRule, IpRuleError> {
        let s = s.trim();
        if s.eq_ignore_ascii_case("localhost") {
            return Ok(IpRule::Localhost);
        }
        let (addr_s, prefix_s) = match s.split_once('/') {
            Some((a, p)) => (a, Some(p)),
            None => (s, None),
        };
        let addr: IpAddr = addr_s
            .parse()
            .map_err(|_| IpRuleError::BadAddress(s.to_owned()))?;
        let max = if addr.is_ipv4() { 32 } else { 128 };
        let prefix = match prefix_s {
            Some(p) => p
                .parse::<u8>()
                .map_err(|_| IpRuleError::BadAddress(s.to_owned()))?,
            None => max,
        };
        if prefix > max {
            return Err(IpRuleError::BadPrefix { addr, prefix });
        }
        Ok(IpRule::Net { addr, prefix })
    }
}

impl IpRule {
    pub fn matches(&self, peer: IpAddr) -> bool {
        let peer = canonical(peer);
        match self {
            IpRule::Localhost => peer.is_loopback(),
            IpRule::Net { addr, prefix } => match (addr, peer) {
                (IpAddr::V4(a), IpAddr::V4(p)) => {
                    let mask = if *prefix == 0 {
                        0
                    } else {
                        u32::MAX << (32 - prefix)
                    };
                    u32::from(*a) & mask == u32::from(p) & mask
                }
                (IpAddr::V6(a), IpAddr::V6(p)) => {
                    let mask = if *prefix == 0 {
                        0
                    } else {
                        u128::MAX << (128 - prefix)
                    };
                    u128::from(*a) & mask == u128::from(p) & mask
                }
                _ => false,
            },
        }
    }
}

/// IPv4-mapped IPv6 peers (`::ffff:a.b.c.d`) are matched as the IPv4 address they are.
fn canonical(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map(IpAddr::V4).unwrap_or(ip),
        v4 => v4,
    }
}

/// Whether any rule admits `peer`.
pub fn allowed(rules: &[IpRule], peer: IpAddr) -> bool {
    rules.iter().any(|r| r.matches(peer))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cidr_matching() {
        let r: IpRule = "10.1.0.0/16".parse().unwrap();
        assert!(r.matches("10.1.200.3".parse().unwrap()));
        assert!(!r.matches("10.2.0.1".parse().unwrap()));
        assert!(r.matches("::ffff:10.1.0.9".parse().unwrap()));
        let one: IpRule = "192.168.1.7".parse().unwrap();
        assert!(one.matches("192.168.1.7".parse().unwrap()));
        assert!(!one.matches("192.168.1.8".parse().unwrap()));
        let all: IpRule = "0.0.0.0/0".parse().unwrap();
        assert!(all.matches("8.8.8.8".parse().unwrap()));
        assert!(IpRule::Localhost.matches("127.3.4.5".parse().unwrap()));
        assert!(!IpRule::Localhost.matches("10.0.0.1".parse().unwrap()));
    }

    #[test]
    fn bad_rules_are_errors() {
        assert!("10.0.0.0/33".parse::<IpRule>().is_err());
        assert!("ten".parse::<IpRule>().is_err());
        assert!("10.0.0.1/x".parse::<IpRule>().is_err());
    }
}
