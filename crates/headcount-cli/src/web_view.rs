//! The agent's live web view (`GET /` on the HTTP API's listener;
//! `docs/web-view.md`): one page written here (HTML, CSS and JavaScript
//! under `crates/headcount-cli/web/`, embedded in the binary) that reads
//! the JSON API, the event stream and `GET /v1/history`.
//!
//! `/v1/history` comes from a task started with the API ([`History::start`]):
//! once a second it samples the node's health score, message rates and
//! counts by state into a ring of [`SAMPLES`] samples, and it keeps the
//! last [`EVENTS`] membership events with their time, so the charts and
//! the timeline have data when the page opens. It also notices what the
//! event stream does not carry: a suspect member that refuted and is
//! alive again (Go's delegates report nothing there either).
//!
//! With a token (`--http-token`), the page asks for it once (or takes it
//! from `/?token=TOKEN`) and keeps it in an `HttpOnly`, `SameSite=Strict`
//! cookie; the cookie authorizes only `GET` and `HEAD` requests, so a
//! cross-site form cannot make the agent join, leave or send. The
//! static assets are public: they hold no cluster data.

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use axum::extract::rejection::{FormRejection, QueryRejection};
use axum::extract::{Form, Path, Query, Request, State};
use axum::http::{header, HeaderMap, HeaderValue, Method, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use base64::Engine;
use headcount::{Event, MemberInfo, MemberState, Memberlist};
use serde::Deserialize;
use serde_json::{json, Value};

use crate::http_api::{member_json, ApiError};

/// Samples kept: one a second, ten minutes.
pub const SAMPLES: usize = 600;

/// Membership events kept for the timeline.
pub const EVENTS: usize = 256;

/// Longest query string the view's endpoints accept (414 past it).
pub const MAX_QUERY: usize = 2048;

/// Longest user message text kept in the timeline, in bytes.
const MAX_TEXT: usize = 256;

/// Longest name filter (`q`) the page accepts, in characters.
const MAX_FILTER: usize = 256;

/// How often the sampler runs.
const TICK: Duration = Duration::from_secs(1);

const INDEX_HTML: &str = include_str!("../web/index.html");
const LOGIN_HTML: &str = include_str!("../web/login.html");
const APP_JS: &str = include_str!("../web/app.js");
const APP_CSS: &str = include_str!("../web/app.css");
const ICON_SVG: &str = include_str!("../web/icon.svg");

/// The page's security headers: only its own scripts, styles and
/// connections; no framing.
const CSP: &str = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; \
                   connect-src 'self'; form-action 'self'; base-uri 'none'; frame-ancestors 'none'";

/// The member states, as the API spells them.
const STATES: [&str; 4] = ["alive", "suspect", "dead", "left"];

/// Milliseconds since the Unix epoch.
fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}

/// What the view keeps about the recent past of its node.
#[derive(Default)]
struct Ring {
    /// Counts samples and events together, so `since=SEQ` is one number.
    seq: u64,
    /// Kept as plain numbers (about 100 bytes each, against about 1 KiB
    /// as a JSON object) and turned into JSON when asked for.
    samples: VecDeque<Sample>,
    events: VecDeque<Value>,
    /// When each member in the table last changed state (ms), and to what.
    changed: HashMap<String, (u64, MemberState)>,
}

impl Ring {
    fn next_seq(&mut self) -> u64 {
        self.seq += 1;
        self.seq
    }

    fn push_event(&mut self, mut e: Value) {
        let seq = self.next_seq();
        e["seq"] = json!(seq);
        if self.events.len() == EVENTS {
            self.events.pop_front();
        }
        self.events.push_back(e);
    }

    fn push_sample(&mut self, mut s: Sample) {
        s.seq = self.next_seq();
        if self.samples.len() == SAMPLES {
            self.samples.pop_front();
        }
        self.samples.push_back(s);
    }

