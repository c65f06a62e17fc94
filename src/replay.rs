//! Spool replay, off the request path: one background thread per child. Every half second it
//! looks at the spool; when lines wait it replays them (one process at a time: the spool's fcntl
//! lock, others see `Busy`), but only to groups that have a member, checked by a short-lived
//! probe connection with membership messages on (CONTRACTS §1). Replayed lines are numbered by
//! the replayer's own connection and sequence (CONTRACTS §2).

use std::collections::HashMap;
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};

use spread_sys::spool::ReplayOutcome;
use spread_sys::spread_name::Endpoint;

use crate::batch_wake::Woke;
use crate::config::ModuleConfig;
use crate::counters::{self, Counters};
use crate::spooler::Spooler;
use crate::transport::{SendFailure, Transport};
use spread_sys::private_name::{self, Role};

/// Why a replay round stopped early (the spool keeps the rest).
#[derive(Debug, thiserror::Error)]
pub enum ReplayStop {
    #[error("group {0:?} has no member yet (nobody would receive it)")]
    NoMember(String),
    #[error("daemon {daemon} cannot be reached: {why}")]
    Unreachable { daemon: String, why: String },
    #[error("group name in the spool is not UTF-8")]
    BadGroup,
    #[error(
        "the acknowledgement window is full: no collector acknowledged the lines resent so far"
    )]
    WindowFull,
    #[error("{0}")]
    Send(#[from] SendFailure),
}

/// Why lines for one (daemon, group) cannot be replayed now.
enum Wait {
    NoMember,
    /// (daemon name, why)
    Unreachable(String, String),
}

/// How often the spool is looked at.
pub const POLL: Duration = Duration::from_millis(500);
/// How often acknowledgements are read while lines wait for them. Often enough for the resend
/// timers (1 s, and 250 ms after an ack shows a hole) and far from a daemon's limit of 1,000
/// queued messages (spreadlogd acks at most every 50 ms: 50 s of acks); rarely enough that the
/// upkeep costs the web server next to nothing per request.
pub const ACK_POLL: Duration = Duration::from_millis(200);
/// Flush intervals the background thread keeps waking by itself after the last batch before
/// it parks (then the request that starts the next batch wakes it, one futex wake per burst).
/// Under steady load a batch is always pending and the thread never parks. Between bursts an
/// empty wake-up is a context switch for nothing (tens of µs on a VM): at 100 rounds (2.5 s of
/// polling) two children's threads woke 194 times in the 3 s after a burst, at 2 rounds 16
/// (systest `the_background_thread_sleeps_between_bursts`).
const POLL_ROUNDS: u32 = 2;
/// How long a child's exit waits for the last acknowledgements before spooling the rest.
pub const CLOSE_LINGER: Duration = Duration::from_millis(200);
/// Longest wait between two replay attempts that failed (no daemon, no member).
pub const MAX_BACKOFF: Duration = Duration::from_secs(8);

/// The running replay thread. It must be stopped and waited for before the child exits: Apache
/// unloads this DSO during `exit()`, and a thread still running its code would then crash.
pub struct ReplayThread {
    /// Whether the thread finished.
    state: Arc<(Mutex<bool>, Condvar)>,
    /// Joined once finished: the thread's own exit (std's epilogue, TLS destructors) also runs
    /// code of this DSO, so "finished" alone is not enough before `exit()`.
    handle: Mutex<Option<std::thread::JoinHandle<()>>>,
    /// The thread sleeps on its `wake` (which batches and the stop request interrupt).
    requests: &'static Transport,
}

impl ReplayThread {
    /// Ask the thread to stop and wait up to `timeout` for it (a round in progress is bounded
    /// by the connect/send timeouts and the probe's 2 s).
    pub fn stop_and_wait(&self, timeout: Duration) -> bool {
        let (lock, cvar) = &*self.state;
        self.requests.wake.stop();
        let mut st = lock.lock().unwrap_or_else(|p| p.into_inner());
        let deadline = Instant::now() + timeout;
        while !*st {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return false;
            }
            st = cvar
                .wait_timeout(st, left)
                .unwrap_or_else(|p| p.into_inner())
                .0;
        }
        drop(st);
        if let Some(h) = self.handle.lock().unwrap_or_else(|p| p.into_inner()).take() {
            let _ = h.join();
        }
        true
    }
}

