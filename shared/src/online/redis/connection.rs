//! Where Redis is and how to reach it: Feast's `connection_string`, and `redis://` URLs.
//!
//! Feast passes every `key=value` part of the string to redis-py as a keyword argument, so
//! real Feast configurations carry redis-py's option names (`password`, `ssl`, `ssl_cert_reqs`,
//! `ssl_ca_certs`, ...). Larder accepts those names with the same meaning, plus URLs, and
//! rejects anything else with a message naming the part, instead of silently ignoring it.
//!
//! Grammar (parts separated by `,`, in any order):
//! - `host:port` (`[v6addr]:port` for IPv6; the port defaults to 6379): a node. With
//!   `redis_type: redis` the first node is used, as in Feast; with `redis_cluster` every node
//!   is a startup node.
//! - `redis://[user[:password]@]host[:port][/db][?option=value&...]`, or `rediss://` for TLS:
//!   a node given as a URL; its credentials, database and query options apply to the store.
//! - `option=value`, see [`RedisTarget::parse`] for the list.

use std::fmt;
use std::path::PathBuf;
use std::time::Duration;

use ::redis::{ConnectionAddr, ConnectionInfo, IntoConnectionInfo, RedisConnectionInfo, TlsCertificates};

use crate::error::{Error, Result};

const DEFAULT_PORT: u16 = 6379;

/// One node's address.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Node {
    pub host: String,
    pub port: u16,
}

impl fmt::Display for Node {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.host.contains(':') {
            write!(f, "[{}]:{}", self.host, self.port)
        } else {
            write!(f, "{}:{}", self.host, self.port)
        }
    }
}

/// TLS settings (`ssl=true` or a `rediss://` URL).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TlsSettings {
    /// `ssl_cert_reqs=none` turns this off: any certificate is accepted (self-signed test
    /// servers). The default verifies the server's certificate chain.
    pub verify_certificate: bool,
    /// `ssl_check_hostname=false` turns this off: the chain is verified but the name in the
    /// certificate need not match the host connected to.
    pub verify_hostname: bool,
    /// `ssl_ca_certs=/path/ca.pem`: trust these CA certificates (PEM) instead of the system's.
    pub ca_certs: Option<PathBuf>,
    /// `ssl_certfile` / `ssl_keyfile`: a client certificate and key (PEM) for mutual TLS.
    pub client_cert: Option<PathBuf>,
    pub client_key: Option<PathBuf>,
}

impl Default for TlsSettings {
    fn default() -> Self {
        TlsSettings {
            verify_certificate: true,
            verify_hostname: true,
            ca_certs: None,
            client_cert: None,
            client_key: None,
        }
    }
}

/// A parsed connection string: the nodes and how to authenticate and encrypt.
#[derive(Clone, PartialEq, Eq)]
pub struct RedisTarget {
    pub nodes: Vec<Node>,
    pub username: Option<String>,
    pub password: Option<String>,
    pub db: i64,
    pub tls: Option<TlsSettings>,
    /// `socket_timeout` (or `socket_connect_timeout`) from the string, in seconds as redis-py
    /// takes it; `LARDER_REDIS_TIMEOUT_MS` wins over it.
    pub timeout: Option<Duration>,
}

// Hand-written so a password never reaches a log through `{:?}`.
impl fmt::Debug for RedisTarget {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RedisTarget")
            .field("nodes", &self.nodes)
            .field("username", &self.username)
            .field("password", &self.password.as_ref().map(|_| "<redacted>"))
            .field("db", &self.db)
            .field("tls", &self.tls)
            .field("timeout", &self.timeout)
            .finish()
    }
}

/// Options Feast users may carry over from redis-py that have no effect in Larder: connection
/// pooling, health checks and retries are Larder's own business (see `RedisOptions`).
const IGNORED_OPTIONS: &[&str] = &[
    "skip_full_coverage_check",
    "health_check_interval",
    "retry_on_timeout",
    "socket_keepalive",
    "max_connections",
    "client_name",
    "read_from_replicas",
];

const OPTIONS_HELP: &str = "password, username, db, ssl, ssl_cert_reqs, ssl_ca_certs, ssl_certfile, ssl_keyfile, \
                            ssl_check_hostname, socket_timeout, socket_connect_timeout";