    /// Records that `m` is now in its state, with a timeline entry of
    /// `kind` when that is a change (or when `always`).
    fn record(&mut self, t: u64, kind: &str, m: &MemberInfo, extra: Value, always: bool) {
        let changed = self.changed.get(&m.name).is_none_or(|(_, s)| *s != m.state);
        if changed {
            self.changed.insert(m.name.clone(), (t, m.state));
        }
        if changed || always {
            let mut e = json!({"t": t, "kind": kind, "name": m.name, "member": member_json(m)});
            if let (Value::Object(e), Value::Object(x)) = (&mut e, extra) {
                e.extend(x);
            }
            self.push_event(e);
        }
    }
}

/// One sample of the node: when, its health score, the rates of
/// [`History::run`]'s six totals over the last tick, and its members by
/// state.
struct Sample {
    seq: u64,
    t: u64,
    health: u32,
    rates: [u64; 6],
    counts: [u32; 4],
}

impl Sample {
    /// The sample as `GET /v1/history` shows it.
    fn json(&self) -> Value {
        let [pkts_in, pkts_out, bytes_in, bytes_out, probes, probes_failed] = self.rates;
        let [alive, suspect, dead, left] = self.counts;
        json!({
            "t": self.t,
            "health": self.health,
            "pkts_in": pkts_in, "pkts_out": pkts_out,
            "bytes_in": bytes_in, "bytes_out": bytes_out,
            "probes": probes, "probes_failed": probes_failed,
            "alive": alive, "suspect": suspect, "dead": dead, "left": left,
            "seq": self.seq,
        })
    }
}

/// The sampler's shared ring; cheap to clone.
#[derive(Clone)]
pub struct History {
    ring: Arc<Mutex<Ring>>,
}

fn lock(m: &Mutex<Ring>) -> std::sync::MutexGuard<'_, Ring> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// Cuts `s` to at most `max` bytes on a character boundary.
fn truncate(s: &str, max: usize) -> &str {
    if s.len() <= max {
        return s;
    }
    let mut end = max;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    &s[..end]
}

impl History {
    /// Starts sampling `ml` on a task that ends when the node is shut down.
    pub fn start(ml: &Memberlist) -> History {
        let history = History {
            ring: Arc::new(Mutex::new(Ring::default())),
        };
        let h = history.clone();
        let ml = ml.clone();
        tokio::spawn(async move { h.run(ml).await });
        history
    }

    fn on_event(&self, e: &Event) {
        let t = now_ms();
        let mut r = lock(&self.ring);
        match e {
            Event::Join(m) => r.record(t, "join", m, json!({}), true),
            Event::Leave(m) => {
                let kind = if m.state == MemberState::Left {
                    "left"
                } else {
                    "dead"
                };
                r.record(t, kind, m, json!({}), true);
            }
            Event::Suspect { member, from } => {
                r.record(t, "suspect", member, json!({"from": from}), true);
            }
            Event::Update(m) => r.record(t, "update", m, json!({}), true),
            Event::Conflict { existing, other } => r.push_event(json!({
                "t": t, "kind": "conflict", "name": existing.name,
                "text": format!("{} at {} and at {}", existing.name, existing.addr, other.addr),
            })),
            Event::UserMessage(msg) => {
                let text = String::from_utf8_lossy(msg);
                r.push_event(json!({
                    "t": t, "kind": "user", "text": truncate(&text, MAX_TEXT),
                    "bytes": msg.len(),
                }));
            }
            _ => {}
        }
    }

    /// Compares the member table with what the events said: a suspect
    /// that refuted becomes alive without an event. Forgets members no
    /// longer in the table.
    fn reconcile(&self, members: &[MemberInfo]) {
        let t = now_ms();
        let mut r = lock(&self.ring);
        for m in members {
            let prior = r.changed.get(&m.name).map(|(_, s)| *s);
            match prior {
                Some(s) if s == m.state => {}
                Some(MemberState::Suspect) if m.state == MemberState::Alive => {
                    r.record(t, "alive", m, json!({}), false);
                }
                // Missed (the stream lagged): record the state without a
                // story.
                _ => {
                    r.changed.insert(m.name.clone(), (t, m.state));
                }
            }
        }
        if r.changed.len() > members.len() {
            let names: std::collections::HashSet<&str> =
                members.iter().map(|m| m.name.as_str()).collect();
            r.changed.retain(|n, _| names.contains(n.as_str()));
        }
    }

