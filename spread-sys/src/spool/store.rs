//! The spool's files: segments, progress, locks, size cap and replay (CONTRACTS §5), over the
//! record format of [`super::record`].
//!
//! # Files and locking ([`Spool`])
//!
//! * `<path>`: the segment appenders write to.
//! * `<path>.off`: the segment's progress file, 8 zero bytes written by the first append into a
//!   segment (so its disk space is taken while there is space: an append is refused if it cannot be
//!   written). It is renamed with the segment.
//! * `<path>.replay`: the segment being replayed (renamed from `<path>`), `<path>.replay.off`: 8 bytes,
//!   the offset of the first record not yet sent (renamed from `<path>.off`). A crash between
//!   sending a record and updating the offset repeats that one record (at-least-once).
//!   Replaying only overwrites those 8 bytes in place and deletes files, so a spool whose disk is
//!   full still drains. (A segment without a progress file, left by an older version, gets one
//!   when its replay starts, which needs a little space.)
//! * `<path>.lock`: POSIX (fcntl) record locks, which belong to the process and are not inherited
//!   through fork: byte 0 = "a replay is running" (taken without waiting; busy -> [`ReplayOutcome::Busy`]),
//!   byte 1 = rename guard (appenders hold it shared for each append, the replayer exclusively while it
//!   renames), so no append can land in a segment after the replayer took it.
//!   Because closing any descriptor of a file drops the process's fcntl locks on it, use one
//!   [`Spool`] per path per process (share it between threads).

use std::ffi::OsString;
use std::fs::{self, File, OpenOptions};
use std::io::{self, BufReader, Read, Write};
use std::os::fd::AsRawFd;
use std::os::unix::fs::{FileExt, MetadataExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Mutex, RwLock};

use super::record::*;

/// Append one record with a single write.
pub fn append(file: &File, daemon_id: u32, group: &[u8], line: &[u8]) -> io::Result<()> {
    let mut rec = Vec::with_capacity(RECORD_HEADER_LEN + 5 + group.len() + line.len());
    encode_record(daemon_id, group, line, &mut rec);
    write_record(file, &rec)
}

/// Write one encoded record on an `O_APPEND` descriptor with one write(2). On a short write (a
/// full disk takes what fits) the rest is tried once more, so the caller gets the real reason
/// (`ENOSPC`, `EDQUOT`, `EIO`, ...) rather than a byte count. The rest completes the record only
/// if it lands right after the first part (nothing appended in between); otherwise, and whenever
/// it fails, the record is torn: its checksum cannot match, so replay skips it with what follows
/// up to the next intact record ([`Spool::replay`]; [`decode_all`] cuts it as a torn tail) and no
/// part of it is ever replayed. (It is not truncated away: another appender, in this or another
/// process, may already have written a record after it.)
fn write_record(file: &File, rec: &[u8]) -> io::Result<()> {
    let mut f = file;
    let n = f.write(rec)?;
    if n == rec.len() {
        return Ok(());
    }
    let torn = |why: String| {
        io::Error::other(format!(
            "{why} (short spool write: {n} of {} bytes; the torn record is skipped on replay)",
            rec.len()
        ))
    };
    if n == 0 {
        return Err(torn("the file system took no byte".into()));
    }
    // Where our first part ended (an O_APPEND write leaves the offset after its bytes).
    let end = io::Seek::stream_position(&mut f)?;
    match f.write(&rec[n..]) {
        Err(e) => Err(io::Error::new(e.kind(), torn(e.to_string()))),
        Ok(m) if m == rec.len() - n && io::Seek::stream_position(&mut f)? == end + m as u64 => {
            Ok(())
        }
        Ok(_) => Err(torn(
            "the rest of the record could not be written after it".into(),
        )),
    }
}

