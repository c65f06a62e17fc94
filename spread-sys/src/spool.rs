//! The spool: lines not handed over to a daemon, kept on disk to be replayed (CONTRACTS §5).
//! Append-only records, each with a length, a checksum, the daemon id, the group and the line.
//! A torn or corrupt tail is cut off (and reported), never fatal.

use std::fs::File;
use std::io;
use std::path::Path;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SpoolRecord {
    pub daemon_id: u32,
    pub group: Vec<u8>,
    pub line: Vec<u8>,
}

/// Encode one record (the caller writes it with one write(2) on an O_APPEND file).
pub fn encode_record(daemon_id: u32, group: &[u8], line: &[u8], out: &mut Vec<u8>) {
    let _ = (daemon_id, group, line, out);
    todo!()
}

/// Append one record with a single write.
pub fn append(file: &File, daemon_id: u32, group: &[u8], line: &[u8]) -> io::Result<()> {
    let _ = (file, daemon_id, group, line);
    todo!()
}

/// What reading a spool segment found.
#[derive(Debug, Default)]
pub struct SpoolContents {
    pub records: Vec<SpoolRecord>,
    /// Offset where a torn or corrupt tail starts (the good records end there) and why.
    pub torn_tail: Option<(u64, String)>,
}

/// Decode records from bytes (stops at the first bad record).
pub fn decode_all(bytes: &[u8]) -> SpoolContents {
    let _ = bytes;
    todo!()
}

/// Read a spool file and cut a torn tail off in place (truncate), reporting it.
pub fn read_and_repair(path: &Path) -> io::Result<SpoolContents> {
    let _ = path;
    todo!()
}
