//! The agent's live web view (`GET /`): its endpoints' answers to bad
//! input, and the page itself in headless Chromium driven through
//! chromedriver (WebDriver, the `fantoccini` crate) against a live
//! cluster of agent processes on 127.0.0.1.
//!
//! The browser tests need Debian's `chromium` and `chromium-driver`
//! (`.ci/run` installs them); without them they print one line and
//! return. Screenshots go to `target/screenshots/`.

mod common;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::{agent_with_api, headcount_agent, JsonAgent, Proc};
use serde_json::{json, Value};

const T: Duration = Duration::from_secs(30);

/// One HTTP/1.1 request on a fresh connection: status, lower-case head,
/// body (not chunked: these answers have a length).
fn http(addr: &str, method: &str, target: &str, headers: &[(&str, &str)]) -> (u16, String, String) {
    http_body(addr, method, target, headers, "")
}

fn http_body(
    addr: &str,
    method: &str,
    target: &str,
    headers: &[(&str, &str)],
    body: &str,
) -> (u16, String, String) {
    let mut s = TcpStream::connect(addr).expect("connect to the API");
    s.set_read_timeout(Some(T)).unwrap();
    let mut req = format!("{method} {target} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n");
    for (k, v) in headers {
        req.push_str(&format!("{k}: {v}\r\n"));
    }
    req.push_str(&format!("Content-Length: {}\r\n\r\n{body}", body.len()));
    s.write_all(req.as_bytes()).unwrap();
    let mut raw = Vec::new();
    let _ = s.read_to_end(&mut raw);
    let raw = String::from_utf8_lossy(&raw).into_owned();
    let (head, body) = raw.split_once("\r\n\r\n").expect("a header block");
    let status = head
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .expect("a status code");
    (status, head.to_ascii_lowercase(), body.to_string())
}

fn error_field(body: &str) -> Value {
    let v: Value = serde_json::from_str(body).unwrap_or_else(|e| panic!("not JSON ({e}): {body}"));
    assert!(v["error"].is_string(), "{v}");
    v["field"].clone()
}

#[test]
fn view_endpoints_answer_bad_input_with_4xx() {
    let (_a, _gossip, api) = agent_with_api("solo", &[], T);

    let (st, head, body) = http(&api, "GET", "/", &[]);
    assert_eq!(st, 200);
    assert!(head.contains("content-type: text/html"), "{head}");
    assert!(head.contains("content-security-policy"), "{head}");
    assert!(body.contains("/assets/app.js"));
    for (asset, kind) in [
        ("app.js", "text/javascript"),
        ("app.css", "text/css"),
        ("icon.svg", "image/svg+xml"),
    ] {
        let (st, head, body) = http(&api, "GET", &format!("/assets/{asset}"), &[]);
        assert_eq!(st, 200, "{asset}");
        assert!(head.contains(kind), "{asset}: {head}");
        assert!(!body.is_empty());
    }
    // The page's own parameters are checked.
    let (st, _, _) = http(&api, "GET", "/?state=alive,dead&q=node", &[]);
    assert_eq!(st, 200);
    let (st, _, body) = http(&api, "GET", "/?state=zombie", &[]);
    assert_eq!((st, error_field(&body)), (400, json!("state")));
    let (st, _, body) = http(&api, "GET", "/?colour=red", &[]);
    assert_eq!((st, error_field(&body)), (400, json!("query")));
    let long_q = "n".repeat(300);
    let (st, _, body) = http(&api, "GET", &format!("/?q={long_q}"), &[]);
    assert_eq!((st, error_field(&body)), (400, json!("q")));
    // Huge query strings: 414, on every view endpoint.
    let huge = "x".repeat(20_000);
    for path in ["/", "/v1/history", "/assets/app.js"] {
        let (st, _, body) = http(&api, "GET", &format!("{path}?q={huge}"), &[]);
        assert_eq!((st, error_field(&body)), (414, json!("query")), "{path}");
    }
    // Unknown assets and paths.
    for path in [
        "/assets/nope.js",
        "/assets/..%2Fsecret",
        "/assets/",
        "/index.html",
    ] {
        let (st, _, body) = http(&api, "GET", path, &[]);
        assert_eq!(st, 404, "{path}: {body}");
        error_field(&body);
    }
    // History: the whole ring, then only what is newer than `since`.
    let (st, _, body) = http(&api, "GET", "/v1/history", &[]);
    assert_eq!(st, 200);
    let h: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(h["node"], "solo");
    assert!(h["events"]
        .as_array()
        .unwrap()
        .iter()
        .any(|e| e["kind"] == "join" && e["name"] == "solo"));
    assert!(h["last_change"]["solo"].is_u64(), "{h}");
    let seq = h["seq"].as_u64().unwrap();
    let (st, _, body) = http(&api, "GET", &format!("/v1/history?since={seq}"), &[]);
    assert_eq!(st, 200);
    let newer: Value = serde_json::from_str(&body).unwrap();
    assert!(newer["events"].as_array().unwrap().is_empty(), "{newer}");
    assert!(newer.get("last_change").is_none());
    for q in [
        "since=-1",
        "since=abc",
        "since=99999999999999999999999",
        "until=3",
    ] {
        let (st, _, body) = http(&api, "GET", &format!("/v1/history?{q}"), &[]);
        assert_eq!(st, 400, "{q}: {body}");
        error_field(&body);
    }
    // The sign-in form on an agent without a token just goes to the page.
    let (st, head, _) = http(&api, "POST", "/login", &[]);
    assert_eq!(st, 303);
    assert!(head.contains("location: /"), "{head}");
}

