//! The real `Mailbox` against a scripted fake daemon on real sockets (unix and TCP 127.0.0.1:0)
//! that plays the bytes a real Spread 5.0.1 daemon sent in the recorded scenarios. Given the same
//! calls as the `api` log, the Mailbox must write the recorded client bytes and report the recorded
//! results. Raw (hand-made) clients of a scenario are not replayed; what the daemon sent to the
//! libspread clients because of them is.

mod common;

use std::io::{Read, Write};
use std::net::TcpListener;
use std::os::unix::net::UnixListener;
use std::path::PathBuf;
use std::time::Duration;

use common::{Vector, check_recv, hex_u32, normalise_names};
use serde_json::Value;
use spread_sys::names::check_private;
use spread_sys::spread_name::Endpoint;
use spread_sys::wire::constants::{AUTH_CHOICE_LEN, HEADER_LEN};
use spread_sys::wire::handshake::{ConnectParse, ConnectRequest, parse_connect};
use spread_sys::wire::header::Header;
use spread_sys::wire::message::MessageRef;
use spread_sys::{ConnectOptions, Mailbox};

const IO_TIMEOUT: Duration = Duration::from_secs(5);

trait Conn: Read + Write + Send {}
impl<T: Read + Write + Send> Conn for T {}

enum Listener {
    /// The temp dir is kept alive as long as the socket in it.
    Unix(UnixListener, PathBuf, #[allow(dead_code)] tempfile::TempDir),
    Tcp(TcpListener),
}

impl Listener {
    fn new(tcp: bool) -> Listener {
        if tcp {
            Listener::Tcp(TcpListener::bind("127.0.0.1:0").unwrap())
        } else {
            let dir = tempfile::tempdir().unwrap();
            let path = dir.path().join("4803");
            Listener::Unix(UnixListener::bind(&path).unwrap(), path, dir)
        }
    }
    fn endpoint(&self) -> Endpoint {
        match self {
            Listener::Unix(_, p, _) => Endpoint::Unix(p.clone()),
            Listener::Tcp(l) => Endpoint::Tcp(l.local_addr().unwrap()),
        }
    }
    fn accept(&self) -> Box<dyn Conn> {
        match self {
            Listener::Unix(l, _, _) => {
                let (s, _) = l.accept().unwrap();
                s.set_read_timeout(Some(IO_TIMEOUT)).unwrap();
                Box::new(s)
            }
            Listener::Tcp(l) => {
                let (s, _) = l.accept().unwrap();
                s.set_read_timeout(Some(IO_TIMEOUT)).unwrap();
                Box::new(s)
            }
        }
    }
}

struct Step {
    dir: String,
    client: u64,
    bytes: Vec<u8>,
    done: bool,
}

struct Replay {
    v: Vector,
    steps: Vec<Step>,
    /// Global position: every step before it was played (d2c written, c2d read or skipped).
    pos: usize,
    conns: std::collections::BTreeMap<u64, Box<dyn Conn>>,
    boxes: std::collections::BTreeMap<u64, Mailbox>,
    private_groups: std::collections::BTreeMap<u64, String>,
    listener: Listener,
}

impl Replay {
    fn new(name: &str, tcp: bool) -> Replay {
        let v = common::load_one(name);
        let mut steps = Vec::new();
        for s in v.json["steps"].as_array().unwrap() {
            let client = s["client"].as_u64().unwrap();
            let dir = s["dir"].as_str().unwrap().to_owned();
            let bytes = common::hex(s["hex"].as_str().unwrap_or(""));
            // Events carry no bytes; raw clients are not replayed.
            let done = bytes.is_empty() || v.is_raw(client);
            steps.push(Step {
                dir,
                client,
                bytes,
                done,
            });
        }
        Replay {
            v,
            steps,
            pos: 0,
            conns: Default::default(),
            boxes: Default::default(),
            private_groups: Default::default(),
            listener: Listener::new(tcp),
        }
    }

    /// Write every daemon chunk up to the first client chunk not yet produced by a call.
    fn advance(&mut self) {
        while self.pos < self.steps.len() {
            let s = &mut self.steps[self.pos];
            if !s.done {
                if s.dir != "d2c" {
                    return;
                }
                let conn = self
                    .conns
                    .get_mut(&s.client)
                    .expect("d2c to a client with no connection");
                conn.write_all(&s.bytes).unwrap();
                s.done = true;
            }
            self.pos += 1;
        }
    }

