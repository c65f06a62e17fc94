//! `spreadlogd.conf`: the original grammar (global `BufferSize`; `Spread { Port Host Log { Group File
//! Match VhostDir RewriteTimestamp } }`), plus `Keyword=value` without spaces and a few keywords of our
//! own (`User`, `Group` at global scope, `StateFile`, `VhostOpenFiles`, `ErrorLog`). Every error names
//! the file, the line and the offending token.

mod lexer;
mod parser;

use std::path::{Path, PathBuf};

pub use lexer::{Token, TokenKind, tokenize};
pub use parser::{GLOBAL_KEYS, LOG_KEYS, SPREAD_KEYS, parse};

use crate::timestamp::TimestampFormat;

/// Where the gap table lives unless `StateFile` says otherwise.
pub const DEFAULT_STATE_FILE: &str = "/var/lib/spreadlogd/gaptable";
/// The original's default receive buffer ("like Apache").
pub const DEFAULT_BUFFER_SIZE: usize = 8192;
/// Open vhost files kept per `VhostDir` unless `VhostOpenFiles` says otherwise.
pub const DEFAULT_VHOST_OPEN_FILES: usize = 256;

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read config file {file}: {source}")]
    Io {
        file: String,
        source: std::io::Error,
    },
    #[error("{file}:{line}: syntax error at {token}: {reason}")]
    Syntax {
        file: String,
        line: u32,
        token: String,
        reason: String,
    },
    #[error(
        "{file}:{line}: '{keyword}' is not supported by this spreadlogd (no Perl, Python or C plug-ins); \
         remove it or use a piped File = \"|program\" instead"
    )]
    Unsupported {
        file: String,
        line: u32,
        keyword: String,
    },
    #[error("{file}:{line}: invalid value {token}: {reason}")]
    Invalid {
        file: String,
        line: u32,
        token: String,
        reason: String,
    },
}

/// The whole configuration, validated.
#[derive(Debug, Clone)]
pub struct Config {
    pub file: String,
    pub buffer_size: Option<usize>,
    pub user: Option<String>,
    pub group: Option<String>,
    pub state_file: Option<PathBuf>,
    pub error_log: Option<PathBuf>,
    pub vhost_open_files: usize,
    /// `MetricsListen`: where `/metrics` (Prometheus) is served.
    pub metrics_listen: Option<std::net::SocketAddr>,
    pub spreads: Vec<SpreadConf>,
    /// What the file says that is accepted but has no effect (`file:line: what and why`), for
    /// the operator: printed by `-t` and logged at start.
    pub warnings: Vec<String>,
}

/// One `Spread { }` block: one daemon connection.
#[derive(Debug, Clone)]
pub struct SpreadConf {
    pub line: u32,
    pub port: String,
    pub host: Option<String>,
    pub logs: Vec<LogConf>,
}

impl SpreadConf {
    /// The spread name (CONTRACTS §3) this block connects to: `Port`, or `Port@Host`.
    pub fn daemon_name(&self) -> String {
        match &self.host {
            Some(h) => format!("{}@{}", self.port, h),
            None => self.port.clone(),
        }
    }
}

/// Where a `Log` block writes.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum FileTarget {
    Path(PathBuf),
    /// `File = |command`, run with `/bin/sh -c`.
    Pipe(String),
}

/// One `Log { }` block.
#[derive(Debug, Clone)]
pub struct LogConf {
    pub line: u32,
    pub group: String,
    pub file: Option<FileTarget>,
    /// (pattern, line) in order; OR of all.
    pub matches: Vec<(String, u32)>,
    pub vhost_dir: Option<PathBuf>,
    pub rewrite: Option<TimestampFormat>,
}

impl Config {
    /// The settings a SIGHUP re-read cannot change (they are applied once, at start), as
    /// (keyword, value) pairs to compare.
    pub fn restart_only(&self) -> Vec<(&'static str, String)> {
        vec![
            ("BufferSize", format!("{:?}", self.buffer_size)),
            ("User", format!("{:?}", self.user)),
            ("Group", format!("{:?}", self.group)),
            ("StateFile", format!("{:?}", self.state_file)),
            ("ErrorLog", format!("{:?}", self.error_log)),
            ("MetricsListen", format!("{:?}", self.metrics_listen)),
        ]
    }

    pub fn load(path: &Path) -> Result<Config, ConfigError> {
        // Relative paths are taken from the directory we were started in; make them absolute now so a
        // daemonised process (cwd `/`) reopens the same files on SIGHUP (the original did not).
        let cwd = std::env::current_dir().unwrap_or_else(|_| PathBuf::from("/"));
        Self::load_from(path, &cwd)
    }

    /// Read and parse `path`, with relative paths taken from `base`.
    pub fn load_from(path: &Path, base: &Path) -> Result<Config, ConfigError> {
        let file = path.display().to_string();
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Io {
            file: file.clone(),
            source,
        })?;
        parse(&file, &text, base)
    }

    /// What would stop a start, checked without opening or creating anything (`spreadlogd -t`):
    /// every `File`'s directory and every `VhostDir` exist, `User`/`Group` exist, and every
    /// daemon name parses. Each problem as `file:line: …` or `file: …`.
    pub fn preflight(&self) -> Vec<String> {
        let mut problems = Vec::new();
        let f = &self.file;
        if let Err(e) = crate::process::resolve_ids(self.user.as_deref(), self.group.as_deref()) {
            problems.push(format!("{f}: {e}"));
        }
        for s in &self.spreads {
            let name = s.daemon_name();
            if let Err(e) = spread_sys::SpreadName::parse(&name) {
                problems.push(format!("{f}:{}: daemon {name:?}: {e}", s.line));
            }
            for l in &s.logs {
                let dir = match (&l.vhost_dir, &l.file) {
                    (Some(v), _) => Some(("VhostDir", v.as_path())),
                    (None, Some(FileTarget::Path(p))) => {
                        p.parent().map(|d| ("File's directory", d))
                    }
                    _ => None,
                };
                if let Some((what, d)) = dir
                    && !d.as_os_str().is_empty()
                    && !d.is_dir()
                {
                    problems.push(format!(
                        "{f}:{}: {what} {} does not exist",
                        l.line,
                        d.display()
                    ));
                }
            }
        }
        problems
    }

    /// Every distinct group joined through `spread`, in name order.
    pub fn groups_of(spread: &SpreadConf) -> Vec<String> {
        let mut g: Vec<String> = spread.logs.iter().map(|l| l.group.clone()).collect();
        g.sort();
        g.dedup();
        g
    }
}
