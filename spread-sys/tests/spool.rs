//! The spool on real files: round trip, cap, torn tails, resume after a failed send, progress
//! recorded per record, busy lock (threads and processes), concurrent appenders (threads and
//! processes) racing a replayer lose nothing.

use std::collections::BTreeSet;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Child, Command};
use std::sync::Arc;
use std::time::{Duration, Instant};

use spread_sys::spool::{Appended, ReplayOutcome, Spool, SpoolRecord, encode_record};

fn tmp() -> (tempfile::TempDir, PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("spool");
    (dir, path)
}

/// Replay everything, returning the lines (panics on Busy or a send failure).
fn drain(spool: &Spool) -> Vec<Vec<u8>> {
    let mut lines = Vec::new();
    match spool.replay(|r: &SpoolRecord| -> Result<(), ()> {
        lines.push(r.line.clone());
        Ok(())
    }) {
        Ok(ReplayOutcome::Done(s)) => assert!(s.cut.is_none(), "{:?}", s.cut),
        other => panic!("{other:?}"),
    }
    lines
}

#[test]
fn round_trip_in_order_and_files_are_cleaned_up() {
    let (_d, path) = tmp();
    let spool = Spool::open(&path, 1 << 20).unwrap();
    use std::os::unix::fs::PermissionsExt;
    assert_eq!(
        std::fs::metadata(&path).unwrap().permissions().mode() & 0o777,
        0o640
    );
    for i in 0..100 {
        assert_eq!(
            spool
                .append(3, b"logs", format!("line {i}\n").as_bytes())
                .unwrap(),
            Appended::Written
        );
    }
    assert!(spool.pending_bytes() > 100 * 10);
    let mut records = Vec::new();
    let out = spool
        .replay(|r: &SpoolRecord| -> Result<(), ()> {
            records.push(r.clone());
            Ok(())
        })
        .unwrap();
    let ReplayOutcome::Done(summary) = out else {
        panic!("{out:?}")
    };
    assert_eq!(summary.sent, 100);
    assert_eq!(records.len(), 100);
    for (i, r) in records.iter().enumerate() {
        assert_eq!(
            (r.daemon_id, &r.group[..], &r.line[..]),
            (3, &b"logs"[..], format!("line {i}\n").as_bytes())
        );
    }
    assert_eq!(spool.pending_bytes(), 0);
    assert!(!path.with_extension("replay").exists());
    assert!(!Path::new(&format!("{}.replay", path.display())).exists());
    assert!(!Path::new(&format!("{}.replay.off", path.display())).exists());
    // Appends continue into a fresh segment after a replay.
    spool.append(3, b"logs", b"after\n").unwrap();
    assert_eq!(drain(&spool), vec![b"after\n".to_vec()]);
    // Nothing pending: Done with nothing sent.
    assert_eq!(drain(&spool), Vec::<Vec<u8>>::new());
}

#[test]
fn numbered_records_replay_with_their_stream_and_number_beside_plain_ones() {
    use spread_sys::spool::Origin;
    use spread_sys::stream::StreamId;
    let (_d, path) = tmp();
    let spool = Spool::open(&path, 1 << 20).unwrap();
    let origin = |n| Origin {
        stream: StreamId::from_bits(0xabc),
        number: n,
    };
    for i in 0..10u64 {
        let o = (i % 2 == 0).then(|| origin(i + 1));
        spool
            .append_any(0, b"www", format!("line {i}\n").as_bytes(), o)
            .unwrap();
    }
    // A torn numbered record in the middle: skipped, the rest replays.
    let mut torn = Vec::new();
    spread_sys::spool::encode_any(0, b"www", b"torn\n", Some(origin(99)), &mut torn);
    std::fs::OpenOptions::new()
        .append(true)
        .open(&path)
        .unwrap()
        .write_all(&torn[..torn.len() - 3])
        .unwrap();
    spool
        .append_any(0, b"www", b"after the tear\n", Some(origin(100)))
        .unwrap();
    let mut got = Vec::new();
    let out = spool
        .replay(|r: &SpoolRecord| -> Result<(), ()> {
            got.push((r.origin.map(|o| o.number), r.line.clone()));
            Ok(())
        })
        .unwrap();
    let ReplayOutcome::Done(summary) = out else {
        panic!("{out:?}")
    };
    assert!(summary.cut.is_some(), "the torn record is reported");
    assert_eq!(got.len(), 11);
    for (i, (n, line)) in got.iter().take(10).enumerate() {
        assert_eq!(line, format!("line {i}\n").as_bytes());
        assert_eq!(*n, (i % 2 == 0).then_some(i as u64 + 1));
    }
    assert_eq!(got[10], (Some(100), b"after the tear\n".to_vec()));
}

