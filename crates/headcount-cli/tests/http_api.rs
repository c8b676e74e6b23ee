//! `headcount agent --http`: real agents as processes on 127.0.0.1,
//! driven by a tiny HTTP/1.1 client over `std::net::TcpStream` (no HTTP
//! client dependency).

mod common;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::process::Command;
use std::time::{Duration, Instant};

use common::{headcount_agent, headcount_bin, JsonAgent};
use serde_json::{json, Value};

const T: Duration = Duration::from_secs(20);

/// An answer: status, lower-case header block, body.
struct Answer {
    status: u16,
    head: String,
    body: Vec<u8>,
}

impl Answer {
    fn json(&self) -> Value {
        serde_json::from_slice(&self.body).unwrap_or_else(|e| {
            panic!(
                "not JSON ({e}): {} {}",
                self.status,
                String::from_utf8_lossy(&self.body)
            )
        })
    }
}

/// One request on a fresh connection (`Connection: close`).
fn http(addr: &str, method: &str, path: &str, headers: &[(&str, &str)], body: &[u8]) -> Answer {
    let mut s = TcpStream::connect(addr).expect("connect to the API");
    s.set_read_timeout(Some(T)).unwrap();
    let mut req = format!(
        "{method} {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\nContent-Length: {}\r\n",
        body.len()
    );
    for (k, v) in headers {
        req.push_str(&format!("{k}: {v}\r\n"));
    }
    req.push_str("\r\n");
    s.write_all(req.as_bytes()).unwrap();
    // The server may answer (413) without reading all of a large body.
    let _ = s.write_all(body);
    let mut raw = Vec::new();
    let mut buf = [0u8; 8192];
    loop {
        match s.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => raw.extend_from_slice(&buf[..n]),
            Err(_) if !raw.is_empty() => break,
            Err(e) => panic!("{method} {path}: {e}"),
        }
    }
    let split = raw
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .unwrap_or_else(|| panic!("no header end in {:?}", String::from_utf8_lossy(&raw)));
    let head = String::from_utf8_lossy(&raw[..split]).to_ascii_lowercase();
    let status = head
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .expect("status code");
    let mut body = raw[split + 4..].to_vec();
    if head.contains("transfer-encoding: chunked") {
        body = dechunk(&body);
    }
    Answer { status, head, body }
}

fn dechunk(mut b: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    while let Some(eol) = b.windows(2).position(|w| w == b"\r\n") {
        let size =
            usize::from_str_radix(std::str::from_utf8(&b[..eol]).unwrap().trim(), 16).unwrap();
        if size == 0 {
            break;
        }
        out.extend_from_slice(&b[eol + 2..eol + 2 + size]);
        b = &b[eol + 4 + size..];
    }
    out
}

fn get(addr: &str, path: &str) -> Answer {
    http(addr, "GET", path, &[], b"")
}

fn post(addr: &str, path: &str, body: &Value) -> Answer {
    http(addr, "POST", path, &[], body.to_string().as_bytes())
}

/// An agent with its API on an ephemeral loopback port.
fn agent(name: &str, extra: &[&str]) -> (JsonAgent, String, String) {
    common::agent_with_api(name, extra, T)
}

