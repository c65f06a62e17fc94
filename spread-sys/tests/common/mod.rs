//! Shared helpers for the tests that read the recorded transcripts (`spread-sys/tests/vectors`).
#![allow(dead_code)]

use std::collections::BTreeMap;
use std::path::PathBuf;

use serde_json::Value;
use spread_sys::Message;

/// Where the transcripts live: inside the repo, beside these tests. A missing file fails the test.
pub fn vectors_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/vectors")
}

/// Every recorded scenario (one transcript each).
pub const SCENARIOS: &[&str] = &[
    "auth_rejects",
    "big_endian_raw_client",
    "client_versions",
    "connect_duplicate_name",
    "connect_empty_name",
    "connect_illegal_name",
    "connect_named_membership",
    "connect_no_membership_priority",
    "daemon_accepts_odd_requests",
    "daemon_kills_bad_requests",
    "join_group",
    "large_message_100k",
    "leave_group",
    "member_disconnect",
    "multicast_service_types",
    "multigroup_multicast",
    "private_group_message",
    "reject_quota",
    "second_member_join",
    "spuser_session",
    "unix_socket_connect",
];

pub struct Vector {
    pub name: String,
    pub json: Value,
    pub c2d: BTreeMap<u64, Vec<u8>>,
    pub d2c: BTreeMap<u64, Vec<u8>>,
    /// The first c2d chunk of each client: what the daemon's first read of the connect message got.
    pub c2d_first: BTreeMap<u64, Vec<u8>>,
}

pub fn hex(s: &str) -> Vec<u8> {
    assert!(s.len().is_multiple_of(2), "odd hex length");
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&s[i..i + 2], 16).expect("hex"))
        .collect()
}

pub fn load_all() -> Vec<Vector> {
    let dir = vectors_dir();
    let entries = std::fs::read_dir(&dir).unwrap_or_else(|e| {
        panic!(
            "the recorded Spread transcripts are missing: cannot read {} ({e}); \
             they are part of the repository (spread-sys/tests/vectors)",
            dir.display()
        )
    });
    let mut files: Vec<PathBuf> = entries
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|x| x == "json"))
        .collect();
    files.sort();
    files.iter().map(|p| load(p)).collect()
}

pub fn load_one(name: &str) -> Vector {
    load(&vectors_dir().join(format!("{name}.json")))
}

fn load(path: &std::path::Path) -> Vector {
    let text = std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let json: Value =
        serde_json::from_str(&text).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let mut c2d: BTreeMap<u64, Vec<u8>> = BTreeMap::new();
    let mut d2c: BTreeMap<u64, Vec<u8>> = BTreeMap::new();
    let mut c2d_first: BTreeMap<u64, Vec<u8>> = BTreeMap::new();
    for step in json["steps"].as_array().expect("steps") {
        let client = step["client"].as_u64().expect("client");
        let bytes = hex(step["hex"].as_str().unwrap_or(""));
        match step["dir"].as_str() {
            Some("c2d") => {
                c2d_first.entry(client).or_insert_with(|| bytes.clone());
                c2d.entry(client).or_default().extend(bytes)
            }
            Some("d2c") => d2c.entry(client).or_default().extend(bytes),
            _ => {}
        }
    }
    Vector {
        name: json["scenario"].as_str().expect("scenario").to_owned(),
        json,
        c2d,
        d2c,
        c2d_first,
    }
}

impl Vector {
    pub fn api(&self) -> &Vec<Value> {
        self.json["api"].as_array().expect("api")
    }
    pub fn api_of(&self, client: u64) -> Vec<&Value> {
        self.api()
            .iter()
            .filter(|a| a["client"].as_u64() == Some(client))
            .collect()
    }
    pub fn is_raw(&self, client: u64) -> bool {
        self.api_of(client).iter().any(|a| a["op"] == "raw")
    }
    pub fn clients(&self) -> Vec<u64> {
        let mut c: Vec<u64> = self.c2d.keys().chain(self.d2c.keys()).copied().collect();
        c.sort();
        c.dedup();
        c
    }
    pub fn c2d(&self, client: u64) -> &[u8] {
        self.c2d.get(&client).map_or(&[], |v| v)
    }
    pub fn d2c(&self, client: u64) -> &[u8] {
        self.d2c.get(&client).map_or(&[], |v| v)
    }
}