#[test]
fn cap_refuses_without_writing() {
    let (_d, path) = tmp();
    let mut one = Vec::new();
    encode_record(0, b"g", b"0123456789\n", &mut one);
    let spool = Spool::open(&path, 3 * one.len() as u64).unwrap();
    for _ in 0..3 {
        assert_eq!(
            spool.append(0, b"g", b"0123456789\n").unwrap(),
            Appended::Written
        );
    }
    let before = spool.pending_bytes();
    assert_eq!(
        spool.append(0, b"g", b"0123456789\n").unwrap(),
        Appended::Full
    );
    assert_eq!(spool.pending_bytes(), before);
    assert_eq!(drain(&spool).len(), 3);
    assert_eq!(
        spool.append(0, b"g", b"0123456789\n").unwrap(),
        Appended::Written
    );
}

#[test]
fn torn_or_corrupt_tail_is_cut_and_reported() {
    let (_d, path) = tmp();
    let spool = Spool::open(&path, 1 << 20).unwrap();
    spool.append(1, b"g", b"good 1\n").unwrap();
    spool.append(1, b"g", b"good 2\n").unwrap();
    let good_len = std::fs::metadata(&path).unwrap().len();
    let mut rec = Vec::new();
    encode_record(1, b"g", b"torn line\n", &mut rec);
    use std::io::Write;
    std::fs::OpenOptions::new()
        .append(true)
        .open(&path)
        .unwrap()
        .write_all(&rec[..rec.len() - 3])
        .unwrap();
    let mut lines = Vec::new();
    let out = spool
        .replay(|r: &SpoolRecord| -> Result<(), ()> {
            lines.push(r.line.clone());
            Ok(())
        })
        .unwrap();
    let ReplayOutcome::Done(s) = out else {
        panic!()
    };
    assert_eq!(lines, vec![b"good 1\n".to_vec(), b"good 2\n".to_vec()]);
    let cut = s.cut.expect("torn tail reported");
    assert_eq!(
        (cut.offset, cut.dropped_bytes),
        (good_len, rec.len() as u64 - 3)
    );
    assert!(cut.to_string().contains("torn"), "{cut}");
    assert_eq!(spool.pending_bytes(), 0);
}

#[test]
fn replay_stops_at_a_failed_send_and_resumes_there() {
    let (_d, path) = tmp();
    let spool = Spool::open(&path, 1 << 20).unwrap();
    for i in 0..10 {
        spool.append(0, b"g", format!("{i}\n").as_bytes()).unwrap();
    }
    let mut got = Vec::new();
    let out = spool
        .replay(|r: &SpoolRecord| {
            if r.line == b"5\n" {
                return Err("daemon gone");
            }
            got.push(r.line.clone());
            Ok(())
        })
        .unwrap();
    let ReplayOutcome::Stopped { summary, error } = out else {
        panic!("{out:?}")
    };
    assert_eq!((summary.sent, error), (5, "daemon gone"));
    // New lines arrive while the old segment waits; they must come after it.
    spool.append(0, b"g", b"10\n").unwrap();
    got.extend(drain(&spool));
    let want: Vec<Vec<u8>> = (0..=10).map(|i| format!("{i}\n").into_bytes()).collect();
    assert_eq!(got, want);
}

#[test]
fn progress_is_recorded_before_the_next_send() {
    // A crash while sending record k must repeat only record k: the offset file already points at it.
    let (_d, path) = tmp();
    let spool = Spool::open(&path, 1 << 20).unwrap();
    let mut offsets = Vec::new();
    let mut at = 0u64;
    for i in 0..5 {
        let line = format!("line {i}\n");
        let mut rec = Vec::new();
        encode_record(0, b"g", line.as_bytes(), &mut rec);
        offsets.push(at);
        at += rec.len() as u64;
        spool.append(0, b"g", line.as_bytes()).unwrap();
    }
    let off_path = format!("{}.replay.off", path.display());
    let mut k = 0;
    let out = spool
        .replay(|_: &SpoolRecord| -> Result<(), ()> {
            let saved = std::fs::read(&off_path)
                .map(|b| u64::from_le_bytes(b[..8].try_into().unwrap()))
                .unwrap_or(0);
            assert_eq!(saved, offsets[k], "record {k}");
            k += 1;
            Ok(())
        })
        .unwrap();
    assert!(matches!(out, ReplayOutcome::Done(_)));
    assert_eq!(k, 5);
}

