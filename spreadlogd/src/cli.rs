//! The command line, compatible with the original (`-c FILE -b SIZE -s -v -x -D -V`) plus `-t`
//! (check the config and exit), `-p PIDFILE`, `-h`/`--help` and `--version`; the conventions
//! every program shares are `spread_sys::cli`'s.

use std::path::PathBuf;

pub const DEFAULT_CONFIG: &str = "/etc/spreadlogd.conf";

pub const USAGE: &str =
    "usage: spreadlogd [-c FILE] [-b SIZE] [-p PIDFILE] [-s] [-v] [-x] [-D] [-t] [-V] [-h]
  -c FILE     config file (default /etc/spreadlogd.conf)
  -b SIZE     receive buffer size in bytes; overrides BufferSize
  -p PIDFILE  write the process id there (removed at exit)
  -s          do not lock log files (flock); not recommended
  -v          verbose: log what is opened, joined and connected
  -x          log every error talking with Spread (also the close-down messages)
  -D          stay in the foreground; messages go to stderr
  -t          check the config (syntax, regexes, daemon names) and exit
  -V, --version  print the version and exit
  -h, --help     this help";

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Options {
    pub config: PathBuf,
    pub buffer_size: Option<usize>,
    pub pidfile: Option<PathBuf>,
    pub flags: Flags,
}

/// The switches: `-s -v -x -D -t`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Flags {
    pub no_lock: bool,
    pub verbose: bool,
    pub spread_errors: bool,
    pub foreground: bool,
    pub check_only: bool,
}

#[derive(Debug, PartialEq, Eq)]
pub enum Command {
    Run(Options),
    Version,
    Help,
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum CliError {
    #[error("unknown option {0}")]
    Unknown(String),
    #[error("option {0} needs a value")]
    Missing(String),
    #[error("-b needs a positive number of bytes, not {0:?}")]
    BadSize(String),
    #[error("unexpected argument {0:?}")]
    Extra(String),
}

/// getopt-style (`lexopt`): flags may be bundled (`-Dv`), values attached (`-cFILE`) or separate.
pub fn parse<I: IntoIterator<Item = String>>(args: I) -> Result<Command, CliError> {
    use lexopt::prelude::*;
    let mut o = Options {
        config: PathBuf::from(DEFAULT_CONFIG),
        buffer_size: None,
        pidfile: None,
        flags: Flags::default(),
    };
    let mut p = lexopt::Parser::from_args(args);
    while let Some(arg) = p.next().map_err(CliError::from)? {
        match arg {
            Short('s') => o.flags.no_lock = true,
            Short('v') => o.flags.verbose = true,
            Short('x') => o.flags.spread_errors = true,
            Short('D') => o.flags.foreground = true,
            Short('t') => o.flags.check_only = true,
            Short('V') | Long("version") => return Ok(Command::Version),
            Short('h') | Long("help") => return Ok(Command::Help),
            Short('c') => o.config = PathBuf::from(p.value().map_err(CliError::from)?),
            Short('p') => o.pidfile = Some(PathBuf::from(p.value().map_err(CliError::from)?)),
            Short('b') => {
                let value = p
                    .value()
                    .map_err(CliError::from)?
                    .string()
                    .map_err(CliError::from)?;
                o.buffer_size = Some(
                    value
                        .parse()
                        .ok()
                        .filter(|n| *n > 0)
                        .ok_or(CliError::BadSize(value))?,
                );
            }
            Value(v) => return Err(CliError::Extra(v.to_string_lossy().into_owned())),
            other => return Err(CliError::from(other.unexpected())),
        }
    }
    Ok(Command::Run(o))
}

impl From<lexopt::Error> for CliError {
    fn from(e: lexopt::Error) -> CliError {
        match e {
            lexopt::Error::UnexpectedOption(o) => CliError::Unknown(o),
            lexopt::Error::MissingValue { option } => CliError::Missing(option.unwrap_or_default()),
            lexopt::Error::UnexpectedArgument(a) => {
                CliError::Extra(a.to_string_lossy().into_owned())
            }
            other => CliError::Unknown(other.to_string()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(a: &[&str]) -> Options {
        match parse(a.iter().map(|s| s.to_string())).unwrap() {
            Command::Run(o) => o,
            c => panic!("{c:?}"),
        }
    }

    #[test]
    fn original_flags() {
        let o = run(&["-c", "/x.conf", "-b", "65536", "-s", "-v", "-x", "-D"]);
        assert_eq!(o.config, PathBuf::from("/x.conf"));
        assert_eq!(
            o.buffer_size,
            Some(65536),
            "-b works and does not clobber -c"
        );
        assert!(
            o.flags.no_lock
                && o.flags.verbose
                && o.flags.spread_errors
                && o.flags.foreground
                && !o.flags.check_only
        );
        let o = run(&["-Dvc/y.conf", "-b1000", "-t", "-p", "/run/s.pid"]);
        assert_eq!(o.config, PathBuf::from("/y.conf"));
        assert_eq!(o.buffer_size, Some(1000));
        assert!(o.flags.check_only && o.flags.foreground && o.flags.verbose);
        assert_eq!(o.pidfile, Some(PathBuf::from("/run/s.pid")));
        assert_eq!(run(&[]).config, PathBuf::from(DEFAULT_CONFIG));
    }

    #[test]
    fn version_help_and_errors() {
        let p = |a: &[&str]| parse(a.iter().map(|s| s.to_string()));
        assert_eq!(p(&["-V"]), Ok(Command::Version));
        assert_eq!(p(&["-h"]), Ok(Command::Help));
        assert_eq!(p(&["--help"]), Ok(Command::Help));
        assert_eq!(p(&["-q"]), Err(CliError::Unknown("-q".into())));
        assert_eq!(p(&["-c"]), Err(CliError::Missing("-c".into())));
        assert_eq!(p(&["-b", "x"]), Err(CliError::BadSize("x".into())));
        assert_eq!(p(&["file"]), Err(CliError::Extra("file".into())));
        assert_eq!(p(&["--version"]), Ok(Command::Version));
        assert_eq!(p(&["--bogus"]), Err(CliError::Unknown("--bogus".into())));
    }
}
