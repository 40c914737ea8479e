use std::io::Write;
use std::net::{TcpListener, TcpStream};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, ExitStatus, Stdio};
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// A process a test started (a server, an emulator, a function) that must not outlive the test
/// process.
///
/// It leads a process group of its own, so stopping it stops what it forked too (`feast serve`
/// is a gunicorn master and a worker). Dropping a `Peer` kills the group (SIGKILL) and reaps the
/// leader. A peer that is never dropped, because it is kept in a `static` (statics are never
/// dropped), leaked past a panic, or alive when the test process is killed, is stopped by the
/// reaper (see [`REAPER_SCRIPT`]) when the test process ends, however it ends.
///
/// Not `PR_SET_PDEATHSIG`: it fires when the *thread* that spawned the child exits (libtest
/// runs each test on a thread of its own, and a peer in a static outlives the test that
/// started it), and it reaches only the child, not what the child forked.
pub struct Peer {
    child: Child,
    what: String,
    /// Set once the group has been killed and the leader reaped.
    stopped: bool,
    status: Option<ExitStatus>,
}

impl Peer {
    /// Starts `cmd` (`what` names it in messages) as the leader of a new process group, with
    /// stdin from /dev/null (a background group reading a terminal would be stopped).
    pub fn spawn(what: &str, cmd: &mut Command) -> Peer {
        cmd.process_group(0).stdin(Stdio::null());
        // Held across the spawn, so the reaper cannot be closed at exit between the spawn and
        // the registration.
        let mut reaper = reaper();
        let child = cmd.spawn().unwrap_or_else(|e| panic!("cannot start {what} ({cmd:?}): {e}"));
        let mut peer = Peer { child, what: what.to_string(), stopped: false, status: None };
        if let Err(e) = reaper.tell('+', peer.child.id()) {
            drop(reaper);
            peer.kill();
            panic!("cannot register {what} with the peer reaper: {e}");
        }
        peer
    }

    /// The leader's pid, which is also the group's id.
    pub fn id(&self) -> u32 {
        self.child.id()
    }

    /// Kills the whole group (SIGKILL) and reaps the leader. Does nothing the second time.
    pub fn kill(&mut self) {
        if self.stopped {
            return;
        }
        self.stopped = true;
        // The leader is not reaped yet (at most a zombie), so its pid, the group id, cannot
        // have been reused: the signal reaches this group and no other.
        signal_group(self.id(), libc::SIGKILL);
        forget(self.id());
        self.status = self.child.wait().inspect_err(|e| eprintln!("wait for {}: {e}", self.what)).ok();
        reap_group(self.id());
    }

    /// Asks the group to stop (SIGTERM) and waits up to `within` for the leader to exit, then
    /// kills what is left of the group. Returns the leader's status if it exited by itself.
    pub fn terminate(&mut self, within: Duration) -> Option<ExitStatus> {
        if self.stopped {
            return self.status;
        }
        signal_group(self.id(), libc::SIGTERM);
        let deadline = Instant::now() + within;
        let exited = loop {
            if self.leader_exited() {
                break true;
            }
            if Instant::now() >= deadline {
                break false;
            }
            std::thread::sleep(Duration::from_millis(20));
        };
        self.kill();
        if exited { self.status } else { None }
    }

    /// Whether the leader has exited, without reaping it (`WNOWAIT`): its pid stays reserved, so
    /// the group can still be signalled safely.
    fn leader_exited(&self) -> bool {
        // SAFETY: waitid fills `info`, a plain C struct for which all zeroes is a valid value.
        unsafe {
            let mut info: libc::siginfo_t = std::mem::zeroed();
            let flags = libc::WEXITED | libc::WNOHANG | libc::WNOWAIT;
            libc::waitid(libc::P_PID, self.id(), &mut info, flags) == 0 && info.si_pid() != 0
        }
    }
}

impl Drop for Peer {
    fn drop(&mut self) {
        self.kill();
    }
}

fn signal_group(pgid: u32, signal: libc::c_int) {
    // SAFETY: kill(2) with a negative pid signals the group; no memory is involved.
    unsafe { libc::kill(-(pgid as libc::pid_t), signal) };
}