impl RedisTarget {
    /// Parses a Feast `connection_string` or one or more `redis://` / `rediss://` URLs.
    ///
    /// Options (redis-py's names and meanings):
    /// `password=`, `username=`, `db=N`, `ssl=true|false`, `ssl_cert_reqs=none|optional|required`,
    /// `ssl_ca_certs=/path/ca.pem`, `ssl_certfile=/path`, `ssl_keyfile=/path`,
    /// `ssl_check_hostname=true|false`, `socket_timeout=seconds`, `socket_connect_timeout=seconds`.
    /// Accepted and ignored: `skip_full_coverage_check`, `health_check_interval`,
    /// `retry_on_timeout`, `socket_keepalive`, `max_connections`, `client_name`,
    /// `read_from_replicas`. Anything else is an error naming the part.
    pub fn parse(text: &str) -> Result<RedisTarget> {
        let mut target =
            RedisTarget { nodes: Vec::new(), username: None, password: None, db: 0, tls: None, timeout: None };
        let mut ssl: Option<bool> = None;
        let mut tls = TlsSettings::default();
        let mut tls_options_given = false;
        let mut url_schemes: Vec<bool> = Vec::new();
        if text.trim().is_empty() {
            return Err(bad(text, "it is empty (expected host:port, e.g. localhost:6379)"));
        }
        for raw in text.split(',') {
            let part = raw.trim();
            if part.is_empty() {
                continue;
            }
            let lower = part.to_ascii_lowercase();
            if lower.starts_with("redis://") || lower.starts_with("rediss://") {
                let url = parse_url(part)?;
                url_schemes.push(url.tls);
                target.nodes.push(url.node);
                if let Some(u) = url.username {
                    set_once(&mut target.username, u, "username", part)?;
                }
                if let Some(p) = url.password {
                    set_once(&mut target.password, p, "password", "a URL")?;
                }
                if let Some(db) = url.db {
                    target.db = db;
                }
                for (k, v) in url.options {
                    apply_option(&mut target, &mut ssl, &mut tls, &mut tls_options_given, &k, &v, part)?;
                }
            } else if lower.contains("://") {
                let scheme = &part[..part.find("://").unwrap_or(0)];
                return Err(bad_part(
                    part,
                    &format!("the URL scheme '{scheme}' is not supported (use redis:// or rediss://)"),
                ));
            } else if let Some((k, v)) = part.split_once('=') {
                // A value may contain '=' (a password); the key ends at the first one, as in Feast.
                apply_option(
                    &mut target,
                    &mut ssl,
                    &mut tls,
                    &mut tls_options_given,
                    k.trim(),
                    &unquote(v.trim()),
                    part,
                )?;
            } else {
                target.nodes.push(parse_host_port(part, part)?);
            }
        }
        if target.nodes.is_empty() {
            return Err(bad(text, "it names no host (expected host:port, e.g. localhost:6379)"));
        }
        if url_schemes.iter().any(|t| *t) && url_schemes.iter().any(|t| !*t) {
            return Err(bad(text, "it mixes redis:// and rediss:// nodes: use one or the other"));
        }
        let url_tls = url_schemes.first().copied();
        let tls_on = match (ssl, url_tls) {
            (Some(false), Some(true)) => {
                return Err(bad(text, "ssl=false contradicts the rediss:// URL"));
            }
            (Some(s), _) => s,
            (None, Some(t)) => t,
            (None, None) => false,
        };
        if tls_on {
            target.tls = Some(tls);
        } else if tls_options_given {
            tracing::warn!(
                "Redis connection_string has TLS options but TLS is off (add ssl=true or use rediss://); they are ignored"
            );
        }
        if target.db < 0 {
            return Err(bad(text, &format!("db={} is negative", target.db)));
        }
        Ok(target)
    }

