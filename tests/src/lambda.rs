//! Running the function binaries under the Lambda Runtime API with `cargo lambda watch`, and
//! invoking them with `cargo lambda invoke` (what `sam local invoke` does, without Docker).

use std::io::Read;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::peers::{free_port, repo_root, venv};

/// A `cargo lambda watch` emulator on a free loopback port, serving the workspace's function
/// binaries with the given environment. Stopped when dropped.
pub struct LambdaWatch {
    pub port: u16,
    child: Child,
    log: PathBuf,
    _dir: tempfile::TempDir,
}

fn cargo_lambda_path() -> String {
    // cargo finds `cargo-lambda` on PATH; the venv's bin holds it.
    let venv_bin = venv().join("bin");
    assert!(
        venv_bin.join("cargo-lambda").exists(),
        "cargo-lambda is missing from {}: run scripts/test.sh",
        venv_bin.display()
    );
    format!("{}:{}", venv_bin.display(), std::env::var("PATH").unwrap_or_default())
}

impl LambdaWatch {
    /// Starts the emulator. `env` is given to the functions (and to the emulator).
    pub fn start(env: &[(String, String)]) -> LambdaWatch {
        let port = free_port();
        let dir = tempfile::tempdir().expect("temp dir");
        let log = dir.path().join("watch.log");
        let log_file = std::fs::File::create(&log).expect("log file");
        let mut cmd = Command::new("cargo");
        cmd.current_dir(repo_root())
            .env("PATH", cargo_lambda_path())
            .args(["lambda", "watch", "--ignore-changes", "--quiet", "-A", "127.0.0.1", "-P", &port.to_string()])
            .stdout(Stdio::from(log_file.try_clone().unwrap()))
            .stderr(Stdio::from(log_file));
        for (k, v) in env {
            cmd.arg("--env-var").arg(format!("{k}={v}"));
            cmd.env(k, v);
        }
        let child = cmd.spawn().expect("start cargo lambda watch");
        let watch = LambdaWatch { port, child, log, _dir: dir };
        assert!(
            crate::peers::wait_for_port(port, Duration::from_secs(120)),
            "cargo lambda watch did not listen on {port}:\n{}",
            watch.log_text()
        );
        watch
    }

    pub fn log_text(&self) -> String {
        let mut s = String::new();
        if let Ok(mut f) = std::fs::File::open(&self.log) {
            let _ = f.read_to_string(&mut s);
        }
        s
    }

    /// Invokes `function` with `event` (JSON text) and returns its JSON answer. The first
    /// invocation of a function compiles it, so this waits up to `timeout`.
    pub fn invoke(&self, function: &str, event: &str, timeout: Duration) -> Result<serde_json::Value, String> {
        let dir = tempfile::tempdir().map_err(|e| e.to_string())?;
        let data = dir.path().join("event.json");
        std::fs::write(&data, event).map_err(|e| e.to_string())?;
        let deadline = Instant::now() + timeout;
        loop {
            let out = Command::new("cargo")
                .current_dir(repo_root())
                .env("PATH", cargo_lambda_path())
                .args([
                    "lambda",
                    "invoke",
                    function,
                    "--output-format",
                    "json",
                    "-A",
                    "127.0.0.1",
                    "-P",
                    &self.port.to_string(),
                    "--data-file",
                ])
                .arg(&data)
                .output()
                .map_err(|e| format!("cannot run cargo lambda invoke: {e}"))?;
            let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
            let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
            if out.status.success() {
                return serde_json::from_str(&stdout).map_err(|e| format!("invoke output is not JSON ({e}): {stdout}"));
            }
            // While the function compiles, the emulator may answer with a timeout or a
            // connection error; retry until the deadline, then report everything.
            if Instant::now() >= deadline {
                return Err(format!(
                    "invoke {function} failed: {stderr}{stdout}\n--- cargo lambda watch log\n{}",
                    self.log_text()
                ));
            }
            std::thread::sleep(Duration::from_secs(1));
        }
    }
}

impl Drop for LambdaWatch {
    fn drop(&mut self) {
        // cargo lambda watch runs the function binaries as children: end the whole group.
        let _ = Command::new("pkill").args(["-TERM", "-P", &self.child.id().to_string()]).status();
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
