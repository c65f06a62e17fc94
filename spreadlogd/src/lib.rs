//! spreadlogd: the collector that joins Spread log groups and writes what it receives into one file
//! per group (or per virtual host), plus the operator tools `spread-tail` and `spread-pipe`.
//!
//! The pieces, each small and tested on its own:
//! * [`config`] – the `spreadlogd.conf` lexer and parser (errors name file, line and token);
//! * [`cli`] – the original's command line plus `-t` and `-p`;
//! * [`routing`] – Log blocks by daemon and group, `Match`, vhost splitting, timestamp rewriting;
//! * [`vhost`] / [`vhost_files`] – host cleaning and a bounded LRU cache of open vhost files;
//! * [`timestamp`] – `RewriteTimestamp`;
//! * [`gaps`] – the sequence-number gap table (CONTRACTS §2);
//! * [`intake`] – what each received message means: a log line to route, or control bookkeeping;
//! * [`output`] – files and piped programs with batched writes;
//! * [`signals`] – a self-pipe so the loop wakes on signals;
//! * [`collector`] – the transport loop over `spread_sys::Mailbox`;
//! * [`process`] – daemonising, pidfile, dropping root;
//! * [`logger`] – our own messages (stderr, syslog or a file).

pub mod app;
pub mod cli;
pub mod collector;
pub mod config;
pub mod delivered;
pub mod gaps;
pub mod intake;
pub mod logger;
pub mod output;
pub mod process;
pub mod routing;
pub mod signals;
pub mod timestamp;
pub mod tools;
pub mod vhost;
pub mod vhost_files;