    /// A description for logs and health output: nodes, database, TLS and whether credentials
    /// are set, never their values.
    pub fn describe(&self) -> String {
        let nodes: Vec<String> = self.nodes.iter().map(Node::to_string).collect();
        let mut notes = Vec::new();
        if self.db != 0 {
            notes.push(format!("db {}", self.db));
        }
        if let Some(tls) = &self.tls {
            notes.push(
                if !tls.verify_certificate {
                    "tls, certificate not verified"
                } else if !tls.verify_hostname {
                    "tls, hostname not verified"
                } else {
                    "tls"
                }
                .to_string(),
            );
        }
        if self.password.is_some() {
            notes.push(match &self.username {
                Some(u) => format!("auth as '{u}'"),
                None => "auth".to_string(),
            });
        }
        let nodes = nodes.join(",");
        if notes.is_empty() { nodes } else { format!("{nodes} ({})", notes.join(", ")) }
    }

    /// The redis crate's connection info for one node (credentials and database included;
    /// certificates are added by [`RedisTarget::client`]).
    pub(crate) fn connection_info(&self, node: &Node) -> Result<ConnectionInfo> {
        let addr = match &self.tls {
            None => ConnectionAddr::Tcp(node.host.clone(), node.port),
            Some(tls) => ConnectionAddr::TcpTls {
                host: node.host.clone(),
                port: node.port,
                insecure: !tls.verify_certificate,
                tls_params: None,
            },
        };
        let mut redis = RedisConnectionInfo::default().set_db(self.db);
        if let Some(u) = &self.username {
            redis = redis.set_username(u);
        }
        if let Some(p) = &self.password {
            redis = redis.set_password(p);
        }
        let info = addr.into_connection_info().map_err(|e| Error::Config(format!("Redis node {node}: {e}")))?;
        Ok(info.set_redis_settings(redis))
    }

    /// CA and client certificates read from the files the options name, if any.
    pub(crate) fn certificates(&self) -> Result<Option<TlsCertificates>> {
        let Some(tls) = &self.tls else {
            return Ok(None);
        };
        let read = |path: &PathBuf, option: &str| {
            std::fs::read(path)
                .map_err(|e| Error::Config(format!("Redis connection_string: {option}={}: {e}", path.display())))
        };
        let root_cert = match &tls.ca_certs {
            Some(p) if tls.verify_certificate => Some(read(p, "ssl_ca_certs")?),
            _ => None,
        };
        let client_tls = match (&tls.client_cert, &tls.client_key) {
            (Some(c), Some(k)) => Some(::redis::ClientTlsConfig {
                client_cert: read(c, "ssl_certfile")?,
                client_key: read(k, "ssl_keyfile")?,
            }),
            (None, None) => None,
            _ => {
                return Err(Error::Config(
                    "Redis connection_string: ssl_certfile and ssl_keyfile go together (mutual TLS needs both)".into(),
                ));
            }
        };
        if root_cert.is_none() && client_tls.is_none() {
            return Ok(None);
        }
        Ok(Some(TlsCertificates { client_tls, root_cert }))
    }

    /// A client for one node, with certificates and the hostname rule applied.
    pub(crate) fn client(&self, node: &Node) -> Result<::redis::Client> {
        let info = self.connection_info(node)?;
        let client = match self.certificates()? {
            Some(certs) => ::redis::Client::build_with_tls(info, certs).map_err(|e| tls_error(node, &e))?,
            None => ::redis::Client::open(info).map_err(|e| Error::Config(format!("Redis node {node}: {e}")))?,
        };
        match &self.tls {
            Some(tls) if tls.verify_certificate && !tls.verify_hostname => {
                let mut info = client.get_connection_info().clone();
                let mut addr = info.addr().clone();
                addr.set_danger_accept_invalid_hostnames(true);
                info = info.set_addr(addr);
                ::redis::Client::open(info).map_err(|e| Error::Config(format!("Redis node {node}: {e}")))
            }
            _ => Ok(client),
        }
    }
}

fn tls_error(node: &Node, e: &::redis::RedisError) -> Error {
    Error::Config(format!(
        "Redis node {node}: cannot use the TLS certificates (ssl_ca_certs, ssl_certfile, ssl_keyfile): {e}"
    ))
}

fn bad(text: &str, why: &str) -> Error {
    // The whole string may hold a password: show only its shape.
    let shown = redact(text);
    Error::Config(format!("Redis connection_string '{shown}': {why}"))
}