/// Start the replay thread of this child, replaying `requests`' spool and keeping its
/// connections' sequences accounted for ([`Transport::maintain`]). `log` reports problems (the
/// error log, throttled).
pub fn start(
    cfg: ModuleConfig,
    host: String,
    pid: u32,
    requests: &'static Transport,
    log: fn(&str),
) -> Option<ReplayThread> {
    let spool = &requests.spool;
    let state = Arc::new((Mutex::new(false), Condvar::new()));
    let shared = state.clone();
    let spawned = std::thread::Builder::new()
        .name("spread-replay".into())
        .spawn(move || {
            let sender = Transport::new(cfg.clone(), Role::Replayer, host.clone(), pid);
            let mut next_report = Instant::now();
            let mut failures = 0u32;
            // Replay attempts back off while they fail; the connections' upkeep does not.
            let mut next_replay = Instant::now();
            let mut fill = spread_sys::spool::FillAlarm::default();
            let mut poll = POLL;
            let mut next_upkeep = Instant::now() + poll;
            // Flush rounds left before parking: while lines keep coming the thread wakes every
            // flush interval by itself, so requests never have to wake it.
            let mut keep_polling = 0u32;
            loop {
                // Sleep until the next upkeep, or one flush interval while a batch waits or
                // lines came recently. Parked first, then the look for batches: `batch_wake`.
                let now = Instant::now();
                let mut wait = next_upkeep.saturating_duration_since(now);
                if requests.batching() {
                    if requests.batch_pending() {
                        keep_polling = POLL_ROUNDS;
                    }
                    if keep_polling > 0 {
                        keep_polling -= 1;
                        wait = wait.min(cfg.flush_interval);
                    } else {
                        requests.wake.park();
                        if requests.batch_pending() {
                            requests.wake.unpark();
                            wait = wait.min(cfg.flush_interval);
                        }
                    }
                }
                match requests.wake.sleep(wait) {
                    Woke::Stop => break,
                    // Give the batch its flush interval to fill.
                    Woke::BatchStarted => continue,
                    Woke::Time => {}
                }
                requests.wake.unpark();
                if requests.batching() {
                    requests.flush_batches();
                }
                if Instant::now() < next_upkeep {
                    continue;
                }
                // Broken connections that numbered lines: reconnect, hand their sequences over
                // and announce where they stand (off the request path), for both the request
                // threads' and our own.
                requests.maintain(&log);
                sender.maintain(&log);
                let (a, b) = (requests.holding(), sender.holding());
                crate::gauges::report(
                    pid,
                    crate::gauges::Holding {
                        unacked: a.unacked + b.unacked,
                        unacked_bytes: a.unacked_bytes + b.unacked_bytes,
                        oldest_ms: a.oldest_ms.max(b.oldest_ms),
                        connected: a.connected + b.connected,
                    },
                );
                // Lines wait for acks: read them often (and resend soon after they are due).
                poll = if a.unacked + b.unacked > 0 {
                    ACK_POLL
                } else {
                    POLL
                };
                next_upkeep = Instant::now() + poll;
                // Never open (and so create) spool files as root: children of Apache's `User`
                // could not use them afterwards. Children have dropped privileges by now.
                // SAFETY: geteuid has no preconditions.
                if unsafe { libc::geteuid() } == 0 {
                    continue;
                }
                let pending = spool.pending();
                if let Some(level) = fill.check(pending, spool.cap()) {
                    log(&format!(
                        "mod_log_spread: spool {} is {level}% full ({pending} of {} bytes): lines \
                         are dropped (and counted) once it is full",
                        spool.path().display(),
                        spool.cap()
                    ));
                }
                if Instant::now() < next_replay || pending == 0 {
                    continue;
                }
                match replay_round(&cfg, &sender, spool, &host, pid) {
                    Ok(_) => failures = 0,
                    // The window waits for acks: go on as soon as they free it (next poll).
                    Err(Paused::WindowFull) => failures = 0,
                    Err(Paused::Failed(why)) => {
                        if Instant::now() >= next_report {
                            log(&format!("mod_log_spread: spool replay paused: {why}"));
                            next_report = Instant::now() + Duration::from_secs(30);
                        }
                        // Nobody listening or daemon down: each round re-reads the spool and
                        // dials a probe, so back off (1 s, 2 s, 4 s, ... at most MAX_BACKOFF).
                        failures = (failures + 1).min(5);
                        next_replay = Instant::now() + (POLL * (1 << failures)).min(MAX_BACKOFF);
                    }
                }
            }
            // The replayer's routine exit is the child's business (its own line says it); only
            // trouble with the lines resent from the spool is worth a line of its own.
            let report = sender.close_all(CLOSE_LINGER);
            for (severity, message) in report.messages(pid, "resent ") {
                if severity != crate::transport::ExitSeverity::Info {
                    log(&message);
                }
            }
            let (lock, cvar) = &*shared;
            *lock.lock().unwrap_or_else(|p| p.into_inner()) = true;
            cvar.notify_all();
        });
    match spawned {
        Ok(h) => Some(ReplayThread {
            state,
            handle: Mutex::new(Some(h)),
            requests,
        }),
        Err(e) => {
            log(&format!(
                "mod_log_spread: cannot start the spool replay thread: {e}"
            ));
            None
        }
    }
}