    async fn run(self, ml: Memberlist) {
        use tokio_stream::StreamExt;
        let mut events = ml.events();
        let mut tick = tokio::time::interval(TICK);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        // Totals at the previous tick, for rates.
        let mut last: Option<[u64; 6]> = None;
        loop {
            tokio::select! {
                e = events.next() => match e {
                    Some(Ok(e)) => self.on_event(&e),
                    Some(Err(_lagged)) => {} // the next reconcile catches up
                    None => break,
                },
                _ = tick.tick() => {
                    if ml.is_shutdown() {
                        break;
                    }
                    // Events published before this table read come first.
                    while let Some(e) = events.try_next() {
                        if let Ok(e) = e {
                            self.on_event(&e);
                        }
                    }
                    let members = ml.members_all();
                    self.reconcile(&members);
                    let st = ml.stats();
                    let c = &st.core;
                    let totals = [
                        c.packets_received,
                        c.packets_sent,
                        c.bytes_received,
                        c.bytes_sent,
                        c.probes,
                        c.probes_failed,
                    ];
                    let rate = |i: usize| last.map_or(0, |l: [u64; 6]| totals[i].saturating_sub(l[i]));
                    let mut counts = [0u32; 4];
                    for m in &members {
                        counts[state_index(m.state)] += 1;
                    }
                    let sample = Sample {
                        seq: 0,
                        t: now_ms(),
                        health: ml.health_score(),
                        rates: std::array::from_fn(rate),
                        counts,
                    };
                    last = Some(totals);
                    lock(&self.ring).push_sample(sample);
                }
            }
        }
    }

    /// The answer to `GET /v1/history[?since=SEQ]`.
    fn json(&self, since: Option<u64>) -> Value {
        let r = lock(&self.ring);
        let after = since.unwrap_or(0);
        let newer = |q: &VecDeque<Value>| -> Vec<Value> {
            q.iter()
                .filter(|v| v["seq"].as_u64().unwrap_or(0) > after)
                .cloned()
                .collect()
        };
        let samples: Vec<Value> = r
            .samples
            .iter()
            .filter(|s| s.seq > after)
            .map(Sample::json)
            .collect();
        let mut body = json!({
            "now": now_ms(),
            "interval_ms": TICK.as_millis() as u64,
            "seq": r.seq,
            "samples": samples,
            "events": newer(&r.events),
        });
        if since.is_none() {
            body["last_change"] = Value::Object(
                r.changed
                    .iter()
                    .map(|(n, (t, _))| (n.clone(), json!(t)))
                    .collect(),
            );
        }
        body
    }
}

fn state_index(s: MemberState) -> usize {
    match s {
        MemberState::Alive => 0,
        MemberState::Suspect => 1,
        MemberState::Dead => 2,
        MemberState::Left => 3,
    }
}

/// API options for the view of an in-process node (`headcount demo`,
/// `headcount bench --view`): at `listen`, without a token, with the
/// agent's default idle timeout.
#[cfg(any(feature = "demo", feature = "bench"))]
pub fn local_api(listen: crate::http_args::Listen) -> crate::http_args::HttpArgs {
    crate::http_args::HttpArgs {
        http: Some(listen),
        http_token: None,
        http_token_file: None,
        http_insecure: false,
        http_idle_timeout: Duration::from_secs(30),
    }
}

/// What the view's routes share.
#[derive(Clone)]
struct ViewState {
    history: History,
    ml: Memberlist,
    token: Option<Arc<[u8]>>,
    cookie: Arc<str>,
}

/// The name of the cookie that holds the token: cookies do not tell
/// ports apart, so two agents on one host get two names.
pub fn cookie_name(port: u16) -> String {
    format!("headcount_token_{port}")
}

