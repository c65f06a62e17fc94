//! The thin FFI edge: module record, directive table, hooks, writer, error-log hook, status page.
//! Everything that decides something lives in the pure modules; this layer converts and calls.

pub mod directives;
pub mod errorlog;
pub mod hooks;
pub mod module_def;
pub mod server;
pub mod state;
pub mod status;
pub mod util;
pub mod writer;
