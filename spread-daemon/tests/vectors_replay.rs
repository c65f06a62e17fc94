//! Daemon-side replay of every transcript recorded from a real Spread 5.0.1 daemon
//! (`spread-sys/tests/vectors`): each recorded client's bytes are fed to our core in the recorded order
//! (with the recorded timing, so the 1 s handshake timeout fires where it did), and everything our
//! daemon writes to each client must equal what the real daemon wrote, after normalisation (ring
//! time = the recorded one, daemon-invented names = the recorded ones). Where the real daemon closed
//! a connection before the client did, ours must have closed it by then too.

#[macro_use]
mod common;

use common::unhex;

use std::collections::{BTreeMap, HashMap};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use serde_json::Value;
use spread_daemon::Config;
use spread_daemon::core::{Action, Core, CoreSettings, Peer, SessionId};

fn vectors_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../spread-sys/tests/vectors")
}

#[derive(Default)]
struct ClientLog {
    id: Option<SessionId>,
    ours: Vec<u8>,
    /// Our daemon closed this connection.
    closed_by_us: bool,
    /// The client side has sent EOF/reset.
    client_gone: bool,
}

struct Replay {
    core: Core,
    clients: BTreeMap<u64, ClientLog>,
    by_id: HashMap<SessionId, u64>,
    dirty: Vec<SessionId>,
}

impl Replay {
    fn drain(&mut self) {
        self.core.take_dirty(&mut self.dirty);
        for id in std::mem::take(&mut self.dirty) {
            let out = self.core.pending_output(id).to_vec();
            if let Some(c) = self.by_id.get(&id) {
                self.clients
                    .get_mut(c)
                    .unwrap()
                    .ours
                    .extend_from_slice(&out);
            }
            self.core.wrote(id, out.len(), false);
        }
        while let Some(a) = self.core.poll_action() {
            if let Action::Close { id, last_words } = a
                && let Some(c) = self.by_id.remove(&id)
            {
                let log = self.clients.get_mut(&c).unwrap();
                log.ours.extend_from_slice(&last_words);
                log.closed_by_us = true;
                log.id = None;
            }
        }
    }
}

/// Names the real daemon invented for empty private names, in the order the clients connected.
fn invented_names(v: &Value) -> Vec<Vec<u8>> {
    let mut out = Vec::new();
    if let Some(list) = v["normalise"]["random_private_groups"].as_array() {
        let mut by_client: Vec<(u64, String)> = list
            .iter()
            .map(|e| {
                (
                    e["client"].as_u64().unwrap(),
                    e["value"].as_str().unwrap().to_owned(),
                )
            })
            .collect();
        by_client.sort();
        by_client.dedup();
        for (_, pg) in by_client {
            let private = pg[1..].split('#').next().unwrap().as_bytes().to_vec();
            out.push(private);
        }
    }
    out
}