#[test]
fn second_replayer_thread_is_busy() {
    let (_d, path) = tmp();
    let spool = Arc::new(Spool::open(&path, 1 << 20).unwrap());
    spool.append(0, b"g", b"x\n").unwrap();
    let (in_send_tx, in_send_rx) = std::sync::mpsc::channel();
    let (release_tx, release_rx) = std::sync::mpsc::channel::<()>();
    let s2 = spool.clone();
    let t = std::thread::spawn(move || {
        let mut lines = Vec::new();
        let out = s2
            .replay(|r: &SpoolRecord| -> Result<(), ()> {
                if lines.is_empty() {
                    in_send_tx.send(()).unwrap();
                    release_rx.recv().unwrap();
                }
                lines.push(r.line.clone());
                Ok(())
            })
            .unwrap();
        (out, lines)
    });
    in_send_rx.recv().unwrap();
    assert!(matches!(
        spool
            .replay(|_: &SpoolRecord| -> Result<(), ()> { Ok(()) })
            .unwrap(),
        ReplayOutcome::Busy
    ));
    // Appending is not blocked by a running replay.
    assert_eq!(spool.append(0, b"g", b"y\n").unwrap(), Appended::Written);
    release_tx.send(()).unwrap();
    let (out, lines) = t.join().unwrap();
    assert!(matches!(out, ReplayOutcome::Done(_)));
    // The line appended meanwhile went to a fresh segment, which the same pass replayed after.
    assert_eq!(lines, vec![b"x\n".to_vec(), b"y\n".to_vec()]);
    assert_eq!(drain(&spool), Vec::<Vec<u8>>::new());
}

fn child(role: &str, path: &Path, extra: &str) -> Child {
    Command::new(std::env::current_exe().unwrap())
        .args([
            "--ignored",
            "--exact",
            "child_process_role",
            "--nocapture",
            "--test-threads=1",
        ])
        .env("SPOOL_CHILD_ROLE", role)
        .env("SPOOL_CHILD_PATH", path)
        .env("SPOOL_CHILD_EXTRA", extra)
        .stdout(std::process::Stdio::null())
        .spawn()
        .unwrap()
}

/// Not a test: the body of the child processes the tests above start (does nothing without them).
#[test]
#[ignore = "helper run as a child process by the spool tests"]
fn child_process_role() {
    let Ok(role) = std::env::var("SPOOL_CHILD_ROLE") else {
        return;
    };
    let path = PathBuf::from(std::env::var("SPOOL_CHILD_PATH").unwrap());
    let extra = std::env::var("SPOOL_CHILD_EXTRA").unwrap();
    let spool = Spool::open(&path, 1 << 30).unwrap();
    match role.as_str() {
        "append" => {
            for i in 0..500 {
                assert_eq!(
                    spool
                        .append(1, b"g", format!("{extra}-{i}\n").as_bytes())
                        .unwrap(),
                    Appended::Written
                );
            }
        }
        "hold-replay" => {
            let marker = PathBuf::from(&extra);
            let out = spool
                .replay(|_: &SpoolRecord| -> Result<(), ()> {
                    std::fs::write(marker.with_extension("started"), b"").unwrap();
                    let t0 = Instant::now();
                    while !marker.with_extension("release").exists() {
                        assert!(t0.elapsed() < Duration::from_secs(20), "never released");
                        std::thread::sleep(Duration::from_millis(5));
                    }
                    Ok(())
                })
                .unwrap();
            assert!(matches!(out, ReplayOutcome::Done(_)));
        }
        other => panic!("unknown role {other}"),
    }
}