/// Reaps what is left of a killed group: the test process is a child subreaper (see
/// [`reaper`]), so a peer's forks, orphaned when it died, became its children. Without this
/// they would stay zombies until init reaps them.
fn reap_group(pgid: u32) {
    loop {
        // SAFETY: waits for any child of ours in the group; no memory is involved.
        let r = unsafe { libc::waitpid(-(pgid as libc::pid_t), std::ptr::null_mut(), 0) };
        if r <= 0 && std::io::Error::last_os_error().kind() != std::io::ErrorKind::Interrupted {
            return; // ECHILD: none left
        }
    }
}

/// The reaper: a `sh` started with the first peer, in a process group of its own (a Ctrl-C to
/// the test's group does not reach it). The test process writes `+ <pgid>` on its stdin for each
/// peer it starts and `- <pgid>` for each it stops; when its stdin closes, which the kernel does
/// when the test process ends, however it ends (a normal exit with peers in statics, a panic, a
/// SIGKILL), it kills every group still listed. At a normal exit [`close_reaper_at_exit`] does
/// that work before the test binary is gone. After a kill, a listed group may already be empty
/// (its leader reaped by init) and its number free again, but numbers are reused only once the
/// pid space wraps, and the reaper acts at once. Not covered: a process that leaves its group
/// (`setsid`); no peer here does.
const REAPER_SCRIPT: &str = r#"# larder-tests peer reaper (tests/src/peers.rs)
trap '' INT HUP
live=' '
while read -r op pgid; do
  case $op in
    +) live="$live$pgid " ;;
    -) case $live in *" $pgid "*) live="${live%%" $pgid "*} ${live#*" $pgid "}" ;; esac ;;
  esac
done
for pgid in $live; do kill -s KILL -- "-$pgid" 2>/dev/null; done
"#;

struct Reaper {
    stdin: ChildStdin,
    child: Child,
    /// The groups told with `+` and not yet with `-`.
    live: Vec<u32>,
}

enum ReaperState {
    NotStarted,
    Running(Reaper),
    /// Closed by [`close_reaper_at_exit`]: no peer can start any more.
    Closed,
}

static REAPER: Mutex<ReaperState> = Mutex::new(ReaperState::NotStarted);

fn lock_reaper() -> std::sync::MutexGuard<'static, ReaperState> {
    REAPER.lock().unwrap_or_else(|p| p.into_inner())
}

