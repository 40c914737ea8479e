//! A minimal HTTP/1.1 client for tests (one request per connection), and the `larder` binary.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::Duration;

use crate::peers::{Peer, free_port, wait_for_port, workspace_bin};

/// Sends one request to 127.0.0.1:`port` and returns (status, body).
pub fn request(port: u16, method: &str, path: &str, body: &[u8]) -> std::io::Result<(u16, Vec<u8>)> {
    request_with(port, method, path, &[], body)
}

/// [`request`] with extra header lines (`("Authorization", "Bearer ...")`).
pub fn request_with(
    port: u16,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &[u8],
) -> std::io::Result<(u16, Vec<u8>)> {
    let mut sent = vec![("Content-Type", "application/json")];
    sent.extend_from_slice(headers);
    exchange(port, method, path, &sent, body).map(|(status, _, body)| (status, body))
}

/// One request with exactly `headers` (besides Host, Content-Length and Connection); the
/// answer's status, header lines (names lowercased) and body (de-chunked).
fn exchange(
    port: u16,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &[u8],
) -> std::io::Result<(u16, HeaderLines, Vec<u8>)> {
    let mut s = TcpStream::connect(("127.0.0.1", port))?;
    s.set_read_timeout(Some(Duration::from_secs(60)))?;
    let extra: String = headers.iter().map(|(k, v)| format!("{k}: {v}\r\n")).collect();
    write!(
        s,
        "{method} {path} HTTP/1.1\r\nHost: 127.0.0.1\r\n{extra}Content-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    )?;
    s.write_all(body)?;
    let mut raw = Vec::new();
    s.read_to_end(&mut raw)?;
    let split = raw.windows(4).position(|w| w == b"\r\n\r\n").ok_or_else(|| std::io::Error::other("no header end"))?;
    let head = String::from_utf8_lossy(&raw[..split]).into_owned();
    let mut lines = head.split("\r\n");
    let status = lines.next().and_then(|l| l.split_whitespace().nth(1)).and_then(|s| s.parse().ok()).unwrap_or(0);
    let headers: HeaderLines = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_ascii_lowercase(), v.trim().to_string()))
        .collect();
    let mut body = raw[split + 4..].to_vec();
    if headers.iter().any(|(k, v)| k == "transfer-encoding" && v.eq_ignore_ascii_case("chunked")) {
        body = dechunk(&body);
    }
    Ok((status, headers, body))
}

fn dechunk(mut b: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    while let Some(eol) = b.windows(2).position(|w| w == b"\r\n") {
        let size = usize::from_str_radix(String::from_utf8_lossy(&b[..eol]).trim(), 16).unwrap_or(0);
        if size == 0 {
            break;
        }
        out.extend_from_slice(&b[eol + 2..eol + 2 + size]);
        b = &b[eol + 2 + size + 2..];
    }
    out
}

/// POSTs JSON and parses the JSON answer.
pub fn post_json(port: u16, path: &str, body: &serde_json::Value) -> (u16, serde_json::Value) {
    post_json_with(port, path, &[], body)
}

/// [`post_json`] with extra header lines.
pub fn post_json_with(
    port: u16,
    path: &str,
    headers: &[(&str, &str)],
    body: &serde_json::Value,
) -> (u16, serde_json::Value) {
    let (status, bytes) = request_with(port, "POST", path, headers, body.to_string().as_bytes()).expect("HTTP request");
    let json = serde_json::from_slice(&bytes)
        .unwrap_or_else(|_| serde_json::Value::String(String::from_utf8_lossy(&bytes).into_owned()));
    (status, json)
}

/// The `larder` binary (see [`workspace_bin`]).
pub fn larder_bin() -> PathBuf {
    workspace_bin("larder")
}

/// `larder serve` on a free loopback port; killed when dropped.
pub struct LarderServe {
    pub port: u16,
    peer: Peer,
}

impl LarderServe {
    pub fn start(repo: &std::path::Path, env: &[(String, String)], extra: &[&str]) -> LarderServe {
        let port = free_port();
        let mut cmd = Command::new(larder_bin());
        cmd.args(["serve", "--repo"]).arg(repo).args(["--port", &port.to_string()]).args(extra);
        cmd.envs(env.iter().map(|(k, v)| (k.as_str(), v.as_str()))).stdout(Stdio::null()).stderr(Stdio::null());
        let peer = Peer::spawn("larder serve", &mut cmd);
        assert!(wait_for_port(port, Duration::from_secs(30)), "larder serve did not listen on {port}");
        LarderServe { port, peer }
    }

    /// Sends SIGTERM and waits: the server must stop on its own, within 30 seconds.
    pub fn stop(&mut self) -> std::process::ExitStatus {
        self.peer.terminate(Duration::from_secs(30)).expect("larder serve did not stop within 30 s of SIGTERM")
    }
}

/// A response's header lines: (lowercased name, value).
pub type HeaderLines = Vec<(String, String)>;

/// [`request`], also returning the response's header lines (no Content-Type is sent).
pub fn request_with_headers(
    port: u16,
    method: &str,
    path: &str,
    body: &[u8],
) -> std::io::Result<(u16, HeaderLines, Vec<u8>)> {
    exchange(port, method, path, &[], body)
}