#[test]
fn a_token_protects_the_view_and_its_cookie_only_reads() {
    let token = "s3cret token; with=odd chars";
    let (_a, _gossip, api) = agent_with_api("guarded", &["--http-token", token], T);
    // Without the token: the sign-in page (401), the API's JSON 401.
    let (st, head, body) = http(&api, "GET", "/", &[]);
    assert_eq!(st, 401);
    assert!(head.contains("text/html"), "{head}");
    assert!(body.contains("name=\"token\""), "{body}");
    assert!(!body.contains("That token is not"));
    let (st, _, body) = http(&api, "GET", "/v1/history", &[]);
    assert_eq!((st, error_field(&body)), (401, json!("Authorization")));
    // Assets are public (the sign-in page uses the style sheet).
    assert_eq!(http(&api, "GET", "/assets/app.css", &[]).0, 200);
    // A wrong token in the query: the page says so.
    let (st, _, body) = http(&api, "GET", "/?token=nope", &[]);
    assert_eq!(st, 401);
    assert!(body.contains("That token is not"));
    // The right one: a cookie, and a redirect that keeps the filters.
    let enc = "s3cret%20token%3B%20with%3Dodd%20chars";
    let (st, head, _) = http(&api, "GET", &format!("/?state=dead&token={enc}"), &[]);
    assert_eq!(st, 303, "{head}");
    assert!(head.contains("location: /?state=dead\r\n"), "{head}");
    let cookie = head
        .lines()
        .find_map(|l| l.strip_prefix("set-cookie: "))
        .expect("a cookie")
        .to_string();
    assert!(
        cookie.contains("httponly") && cookie.contains("samesite=strict"),
        "{cookie}"
    );
    // Header names were lower-cased with the head; the value is base64url
    // (case matters), so take it from the original answer again.
    let port = api.rsplit(':').next().unwrap();
    let name = format!("headcount_token_{port}");
    let value = {
        let mut s = TcpStream::connect(&api).unwrap();
        write!(
            s,
            "GET /?token={enc} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
        )
        .unwrap();
        let mut raw = String::new();
        let _ = s.read_to_string(&mut raw);
        raw.lines()
            .find_map(|l| {
                l.strip_prefix(&format!("set-cookie: {name}="))
                    .or_else(|| l.strip_prefix(&format!("Set-Cookie: {name}=")))
            })
            .and_then(|v| v.split(';').next())
            .expect("the cookie's value")
            .to_string()
    };
    let jar = format!("other=1; {name}={value}");
    let with_cookie = [("Cookie", jar.as_str())];
    assert_eq!(http(&api, "GET", "/", &with_cookie).0, 200);
    assert_eq!(
        http(&api, "GET", "/v1/members?all=true", &with_cookie).0,
        200
    );
    assert_eq!(http(&api, "GET", "/v1/history", &with_cookie).0, 200);
    // The cookie does not authorize commands (no cross-site forms).
    let (st, _, body) = http(&api, "POST", "/v1/leave", &with_cookie);
    assert_eq!((st, error_field(&body)), (401, json!("Authorization")));
    // Another port's cookie is not this one's.
    let wrong = format!("headcount_token_1={value}");
    assert_eq!(
        http(&api, "GET", "/v1/self", &[("Cookie", wrong.as_str())]).0,
        401
    );
    // The bearer token still works everywhere.
    let bearer = format!("Bearer {token}");
    assert_eq!(
        http(
            &api,
            "GET",
            "/v1/history",
            &[("Authorization", bearer.as_str())]
        )
        .0,
        200
    );
}

