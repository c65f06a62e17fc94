//! Bytes of a stream -> whole messages, keeping partial input (both sides use it).

use super::header::Header;

/// Why a stream cannot be framed any further (the peer broke the protocol; close it).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FrameError {
    #[error("negative num_groups {0}")]
    NegativeGroups(i32),
    #[error("negative data_len {0}")]
    NegativeLength(i32),
    #[error("message of {0} bytes exceeds the limit {1}")]
    TooLong(usize, usize),
}

/// Total frame length (header + optional reject old_type + groups + body) for a decoded header, or an
/// error if `data_len + 32 x groups` exceeds `max_len` or a count is negative.
pub fn frame_len(header: &Header, max_len: usize) -> Result<usize, FrameError> {
    let _ = (header, max_len);
    todo!()
}

/// Accumulates stream bytes and yields whole frames. Reuses its buffer: no allocation per message
/// once warm.
#[derive(Debug, Default)]
pub struct Deframer {
    buf: Vec<u8>,
    start: usize,
    max_len: usize,
}

impl Deframer {
    /// `max_len` bounds `data_len + 32 x num_groups` (the daemon uses DAEMON_KILL_LEN).
    pub fn new(max_len: usize) -> Deframer {
        Deframer { buf: Vec::new(), start: 0, max_len }
    }
    /// Space to read into: the caller fills some prefix of it and calls `filled(n)`.
    pub fn spare(&mut self, at_least: usize) -> &mut [u8] {
        let _ = at_least;
        todo!()
    }
    pub fn filled(&mut self, n: usize) {
        let _ = n;
        todo!()
    }
    /// Append bytes read elsewhere.
    pub fn push(&mut self, bytes: &[u8]) {
        let _ = bytes;
        todo!()
    }
    /// Next whole frame: (header, the frame's bytes after the 48-byte header). None = need more.
    pub fn next_frame(&mut self) -> Option<Result<(Header, &[u8]), FrameError>> {
        todo!()
    }
    /// Bytes buffered but not yet returned as a frame.
    pub fn buffered(&self) -> usize {
        self.buf.len() - self.start
    }
}
