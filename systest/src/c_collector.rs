//! A receiver that behaves like the original C spreadlogd where it matters to the senders: it
//! joins its log groups (never the control channel), asks for no membership messages, and writes
//! the body of **every** regular message it receives, whatever its `mess_type`, with one write
//! and no newline added. Whatever a sender puts on a log group therefore ends up in its file, so a
//! test comparing that file with the plain file log proves that no control message and no
//! bookkeeping reached a log group. Like the original, it reconnects after losing the daemon and
//! misses what was sent meanwhile.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::thread::JoinHandle;
use std::time::Duration;

use spread_sys::{ConnectOptions, Mailbox};

pub struct CStyleCollector {
    pub out: PathBuf,
    stop: Arc<AtomicBool>,
    /// Times it (re)connected and joined its groups.
    joined: Arc<AtomicU64>,
    handle: Option<JoinHandle<()>>,
}

impl CStyleCollector {
    /// Start it on `spread` (a daemon name), joined to `groups`, writing to `out`; returns once
    /// it has joined.
    pub fn start(spread: &str, groups: &[&str], out: &Path) -> CStyleCollector {
        let stop = Arc::new(AtomicBool::new(false));
        let joined = Arc::new(AtomicU64::new(0));
        let spread = spread.to_owned();
        let groups: Vec<String> = groups.iter().map(|g| g.to_string()).collect();
        let file = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(out)
            .expect("open the C-style collector's file");
        let (s, j) = (stop.clone(), joined.clone());
        let handle = std::thread::spawn(move || run(&spread, &groups, file, &s, &j));
        let c = CStyleCollector {
            out: out.to_owned(),
            stop,
            joined,
            handle: Some(handle),
        };
        c.wait_joined(1);
        c
    }

    /// Wait until it has (re)joined `n` times in total.
    pub fn wait_joined(&self, n: u64) {
        crate::wait_until(
            &format!("C-style collector joined ({n} time(s))"),
            Duration::from_secs(15),
            || self.joined.load(Ordering::SeqCst) >= n,
        );
    }

    /// What it wrote so far.
    pub fn text(&self) -> String {
        std::fs::read_to_string(&self.out).unwrap_or_default()
    }
}

impl Drop for CStyleCollector {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        if let Some(h) = self.handle.take() {
            let _ = h.join();
        }
    }
}

fn run(
    spread: &str,
    groups: &[String],
    mut file: std::fs::File,
    stop: &AtomicBool,
    joined: &AtomicU64,
) {
    let name = format!("cspl{}", std::process::id() % 100_000);
    while !stop.load(Ordering::SeqCst) {
        let mut opts = ConnectOptions::named(&name);
        opts.priority = true;
        opts.group_membership = false;
        opts.connect_timeout = Some(Duration::from_secs(1));
        let Ok(mut mb) = Mailbox::connect(spread, &opts) else {
            std::thread::sleep(Duration::from_millis(100));
            continue;
        };
        if groups.iter().all(|g| mb.join(g).is_ok()) {
            joined.fetch_add(1, Ordering::SeqCst);
            while !stop.load(Ordering::SeqCst) {
                match mb.poll(Some(Duration::from_millis(50))) {
                    Ok(false) => continue,
                    Ok(true) => {}
                    Err(_) => break,
                }
                let r = mb.receive_batch(false, |m| {
                    if m.is_regular() {
                        file.write_all(m.body)
                            .expect("write the C-style collector's file");
                    }
                });
                if r.is_err() {
                    break;
                }
            }
        }
        let _ = mb.disconnect();
    }
}