/// The view's routes, to merge into the API's router (whose middleware
/// calls [`access`] first).
pub fn routes<S>(
    ml: Memberlist,
    history: History,
    token: Option<Arc<[u8]>>,
    port: u16,
) -> Router<S> {
    let st = ViewState {
        history,
        ml,
        token,
        cookie: cookie_name(port).into(),
    };
    Router::new()
        .route("/", get(index))
        .route("/assets/{name}", get(asset))
        .route("/login", post(login))
        .route("/logout", get(logout))
        .route("/v1/history", get(history_handler))
        .with_state(st)
}

/// What the API's middleware does with a request that has no valid
/// bearer token (a token is set).
pub enum Access {
    /// Serve it.
    Allow,
    /// Refuse it as the API does (401 with `WWW-Authenticate`).
    Deny,
    /// Answer this instead (the login page, or the redirect that sets the
    /// cookie).
    Respond(Response),
}

/// Decides on a request without a valid bearer token, for the view:
/// public assets and the login form pass; `GET`/`HEAD` pass with the
/// cookie; `/?token=TOKEN` sets the cookie; `/` without it gets the login
/// page.
pub fn access(token: &[u8], port: u16, req: &Request) -> Access {
    let path = req.uri().path();
    let read = matches!(*req.method(), Method::GET | Method::HEAD);
    if read && path.starts_with("/assets/") {
        return Access::Allow;
    }
    if path == "/login" && req.method() == Method::POST || path == "/logout" && read {
        return Access::Allow;
    }
    let name = cookie_name(port);
    if read && cookie_value(req.headers(), &name).is_some_and(|v| token_matches(token, &v)) {
        return Access::Allow;
    }
    if path == "/" && read {
        let query = req.uri().query().unwrap_or("");
        if query.len() > MAX_QUERY {
            return Access::Respond(too_long().into_response());
        }
        let given = form_pairs(query)
            .into_iter()
            .find(|(k, _)| k == "token")
            .map(|(_, v)| v);
        return Access::Respond(match given {
            Some(t) if token_matches(token, t.as_bytes()) => {
                // Keep the other parameters (filters), drop the token.
                let rest: Vec<&str> = query
                    .split('&')
                    .filter(|p| !p.is_empty() && !p.starts_with("token="))
                    .collect();
                let location = if rest.is_empty() {
                    "/".to_string()
                } else {
                    format!("/?{}", rest.join("&"))
                };
                signed_in(&name, token, &location)
            }
            Some(_) => login_page(true),
            None => login_page(false),
        });
    }
    Access::Deny
}

/// Constant time in the content (only a length mismatch ends early).
fn token_matches(token: &[u8], given: &[u8]) -> bool {
    use subtle::ConstantTimeEq;
    bool::from(given.ct_eq(token))
}

/// Decoded `key=value` pairs of a query string or form body; empty when
/// it does not parse.
fn form_pairs(s: &str) -> Vec<(String, String)> {
    axum::extract::Query::<Vec<(String, String)>>::try_from_uri(
        &format!("/?{s}").parse().unwrap_or_default(),
    )
    .map(|q| q.0)
    .unwrap_or_default()
}

/// The token held in the cookie `name`, decoded.
fn cookie_value(headers: &HeaderMap, name: &str) -> Option<Vec<u8>> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|kv| kv.trim().split_once('='))
        .find(|(k, _)| *k == name)
        .and_then(|(_, v)| {
            base64::engine::general_purpose::URL_SAFE_NO_PAD
                .decode(v)
                .ok()
        })
}

/// 303 to `location`, setting the cookie.
fn signed_in(name: &str, token: &[u8], location: &str) -> Response {
    let value = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(token);
    let cookie = format!("{name}={value}; Path=/; HttpOnly; SameSite=Strict");
    let mut r = StatusCode::SEE_OTHER.into_response();
    let h = r.headers_mut();
    if let (Ok(c), Ok(l)) = (
        HeaderValue::from_str(&cookie),
        HeaderValue::from_str(location),
    ) {
        h.insert(header::SET_COOKIE, c);
        h.insert(header::LOCATION, l);
    }
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    r
}

