//! `spread-daemon`: flags -> config, signals -> clean stop / statistics, foreground, logs to stderr.

use std::process::ExitCode;

use spread_daemon::config::USAGE;
use spread_daemon::{Cli, Config, Daemon};

/// Block the signals we handle in every thread (the event loop inherits the mask), so `sigwait`
/// on the main thread receives them synchronously: no async-signal-safety concerns.
fn block_signals() -> libc::sigset_t {
    // SAFETY: sigemptyset/sigaddset initialise a sigset_t we own; pthread_sigmask only reads it.
    unsafe {
        let mut set: libc::sigset_t = std::mem::zeroed();
        libc::sigemptyset(&mut set);
        for sig in [libc::SIGTERM, libc::SIGINT, libc::SIGUSR1, libc::SIGHUP] {
            libc::sigaddset(&mut set, sig);
        }
        libc::pthread_sigmask(libc::SIG_BLOCK, &set, std::ptr::null_mut());
        set
    }
}

/// Wait up to 500 ms for one of the blocked signals; 0 if none came.
fn wait_signal(set: &libc::sigset_t) -> libc::c_int {
    let timeout = libc::timespec {
        tv_sec: 0,
        tv_nsec: 500_000_000,
    };
    // SAFETY: `set` is an initialised signal set, `timeout` a live timespec; no siginfo is wanted.
    let r = unsafe { libc::sigtimedwait(set, std::ptr::null_mut(), &timeout) };
    r.max(0)
}

fn exit(code: i32) -> ExitCode {
    ExitCode::from(u8::try_from(code).unwrap_or(1))
}

fn main() -> ExitCode {
    let config = match Config::from_args(std::env::args().skip(1)) {
        Ok(Cli::Help) => {
            print!("{USAGE}");
            return ExitCode::SUCCESS;
        }
        Ok(Cli::Version) => {
            println!("{}", spread_sys::cli::version_line("spread-daemon"));
            return ExitCode::SUCCESS;
        }
        Ok(Cli::Check(c)) => {
            println!(
                "configuration OK: daemon {:?}, unix {}, tcp {:?} port {}, MaxSessionMessages {}, max sessions {}",
                c.name,
                c.unix_path()
                    .map_or("off".to_owned(), |p| p.display().to_string()),
                c.tcp_bind,
                c.effective_tcp_port(),
                c.max_session_messages,
                c.max_sessions
            );
            return ExitCode::SUCCESS;
        }
        Ok(Cli::Run(c)) => c,
        Err(e) if e.is_usage() => {
            return exit(spread_sys::cli::usage_error("spread-daemon", e));
        }
        Err(e) => return exit(spread_sys::cli::failure("spread-daemon", e)),
    };
    let set = block_signals();
    let daemon = match Daemon::start(config) {
        Ok(d) => d,
        Err(e) => {
            eprintln!("spread-daemon: {e}");
            return ExitCode::FAILURE;
        }
    };
    // Listening now: tell systemd (Type=notify); a no-op without NOTIFY_SOCKET.
    let _ = sd_notify::notify(&[sd_notify::NotifyState::Ready]);
    loop {
        if !daemon.is_running() {
            // The event loop died (its error is logged): exit non-zero rather than hang.
            let _ = daemon.wait();
            return ExitCode::FAILURE;
        }
        match wait_signal(&set) {
            libc::SIGTERM | libc::SIGINT => break,
            libc::SIGUSR1 => daemon.log_stats(),
            // SIGHUP: nothing to reopen (logs go to stderr); say so rather than die.
            libc::SIGHUP => eprintln!("spread-daemon: SIGHUP ignored (no files to reopen)"),
            _ => {}
        }
    }
    let _ = sd_notify::notify(&[sd_notify::NotifyState::Stopping]);
    match daemon.stop() {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("spread-daemon: {e}");
            ExitCode::FAILURE
        }
    }
}