fn bad_part(part: &str, why: &str) -> Error {
    Error::Config(format!("Redis connection_string part '{}': {why}", redact(part)))
}

/// Replaces password values (option or URL userinfo) with `***`.
pub(crate) fn redact(text: &str) -> String {
    text.split(',')
        .map(|part| {
            let trimmed = part.trim_start();
            let lower = trimmed.to_ascii_lowercase();
            if lower.starts_with("password=") {
                let lead = &part[..part.len() - trimmed.len()];
                format!("{lead}password=***")
            } else if let Some(scheme_end) = part.find("://") {
                match part[scheme_end + 3..].rfind('@') {
                    Some(at) => {
                        let userinfo = &part[scheme_end + 3..scheme_end + 3 + at];
                        let user = userinfo.split_once(':').map(|(u, _)| u).unwrap_or(userinfo);
                        let masked = if userinfo.contains(':') { format!("{user}:***") } else { "***".to_string() };
                        format!("{}{masked}{}", &part[..scheme_end + 3], &part[scheme_end + 3 + at..])
                    }
                    None => part.to_string(),
                }
            } else {
                part.to_string()
            }
        })
        .collect::<Vec<_>>()
        .join(",")
}

fn set_once(slot: &mut Option<String>, value: String, what: &str, part: &str) -> Result<()> {
    match slot {
        Some(existing) if *existing != value => {
            Err(bad_part(part, &format!("{what} is given twice with different values")))
        }
        _ => {
            *slot = Some(value);
            Ok(())
        }
    }
}

/// redis-py receives option values JSON-decoded when they decode; a quoted string loses its quotes.
fn unquote(v: &str) -> String {
    if v.len() >= 2
        && v.starts_with('"')
        && v.ends_with('"')
        && let Ok(s) = serde_json::from_str::<String>(v)
    {
        return s;
    }
    v.to_string()
}

fn parse_bool(v: &str, key: &str, part: &str) -> Result<bool> {
    match v.to_ascii_lowercase().as_str() {
        "true" | "1" | "yes" => Ok(true),
        "false" | "0" | "no" => Ok(false),
        _ => Err(bad_part(part, &format!("{key} must be true or false, not '{v}'"))),
    }
}

fn apply_option(
    target: &mut RedisTarget,
    ssl: &mut Option<bool>,
    tls: &mut TlsSettings,
    tls_options_given: &mut bool,
    key: &str,
    value: &str,
    part: &str,
) -> Result<()> {
    let key_lower = key.to_ascii_lowercase();
    match key_lower.as_str() {
        "password" => set_once(&mut target.password, value.to_string(), "password", "password=***")?,
        "username" | "user" => set_once(&mut target.username, value.to_string(), "username", part)?,
        "db" => {
            target.db =
                value.parse::<i64>().ok().filter(|d| *d >= 0).ok_or_else(|| {
                    bad_part(part, &format!("db must be a database number (0, 1, ...), not '{value}'"))
                })?;
        }
        "ssl" => *ssl = Some(parse_bool(value, "ssl", part)?),
        "ssl_cert_reqs" => {
            *tls_options_given = true;
            tls.verify_certificate =
                match value.to_ascii_lowercase().trim_start_matches("ssl.").trim_start_matches("cert_") {
                    "none" => false,
                    // A client always checks what the server presents, so redis-py's "optional"
                    // behaves as "required" on this side.
                    "optional" | "required" => true,
                    _ => {
                        return Err(bad_part(
                            part,
                            &format!("ssl_cert_reqs must be none, optional or required, not '{value}'"),
                        ));
                    }
                };
        }
        "ssl_ca_certs" => {
            *tls_options_given = true;
            tls.ca_certs = Some(non_empty_path(value, key, part)?);
        }
        "ssl_certfile" => {
            *tls_options_given = true;
            tls.client_cert = Some(non_empty_path(value, key, part)?);
        }
        "ssl_keyfile" => {
            *tls_options_given = true;
            tls.client_key = Some(non_empty_path(value, key, part)?);
        }
        "ssl_check_hostname" => {
            *tls_options_given = true;
            tls.verify_hostname = parse_bool(value, key, part)?;
        }
        "socket_timeout" | "socket_connect_timeout" => {
            let secs: f64 =
                value.parse().ok().filter(|s: &f64| s.is_finite() && *s > 0.0 && *s < 86_400.0).ok_or_else(|| {
                    bad_part(part, &format!("{key} must be a positive number of seconds, not '{value}'"))
                })?;
            // socket_timeout (the round trip) wins over socket_connect_timeout.
            if key_lower == "socket_timeout" || target.timeout.is_none() {
                target.timeout = Some(Duration::from_secs_f64(secs));
            }
        }
        k if IGNORED_OPTIONS.contains(&k) => {
            tracing::debug!(option = k, "Redis connection_string option has no effect in Larder");
        }
        "" => return Err(bad_part(part, "an option needs a name before '='")),
        _ => {
            return Err(bad_part(part, &format!("unknown option '{key}' (Larder understands {OPTIONS_HELP})")));
        }
    }
    Ok(())
}

