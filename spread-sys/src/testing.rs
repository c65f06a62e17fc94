//! For tests and benchmarks of clients: the daemon's side of a successful handshake over any
//! blocking stream, so a test can stand in for a daemon with a plain socket.

use std::io::{self, Read, Write};

use crate::wire::constants::AUTH_CHOICE_LEN;
use crate::wire::handshake::{Accept, ConnectParse, encode_auth_list, parse_connect};

/// Read the client's connect message (it must arrive in one read), offer `NULL` authentication,
/// read the choice and accept the session as `#<its name>#localhost`. Returns that private group.
pub fn serve_handshake<S: Read + Write>(s: &mut S) -> io::Result<Vec<u8>> {
    let mut buf = [0u8; 64];
    let n = s.read(&mut buf)?;
    let ConnectParse::Complete(req, used) = parse_connect(&buf[..n]) else {
        return Err(io::Error::other("bad connect message"));
    };
    if used != n {
        return Err(io::Error::other(
            "the connect message must arrive in one write",
        ));
    }
    let mut out = Vec::new();
    encode_auth_list(&["NULL"], &mut out);
    s.write_all(&out)?;
    let mut choice = [0u8; AUTH_CHOICE_LEN];
    s.read_exact(&mut choice)?;
    let private_group = [b"#", &req.name[..], b"#localhost"].concat();
    out.clear();
    Accept::for_client(&req, &private_group).encode(&mut out);
    s.write_all(&out)?;
    Ok(private_group)
}
