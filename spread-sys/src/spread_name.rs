//! Daemon names as every part accepts them (CONTRACTS §3): `4803` -> unix socket `/tmp/4803`,
//! `4803@host` / `4803@[::1]` -> TCP, empty -> `4803`, an absolute path -> that unix socket.

use std::net::SocketAddr;
use std::path::PathBuf;

use crate::Result;

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SpreadName {
    Unix(PathBuf),
    Tcp { host: String, port: u16 },
}

impl SpreadName {
    /// Parse without resolving anything (safe on a request path).
    pub fn parse(s: &str) -> Result<SpreadName> {
        let _ = s;
        todo!()
    }
    /// Resolve a TCP host (getaddrinfo); done at config time, never per message.
    pub fn resolve(&self) -> Result<Endpoint> {
        todo!()
    }
}

impl std::fmt::Display for SpreadName {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let _ = f;
        todo!()
    }
}

/// A resolved, connectable address.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Endpoint {
    Unix(PathBuf),
    Tcp(SocketAddr),
}
