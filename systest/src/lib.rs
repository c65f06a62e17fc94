//! Shared helpers of the whole-system tests: real `spread-daemon`, `spreadlogd`, `spread-tail`,
//! `spread-pipe` and a sandboxed Debian `apache2` with `mod_log_spread.so`, optionally inside
//! network namespaces the tests create (and remove) themselves.
//!
//! Every process is owned by a guard that kills it on drop, every namespace and temp dir is removed
//! on drop, so a failing assertion leaves nothing behind.

pub mod accounting;
pub mod apache;
pub mod bins;
pub mod c_collector;
pub mod http;
pub mod mount;
pub mod netns;
pub mod procs;
pub mod promtool;
pub mod tally;
pub mod tempdir;
pub mod wait;

pub use tempdir::TempDir;
pub use wait::{wait_until, wait_value};

/// A free TCP address on 127.0.0.1 (the kernel's choice; free at the time of asking).
pub fn free_addr() -> std::net::SocketAddr {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("free port")
}

/// The port of [`free_addr`].
/// The lines of a text, sorted: the comparison every delivery test makes (central file == file
/// log, sorted, byte for byte).
pub fn sorted_lines(text: &str) -> Vec<String> {
    let mut v: Vec<String> = text.lines().map(str::to_owned).collect();
    v.sort();
    v
}

pub fn free_port() -> u16 {
    free_addr().port()
}

/// True when the tests run as root (namespaces, tmpfs mounts, Apache's `User`).
pub fn is_root() -> bool {
    // SAFETY: geteuid has no preconditions and cannot fail.
    unsafe { libc::geteuid() == 0 }
}

/// Print why a test is skipped, in a way `cargo test` output shows plainly. Under CI (`CI` set,
/// as `.ci/run` runs) a skip is a failure: CI runs as root on Debian and can run every scenario,
/// so a skip there means a missing install step, not a limit of the machine.
pub fn skip(test: &str, why: &str) {
    eprintln!("SKIPPED {test}: {why}");
    println!("SKIPPED {test}: {why}");
    if std::env::var_os("CI").is_some_and(|v| !v.is_empty() && v != "false") {
        panic!("{test} would be skipped under CI: {why}");
    }
}
