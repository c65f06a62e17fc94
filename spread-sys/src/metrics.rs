//! Prometheus metrics: the text exposition format (version 0.0.4) and a minimal `/metrics`
//! endpoint, shared by every part that serves metrics.
//!
//! The endpoint runs on a thread of its own and never touches the server's state: for each
//! scrape it asks the owner's loop for a rendered page through a channel and a wake-up socket,
//! and waits a bounded time for it. So a slow or hostile client can delay only other scrapes,
//! never the loop that moves log lines.

use std::fmt::Write as _;
use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::os::unix::net::UnixStream;
use std::sync::mpsc;
use std::time::Duration;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    Counter,
    Gauge,
}

/// One sample: `name{labels} value`, with the HELP and TYPE of its family.
#[derive(Clone, Debug)]
pub struct Sample {
    pub name: &'static str,
    pub help: &'static str,
    pub kind: Kind,
    /// `(label, value)` pairs; values are escaped when rendered.
    pub labels: Vec<(&'static str, String)>,
    pub value: f64,
}

impl Sample {
    pub fn counter(name: &'static str, help: &'static str, value: u64) -> Sample {
        Sample {
            name,
            help,
            kind: Kind::Counter,
            labels: Vec::new(),
            value: value as f64,
        }
    }

    pub fn gauge(name: &'static str, help: &'static str, value: f64) -> Sample {
        Sample {
            name,
            help,
            kind: Kind::Gauge,
            labels: Vec::new(),
            value,
        }
    }

    pub fn with_label(mut self, label: &'static str, value: &str) -> Sample {
        self.labels.push((label, value.to_owned()));
        self
    }
}

/// Render samples in the text exposition format. Samples of one family must be adjacent; its
/// HELP and TYPE lines are written once, before the first.
pub fn render(samples: &[Sample]) -> String {
    let mut out = String::new();
    let mut family = "";
    for s in samples {
        if s.name != family {
            family = s.name;
            let kind = match s.kind {
                Kind::Counter => "counter",
                Kind::Gauge => "gauge",
            };
            let _ = writeln!(out, "# HELP {} {}", s.name, escape_help(s.help));
            let _ = writeln!(out, "# TYPE {} {kind}", s.name);
        }
        out.push_str(s.name);
        if !s.labels.is_empty() {
            out.push('{');
            for (i, (k, v)) in s.labels.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                let _ = write!(out, "{k}=\"{}\"", escape_label(v));
            }
            out.push('}');
        }
        let _ = writeln!(out, " {}", s.value);
    }
    out
}

fn escape_help(s: &str) -> String {
    s.replace('\\', "\\\\").replace('\n', "\\n")
}