/// Read a spool file and cut a torn tail off in place (truncate), reporting it.
pub fn read_and_repair(path: &Path) -> io::Result<SpoolContents> {
    let bytes = fs::read(path)?;
    let contents = decode_all(&bytes);
    if let Some((at, _)) = &contents.torn_tail {
        OpenOptions::new().write(true).open(path)?.set_len(*at)?;
    }
    Ok(contents)
}

/// Result of [`Spool::append`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Appended {
    Written,
    /// The cap would be exceeded: nothing was written (count the line as dropped).
    Full,
}

/// A torn or corrupt tail found (and dropped) while replaying.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CutTail {
    pub offset: u64,
    pub dropped_bytes: u64,
    pub reason: String,
}

impl std::fmt::Display for CutTail {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "spool: dropped {} bytes at offset {}: {}",
            self.dropped_bytes, self.offset, self.reason
        )
    }
}

/// What one replay pass did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ReplaySummary {
    /// Records sent successfully in this pass.
    pub sent: u64,
    /// Set when a torn/corrupt tail was cut off (log it).
    pub cut: Option<CutTail>,
}

#[derive(Debug)]
pub enum ReplayOutcome<E> {
    /// Another replayer (thread or process) holds the lock; try later.
    Busy,
    /// Everything pending was sent (or there was nothing); the segment is deleted.
    Done(ReplaySummary),
    /// `send` failed: the failed record and everything after it stay for the next pass.
    Stopped { summary: ReplaySummary, error: E },
}

fn with_suffix(path: &Path, suffix: &str) -> PathBuf {
    let mut s: OsString = path.as_os_str().to_owned();
    s.push(suffix);
    PathBuf::from(s)
}

/// Every file a spool at one path uses (module docs): the one place their names are made.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SpoolFiles {
    /// `<path>`: the segment appenders write to.
    pub segment: PathBuf,
    /// `<path>.off`: its progress file.
    pub progress: PathBuf,
    /// `<path>.replay`: the segment being replayed.
    pub replay: PathBuf,
    /// `<path>.replay.off`: its progress (offset of the first record not yet sent).
    pub replay_progress: PathBuf,
    /// `<path>.lock`: the fcntl locks.
    pub lock: PathBuf,
}

impl SpoolFiles {
    pub fn all(&self) -> [&Path; 5] {
        [
            &self.segment,
            &self.progress,
            &self.replay,
            &self.replay_progress,
            &self.lock,
        ]
    }
}

/// The files of the spool at `path` (e.g. to give them to another user before it runs).
pub fn files_for(path: &Path) -> SpoolFiles {
    SpoolFiles {
        segment: path.to_owned(),
        progress: with_suffix(path, ".off"),
        replay: with_suffix(path, ".replay"),
        replay_progress: with_suffix(path, ".replay.off"),
        lock: with_suffix(path, ".lock"),
    }
}

/// A POSIX record lock on one byte of the lock file; released on drop.
struct ByteLock<'a> {
    file: &'a File,
    byte: i64,
}

impl<'a> ByteLock<'a> {
    fn take(
        file: &'a File,
        byte: i64,
        exclusive: bool,
        wait: bool,
    ) -> io::Result<Option<ByteLock<'a>>> {
        let kind = if exclusive {
            libc::F_WRLCK
        } else {
            libc::F_RDLCK
        };
        let cmd = if wait { libc::F_SETLKW } else { libc::F_SETLK };
        loop {
            match fcntl_lock(file, cmd, kind, byte) {
                Ok(()) => return Ok(Some(ByteLock { file, byte })),
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e)
                    if !wait
                        && matches!(e.raw_os_error(), Some(libc::EAGAIN) | Some(libc::EACCES)) =>
                {
                    return Ok(None);
                }
                Err(e) => return Err(e),
            }
        }
    }
}

impl Drop for ByteLock<'_> {
    fn drop(&mut self) {
        let _ = fcntl_lock(self.file, libc::F_SETLK, libc::F_UNLCK, self.byte);
    }
}

