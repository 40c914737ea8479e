//! The function binaries under the Lambda Runtime API emulator of `cargo lambda watch`, invoked
//! with `cargo lambda invoke` (what `sam local invoke` does, without Docker).
//!
//! The emulator runs with `--only-lambda-apis`, so it neither builds nor starts the functions:
//! left to itself it would `cargo run` each one from the workspace root, which resolves features
//! for the default members without dev-dependencies, a different set from the one
//! `cargo build --workspace --all-targets` resolves, and the AWS SDK would be compiled a second
//! time. Each function here is the binary that build made ([`workspace_bin`]), started on its
//! first invocation with the environment the emulator would give it.

use std::collections::HashMap;
use std::fs::File;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use crate::peers::{Peer, free_port, repo_root, venv, wait_for_port, workspace_bin};

/// A `cargo lambda watch` emulator on a free loopback port, and the function binaries it serves,
/// given `env`. All stopped when dropped.
pub struct LambdaWatch {
    pub port: u16,
    /// The environment of every function, or of each by name.
    env: Vec<(String, String)>,
    env_by_function: HashMap<String, Vec<(String, String)>>,
    functions: Mutex<HashMap<String, Peer>>,
    _emulator: Peer,
    dir: tempfile::TempDir,
}

fn cargo_lambda() -> PathBuf {
    let bin = venv().join("bin/cargo-lambda");
    assert!(bin.exists(), "{} is missing: run scripts/test.sh (it prepares the virtualenv)", bin.display());
    bin
}

/// The command that runs `function`: the workspace's debug binary; or, when
/// `LARDER_FUNCTION_ARTIFACTS` names a folder of `<function>/bootstrap` files (the deployable
/// artifacts `scripts/check-deploy.sh` checks), that file, through `LARDER_FUNCTION_RUNNER` if
/// set (`qemu-aarch64 -L /usr/aarch64-linux-gnu` runs arm64 artifacts on an x86 machine).
fn function_command(function: &str) -> Command {
    let Some(dir) = std::env::var_os("LARDER_FUNCTION_ARTIFACTS") else {
        return Command::new(workspace_bin(function));
    };
    let bootstrap = PathBuf::from(dir).join(function).join("bootstrap");
    assert!(bootstrap.exists(), "{} is missing (LARDER_FUNCTION_ARTIFACTS)", bootstrap.display());
    let runner = std::env::var("LARDER_FUNCTION_RUNNER").unwrap_or_default();
    let mut words = runner.split_whitespace();
    match words.next() {
        Some(program) => {
            let mut cmd = Command::new(program);
            cmd.args(words).arg(bootstrap);
            cmd
        }
        None => Command::new(bootstrap),
    }
}

