//! Daemon names as every part accepts them (CONTRACTS §3): `4803` -> unix socket `/tmp/4803`,
//! `4803@host` / `4803@[::1]` -> TCP, empty -> `4803`, an absolute path -> that unix socket.

use std::net::{SocketAddr, ToSocketAddrs};
use std::path::PathBuf;

use crate::wire::constants::DEFAULT_PORT;
use crate::{Error, Result};

/// Directory of the unix socket for a bare port (Spread's compiled-in default).
pub const UNIX_SOCKET_DIR: &str = "/tmp";

/// libspread's bound on the whole name (MAXHOSTNAMELEN + 7, with Linux's 64).
const MAX_SPREAD_NAME: usize = 64 + 7;

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SpreadName {
    Unix(PathBuf),
    Tcp { host: String, port: u16 },
}

fn parse_port(s: &str, whole: &str) -> Result<u16> {
    let bad = || Error::IllegalSpread(format!("{whole}: {s:?} is not a port number (1-65535)"));
    if s.is_empty() || !s.bytes().all(|b| b.is_ascii_digit()) {
        return Err(bad());
    }
    match s.parse::<u16>() {
        Ok(0) | Err(_) => Err(bad()),
        Ok(p) => Ok(p),
    }
}

impl SpreadName {
    /// Parse without resolving anything (safe on a request path).
    pub fn parse(s: &str) -> Result<SpreadName> {
        if s.starts_with('/') {
            if s.contains('\0') {
                return Err(Error::IllegalSpread(format!("{s:?}: NUL in socket path")));
            }
            return Ok(SpreadName::Unix(PathBuf::from(s)));
        }
        if s.len() >= MAX_SPREAD_NAME {
            return Err(Error::IllegalSpread(format!(
                "{s}: longer than {} bytes",
                MAX_SPREAD_NAME - 1
            )));
        }
        if s.is_empty() {
            return Ok(SpreadName::Unix(PathBuf::from(format!(
                "{UNIX_SOCKET_DIR}/{DEFAULT_PORT}"
            ))));
        }
        let Some((port, host)) = s.split_once('@') else {
            let port = parse_port(s, s)?;
            return Ok(SpreadName::Unix(PathBuf::from(format!(
                "{UNIX_SOCKET_DIR}/{port}"
            ))));
        };
        let port = parse_port(port, s)?;
        let host = match host.strip_prefix('[') {
            Some(inner) => inner
                .strip_suffix(']')
                .filter(|h| h.contains(':'))
                .ok_or_else(|| Error::IllegalSpread(format!("{s}: bad [IPv6] host")))?,
            None => host,
        };
        let host_ok = |b: u8| b.is_ascii_alphanumeric() || b"-._:%".contains(&b);
        if host.is_empty() || !host.bytes().all(host_ok) {
            return Err(Error::IllegalSpread(format!("{s}: bad host name {host:?}")));
        }
        Ok(SpreadName::Tcp {
            host: host.to_owned(),
            port,
        })
    }
    /// Resolve a TCP host (getaddrinfo); done at config time, never per message.
    pub fn resolve(&self) -> Result<Endpoint> {
        match self {
            SpreadName::Unix(p) => Ok(Endpoint::Unix(p.clone())),
            SpreadName::Tcp { host, port } => {
                let first = (host.as_str(), *port)
                    .to_socket_addrs()
                    .map_err(|e| {
                        Error::IllegalSpread(format!("{self}: cannot resolve {host}: {e}"))
                    })?
                    .next();
                first
                    .map(Endpoint::Tcp)
                    .ok_or_else(|| Error::IllegalSpread(format!("{self}: {host} has no address")))
            }
        }
    }
}

impl std::fmt::Display for SpreadName {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            SpreadName::Unix(p) => write!(f, "{}", p.display()),
            SpreadName::Tcp { host, port } if host.contains(':') => write!(f, "{port}@[{host}]"),
            SpreadName::Tcp { host, port } => write!(f, "{port}@{host}"),
        }
    }
}

/// A resolved, connectable address.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Endpoint {
    Unix(PathBuf),
    Tcp(SocketAddr),
}

impl std::fmt::Display for Endpoint {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Endpoint::Unix(p) => write!(f, "unix:{}", p.display()),
            Endpoint::Tcp(a) => write!(f, "tcp:{a}"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn unix(p: &str) -> SpreadName {
        SpreadName::Unix(PathBuf::from(p))
    }

    #[test]
    fn parses_every_form() {
        assert_eq!(SpreadName::parse("").unwrap(), unix("/tmp/4803"));
        assert_eq!(SpreadName::parse("4803").unwrap(), unix("/tmp/4803"));
        assert_eq!(SpreadName::parse("14803").unwrap(), unix("/tmp/14803"));
        assert_eq!(
            SpreadName::parse("/run/spread/4803").unwrap(),
            unix("/run/spread/4803")
        );
        assert_eq!(
            SpreadName::parse("4803@127.0.0.1").unwrap(),
            SpreadName::Tcp {
                host: "127.0.0.1".into(),
                port: 4803
            }
        );
        assert_eq!(
            SpreadName::parse("4803@[::1]").unwrap(),
            SpreadName::Tcp {
                host: "::1".into(),
                port: 4803
            }
        );
        assert_eq!(
            SpreadName::parse("80@web-1.example.org")
                .unwrap()
                .to_string(),
            "80@web-1.example.org"
        );
        assert_eq!(
            SpreadName::parse("4803@[::1]").unwrap().to_string(),
            "4803@[::1]"
        );
    }

    #[test]
    fn refuses_garbage() {
        for bad in [
            "abc",
            "4803x",
            "0",
            "70000",
            "@host",
            "4803@",
            "4803@[::1",
            "4803@a b",
            "-1",
            "4803@[host]",
        ] {
            let e = SpreadName::parse(bad).unwrap_err();
            assert_eq!(e.code(), crate::code::ILLEGAL_SPREAD, "{bad}");
        }
        assert!(SpreadName::parse(&format!("4803@{}", "h".repeat(80))).is_err());
    }

    #[test]
    fn resolves_loopback() {
        let e = SpreadName::parse("4803@127.0.0.1")
            .unwrap()
            .resolve()
            .unwrap();
        assert_eq!(e, Endpoint::Tcp("127.0.0.1:4803".parse().unwrap()));
        let e = SpreadName::parse("4803@[::1]").unwrap().resolve().unwrap();
        assert_eq!(e, Endpoint::Tcp("[::1]:4803".parse().unwrap()));
        assert_eq!(
            SpreadName::parse("9").unwrap().resolve().unwrap(),
            Endpoint::Unix("/tmp/9".into())
        );
        assert!(
            SpreadName::parse("4803@no-such-host.invalid")
                .unwrap()
                .resolve()
                .is_err()
        );
    }
}