fn fcntl_lock(file: &File, cmd: libc::c_int, kind: libc::c_int, byte: i64) -> io::Result<()> {
    // SAFETY: flock is plain old data; all-zero is valid and we set the fields that matter.
    let mut fl: libc::flock = unsafe { std::mem::zeroed() };
    fl.l_type = kind as libc::c_short;
    fl.l_whence = libc::SEEK_SET as libc::c_short;
    fl.l_start = byte as libc::off_t;
    fl.l_len = 1;
    // SAFETY: `fl` is a live, initialised flock and `file` an open descriptor.
    let r = unsafe { libc::fcntl(file.as_raw_fd(), cmd, &mut fl as *mut libc::flock) };
    if r < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(())
    }
}

const REPLAY_BYTE: i64 = 0;
const RENAME_BYTE: i64 = 1;

/// The append segment as this process has it open, with its identity to notice a rename.
struct Segment {
    file: File,
    dev: u64,
    ino: u64,
    /// This process made sure the segment's progress file (`<path>.off`) exists.
    progress_ready: AtomicBool,
}

/// Open for appending, creating the file with mode 0640 whatever the umask (a file that already
/// exists keeps its mode and owner).
fn open_segment(path: &Path) -> io::Result<Segment> {
    let mut opts = OpenOptions::new();
    opts.append(true).mode(0o640).custom_flags(libc::O_CLOEXEC);
    let mut attempts = 0;
    let file = loop {
        attempts += 1;
        match opts.clone().create_new(true).open(path) {
            Ok(f) => {
                f.set_permissions(std::os::unix::fs::PermissionsExt::from_mode(0o640))?;
                break f;
            }
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => match opts.open(path) {
                Ok(f) => break f,
                // Renamed away by a replayer in between: create it again.
                Err(e) if e.kind() == io::ErrorKind::NotFound && attempts < 5 => continue,
                Err(e) => return Err(e),
            },
            Err(e) => return Err(e),
        }
    };
    let meta = file.metadata()?;
    Ok(Segment {
        file,
        dev: meta.dev(),
        ino: meta.ino(),
        progress_ready: AtomicBool::new(false),
    })
}

/// Open `path` for reading and writing, creating it (mode 0640) if missing, never truncating;
/// not inherited by programs this process starts.
fn open_or_create(path: &Path) -> io::Result<File> {
    OpenOptions::new()
        .create(true)
        .read(true)
        .write(true)
        .truncate(false)
        .mode(0o640)
        .custom_flags(libc::O_CLOEXEC)
        .open(path)
}

/// Make sure `path` exists with its 8 bytes really written (not a hole), so that replaying only
/// ever overwrites them in place. Appenders call it under the rename guard, for the current
/// segment, whose progress file nobody else writes anything but zeros to.
fn ensure_progress_file(path: &Path) -> io::Result<()> {
    let file = open_or_create(path)?;
    if file.metadata()?.len() < 8 {
        file.write_all_at(&[0; 8], 0)?;
    }
    Ok(())
}

/// A size-capped spool file shared by appenders (any thread or process) and one replayer at a time.
pub struct Spool {
    path: PathBuf,
    replay_path: PathBuf,
    offset_path: PathBuf,
    /// The append segment's progress file, renamed to `offset_path` with the segment.
    progress_path: PathBuf,
    cap: u64,
    segment: RwLock<Segment>,
    lock_file: File,
    /// fcntl locks do not exclude threads of one process: this does.
    replaying: Mutex<()>,
    /// Threads of this process inside an append. The process's fcntl lock on the rename byte is one
    /// lock whoever took it, so it is taken on 0 -> 1 and released on 1 -> 0 only.
    appenders: Mutex<usize>,
}

/// One thread's share of the process's shared lock on the rename byte.
struct AppendGuard<'a> {
    spool: &'a Spool,
}

