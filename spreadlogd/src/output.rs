//! Output targets (a file, or a piped program) with batched writes: lines are appended to a pending
//! buffer while a receive batch is processed and written with one `write(2)` per target when the
//! batch ends. Nothing is held across a wait for the network, so a crash loses nothing already
//! received and processed.

use std::fs::File;
use std::io::{self, Write};
use std::os::fd::AsRawFd;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::time::{Duration, Instant};

use crate::delivered::Touched;
use crate::logger::Logger;

/// Past this many bytes pending for a target that cannot be written (full disk, dead pipe program
/// that keeps dying), further lines are counted as lost and logged rather than held without bound.
pub const MAX_PENDING: usize = 64 << 20;

/// Lines waiting for one write(2): their bytes and how many they are, bounded by [`MAX_PENDING`].
#[derive(Debug, Default)]
pub struct Batch {
    pub bytes: Vec<u8>,
    pub lines: u64,
}

impl Batch {
    /// Add one line, ending it with a newline if it has none (a message without one would
    /// otherwise be fused with the next sender's line); false (nothing added) when the batch
    /// would pass [`MAX_PENDING`].
    pub fn push(&mut self, line: &[u8]) -> bool {
        let newline = !line.ends_with(b"\n");
        if self.bytes.len() + line.len() + usize::from(newline) > MAX_PENDING {
            return false;
        }
        self.bytes.extend_from_slice(line);
        if newline {
            self.bytes.push(b'\n');
        }
        self.lines += 1;
        true
    }

    pub fn is_empty(&self) -> bool {
        self.bytes.is_empty()
    }

    pub fn clear(&mut self) {
        self.bytes.clear();
        self.lines = 0;
    }
}
/// A piped program that died is started again at most this often.
pub const PIPE_RESPAWN_INTERVAL: Duration = Duration::from_secs(1);

/// Open a log file for appending (0644), optionally with the original's non-blocking exclusive
/// flock so two collectors cannot write the same file.
pub fn open_log_file(path: &Path, lock: bool, no_follow: bool) -> io::Result<File> {
    let mut o = std::fs::OpenOptions::new();
    o.append(true).create(true).mode(0o644);
    if no_follow {
        o.custom_flags(libc::O_NOFOLLOW);
    }
    let f = o.open(path)?;
    if lock {
        // SAFETY: flock on a descriptor we own and keep open; no memory is involved.
        let rc = unsafe { libc::flock(f.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) };
        if rc != 0 {
            let e = io::Error::last_os_error();
            return Err(io::Error::new(
                e.kind(),
                format!(
                    "cannot lock {} ({e}); is another spreadlogd running? (-s skips locking)",
                    path.display()
                ),
            ));
        }
    }
    Ok(f)
}

/// Write all of `buf`, retrying short writes and EINTR.
fn write_all(w: &mut impl Write, buf: &[u8]) -> io::Result<()> {
    w.write_all(buf)
}

/// Append `buf` to a log file as one unit: on success its new size goes to `touched`; on a
/// failure part-way the file is cut back to where it was, so nothing of the batch stays in it.
pub fn write_file_batch(
    f: &mut File,
    path: &Path,
    buf: &[u8],
    touched: &mut Vec<Touched>,
) -> io::Result<()> {
    let before = f.metadata()?.len();
    match write_all(f, buf) {
        Ok(()) => {
            touched.push(Touched::of(path, f)?);
            Ok(())
        }
        Err(e) => {
            let _ = f.set_len(before);
            Err(e)
        }
    }
}

enum Kind {
    File {
        path: PathBuf,
        file: Option<File>,
    },
    Pipe {
        command: String,
        child: Option<(Child, ChildStdin)>,
        last_spawn: Option<Instant>,
    },
}

/// One target and its pending bytes.
pub struct Output {
    kind: Kind,
    pending: Batch,
    lock: bool,
    pub lines_written: u64,
    pub bytes_written: u64,
    pub lines_lost: u64,
    pub write_errors: u64,
    pub pipe_restarts: u64,
}

impl Output {
    pub fn file(path: PathBuf, lock: bool) -> Output {
        Output::new(Kind::File { path, file: None }, lock)
    }

    pub fn pipe(command: String) -> Output {
        Output::new(
            Kind::Pipe {
                command,
                child: None,
                last_spawn: None,
            },
            false,
        )
    }

    fn new(kind: Kind, lock: bool) -> Output {
        Output {
            kind,
            pending: Batch::default(),
            lock,
            lines_written: 0,
            bytes_written: 0,
            lines_lost: 0,
            write_errors: 0,
            pipe_restarts: 0,
        }
    }

