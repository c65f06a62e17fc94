//! Protocol constants (PROTOCOL.md §1, §4.3, §11).

pub const UNRELIABLE_MESS: u32 = 0x0000_0001;
pub const RELIABLE_MESS: u32 = 0x0000_0002;
pub const FIFO_MESS: u32 = 0x0000_0004;
pub const CAUSAL_MESS: u32 = 0x0000_0008;
pub const AGREED_MESS: u32 = 0x0000_0010;
pub const SAFE_MESS: u32 = 0x0000_0020;
pub const REGULAR_MESS: u32 = 0x0000_003f;
pub const SELF_DISCARD: u32 = 0x0000_0040;
pub const CAUSED_BY_JOIN: u32 = 0x0000_0100;
pub const CAUSED_BY_LEAVE: u32 = 0x0000_0200;
pub const CAUSED_BY_DISCONNECT: u32 = 0x0000_0400;
pub const CAUSED_BY_NETWORK: u32 = 0x0000_0800;
pub const REG_MEMB_MESS: u32 = 0x0000_1000;
pub const TRANSITION_MESS: u32 = 0x0000_2000;
pub const MEMBERSHIP_MESS: u32 = 0x0000_3f00;
pub const JOIN_MESS: u32 = 0x0001_0000;
pub const LEAVE_MESS: u32 = 0x0002_0000;
pub const KILL_MESS: u32 = 0x0004_0000;
pub const GROUPS_MESS: u32 = 0x0008_0000;
pub const REJECT_MESS: u32 = 0x0040_0000;
pub const DROP_RECV: u32 = 0x0100_0000;
pub const ENDIAN_MARKER: u32 = 0x8000_0080;

pub const HEADER_LEN: usize = 48;
pub const MAX_GROUP_NAME: usize = 32;
pub const MAX_PRIVATE_NAME: usize = 10;
pub const MAX_PROC_NAME: usize = 20;
pub const MAX_GROUPS_PER_MESSAGE: usize = 100;
/// libspread's limit on body + 32 x groups.
pub const MAX_MESSAGE_BODY_LEN: usize = 144_000;
/// Largest body + 32 x groups a real 5.0.1 daemon survives (CONTRACTS §3); our client refuses more.
pub const MAX_SAFE_MESSAGE_LEN: usize = 143_152;
/// The daemon kills a session whose request exceeds this (PROTOCOL §5.6).
pub const DAEMON_KILL_LEN: usize = 143_952;
pub const MAX_SESSIONS: usize = 997;
pub const DEFAULT_MAX_SESSION_MESSAGES: usize = 1000;
pub const DEFAULT_PORT: u16 = 4803;
pub const AUTH_CHOICE_LEN: usize = 90;
pub const MAX_AUTH_NAME: usize = 30;
/// Version our client announces and our daemon reports.
pub const VERSION: (u8, u8, u8) = (5, 0, 1);

/// Spread's numeric codes (sp.h, PROTOCOL.md §11).
pub mod code {
    pub const ACCEPT_SESSION: i32 = 1;
    pub const ILLEGAL_SPREAD: i32 = -1;
    pub const COULD_NOT_CONNECT: i32 = -2;
    pub const REJECT_QUOTA: i32 = -3;
    pub const REJECT_NO_NAME: i32 = -4;
    pub const REJECT_ILLEGAL_NAME: i32 = -5;
    pub const REJECT_NOT_UNIQUE: i32 = -6;
    pub const REJECT_VERSION: i32 = -7;
    pub const CONNECTION_CLOSED: i32 = -8;
    pub const REJECT_AUTH: i32 = -9;
    pub const ILLEGAL_SESSION: i32 = -11;
    pub const ILLEGAL_SERVICE: i32 = -12;
    pub const ILLEGAL_MESSAGE: i32 = -13;
    pub const ILLEGAL_GROUP: i32 = -14;
    pub const BUFFER_TOO_SHORT: i32 = -15;
    pub const GROUPS_TOO_SHORT: i32 = -16;
    pub const MESSAGE_TOO_LONG: i32 = -17;
    pub const NET_ERROR_ON_SESSION: i32 = -18;
    pub const SP_BUG: i32 = -19;
    pub const ILLEGAL_TIME: i32 = -20;
}