impl Drop for AppendGuard<'_> {
    fn drop(&mut self) {
        let mut n = self
            .spool
            .appenders
            .lock()
            .unwrap_or_else(|p| p.into_inner());
        *n -= 1;
        if *n == 0 {
            let _ = fcntl_lock(
                &self.spool.lock_file,
                libc::F_SETLK,
                libc::F_UNLCK,
                RENAME_BYTE,
            );
        }
    }
}

impl std::fmt::Debug for Spool {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Spool")
            .field("path", &self.path)
            .field("cap", &self.cap)
            .finish()
    }
}

impl Spool {
    /// Open (creating with mode 0640; the parent directory must exist) the spool at `path`, capped at
    /// `cap_bytes` of pending data (both segments).
    pub fn open(path: impl AsRef<Path>, cap_bytes: u64) -> io::Result<Spool> {
        let files = files_for(path.as_ref());
        let segment = open_segment(&files.segment)?;
        let lock_file = open_or_create(&files.lock)?;
        Ok(Spool {
            replay_path: files.replay,
            offset_path: files.replay_progress,
            progress_path: files.progress,
            path: files.segment,
            cap: cap_bytes,
            segment: RwLock::new(segment),
            lock_file,
            replaying: Mutex::new(()),
            appenders: Mutex::new(0),
        })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Bytes waiting to be replayed: the append segment plus what is left of a replay segment.
    pub fn pending_bytes(&self) -> u64 {
        let current = fs::metadata(&self.path).map_or(0, |m| m.len());
        let replay = fs::metadata(&self.replay_path).map_or(0, |m| m.len());
        current + replay.saturating_sub(read_offset(&self.offset_path).min(replay))
    }

    /// The size cap (bytes of pending data).
    pub fn cap(&self) -> u64 {
        self.cap
    }

    /// Append one line with one write(2); `Full` (nothing written) when the cap would be exceeded.
    pub fn append(&self, daemon_id: u32, group: &[u8], line: &[u8]) -> io::Result<Appended> {
        self.append_any(daemon_id, group, line, None)
    }

    /// [`Spool::append`] of a line sent before under `origin`'s stream and number (`MLS2`).
    pub fn append_any(
        &self,
        daemon_id: u32,
        group: &[u8],
        line: &[u8],
        origin: Option<Origin>,
    ) -> io::Result<Appended> {
        let mut rec = Vec::with_capacity(RECORD_HEADER_LEN + 21 + group.len() + line.len());
        encode_any(daemon_id, group, line, origin, &mut rec);
        let _guard = self.append_guard()?;
        loop {
            let seg = self.segment.read().unwrap_or_else(|p| p.into_inner());
            // The replayer may have renamed our segment since the last append: follow the path.
            let current = match fs::metadata(&self.path) {
                Ok(m) => (m.dev(), m.ino()) == (seg.dev, seg.ino),
                Err(e) if e.kind() == io::ErrorKind::NotFound => false,
                Err(e) => return Err(e),
            };
            if current {
                if self.pending_bytes() + rec.len() as u64 > self.cap {
                    return Ok(Appended::Full);
                }
                if !seg.progress_ready.load(Ordering::Relaxed) {
                    ensure_progress_file(&self.progress_path)?;
                    seg.progress_ready.store(true, Ordering::Relaxed);
                }
                write_record(&seg.file, &rec)?;
                return Ok(Appended::Written);
            }
            drop(seg);
            let fresh = open_segment(&self.path)?;
            *self.segment.write().unwrap_or_else(|p| p.into_inner()) = fresh;
        }
    }

    fn append_guard(&self) -> io::Result<AppendGuard<'_>> {
        let mut n = self.appenders.lock().unwrap_or_else(|p| p.into_inner());
        if *n == 0 {
            // Released by the last AppendGuard, not by this ByteLock.
            if let Some(lock) = ByteLock::take(&self.lock_file, RENAME_BYTE, false, true)? {
                std::mem::forget(lock);
            }
        }
        *n += 1;
        Ok(AppendGuard { spool: self })
    }

