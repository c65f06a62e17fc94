//! Spread's client protocol (what libspread does), in pure Rust.
//!
//! * [`wire`] is the sans-IO core: pure encode/decode functions over byte slices for both sides of the
//!   connection (client and daemon). It never touches a socket, so it is replayed byte for byte against
//!   the transcripts recorded from a real Spread 5.0.1 daemon (`spread-sys/tests/vectors/`).
//! * [`Mailbox`] is a thin blocking client on top (libsp semantics: connect, join, leave, multicast,
//!   receive, disconnect), with connect and send timeouts so a caller can bound its time.
//! * [`names`] holds the one set of name rules (groups, private and daemon names, hosts).
//! * [`spread_name`] parses the `4803` / `4803@host` / `/path` daemon names every part accepts.
//! * [`spool`] is the one on-disk spool record format every part uses (CONTRACTS §5).
//! * [`seq`] numbers lines; [`control`] is the control channel's format (next-number
//!   announcements, hand-overs) and [`announce`] the senders' schedule for announcing.
//!
//! Receiving the way a collector does (zero-copy, everything readable at once), and the guarantees
//! the senders rely on (one `send(2)` per message, bounded time, at-least-once spool):
//!
//! ```no_run
//! use std::time::Duration;
//! use spread_sys::{ConnectOptions, Error, Mailbox, Message, service};
//!
//! # fn main() -> Result<(), Error> {
//! // A sender: named session, no membership messages, bounded connect and sends.
//! let mut opts = ConnectOptions::named("web1-4711");
//! opts.group_membership = false;
//! opts.connect_timeout = Some(Duration::from_millis(500));
//! opts.send_timeout = Some(Duration::from_millis(200));
//! let mut tx = Mailbox::connect("4803@127.0.0.1", &opts)?;
//! let mess_type = spread_sys::seq::mess_type_for(0);
//! match tx.multicast(service::AGREED_MESS, &["logs"], mess_type, b"GET / 200\n") {
//!     Ok(_) => {}                       // handed over (CONTRACTS §1)
//!     Err(e) => eprintln!("not handed over (Spread code {}): {e}", e.code()), // spool it
//! }
//!
//! // A collector: join, then drain everything readable per wake-up without copying.
//! let mut rx = Mailbox::connect("4803", &ConnectOptions::named("logger"))?;
//! rx.join("logs")?;
//! rx.receive_batch(true, |m| {
//!     if m.is_regular() {
//!         let (mess_type, _endian_mismatch) = m.mess_type();
//!         let _ = (m.sender(), m.group(0), mess_type, m.body);
//!     }
//! })?;
//! // Or libspread's owned view, membership details included.
//! if let Message::Membership(m) = rx.receive()? {
//!     println!("{} now has {} members", m.group, m.members.len());
//! }
//! rx.disconnect()?;
//! # Ok(())
//! # }
//! ```

pub mod announce;
pub mod cli;
pub mod control;
pub mod error;
pub mod mailbox;
pub mod metrics;
pub mod names;
pub mod private_name;
pub mod ring;
pub mod sender;
pub mod seq;
pub mod spool;
pub mod spread_name;
pub mod stream;
pub mod testing;
pub mod window;
pub mod wire;

pub use error::{Error, Result};
pub use mailbox::{ConnectOptions, Mailbox, MulticastTemplate};
pub use spread_name::SpreadName;
pub use wire::constants::{self as service, code};
pub use wire::message::{DataMessage, GroupId, MembershipMessage, Message, MessageRef};
