//! The sans-IO protocol core: bytes in, values out, and values in, bytes out. No sockets here.
//! Client and daemon both use it, so the two sides cannot drift. PROTOCOL.md is the specification.

pub mod constants;
pub mod deframer;
pub mod handshake;
pub mod header;
pub mod membership;
pub mod message;
pub mod name;
