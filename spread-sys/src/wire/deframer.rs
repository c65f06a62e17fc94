//! Bytes of a stream -> whole messages, keeping partial input (both sides use it).

use super::constants::{HEADER_LEN, MAX_GROUP_NAME, REJECT_MESS};
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
/// error if `data_len + 32 x groups` exceeds `max_len` or a count is negative. This is the
/// daemon -> client view: a REJECT_MESS carries a 4-byte `old_type` before its groups.
pub fn frame_len(header: &Header, max_len: usize) -> Result<usize, FrameError> {
    frame_len_with(header, max_len, header.service_type & REJECT_MESS != 0)
}

/// Frame length of a client -> daemon request: requests never carry `old_type`, whatever bits a
/// (misbehaving) client sets in `type`.
pub fn request_frame_len(header: &Header, max_len: usize) -> Result<usize, FrameError> {
    frame_len_with(header, max_len, false)
}

fn frame_len_with(
    header: &Header,
    max_len: usize,
    has_old_type: bool,
) -> Result<usize, FrameError> {
    if header.num_groups < 0 {
        return Err(FrameError::NegativeGroups(header.num_groups));
    }
    if header.data_len < 0 {
        return Err(FrameError::NegativeLength(header.data_len));
    }
    let payload = header.data_len as usize + MAX_GROUP_NAME * header.num_groups as usize;
    if payload > max_len {
        return Err(FrameError::TooLong(payload, max_len));
    }
    Ok(HEADER_LEN + if has_old_type { 4 } else { 0 } + payload)
}

/// Accumulates stream bytes and yields whole frames. Reuses its buffer: no allocation per message
/// once warm.
#[derive(Debug, Default)]
pub struct Deframer {
    /// Storage; only `start..end` holds unconsumed stream bytes, `end..` is spare room.
    buf: Vec<u8>,
    start: usize,
    end: usize,
    max_len: usize,
    /// Frames are client requests (no reject `old_type`), see [`Deframer::for_requests`].
    requests: bool,
}