/// The page that asks for the token (401).
fn login_page(wrong: bool) -> Response {
    let note = if wrong {
        "<p class=\"login-error\" role=\"alert\">That token is not the agent's token.</p>"
    } else {
        ""
    };
    let body = LOGIN_HTML.replace("<!--NOTE-->", note);
    let mut r = html(body);
    *r.status_mut() = StatusCode::UNAUTHORIZED;
    r.headers_mut()
        .insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
    r
}

/// An HTML answer with the page's security headers.
fn html(body: String) -> Response {
    let mut r = ([(header::CONTENT_TYPE, "text/html; charset=utf-8")], body).into_response();
    let h = r.headers_mut();
    h.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(CSP),
    );
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    h.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    h.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
    r
}

fn too_long() -> ApiError {
    ApiError::new(
        StatusCode::URI_TOO_LONG,
        format!("the query string is over {MAX_QUERY} bytes"),
    )
    .field("query")
    .with("limit", json!(MAX_QUERY))
}

/// The raw query, refused past [`MAX_QUERY`].
fn query_of(req_query: Option<&str>) -> Result<&str, ApiError> {
    let q = req_query.unwrap_or("");
    if q.len() > MAX_QUERY {
        return Err(too_long());
    }
    Ok(q)
}

/// The page's own parameters, checked so that a mistyped link says so
/// rather than showing a silently unfiltered list.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct PageQuery {
    /// States to show, comma-separated.
    state: Option<String>,
    /// Name filter.
    q: Option<String>,
    /// Handled by [`access`] when a token is set; ignored otherwise.
    #[allow(dead_code)]
    token: Option<String>,
}

async fn index(
    uri: axum::http::Uri,
    q: Result<Query<PageQuery>, QueryRejection>,
) -> Result<Response, ApiError> {
    query_of(uri.query())?;
    let Query(q) = q.map_err(|e| ApiError::bad("query", e.body_text()))?;
    if let Some(states) = &q.state {
        for s in states.split(',').filter(|s| !s.is_empty()) {
            if !STATES.contains(&s) {
                return Err(ApiError::bad(
                    "state",
                    format!(
                        "unknown state {:?}: use alive, suspect, dead or left",
                        truncate(s, 64)
                    ),
                ));
            }
        }
    }
    if q.q.as_ref().is_some_and(|f| f.chars().count() > MAX_FILTER) {
        return Err(ApiError::bad(
            "q",
            format!("the name filter is over {MAX_FILTER} characters"),
        ));
    }
    Ok(html(INDEX_HTML.to_string()))
}