#[test]
fn replayer_in_another_process_makes_us_busy() {
    let (d, path) = tmp();
    let spool = Spool::open(&path, 1 << 20).unwrap();
    spool.append(0, b"g", b"x\n").unwrap();
    let marker = d.path().join("m");
    let mut c = child("hold-replay", &path, marker.to_str().unwrap());
    let t0 = Instant::now();
    while !marker.with_extension("started").exists() {
        assert!(
            t0.elapsed() < Duration::from_secs(20),
            "child never started replaying"
        );
        std::thread::sleep(Duration::from_millis(5));
    }
    assert!(matches!(
        spool
            .replay(|_: &SpoolRecord| -> Result<(), ()> { Ok(()) })
            .unwrap(),
        ReplayOutcome::Busy
    ));
    std::fs::write(marker.with_extension("release"), b"").unwrap();
    assert!(c.wait().unwrap().success());
    assert_eq!(drain(&spool), Vec::<Vec<u8>>::new());
}

fn collect_until(
    spool: &Spool,
    want: usize,
    seen: &mut Vec<Vec<u8>>,
    mut done: impl FnMut() -> bool,
) {
    let t0 = Instant::now();
    loop {
        let finished = done();
        match spool.replay(|r: &SpoolRecord| -> Result<(), ()> {
            seen.push(r.line.clone());
            Ok(())
        }) {
            Ok(ReplayOutcome::Done(s)) => assert!(s.cut.is_none(), "{:?}", s.cut),
            Ok(ReplayOutcome::Busy) => {}
            other => panic!("{other:?}"),
        }
        if finished && spool.pending_bytes() == 0 {
            break;
        }
        assert!(
            t0.elapsed() < Duration::from_secs(60),
            "only {} of {want}",
            seen.len()
        );
    }
    let unique: BTreeSet<&Vec<u8>> = seen.iter().collect();
    assert_eq!(unique.len(), seen.len(), "duplicates");
    assert_eq!(seen.len(), want, "lines lost");
}

#[test]
fn concurrent_appender_threads_racing_a_replayer_lose_nothing() {
    let (_d, path) = tmp();
    let spool = Arc::new(Spool::open(&path, 1 << 30).unwrap());
    let threads: Vec<_> = (0..6)
        .map(|t| {
            let s = spool.clone();
            std::thread::spawn(move || {
                for i in 0..500 {
                    assert_eq!(
                        s.append(0, b"g", format!("t{t}-{i}\n").as_bytes()).unwrap(),
                        Appended::Written
                    );
                }
            })
        })
        .collect();
    let mut seen = Vec::new();
    collect_until(&spool, 3000, &mut seen, || {
        threads.iter().all(|t| t.is_finished())
    });
    // Per-thread order is kept.
    for t in 0..6 {
        let mine: Vec<&Vec<u8>> = seen
            .iter()
            .filter(|l| l.starts_with(format!("t{t}-").as_bytes()))
            .collect();
        for (i, l) in mine.iter().enumerate() {
            assert_eq!(&l[..], format!("t{t}-{i}\n").as_bytes());
        }
    }
}

#[test]
fn concurrent_appender_processes_racing_a_replayer_lose_nothing() {
    let (_d, path) = tmp();
    let spool = Spool::open(&path, 1 << 30).unwrap();
    let mut children: Vec<Child> = (0..4)
        .map(|p| child("append", &path, &format!("p{p}")))
        .collect();
    let mut seen = Vec::new();
    collect_until(&spool, 2000, &mut seen, || {
        children.iter_mut().all(|c| {
            c.try_wait().unwrap().is_some_and(|s| {
                assert!(s.success());
                true
            })
        })
    });
}

#[test]
fn damaged_record_in_the_middle_is_skipped_and_later_records_survive() {
    let (_d, path) = tmp();
    let spool = Spool::open(&path, 1 << 20).unwrap();
    spool.append(1, b"g", b"before\n").unwrap();
    let bad_at = std::fs::metadata(&path).unwrap().len();
    // A short write (full disk) leaves half a record; other appenders carry on after it.
    let mut rec = Vec::new();
    encode_record(1, b"g", b"half written line\n", &mut rec);
    use std::io::Write;
    std::fs::OpenOptions::new()
        .append(true)
        .open(&path)
        .unwrap()
        .write_all(&rec[..rec.len() / 2])
        .unwrap();
    spool.append(1, b"g", b"after 1\n").unwrap();
    spool.append(1, b"g", b"after 2\n").unwrap();
    let mut lines = Vec::new();
    let out = spool
        .replay(|r: &SpoolRecord| -> Result<(), ()> {
            lines.push(r.line.clone());
            Ok(())
        })
        .unwrap();
    let ReplayOutcome::Done(s) = out else {
        panic!("{out:?}")
    };
    assert_eq!(
        lines,
        vec![
            b"before\n".to_vec(),
            b"after 1\n".to_vec(),
            b"after 2\n".to_vec()
        ]
    );
    let cut = s.cut.expect("damage reported");
    assert_eq!(
        (cut.offset, cut.dropped_bytes),
        (bad_at, (rec.len() / 2) as u64)
    );
}

