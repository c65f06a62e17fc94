//! `spreadlogd` startup glue: command line, config, opening files, daemonising, dropping root, and
//! handing over to the collector loop.

use crate::cli::{self, Command};
use crate::collector::{Collector, CollectorOptions};
use crate::config::{Config, DEFAULT_BUFFER_SIZE, DEFAULT_STATE_FILE};
use crate::logger::Logger;
use crate::process;
use crate::routing::Router;
use crate::signals::Signals;

pub const VERSION: &str = env!("CARGO_PKG_VERSION");

fn fail(msg: &str) -> i32 {
    spread_sys::cli::failure("spreadlogd", msg)
}

pub fn spreadlogd_main<I: IntoIterator<Item = String>>(args: I) -> i32 {
    let opts = match cli::parse(args) {
        Ok(Command::Run(o)) => o,
        Ok(Command::Version) => {
            println!("{}", spread_sys::cli::version_line("spreadlogd"));
            return 0;
        }
        Ok(Command::Help) => {
            println!("{}", cli::USAGE);
            return 0;
        }
        Err(e) => return spread_sys::cli::usage_error("spreadlogd", e),
    };
    // Taken before daemonising (which changes to /): a SIGHUP re-reads the same file with the
    // same base for relative paths.
    let start_dir = std::env::current_dir().unwrap_or_else(|_| "/".into());
    let config_file = start_dir.join(&opts.config);
    let cfg = match Config::load_from(&opts.config, &start_dir) {
        Ok(c) => c,
        Err(e) => return fail(&e.to_string()),
    };
    let router = match Router::new(&cfg, !opts.flags.no_lock) {
        Ok(r) => r,
        Err(e) => return fail(&e.to_string()),
    };
    if opts.flags.check_only {
        for w in &cfg.warnings {
            eprintln!("spreadlogd: warning: {w}");
        }
        let problems = cfg.preflight();
        if !problems.is_empty() {
            return fail(&problems.join("\nspreadlogd: "));
        }
        println!("{}: Syntax OK", cfg.file);
        return 0;
    }
    let mut router = router;
    // Files are opened (and locked) before daemonising, so errors reach the terminal.
    if let Err(e) = router.open_all() {
        return fail(&e);
    }
    let signals = match Signals::install() {
        Ok(s) => s,
        Err(e) => return fail(&format!("cannot install signal handlers: {e}")),
    };
    let verbose = opts.flags.verbose;
    if !opts.flags.foreground
        && let Err(e) = process::daemonise()
    {
        return fail(&e.to_string());
    }
    let logger = match (&cfg.error_log, opts.flags.foreground) {
        (Some(p), _) => match Logger::file("spreadlogd", p, verbose) {
            Ok(l) => l,
            Err(e) => {
                let l = Logger::syslog("spreadlogd", verbose);
                l.error(&format!(
                    "cannot open ErrorLog {}: {e}; using syslog",
                    p.display()
                ));
                l
            }
        },
        (None, true) => Logger::stderr("spreadlogd", verbose),
        (None, false) => Logger::syslog("spreadlogd", verbose),
    };
    if let Some(p) = &opts.pidfile
        && let Err(e) = process::write_pidfile(p)
    {
        logger.error(&e.to_string());
        return 1;
    }
    let state_file = cfg
        .state_file
        .clone()
        .unwrap_or_else(|| DEFAULT_STATE_FILE.into());
    let buffer_size = opts
        .buffer_size
        .or(cfg.buffer_size)
        .unwrap_or(DEFAULT_BUFFER_SIZE);
    logger.info(&format!(
        "spreadlogd {VERSION}: config {}, {} daemon(s), {} output(s), {} vhost dir(s), buffer {buffer_size}",
        cfg.file,
        cfg.spreads.len(),
        router.outputs.len(),
        router.vhosts.len()
    ));
    for w in &cfg.warnings {
        logger.warn(w);
    }
    for s in &cfg.spreads {
        for l in &s.logs {
            let dest = match (&l.file, &l.vhost_dir) {
                (Some(crate::config::FileTarget::Path(p)), _) => p.display().to_string(),
                (Some(crate::config::FileTarget::Pipe(c)), _) => format!("|{c}"),
                (None, Some(d)) => format!("VhostDir {}", d.display()),
                (None, None) => String::new(),
            };
            logger.info(&format!(
                "{}:{}: daemon {} group {} -> {dest} ({} Match, timestamp rewrite: {})",
                cfg.file,
                l.line,
                s.daemon_name(),
                l.group,
                l.matches.len(),
                if l.rewrite.is_some() { "yes" } else { "no" }
            ));
        }
    }
    let mut collector = Collector::new(
        &cfg,
        router,
        &logger,
        CollectorOptions {
            buffer_size,
            spread_errors: opts.flags.spread_errors,
            state_file: Some(state_file),
            config_file: Some(config_file),
            config_base: start_dir,
            lock: !opts.flags.no_lock,
        },
    );
    // After daemonising (a thread does not survive the fork), before dropping root (a low port).
    if let Some(addr) = cfg.metrics_listen {
        match spread_sys::metrics::Endpoint::listen(&addr.to_string()) {
            Ok(ep) => {
                logger.info(&format!(
                    "serving Prometheus metrics on http://{addr}/metrics"
                ));
                collector.serve_metrics(ep);
            }
            Err(e) => {
                logger.error(&format!("MetricsListen {addr}: {e}"));
                return 1;
            }
        }
    }
    collector.connect_due();
    // Root is needed only to open files and sockets; the state file directory must be writable by
    // User (see README).
    if let Err(e) = process::drop_privileges(cfg.user.as_deref(), cfg.group.as_deref()) {
        logger.error(&e.to_string());
        return 1;
    }
    // Files open, first connection made (or being retried), privileges dropped: ready for
    // systemd (Type=notify); a no-op without NOTIFY_SOCKET.
    let _ = sd_notify::notify(&[sd_notify::NotifyState::Ready]);
    let status = collector.run(&signals);
    if let Some(p) = &opts.pidfile {
        let _ = std::fs::remove_file(p);
    }
    status
}