    pub fn describe(&self) -> String {
        match &self.kind {
            Kind::File { path, .. } => path.display().to_string(),
            Kind::Pipe { command, .. } => format!("|{command}"),
        }
    }

    /// Open the file or start the program.
    pub fn open(&mut self) -> io::Result<()> {
        match &mut self.kind {
            Kind::File { path, file } => {
                *file = Some(open_log_file(path, self.lock, false)?);
                Ok(())
            }
            Kind::Pipe { .. } => self.spawn(),
        }
    }

    fn spawn(&mut self) -> io::Result<()> {
        let Kind::Pipe {
            command,
            child,
            last_spawn,
        } = &mut self.kind
        else {
            return Ok(());
        };
        *last_spawn = Some(Instant::now());
        // std sets close-on-exec on our other descriptors and resets SIGPIPE to the default in the
        // child, so the program neither inherits log files nor our ignored SIGPIPE.
        let mut c = Command::new("/bin/sh")
            .arg("-c")
            .arg(command.as_str())
            .stdin(Stdio::piped())
            .spawn()?;
        let stdin = c
            .stdin
            .take()
            .ok_or_else(|| io::Error::other("no stdin pipe"))?;
        *child = Some((c, stdin));
        Ok(())
    }

    /// Queue one processed line.
    pub fn push(&mut self, bytes: &[u8]) -> bool {
        let taken = self.pending.push(bytes);
        self.lines_lost += u64::from(!taken);
        taken
    }

    pub fn has_pending(&self) -> bool {
        !self.pending.is_empty()
    }

    /// Write what is pending with one write (more only if the kernel takes less). A file's new
    /// size is added to `touched` (the collector journals it, `delivered`). A write that fails
    /// half-way (a full disk) is cut back off the file, so the retry at the next flush never
    /// doubles a part of it. False when the lines could not be written (they stay pending).
    pub fn flush(&mut self, log: &Logger, touched: &mut Vec<Touched>) -> bool {
        if self.pending.is_empty() {
            return true;
        }
        let result = match &mut self.kind {
            Kind::File { file, path } => {
                if file.is_none() {
                    match open_log_file(path, self.lock, false) {
                        Ok(f) => *file = Some(f),
                        Err(e) => return self.failed(e, log),
                    }
                }
                let f = file.as_mut().expect("opened above");
                write_file_batch(f, path, &self.pending.bytes, touched)
            }
            Kind::Pipe { .. } => self.write_pipe(log),
        };
        match result {
            Ok(()) => {
                self.lines_written += self.pending.lines;
                self.bytes_written += self.pending.bytes.len() as u64;
                self.pending.clear();
                true
            }
            Err(e) => self.failed(e, log),
        }
    }

    fn failed(&mut self, e: io::Error, log: &Logger) -> bool {
        self.write_errors += 1;
        // Keep the lines for the next flush (bounded by MAX_PENDING); say so once per error.
        log.error(&format!(
            "cannot write {} lines to {}: {e}; keeping them to retry",
            self.pending.lines,
            self.describe()
        ));
        false
    }

    fn write_pipe(&mut self, log: &Logger) -> io::Result<()> {
        for attempt in 0..2 {
            let Kind::Pipe {
                child,
                last_spawn,
                command,
            } = &mut self.kind
            else {
                unreachable!()
            };
            if child.is_none() {
                if attempt > 0 && last_spawn.is_some_and(|t| t.elapsed() < PIPE_RESPAWN_INTERVAL) {
                    return Err(io::Error::other(format!(
                        "piped program '{command}' keeps dying"
                    )));
                }
                self.pipe_restarts += u64::from(last_spawn.is_some());
                log.notice(&format!("starting piped program {}", self.describe()));
                self.spawn()?;
            }
            let Kind::Pipe {
                child: Some((_, stdin)),
                ..
            } = &mut self.kind
            else {
                unreachable!()
            };
            match write_all(stdin, &self.pending.bytes) {
                Ok(()) => return Ok(()),
                Err(e) if e.kind() == io::ErrorKind::BrokenPipe => {
                    log.warn(&format!(
                        "piped program {} died (write: {e}); restarting it",
                        self.describe()
                    ));
                    self.reap(log);
                }
                Err(e) => return Err(e),
            }
        }
        Err(io::Error::other(
            "piped program died again right after a restart",
        ))
    }