    /// Send pending records in order (see the module doc). Never blocks on another replayer.
    pub fn replay<E>(
        &self,
        mut send: impl FnMut(&SpoolRecord) -> Result<(), E>,
    ) -> io::Result<ReplayOutcome<E>> {
        let Ok(_in_process) = self.replaying.try_lock() else {
            return Ok(ReplayOutcome::Busy);
        };
        let Some(_replayer) = ByteLock::take(&self.lock_file, REPLAY_BYTE, true, false)? else {
            return Ok(ReplayOutcome::Busy);
        };
        let mut summary = ReplaySummary::default();
        // A segment left by an interrupted pass goes first, then the current one.
        for _ in 0..2 {
            if !self.replay_path.exists() && !self.take_current_segment()? {
                break;
            }
            if let Some(error) = self.replay_segment(&mut send, &mut summary)? {
                return Ok(ReplayOutcome::Stopped { summary, error });
            }
        }
        Ok(ReplayOutcome::Done(summary))
    }

    /// Rename `<path>` to `<path>.replay` under the rename guard. False if there is nothing to take.
    fn take_current_segment(&self) -> io::Result<bool> {
        // In this process: no appender is between its check and its write while we hold this.
        let _segment = self.segment.write().unwrap_or_else(|p| p.into_inner());
        // Other processes: their appenders hold the rename byte shared around check + write.
        let appenders = self.appenders.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(lock) = ByteLock::take(&self.lock_file, RENAME_BYTE, true, true)? {
            std::mem::forget(lock); // released (or downgraded) explicitly below
        }
        let renamed = self.rename_current();
        // Our own appenders may be counted as holding the shared lock: give it back to them.
        let back = if *appenders > 0 {
            libc::F_RDLCK
        } else {
            libc::F_UNLCK
        };
        fcntl_lock(&self.lock_file, libc::F_SETLK, back, RENAME_BYTE)?;
        renamed
    }

    fn rename_current(&self) -> io::Result<bool> {
        match fs::metadata(&self.path) {
            Ok(m) if m.len() > 0 => {}
            Ok(_) => return Ok(false),
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(false),
            Err(e) => return Err(e),
        }
        // The progress file goes first: a crash in between leaves a zeroed `.replay.off` that the
        // next take reuses in place.
        match fs::rename(&self.progress_path, &self.offset_path) {
            Ok(()) => {}
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                // No progress file (an older version's segment, or a crash just after the rename
                // above): reset a left-over one in place, which needs no new space.
                match OpenOptions::new().write(true).open(&self.offset_path) {
                    Ok(f) if f.metadata()?.len() >= 8 => f.write_all_at(&[0; 8], 0)?,
                    Ok(_) => fs::remove_file(&self.offset_path)?,
                    Err(e) if e.kind() == io::ErrorKind::NotFound => {}
                    Err(e) => return Err(e),
                }
            }
            Err(e) => return Err(e),
        }
        fs::rename(&self.path, &self.replay_path)?;
        Ok(true)
    }

    /// Send the records of `<path>.replay` from the saved offset. Some(error) = stopped by `send`.
    fn replay_segment<E>(
        &self,
        send: &mut impl FnMut(&SpoolRecord) -> Result<(), E>,
        summary: &mut ReplaySummary,
    ) -> io::Result<Option<E>> {
        let file = File::open(&self.replay_path)?;
        let size = file.metadata()?.len();
        let mut offset = read_offset(&self.offset_path).min(size);
        // Normally the 8 bytes exist already (written by the first append): this only overwrites.
        let offset_file = open_or_create(&self.offset_path)?;
        offset_file.write_all_at(&offset.to_le_bytes(), 0)?;
        let mut reader = BufReader::with_capacity(64 * 1024, &file);
        io::Seek::seek(&mut reader, io::SeekFrom::Start(offset))?;
        let mut buf = Vec::new();
        while offset < size {
            match read_record(&mut reader, &mut buf, size - offset)? {
                Ok((record, used)) => {
                    if let Err(e) = send(&record) {
                        return Ok(Some(e));
                    }
                    offset += used as u64;
                    summary.sent += 1;
                    offset_file.write_all_at(&offset.to_le_bytes(), 0)?;
                }
                Err(reason) => {
                    // A damaged record (e.g. a short write on a full disk) may be followed by good
                    // ones other appenders wrote later: skip to the next intact record, if any.
                    let next = find_next_record(&file, offset + 1, size)?.unwrap_or(size);
                    let cut = summary.cut.get_or_insert(CutTail {
                        offset,
                        dropped_bytes: 0,
                        reason,
                    });
                    cut.dropped_bytes += next - offset;
                    offset = next;
                    offset_file.write_all_at(&offset.to_le_bytes(), 0)?;
                    reader = BufReader::with_capacity(64 * 1024, &file);
                    io::Seek::seek(&mut reader, io::SeekFrom::Start(offset))?;
                }
            }
        }
        drop(offset_file);
        fs::remove_file(&self.replay_path)?;
        let _ = fs::remove_file(&self.offset_path);
        Ok(None)
    }
}

