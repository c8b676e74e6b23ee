//! Client commands (`headcount members`, `info`, `join`, `leave`, `send`,
//! `keys`, `monitor`) that talk to a running agent's HTTP API (see
//! docs/http-api.md) with a small blocking HTTP/1.1 client over
//! `std::net::TcpStream`: one request per connection (`Connection: close`),
//! chunked answers decoded, and the `/v1/events` stream read line by line.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream, ToSocketAddrs};
use std::process::ExitCode;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use clap::{Args, Subcommand};
use regex::Regex;
use serde_json::{json, Value};

/// `println!` that ignores a closed stdout (e.g. piped into `head`)
/// instead of panicking.
macro_rules! say {
    ($($arg:tt)*) => {{
        let _ = writeln!(std::io::stdout(), $($arg)*);
    }};
}

/// The API address when neither `--http` nor `HEADCOUNT_HTTP_ADDR` is set.
pub const DEFAULT_ADDR: &str = "127.0.0.1:7947";

/// Shown at the end of every client command's `--help`.
pub const EXIT_CODES: &str = "\
EXIT CODES:
  0  done
  1  the agent refused or failed the operation (e.g. no address joined,
     unknown node, key not installed; for monitor: the stream lagged);
     the API's error message is printed on stderr
  2  usage error (bad flags or arguments)
  3  cannot reach the agent (nothing listening, timeout, connection lost,
     not an HTTP/JSON answer) or the token was refused (401)

The agent's address comes from --http, else HEADCOUNT_HTTP_ADDR, else
127.0.0.1:7947; the token from --http-token, else HEADCOUNT_HTTP_TOKEN.";

/// Where the agent's API is and how to authenticate.
#[derive(Args, Debug, Clone)]
pub struct Conn {
    /// The agent's HTTP API address (else env HEADCOUNT_HTTP_ADDR, else
    /// 127.0.0.1:7947).
    #[arg(long = "http", value_name = "ADDR", global = true)]
    http: Option<String>,
    /// Bearer token for the API (else env HEADCOUNT_HTTP_TOKEN).
    #[arg(long = "http-token", value_name = "TOKEN", global = true)]
    http_token: Option<String>,
}

impl Conn {
    fn addr(&self) -> String {
        self.http
            .clone()
            .or_else(|| std::env::var("HEADCOUNT_HTTP_ADDR").ok())
            .filter(|s| !s.is_empty())
            .unwrap_or_else(|| DEFAULT_ADDR.to_string())
    }

    fn token(&self) -> Option<String> {
        self.http_token
            .clone()
            .or_else(|| std::env::var("HEADCOUNT_HTTP_TOKEN").ok())
            .filter(|s| !s.is_empty())
    }
}

/// The client commands, flattened into the top-level command list.
#[derive(Subcommand, Debug)]
pub enum ClientCommand {
    /// List the cluster's members as the agent sees them (an aligned table,
    /// or the API's JSON with --json).
    #[command(after_help = EXIT_CODES)]
    Members(MembersArgs),
    /// Show the agent's own member entry, health and statistics.
    #[command(after_help = EXIT_CODES)]
    Info(InfoArgs),
    /// Ask the agent to join a cluster through one or more addresses (the
    /// forms `agent --join` takes). Exits 1 when none joined.
    #[command(after_help = EXIT_CODES)]
    Join(JoinArgs),
    /// Ask the agent to leave the cluster gracefully (it keeps running).
    #[command(after_help = EXIT_CODES)]
    Leave(LeaveArgs),
    /// Send a user message to one member through the agent.
    #[command(after_help = EXIT_CODES)]
    Send(SendArgs),
    /// Manage the agent's encryption keys (only fingerprints are shown).
    #[command(after_help = EXIT_CODES)]
    Keys(KeysArgs),
    /// Follow the agent's events, one line each, until the agent ends the
    /// stream (exit 0), the connection is lost (3), or this client falls
    /// too far behind (`lagged`, exit 1).
    #[command(after_help = EXIT_CODES)]
    Monitor(MonitorArgs),
}