impl Deframer {
    /// Frames sent by a daemon (client side). `max_len` bounds `data_len + 32 x num_groups`.
    pub fn new(max_len: usize) -> Deframer {
        Deframer {
            buf: Vec::new(),
            start: 0,
            end: 0,
            max_len,
            requests: false,
        }
    }
    /// Frames sent by a client (daemon side): a REJECT_MESS bit in a request does not imply an
    /// `old_type` word. `max_len` is typically DAEMON_KILL_LEN.
    pub fn for_requests(max_len: usize) -> Deframer {
        Deframer {
            requests: true,
            ..Deframer::new(max_len)
        }
    }
    fn compact(&mut self) {
        if self.start == self.end {
            self.start = 0;
            self.end = 0;
        } else if self.start > 0 {
            self.buf.copy_within(self.start..self.end, 0);
            self.end -= self.start;
            self.start = 0;
        }
    }
    /// Space to read into: the caller fills some prefix of it and calls `filled(n)`.
    /// The slice is at least `at_least` bytes long (possibly longer).
    pub fn spare(&mut self, at_least: usize) -> &mut [u8] {
        self.compact();
        if self.buf.len() - self.end < at_least {
            // Room for a partial frame plus a full read, so the size settles after the first growth.
            self.buf.resize((self.end + at_least).max(2 * at_least), 0);
        }
        &mut self.buf[self.end..]
    }
    /// Record that `n` bytes of the last `spare` slice were filled.
    pub fn filled(&mut self, n: usize) {
        assert!(
            self.end + n <= self.buf.len(),
            "filled more than spare room"
        );
        self.end += n;
    }
    /// Append bytes read elsewhere.
    pub fn push(&mut self, bytes: &[u8]) {
        self.spare(bytes.len())[..bytes.len()].copy_from_slice(bytes);
        self.end += bytes.len();
    }
    /// Bytes still missing before the frame at the head of the buffer is whole (at least 1 when
    /// nothing is buffered; 0 when a whole frame or a framing error is ready).
    pub fn missing(&self) -> usize {
        let have = self.buffered();
        let Some(header) = Header::decode_prefix(&self.buf[self.start..self.end]) else {
            return HEADER_LEN - have;
        };
        match self.frame_len_of(&header) {
            Ok(total) => total.saturating_sub(have),
            Err(_) => 0,
        }
    }
    fn frame_len_of(&self, header: &Header) -> Result<usize, FrameError> {
        if self.requests {
            request_frame_len(header, self.max_len)
        } else {
            frame_len(header, self.max_len)
        }
    }
    /// Next whole frame: (header, the frame's bytes after the 48-byte header). None = need more.
    /// After an error the stream is unusable and the same error is returned again.
    pub fn next_frame(&mut self) -> Option<Result<(Header, &[u8]), FrameError>> {
        let header = Header::decode_prefix(&self.buf[self.start..self.end])?;
        let total = match self.frame_len_of(&header) {
            Ok(total) => total,
            Err(e) => return Some(Err(e)),
        };
        if self.buffered() < total {
            return None;
        }
        let from = self.start + HEADER_LEN;
        let to = self.start + total;
        self.start = to;
        Some(Ok((header, &self.buf[from..to])))
    }
    /// Bytes buffered but not yet returned as a frame.
    pub fn buffered(&self) -> usize {
        self.end - self.start
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wire::constants::*;
    use crate::wire::header::{DAEMON_HINT, push_header};

    fn frame(body: &[u8]) -> Vec<u8> {
        let mut v = Vec::new();
        push_header(&mut v, AGREED_MESS, b"#a#d", 1, DAEMON_HINT, body.len());
        super::super::header::push_name(&mut v, b"grp");
        v.extend_from_slice(body);
        v
    }

    #[test]
    fn byte_by_byte_and_batched() {
        let mut stream = frame(b"hello");
        stream.extend(frame(b""));
        stream.extend(frame(&[7u8; 1000]));
        let mut d = Deframer::new(MAX_SAFE_MESSAGE_LEN);
        let mut got = Vec::new();
        for b in &stream {
            d.push(&[*b]);
            while let Some(f) = d.next_frame() {
                let (h, rest) = f.unwrap();
                got.push((h.data_len, rest.len()));
            }
        }
        assert_eq!(got, vec![(5, 37), (0, 32), (1000, 1032)]);
        assert_eq!(d.buffered(), 0);

        let mut d = Deframer::new(MAX_SAFE_MESSAGE_LEN);
        let spare = d.spare(stream.len());
        spare[..stream.len()].copy_from_slice(&stream);
        d.filled(stream.len());
        let mut n = 0;
        while let Some(f) = d.next_frame() {
            f.unwrap();
            n += 1;
        }
        assert_eq!(n, 3);
    }

    #[test]
    fn missing_counts_down() {
        let f = frame(b"abc");
        let mut d = Deframer::new(1000);
        assert_eq!(d.missing(), 48);
        d.push(&f[..10]);
        assert_eq!(d.missing(), 38);
        d.push(&f[10..50]);
        assert_eq!(d.missing(), f.len() - 50);
        d.push(&f[50..]);
        assert_eq!(d.missing(), 0);
        assert!(d.next_frame().unwrap().is_ok());
    }

    /// The error a 1000-byte deframer finds in `bytes`.
    fn frame_error(bytes: &[u8]) -> FrameError {
        let mut d = Deframer::new(1000);
        d.push(bytes);
        d.next_frame().unwrap().unwrap_err()
    }

    #[test]
    fn errors() {
        let mut v = Vec::new();
        push_header(&mut v, AGREED_MESS, b"x", 0, DAEMON_HINT, 0);
        v[44..48].copy_from_slice(&(-1i32).to_le_bytes());
        assert_eq!(frame_error(&v), FrameError::NegativeLength(-1));
        let mut v = frame(&[0u8; 969]);
        assert_eq!(frame_error(&v[..48]), FrameError::TooLong(1001, 1000));
        v.truncate(48);
        v[36..40].copy_from_slice(&(-3i32).to_le_bytes());
        assert_eq!(frame_error(&v), FrameError::NegativeGroups(-3));
    }

    #[test]
    fn reject_frames_carry_old_type_only_from_daemons() {
        let mut v = Vec::new();
        push_header(&mut v, REJECT_MESS, b"#a#d", 0, DAEMON_HINT, 2);
        v.extend_from_slice(&[0x10, 0, 0, 0x80, b'h', b'i']);
        let mut d = Deframer::new(1000);
        d.push(&v);
        assert_eq!(d.next_frame().unwrap().unwrap().1.len(), 6);
        let mut d = Deframer::for_requests(1000);
        d.push(&v);
        assert_eq!(d.next_frame().unwrap().unwrap().1.len(), 2);
    }
}