fn non_empty_path(value: &str, key: &str, part: &str) -> Result<PathBuf> {
    if value.is_empty() { Err(bad_part(part, &format!("{key} needs a file path"))) } else { Ok(PathBuf::from(value)) }
}

fn parse_host_port(text: &str, part: &str) -> Result<Node> {
    let (host, port) = if let Some(rest) = text.strip_prefix('[') {
        // [v6]:port
        let (h, after) = rest.split_once(']').ok_or_else(|| bad_part(part, "an IPv6 address needs a closing ']'"))?;
        match after {
            "" => (h, None),
            p if p.starts_with(':') => (h, Some(&p[1..])),
            _ => return Err(bad_part(part, "expected ':port' after the IPv6 address")),
        }
    } else {
        match text.rsplit_once(':') {
            Some((h, _)) if h.contains(':') => {
                return Err(bad_part(part, "an IPv6 address must be written in brackets: [addr]:port"));
            }
            Some((h, p)) => (h, Some(p)),
            None => (text, None),
        }
    };
    if host.is_empty() {
        return Err(bad_part(part, "the host is empty (expected host:port)"));
    }
    let ipv6 = text.starts_with('[');
    let host_ok = if ipv6 {
        host.chars().all(|c| c.is_ascii_hexdigit() || matches!(c, ':' | '.' | '%'))
    } else {
        host.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '.' | '_'))
    };
    if !host_ok {
        return Err(bad_part(part, &format!("'{host}' is not a host name or address")));
    }
    let port = match port {
        None => DEFAULT_PORT,
        Some(p) => p
            .parse::<u16>()
            .ok()
            .filter(|p| *p != 0)
            .ok_or_else(|| bad_part(part, &format!("'{p}' is not a port number (1-65535)")))?,
    };
    Ok(Node { host: host.to_string(), port })
}

struct ParsedUrl {
    tls: bool,
    node: Node,
    username: Option<String>,
    password: Option<String>,
    db: Option<i64>,
    options: Vec<(String, String)>,
}