#[derive(Args, Debug)]
pub struct MembersArgs {
    #[command(flatten)]
    conn: Conn,
    /// Also dead and left members not yet reaped.
    #[arg(long)]
    all: bool,
    /// Print the API's JSON (`{"members":[...]}`, filtered) instead of a table.
    #[arg(long)]
    json: bool,
    /// Only members whose state (alive, suspect, dead, left) matches this
    /// regular expression, anchored as in Serf (`alive|suspect`); implies
    /// --all.
    #[arg(long, value_name = "REGEX", value_parser = status_filter)]
    status: Option<Regex>,
    /// Only members whose name matches this regular expression (anchored:
    /// `web-.*`).
    #[arg(long, value_name = "REGEX", value_parser = anchored)]
    name: Option<Regex>,
    /// Only members with a Serf tag KEY whose value matches the regular
    /// expression (anchored; repeatable, all must match), as `serf members
    /// -tag`.
    #[arg(long, value_name = "KEY=REGEX", value_parser = tag_filter)]
    tag: Vec<(String, Regex)>,
}

/// A regular expression that must match the whole text, as Serf's filters.
fn anchored(s: &str) -> Result<Regex, String> {
    Regex::new(&format!("^(?:{s})$")).map_err(|e| format!("not a regular expression: {e}"))
}

/// `--status`: a regular expression that matches at least one state (one
/// that matches none is a typo, not a filter).
fn status_filter(s: &str) -> Result<Regex, String> {
    let re = anchored(s)?;
    if ["alive", "suspect", "dead", "left"]
        .iter()
        .any(|st| re.is_match(st))
    {
        Ok(re)
    } else {
        Err("matches none of the states alive, suspect, dead, left".into())
    }
}

/// `KEY=REGEX` for `--tag`.
fn tag_filter(s: &str) -> Result<(String, Regex), String> {
    let (k, v) = s
        .split_once('=')
        .ok_or_else(|| format!("{s:?} is not KEY=REGEX"))?;
    if k.is_empty() {
        return Err(format!("{s:?}: the tag name is empty"));
    }
    Ok((k.to_string(), anchored(v)?))
}

#[derive(Args, Debug)]
pub struct InfoArgs {
    #[command(flatten)]
    conn: Conn,
    /// Print `{"self":..., "health":..., "stats":...}`.
    #[arg(long)]
    json: bool,
}

#[derive(Args, Debug)]
pub struct JoinArgs {
    #[command(flatten)]
    conn: Conn,
    /// Addresses to join (IP:PORT, NAME/IP[:PORT] or a DNS name).
    #[arg(required = true, value_name = "ADDR")]
    addrs: Vec<String>,
}

#[derive(Args, Debug)]
pub struct LeaveArgs {
    #[command(flatten)]
    conn: Conn,
}

#[derive(Args, Debug)]
pub struct SendArgs {
    #[command(flatten)]
    conn: Conn,
    /// The member to send to.
    node: String,
    /// The message.
    text: String,
    /// One UDP packet instead of a reliable (TCP) send.
    #[arg(long)]
    best_effort: bool,
}

#[derive(Args, Debug)]
pub struct KeysArgs {
    #[command(flatten)]
    conn: Conn,
    #[command(subcommand)]
    op: KeysOp,
}

#[derive(Subcommand, Debug)]
enum KeysOp {
    /// List the installed keys' fingerprints, the primary first.
    List,
    /// Install a key (base64, 16/24/32 bytes).
    Install { key: String },
    /// Make an installed key the primary (encrypting) key.
    Use { key: String },
    /// Remove an installed key (not the primary).
    Remove { key: String },
}

#[derive(Args, Debug)]
pub struct MonitorArgs {
    #[command(flatten)]
    conn: Conn,
    /// One JSON object per event: `{"id":N,"event":NAME,"data":{...}}`.
    #[arg(long)]
    json: bool,
}

/// Why a command failed, with its exit code.
#[derive(Debug)]
struct Fail {
    code: u8,
    msg: String,
}

fn unreachable_fail(addr: &str, what: impl std::fmt::Display) -> Fail {
    Fail {
        code: 3,
        msg: format!("cannot reach the agent at {addr}: {what}"),
    }
}

