//! `spread-tail [-s NAME] [-g] GROUP…`: join the groups and copy every message body to stdout, like
//! `tail -f` for the whole farm. Reconnects and re-joins if the daemon goes away.

use std::io::Write;
use std::time::Duration;

use spread_sys::{ConnectOptions, Mailbox};

use super::Parsed;

pub const USAGE: &str = "usage: spread-tail [-s SPREAD_NAME] [-g] GROUP...
  -s, --spread NAME  daemon (4803 = /tmp/4803, 4803@host = TCP, /path = unix socket; default 4803)
  -g                 prefix each line with its group and a space
  -V, --version      print the version and exit
  -h, --help         this help";

/// What the command line asks for.
#[derive(Debug, PartialEq, Eq)]
struct Options {
    spread: String,
    prefix: bool,
    groups: Vec<String>,
}

fn parse<I: IntoIterator<Item = String>>(args: I) -> Result<Parsed<Options>, lexopt::Error> {
    use lexopt::prelude::*;
    let mut o = Options {
        spread: "4803".to_owned(),
        prefix: false,
        groups: Vec::new(),
    };
    let mut p = lexopt::Parser::from_args(args);
    while let Some(arg) = p.next()? {
        match arg {
            Short('s') | Long("spread") => o.spread = p.value()?.string()?,
            Short('g') => o.prefix = true,
            Short('h') | Long("help") => return Ok(Parsed::Help),
            Short('V') | Long("version") => return Ok(Parsed::Version),
            Value(g) => o.groups.push(g.string()?),
            other => return Err(other.unexpected()),
        }
    }
    Ok(Parsed::Run(o))
}

pub fn main<I: IntoIterator<Item = String>>(args: I) -> i32 {
    let Options {
        spread,
        prefix,
        groups,
    } = match super::options_or_exit(parse(args), "spread-tail", USAGE) {
        Ok(o) => o,
        Err(code) => return code,
    };
    if groups.is_empty() {
        return spread_sys::cli::usage_error("spread-tail", "no group given");
    }
    // SAFETY: ignoring SIGPIPE has no memory effects; a closed stdout then shows as EPIPE.
    unsafe { libc::signal(libc::SIGPIPE, libc::SIG_IGN) };
    let stdout = std::io::stdout();
    let mut out = std::io::BufWriter::with_capacity(1 << 16, stdout.lock());
    let mut backoff = Duration::from_millis(100);
    let mut announced = false;
    loop {
        let opts = ConnectOptions {
            // Empty: the daemon picks a unique name, so any number of spread-tails can run.
            private_name: String::new(),
            priority: false,
            group_membership: false,
            connect_timeout: Some(Duration::from_secs(2)),
            send_timeout: Some(Duration::from_secs(2)),
        };
        let mut mb = match Mailbox::connect(&spread, &opts).and_then(|mut mb| {
            for g in &groups {
                mb.join(g)?;
            }
            Ok(mb)
        }) {
            Ok(mb) => mb,
            Err(e) => {
                if !announced {
                    eprintln!("spread-tail: cannot connect to {spread}: {e}; retrying");
                    announced = true;
                }
                std::thread::sleep(backoff);
                backoff = (backoff * 2).min(Duration::from_secs(5));
                continue;
            }
        };
        if announced {
            eprintln!("spread-tail: connected to {spread}");
        }
        backoff = Duration::from_millis(100);
        loop {
            let mut write_err = None;
            let r = mb.receive_batch(true, |m| {
                if !m.is_regular() || write_err.is_some() {
                    return;
                }
                // The previous release's sequence hand-over (sent to log groups) is no line.
                if spread_sys::seq::decode_handover(m.header.mess_type().0, m.body).is_some() {
                    return;
                }
                if prefix {
                    let g = m.group(0).unwrap_or_default();
                    let _ = out.write_all(g).and_then(|_| out.write_all(b" "));
                }
                if let Err(e) = out.write_all(m.body) {
                    write_err = Some(e);
                }
            });
            if write_err.is_none()
                && let Err(e) = out.flush()
            {
                write_err = Some(e);
            }
            if let Some(e) = write_err {
                if e.kind() == std::io::ErrorKind::BrokenPipe {
                    return 0;
                }
                eprintln!("spread-tail: cannot write to stdout: {e}");
                return 1;
            }
            if let Err(e) = r {
                eprintln!("spread-tail: lost {spread}: {e}; reconnecting");
                announced = true;
                break;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn command_line() {
        let p = |a: &[&str]| parse(a.iter().map(|s| s.to_string()));
        assert_eq!(
            p(&["-gs", "4803@loghost", "www", "errors"]).unwrap(),
            Parsed::Run(Options {
                spread: "4803@loghost".into(),
                prefix: true,
                groups: vec!["www".into(), "errors".into()]
            })
        );
        assert_eq!(p(&["--version"]).unwrap(), Parsed::Version);
        assert_eq!(p(&["-h"]).unwrap(), Parsed::Help);
        assert!(p(&["-q"]).unwrap_err().to_string().contains("-q"));
        assert!(p(&["-s"]).is_err());
    }
}
