//! A fresh directory per test, removed on drop (kept with `KEEP_TEST_DIRS=1` for post-mortems).

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

pub struct TempDir(PathBuf);

impl TempDir {
    pub fn new(tag: &str) -> TempDir {
        let base = std::env::temp_dir();
        for i in 0..10_000u32 {
            let p = base.join(format!("systest-{tag}-{}-{i}", std::process::id()));
            if std::fs::create_dir(&p).is_ok() {
                // World-writable: Apache's children run as www-data and spool here.
                std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o777))
                    .expect("chmod temp dir");
                return TempDir(p);
            }
        }
        panic!("cannot create a temp dir under {}", base.display());
    }

    pub fn path(&self) -> &Path {
        &self.0
    }

    pub fn join(&self, p: &str) -> PathBuf {
        self.0.join(p)
    }

    /// A world-writable subdirectory.
    pub fn subdir(&self, p: &str) -> PathBuf {
        let d = self.0.join(p);
        std::fs::create_dir_all(&d).expect("create subdir");
        std::fs::set_permissions(&d, std::fs::Permissions::from_mode(0o777)).expect("chmod");
        d
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        if std::env::var_os("KEEP_TEST_DIRS").is_some() {
            eprintln!("kept {}", self.0.display());
        } else {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }
}