/// Offset of the first intact record (magic, length and checksum right) at or after `from`.
fn find_next_record(file: &File, from: u64, size: u64) -> io::Result<Option<u64>> {
    const WINDOW: usize = 64 * 1024;
    let mut window = vec![0u8; WINDOW + MAGIC.len()];
    let mut candidate = Vec::new();
    let mut at = from;
    while at < size {
        let len = (size - at).min(window.len() as u64) as usize;
        file.read_exact_at(&mut window[..len], at)?;
        for i in 0..len.saturating_sub(MAGIC.len() - 1) {
            if !is_magic(&window[i..i + MAGIC.len()]) {
                continue;
            }
            let pos = at + i as u64;
            let want = (size - pos).min((RECORD_HEADER_LEN + MAX_PAYLOAD) as u64) as usize;
            candidate.resize(want, 0);
            file.read_exact_at(&mut candidate, pos)?;
            if matches!(
                decode_one(&candidate[..want.min(candidate_len(&candidate))]),
                Ok(Some(_))
            ) {
                return Ok(Some(pos));
            }
        }
        at += WINDOW as u64;
    }
    Ok(None)
}

/// Length of the record a candidate header announces (bounded by what was read).
fn candidate_len(bytes: &[u8]) -> usize {
    match bytes.get(4..8) {
        Some(l) => (RECORD_HEADER_LEN + u32::from_le_bytes(l.try_into().unwrap()) as usize)
            .min(bytes.len()),
        None => bytes.len(),
    }
}

fn read_offset(path: &Path) -> u64 {
    match fs::read(path) {
        Ok(b) if b.len() >= 8 => u64::from_le_bytes(b[..8].try_into().unwrap()),
        _ => 0,
    }
}

/// Read one record of at most `left` bytes from `r` (inner Err = torn/corrupt, with the reason).
fn read_record(
    r: &mut impl Read,
    buf: &mut Vec<u8>,
    left: u64,
) -> io::Result<Result<(SpoolRecord, usize), String>> {
    buf.clear();
    let head_len = (RECORD_HEADER_LEN as u64).min(left) as usize;
    buf.resize(head_len, 0);
    r.read_exact(buf)?;
    if head_len == RECORD_HEADER_LEN && is_magic(buf) {
        let len = u32::from_le_bytes(buf[4..8].try_into().unwrap()) as u64;
        if len <= MAX_PAYLOAD as u64 {
            let take = len.min(left - RECORD_HEADER_LEN as u64) as usize;
            buf.resize(RECORD_HEADER_LEN + take, 0);
            r.read_exact(&mut buf[RECORD_HEADER_LEN..])?;
        }
    }
    Ok(match decode_one(buf) {
        Ok(Some(rec)) => Ok(rec),
        Ok(None) => Err("empty record".into()),
        Err(why) => Err(why),
    })
}