    /// Read from the client's connection the next `n` recorded c2d bytes of `client` (spanning
    /// chunks as needed), returning the recorded bytes and what was actually read.
    fn expect_c2d(&mut self, client: u64, n: usize) -> (Vec<u8>, Vec<u8>) {
        let mut recorded = Vec::new();
        for s in self
            .steps
            .iter_mut()
            .filter(|s| s.client == client && s.dir == "c2d" && !s.done)
        {
            if recorded.len() >= n {
                break;
            }
            let take = s.bytes.len().min(n - recorded.len());
            recorded.extend_from_slice(&s.bytes[..take]);
            // TCP may have delivered two requests in one chunk: keep the rest for the next one.
            s.bytes.drain(..take);
            s.done = s.bytes.is_empty();
        }
        assert_eq!(
            recorded.len(),
            n,
            "{}: recording has fewer client bytes",
            self.v.name
        );
        let mut got = vec![0u8; n];
        self.conns
            .get_mut(&client)
            .unwrap()
            .read_exact(&mut got)
            .expect("mailbox did not write the recorded bytes");
        (recorded, got)
    }

    /// The next whole recorded request of `client`.
    fn next_recorded_request(&self, client: u64) -> Vec<u8> {
        let mut bytes = Vec::new();
        for s in self
            .steps
            .iter()
            .filter(|s| s.client == client && s.dir == "c2d" && !s.done)
        {
            bytes.extend_from_slice(&s.bytes);
            if let Some(h) = Header::decode_prefix(&bytes) {
                let total = HEADER_LEN + 32 * h.num_groups as usize + h.data_len as usize;
                if bytes.len() >= total {
                    bytes.truncate(total);
                    return bytes;
                }
            }
        }
        panic!("{}: client {client} has no further request", self.v.name)
    }

    fn expect_request(&mut self, client: u64) {
        let recorded = self.next_recorded_request(client);
        let h = Header::decode_prefix(&recorded).unwrap();
        let (rec, got) = self.expect_c2d(client, recorded.len());
        let ng = h.num_groups as usize;
        assert_eq!(
            normalise_names(&got, ng, false),
            normalise_names(&rec, ng, false),
            "{}",
            self.v.name
        );
        // We zero-fill: the tails must be zero in what we wrote, not only normalised away.
        assert_eq!(got, normalise_names(&got, ng, false));
    }

    fn connect(&mut self, client: u64, a: &Value) {
        let first_c2d = self
            .steps
            .iter()
            .find(|s| s.client == client && s.dir == "c2d")
            .map(|s| s.bytes.clone());
        // A libspread 5.0.1 connect message: 3 version bytes, flags, name_len, name (taken as is,
        // even when the daemon refused it).
        let c = first_c2d.unwrap_or_default();
        let req = ConnectRequest {
            major: c[0],
            minor: c[1],
            patch: Some(c[2]),
            flags: c[3],
            name: c[5..5 + c[4] as usize].to_vec(),
        };
        let name = String::from_utf8(req.name.clone()).unwrap();
        let opts = ConnectOptions {
            private_name: name.clone(),
            priority: req.priority() > 0,
            group_membership: req.group_membership(),
            connect_timeout: Some(IO_TIMEOUT),
            send_timeout: Some(IO_TIMEOUT),
        };
        let want = a["ret"].as_i64().unwrap() as i32;
        if !name.is_empty() && check_private(name.as_bytes()).is_err() {
            // We refuse an illegal name locally with the code the daemon would give; nothing is sent.
            let e = Mailbox::connect_endpoint(&self.listener.endpoint(), &opts).unwrap_err();
            assert_eq!(e.code(), want, "{}", self.v.name);
            self.skip_client(client);
            return;
        }
        let endpoint = self.listener.endpoint();
        let t = std::thread::spawn(move || Mailbox::connect_endpoint(&endpoint, &opts));
        let conn = self.listener.accept();
        self.conns.insert(client, conn);
        // Play this client's handshake: its chunks in order until the accept or the reject.
        let d2c_total: usize = handshake_d2c_len(self.v.d2c(client));
        let mut written = 0;
        let mut read = 0;
        let c2d_total = handshake_c2d_len(self.v.c2d(client), self.v.d2c(client));
        while written < d2c_total || read < c2d_total {
            let i = self
                .steps
                .iter()
                .position(|s| s.client == client && !s.done)
                .unwrap();
            let s = &mut self.steps[i];
            s.done = true;
            let conn = self.conns.get_mut(&client).unwrap();
            if s.dir == "d2c" {
                conn.write_all(&s.bytes).unwrap();
                written += s.bytes.len();
            } else {
                let mut got = vec![0u8; s.bytes.len()];
                conn.read_exact(&mut got).unwrap();
                assert_eq!(got, s.bytes, "{}: handshake bytes", self.v.name);
                read += s.bytes.len();
            }
        }
        let result = t.join().unwrap();
        match result {
            Ok(mb) => {
                assert_eq!(want, 1, "{}", self.v.name);
                assert_eq!(mb.private_group(), a["private_group"].as_str().unwrap());
                self.private_groups
                    .insert(client, mb.private_group().to_owned());
                self.boxes.insert(client, mb);
            }
            Err(e) => {
                assert_eq!(e.code(), want, "{}: {e}", self.v.name);
                self.skip_client(client);
            }
        }
    }