/// A small tmpfs mounted for one test (root only), unmounted on drop.
struct SmallFs {
    dir: tempfile::TempDir,
}

impl SmallFs {
    fn mount(size: &str) -> Result<SmallFs, String> {
        // SAFETY: geteuid has no memory effects.
        if unsafe { libc::geteuid() } != 0 {
            return Err("not root: cannot mount a tmpfs".into());
        }
        let dir = tempfile::tempdir().map_err(|e| e.to_string())?;
        let out = Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"])
            .arg(dir.path())
            .output()
            .map_err(|e| format!("mount: {e}"))?;
        if !out.status.success() {
            return Err(format!(
                "mount: {}",
                String::from_utf8_lossy(&out.stderr).trim()
            ));
        }
        Ok(SmallFs { dir })
    }
}

impl Drop for SmallFs {
    fn drop(&mut self) {
        let _ = Command::new("umount")
            .arg("-l")
            .arg(self.dir.path())
            .status();
    }
}

#[test]
fn replays_from_a_full_filesystem() {
    let fs = match SmallFs::mount("64k") {
        Ok(fs) => fs,
        Err(why) => {
            eprintln!("SKIPPED replays_from_a_full_filesystem: {why}");
            return;
        }
    };
    let path = fs.dir.path().join("spool");
    let spool = Spool::open(&path, 1 << 30).unwrap();
    // Fill the disk: appends fail once it is full (a torn last record is allowed).
    let mut written = Vec::new();
    let mut full = None;
    for i in 0..10_000 {
        let line = format!("line {i} {}\n", "x".repeat(100));
        match spool.append(0, b"g", line.as_bytes()) {
            Ok(Appended::Written) => written.push(line.into_bytes()),
            Ok(Appended::Full) => panic!("cap reached"),
            Err(e) => {
                full = Some(e);
                break;
            }
        }
    }
    let e = full.expect("the tmpfs never filled up");
    assert!(written.len() > 50, "only {} lines fit: {e}", written.len());
    // Still full: not even 8 bytes more.
    assert!(std::fs::write(fs.dir.path().join("probe"), [0u8; 8]).is_err());

    // The first pass stops after some lines (a daemon going away), the second resumes there:
    // progress is recorded in place while the disk is full.
    let mut got = Vec::new();
    let out = spool
        .replay(|r: &SpoolRecord| {
            if got.len() == 10 {
                return Err("gone");
            }
            got.push(r.line.clone());
            Ok(())
        })
        .unwrap();
    assert!(
        matches!(out, ReplayOutcome::Stopped { ref summary, .. } if summary.sent == 10),
        "{out:?}"
    );
    let off = std::fs::read(format!("{}.replay.off", path.display())).unwrap();
    assert_ne!(u64::from_le_bytes(off[..8].try_into().unwrap()), 0);
    let mut rest = Vec::new();
    let out = spool
        .replay(|r: &SpoolRecord| -> Result<(), ()> {
            rest.push(r.line.clone());
            Ok(())
        })
        .unwrap();
    let ReplayOutcome::Done(summary) = out else {
        panic!("{out:?}")
    };
    got.extend(rest);
    assert_eq!(got, written, "every spooled line, in order, once");
    if let Some(cut) = summary.cut {
        eprintln!("{cut}");
    }
    assert_eq!(spool.pending_bytes(), 0);
    // The space is free again: appending works.
    assert_eq!(
        spool.append(0, b"g", b"after\n").unwrap(),
        Appended::Written
    );
    assert_eq!(drain(&spool), vec![b"after\n".to_vec()]);
}

