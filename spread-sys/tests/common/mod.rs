//! Shared helpers for the tests that read the recorded transcripts (`shared/spread/vectors`).
#![allow(dead_code)]

use std::collections::BTreeMap;
use std::path::PathBuf;

use serde_json::Value;

/// Where the transcripts live: `$SPREAD_VECTORS_DIR`, else `<workspace>/../shared/spread/vectors`.
pub fn vectors_dir() -> PathBuf {
    if let Some(d) = std::env::var_os("SPREAD_VECTORS_DIR") {
        return PathBuf::from(d);
    }
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../shared/spread/vectors")
}

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
             they belong in shared/spread/vectors next to the workspace (or set SPREAD_VECTORS_DIR)",
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
