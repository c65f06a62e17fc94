//! `spread-tail [-s NAME] [-g] GROUP…`: join the groups and copy every message body to stdout, like
//! `tail -f` for the whole farm. Reconnects and re-joins if the daemon goes away.

use std::io::Write;
use std::time::Duration;

use spread_sys::{ConnectOptions, Mailbox};

pub const USAGE: &str = "usage: spread-tail [-s SPREAD_NAME] [-g] GROUP...
  -s NAME  daemon (4803 = /tmp/4803, 4803@host = TCP, /path = unix socket; default 4803)
  -g       prefix each line with its group and a space";

pub fn main<I: IntoIterator<Item = String>>(args: I) -> i32 {
    let mut spread = "4803".to_owned();
    let mut prefix = false;
    let mut groups = Vec::new();
    let mut it = args.into_iter();
    while let Some(a) = it.next() {
        if let Some(v) = super::take_value(&a, "-s", &mut it) {
            match v {
                Ok(v) => spread = v,
                Err(e) => return usage_error(&e),
            }
        } else if a == "-g" {
            prefix = true;
        } else if a == "-h" || a == "--help" {
            println!("{USAGE}");
            return 0;
        } else if a.starts_with('-') {
            return usage_error(&format!("unknown option {a}"));
        } else {
            groups.push(a);
        }
    }
    if groups.is_empty() {
        return usage_error("no group given");
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

fn usage_error(msg: &str) -> i32 {
    eprintln!("spread-tail: {msg}\n{USAGE}");
    2
}
