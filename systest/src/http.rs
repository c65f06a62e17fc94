//! A tiny HTTP/1.1 client on raw sockets (one request per connection, bounded time).

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::{Duration, Instant};

#[derive(Debug)]
pub struct Response {
    pub status: u16,
    pub body: String,
    pub elapsed: Duration,
}

/// GET `path` from `addr` with `Host: localhost`; a failure to connect or read is status 0.
pub fn get(addr: SocketAddr, path: &str) -> Response {
    get_raw(addr, path, b"localhost")
}

/// GET `path` on a fresh connection with a raw `Host` header value (bytes as given).
pub fn get_raw(addr: SocketAddr, path: &str, host: &[u8]) -> Response {
    let start = Instant::now();
    let result = (|| -> std::io::Result<String> {
        let mut s = TcpStream::connect_timeout(&addr, Duration::from_secs(10))?;
        s.set_read_timeout(Some(Duration::from_secs(30)))?;
        s.set_write_timeout(Some(Duration::from_secs(10)))?;
        let mut req = format!("GET {path} HTTP/1.1\r\nHost: ").into_bytes();
        req.extend_from_slice(host);
        req.extend_from_slice(b"\r\nConnection: close\r\n\r\n");
        s.write_all(&req)?;
        let mut buf = Vec::new();
        s.read_to_end(&mut buf)?;
        Ok(String::from_utf8_lossy(&buf).into_owned())
    })();
    let text = result.unwrap_or_default();
    let status = text
        .split(' ')
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or(0);
    let body = text
        .split_once("\r\n\r\n")
        .map(|(_, b)| b.to_owned())
        .unwrap_or_default();
    Response {
        status,
        body,
        elapsed: start.elapsed(),
    }
}

/// Outcome of a series of requests.
#[derive(Debug, Default, Clone)]
pub struct LoadStats {
    pub sent: u64,
    pub ok: u64,
    pub failed: Vec<(u64, u16)>,
    pub slowest: Duration,
}

impl LoadStats {
    /// Every one of `n` requests was served, none slower than `bound`; `context` (logs) explains
    /// a failure, `who` names the client.
    pub fn assert_served(&self, n: u64, bound: Duration, who: &str, context: &str) {
        assert_eq!(
            self.ok,
            n,
            "{who}: {} of {n} requests served, failures {:?}\n{context}",
            self.ok,
            &self.failed[..self.failed.len().min(10)],
        );
        assert!(
            self.slowest < bound,
            "{who}: slowest request took {:?} (bound {bound:?})\n{context}",
            self.slowest,
        );
    }
}

/// GET `/i/<who>/<n><suffix>` for n in `range`, sequentially, pausing `pause` between requests.
pub fn load(
    addr: SocketAddr,
    who: &str,
    range: std::ops::Range<u64>,
    pause: Duration,
    suffix: &str,
) -> LoadStats {
    let mut st = LoadStats::default();
    for n in range {
        let r = get(addr, &format!("{}{suffix}", crate::tally::id(who, n)));
        st.sent += 1;
        st.slowest = st.slowest.max(r.elapsed);
        if r.status == 200 {
            st.ok += 1;
        } else {
            st.failed.push((n, r.status));
        }
        if !pause.is_zero() {
            std::thread::sleep(pause);
        }
    }
    st
}