async fn asset(uri: axum::http::Uri, Path(name): Path<String>) -> Result<Response, ApiError> {
    query_of(uri.query())?;
    let (body, kind) = match name.as_str() {
        "app.js" => (APP_JS, "text/javascript; charset=utf-8"),
        "app.css" => (APP_CSS, "text/css; charset=utf-8"),
        "icon.svg" => (ICON_SVG, "image/svg+xml"),
        _ => return Err(ApiError::new(StatusCode::NOT_FOUND, "no such asset").field("path")),
    };
    Ok((
        [
            (header::CONTENT_TYPE, kind),
            (header::CACHE_CONTROL, "no-cache"),
            (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
        ],
        body,
    )
        .into_response())
}

#[derive(Deserialize)]
struct LoginForm {
    token: String,
}

async fn login(
    State(st): State<ViewState>,
    form: Result<Form<LoginForm>, FormRejection>,
) -> Response {
    let Some(token) = &st.token else {
        // No token on this agent: nothing to sign in to.
        let mut r = StatusCode::SEE_OTHER.into_response();
        r.headers_mut()
            .insert(header::LOCATION, HeaderValue::from_static("/"));
        return r;
    };
    match form {
        Ok(Form(f)) if token_matches(token, f.token.as_bytes()) => {
            signed_in(&st.cookie, token, "/")
        }
        _ => login_page(true),
    }
}

async fn logout(State(st): State<ViewState>) -> Response {
    let cookie = format!(
        "{}=; Path=/; HttpOnly; SameSite=Strict; Max-Age=0",
        st.cookie
    );
    let mut r = StatusCode::SEE_OTHER.into_response();
    let h = r.headers_mut();
    if let Ok(c) = HeaderValue::from_str(&cookie) {
        h.insert(header::SET_COOKIE, c);
    }
    h.insert(header::LOCATION, HeaderValue::from_static("/"));
    r
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct HistoryQuery {
    since: Option<String>,
}

/// `GET /v1/history[?since=SEQ]`: samples and events newer than `SEQ`
/// (all of them without it, plus `last_change` per member).
async fn history_handler(
    State(st): State<ViewState>,
    uri: axum::http::Uri,
    q: Result<Query<HistoryQuery>, QueryRejection>,
) -> Result<Json<Value>, ApiError> {
    query_of(uri.query())?;
    let Query(q) = q.map_err(|e| ApiError::bad("query", e.body_text()))?;
    let since = match q.since.as_deref() {
        None => None,
        Some(s) => Some(s.parse::<u64>().map_err(|_| {
            ApiError::bad(
                "since",
                format!(
                    "`since` must be a sequence number, not {:?}",
                    truncate(s, 64)
                ),
            )
        })?),
    };
    let mut body = st.history.json(since);
    body["node"] = json!(st.ml.name());
    Ok(Json(body))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn truncate_keeps_characters_whole() {
        assert_eq!(truncate("héllo", 2), "h");
        assert_eq!(truncate("héllo", 3), "hé");
        assert_eq!(truncate("abc", 10), "abc");
    }

    #[test]
    fn cookies_are_found_by_name_and_decoded() {
        let mut h = HeaderMap::new();
        let v = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(b"s3cret; x");
        h.insert(
            header::COOKIE,
            HeaderValue::from_str(&format!("a=b; headcount_token_80={v}; c=d")).unwrap(),
        );
        assert_eq!(
            cookie_value(&h, "headcount_token_80").unwrap(),
            b"s3cret; x"
        );
        assert!(cookie_value(&h, "headcount_token_81").is_none());
    }

    #[test]
    fn rings_are_bounded_and_refutations_are_noticed() {
        let h = History {
            ring: Arc::new(Mutex::new(Ring::default())),
        };
        for i in 0..(SAMPLES + 10) {
            lock(&h.ring).push_sample(Sample {
                seq: 0,
                t: i as u64,
                health: 0,
                rates: [0; 6],
                counts: [1, 0, 0, 0],
            });
        }
        let mut m = MemberInfo::new("x", "127.0.0.1:1".parse().unwrap());
        m.state = MemberState::Suspect;
        for _ in 0..(EVENTS + 10) {
            h.on_event(&Event::Suspect {
                member: m.clone(),
                from: "y".into(),
            });
        }
        m.state = MemberState::Alive;
        h.reconcile(std::slice::from_ref(&m));
        let all = h.json(None);
        let samples = all["samples"].as_array().unwrap();
        assert_eq!(samples.len(), SAMPLES);
        // The oldest ten were dropped; a sample reads as before.
        assert_eq!(samples[0]["t"], 10);
        assert_eq!(samples[0]["alive"], 1);
        assert_eq!(samples[0]["probes_failed"], 0);
        assert_eq!(samples[0]["seq"], 11);
        let events = all["events"].as_array().unwrap();
        assert_eq!(events.len(), EVENTS);
        assert_eq!(events.last().unwrap()["kind"], "alive");
        let seq = all["seq"].as_u64().unwrap();
        assert_eq!(h.json(Some(seq))["events"].as_array().unwrap().len(), 0);
        assert_eq!(h.json(Some(seq - 1))["events"].as_array().unwrap().len(), 1);
        // Reaped members are forgotten.
        h.reconcile(&[]);
        assert!(lock(&h.ring).changed.is_empty());
    }
}