fn log_file(path: &Path) -> (Stdio, Stdio) {
    let file = File::create(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    (Stdio::from(file.try_clone().unwrap()), Stdio::from(file))
}

impl LambdaWatch {
    /// Starts the emulator. `env` is given to the functions.
    pub fn start(env: &[(String, String)]) -> LambdaWatch {
        Self::start_with(env, HashMap::new())
    }

    /// Starts the emulator; each function gets its own environment (a function not named gets
    /// none beyond what the emulator gives).
    pub fn start_each(envs: &[(&str, Vec<(String, String)>)]) -> LambdaWatch {
        Self::start_with(&[], envs.iter().map(|(f, e)| (f.to_string(), e.clone())).collect())
    }

    fn start_with(env: &[(String, String)], env_by_function: HashMap<String, Vec<(String, String)>>) -> LambdaWatch {
        let port = free_port();
        let dir = tempfile::tempdir().expect("temp dir");
        let (stdout, stderr) = log_file(&dir.path().join("watch.log"));
        let emulator = Peer::spawn(
            "cargo lambda watch",
            Command::new(cargo_lambda())
                .current_dir(repo_root())
                .args(["lambda", "watch", "--only-lambda-apis", "--ignore-changes", "--quiet"])
                .args(["-A", "127.0.0.1", "-P", &port.to_string()])
                .stdout(stdout)
                .stderr(stderr),
        );
        let watch = LambdaWatch {
            port,
            env: env.to_vec(),
            env_by_function,
            functions: Mutex::new(HashMap::new()),
            _emulator: emulator,
            dir,
        };
        assert!(
            wait_for_port(port, Duration::from_secs(60)),
            "cargo lambda watch did not listen on {port}:\n{}",
            watch.log_text()
        );
        watch
    }

    /// The emulator's log, then each function's.
    pub fn log_text(&self) -> String {
        let mut names = vec!["watch".to_string()];
        names.extend(self.functions.lock().unwrap_or_else(|p| p.into_inner()).keys().cloned());
        let mut text = String::new();
        for name in names {
            text.push_str(&format!("--- {name}.log\n"));
            if let Ok(mut f) = File::open(self.dir.path().join(format!("{name}.log"))) {
                let _ = f.read_to_string(&mut text);
            }
        }
        text
    }

    /// Starts `function` (once), polling the emulator's Runtime API under its own name.
    pub fn ensure_started(&self, function: &str) {
        let mut functions = self.functions.lock().unwrap_or_else(|p| p.into_inner());
        if functions.contains_key(function) {
            return;
        }
        let (stdout, stderr) = log_file(&self.dir.path().join(format!("{function}.log")));
        let peer = Peer::spawn(
            function,
            function_command(function)
                .envs(self.env.iter().map(|(k, v)| (k.as_str(), v.as_str())))
                .envs(self.env_by_function.get(function).into_iter().flatten().map(|(k, v)| (k.as_str(), v.as_str())))
                .env("AWS_LAMBDA_FUNCTION_NAME", function)
                .env("AWS_LAMBDA_FUNCTION_VERSION", "1")
                .env("AWS_LAMBDA_FUNCTION_MEMORY_SIZE", "4096")
                .env("AWS_LAMBDA_RUNTIME_API", format!("http://127.0.0.1:{}/.rt/{function}", self.port))
                .stdout(stdout)
                .stderr(stderr),
        );
        functions.insert(function.to_string(), peer);
    }

    /// The emulator's invoke endpoint prefix: `<this>/<function>/invocations` (what the Lambda
    /// API's Invoke calls).
    pub fn invoke_url(&self) -> String {
        format!("http://127.0.0.1:{}/2015-03-31/functions", self.port)
    }

    /// Invokes `function` with `event` (JSON text) and returns its JSON answer, retrying a
    /// failed invocation until `timeout` has passed.
    pub fn invoke(&self, function: &str, event: &str, timeout: Duration) -> Result<serde_json::Value, String> {
        self.ensure_started(function);
        let dir = tempfile::tempdir().map_err(|e| e.to_string())?;
        let data = dir.path().join("event.json");
        std::fs::write(&data, event).map_err(|e| e.to_string())?;
        let deadline = Instant::now() + timeout;
        loop {
            let out = Command::new(cargo_lambda())
                .current_dir(repo_root())
                .args(["lambda", "invoke", function, "--output-format", "json", "-A", "127.0.0.1", "-P"])
                .arg(self.port.to_string())
                .arg("--data-file")
                .arg(&data)
                .output()
                .map_err(|e| format!("cannot run cargo lambda invoke: {e}"))?;
            let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
            let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
            if out.status.success() {
                return serde_json::from_str(&stdout).map_err(|e| format!("invoke output is not JSON ({e}): {stdout}"));
            }
            if Instant::now() >= deadline {
                return Err(format!("invoke {function} failed: {stderr}{stdout}\n{}", self.log_text()));
            }
            std::thread::sleep(Duration::from_secs(1));
        }
    }
}

impl LambdaWatch {
    /// The length of what `function` has written so far (stdout and stderr share one file).
    fn output_len(&self, function: &str) -> u64 {
        std::fs::metadata(self.dir.path().join(format!("{function}.log"))).map_or(0, |m| m.len())
    }

    /// Everything `function` has written to stdout and stderr so far, in the order written (the
    /// two share one file).
    pub fn function_output(&self, function: &str) -> String {
        std::fs::read(self.dir.path().join(format!("{function}.log")))
            .map(|b| String::from_utf8_lossy(&b).into_owned())
            .unwrap_or_default()
    }

    /// [`LambdaWatch::invoke`], and what the function wrote to stdout and stderr from the start
    /// of the invocation until its answer arrived (with a function's first invocation, what it
    /// wrote while starting too; with a retried invocation, every attempt's). What a function
    /// writes after it has answered falls in the next capture.
    pub fn invoke_capturing(
        &self,
        function: &str,
        event: &str,
        timeout: Duration,
    ) -> Result<(serde_json::Value, String), String> {
        use std::io::{Seek, SeekFrom};
        self.ensure_started(function);
        let from = self.output_len(function);
        let answer = self.invoke(function, event, timeout)?;
        let path = self.dir.path().join(format!("{function}.log"));
        let mut file = File::open(&path).map_err(|e| format!("{}: {e}", path.display()))?;
        file.seek(SeekFrom::Start(from)).map_err(|e| format!("{}: {e}", path.display()))?;
        let mut bytes = Vec::new();
        file.read_to_end(&mut bytes).map_err(|e| format!("{}: {e}", path.display()))?;
        Ok((answer, String::from_utf8_lossy(&bytes).into_owned()))
    }
}