/// Zero every byte after the first NUL of each 32-byte name field of a framed message (the
/// sender field and the group fields); those tails are not significant (PROTOCOL §5.5).
pub fn normalise_names(frame: &[u8], num_groups: usize, has_old_type: bool) -> Vec<u8> {
    let mut v = frame.to_vec();
    let mut fields = vec![4usize];
    let first = 48 + if has_old_type { 4 } else { 0 };
    fields.extend((0..num_groups).map(|i| first + 32 * i));
    for at in fields {
        if let Some(field) = v.get_mut(at..at + 32)
            && let Some(nul) = field.iter().position(|&b| b == 0)
        {
            field[nul..].fill(0);
        }
    }
    v
}

pub fn hex_u32(v: &Value) -> u32 {
    u32::from_str_radix(v.as_str().unwrap().trim_start_matches("0x"), 16).unwrap()
}

fn strings(v: &Value) -> Vec<String> {
    v.as_array()
        .unwrap()
        .iter()
        .map(|s| s.as_str().unwrap().to_owned())
        .collect()
}

fn check_body(ctx: &str, a: &Value, body: &[u8]) {
    if let Some(h) = a["body_hex"].as_str() {
        assert_eq!(body, &hex(h)[..], "{ctx}: body");
    } else {
        assert_eq!(body.len() as u64, a["body_len"].as_u64().unwrap(), "{ctx}");
        let sum: u64 = body.iter().map(|&b| b as u64).sum();
        assert_eq!(sum, a["body_bytesum"].as_u64().unwrap(), "{ctx}");
        let head = hex(a["body_head_hex"].as_str().unwrap());
        assert_eq!(&body[..head.len()], &head[..], "{ctx}");
    }
}

pub fn check_recv(ctx: &str, a: &Value, msg: &Message) {
    let st = hex_u32(&a["service_type"]);
    match msg {
        Message::Data(d) => {
            assert_eq!(d.service_type, st, "{ctx}");
            assert_eq!(d.sender, a["sender"].as_str().unwrap(), "{ctx}");
            assert_eq!(d.groups, strings(&a["groups"]), "{ctx}");
            assert_eq!(
                d.groups.len() as u64,
                a["num_groups"].as_u64().unwrap(),
                "{ctx}"
            );
            assert_eq!(
                d.mess_type as i64,
                a["mess_type"].as_i64().unwrap(),
                "{ctx}"
            );
            assert_eq!(
                d.endian_mismatch as i64,
                a["endian_mismatch"].as_i64().unwrap(),
                "{ctx}"
            );
            assert_eq!(d.body.len() as i64, a["ret"].as_i64().unwrap(), "{ctx}");
            check_body(ctx, a, &d.body);
        }
        Message::Membership(m) => {
            assert_eq!(m.service_type, st, "{ctx}");
            assert_eq!(m.group, a["sender"].as_str().unwrap(), "{ctx}");
            assert_eq!(m.members, strings(&a["groups"]), "{ctx}");
            assert_eq!(
                m.mess_type as i64,
                a["mess_type"].as_i64().unwrap(),
                "{ctx}"
            );
            assert_eq!(a["endian_mismatch"], 0, "{ctx}");
            let Some(gid) = m.group_id else {
                assert_eq!(a["ret"], 0, "{ctx}: self-leave has no body");
                return;
            };
            let mi = &a["memb_info"];
            let want_gid: Vec<u32> = mi["gid"]
                .as_array()
                .unwrap()
                .iter()
                .map(|x| x.as_u64().unwrap() as u32)
                .collect();
            assert_eq!(gid.0.to_vec(), want_gid, "{ctx}");
            assert_eq!(
                m.changed_member.as_deref(),
                mi["changed_member"].as_str(),
                "{ctx}"
            );
            assert_eq!(
                m.vs_sets.len() as u64,
                mi["num_vs_sets"].as_u64().unwrap(),
                "{ctx}"
            );
            let want_sets: Vec<Vec<String>> = mi["vs_sets"]
                .as_array()
                .unwrap()
                .iter()
                .map(strings)
                .collect();
            assert_eq!(m.vs_sets, want_sets, "{ctx}");
            assert_eq!(
                m.local_vs_set_index as u64,
                mi["my_vs_set_index"].as_u64().unwrap(),
                "{ctx}"
            );
        }
    }
}