    fn skip_client(&mut self, client: u64) {
        for s in self.steps.iter_mut().filter(|s| s.client == client) {
            s.done = true;
        }
        self.conns.remove(&client);
    }

    fn run(mut self) -> usize {
        let api: Vec<Value> = self.v.api().clone();
        let mut checked = 0;
        for a in &api {
            let client = a["client"].as_u64().unwrap_or(0);
            let op = a["op"].as_str().unwrap();
            if op == "raw" || op == "spuser_output" {
                continue;
            }
            self.advance();
            let name = self.v.name.clone();
            match op {
                "connect" => self.connect(client, a),
                "join" | "leave" => {
                    let group = a["group"].as_str().unwrap();
                    let mb = self.boxes.get_mut(&client).unwrap();
                    let r = if op == "join" {
                        mb.join(group)
                    } else {
                        mb.leave(group)
                    };
                    r.unwrap_or_else(|e| panic!("{name}: {op} {group}: {e}"));
                    self.expect_request(client);
                }
                "mcast" => {
                    let req = self.next_recorded_request(client);
                    let h = Header::decode_prefix(&req).unwrap();
                    let m = MessageRef::decode_request(h, &req[HEADER_LEN..]).unwrap();
                    let groups: Vec<String> = m
                        .group_names()
                        .map(|g| String::from_utf8(g.to_vec()).unwrap())
                        .collect();
                    let groups: Vec<&str> = groups.iter().map(|s| s.as_str()).collect();
                    assert_eq!(h.service_type, hex_u32(&a["service_type"]));
                    let (mess_type, _) = h.mess_type();
                    let mb = self.boxes.get_mut(&client).unwrap();
                    let ret = mb
                        .multicast(h.service_type, &groups, mess_type, m.body)
                        .unwrap();
                    assert_eq!(ret as i64, a["ret"].as_i64().unwrap());
                    self.expect_request(client);
                }
                "recv" => {
                    let mb = self.boxes.get_mut(&client).unwrap();
                    assert!(
                        mb.poll(Some(IO_TIMEOUT)).unwrap(),
                        "{name}: nothing to receive"
                    );
                    let msg = mb.receive().unwrap();
                    check_recv(&format!("{name} client {client} recv"), a, &msg);
                    checked += 1;
                }
                "none" => {
                    let mb = self.boxes.get_mut(&client).unwrap();
                    assert!(
                        !mb.poll(Some(Duration::from_millis(20))).unwrap(),
                        "{name}: unexpected message"
                    );
                }
                "disconnect" => {
                    let mb = self.boxes.remove(&client).unwrap();
                    mb.disconnect().unwrap();
                    self.expect_request(client);
                }
                "kill" => {
                    drop(self.boxes.remove(&client)); // abrupt close, no KILL request
                }
                other => panic!("unknown op {other}"),
            }
        }
        checked
    }
}

/// Daemon bytes of the handshake: a reject byte, or auth list + accept (or + F7).
fn handshake_d2c_len(d2c: &[u8]) -> usize {
    let Some(&first) = d2c.first() else { return 0 };
    if (first as i8) < 0 {
        return 1;
    }
    let after_list = 1 + first as usize;
    match d2c.get(after_list) {
        Some(&1) => after_list + 5 + d2c[after_list + 4] as usize,
        Some(_) => after_list + 1,
        None => after_list,
    }
}

/// Client bytes of the handshake: the connect message, plus the auth choice if the daemon listed.
fn handshake_c2d_len(c2d: &[u8], d2c: &[u8]) -> usize {
    let ConnectParse::Complete(_, used) = parse_connect(c2d) else {
        return 0;
    };
    match d2c.first() {
        Some(&b) if (b as i8) >= 0 => used + AUTH_CHOICE_LEN,
        _ => used,
    }
}

/// Scenarios without a libspread client (raw clients and spuser only, replayed in vectors.rs).
const RAW_ONLY: &[&str] = &["auth_rejects", "client_versions", "spuser_session"];

/// Scenarios with at least one libspread client.
fn libspread_scenarios() -> impl Iterator<Item = &'static str> {
    common::SCENARIOS
        .iter()
        .copied()
        .filter(|n| !RAW_ONLY.contains(n))
}

/// Replay every libspread scenario over TCP or the unix socket; at least 60 receives checked.
fn replay_libspread_scenarios(tcp: bool) {
    let recvs: usize = libspread_scenarios()
        .map(|name| Replay::new(name, tcp).run())
        .sum();
    assert!(recvs >= 60, "only {recvs} receives checked");
}

#[test]
fn replay_libspread_scenarios_over_unix_socket() {
    replay_libspread_scenarios(false);
}

#[test]
fn replay_libspread_scenarios_over_tcp() {
    replay_libspread_scenarios(true);
}