/// The message of an API error body `{"error": TEXT, "field": NAME|null}`.
fn api_error(status: u16, v: &Value) -> String {
    let text = v["error"]
        .as_str()
        .map(str::to_string)
        .unwrap_or_else(|| v.to_string());
    match v["field"].as_str() {
        Some(f) => format!("{text} (field {f}; HTTP {status})"),
        None => format!("{text} (HTTP {status})"),
    }
}

/// Runs one client command.
pub fn run(cmd: ClientCommand) -> ExitCode {
    let r = match cmd {
        ClientCommand::Members(a) => members(a),
        ClientCommand::Info(a) => info(a),
        ClientCommand::Join(a) => join(a),
        ClientCommand::Leave(a) => leave(a),
        ClientCommand::Send(a) => send(a),
        ClientCommand::Keys(a) => keys(a),
        ClientCommand::Monitor(a) => monitor(a),
    };
    match r {
        Ok(()) => ExitCode::SUCCESS,
        Err(f) => {
            eprintln!("headcount: {}", f.msg);
            ExitCode::from(f.code)
        }
    }
}

// ---------------------------------------------------------------------------
// HTTP/1.1

/// Connects to the agent (5 s timeout per resolved address).
fn connect(addr: &str) -> Result<TcpStream, Fail> {
    let addrs: Vec<SocketAddr> = addr
        .to_socket_addrs()
        .map_err(|e| unreachable_fail(addr, e))?
        .collect();
    let mut last = None;
    for a in addrs {
        match TcpStream::connect_timeout(&a, Duration::from_secs(5)) {
            Ok(s) => return Ok(s),
            Err(e) => last = Some(e),
        }
    }
    Err(unreachable_fail(
        addr,
        last.map_or_else(|| "no address".to_string(), |e| e.to_string()),
    ))
}

/// Writes a request on `s`.
fn write_request(
    s: &mut TcpStream,
    conn: &Conn,
    method: &str,
    path: &str,
    body: Option<&Value>,
) -> Result<(), Fail> {
    let addr = conn.addr();
    let body = body.map(|b| b.to_string()).unwrap_or_default();
    let mut req = format!(
        "{method} {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\nUser-Agent: headcount/{}\r\nContent-Length: {}\r\n",
        env!("CARGO_PKG_VERSION"),
        body.len()
    );
    if !body.is_empty() {
        req.push_str("Content-Type: application/json\r\n");
    }
    if let Some(t) = conn.token() {
        req.push_str(&format!("Authorization: Bearer {t}\r\n"));
    }
    req.push_str("\r\n");
    req.push_str(&body);
    s.write_all(req.as_bytes())
        .map_err(|e| unreachable_fail(&addr, e))
}

/// Reads the status line and headers; returns the status and the
/// lower-cased header block.
fn read_head(r: &mut impl BufRead, addr: &str) -> Result<(u16, String), Fail> {
    let mut head = String::new();
    loop {
        let mut line = String::new();
        let n = r
            .read_line(&mut line)
            .map_err(|e| unreachable_fail(addr, e))?;
        if n == 0 {
            return Err(unreachable_fail(
                addr,
                "the connection closed before an answer",
            ));
        }
        if line == "\r\n" || line == "\n" {
            break;
        }
        head.push_str(&line.to_ascii_lowercase());
        if head.len() > 64 * 1024 {
            return Err(unreachable_fail(addr, "the answer's headers are too long"));
        }
    }
    let status = head
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .filter(|_| head.starts_with("http/1."))
        .ok_or_else(|| unreachable_fail(addr, "not an HTTP answer"))?;
    Ok((status, head))
}

/// A reader over a chunked body (`Transfer-Encoding: chunked`).
struct Chunked<R> {
    inner: R,
    /// Bytes left in the current chunk.
    left: usize,
    done: bool,
}