fn replay(file: &str) {
    let path = vectors_dir().join(file);
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| {
        panic!(
            "cannot read {} (the transcripts are part of the repository: spread-sys/tests/vectors): {e}",
            path.display()
        )
    });
    let v: Value = serde_json::from_str(&text).unwrap();
    let ring_time = v["normalise"]["memb_time_values"][0]["value"]
        .as_u64()
        .unwrap_or(1_795_468_241) as u32;
    let unix = v["transport"].as_str().unwrap().starts_with("unix");
    let mut settings = CoreSettings::from_config(&Config::default());
    // Replay judges short handshakes at the recorded pace: the real daemon judged its first read.
    settings.handshake_grace = Duration::ZERO;
    let mut core = Core::new(settings, ring_time, 42);
    core.set_invented_names(invented_names(&v));
    let mut r = Replay {
        core,
        clients: BTreeMap::new(),
        by_id: HashMap::new(),
        dirty: Vec::new(),
    };
    let base = Instant::now();
    let steps = v["steps"].as_array().unwrap();

    if file.starts_with("reject_quota") {
        // The recording's daemon already held 997 sessions; so does ours.
        let mut hello = vec![5, 0, 1, 0, 4];
        for i in 0..997u32 {
            let name = format!("f{i:03}");
            hello.truncate(5);
            hello.extend_from_slice(name.as_bytes());
            let id = r.core.accept(Peer::Unix, 1000 + i, base);
            r.core.received(id, &hello, base);
            let mut choice = vec![0u8; 90];
            choice[..4].copy_from_slice(b"NULL");
            r.core.received(id, &choice, base);
            assert!(r.core.is_ready(id), "filler session {i}");
        }
        r.drain();
    }

    // Recorded order of "daemon closed before the client did".
    let mut expect_daemon_close: BTreeMap<u64, bool> = BTreeMap::new();
    for step in steps {
        let client = step["client"].as_u64().unwrap();
        let now = base + Duration::from_secs_f64(step["t"].as_f64().unwrap());
        r.core.tick(now);
        r.drain();
        let event = step.get("event").and_then(Value::as_str);
        let dir = step["dir"].as_str().unwrap();
        match (dir, event) {
            ("-", Some("open")) => {
                let peer = if unix {
                    Peer::Unix
                } else {
                    Peer::Tcp(SocketAddr::from(([127, 0, 0, 1], 40000 + client as u16)))
                };
                let id = r.core.accept(peer, 8 + client as u32, now);
                r.by_id.insert(id, client);
                r.clients.insert(
                    client,
                    ClientLog {
                        id: Some(id),
                        ..Default::default()
                    },
                );
            }
            ("c2d", None) => {
                let log = r.clients.get_mut(&client).unwrap();
                let bytes = unhex(step["hex"].as_str().unwrap());
                if let Some(id) = log.id {
                    r.core.received(id, &bytes, now);
                }
            }
            ("c2d", Some("eof" | "reset")) => {
                let log = r.clients.get_mut(&client).unwrap();
                log.client_gone = true;
                if let Some(id) = log.id {
                    r.core.closed(id);
                }
            }
            ("d2c", Some("eof" | "reset")) => {
                let log = &r.clients[&client];
                if !log.client_gone {
                    expect_daemon_close.insert(client, true);
                    assert!(
                        log.closed_by_us,
                        "{file}: client {client}: the real daemon closed the connection at t={}, ours had not",
                        step["t"]
                    );
                }
            }
            _ => {}
        }
        r.drain();
    }
    let end = base
        + Duration::from_secs_f64(steps.last().unwrap()["t"].as_f64().unwrap())
        + Duration::from_secs(5);
    r.core.tick(end);
    r.drain();

    for (client, log) in &r.clients {
        let recorded: Vec<u8> = steps
            .iter()
            .filter(|s| s["dir"] == "d2c" && s["client"].as_u64() == Some(*client))
            .flat_map(|s| unhex(s["hex"].as_str().unwrap()))
            .collect();
        assert_eq!(
            hexs(&log.ours),
            hexs(&recorded),
            "{file}: client {client}: our daemon's bytes differ from the recorded Spread 5.0.1 daemon"
        );
    }
    assert!(!r.clients.is_empty(), "{file}: no clients replayed");
}

fn hexs(b: &[u8]) -> String {
    b.chunks(16)
        .map(|c| c.iter().map(|x| format!("{x:02x}")).collect::<String>())
        .collect::<Vec<_>>()
        .join("\n")
}

macro_rules! vector_tests {
    ($($name:ident),* $(,)?) => {
        $(
            #[test]
            fn $name() {
                replay(concat!(stringify!($name), ".json"));
            }
        )*

        #[test]
        fn every_recorded_vector_has_a_test() {
            let ours: Vec<&str> = vec![$(stringify!($name)),*];
            let mut files: Vec<String> = std::fs::read_dir(vectors_dir())
                .unwrap()
                .filter_map(|e| e.ok()?.file_name().into_string().ok())
                .filter_map(|f| f.strip_suffix(".json").map(str::to_owned))
                .collect();
            files.sort();
            assert_eq!(files.len(), 21);
            for f in files {
                assert!(ours.contains(&f.as_str()), "vector {f} is not replayed");
            }
        }
    };
}

with_every_vector!(vector_tests);
