//! Starting the daemon in-process: bind, then run the event loop on its own thread.

use std::io;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, mpsc};
use std::thread::JoinHandle;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use crate::config::Config;
use crate::core::{Core, CoreSettings, Stats};
use crate::io::event_loop::{self, Command, Control, EventLoop, log_line};
use crate::io::poller::EventFd;

pub struct Daemon;

/// A running daemon. Dropping it stops it cleanly (as [`DaemonHandle::stop`]).
pub struct DaemonHandle {
    control: Arc<Control>,
    thread: Option<JoinHandle<io::Result<()>>>,
    unix_path: Option<PathBuf>,
    tcp_addrs: Vec<SocketAddr>,
}

impl Daemon {
    /// Bind the listeners (errors are returned here) and run the event loop on a new thread.
    pub fn start(config: Config) -> io::Result<DaemonHandle> {
        config
            .validate()
            .map_err(|e| io::Error::new(io::ErrorKind::InvalidInput, e.to_string()))?;
        let (listeners, unix_path, tcp_addrs) = event_loop::bind(&config)?;
        let setup = || -> io::Result<(Arc<Control>, EventLoop)> {
            if let Some(file) = &config.tcp_port_file
                && let Some(a) = tcp_addrs.first()
            {
                std::fs::write(file, format!("{}\n", a.port())).map_err(|e| {
                    io::Error::new(e.kind(), format!("cannot write {}: {e}", file.display()))
                })?;
            }
            let now = SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .unwrap_or_default();
            let seed = now.as_nanos() as u64 ^ u64::from(std::process::id()).rotate_left(32);
            let core = Core::new(
                CoreSettings::from_config(&config),
                now.as_secs() as u32,
                seed,
            );
            let control = Arc::new(Control {
                commands: Mutex::new(Vec::new()),
                waker: EventFd::new()?,
            });
            if let Some(addr) = config.metrics_listen {
                // Each scrape asks the event loop for its counters, as SIGUSR1 does; a loop too
                // busy to answer within the scrape's bound gets a 503, never a stall.
                let control = control.clone();
                spread_sys::metrics::serve(&addr.to_string(), move || {
                    let (tx, rx) = mpsc::channel();
                    control.send(Command::Stats(tx));
                    let stats = rx.recv_timeout(Duration::from_secs(2)).ok()?;
                    Some(crate::metrics::page(&stats))
                })
                .map_err(|e| io::Error::new(e.kind(), format!("--metrics-listen {addr}: {e}")))?;
            }
            let event_loop =
                EventLoop::new(core, listeners, control.clone(), config.stop_deadline)?
                    .with_throttle_window(config.throttle_window);
            Ok((control, event_loop))
        };
        let (control, event_loop) = match setup() {
            Ok(x) => x,
            Err(e) => {
                // Do not leave a socket file behind that nobody serves.
                if let Some(p) = &unix_path {
                    let _ = std::fs::remove_file(p);
                }
                return Err(e);
            }
        };
        for k in &config.ignored_conf_keys {
            log_line(&format!(
                "spread.conf key {k} has no effect on a single-node daemon; ignored"
            ));
        }
        log_line(&format!(
            "daemon {:?} ready: unix {}, tcp {}, max sessions {}, MaxSessionMessages {}",
            config.name,
            unix_path
                .as_ref()
                .map_or("off".to_owned(), |p| p.display().to_string()),
            if tcp_addrs.is_empty() {
                "off".to_owned()
            } else {
                tcp_addrs
                    .iter()
                    .map(ToString::to_string)
                    .collect::<Vec<_>>()
                    .join(", ")
            },
            config.max_sessions,
            config.max_session_messages
        ));
        let thread = std::thread::Builder::new()
            .name("spread-daemon".into())
            .spawn(move || {
                let r = event_loop.run();
                if let Err(e) = &r {
                    log_line(&format!("event loop failed: {e}"));
                }
                r
            })?;
        Ok(DaemonHandle {
            control,
            thread: Some(thread),
            unix_path,
            tcp_addrs,
        })
    }
}

impl DaemonHandle {
    /// `<dir>/<port>`, if a unix listener runs.
    pub fn unix_path(&self) -> Option<&Path> {
        self.unix_path.as_deref()
    }

    /// The first TCP address actually bound (the real port when 0 was asked for).
    pub fn tcp_addr(&self) -> Option<SocketAddr> {
        self.tcp_addrs.first().copied()
    }

    pub fn tcp_addrs(&self) -> &[SocketAddr] {
        &self.tcp_addrs
    }

    /// A spread name clients can use: the unix socket path if any, else `port@host`.
    pub fn spread_name(&self) -> String {
        match (&self.unix_path, self.tcp_addr()) {
            (Some(p), _) => p.display().to_string(),
            (None, Some(a)) if a.is_ipv6() => format!("{}@[{}]", a.port(), a.ip()),
            (None, Some(a)) => format!("{}@{}", a.port(), a.ip()),
            (None, None) => unreachable!("a daemon always has a listener"),
        }
    }

    /// `port@127.0.0.1`-style spread name of the first TCP listener.
    pub fn tcp_spread_name(&self) -> Option<String> {
        self.tcp_addr().map(|a| {
            if a.is_ipv6() {
                format!("{}@[{}]", a.port(), a.ip())
            } else {
                format!("{}@{}", a.port(), a.ip())
            }
        })
    }

    /// Current counters.
    pub fn stats(&self) -> Stats {
        let (tx, rx) = mpsc::channel();
        self.control.send(Command::Stats(tx));
        rx.recv().unwrap_or_default()
    }

    /// Log the counters to stderr (what SIGUSR1 does).
    pub fn log_stats(&self) {
        self.control.send(Command::LogStats);
    }

    /// Whether the event loop still runs (it ends after a stop or a fatal error).
    pub fn is_running(&self) -> bool {
        self.thread.as_ref().is_some_and(|t| !t.is_finished())
    }

    /// Ask for a clean stop without waiting.
    pub fn request_stop(&self) {
        self.control.send(Command::Stop);
    }

    /// Clean stop (CONTRACTS §1) and wait for the event loop to finish.
    pub fn stop(mut self) -> io::Result<()> {
        self.stop_inner()
    }

    /// Wait until the daemon stops (after `request_stop` or a fatal error).
    pub fn wait(mut self) -> io::Result<()> {
        match self.thread.take() {
            Some(t) => t
                .join()
                .unwrap_or_else(|_| Err(io::Error::other("event loop panicked"))),
            None => Ok(()),
        }
    }

    fn stop_inner(&mut self) -> io::Result<()> {
        let Some(t) = self.thread.take() else {
            return Ok(());
        };
        self.control.send(Command::Stop);
        t.join()
            .unwrap_or_else(|_| Err(io::Error::other("event loop panicked")))
    }
}

impl Drop for DaemonHandle {
    fn drop(&mut self) {
        let _ = self.stop_inner();
    }
}