impl<R: BufRead> Read for Chunked<R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        use std::io::{Error, ErrorKind};
        if self.done || buf.is_empty() {
            return Ok(0);
        }
        if self.left == 0 {
            let mut line = String::new();
            if self.inner.read_line(&mut line)? == 0 {
                return Err(Error::new(ErrorKind::UnexpectedEof, "connection lost"));
            }
            let size = line.trim().split(';').next().unwrap_or("");
            self.left = usize::from_str_radix(size, 16)
                .map_err(|_| Error::new(ErrorKind::InvalidData, "bad chunk size"))?;
            if self.left == 0 {
                self.done = true;
                return Ok(0);
            }
        }
        let want = buf.len().min(self.left);
        let n = self.inner.read(&mut buf[..want])?;
        if n == 0 {
            return Err(Error::new(ErrorKind::UnexpectedEof, "connection lost"));
        }
        self.left -= n;
        if self.left == 0 {
            let mut crlf = String::new();
            self.inner.read_line(&mut crlf)?;
        }
        Ok(n)
    }
}

/// The body reader for an answer with the given headers.
fn body_reader<'a, R: BufRead + 'a>(r: R, head: &str) -> Box<dyn BufRead + 'a> {
    if head.contains("transfer-encoding: chunked") {
        Box::new(BufReader::new(Chunked {
            inner: r,
            left: 0,
            done: false,
        }))
    } else {
        Box::new(r)
    }
}

/// One request; answers the status and the JSON body. A 401 or a body
/// that is not JSON is exit code 3.
fn call(conn: &Conn, method: &str, path: &str, body: Option<&Value>) -> Result<(u16, Value), Fail> {
    let addr = conn.addr();
    let mut s = connect(&addr)?;
    // A join tries each address in turn; a leave waits up to 3 s.
    let _ = s.set_read_timeout(Some(Duration::from_secs(120)));
    write_request(&mut s, conn, method, path, body)?;
    let mut r = BufReader::new(s);
    let (status, head) = read_head(&mut r, &addr)?;
    let mut raw = Vec::new();
    body_reader(r, &head)
        .read_to_end(&mut raw)
        .map_err(|e| unreachable_fail(&addr, e))?;
    let v: Value = serde_json::from_slice(&raw).map_err(|_| {
        unreachable_fail(
            &addr,
            format!(
                "HTTP {status} with a body that is not JSON: {:?}",
                String::from_utf8_lossy(&raw[..raw.len().min(200)])
            ),
        )
    })?;
    if status == 401 {
        return Err(Fail {
            code: 3,
            msg: format!("the agent refused the token: {}", api_error(status, &v)),
        });
    }
    Ok((status, v))
}

/// A request that must succeed (2xx, or one of `also`); other answers
/// are exit code 1 with the API's error.
fn call_ok(
    conn: &Conn,
    method: &str,
    path: &str,
    body: Option<&Value>,
    also: &[u16],
) -> Result<(u16, Value), Fail> {
    let (status, v) = call(conn, method, path, body)?;
    if (200..300).contains(&status) || also.contains(&status) {
        Ok((status, v))
    } else {
        Err(Fail {
            code: 1,
            msg: api_error(status, &v),
        })
    }
}

fn print_json(v: &Value) {
    say!("{v}");
}

// ---------------------------------------------------------------------------
// Commands

/// A member's tags (the API decodes Serf tags from the metadata) or its
/// metadata text.
fn tags_or_meta(m: &Value) -> (Option<crate::tags::Tags>, String) {
    let tags: Option<crate::tags::Tags> = serde_json::from_value(m["tags"].clone()).ok();
    match tags {
        Some(t) => {
            let text = t
                .iter()
                .map(|(k, v)| format!("{k}={v}"))
                .collect::<Vec<_>>()
                .join(",");
            (Some(t), text)
        }
        None => (None, m["meta"].as_str().unwrap_or("").to_string()),
    }
}

/// Whether a JSON string matches the filter (no filter: yes).
fn matches(filter: &Option<Regex>, v: &Value) -> bool {
    filter
        .as_ref()
        .is_none_or(|re| re.is_match(v.as_str().unwrap_or_default()))
}