// ---- the browser --------------------------------------------------------

fn on_path(tool: &str) -> Option<PathBuf> {
    std::env::var_os("PATH").and_then(|paths| {
        std::env::split_paths(&paths)
            .map(|p| p.join(tool))
            .find(|p| p.is_file())
    })
}

/// chromium and chromedriver, or `None` after saying why the test skips.
fn browser_tools() -> Option<(PathBuf, PathBuf)> {
    let chromium = on_path("chromium").or_else(|| on_path("chromium-browser"));
    let driver = on_path("chromedriver");
    match (chromium, driver) {
        (Some(c), Some(d)) => Some((c, d)),
        _ => {
            eprintln!(
                "skipped: the browser test needs chromium and chromedriver \
                 (apt-get install chromium chromium-driver)"
            );
            None
        }
    }
}

/// A chromedriver process on a free loopback port.
struct Driver {
    _proc: Proc,
    url: String,
    chromium: PathBuf,
    profiles: Vec<PathBuf>,
}

impl Driver {
    fn start(chromium: PathBuf, driver: PathBuf) -> Driver {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let child = Command::new(driver)
            .arg(format!("--port={port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start chromedriver");
        let proc = Proc {
            child,
            name: "chromedriver".into(),
        };
        let deadline = Instant::now() + T;
        while TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(
                Instant::now() < deadline,
                "chromedriver did not listen on {port}"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
        Driver {
            _proc: proc,
            url: format!("http://127.0.0.1:{port}"),
            chromium,
            profiles: Vec::new(),
        }
    }

    /// A new headless browser session with a fresh profile.
    async fn session(&mut self, width: u32, height: u32) -> fantoccini::Client {
        // One profile per session, also across tests running at once.
        static NEXT: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
        let n = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let profile =
            std::env::temp_dir().join(format!("headcount-chromium-{}-{n}", std::process::id()));
        let _ = std::fs::remove_dir_all(&profile);
        self.profiles.push(profile.clone());
        let caps = json!({
            "goog:chromeOptions": {
                "binary": self.chromium,
                "args": [
                    "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic",
                    "--no-first-run", "--disable-background-networking",
                    "--disable-component-update", "--disable-sync",
                    "--disable-dev-shm-usage",
                    format!("--user-data-dir={}", profile.display()),
                    format!("--window-size={width},{height}"),
                ],
            }
        });
        let caps = match caps {
            Value::Object(m) => m,
            _ => unreachable!(),
        };
        fantoccini::ClientBuilder::new(hyper_util::client::legacy::connect::HttpConnector::new())
            .capabilities(caps)
            .connect(&self.url)
            .await
            .expect("a chromium session through chromedriver")
    }
}

impl Drop for Driver {
    fn drop(&mut self) {
        for p in &self.profiles {
            let _ = std::fs::remove_dir_all(p);
        }
    }
}

/// Evaluates `script` (a function body) until `ok` holds for its value.
async fn poll_until(
    b: &fantoccini::Client,
    what: &str,
    script: &str,
    timeout: Duration,
    ok: impl Fn(&Value) -> bool,
) -> Value {
    let deadline = Instant::now() + timeout;
    let mut last = Value::Null;
    while Instant::now() < deadline {
        last = b.execute(script, vec![]).await.expect("execute a script");
        if ok(&last) {
            return last;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("timed out after {timeout:?} waiting for {what}; last value: {last}");
}

fn screenshots_dir() -> PathBuf {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../target/screenshots");
    std::fs::create_dir_all(&dir).expect("create target/screenshots");
    dir
}

async fn save_screenshot(b: &fantoccini::Client, name: &str) -> PathBuf {
    let png = b.screenshot().await.expect("a screenshot");
    assert!(png.starts_with(b"\x89PNG"), "not a PNG");
    let path = screenshots_dir().join(name);
    std::fs::write(&path, png).expect("write the screenshot");
    eprintln!("screenshot: {}", path.display());
    path
}

const ROW_STATES: &str = "return Object.fromEntries([...document.querySelectorAll('#rows tr')]\
    .map(r => [r.dataset.name, r.dataset.state]));";

#[test]
fn browser_sees_a_node_die() {
    let Some((chromium, driver)) = browser_tools() else {
        return;
    };
    // Five agents; node-1 serves the view.
    let (mut n1, gossip, api) =
        agent_with_api("node-1", &["--tag", "role=web", "--tag", "dc=lab"], T);
    // node-2 has an API too, to send node-1 a user message.
    let (n2, _, api2) = agent_with_api("node-2", &["--join", &gossip, "--tag", "role=db"], T);
    let mut others: Vec<JsonAgent> = (3..=5)
        .map(|i| {
            let role = if i % 2 == 0 { "role=db" } else { "role=cache" };
            headcount_agent(
                &format!("node-{i}"),
                "127.0.0.1:0",
                &[
                    "--profile",
                    "local",
                    "--http",
                    "off",
                    "--join",
                    &gossip,
                    "--tag",
                    role,
                ],
            )
        })
        .collect();
    for i in 2..=5 {
        n1.wait_event(T, "join", &format!("node-{i}"), "alive");
    }

    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let mut driver = Driver::start(chromium, driver);
    let b = rt.block_on(driver.session(1280, 860));
    rt.block_on(async {
        b.goto(&format!("http://{api}/")).await.unwrap();
        poll_until(&b, "five alive rows", ROW_STATES, T, |v| {
            (1..=5).all(|i| v[format!("node-{i}")] == "alive")
        })
        .await;
        // Every state the victim's row takes, as the page shows it.
        b.execute(
            "window.__seen = []; \
             new MutationObserver((records) => { for (const r of records) { \
                 const t = r.target; \
                 if (t.dataset && t.dataset.name === 'node-3') window.__seen.push(t.dataset.state); } }) \
               .observe(document.getElementById('rows'), \
                        {subtree: true, attributes: true, attributeFilter: ['data-state']});",
            vec![],
        )
        .await
        .unwrap();
    });

    // Kill node-3 without letting it leave.
    others[0].proc.kill();

    rt.block_on(async {
        let seen = poll_until(
            &b,
            "node-3's row to turn suspect, then dead",
            "return window.__seen;",
            T,
            |v| v.as_array().is_some_and(|a| a.iter().any(|s| s == "dead")),
        )
        .await;
        let seen: Vec<&str> = seen.as_array().unwrap().iter().filter_map(Value::as_str).collect();
        let suspect = seen.iter().position(|s| *s == "suspect");
        let dead = seen.iter().position(|s| *s == "dead");
        assert!(
            matches!((suspect, dead), (Some(s), Some(d)) if s < d),
            "node-3's row went through {seen:?}"
        );
        // The others stay alive; the counts and the timeline agree.
        let rows = b.execute(ROW_STATES, vec![]).await.unwrap();
        for i in [1, 2, 4, 5] {
            assert_eq!(rows[format!("node-{i}")], "alive", "{rows}");
        }
        poll_until(
            &b,
            "the counts to say 4 alive and 1 dead",
            "return [document.getElementById('n-alive').textContent, document.getElementById('n-dead').textContent];",
            T,
            |v| *v == json!(["4", "1"]),
        )
        .await;
        let timeline = b
            .execute(
                "return [...document.querySelectorAll('#events li')].map(li => li.className + ' ' + li.textContent);",
                vec![],
            )
            .await
            .unwrap();
        let lines: Vec<&str> = timeline.as_array().unwrap().iter().filter_map(Value::as_str).collect();
        assert!(lines.iter().any(|l| l.starts_with("ev-suspect") && l.contains("node-3")), "{lines:?}");
        assert!(lines.iter().any(|l| l.starts_with("ev-dead") && l.contains("node-3 was declared dead")), "{lines:?}");
        // The health chart has data (one sample a second since node-1 started).
        poll_until(
            &b,
            "the health chart to have points",
            "const s = document.getElementById('health-chart'); \
             return [Number(s.dataset.points || 0), s.querySelectorAll('path').length];",
            T,
            |v| v[0].as_u64().unwrap_or(0) >= 2 && v[1].as_u64().unwrap_or(0) >= 1,
        )
        .await;
        // The name filter hides rows without rebuilding them.
        b.execute(
            "const f = document.getElementById('filter'); f.value = 'node-3'; \
             f.dispatchEvent(new Event('input'));",
            vec![],
        )
        .await
        .unwrap();
        poll_until(
            &b,
            "the filter to leave one row",
            "return [...document.querySelectorAll('#rows tr')].filter(r => !r.hidden).map(r => r.dataset.name);",
            T,
            |v| *v == json!(["node-3"]),
        )
        .await;
        assert!(b.current_url().await.unwrap().as_str().ends_with("/?q=node-3"));
        b.execute(
            "const f = document.getElementById('filter'); f.value = ''; \
             f.dispatchEvent(new Event('input'));",
            vec![],
        )
        .await
        .unwrap();
        poll_until(
            &b,
            "all rows shown again",
            "return [...document.querySelectorAll('#rows tr')].filter(r => !r.hidden).length;",
            T,
            |v| *v == json!(5),
        )
        .await;
        // A user message shows in the timeline.
        let (st, _, body) = http_body(
            &api2,
            "POST",
            "/v1/send",
            &[("Content-Type", "application/json")],
            r#"{"node": "node-1", "message": "deploy 42 finished"}"#,
        );
        assert_eq!(st, 200, "{body}");
        poll_until(
            &b,
            "the user message in the timeline",
            "return [...document.querySelectorAll('#events li.ev-user')].map(li => li.textContent);",
            T,
            |v| v.as_array().is_some_and(|a| a.iter().any(|t| t.as_str().is_some_and(|t| t.contains("deploy 42 finished")))),
        )
        .await;
        save_screenshot(&b, "web-view-desktop.png").await;
        // A phone's width: one column, rows as cards.
        b.set_window_size(390, 1400).await.unwrap();
        let width = poll_until(&b, "a narrow viewport", "return window.innerWidth;", T, |v| {
            v.as_u64().unwrap_or(9999) <= 420
        })
        .await;
        let head_shown = b
            .execute("return getComputedStyle(document.querySelector('.table thead')).display;", vec![])
            .await
            .unwrap();
        assert_eq!(head_shown, "none", "the narrow layout hides the table head (width {width})");
        save_screenshot(&b, "web-view-phone.png").await;
        b.close().await.unwrap();
    });
    drop(others);
    drop(n2);
}

#[test]
fn browser_signs_in_with_the_token() {
    let Some((chromium, driver)) = browser_tools() else {
        return;
    };
    let token = "let-me-in";
    let (_a, _gossip, api) = agent_with_api("guarded", &["--http-token", token], T);
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let mut driver = Driver::start(chromium, driver);
    rt.block_on(async {
        let b = driver.session(1000, 800).await;
        b.goto(&format!("http://{api}/")).await.unwrap();
        poll_until(&b, "the sign-in form", "return !!document.getElementById('token');", T, |v| {
            *v == json!(true)
        })
        .await;
        b.execute(
            "document.getElementById('token').value = arguments[0]; document.querySelector('form').submit();",
            vec![json!(token)],
        )
        .await
        .unwrap();
        poll_until(&b, "the view with one row", ROW_STATES, T, |v| v["guarded"] == "alive").await;
        // The page reads the API with its cookie; commands are refused.
        let statuses = b
            .execute_async(
                "const done = arguments[0]; Promise.all([\
                   fetch('/v1/self').then(r => r.status),\
                   fetch('/v1/leave', {method: 'POST'}).then(r => r.status)]).then(done);",
                vec![],
            )
            .await
            .unwrap();
        assert_eq!(statuses, json!([200, 401]));
        b.close().await.unwrap();
    });
}

/// Measures how long the view takes to load and render a large cluster
/// (docs/web-view.md). Not a pass/fail timing: it prints figures. Start a
/// cluster first, e.g. `headcount bench --nodes 1000 --duration 600
/// --kill 0 --view 127.0.0.1:7999`, then run
/// `HEADCOUNT_VIEW_URL=http://127.0.0.1:7999/ cargo test -p headcount-cli
/// --test web_view -- --ignored --nocapture measure_view_load`.
#[test]
#[ignore = "needs a running cluster: set HEADCOUNT_VIEW_URL"]
fn measure_view_load() {
    let Some((chromium, driver)) = browser_tools() else {
        return;
    };
    let url = std::env::var("HEADCOUNT_VIEW_URL").expect("HEADCOUNT_VIEW_URL=http://IP:PORT/");
    let runs: usize = std::env::var("HEADCOUNT_VIEW_RUNS")
        .ok()
        .and_then(|r| r.parse().ok())
        .unwrap_or(5);
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let mut driver = Driver::start(chromium, driver);
    let mut rendered = Vec::new();
    rt.block_on(async {
        for run in 0..runs {
            // A fresh profile each time: nothing cached.
            let b = driver.session(1280, 900).await;
            let t0 = Instant::now();
            b.goto(&url).await.unwrap();
            let n = poll_until(
                &b,
                "the rows",
                "return document.body.dataset.rendered ? document.querySelectorAll('#rows tr').length : 0;",
                Duration::from_secs(60),
                |v| v.as_u64().unwrap_or(0) > 0,
            )
            .await;
            let wall = t0.elapsed();
            let timing = b
                .execute(
                    "const nav = performance.getEntriesByType('navigation')[0]; \
                     return {response_end_ms: nav.responseEnd, dom_content_loaded_ms: nav.domContentLoadedEventEnd, \
                             load_ms: nav.loadEventEnd, rows_rendered_ms: Number(document.body.dataset.rendered), \
                             data_arrived_ms: Number(document.body.dataset.data), \
                             members: Number(document.querySelectorAll('#rows tr').length), \
                             members_json_ms: (performance.getEntriesByName(location.origin + '/v1/members?all=true')[0] || {}).duration};",
                    vec![],
                )
                .await
                .unwrap();
            // A filter keystroke: debounce (80 ms) excluded, until painted.
            let filter_ms = b
                .execute_async(
                    "const done = arguments[0]; const f = document.getElementById('filter'); \
                     f.value = 'node-99'; f.dispatchEvent(new Event('input')); \
                     setTimeout(() => { const t = performance.now(); \
                       requestAnimationFrame(() => requestAnimationFrame(() => done(performance.now() - t))); }, 100);",
                    vec![],
                )
                .await
                .unwrap();
            println!(
                "run {run}: {n} rows; {timing}; filter+paint {filter_ms} ms; webdriver wall {} ms",
                wall.as_millis()
            );
            rendered.push(timing["rows_rendered_ms"].as_f64().unwrap_or(f64::NAN));
            if run + 1 == runs {
                b.execute(
                    "const f = document.getElementById('filter'); f.value = ''; \
                     f.dispatchEvent(new Event('input'));",
                    vec![],
                )
                .await
                .unwrap();
                poll_until(
                    &b,
                    "every row shown again",
                    "return [...document.querySelectorAll('#rows tr')].filter(r => !r.hidden).length;",
                    T,
                    |v| *v == n,
                )
                .await;
                save_screenshot(&b, "web-view-1000.png").await;
            }
            b.close().await.unwrap();
        }
    });
    rendered.sort_by(f64::total_cmp);
    println!(
        "rows rendered after (ms since navigation start): median {:.0}, min {:.0}, max {:.0}",
        rendered[rendered.len() / 2],
        rendered[0],
        rendered[rendered.len() - 1]
    );
}

/// `headcount demo --stay`: prints node-1's view URL, the view answers,
/// the cluster outlives the script, and Ctrl-C (SIGINT) ends it cleanly.
#[test]
fn demo_stay_serves_the_view_until_interrupted() {
    use std::io::{BufRead, BufReader};
    let mut child = Command::new(common::headcount_bin())
        .args(["demo", "--stay"])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("run the demo");
    let stdout = child.stdout.take().unwrap();
    let mut proc = Proc {
        child,
        name: "demo".into(),
    };
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines() {
            let Ok(line) = line else { break };
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    let mut seen = Vec::new();
    let mut wait_line = |what: &str| -> String {
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match rx.recv_timeout(left) {
                Ok(line) => {
                    seen.push(line.clone());
                    if line.contains(what) {
                        return line;
                    }
                }
                Err(e) => panic!("no line with {what:?} ({e}); saw {seen:#?}"),
            }
        }
    };
    let line = wait_line("'s live view: http://");
    let addr = line
        .split("http://")
        .nth(1)
        .and_then(|r| r.split('/').next())
        .expect("an address in the URL")
        .to_string();
    let (st, _, body) = http(&addr, "GET", "/", &[]);
    assert_eq!(st, 200);
    assert!(body.contains("/assets/app.js"));
    wait_line("--stay: the cluster keeps running");
    // Still serving after the script.
    let (st, _, body) = http(&addr, "GET", "/v1/health", &[]);
    assert_eq!(st, 200, "{body}");
    let pid = proc.child.id().to_string();
    assert!(Command::new("kill")
        .args(["-INT", &pid])
        .status()
        .unwrap()
        .success());
    wait_line("stopped (Ctrl-C)");
    let deadline = Instant::now() + T;
    let status = loop {
        if let Some(st) = proc.child.try_wait().unwrap() {
            break st;
        }
        assert!(
            Instant::now() < deadline,
            "the demo did not exit after SIGINT"
        );
        std::thread::sleep(Duration::from_millis(20));
    };
    assert!(status.success(), "{status:?}");
}