    /// Collect a dead piped program (SIGCHLD); it is restarted at the next write.
    pub fn reap(&mut self, log: &Logger) {
        if let Kind::Pipe { child, command, .. } = &mut self.kind
            && let Some((c, _)) = child
        {
            match c.try_wait() {
                Ok(Some(status)) => {
                    log.warn(&format!("piped program '{command}' exited ({status})"));
                    *child = None;
                }
                Ok(None) => {}
                Err(e) => {
                    log.warn(&format!("piped program '{command}': {e}"));
                    *child = None;
                }
            }
        }
    }

    /// SIGHUP: write what is pending to the old file, then open the path again (after `mv`, a new
    /// file). A piped program is closed (it sees EOF) and started again.
    pub fn reopen(&mut self, log: &Logger, touched: &mut Vec<Touched>) -> io::Result<()> {
        self.flush(log, touched);
        match &mut self.kind {
            Kind::File { file, .. } => {
                *file = None;
            }
            Kind::Pipe { child, .. } => {
                if let Some((mut c, stdin)) = child.take() {
                    // EOF tells the program to finish; it is waited for off the main loop so a slow
                    // program never delays reading from the daemon (and never becomes a zombie).
                    drop(stdin);
                    std::thread::spawn(move || {
                        let _ = c.wait();
                    });
                }
            }
        }
        self.open()
    }

    /// Close without reopening (exit). Pipes get EOF and are waited for briefly.
    pub fn close(&mut self, log: &Logger, touched: &mut Vec<Touched>) {
        self.flush(log, touched);
        if let Kind::Pipe { child, .. } = &mut self.kind
            && let Some((mut c, stdin)) = child.take()
        {
            drop(stdin);
            let deadline = Instant::now() + Duration::from_secs(2);
            while Instant::now() < deadline {
                if let Ok(Some(_)) = c.try_wait() {
                    return;
                }
                std::thread::sleep(Duration::from_millis(5));
            }
        }
        if let Kind::File { file, .. } = &mut self.kind {
            *file = None;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn quiet() -> Logger {
        Logger::stderr("test", false)
    }

    #[test]
    fn batched_lines_reach_the_file_and_reopen_follows_mv() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("a.log");
        let mut o = Output::file(p.clone(), true);
        o.open().unwrap();
        o.push(b"one\n");
        o.push(b"two\n");
        o.flush(&quiet(), &mut Vec::new());
        assert_eq!(std::fs::read(&p).unwrap(), b"one\ntwo\n");
        std::fs::rename(&p, dir.path().join("a.log.1")).unwrap();
        o.push(b"three\n");
        o.reopen(&quiet(), &mut Vec::new()).unwrap();
        o.push(b"four\n");
        o.flush(&quiet(), &mut Vec::new());
        assert_eq!(
            std::fs::read(dir.path().join("a.log.1")).unwrap(),
            b"one\ntwo\nthree\n"
        );
        assert_eq!(std::fs::read(&p).unwrap(), b"four\n");
        assert_eq!(o.lines_written, 4);
    }

    #[test]
    fn every_line_ends_with_a_newline() {
        let mut b = Batch::default();
        assert!(b.push(b"no newline"));
        assert!(b.push(b"has one\n"));
        assert!(b.push(b""));
        assert_eq!(b.bytes, b"no newline\nhas one\n\n");
        assert_eq!(b.lines, 3);
    }

    #[test]
    fn second_locker_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("a.log");
        let _a = open_log_file(&p, true, false).unwrap();
        let e = open_log_file(&p, true, false).unwrap_err().to_string();
        assert!(e.contains("another spreadlogd"), "{e}");
        open_log_file(&p, false, false).unwrap();
    }

    #[test]
    fn pipe_program_gets_lines_and_is_restarted_after_dying() {
        // SIGPIPE must not kill the test process when the program is gone.
        // SAFETY: setting a signal disposition to SIG_IGN has no memory effects.
        unsafe { libc::signal(libc::SIGPIPE, libc::SIG_IGN) };
        let dir = tempfile::tempdir().unwrap();
        let out = dir.path().join("out");
        // `head -n 1` exits after one line: the next write finds a dead program.
        let mut o = Output::pipe(format!("head -n 1 >> {}", out.display()));
        o.open().unwrap();
        o.push(b"first\n");
        o.flush(&quiet(), &mut Vec::new());
        std::thread::sleep(Duration::from_millis(300));
        std::thread::sleep(PIPE_RESPAWN_INTERVAL);
        o.push(b"second\n");
        o.flush(&quiet(), &mut Vec::new());
        o.close(&quiet(), &mut Vec::new());
        let got = std::fs::read_to_string(&out).unwrap();
        assert_eq!(got, "first\nsecond\n");
        assert!(o.pipe_restarts >= 1);
    }
}
