//! Running Feast 0.67 (from the test virtualenv) on a feature repo in a temp directory.

use std::path::{Path, PathBuf};
use std::process::Command;

use crate::peers::{repo_root, run, venv_bin};

/// A copy of a feature repo in a temp directory, with Feast pointed at a test Redis.
pub struct FeastRepo {
    pub dir: tempfile::TempDir,
    pub redis_addr: String,
}

impl FeastRepo {
    /// Copies `tests/fixtures/<fixture>` (feature_store.yaml + features.py) into a temp dir.
    pub fn from_fixture(fixture: &str, redis_addr: &str) -> FeastRepo {
        let dir = tempfile::tempdir().expect("temp dir");
        copy_dir(&repo_root().join("tests/fixtures").join(fixture), dir.path());
        std::fs::create_dir_all(dir.path().join("data")).unwrap();
        FeastRepo { dir, redis_addr: redis_addr.to_string() }
    }

    pub fn path(&self) -> &Path {
        self.dir.path()
    }

    /// A `feast` command in the repo, with `REDIS_ADDR` set.
    pub fn feast(&self, args: &[&str]) -> Command {
        let mut c = Command::new(venv_bin("feast"));
        c.current_dir(self.path()).env("REDIS_ADDR", &self.redis_addr).args(args);
        c
    }

    /// Runs a Python snippet with the venv's python in the repo directory; returns stdout.
    pub fn python(&self, code: &str) -> String {
        run(Command::new(venv_bin("python"))
            .current_dir(self.path())
            .env("REDIS_ADDR", &self.redis_addr)
            .args(["-c", code]))
    }

    pub fn registry_path(&self) -> PathBuf {
        self.path().join("data/registry.db")
    }
}

pub fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap_or_else(|e| panic!("{}: {e}", from.display())) {
        let entry = entry.unwrap();
        let target = to.join(entry.file_name());
        if entry.file_type().unwrap().is_dir() {
            copy_dir(&entry.path(), &target);
        } else {
            std::fs::copy(entry.path(), &target).unwrap();
        }
    }
}
