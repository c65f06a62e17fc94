//! What every command-line program of the project (`spread-daemon`, `spreadlogd`, `spread-tail`,
//! `spread-pipe`) does alike, so an operator meets one convention:
//!
//! * `-h`/`--help` prints the usage to stdout and exits 0;
//! * `-V`/`--version` prints `NAME VERSION` to stdout and exits 0;
//! * a wrong command line (unknown option, missing or malformed value, stray argument) prints
//!   one line `NAME: reason (see NAME --help)` to stderr and exits [`EXIT_USAGE`] (2);
//! * any other reason to stop (a configuration that does not hold, a failure at run time) prints
//!   one line `NAME: reason` to stderr and exits [`EXIT_FAILURE`] (1).
//!
//! The programs parse their options with `lexopt` (short options bundle, `-cFILE` and
//! `--opt=value` work as in getopt).

use std::fmt::Display;

/// A configuration that does not hold, or a failure at run time.
pub const EXIT_FAILURE: i32 = 1;
/// A wrong command line.
pub const EXIT_USAGE: i32 = 2;

/// `NAME VERSION`, the first line of `--version`.
pub fn version_line(program: &str) -> String {
    format!("{program} {}", env!("CARGO_PKG_VERSION"))
}

/// Say why the command line is wrong; the exit code to return.
pub fn usage_error(program: &str, why: impl Display) -> i32 {
    eprintln!("{program}: {why} (see {program} --help)");
    EXIT_USAGE
}

/// Say why the program stops; the exit code to return.
pub fn failure(program: &str, why: impl Display) -> i32 {
    eprintln!("{program}: {why}");
    EXIT_FAILURE
}