#[test]
fn an_append_writes_the_progress_file_and_a_replay_only_overwrites_it() {
    let (_d, path) = tmp();
    let spool = Spool::open(&path, 1 << 20).unwrap();
    let progress = PathBuf::from(format!("{}.off", path.display()));
    let off = PathBuf::from(format!("{}.replay.off", path.display()));
    assert!(!progress.exists(), "created before any append");
    spool.append(0, b"g", b"1\n").unwrap();
    assert_eq!(std::fs::read(&progress).unwrap(), [0u8; 8]);
    use std::os::unix::fs::MetadataExt;
    let ino = std::fs::metadata(&progress).unwrap().ino();
    let mut seen = None;
    let out = spool
        .replay(|_: &SpoolRecord| -> Result<(), ()> {
            seen = Some(std::fs::metadata(&off).unwrap().ino());
            Err(())
        })
        .unwrap();
    assert!(matches!(out, ReplayOutcome::Stopped { .. }));
    assert_eq!(seen, Some(ino), "the replay uses the file the append wrote");
    assert!(!progress.exists());
    // A new segment gets its own progress file; the old one keeps its place.
    spool.append(0, b"g", b"2\n").unwrap();
    assert!(progress.exists());
    assert_eq!(drain(&spool), vec![b"1\n".to_vec(), b"2\n".to_vec()]);
    assert!(!progress.exists() && !off.exists());
}

#[test]
fn a_left_over_replay_offset_is_reset_when_a_segment_is_taken() {
    // An older version's segment has no progress file; a stale `.replay.off` must not apply to it.
    let (_d, path) = tmp();
    let off = format!("{}.replay.off", path.display());
    let mut seg = Vec::new();
    encode_record(0, b"g", b"a\n", &mut seg);
    encode_record(0, b"g", b"b\n", &mut seg);
    std::fs::write(&path, &seg).unwrap();
    std::fs::write(&off, 5u64.to_le_bytes()).unwrap();
    let spool = Spool::open(&path, 1 << 20).unwrap();
    assert_eq!(drain(&spool), vec![b"a\n".to_vec(), b"b\n".to_vec()]);
    assert!(!Path::new(&off).exists());
}

#[test]
fn a_full_disk_reports_enospc_and_its_torn_record_is_never_replayed() {
    let fs = match SmallFs::mount("64k") {
        Ok(fs) => fs,
        Err(why) => {
            eprintln!("SKIPPED a_full_disk_reports_enospc_...: {why}");
            return;
        }
    };
    let ballast = fs.dir.path().join("ballast");
    std::fs::write(&ballast, vec![0u8; 16 * 1024]).unwrap();
    let path = fs.dir.path().join("spool");
    let spool = Spool::open(&path, 1 << 30).unwrap();
    // Lines of an odd size, so the last one only partly fits (a short write) on most runs.
    let mut written = Vec::new();
    let mut full = None;
    for i in 0..10_000 {
        let line = format!("line {i} {}\n", "x".repeat(1500));
        match spool.append(0, b"g", line.as_bytes()) {
            Ok(Appended::Written) => written.push(line.into_bytes()),
            Ok(Appended::Full) => panic!("cap reached"),
            Err(e) => {
                full = Some(e);
                break;
            }
        }
    }
    let e = full.expect("the tmpfs never filled up");
    assert_eq!(e.kind(), std::io::ErrorKind::StorageFull, "{e}");
    assert!(
        e.to_string().contains("No space left on device"),
        "the OS reason, not a byte count: {e}"
    );
    let torn = std::fs::metadata(&path).unwrap().len()
        - written
            .iter()
            .map(|l| (12 + 5 + 1 + l.len()) as u64)
            .sum::<u64>();
    eprintln!("full after {} lines, {torn} torn bytes: {e}", written.len());
    // Space comes back; later lines land after the torn record.
    std::fs::remove_file(&ballast).unwrap();
    for i in 0..3 {
        let line = format!("after {i}\n").into_bytes();
        assert_eq!(spool.append(0, b"g", &line).unwrap(), Appended::Written);
        written.push(line);
    }
    let mut got = Vec::new();
    let out = spool
        .replay(|r: &SpoolRecord| -> Result<(), ()> {
            got.push(r.line.clone());
            Ok(())
        })
        .unwrap();
    let ReplayOutcome::Done(summary) = out else {
        panic!("{out:?}")
    };
    assert_eq!(
        got, written,
        "every whole record once, in order; no part of the torn one"
    );
    match summary.cut {
        Some(cut) => assert_eq!(cut.dropped_bytes, torn, "{cut}"),
        None => assert_eq!(torn, 0),
    }
}