/// Why a replay round stopped before the end of the spool.
#[derive(Debug)]
pub enum Paused {
    /// The acknowledgement window is full: not a failure, the next poll goes on.
    WindowFull,
    /// No member, no daemon, a bad record …: back off.
    Failed(String),
}

impl std::fmt::Display for Paused {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Paused::WindowFull => f.write_str("the acknowledgement window is full"),
            Paused::Failed(why) => f.write_str(why),
        }
    }
}

/// One pass over the spool. Returns how many lines were handed over.
pub fn replay_round(
    cfg: &ModuleConfig,
    sender: &Transport,
    spool: &Spooler,
    host: &str,
    pid: u32,
) -> Result<u64, Paused> {
    let spool = spool.get().map_err(Paused::Failed)?;
    // Per (daemon, group): a member is there (None), or why replaying there has to wait.
    let mut has_member: HashMap<(u32, Vec<u8>), Option<Wait>> = HashMap::new();
    let mut sent = 0u64;
    let outcome = spool.replay(|rec| -> Result<(), ReplayStop> {
        let group = std::str::from_utf8(&rec.group).map_err(|_| ReplayStop::BadGroup)?;
        // A line sent before (a window spooled at a child's exit): back into a window, resent
        // with its stream and number to the collectors that lack it, never to the group.
        if let Some(origin) = rec.origin {
            if !sender.rehold(rec.daemon_id, group, origin, &rec.line)? {
                return Err(ReplayStop::WindowFull);
            }
            sent += 1;
            return Ok(());
        }
        let key = (rec.daemon_id, rec.group.clone());
        let wait = has_member.entry(key).or_insert_with(|| {
            let daemon = cfg.daemon(rec.daemon_id);
            match daemon.map(|d| probe_has_member(&d.endpoint, group, cfg, host, pid)) {
                Some(Ok(true)) => None,
                Some(Ok(false)) | None => Some(Wait::NoMember),
                // The daemon is down or refuses us: say so, not "no member".
                Some(Err(e)) => Some(Wait::Unreachable(
                    daemon.map_or_else(String::new, |d| d.name.to_string()),
                    e.to_string(),
                )),
            }
        });
        match wait {
            None => {}
            Some(Wait::NoMember) => return Err(ReplayStop::NoMember(group.to_owned())),
            Some(Wait::Unreachable(daemon, why)) => {
                return Err(ReplayStop::Unreachable {
                    daemon: daemon.clone(),
                    why: why.clone(),
                });
            }
        }
        sender.try_send(rec.daemon_id, group, &rec.line)?;
        Counters::add(&counters::get().replayed, 1);
        sent += 1;
        Ok(())
    });
    match outcome {
        Ok(ReplayOutcome::Busy) => Ok(0),
        Ok(ReplayOutcome::Done(summary)) => match summary.cut {
            Some(cut) => Err(Paused::Failed(format!("{} ({cut})", spool_path_hint(cfg)))),
            None => Ok(sent),
        },
        Ok(ReplayOutcome::Stopped {
            error: ReplayStop::WindowFull | ReplayStop::Send(SendFailure::WindowFull),
            ..
        }) => Err(Paused::WindowFull),
        Ok(ReplayOutcome::Stopped { summary, error }) => {
            let cut = summary.cut.map(|c| format!("; {c}")).unwrap_or_default();
            Err(Paused::Failed(format!("{error}{cut}")))
        }
        Err(e) => Err(Paused::Failed(format!(
            "spool {}: {e}",
            spool_path_hint(cfg)
        ))),
    }
}

fn spool_path_hint(cfg: &ModuleConfig) -> String {
    cfg.spool_path.display().to_string()
}

/// [`spread_sys::sender::probe_has_member`] under this child's probe name.
pub fn probe_has_member(
    endpoint: &Endpoint,
    group: &str,
    cfg: &ModuleConfig,
    host: &str,
    pid: u32,
) -> spread_sys::Result<bool> {
    spread_sys::sender::probe_has_member(
        endpoint,
        private_name::derive(Role::Probe, host, pid, 0),
        group,
        cfg.connect_timeout,
    )
}
