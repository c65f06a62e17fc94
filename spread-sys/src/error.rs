//! The client-side error type; every variant maps to Spread's numeric code (`Error::code`).

use crate::wire::constants::code;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("illegal spread name: {0}")]
    IllegalSpread(String),
    #[error("could not connect to spread daemon {target}: {source}")]
    CouldNotConnect {
        target: String,
        source: std::io::Error,
    },
    #[error("daemon refused the session: too many sessions (REJECT_QUOTA)")]
    RejectQuota,
    #[error("daemon refused the session: no name (REJECT_NO_NAME)")]
    RejectNoName,
    #[error("illegal private name {0:?} (1-10 bytes in 0x24..0x7E)")]
    RejectIllegalName(String),
    #[error("private name {0:?} is already in use on the daemon (REJECT_NOT_UNIQUE)")]
    RejectNotUnique(String),
    #[error("daemon refused our protocol version (REJECT_VERSION)")]
    RejectVersion,
    #[error("connection to the daemon closed: {0}")]
    ConnectionClosed(String),
    #[error("daemon refused authentication (REJECT_AUTH)")]
    RejectAuth,
    #[error("illegal service type {0:#x}: exactly one of the six regular bits is needed")]
    IllegalService(u32),
    #[error("illegal message from the daemon: {0}")]
    IllegalMessage(String),
    #[error("illegal group name {0:?} (1-31 bytes in 0x24..0x7E)")]
    IllegalGroup(String),
    #[error("message too long: {len} bytes (body + 32 x groups) > {max}")]
    MessageTooLong { len: usize, max: usize },
    #[error("too many destination groups: {0} > 100")]
    TooManyGroups(usize),
    #[error("mailbox unusable after an earlier connection error")]
    NetErrorOnSession,
    #[error("timed out after {0:?}")]
    Timeout(std::time::Duration),
    #[error("invalid timeout")]
    IllegalTime,
    #[error("operation would block")]
    WouldBlock,
}

impl Error {
    /// Spread's numeric error code (sp.h), as libspread would return it.
    pub fn code(&self) -> i32 {
        match self {
            Error::IllegalSpread(_) => code::ILLEGAL_SPREAD,
            Error::CouldNotConnect { .. } => code::COULD_NOT_CONNECT,
            Error::RejectQuota => code::REJECT_QUOTA,
            Error::RejectNoName => code::REJECT_NO_NAME,
            Error::RejectIllegalName(_) => code::REJECT_ILLEGAL_NAME,
            Error::RejectNotUnique(_) => code::REJECT_NOT_UNIQUE,
            Error::RejectVersion => code::REJECT_VERSION,
            Error::ConnectionClosed(_) | Error::Timeout(_) | Error::WouldBlock => {
                code::CONNECTION_CLOSED
            }
            Error::RejectAuth => code::REJECT_AUTH,
            Error::IllegalService(_) => code::ILLEGAL_SERVICE,
            Error::IllegalMessage(_) => code::ILLEGAL_MESSAGE,
            Error::IllegalGroup(_) | Error::TooManyGroups(_) => code::ILLEGAL_GROUP,
            Error::MessageTooLong { .. } => code::MESSAGE_TOO_LONG,
            Error::NetErrorOnSession => code::NET_ERROR_ON_SESSION,
            Error::IllegalTime => code::ILLEGAL_TIME,
        }
    }
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_are_spreads() {
        let io = || std::io::Error::other("x");
        let cases: Vec<(Error, i32)> = vec![
            (Error::IllegalSpread("x".into()), -1),
            (
                Error::CouldNotConnect {
                    target: "t".into(),
                    source: io(),
                },
                -2,
            ),
            (Error::RejectQuota, -3),
            (Error::RejectNoName, -4),
            (Error::RejectIllegalName("a#b".into()), -5),
            (Error::RejectNotUnique("dup".into()), -6),
            (Error::RejectVersion, -7),
            (Error::ConnectionClosed("eof".into()), -8),
            (Error::Timeout(std::time::Duration::from_secs(1)), -8),
            (Error::RejectAuth, -9),
            (Error::IllegalService(0), -12),
            (Error::IllegalMessage("m".into()), -13),
            (Error::IllegalGroup("#g".into()), -14),
            (Error::TooManyGroups(101), -14),
            (Error::MessageTooLong { len: 1, max: 0 }, -17),
            (Error::NetErrorOnSession, -18),
            (Error::IllegalTime, -20),
        ];
        for (e, want) in cases {
            assert_eq!(e.code(), want, "{e}");
        }
    }
}
