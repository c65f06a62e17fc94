//! Spread's client protocol (what libspread does), in pure Rust.
//!
//! * [`wire`] is the sans-IO core: pure encode/decode functions over byte slices for both sides of the
//!   connection (client and daemon). It never touches a socket, so it is replayed byte for byte against
//!   the transcripts recorded from a real Spread 5.0.1 daemon (`shared/spread/vectors/`).
//! * [`Mailbox`] is a thin blocking client on top (libsp semantics: connect, join, leave, multicast,
//!   receive, disconnect), with connect and send timeouts so a caller can bound its time.
//! * [`spread_name`] parses the `4803` / `4803@host` / `/path` daemon names every part accepts.
//! * [`spool`] is the one on-disk spool record format every part uses (CONTRACTS §5).
//!
//! ```no_run
//! use spread_sys::{Mailbox, ConnectOptions, service};
//! let mut mb = Mailbox::connect("4803", &ConnectOptions::named("alice")).unwrap();
//! mb.join("logs").unwrap();
//! mb.multicast(service::AGREED_MESS, &["logs"], 0, b"hello\n").unwrap();
//! let msg = mb.receive().unwrap();
//! ```

pub mod error;
pub mod mailbox;
pub mod seq;
pub mod spool;
pub mod spread_name;
pub mod wire;

pub use error::{Error, Result};
pub use mailbox::{ConnectOptions, Mailbox};
pub use spread_name::SpreadName;
pub use wire::constants::{self as service, code};
pub use wire::message::{DataMessage, GroupId, MembershipMessage, Message, MessageRef};