fn members(a: MembersArgs) -> Result<(), Fail> {
    let path = if a.all || a.status.is_some() {
        "/v1/members?all=true"
    } else {
        "/v1/members"
    };
    let (_, v) = call_ok(&a.conn, "GET", path, None, &[])?;
    let list: Vec<Value> = v["members"]
        .as_array()
        .cloned()
        .unwrap_or_default()
        .into_iter()
        .filter(|m| matches(&a.status, &m["state"]))
        .filter(|m| matches(&a.name, &m["name"]))
        .filter(|m| {
            if a.tag.is_empty() {
                return true;
            }
            let (tags, _) = tags_or_meta(m);
            let tags = tags.unwrap_or_default();
            a.tag
                .iter()
                .all(|(k, re)| tags.get(k).is_some_and(|v| re.is_match(v)))
        })
        .collect();
    if a.json {
        print_json(&json!({ "members": list }));
        return Ok(());
    }
    let rows: Vec<[String; 4]> = list
        .iter()
        .map(|m| {
            [
                m["name"].as_str().unwrap_or("").to_string(),
                m["addr"].as_str().unwrap_or("").to_string(),
                m["state"].as_str().unwrap_or("").to_string(),
                tags_or_meta(m).1,
            ]
        })
        .collect();
    let _ = std::io::stdout().write_all(table(&rows).as_bytes());
    Ok(())
}

/// Left-aligned columns separated by two spaces (the last one unpadded).
fn table(rows: &[[String; 4]]) -> String {
    let mut width = [0usize; 4];
    for r in rows {
        for (w, c) in width.iter_mut().zip(r) {
            *w = (*w).max(c.chars().count());
        }
    }
    let mut out = String::new();
    for r in rows {
        let mut line = String::new();
        for (i, c) in r.iter().enumerate() {
            if i == 3 {
                line.push_str(c);
            } else {
                line.push_str(&format!("{c:<w$}  ", w = width[i]));
            }
        }
        out.push_str(line.trim_end());
        out.push('\n');
    }
    out
}

fn info(a: InfoArgs) -> Result<(), Fail> {
    let (_, me) = call_ok(&a.conn, "GET", "/v1/self", None, &[])?;
    // 503 is the answer "alone", "left" or "shutdown", not a failure here.
    let (_, health) = call_ok(&a.conn, "GET", "/v1/health", None, &[503])?;
    let (_, stats) = call_ok(&a.conn, "GET", "/v1/stats", None, &[])?;
    if a.json {
        print_json(&json!({"self": me, "health": health, "stats": stats}));
        return Ok(());
    }
    let s = |v: &Value| match v {
        Value::String(s) => s.clone(),
        Value::Null => "-".to_string(),
        other => other.to_string(),
    };
    say!("node:");
    say!("  name = {}", s(&me["name"]));
    say!("  addr = {}", s(&me["addr"]));
    say!("  state = {}", s(&me["state"]));
    say!("  incarnation = {}", s(&me["incarnation"]));
    say!("  tags/meta = {}", tags_or_meta(&me).1);
    say!(
        "  protocol = {} (min {}, max {})",
        s(&me["protocol"]["cur"]),
        s(&me["protocol"]["min"]),
        s(&me["protocol"]["max"])
    );
    say!("health:");
    say!("  status = {}", s(&health["status"]));
    say!("  health_score = {}", s(&health["health_score"]));
    if let Some(m) = health["members"].as_object() {
        for (k, v) in m {
            say!("  members.{k} = {}", s(v));
        }
    }
    say!("stats:");
    let mut flat = Vec::new();
    flatten("", &stats, &mut flat);
    for (k, v) in flat {
        say!("  {k} = {v}");
    }
    Ok(())
}

/// `a.b.c = value` lines for nested objects.
fn flatten(prefix: &str, v: &Value, out: &mut Vec<(String, String)>) {
    match v {
        Value::Object(m) => {
            for (k, v) in m {
                let key = if prefix.is_empty() {
                    k.clone()
                } else {
                    format!("{prefix}.{k}")
                };
                flatten(&key, v, out);
            }
        }
        Value::String(s) => out.push((prefix.to_string(), s.clone())),
        other => out.push((prefix.to_string(), other.to_string())),
    }
}