/// `redis[s]://[user[:password]@]host[:port][/db][?k=v&...]`, percent-decoding the credentials.
fn parse_url(part: &str) -> Result<ParsedUrl> {
    let (scheme, rest) = part.split_once("://").expect("caller checked the scheme");
    let tls = scheme.eq_ignore_ascii_case("rediss");
    if rest.contains('#') {
        return Err(bad_part(
            part,
            "a URL fragment ('#...') is not supported: use ssl_cert_reqs=none for an unverified certificate",
        ));
    }
    let (rest, query) = match rest.split_once('?') {
        Some((r, q)) => (r, Some(q)),
        None => (rest, None),
    };
    let (authority, path) = match rest.split_once('/') {
        Some((a, p)) => (a, p),
        None => (rest, ""),
    };
    let (userinfo, hostport) = match authority.rsplit_once('@') {
        Some((u, h)) => (Some(u), h),
        None => (None, authority),
    };
    let (mut username, mut password) = (None, None);
    if let Some(u) = userinfo {
        let (user, pass) = match u.split_once(':') {
            Some((user, pass)) => (user, Some(pass)),
            None => (u, None),
        };
        let user = crate::percent::decode(user).ok_or_else(|| bad_part(part, "the user name has a bad %-escape"))?;
        if !user.is_empty() {
            username = Some(user);
        }
        if let Some(p) = pass {
            password =
                Some(crate::percent::decode(p).ok_or_else(|| bad_part(part, "the password has a bad %-escape"))?);
        } else if username.is_some() {
            // redis://secret@host is how several clients pass a bare password.
            password = username.take();
        }
    }
    let node = parse_host_port(hostport, part)?;
    let db = match path.trim_end_matches('/') {
        "" => None,
        d => Some(
            d.parse::<i64>()
                .ok()
                .filter(|d| *d >= 0)
                .ok_or_else(|| bad_part(part, &format!("the URL path must be a database number, not '/{d}'")))?,
        ),
    };
    let mut options = Vec::new();
    for pair in query.unwrap_or("").split('&').filter(|p| !p.is_empty()) {
        let (k, v) =
            pair.split_once('=').ok_or_else(|| bad_part(part, &format!("query option '{pair}' needs a value")))?;
        let v = crate::percent::decode(v)
            .ok_or_else(|| bad_part(part, &format!("query option '{k}' has a bad %-escape")))?;
        options.push((k.to_string(), v));
    }
    Ok(ParsedUrl { tls, node, username, password, db, options })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn node(h: &str, p: u16) -> Node {
        Node { host: h.into(), port: p }
    }

    #[test]
    fn feast_forms() {
        let t = RedisTarget::parse("localhost:6379").unwrap();
        assert_eq!(t.nodes, vec![node("localhost", 6379)]);
        assert_eq!((t.db, t.tls.is_none(), t.password.is_none()), (0, true, true));

        // The example from Feast's docs.
        let t = RedisTarget::parse("redis1:6379,redis2:6380,ssl=true,password=my_password").unwrap();
        assert_eq!(t.nodes, vec![node("redis1", 6379), node("redis2", 6380)]);
        assert_eq!(t.password.as_deref(), Some("my_password"));
        assert_eq!(t.tls, Some(TlsSettings::default()));

        let t = RedisTarget::parse(" 10.0.0.1:7000 , username=app, password=p=w,db=3, ssl=True ,ssl_cert_reqs=none")
            .unwrap();
        assert_eq!(t.nodes, vec![node("10.0.0.1", 7000)]);
        assert_eq!((t.username.as_deref(), t.password.as_deref(), t.db), (Some("app"), Some("p=w"), 3));
        assert!(!t.tls.unwrap().verify_certificate);

        let t =
            RedisTarget::parse("h:1,ssl=true,ssl_ca_certs=/etc/ca.pem,ssl_check_hostname=false,socket_timeout=0.25")
                .unwrap();
        let tls = t.tls.unwrap();
        assert_eq!(tls.ca_certs, Some(PathBuf::from("/etc/ca.pem")));
        assert!(tls.verify_certificate && !tls.verify_hostname);
        assert_eq!(t.timeout, Some(Duration::from_millis(250)));

        // Feast JSON-decodes values; a quoted string loses its quotes.
        let t = RedisTarget::parse(r#"h:1,password="a,b""#);
        assert!(t.is_err(), "a comma cannot be inside a part");
        let t = RedisTarget::parse(r#"h:1,password="secret""#).unwrap();
        assert_eq!(t.password.as_deref(), Some("secret"));

        // Host without a port, IPv6, and options redis-py has that Larder ignores.
        let t = RedisTarget::parse("cache.internal,[::1]:7001,skip_full_coverage_check=true").unwrap();
        assert_eq!(t.nodes, vec![node("cache.internal", 6379), node("::1", 7001)]);
        assert_eq!(t.nodes[1].to_string(), "[::1]:7001");
    }

    #[test]
    fn urls() {
        let t = RedisTarget::parse("redis://127.0.0.1:6390/2").unwrap();
        assert_eq!((t.nodes[0].clone(), t.db, t.tls.is_none()), (node("127.0.0.1", 6390), 2, true));

        let t = RedisTarget::parse("rediss://app:p%40ss%2Cword@cache.example.com:6380?ssl_ca_certs=/ca.pem").unwrap();
        assert_eq!((t.username.as_deref(), t.password.as_deref()), (Some("app"), Some("p@ss,word")));
        assert_eq!(t.nodes, vec![node("cache.example.com", 6380)]);
        assert_eq!(t.tls.unwrap().ca_certs, Some(PathBuf::from("/ca.pem")));

        let t = RedisTarget::parse("redis://:secret@h").unwrap();
        assert_eq!((t.username, t.password.as_deref(), t.nodes[0].port), (None, Some("secret"), 6379));

        // Cluster startup nodes as URLs, plus an option part.
        let t = RedisTarget::parse("rediss://a:1,rediss://b:2,ssl_cert_reqs=none").unwrap();
        assert_eq!(t.nodes.len(), 2);
        assert!(!t.tls.unwrap().verify_certificate);
    }

    #[test]
    fn errors_name_the_part() {
        let cases = [
            ("", "empty"),
            ("ssl=true", "no host"),
            ("h:notaport", "'notaport' is not a port"),
            ("h:70000", "'70000' is not a port"),
            ("h:1,db=x", "db must be a database number"),
            ("h:1,ssl=maybe", "ssl must be true or false"),
            ("h:1,ssl_cert_reqs=sometimes", "ssl_cert_reqs must be none"),
            ("h:1,decode_responses=true", "unknown option 'decode_responses'"),
            ("h:1,=x", "needs a name"),
            ("::1:6379", "in brackets"),
            ("http://h:1", "scheme 'http' is not supported"),
            ("redis://h:1/x", "must be a database number"),
            ("redis://h:1,rediss://g:2", "mixes redis:// and rediss://"),
            ("rediss://h:1,ssl=false", "contradicts"),
            ("rediss://h:1#insecure", "fragment"),
            ("h:1,socket_timeout=-1", "positive number of seconds"),
            ("h:1,password=a,password=b", "twice"),
        ];
        for (input, want) in cases {
            let err = RedisTarget::parse(input).unwrap_err().to_string();
            assert!(err.contains(want), "{input:?}: {err}");
            assert!(matches!(RedisTarget::parse(input), Err(Error::Config(_))));
        }
    }

    #[test]
    fn secrets_never_shown() {
        let err = RedisTarget::parse("h:1,password=hunter2,db=x").unwrap_err().to_string();
        assert!(!err.contains("hunter2"), "{err}");
        let err = RedisTarget::parse("redis://u:hunter2@h:1/x").unwrap_err().to_string();
        assert!(!err.contains("hunter2") && err.contains("u:***@h:1"), "{err}");
        let t = RedisTarget::parse("h:1,password=hunter2,username=bob").unwrap();
        assert!(!format!("{t:?}").contains("hunter2"));
        assert_eq!(t.describe(), "h:1 (auth as 'bob')");
        assert_eq!(redact("a:1, password=x,redis://:y@b"), "a:1, password=***,redis://:***@b");
    }

    #[test]
    fn describe_mentions_tls_mode() {
        assert_eq!(
            RedisTarget::parse("h:1,ssl=true,ssl_cert_reqs=none,db=2").unwrap().describe(),
            "h:1 (db 2, tls, certificate not verified)"
        );
        assert_eq!(RedisTarget::parse("rediss://h:1").unwrap().describe(), "h:1 (tls)");
    }

    #[test]
    fn certificate_files_are_read_with_clear_errors() {
        let t = RedisTarget::parse("h:1,ssl=true,ssl_ca_certs=/nonexistent/ca.pem").unwrap();
        let err = t.certificates().unwrap_err().to_string();
        assert!(err.contains("ssl_ca_certs=/nonexistent/ca.pem"), "{err}");
        let t = RedisTarget::parse("h:1,ssl=true,ssl_certfile=/x").unwrap();
        assert!(t.certificates().unwrap_err().to_string().contains("go together"));
        // Without verification the CA file is not needed.
        let t = RedisTarget::parse("h:1,ssl=true,ssl_cert_reqs=none,ssl_ca_certs=/nonexistent").unwrap();
        assert!(t.certificates().unwrap().is_none());
    }
}