fn escape_label(s: &str) -> String {
    s.replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

/// How long a scrape waits for the owner's loop, and for the client's request.
const SCRAPE_TIMEOUT: Duration = Duration::from_secs(2);
/// A request head larger than this is refused (a scrape's is a few hundred bytes).
const MAX_REQUEST: usize = 8192;

/// Serve `/metrics` on `addr` (`ADDR:PORT`) from a thread named `metrics`, for the life of the
/// process. `page` renders one scrape; `None` (the owner did not answer in time) is a `503`.
/// Returns the bound address (useful with port 0).
pub fn serve(
    addr: &str,
    page: impl Fn() -> Option<String> + Send + 'static,
) -> std::io::Result<std::net::SocketAddr> {
    let listener = TcpListener::bind(addr)?;
    let bound = listener.local_addr()?;
    std::thread::Builder::new()
        .name("metrics".into())
        .spawn(move || {
            for conn in listener.incoming().flatten() {
                one_scrape(conn, &page);
            }
        })?;
    Ok(bound)
}

/// The owner's side of a `/metrics` endpoint for a loop that polls: poll `wake_fd()` for
/// readability, then call `answer` with a function that renders the page.
pub struct Endpoint {
    wake: UnixStream,
    requests: mpsc::Receiver<mpsc::SyncSender<String>>,
}

impl Endpoint {
    /// Listen on `addr` (`ADDR:PORT`); each scrape wakes the owner and waits for its answer.
    pub fn listen(addr: &str) -> std::io::Result<Endpoint> {
        let (wake, waker) = UnixStream::pair()?;
        wake.set_nonblocking(true)?;
        waker.set_nonblocking(true)?;
        let (tx, requests) = mpsc::channel::<mpsc::SyncSender<String>>();
        serve(addr, move || {
            let (reply, answer) = mpsc::sync_channel(1);
            tx.send(reply).ok()?;
            // A full wake socket already holds a wake-up: nothing is lost by not writing another.
            let _ = (&waker).write(b"m");
            answer.recv_timeout(SCRAPE_TIMEOUT).ok()
        })?;
        Ok(Endpoint { wake, requests })
    }

    /// The descriptor that becomes readable when a scrape is waiting.
    pub fn wake_fd(&self) -> std::os::fd::RawFd {
        use std::os::fd::AsRawFd;
        self.wake.as_raw_fd()
    }

    /// Answer every waiting scrape with `page()` (rendered once, only if one is waiting).
    pub fn answer(&mut self, page: impl FnOnce() -> String) {
        let mut buf = [0u8; 64];
        while matches!((&self.wake).read(&mut buf), Ok(n) if n > 0) {}
        let waiting: Vec<_> = self.requests.try_iter().collect();
        if waiting.is_empty() {
            return;
        }
        let text = page();
        for w in waiting {
            let _ = w.try_send(text.clone());
        }
    }
}

/// Serve one connection.
fn one_scrape(mut conn: TcpStream, page: &impl Fn() -> Option<String>) {
    let _ = conn.set_read_timeout(Some(SCRAPE_TIMEOUT));
    let _ = conn.set_write_timeout(Some(SCRAPE_TIMEOUT));
    let Some(target) = read_request_target(&mut conn) else {
        let _ = respond(&mut conn, "400 Bad Request", "bad request\n");
        return;
    };
    if target != "/metrics" && !target.starts_with("/metrics?") {
        let _ = respond(&mut conn, "404 Not Found", "only /metrics is served here\n");
        return;
    }
    let _ = match page() {
        Some(text) => respond(&mut conn, "200 OK", &text),
        None => respond(&mut conn, "503 Service Unavailable", "busy, try again\n"),
    };
}

/// The target of a `GET` request, once its head is read; None for anything else.
fn read_request_target(conn: &mut TcpStream) -> Option<String> {
    let mut head = Vec::new();
    let mut buf = [0u8; 1024];
    while !head.windows(4).any(|w| w == b"\r\n\r\n") && !head.windows(2).any(|w| w == b"\n\n") {
        let n = conn.read(&mut buf).ok().filter(|&n| n > 0)?;
        head.extend_from_slice(&buf[..n]);
        if head.len() > MAX_REQUEST {
            return None;
        }
    }
    let line = head.split(|&b| b == b'\n').next()?;
    let line = std::str::from_utf8(line).ok()?.trim_end();
    let mut parts = line.split(' ');
    match (parts.next(), parts.next(), parts.next()) {
        (Some("GET"), Some(target), Some(v)) if v.starts_with("HTTP/1.") => Some(target.to_owned()),
        _ => None,
    }
}

fn respond(conn: &mut TcpStream, status: &str, body: &str) -> std::io::Result<()> {
    let head = format!(
        "HTTP/1.1 {status}\r\nContent-Type: text/plain; version=0.0.4; charset=utf-8\r\n\
         Content-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    );
    conn.write_all(head.as_bytes())?;
    conn.write_all(body.as_bytes())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_help_type_and_escaped_labels_once_per_family() {
        let text = render(&[
            Sample::counter("x_lines_total", "Lines.\nAll of them.", 3),
            Sample::gauge("x_up", "Connected.", 1.0).with_label("daemon", "4803@h"),
            Sample::gauge("x_up", "Connected.", 0.0).with_label("daemon", "a\"b\\c"),
        ]);
        assert_eq!(
            text,
            "# HELP x_lines_total Lines.\\nAll of them.\n# TYPE x_lines_total counter\nx_lines_total 3\n\
             # HELP x_up Connected.\n# TYPE x_up gauge\nx_up{daemon=\"4803@h\"} 1\nx_up{daemon=\"a\\\"b\\\\c\"} 0\n"
        );
    }

    #[test]
    fn endpoint_answers_scrapes_from_the_owners_loop_and_refuses_other_paths() {
        let probe = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = probe.local_addr().unwrap().to_string();
        drop(probe);
        let mut ep = Endpoint::listen(&addr).unwrap();
        let get = |path: &str| {
            let addr = addr.clone();
            let path = path.to_owned();
            std::thread::spawn(move || {
                let mut c = TcpStream::connect(&addr).unwrap();
                write!(c, "GET {path} HTTP/1.1\r\nHost: x\r\n\r\n").unwrap();
                let mut s = String::new();
                c.read_to_string(&mut s).unwrap();
                s
            })
        };
        let scrape = get("/metrics");
        // The owner's loop: wait for the wake-up, then answer.
        let mut fds = [libc::pollfd {
            fd: ep.wake_fd(),
            events: libc::POLLIN,
            revents: 0,
        }];
        // SAFETY: one valid pollfd for the duration of the call.
        let ready = unsafe { libc::poll(fds.as_mut_ptr(), 1, 5000) };
        assert_eq!(ready, 1, "the scrape woke the owner");
        ep.answer(|| render(&[Sample::counter("t_total", "T.", 7)]));
        let reply = scrape.join().unwrap();
        assert!(reply.starts_with("HTTP/1.1 200 OK\r\n"), "{reply}");
        assert!(
            reply.contains("\r\nContent-Type: text/plain; version=0.0.4"),
            "{reply}"
        );
        assert!(reply.ends_with("t_total 7\n"), "{reply}");
        let other = get("/").join().unwrap();
        assert!(other.starts_with("HTTP/1.1 404"), "{other}");
    }
}