fn join(a: JoinArgs) -> Result<(), Fail> {
    let (_, v) = call_ok(
        &a.conn,
        "POST",
        "/v1/join",
        Some(&json!({"addrs": a.addrs})),
        &[502],
    )?;
    let joined = v["joined"].as_u64().unwrap_or(0);
    say!("joined {joined} of {}", a.addrs.len());
    for e in v["errors"].as_array().into_iter().flatten() {
        say!(
            "  {}: {} ({})",
            e["addr"].as_str().unwrap_or("?"),
            e["error"].as_str().unwrap_or("?"),
            e["kind"].as_str().unwrap_or("?")
        );
    }
    if joined == 0 {
        return Err(Fail {
            code: 1,
            msg: "no address joined".into(),
        });
    }
    Ok(())
}

fn leave(a: LeaveArgs) -> Result<(), Fail> {
    call_ok(&a.conn, "POST", "/v1/leave", None, &[])?;
    say!("left the cluster (the agent keeps running)");
    Ok(())
}

fn send(a: SendArgs) -> Result<(), Fail> {
    let mode = if a.best_effort {
        "best-effort"
    } else {
        "reliable"
    };
    call_ok(
        &a.conn,
        "POST",
        "/v1/send",
        Some(&json!({"node": a.node, "message": a.text, "mode": mode})),
        &[],
    )?;
    say!("sent to {} ({mode})", a.node);
    Ok(())
}

fn keys(a: KeysArgs) -> Result<(), Fail> {
    let (method, path, key) = match &a.op {
        KeysOp::List => ("GET", "/v1/keys", None),
        KeysOp::Install { key } => ("POST", "/v1/keys", Some(key)),
        KeysOp::Use { key } => ("POST", "/v1/keys/use", Some(key)),
        KeysOp::Remove { key } => ("DELETE", "/v1/keys", Some(key)),
    };
    let body = key.map(|k| json!({ "key": k }));
    let (_, v) = call_ok(&a.conn, method, path, body.as_ref(), &[])?;
    let list = v["keys"].as_array().cloned().unwrap_or_default();
    if list.is_empty() {
        say!("no keys (encryption is off)");
    }
    for k in list {
        let fp = k["fingerprint"].as_str().unwrap_or("?");
        if k["primary"] == true {
            say!("{fp} (primary)");
        } else {
            say!("{fp}");
        }
    }
    Ok(())
}

/// `HH:MM:SS` (UTC) now.
fn clock() -> String {
    let secs = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
        % 86_400;
    format!("{:02}:{:02}:{:02}", secs / 3600, secs / 60 % 60, secs % 60)
}

/// One human line for an event.
fn describe(event: &str, data: &Value) -> String {
    let who = |m: &Value| {
        format!(
            "{} {}",
            m["name"].as_str().unwrap_or("?"),
            m["addr"].as_str().unwrap_or("?")
        )
    };
    match event {
        "join" | "leave" | "update" => {
            let mut line = who(data);
            // A leave is either graceful ("left") or a failure ("dead").
            if let Some(state) = data["state"].as_str().filter(|s| *s != "alive") {
                line.push_str(&format!(" ({state})"));
            }
            let meta = tags_or_meta(data).1;
            if !meta.is_empty() {
                line.push(' ');
                line.push_str(&meta);
            }
            line
        }
        "suspect" => format!(
            "{} (from {})",
            who(&data["member"]),
            data["from"].as_str().unwrap_or("?")
        ),
        "conflict" => format!(
            "{} vs {}",
            who(&data["existing"]),
            data["other"]["addr"].as_str().unwrap_or("?")
        ),
        "health" => format!("score {}", data["health_score"]),
        "user" => data["message"].as_str().unwrap_or("").to_string(),
        "resync" => data["reason"].as_str().unwrap_or("").to_string(),
        _ => data.to_string(),
    }
}