/// Polls `GET /v1/members` until `n` members are alive.
fn wait_alive(api: &str, n: usize) -> Value {
    let deadline = Instant::now() + T;
    loop {
        let v = get(api, "/v1/members").json();
        let alive = v["members"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|m| m["state"] == "alive")
            .count();
        if alive == n {
            return v;
        }
        assert!(Instant::now() < deadline, "never {n} alive: {v}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[test]
fn members_self_health_stats_and_send() {
    let (_a, a_gossip, a_api) = agent("a", &["--meta", "role=web"]);
    let health = get(&a_api, "/v1/health");
    assert_eq!(health.status, 503, "alone: {}", health.json());
    assert_eq!(health.json()["members"]["alive"], 1);

    let (mut b, _, b_api) = agent("b", &["--join", &a_gossip]);
    let members = wait_alive(&a_api, 2);
    let ma = members["members"]
        .as_array()
        .unwrap()
        .iter()
        .find(|m| m["name"] == "a")
        .unwrap()
        .clone();
    assert_eq!(ma["addr"], a_gossip.as_str());
    assert_eq!(ma["meta"], "role=web");
    assert_eq!(ma["meta_base64"], "cm9sZT13ZWI=");
    assert!(ma["incarnation"].is_u64() && ma["protocol"]["cur"].is_u64());

    let me = get(&b_api, "/v1/self").json();
    assert_eq!(me["name"], "b");
    assert_eq!(get(&a_api, "/v1/members?all=true").status, 200);
    let bad = get(&a_api, "/v1/members?all=maybe");
    assert_eq!(
        (bad.status, bad.json()["field"].clone()),
        (400, json!("all"))
    );

    let health = get(&a_api, "/v1/health");
    assert_eq!(health.status, 200);
    let h = health.json();
    assert_eq!(h["members"]["alive"], 2);
    assert!(h["health_score"].is_u64());
    let stats = get(&a_api, "/v1/stats").json();
    assert!(stats["core"]["packets_received"].is_u64(), "{stats}");

    // Sends, both modes, arrive as user events on b.
    let r = post(
        &a_api,
        "/v1/send",
        &json!({"node": "b", "message": "hello reliable", "mode": "reliable"}),
    );
    assert_eq!(r.status, 200, "{}", r.json());
    b.wait_for(T, "the reliable message", |v| v["msg"] == "hello reliable");
    let r = post(
        &a_api,
        "/v1/send",
        &json!({"node": "b", "message": "hello udp", "mode": "best-effort"}),
    );
    assert_eq!(r.status, 200, "{}", r.json());

    // Failure paths.
    let r = post(
        &a_api,
        "/v1/send",
        &json!({"node": "nobody", "message": "x"}),
    );
    assert_eq!(r.status, 404);
    assert_eq!(r.json()["field"], "node");
    let big = "x".repeat(60_000);
    let r = post(
        &a_api,
        "/v1/send",
        &json!({"node": "b", "message": big, "mode": "best-effort"}),
    );
    assert_eq!(r.status, 413, "{}", String::from_utf8_lossy(&r.body));
    assert!(r.json()["limit"].as_u64().unwrap() < 60_000);
    let r = post(&a_api, "/v1/send", &json!({"node": "b", "message": 5}));
    assert_eq!(
        (r.status, r.json()["field"].clone()),
        (400, json!("message"))
    );
    let r = post(
        &a_api,
        "/v1/send",
        &json!({"node": "b", "message": "x", "mode": "carrier pigeon"}),
    );
    assert_eq!((r.status, r.json()["field"].clone()), (400, json!("mode")));
    let r = http(&a_api, "POST", "/v1/send", &[], b"{\"node\": ");
    assert_eq!((r.status, r.json()["field"].clone()), (400, json!("body")));
    let r = http(&a_api, "POST", "/v1/send", &[], &vec![b'['; 200_000]);
    assert_eq!(r.status, 413);
    assert_eq!(r.json()["limit"], 65536);
    let r = get(&a_api, "/v2/nothing");
    assert_eq!(r.status, 404);
    assert!(r.json()["error"].is_string());
    let r = get(&a_api, "/v1/join");
    assert_eq!(r.status, 405);
    assert!(r.json()["error"].is_string());

    // Still serving, still a cluster.
    assert_eq!(get(&a_api, "/v1/health").status, 200);

    // Leave through the API: b's peers see it leave.
    let r = http(&b_api, "POST", "/v1/leave", &[], b"");
    assert_eq!(r.status, 200, "{}", String::from_utf8_lossy(&r.body));
    let h = get(&b_api, "/v1/health");
    assert_eq!((h.status, h.json()["status"].clone()), (503, json!("left")));
    let deadline = Instant::now() + T;
    while get(&a_api, "/v1/members").json()["members"]
        .as_array()
        .unwrap()
        .len()
        != 1
    {
        assert!(Instant::now() < deadline, "b never left");
        std::thread::sleep(Duration::from_millis(100));
    }
    let all = get(&a_api, "/v1/members?all=true").json();
    assert!(
        all["members"]
            .as_array()
            .unwrap()
            .iter()
            .any(|m| m["name"] == "b" && m["state"] == "left"),
        "{all}"
    );
}

#[test]
fn join_reports_each_address() {
    let (_a, _, a_api) = agent("ja", &[]);
    let (_b, b_gossip, _) = agent("jb", &[]);
    // A port nobody listens on (ours, just closed).
    let closed = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().to_string()
    };
    let r = post(
        &a_api,
        "/v1/join",
        &json!({"addrs": [closed, "nowhere:port"]}),
    );
    assert_eq!(r.status, 502);
    let v = r.json();
    assert_eq!(v["joined"], 0);
    let kinds: Vec<&str> = v["errors"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["kind"].as_str().unwrap())
        .collect();
    assert_eq!(kinds, ["connection_refused", "bad_address"], "{v}");

    let r = post(&a_api, "/v1/join", &json!({"addrs": [b_gossip, closed]}));
    assert_eq!(r.status, 200);
    let v = r.json();
    assert_eq!(v["joined"], 1, "{v}");
    assert_eq!(v["errors"][0]["addr"], closed.as_str());
    wait_alive(&a_api, 2);

    for body in [
        json!({}),
        json!({"addrs": "x"}),
        json!({"addrs": []}),
        json!({"addrs": [1]}),
    ] {
        let r = post(&a_api, "/v1/join", &body);
        assert_eq!(r.status, 400, "{body}");
        assert_eq!(r.json()["field"], "addrs");
    }
}

#[test]
fn bearer_token() {
    let (_a, _, api) = agent("ta", &["--http-token", "s3cret"]);
    let r = get(&api, "/v1/self");
    assert_eq!(r.status, 401);
    assert!(r.head.contains("www-authenticate: bearer"));
    assert_eq!(r.json()["field"], "Authorization");
    let r = http(
        &api,
        "GET",
        "/v1/self",
        &[("Authorization", "Bearer s3creT")],
        b"",
    );
    assert_eq!(r.status, 401);
    let r = http(
        &api,
        "GET",
        "/v1/self",
        &[("Authorization", "Bearer s3cret")],
        b"",
    );
    assert_eq!(r.status, 200);
    assert_eq!(r.json()["name"], "ta");
}

#[test]
fn non_loopback_api_needs_a_token() {
    // 192.0.2.1 (TEST-NET-1) is on no interface: a bind would fail with
    // "cannot bind"; the refusal must come first.
    let out = Command::new(headcount_bin())
        .args([
            "agent",
            "--name",
            "n",
            "--bind",
            "127.0.0.1:0",
            "--http",
            "192.0.2.1:7947",
        ])
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(err.contains("not a loopback address"), "{err}");
    assert!(err.contains("--http-token"), "{err}");
    assert!(!err.contains("cannot bind"), "{err}");
    assert!(out.stdout.is_empty());
}

/// A keys answer as (fingerprint, primary) pairs.
fn fingerprints(v: &Value) -> Vec<(String, bool)> {
    v["keys"]
        .as_array()
        .unwrap()
        .iter()
        .map(|k| {
            (
                k["fingerprint"].as_str().unwrap().to_string(),
                k["primary"].as_bool().unwrap(),
            )
        })
        .collect()
}

#[test]
fn keys() {
    const K1: &str = "T9jncgl9mbLus+baTTa7q7nPSUrXwbDi2dhbtqir37s=";
    const K2: &str = "HvY8ubRZMgafUOWvrOadwOckVa1wN3QWAo46FVKbVN8=";
    let (_a, _, api) = agent("ka", &["--encrypt", K1]);
    let r = get(&api, "/v1/keys");
    assert_eq!(r.status, 200);
    let text = String::from_utf8_lossy(&r.body).to_string();
    assert!(!text.contains(K1), "a key leaked: {text}");
    let one = fingerprints(&r.json());
    assert_eq!(one.len(), 1);
    assert!(one[0].1);

    let r = post(&api, "/v1/keys", &json!({"key": K2}));
    assert_eq!(r.status, 200);
    assert_eq!(fingerprints(&r.json()).len(), 2);
    let r = post(&api, "/v1/keys/use", &json!({"key": K2}));
    assert_eq!(r.status, 200);
    let two = fingerprints(&r.json());
    assert!(two[0].1 && two[0].0 != one[0].0, "{two:?}");

    // The primary cannot be removed; the old key can.
    let r = http(
        &api,
        "DELETE",
        "/v1/keys",
        &[],
        json!({"key": K2}).to_string().as_bytes(),
    );
    assert_eq!((r.status, r.json()["field"].clone()), (409, json!("key")));
    let r = http(
        &api,
        "DELETE",
        "/v1/keys",
        &[],
        json!({"key": K1}).to_string().as_bytes(),
    );
    assert_eq!(r.status, 200);
    assert_eq!(fingerprints(&r.json()).len(), 1);
    let r = http(
        &api,
        "DELETE",
        "/v1/keys",
        &[],
        json!({"key": K1}).to_string().as_bytes(),
    );
    assert_eq!(r.status, 404);

    for bad in [
        json!({"key": "not base64!"}),
        json!({"key": "AAAA"}),
        json!({}),
    ] {
        let r = post(&api, "/v1/keys", &bad);
        assert_eq!(
            (r.status, r.json()["field"].clone()),
            (400, json!("key")),
            "{bad}"
        );
    }
}

/// Opens `GET /v1/events` and returns the connection.
fn open_events(api: &str) -> TcpStream {
    open_events_after(api, None)
}

/// Opens `GET /v1/events`, resuming after `last_id` when given.
fn open_events_after(api: &str, last_id: Option<&str>) -> TcpStream {
    let mut s = TcpStream::connect(api).unwrap();
    let resume = last_id.map_or(String::new(), |id| format!("Last-Event-ID: {id}\r\n"));
    write!(s, "GET /v1/events HTTP/1.1\r\nHost: {api}\r\n{resume}\r\n").unwrap();
    s
}

/// The last `id:` in an event stream's text.
fn last_event_id(text: &str) -> String {
    text.lines()
        .rev()
        .find_map(|l| l.strip_prefix("id: "))
        .unwrap_or_else(|| panic!("no id in {text}"))
        .to_string()
}

/// Reads from `s` until the text read contains `needle`.
fn read_until(s: &mut TcpStream, needle: &str, timeout: Duration) -> String {
    s.set_read_timeout(Some(Duration::from_millis(200)))
        .unwrap();
    let deadline = Instant::now() + timeout;
    let mut seen = Vec::new();
    let mut buf = vec![0u8; 1 << 16];
    loop {
        let text = String::from_utf8_lossy(&seen);
        if text.contains(needle) {
            return text.into_owned();
        }
        assert!(
            Instant::now() < deadline,
            "no {needle:?} in the event stream; last bytes: {:?}",
            &text[text.len().saturating_sub(600)..]
        );
        match s.read(&mut buf) {
            Ok(0) => panic!("the event stream closed before {needle:?}: {text}"),
            Ok(n) => seen.extend_from_slice(&buf[..n]),
            Err(_) => {}
        }
    }
}

#[test]
fn events_stream_and_a_client_that_never_reads() {
    let (mut a, a_gossip, a_api) = agent("ea", &[]);
    let mut reader = open_events(&a_api);
    let text = read_until(&mut reader, "\"name\":\"ea\"", T);
    assert!(text.contains("text/event-stream"), "{text}");
    assert!(
        text.contains("id: ") && text.contains("event: join\n") && text.contains("retry: 1000\n"),
        "{text}"
    );

    // This client never reads: the node must not wait for it.
    let stalled = open_events(&a_api);

    let (mut b, _, _) = agent("eb", &["--join", &a_gossip]);
    read_until(&mut reader, "\"name\":\"eb\"", T);
    // Flood the stalled stream: first large messages to fill the socket
    // buffers, then more events than the node's event ring holds.
    let big = "m".repeat(60_000);
    for _ in 0..100 {
        b.command(&format!("send-reliable ea {big}"));
    }
    for i in 0..2000 {
        b.command(&format!("send-reliable ea small-{i}"));
    }
    // Repeated: under load a single reliable send may time out.
    for _ in 0..5 {
        b.command("send-reliable ea flood-done");
    }
    a.wait_for(Duration::from_secs(60), "the end of the flood", |v| {
        v["msg"] == "flood-done"
    });
    drop(reader);

    // Membership still converges, and the API still answers.
    let (mut c, _, _) = agent("ec", &["--join", &a_gossip]);
    wait_alive(&a_api, 3);
    b.wait_event(T, "join", "ec", "alive");
    assert_eq!(get(&a_api, "/v1/health").status, 200);

    // The stalled client, once it reads, learns it lagged.
    let mut stalled = stalled;
    read_until(&mut stalled, "event: lagged", Duration::from_secs(60));

    // A failure is streamed: suspicion, then the leave (dead).
    let mut watcher = open_events(&a_api);
    read_until(&mut watcher, "\"name\":\"ec\"", T);
    c.proc.kill();
    let text = read_until(&mut watcher, "event: suspect", T);
    assert!(text.contains("\"from\":"), "{text}");
    read_until(&mut watcher, "\"state\":\"dead\"", T);
}

#[test]
fn events_resume_after_last_event_id() {
    let (_a, a_gossip, a_api) = agent("ra", &[]);
    let mut first = open_events(&a_api);
    let text = read_until(&mut first, "\"name\":\"ra\"", T);
    let id = last_event_id(&text);
    drop(first);

    // While nobody listens: a join and a user message.
    let (mut b, _, _) = agent("rb", &["--join", &a_gossip]);
    wait_alive(&a_api, 2);
    b.command("send-reliable ra while-away");

    // Resuming replays exactly what came after the id: no snapshot.
    let mut resumed = open_events_after(&a_api, Some(&id));
    let text = read_until(&mut resumed, "while-away", T);
    assert!(text.contains("\"name\":\"rb\""), "{text}");
    assert!(
        !text.contains("\"name\":\"ra\""),
        "replayed the snapshot: {text}"
    );
    assert!(!text.contains("event: resync"), "{text}");
    let id2 = last_event_id(&text);
    assert_ne!(id, id2);

    // The newest id resumes with nothing to replay, then follows.
    let mut idle = open_events_after(&a_api, Some(&id2));
    b.command("send-reliable ra after-resume");
    let text = read_until(&mut idle, "after-resume", T);
    assert!(!text.contains("while-away"), "{text}");

    // An id from another agent run (or garbage): resync, then the members.
    for stale in ["00000000-3", "not-an-id"] {
        let mut s = open_events_after(&a_api, Some(stale));
        let text = read_until(&mut s, "\"name\":\"rb\"", T);
        assert!(text.contains("event: resync"), "{text}");
        assert!(text.contains("\"name\":\"ra\""), "{text}");
    }
}

#[test]
fn idle_connections_do_not_stall_membership() {
    let (mut a, a_gossip, a_api) = agent("ia", &[]);
    // More idle connections than the API serves at once (256): the rest
    // wait in the accept backlog.
    let idle: Vec<TcpStream> = (0..300)
        .map(|_| TcpStream::connect(&a_api).unwrap())
        .collect();
    let (_b, _, b_api) = agent("ib", &["--join", &a_gossip]);
    a.wait_event(T, "join", "ib", "alive");
    wait_alive(&b_api, 2);
    drop(idle);
    wait_alive(&a_api, 2);
}

/// Waits for the agent's own join, then a moment: it printed no API line.
fn assert_no_api(a: &mut JsonAgent, name: &str) {
    a.wait_event(T, "join", name, "alive");
    std::thread::sleep(Duration::from_millis(500));
    while let Ok(v) = a.lines.try_recv() {
        a.seen.push(v);
    }
    assert!(!a.seen.iter().any(|v| v["event"] == "http"), "{:?}", a.seen);
}

#[test]
fn http_off_and_default_port_taken() {
    let mut off = headcount_agent("off", "127.0.0.1:0", &["--http", "off"]);
    assert_no_api(&mut off, "off");

    // Whoever holds the default port (this test or another agent), an
    // agent without --http still runs, without the API.
    let _held = std::net::TcpListener::bind("127.0.0.1:7947");
    let mut d = headcount_agent("dflt", "127.0.0.1:0", &[]);
    assert_no_api(&mut d, "dflt");

    // An explicit address that cannot be bound is fatal.
    let out = Command::new(headcount_bin())
        .args([
            "agent",
            "--name",
            "x",
            "--bind",
            "127.0.0.1:0",
            "--http",
            "127.0.0.1:7947",
        ])
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(err.contains("--http 127.0.0.1:7947: cannot bind"), "{err}");

    let out = Command::new(headcount_bin())
        .args([
            "agent",
            "--name",
            "x",
            "--bind",
            "127.0.0.1:0",
            "--http",
            "nowhere",
        ])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("not IP:PORT nor `off`"));
}

#[test]
fn help_lists_the_endpoints() {
    let out = Command::new(headcount_bin())
        .args(["agent", "--help"])
        .output()
        .unwrap();
    let help = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success());
    for needle in [
        "SIGINT/SIGTERM",
        "--http-token",
        "--http-insecure",
        "GET    /v1/members",
        "GET    /v1/self",
        "GET    /v1/health",
        "GET    /v1/stats",
        "POST   /v1/join",
        "POST   /v1/leave",
        "POST   /v1/send",
        "GET    /v1/keys",
        "POST   /v1/keys/use",
        "DELETE /v1/keys",
        "GET    /v1/events",
    ] {
        assert!(help.contains(needle), "no {needle:?} in:\n{help}");
    }
}

