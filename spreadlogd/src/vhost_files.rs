//! A bounded LRU cache of open per-vhost files inside one `VhostDir` (the original's table thrashed
//! and leaked on collisions). Each open file has its own pending buffer, written once per batch.

use std::collections::HashMap;
use std::fs::File;
use std::path::PathBuf;

use crate::delivered::Touched;
use crate::logger::Logger;
use crate::output::{Batch, open_log_file, write_file_batch};

struct Slot {
    file: File,
    pending: Batch,
    last_used: u64,
}

pub struct VhostFiles {
    dir: PathBuf,
    capacity: usize,
    lock: bool,
    slots: HashMap<String, Slot>,
    tick: u64,
    pub lines_written: u64,
    pub lines_lost: u64,
    pub evictions: u64,
    pub open_errors: u64,
    /// Files written since the last flush (evictions write too).
    touched: Vec<Touched>,
    /// Lines were lost since the last flush.
    failed: bool,
}

impl VhostFiles {
    pub fn new(dir: PathBuf, capacity: usize, lock: bool) -> VhostFiles {
        VhostFiles {
            dir,
            capacity: capacity.max(1),
            lock,
            slots: HashMap::new(),
            tick: 0,
            lines_written: 0,
            lines_lost: 0,
            evictions: 0,
            open_errors: 0,
            touched: Vec::new(),
            failed: false,
        }
    }

    pub fn dir(&self) -> &std::path::Path {
        &self.dir
    }

    pub fn open_count(&self) -> usize {
        self.slots.len()
    }

    /// Queue `bytes` for `VhostDir/<name>`; `name` must already be a cleaned host name (or the
    /// fallback name): it is joined as one path component. False, with nothing queued, when
    /// `VhostDir/<name>` is a symlink: the caller diverts the line to the fallback file.
    pub fn push(&mut self, name: &str, bytes: &[u8], log: &Logger) -> bool {
        debug_assert!(!name.contains('/') && name != ".." && name != ".");
        self.tick += 1;
        if !self.slots.contains_key(name) {
            if self.slots.len() >= self.capacity {
                self.evict_lru(log);
            }
            // O_NOFOLLOW: a symlink planted in VhostDir must not redirect writes elsewhere.
            match open_log_file(&self.dir.join(name), self.lock, true) {
                Ok(file) => {
                    self.slots.insert(
                        name.to_owned(),
                        Slot {
                            file,
                            pending: Batch::default(),
                            last_used: 0,
                        },
                    );
                }
                // O_NOFOLLOW met a symlink: refused, the caller diverts the line.
                Err(e) if e.raw_os_error() == Some(libc::ELOOP) => {
                    log.warn(&format!(
                        "vhost log {} is a symlink: not followed, the line goes to {}",
                        self.dir.join(name).display(),
                        crate::vhost::FALLBACK_FILE
                    ));
                    return false;
                }
                Err(e) => {
                    self.open_errors += 1;
                    self.lines_lost += 1;
                    log.error(&format!(
                        "cannot open vhost log {}: {e}; line lost",
                        self.dir.join(name).display()
                    ));
                    return true;
                }
            }
        }
        let tick = self.tick;
        let slot = self.slots.get_mut(name).expect("inserted above");
        slot.last_used = tick;
        if !slot.pending.push(bytes) {
            self.lines_lost += 1;
        }
        true
    }

    fn evict_lru(&mut self, log: &Logger) {
        let Some(name) = self
            .slots
            .iter()
            .min_by_key(|(_, s)| s.last_used)
            .map(|(n, _)| n.clone())
        else {
            return;
        };
        if let Some(mut slot) = self.slots.remove(&name) {
            self.write_slot(&name, &mut slot, log);
            self.evictions += 1;
        }
    }

    /// Write a slot's lines; false when they are lost (the file cannot be written; counted,
    /// logged, and cut back off the file).
    fn write_slot(&mut self, name: &str, slot: &mut Slot, log: &Logger) -> bool {
        if slot.pending.is_empty() {
            return true;
        }
        let path = self.dir.join(name);
        let ok = match write_file_batch(
            &mut slot.file,
            &path,
            &slot.pending.bytes,
            &mut self.touched,
        ) {
            Ok(()) => {
                self.lines_written += slot.pending.lines;
                true
            }
            Err(e) => {
                self.lines_lost += slot.pending.lines;
                log.error(&format!(
                    "cannot write {} lines to {}: {e}; lines lost",
                    slot.pending.lines,
                    path.display()
                ));
                false
            }
        };
        slot.pending.clear();
        self.failed |= !ok;
        ok
    }

    /// Write every slot. False when some lines since the last flush were lost (also those of
    /// a file evicted meanwhile).
    pub fn flush(&mut self, log: &Logger, touched: &mut Vec<Touched>) -> bool {
        let mut slots = std::mem::take(&mut self.slots);
        for (name, slot) in slots.iter_mut() {
            self.write_slot(name, slot, log);
        }
        self.slots = slots;
        touched.append(&mut self.touched);
        !std::mem::take(&mut self.failed)
    }

    /// SIGHUP and exit: write and close everything; files are reopened lazily.
    pub fn close_all(&mut self, log: &Logger, touched: &mut Vec<Touched>) {
        self.flush(log, touched);
        self.slots.clear();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lru_bounds_open_files_and_keeps_every_line() {
        let dir = tempfile::tempdir().unwrap();
        let log = Logger::stderr("test", false);
        let mut v = VhostFiles::new(dir.path().to_owned(), 3, false);
        for round in 0..3 {
            for h in ["a", "b", "c", "d", "e"] {
                v.push(h, format!("{h}{round}\n").as_bytes(), &log);
                assert!(v.open_count() <= 3);
            }
        }
        v.flush(&log, &mut Vec::new());
        for h in ["a", "b", "c", "d", "e"] {
            let got = std::fs::read_to_string(dir.path().join(h)).unwrap();
            assert_eq!(got, format!("{h}0\n{h}1\n{h}2\n"));
        }
        assert!(v.evictions > 0);
        assert_eq!(v.lines_written, 15);
    }

    #[test]
    fn recently_used_file_stays_open() {
        let dir = tempfile::tempdir().unwrap();
        let log = Logger::stderr("test", false);
        let mut v = VhostFiles::new(dir.path().to_owned(), 2, false);
        v.push("a", b"1\n", &log);
        v.push("b", b"1\n", &log);
        v.push("a", b"2\n", &log);
        v.push("c", b"1\n", &log); // evicts b, not a
        assert!(
            v.slots.contains_key("a") && v.slots.contains_key("c") && !v.slots.contains_key("b")
        );
    }

    #[test]
    fn symlink_in_vhostdir_is_not_followed() {
        let dir = tempfile::tempdir().unwrap();
        let outside = tempfile::tempdir().unwrap();
        let target = outside.path().join("victim");
        std::os::unix::fs::symlink(&target, dir.path().join("evil.com")).unwrap();
        let log = Logger::stderr("test", false);
        let mut v = VhostFiles::new(dir.path().to_owned(), 2, false);
        assert!(
            !v.push("evil.com", b"x\n", &log),
            "refused for the caller to divert"
        );
        v.flush(&log, &mut Vec::new());
        assert!(!target.exists());
        assert_eq!(v.lines_lost, 0);
    }
}
