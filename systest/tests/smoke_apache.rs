//! One Apache, one daemon, one spreadlogd on this machine: every request's line arrives once.

use std::time::Duration;

use systest::apache::{self, Apache};
use systest::procs::{Daemon, Logd};
use systest::tally::Tally;
use systest::{TempDir, free_addr, http, skip, wait_value};

#[test]
fn apache_lines_reach_spreadlogd_once() {
    if let Some(why) = apache::unavailable() {
        return skip("apache_lines_reach_spreadlogd_once", &why);
    }
    let t = TempDir::new("smoke");
    let daemon = Daemon::local(&t, &[]);
    let central = t.join("www.log");
    let _logd = Logd::local(&t, &daemon.spread_name(), &[("www", &central)]);
    let spool = t.subdir("spool");
    let addr = free_addr();
    let apache = Apache::start(
        &t.subdir("apache"),
        None,
        addr,
        apache::TWO_CHILDREN,
        &format!(
            "SpreadDaemon {}\nSpreadSpool {}/spool\nCustomLog \"$www\" \"%U %>s\"\n",
            daemon.spread_name(),
            spool.display()
        ),
    );
    let n = 200;
    let st = http::load(addr, "s", 0..n, Duration::ZERO, "");
    assert_eq!(st.ok, n, "{st:?}\n{}", apache.error_log_tail());
    let tally = wait_value(
        "all lines in the central file",
        Duration::from_secs(15),
        || {
            let t = Tally::of_file(&central);
            if t.distinct() as u64 == n {
                Ok(t)
            } else {
                Err(t.report(&[("s", n)]))
            }
        },
    );
    assert_eq!(tally.total(), n, "{}", tally.report(&[("s", n)]));
    println!("smoke: sent {n}, written {}, duplicates 0", tally.total());
}
