//! Where the binaries under test are: `SPREAD_BIN_DIR`, else `<workspace>/target/debug`.

use std::path::{Path, PathBuf};

pub fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("systest lives inside the workspace")
        .to_owned()
}

fn target_debug() -> PathBuf {
    match std::env::var_os("CARGO_TARGET_DIR") {
        Some(d) => PathBuf::from(d).join("debug"),
        None => workspace_root().join("target/debug"),
    }
}

/// A binary of another workspace package; panics with how to build it when missing.
pub fn bin(name: &str) -> PathBuf {
    let dir = std::env::var_os("SPREAD_BIN_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(target_debug);
    let p = dir.join(name);
    assert!(
        p.exists(),
        "{} is missing: build it with `cargo build --workspace --bins` (or set SPREAD_BIN_DIR)",
        p.display()
    );
    p
}

/// The Apache module under test: `MOD_LOG_SPREAD_SO` if set, else the newest build of it.
/// (`cargo test` rebuilds the cdylib in `deps/` but only `cargo build` refreshes the copy in
/// `target/debug/`, so the newer one is the one just built.)
pub fn module_so() -> PathBuf {
    if let Some(so) = std::env::var_os("MOD_LOG_SPREAD_SO") {
        return PathBuf::from(so);
    }
    let candidates = [
        std::env::var_os("SPREAD_BIN_DIR").map(|d| PathBuf::from(d).join("libmod_log_spread.so")),
        Some(target_debug().join("libmod_log_spread.so")),
        Some(target_debug().join("deps/libmod_log_spread.so")),
    ];
    candidates
        .into_iter()
        .flatten()
        .filter_map(|p| Some((std::fs::metadata(&p).and_then(|m| m.modified()).ok()?, p)))
        .max()
        .map(|(_, p)| p)
        .unwrap_or_else(|| {
            panic!(
                "libmod_log_spread.so is missing: build it with `cargo build -p mod_log_spread` \
                 (looked in SPREAD_BIN_DIR and {})",
                target_debug().display()
            )
        })
}
