//! `spread-daemon`: a single-node daemon speaking Spread 5.0.1's client protocol, so that programs
//! linked with libspread, our module and spreadlogd can run on one machine without a Spread ring.
//!
//! * [`core`] is the sans-IO state machine (sessions, handshake, groups, fan-out, slow-client
//!   policy); all protocol bytes come from `spread_sys::wire`.
//! * [`io`] is the single-threaded epoll loop around it.
//! * [`Daemon::start`] runs a daemon in-process (tests of other crates use it):
//!
//! ```no_run
//! use spread_daemon::{Config, Daemon};
//! let dir = std::env::temp_dir().join("my-test");
//! std::fs::create_dir_all(&dir).unwrap();
//! let daemon = Daemon::start(Config::for_test(&dir)).unwrap();
//! let name = daemon.spread_name(); // "<dir>/4803", usable as a spread name
//! let tcp = daemon.tcp_addr().unwrap(); // 127.0.0.1:<ephemeral>
//! daemon.stop().unwrap();
//! ```

pub mod allow_list;
pub mod config;
pub mod core;
mod daemon;
pub mod io;
mod metrics;
pub mod spread_conf;

pub use config::{AuthMethod, Cli, Config, ConfigError};
pub use daemon::{Daemon, DaemonHandle};