/// A scratch directory for one test's files.
fn scratch(test: &str) -> std::path::PathBuf {
    let dir = std::env::temp_dir().join(format!("headcount-{test}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// The keys in a keyring file (Serf's format), primary first.
fn file_keys(path: &std::path::Path) -> Vec<String> {
    serde_json::from_slice(&std::fs::read(path).unwrap()).unwrap()
}

/// `GET /v1/keys` as (fingerprint, primary) pairs.
fn api_keys(api: &str) -> Vec<(String, bool)> {
    fingerprints(&get(api, "/v1/keys").json())
}

#[test]
fn keyring_file_follows_api_changes_and_sighup() {
    const K1: &str = "T9jncgl9mbLus+baTTa7q7nPSUrXwbDi2dhbtqir37s=";
    const K2: &str = "HvY8ubRZMgafUOWvrOadwOckVa1wN3QWAo46FVKbVN8=";
    const K3: &str = "5K9OtfP7efFrNKe5WCQvXvnaXJ5cWP0SvXiwe0kkjM4=";
    let dir = scratch("keyring-file");
    let file = dir.join("keyring.json");
    let file_arg = file.display().to_string();

    // Missing file + --encrypt: the file is created from the flag.
    let (mut a, _, api) = agent("kf", &["--encrypt", K1, "--keyring-file", &file_arg]);
    assert_eq!(file_keys(&file), vec![K1]);
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&file).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600, "the keyring file is private");
    }

    // Every change through the API is written, primary first.
    assert_eq!(post(&api, "/v1/keys", &json!({"key": K2})).status, 200);
    assert_eq!(file_keys(&file), vec![K1, K2]);
    assert_eq!(post(&api, "/v1/keys/use", &json!({"key": K2})).status, 200);
    assert_eq!(file_keys(&file), vec![K2, K1]);
    let body = json!({"key": K1}).to_string();
    assert_eq!(
        http(&api, "DELETE", "/v1/keys", &[], body.as_bytes()).status,
        200
    );
    assert_eq!(file_keys(&file), vec![K2]);
    let before = api_keys(&api);
    assert_eq!(before.len(), 1);

    // The operator edits the file and sends SIGHUP: K3 installed and
    // primary, K2 kept.
    std::fs::write(&file, format!("[\"{K3}\", \"{K2}\"]")).unwrap();
    let status = Command::new("kill")
        .args(["-HUP", &a.proc.child.id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
    let deadline = Instant::now() + T;
    let after = loop {
        // Installed, then made primary: wait for both, not the first.
        let keys = api_keys(&api);
        if keys.len() == 2 && keys[0].0 != before[0].0 {
            break keys;
        }
        assert!(
            Instant::now() < deadline,
            "SIGHUP did not apply the file: {keys:?}"
        );
        std::thread::sleep(Duration::from_millis(100));
    };
    assert_eq!(
        after[1],
        (before[0].0.clone(), false),
        "K2 stays, not primary"
    );
    assert!(
        after[0].1 && after[0].0 != before[0].0,
        "K3 is the primary: {after:?}"
    );

    // A bad edit changes nothing.
    std::fs::write(&file, "[\"not base64\"]").unwrap();
    Command::new("kill")
        .args(["-HUP", &a.proc.child.id().to_string()])
        .status()
        .unwrap();
    a.proc.kill();

    // An existing file and --encrypt: refused, one line says why.
    std::fs::write(&file, format!("[\"{K3}\"]")).unwrap();
    let out = Command::new(headcount_bin())
        .args([
            "agent",
            "--name",
            "x",
            "--bind",
            "127.0.0.1:0",
            "--http",
            "off",
        ])
        .args(["--encrypt", K1, "--keyring-file", &file_arg])
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(
        err.contains("--keyring-file") && err.contains("drop --encrypt"),
        "{err}"
    );

    // The file alone: its keys are used.
    let (_b, _, b_api) = agent("kg", &["--keyring-file", &file_arg]);
    assert_eq!(api_keys(&b_api).len(), 1);
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn token_from_a_file() {
    let dir = scratch("token-file");
    let token = dir.join("token");
    std::fs::write(&token, "  fr0m-file \nignored second line\n").unwrap();
    let token_arg = token.display().to_string();
    let (_a, _, api) = agent("tf", &["--http-token-file", &token_arg]);
    assert_eq!(get(&api, "/v1/self").status, 401);
    let auth = [("Authorization", "Bearer fr0m-file")];
    assert_eq!(http(&api, "GET", "/v1/self", &auth, b"").status, 200);

    for (contents, flags, why) in [
        ("\n", vec![], "holds no token"),
        ("t", vec!["--http-token", "t"], "give the token once"),
    ] {
        std::fs::write(&token, contents).unwrap();
        let out = Command::new(headcount_bin())
            .args(["agent", "--name", "x", "--bind", "127.0.0.1:0"])
            .args(["--http-token-file", &token_arg])
            .args(flags)
            .output()
            .unwrap();
        let err = String::from_utf8_lossy(&out.stderr);
        assert_ne!(out.status.code(), Some(0), "{err}");
        assert!(err.contains(why), "{err}");
    }
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn idle_and_half_sent_requests_are_cut_but_event_streams_stay() {
    let (_a, _, api) = agent("it", &["--http-idle-timeout", "1s"]);
    let closed_within = |mut s: TcpStream, t: Duration| {
        s.set_read_timeout(Some(t)).unwrap();
        let mut buf = [0u8; 256];
        // Closed: end of stream or a reset; a timeout means still open.
        match s.read(&mut buf) {
            Ok(0) => {}
            Ok(n) => panic!(
                "unexpected answer: {:?}",
                String::from_utf8_lossy(&buf[..n])
            ),
            Err(e) => assert!(
                !matches!(
                    e.kind(),
                    std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                ),
                "the idle connection was not closed within {t:?}"
            ),
        }
    };
    // Says nothing at all.
    closed_within(TcpStream::connect(&api).unwrap(), Duration::from_secs(10));
    // Stops in the middle of its request head.
    let mut half = TcpStream::connect(&api).unwrap();
    write!(half, "GET /v1/self HTTP/1.1\r\nHost: x\r\n").unwrap();
    closed_within(half, Duration::from_secs(10));

    // An event stream with nothing to say outlives several idle periods:
    // keep-alive comments keep it open, and an event still arrives.
    let mut events = open_events(&api);
    read_until(&mut events, "\"name\":\"it\"", T);
    std::thread::sleep(Duration::from_secs(3));
    let r = post(
        &api,
        "/v1/send",
        &json!({"node": "it", "message": "still-here"}),
    );
    assert_eq!(r.status, 200, "{}", String::from_utf8_lossy(&r.body));
    read_until(&mut events, "still-here", T);
}
