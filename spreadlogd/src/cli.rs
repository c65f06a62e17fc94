//! The command line, compatible with the original (`-c FILE -b SIZE -s -v -x -D -V`) plus `-t`
//! (check the config and exit), `-p PIDFILE` and `-h`.

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
  -V          print the version and exit
  -h          this help";

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Options {
    pub config: PathBuf,
    pub buffer_size: Option<usize>,
    pub pidfile: Option<PathBuf>,
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

/// getopt-style: flags may be bundled (`-Dv`), values attached (`-cFILE`) or separate.
pub fn parse<I: IntoIterator<Item = String>>(args: I) -> Result<Command, CliError> {
    let mut o = Options {
        config: PathBuf::from(DEFAULT_CONFIG),
        buffer_size: None,
        pidfile: None,
        no_lock: false,
        verbose: false,
        spread_errors: false,
        foreground: false,
        check_only: false,
    };
    let mut it = args.into_iter();
    while let Some(arg) = it.next() {
        if arg == "--help" {
            return Ok(Command::Help);
        }
        if arg == "--version" {
            return Ok(Command::Version);
        }
        let Some(flags) = arg.strip_prefix('-').filter(|f| !f.is_empty()) else {
            return Err(CliError::Extra(arg));
        };
        for (i, c) in flags.char_indices() {
            match c {
                's' => o.no_lock = true,
                'v' => o.verbose = true,
                'x' => o.spread_errors = true,
                'D' => o.foreground = true,
                't' => o.check_only = true,
                'V' => return Ok(Command::Version),
                'h' => return Ok(Command::Help),
                'c' | 'b' | 'p' => {
                    let rest = &flags[i + 1..];
                    let value = if rest.is_empty() {
                        it.next()
                            .ok_or_else(|| CliError::Missing(format!("-{c}")))?
                    } else {
                        rest.to_owned()
                    };
                    match c {
                        'c' => o.config = PathBuf::from(value),
                        'p' => o.pidfile = Some(PathBuf::from(value)),
                        _ => {
                            o.buffer_size = Some(
                                value
                                    .parse()
                                    .ok()
                                    .filter(|n| *n > 0)
                                    .ok_or(CliError::BadSize(value))?,
                            )
                        }
                    }
                    break;
                }
                other => return Err(CliError::Unknown(format!("-{other}"))),
            }
        }
    }
    Ok(Command::Run(o))
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
        assert!(o.no_lock && o.verbose && o.spread_errors && o.foreground && !o.check_only);
        let o = run(&["-Dvc/y.conf", "-b1000", "-t", "-p", "/run/s.pid"]);
        assert_eq!(o.config, PathBuf::from("/y.conf"));
        assert_eq!(o.buffer_size, Some(1000));
        assert!(o.check_only && o.foreground && o.verbose);
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
    }
}