fn monitor(a: MonitorArgs) -> Result<(), Fail> {
    let addr = a.conn.addr();
    let mut s = connect(&addr)?;
    // The agent sends a keep-alive comment every 15 s: a minute of silence
    // means the connection is gone.
    let _ = s.set_read_timeout(Some(Duration::from_secs(60)));
    write_request(&mut s, &a.conn, "GET", "/v1/events", None)?;
    let mut r = BufReader::new(s);
    let (status, head) = read_head(&mut r, &addr)?;
    let mut body = body_reader(r, &head);
    if status != 200 {
        let mut raw = Vec::new();
        let _ = body.read_to_end(&mut raw);
        let v: Value = serde_json::from_slice(&raw).unwrap_or(Value::Null);
        return Err(Fail {
            code: if status == 401 { 3 } else { 1 },
            msg: api_error(status, &v),
        });
    }
    let (mut id, mut event, mut data) = (None::<String>, String::new(), String::new());
    let stdout = std::io::stdout();
    loop {
        let mut line = String::new();
        match body.read_line(&mut line) {
            Ok(0) => {
                eprintln!("headcount: the agent ended the event stream");
                return Ok(());
            }
            Ok(_) => {}
            Err(e) => {
                return Err(Fail {
                    code: 3,
                    msg: format!("lost the connection to the agent at {addr}: {e}"),
                })
            }
        }
        let line = line.trim_end_matches(['\r', '\n']);
        if line.is_empty() {
            if event.is_empty() && data.is_empty() {
                continue;
            }
            let v: Value = serde_json::from_str(&data).unwrap_or(Value::String(data.clone()));
            let name = if event.is_empty() { "message" } else { &event };
            let out = if a.json {
                json!({"id": id, "event": name, "data": v}).to_string()
            } else {
                format!("[{}] {name} {}", clock(), describe(name, &v))
            };
            {
                let mut o = stdout.lock();
                if writeln!(o, "{out}").and_then(|_| o.flush()).is_err() {
                    // Stdout closed (e.g. piped into `head`): done.
                    return Ok(());
                }
            }
            if name == "lagged" {
                return Err(Fail {
                    code: 1,
                    msg: format!(
                        "this client fell behind and missed {} events; the agent closed \
                         the stream (run `headcount members` to resynchronise, then monitor again)",
                        v["missed"]
                    ),
                });
            }
            (id, event, data) = (None, String::new(), String::new());
            continue;
        }
        if line.starts_with(':') {
            continue;
        }
        let (field, value) = line.split_once(':').unwrap_or((line, ""));
        let value = value.strip_prefix(' ').unwrap_or(value);
        match field {
            "id" => id = Some(value.to_string()),
            "event" => event = value.to_string(),
            "data" => {
                if !data.is_empty() {
                    data.push('\n');
                }
                data.push_str(value);
            }
            _ => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chunked_bodies_decode() {
        let raw = b"5\r\nhello\r\n7\r\n world\n\r\n0\r\n\r\n";
        let mut r = body_reader(&raw[..], "transfer-encoding: chunked");
        let mut line = String::new();
        r.read_line(&mut line).unwrap();
        assert_eq!(line, "hello world\n");
        line.clear();
        assert_eq!(r.read_line(&mut line).unwrap(), 0);
    }

    #[test]
    fn a_cut_chunked_body_is_an_error() {
        let raw = b"5\r\nhel";
        let mut out = Vec::new();
        assert!(body_reader(&raw[..], "transfer-encoding: chunked")
            .read_to_end(&mut out)
            .is_err());
    }

    #[test]
    fn table_aligns_columns() {
        let rows = [
            ["a".into(), "127.0.0.1:1".into(), "alive".into(), "".into()],
            [
                "long-name".into(),
                "1.2.3.4:5".into(),
                "dead".into(),
                "role=web".into(),
            ],
        ];
        assert_eq!(
            table(&rows),
            "a          127.0.0.1:1  alive\nlong-name  1.2.3.4:5    dead   role=web\n"
        );
    }

    #[test]
    fn events_read_as_one_line() {
        let m = json!({"name": "db-1", "addr": "127.0.0.2:7946", "state": "dead",
            "meta": "", "meta_base64": ""});
        assert_eq!(describe("leave", &m), "db-1 127.0.0.2:7946 (dead)");
        let s = json!({"member": m, "from": "web-1"});
        assert_eq!(describe("suspect", &s), "db-1 127.0.0.2:7946 (from web-1)");
        assert_eq!(describe("user", &json!({"message": "hi"})), "hi");
    }

    #[test]
    fn api_errors_name_the_field() {
        let v = json!({"error": "unknown node", "field": "node"});
        assert_eq!(api_error(404, &v), "unknown node (field node; HTTP 404)");
    }
}
