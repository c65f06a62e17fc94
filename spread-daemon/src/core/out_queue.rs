//! A session's output: one contiguous byte buffer (so a flush is one write(2)) plus the message
//! boundaries, because Spread's slow-client limit counts messages, not bytes.

use std::collections::VecDeque;

/// Keep at most this much capacity once a queue drains (a burst must not pin memory forever).
const KEEP_CAPACITY: usize = 256 * 1024;

#[derive(Debug, Default)]
pub struct OutQueue {
    buf: Vec<u8>,
    /// Bytes of `buf` before this were written.
    head: usize,
    /// Stream offsets (in `appended` units) where queued messages end.
    ends: VecDeque<u64>,
    appended: u64,
    written: u64,
}

impl OutQueue {
    /// Queue one message made of `parts` (e.g. a re-encoded header and the forwarded rest).
    pub fn push_message(&mut self, parts: &[&[u8]]) {
        for p in parts {
            self.buf.extend_from_slice(p);
            self.appended += p.len() as u64;
        }
        self.ends.push_back(self.appended);
    }

    /// Bytes still to write.
    pub fn pending(&self) -> &[u8] {
        &self.buf[self.head..]
    }

    /// `n` bytes of `pending()` were written.
    pub fn consume(&mut self, n: usize) {
        debug_assert!(n <= self.buf.len() - self.head);
        self.head += n;
        self.written += n as u64;
        while self.ends.front().is_some_and(|&e| e <= self.written) {
            self.ends.pop_front();
        }
        if self.head == self.buf.len() {
            self.buf.clear();
            self.head = 0;
            if self.buf.capacity() > KEEP_CAPACITY {
                self.buf.shrink_to(KEEP_CAPACITY);
            }
        } else if self.head >= KEEP_CAPACITY && self.head * 2 >= self.buf.len() {
            self.buf.drain(..self.head);
            self.head = 0;
        }
    }

    /// Messages not completely written yet (a partly written one counts).
    pub fn messages(&self) -> usize {
        self.ends.len()
    }

    /// Unwritten bytes.
    pub fn pending_len(&self) -> usize {
        self.buf.len() - self.head
    }

    pub fn is_empty(&self) -> bool {
        self.head == self.buf.len()
    }

    /// Drop everything (the session is being killed).
    pub fn clear(&mut self) {
        self.buf = Vec::new();
        self.head = 0;
        self.ends.clear();
        self.written = self.appended;
    }

    /// Take the unwritten bytes (last words before a close).
    pub fn take_pending(&mut self) -> Vec<u8> {
        let v = self.pending().to_vec();
        self.clear();
        v
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_messages_across_partial_writes() {
        let mut q = OutQueue::default();
        q.push_message(&[b"abc", b"de"]);
        q.push_message(&[b"xyz"]);
        assert_eq!(q.messages(), 2);
        assert_eq!(q.pending(), b"abcdexyz");
        q.consume(4);
        assert_eq!(q.messages(), 2, "first message only partly written");
        q.consume(1);
        assert_eq!(q.messages(), 1);
        assert_eq!(q.pending(), b"xyz");
        q.consume(3);
        assert!(q.is_empty());
        assert_eq!(q.messages(), 0);
        q.push_message(&[b"again"]);
        assert_eq!(q.pending(), b"again");
    }

    #[test]
    fn big_queue_compacts_and_shrinks() {
        let mut q = OutQueue::default();
        let chunk = vec![7u8; 100_000];
        for _ in 0..10 {
            q.push_message(&[&chunk]);
        }
        q.consume(600_000);
        assert_eq!(q.messages(), 4);
        assert_eq!(q.pending().len(), 400_000);
        q.consume(400_000);
        assert!(q.buf.capacity() <= KEEP_CAPACITY);
    }
}
