//! The spool: lines not handed over to a daemon, kept on disk to be replayed (CONTRACTS §5).
//! [`record`] is the on-disk record format (pure, over bytes); [`store`] the files, locks, cap
//! and replay built on it. Everything is re-exported here.

pub mod fill;
pub mod record;
pub mod store;

pub use fill::FillAlarm;
pub use record::*;
pub use store::*;