struct ReaperGuard(std::sync::MutexGuard<'static, ReaperState>);

impl ReaperGuard {
    fn tell(&mut self, op: char, pgid: u32) -> std::io::Result<()> {
        let ReaperState::Running(r) = &mut *self.0 else {
            return Err(std::io::Error::other("the test process is exiting"));
        };
        match op {
            '+' => r.live.push(pgid),
            _ => r.live.retain(|&g| g != pgid),
        }
        writeln!(r.stdin, "{op} {pgid}")
    }
}

/// The reaper, started (and [`close_reaper_at_exit`] registered) on first use.
fn reaper() -> ReaperGuard {
    let mut guard = lock_reaper();
    if let ReaperState::NotStarted = *guard {
        let mut child = Command::new("/bin/sh")
            .args(["-c", REAPER_SCRIPT])
            .process_group(0)
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .spawn()
            .expect("start the peer reaper (/bin/sh)");
        let stdin = child.stdin.take().unwrap();
        // SAFETY: prctl sets a flag of this process; atexit registers a plain `extern "C"`
        // function, which runs once, at exit.
        unsafe {
            libc::prctl(libc::PR_SET_CHILD_SUBREAPER, 1 as libc::c_ulong);
            libc::atexit(close_reaper_at_exit);
        }
        *guard = ReaperState::Running(Reaper { stdin, child, live: Vec::new() });
    }
    ReaperGuard(guard)
}

/// Tells the reaper a group is gone.
fn forget(pgid: u32) {
    let _ = ReaperGuard(lock_reaper()).tell('-', pgid);
}

/// At a normal exit (`exit(3)`, which libtest's `main` ends in), for the peers nobody dropped:
/// kills their groups, lets the reaper finish (it finds the same groups, still reserved: their
/// leaders are not reaped yet), then reaps the groups, so no zombie is left for init either.
extern "C" fn close_reaper_at_exit() {
    let state = std::mem::replace(&mut *lock_reaper(), ReaperState::Closed);
    if let ReaperState::Running(Reaper { stdin, mut child, live }) = state {
        for &pgid in &live {
            signal_group(pgid, libc::SIGKILL);
        }
        drop(stdin);
        let _ = child.wait();
        for pgid in live {
            reap_group(pgid);
        }
    }
}

/// A free TCP port on 127.0.0.1 for a server a test is about to start.
///
/// Taken from 20000-31999, below Linux's ephemeral range (32768-60999): a port the kernel hands
/// out (`bind :0`) can be given to some client's outgoing connection between this check and
/// the server binding it, and then the server fails to start. Calls in one process walk the
/// range from a random start, so two tests running at once never get the same port.
pub fn free_port() -> u16 {
    use std::hash::{BuildHasher, Hasher};
    use std::sync::atomic::{AtomicU32, Ordering};
    const BASE: u32 = 20_000;
    const SPAN: u32 = 12_000;
    static NEXT: AtomicU32 = AtomicU32::new(u32::MAX);
    if NEXT.load(Ordering::Relaxed) == u32::MAX {
        let seed = std::collections::hash_map::RandomState::new().build_hasher().finish() as u32 % SPAN;
        let _ = NEXT.compare_exchange(u32::MAX, seed, Ordering::Relaxed, Ordering::Relaxed);
    }
    for _ in 0..SPAN {
        let port = (BASE + NEXT.fetch_add(1, Ordering::Relaxed) % SPAN) as u16;
        if TcpListener::bind(("127.0.0.1", port)).is_ok() {
            return port;
        }
    }
    panic!("no free loopback port in {BASE}-{}", BASE + SPAN - 1)
}

/// Waits until something accepts connections on 127.0.0.1:`port`.
pub fn wait_for_port(port: u16, timeout: Duration) -> bool {
    let deadline = Instant::now() + timeout;
    while Instant::now() < deadline {
        if TcpStream::connect(("127.0.0.1", port)).is_ok() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    false
}

/// The virtualenv holding feast, moto and cargo-lambda: `$LARDER_VENV`, or
/// `~/.cache/larder/venv` (where `scripts/test.sh` creates it).
pub fn venv() -> PathBuf {
    if let Ok(v) = std::env::var("LARDER_VENV") {
        return PathBuf::from(v);
    }
    let home = std::env::var("HOME").unwrap_or_else(|_| "/root".into());
    PathBuf::from(home).join(".cache/larder/venv")
}

/// A program from the virtualenv, with a clear panic if the environment was not prepared.
pub fn venv_bin(name: &str) -> PathBuf {
    let p = venv().join("bin").join(name);
    assert!(
        p.exists(),
        "{} is missing: run scripts/test.sh (it prepares the virtualenv) or set LARDER_VENV",
        p.display()
    );
    p
}

/// The repository root.
pub fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap().to_path_buf()
}

/// A binary of the workspace (`larder`, and the functions `get-online-features`, `push`,
/// `materialize`) from `$CARGO_TARGET_DIR/debug` (default `target/debug`). `cargo test` builds
/// binaries only for their own package's tests, so `scripts/test.sh` builds them first with
/// `cargo build --workspace --all-targets`; after changing them, run that again.
pub fn workspace_bin(name: &str) -> PathBuf {
    let target = std::env::var_os("CARGO_TARGET_DIR").map(PathBuf::from).unwrap_or_else(|| repo_root().join("target"));
    let bin = target.join("debug").join(name);
    assert!(
        bin.exists(),
        "{} is missing: run `cargo build --workspace --all-targets` (scripts/test.sh does)",
        bin.display()
    );
    bin
}

fn require(program: &str) -> PathBuf {
    let found = std::env::var_os("PATH")
        .and_then(|paths| std::env::split_paths(&paths).map(|d| d.join(program)).find(|p| p.exists()));
    found.unwrap_or_else(|| panic!("{program} is not installed: run scripts/test.sh (it installs the test peers)"))
}

/// A private `redis-server` on a free loopback port, without persistence.
pub struct RedisServer {
    /// The port clients use (the TLS port for a TLS server, which has no plain port).
    pub port: u16,
    peer: Option<Peer>,
    extra_args: Vec<String>,
    tls: Option<TlsFiles>,
    password: Option<String>,
    dir: tempfile::TempDir,
}

impl RedisServer {
    pub fn start() -> RedisServer {
        Self::start_with(&[])
    }

    /// Starts with extra `redis-server` arguments (e.g. `--requirepass x`).
    pub fn start_with(extra: &[&str]) -> RedisServer {
        Self::start_full(extra, false, None)
    }

    /// A server that speaks only TLS (`--port 0 --tls-port P`) and requires `password`, with a
    /// CA and a server certificate for 127.0.0.1 made for it (see [`TlsFiles`]).
    pub fn start_tls(password: &str) -> RedisServer {
        Self::start_full(&[], true, Some(password))
    }

    /// A one-node Redis Cluster that speaks only TLS and holds every slot: what ElastiCache
    /// Serverless looks like to a client (cluster mode, TLS), with no password (tests add ACL
    /// users).
    pub fn start_tls_cluster_node() -> RedisServer {
        let server = Self::start_full(&["--cluster-enabled", "yes", "--tls-cluster", "yes"], true, None);
        let mut c = server.client();
        let _: () = redis::cmd("CLUSTER").arg("ADDSLOTSRANGE").arg(0).arg(16383).query(&mut c).expect("add slots");
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        while !redis::cmd("CLUSTER")
            .arg("INFO")
            .query::<String>(&mut c)
            .unwrap_or_default()
            .contains("cluster_state:ok")
        {
            assert!(std::time::Instant::now() < deadline, "the one-node cluster never became ok");
            std::thread::sleep(Duration::from_millis(50));
        }
        server
    }

    fn start_full(extra: &[&str], tls: bool, password: Option<&str>) -> RedisServer {
        let dir = tempfile::tempdir().expect("temp dir");
        let tls = tls.then(|| TlsFiles::generate(&dir.path().join("tls")));
        let mut server = RedisServer {
            port: free_port(),
            peer: None,
            extra_args: extra.iter().map(|s| s.to_string()).collect(),
            tls,
            password: password.map(str::to_string),
            dir,
        };
        server.spawn();
        server
    }

    fn spawn(&mut self) {
        let bin = require("redis-server");
        let mut cmd = Command::new(bin);
        match &self.tls {
            None => {
                cmd.arg("--port").arg(self.port.to_string());
            }
            Some(t) => {
                cmd.args(["--port", "0", "--tls-port"])
                    .arg(self.port.to_string())
                    .arg("--tls-cert-file")
                    .arg(&t.server_cert)
                    .arg("--tls-key-file")
                    .arg(&t.server_key)
                    .arg("--tls-ca-cert-file")
                    .arg(&t.ca_cert)
                    .args(["--tls-auth-clients", "no"]);
            }
        }
        if let Some(p) = &self.password {
            cmd.arg("--requirepass").arg(p);
        }
        cmd.args(["--bind", "127.0.0.1", "--save", "", "--appendonly", "no", "--protected-mode", "no"])
            .arg("--dir")
            .arg(self.dir.path())
            .args(&self.extra_args)
            .stdout(Stdio::null())
            .stderr(Stdio::null());
        self.peer = Some(Peer::spawn("redis-server", &mut cmd));
        assert!(wait_for_port(self.port, Duration::from_secs(10)), "redis-server did not start on port {}", self.port);
        // With persistence on, Redis accepts connections while it is still loading the data
        // set (and answers LOADING); wait until it serves commands.
        let deadline = std::time::Instant::now() + Duration::from_secs(30);
        loop {
            let ready = self
                .try_client()
                .and_then(|mut c| redis::cmd("PING").query::<String>(&mut c).map_err(|e| e.to_string()));
            match ready {
                Ok(_) => break,
                // A server with a password answers without one: it is up, serving commands.
                Err(e) if e.contains("NOAUTH") => break,
                Err(_) if std::time::Instant::now() < deadline => std::thread::sleep(Duration::from_millis(20)),
                Err(e) => panic!("redis-server on port {} never became ready: {e}", self.port),
            }
        }
    }

    /// `127.0.0.1:port`, Feast's connection_string form.
    pub fn addr(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    /// A Feast connection_string that reaches this server: `127.0.0.1:port`, plus
    /// `ssl=true,ssl_ca_certs=<ca>` for a TLS server and `password=` when one is set.
    pub fn connection_string(&self) -> String {
        let mut s = self.addr();
        if let Some(t) = &self.tls {
            s.push_str(&format!(",ssl=true,ssl_ca_certs={}", t.ca_cert.display()));
        }
        if let Some(p) = &self.password {
            s.push_str(&format!(",password={p}"));
        }
        s
    }

    pub fn url(&self) -> String {
        let scheme = if self.tls.is_some() { "rediss" } else { "redis" };
        let auth = self.password.as_ref().map(|p| format!(":{p}@")).unwrap_or_default();
        format!("{scheme}://{auth}127.0.0.1:{}/", self.port)
    }

    /// The certificates of a TLS server.
    pub fn tls(&self) -> Option<&TlsFiles> {
        self.tls.as_ref()
    }

    /// Kills the server (SIGKILL: data is lost unless `appendfsync always` wrote it).
    pub fn kill(&mut self) {
        if let Some(mut peer) = self.peer.take() {
            peer.kill();
        }
    }

    /// Starts it again on the same port.
    pub fn restart(&mut self) {
        self.kill();
        self.spawn();
    }

    /// A synchronous client for assertions (TLS and password included).
    pub fn client(&self) -> redis::Connection {
        self.try_client().expect("connect to the test redis")
    }

    fn try_client(&self) -> Result<redis::Connection, String> {
        let client = match &self.tls {
            None => redis::Client::open(self.url()),
            Some(t) => {
                let certs =
                    redis::TlsCertificates { client_tls: None, root_cert: Some(std::fs::read(&t.ca_cert).unwrap()) };
                redis::Client::build_with_tls(self.url(), certs)
            }
        };
        client.and_then(|c| c.get_connection()).map_err(|e| e.to_string())
    }
}

/// A CA, and a server certificate it signed for `127.0.0.1` and `localhost`, made with the
/// `openssl` CLI into a directory of the test's own.
pub struct TlsFiles {
    pub ca_cert: PathBuf,
    pub server_cert: PathBuf,
    pub server_key: PathBuf,
    /// A second CA that signed nothing here: a client trusting only it must refuse the server.
    pub other_ca_cert: PathBuf,
}

impl TlsFiles {
    pub fn generate(dir: &Path) -> TlsFiles {
        let openssl = require("openssl");
        std::fs::create_dir_all(dir).expect("create the certificate directory");
        let p = |name: &str| dir.join(name);
        let ec = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes"];
        for (key, cert, cn) in
            [("ca.key", "ca.crt", "Larder test CA"), ("other-ca.key", "other-ca.crt", "Someone else's CA")]
        {
            run(Command::new(&openssl)
                .args(["req", "-x509"])
                .args(ec)
                .arg("-keyout")
                .arg(p(key))
                .arg("-out")
                .arg(p(cert))
                .args(["-days", "2", "-subj"])
                .arg(format!("/CN={cn}"))
                .args([
                    "-addext",
                    "basicConstraints=critical,CA:TRUE",
                    "-addext",
                    "keyUsage=critical,keyCertSign,cRLSign",
                ]));
        }
        run(Command::new(&openssl)
            .arg("req")
            .args(ec)
            .arg("-keyout")
            .arg(p("server.key"))
            .arg("-out")
            .arg(p("server.csr"))
            .args(["-subj", "/CN=127.0.0.1"]));
        std::fs::write(
            p("server.ext"),
            "subjectAltName=IP:127.0.0.1,DNS:localhost\nbasicConstraints=CA:FALSE\nkeyUsage=critical,digitalSignature\nextendedKeyUsage=serverAuth\n",
        )
        .unwrap();
        run(Command::new(&openssl)
            .args(["x509", "-req", "-in"])
            .arg(p("server.csr"))
            .arg("-CA")
            .arg(p("ca.crt"))
            .arg("-CAkey")
            .arg(p("ca.key"))
            .arg("-CAcreateserial")
            .arg("-out")
            .arg(p("server.crt"))
            .args(["-days", "2", "-extfile"])
            .arg(p("server.ext")));
        TlsFiles {
            ca_cert: p("ca.crt"),
            server_cert: p("server.crt"),
            server_key: p("server.key"),
            other_ca_cert: p("other-ca.crt"),
        }
    }
}

/// A Redis Cluster of three primaries (no replicas) on free loopback ports, each node a
/// [`RedisServer`] with `cluster-enabled yes`, joined with `redis-cli --cluster create`.
pub struct RedisCluster {
    pub nodes: Vec<RedisServer>,
}

impl RedisCluster {
    pub fn start() -> RedisCluster {
        let nodes: Vec<RedisServer> = (0..3)
            .map(|_| {
                // The cluster bus gets its own free port: the default (port + 10000) may be taken
                // or beyond 65535.
                let bus = free_port().to_string();
                RedisServer::start_with(&[
                    "--cluster-enabled",
                    "yes",
                    "--cluster-config-file",
                    "nodes.conf",
                    "--cluster-port",
                    &bus,
                    "--cluster-node-timeout",
                    "5000",
                ])
            })
            .collect();
        let mut create = Command::new(require("redis-cli"));
        create.args(["--cluster", "create"]);
        for n in &nodes {
            create.arg(n.addr());
        }
        create.args(["--cluster-replicas", "0", "--cluster-yes"]);
        run(&mut create);
        let cluster = RedisCluster { nodes };
        cluster.wait_until_ok(Duration::from_secs(30));
        cluster
    }

    /// Waits until every node reports `cluster_state:ok` and knows all three primaries.
    pub fn wait_until_ok(&self, timeout: Duration) {
        let deadline = Instant::now() + timeout;
        loop {
            let ok = self.nodes.iter().all(|n| {
                let out =
                    Command::new(require("redis-cli")).args(["-p", &n.port.to_string(), "cluster", "info"]).output();
                out.is_ok_and(|o| {
                    let text = String::from_utf8_lossy(&o.stdout);
                    text.contains("cluster_state:ok") && text.contains("cluster_known_nodes:3")
                })
            });
            if ok {
                return;
            }
            assert!(Instant::now() < deadline, "the Redis cluster did not reach cluster_state:ok");
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// Feast's form for `redis_type: redis_cluster`: every node, comma-separated.
    pub fn connection_string(&self) -> String {
        self.nodes.iter().map(RedisServer::addr).collect::<Vec<_>>().join(",")
    }

    /// The index in [`RedisCluster::nodes`] of the primary that owns `slot`.
    pub fn owner_of(&self, slot: u16) -> usize {
        let out =
            run(Command::new(require("redis-cli")).args(["-p", &self.nodes[0].port.to_string(), "cluster", "nodes"]));
        // <id> <ip:port@bus> <flags> <primary> <ping> <pong> <epoch> <link> <slot ranges>...
        for line in out.lines() {
            let parts: Vec<&str> = line.split_whitespace().collect();
            let owns = parts.iter().skip(8).any(|range| {
                let (a, b) = range.split_once('-').unwrap_or((range, range));
                matches!((a.parse::<u16>(), b.parse::<u16>()), (Ok(a), Ok(b)) if (a..=b).contains(&slot))
            });
            if owns {
                let port: u16 =
                    parts[1].split('@').next().and_then(|a| a.rsplit(':').next()).and_then(|p| p.parse().ok()).unwrap();
                return self.nodes.iter().position(|n| n.port == port).expect("the owner is one of ours");
            }
        }
        panic!("no node owns slot {slot}");
    }

    /// A synchronous cluster client for assertions.
    pub fn client(&self) -> redis::cluster::ClusterConnection {
        let urls: Vec<String> = self.nodes.iter().map(RedisServer::url).collect();
        redis::cluster::ClusterClient::new(urls).unwrap().get_connection().expect("connect to the test cluster")
    }
}

/// A private `moto_server` (S3, Kinesis, SQS over HTTP) on a free loopback port. Test files
/// keep theirs in a `static` (the SDK clients are built once per process); the reaper stops it
/// when the test process ends.
pub struct MotoServer {
    pub port: u16,
    _peer: Peer,
}

impl MotoServer {
    pub fn start() -> MotoServer {
        let port = free_port();
        let peer = Peer::spawn(
            "moto_server",
            Command::new(venv_bin("moto_server"))
                .args(["-H", "127.0.0.1", "-p", &port.to_string()])
                .stdout(Stdio::null())
                .stderr(Stdio::null()),
        );
        assert!(wait_for_port(port, Duration::from_secs(30)), "moto_server did not start on port {port}");
        MotoServer { port, _peer: peer }
    }

    pub fn endpoint(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// Environment that points the AWS SDK (Larder's and boto3) at this server.
    pub fn env(&self) -> Vec<(String, String)> {
        [
            ("AWS_ACCESS_KEY_ID", "testing".to_string()),
            ("AWS_SECRET_ACCESS_KEY", "testing".to_string()),
            ("AWS_REGION", "us-east-1".to_string()),
            ("AWS_DEFAULT_REGION", "us-east-1".to_string()),
            ("AWS_ENDPOINT_URL", self.endpoint()),
            ("LARDER_S3_ENDPOINT", self.endpoint()),
            ("LARDER_KINESIS_ENDPOINT", self.endpoint()),
            ("LARDER_SQS_ENDPOINT", self.endpoint()),
            ("LARDER_SECRETSMANAGER_ENDPOINT", self.endpoint()),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v))
        .collect()
    }

    /// Sets [`MotoServer::env`] in this process. Tests that use it must run in their own
    /// process (one test file per server), since the SDK clients are built once per process.
    pub fn export_env(&self) {
        for (k, v) in self.env() {
            // SAFETY: called at the start of a test before any other thread reads the environment.
            unsafe { std::env::set_var(k, v) };
        }
    }
}

/// Runs a program, panicking with its output if it fails. Returns stdout.
pub fn run(cmd: &mut Command) -> String {
    let out = cmd.output().unwrap_or_else(|e| panic!("cannot run {cmd:?}: {e}"));
    if !out.status.success() {
        panic!(
            "{cmd:?} failed ({}):\n--- stdout\n{}\n--- stderr\n{}",
            out.status,
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }
    String::from_utf8_lossy(&out.stdout).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::{BufRead, BufReader};

    fn gone(pid: u32) -> bool {
        // SAFETY: signal 0 only checks that the process exists.
        unsafe { libc::kill(pid as libc::pid_t, 0) != 0 }
    }

    /// A peer that forks: the leader prints the pid of a grandchild in its group.
    fn forking_peer() -> (Peer, u32) {
        let mut peer = Peer::spawn(
            "a forking shell",
            Command::new("/bin/sh").args(["-c", "sleep 600 & echo $!; wait"]).stdout(Stdio::piped()),
        );
        let mut line = String::new();
        BufReader::new(peer.child.stdout.take().unwrap()).read_line(&mut line).unwrap();
        (peer, line.trim().parse().unwrap())
    }

    #[test]
    fn dropping_a_peer_stops_and_reaps_its_whole_group() {
        let (peer, grandchild) = forking_peer();
        let leader = peer.id();
        assert!(!gone(leader) && !gone(grandchild));
        drop(peer);
        // Gone, not zombies: the grandchild was reaped here too.
        assert!(gone(leader) && gone(grandchild));
    }

    #[test]
    fn terminate_reports_a_leader_that_stops_on_sigterm() {
        let (mut peer, grandchild) = forking_peer();
        let status = peer.terminate(Duration::from_secs(10)).expect("sh stops on SIGTERM");
        assert!(!status.success());
        assert!(gone(grandchild));
        assert_eq!(peer.terminate(Duration::from_secs(1)), Some(status), "a second call changes nothing");
    }
}
