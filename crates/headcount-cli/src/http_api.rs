//! The agent's HTTP API (`headcount agent --http`): JSON over HTTP/1.1 on
//! axum, paths under `/v1/`. Documented in `docs/http-api.md` and in
//! [`HELP`] (appended to `headcount agent --help`).
//!
//! Safety rules: it listens on loopback unless told otherwise, and a
//! non-loopback address needs a bearer token (`--http-token`) unless
//! `--http-insecure` says so; the check happens before anything is bound.
//! Request bodies are capped at [`BODY_LIMIT`] before they are read whole.
//! No handler holds the node's lock longer than a member-list copy, and
//! the event stream reads from the library's bounded ring, so a slow or
//! stuck client cannot stall membership: it is told `lagged` and cut off.

use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{DefaultBodyLimit, Query, Request, State};
use axum::http::{header, StatusCode};
use axum::middleware::{self, Next};
use axum::response::sse::{Event as SseEvent, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use base64::Engine;
use headcount::{Error, Event, JoinError, MemberInfo, MemberState, Memberlist};
use serde::Deserialize;
use serde_json::{json, Map, Value};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use crate::event_log::{EventLog, Pull, Start, RESYNC};
use crate::http_args::{check, HttpArgs};
use crate::keyring_file::KeyringFile;

/// Largest request body accepted, in bytes (larger ones get 413 before
/// they are read whole).
pub const BODY_LIMIT: usize = 64 * 1024;

/// Most addresses one `POST /v1/join` may name.
const MAX_JOIN_ADDRS: usize = 64;

/// Most connections the API serves at once; more wait in the kernel's
/// accept backlog, so idle or stalled clients cannot take every file
/// descriptor the node needs for gossip.
const MAX_CONNECTIONS: usize = 256;

/// How long `POST /v1/leave` waits for the leave to be gossiped.
const LEAVE_TIMEOUT: Duration = Duration::from_secs(3);

/// Text appended to `headcount agent --help`.
pub const HELP: &str = "\
HTTP API (JSON; see docs/http-api.md). Listens on 127.0.0.1:7947 unless
--http ADDR says otherwise (--http off disables it; when the default port is
taken the agent runs without the API and says so on stderr). Once bound, the
agent prints {\"event\":\"http\",\"addr\":\"IP:PORT\"} on stdout. A non-loopback
address needs --http-token TOKEN (clients send `Authorization: Bearer TOKEN`)
or --http-insecure. Errors are {\"error\":TEXT,\"field\":NAME|null}.
  GET    /v1/members[?all=true]  alive and suspect members (all: also dead, left)
  GET    /v1/self                this node
  GET    /v1/health              health score and counts by state; 200 when in a
                                 cluster (>= 2 alive), 503 when alone, left or
                                 shut down
  GET    /v1/stats               protocol and socket counters
  POST   /v1/join   {\"addrs\":[ADDR,...]}  -> {\"joined\":N,\"errors\":[{addr,error,kind}]}
                                 (502 when none joined)
  POST   /v1/leave               leave gracefully (the agent keeps running)
  POST   /v1/send   {\"node\":NAME,\"message\":TEXT,\"mode\":\"reliable\"|\"best-effort\"}
                                 404 unknown node, 413 too large (with the limit)
  GET    /v1/keys                key fingerprints, primary first (never the keys)
  POST   /v1/keys   {\"key\":BASE64}  install a key
  POST   /v1/keys/use {\"key\":BASE64}  make it the primary
  DELETE /v1/keys   {\"key\":BASE64}  remove it
  GET    /metrics                Prometheus text format, Go memberlist's metric
                                 names (docs/metrics.md); --metrics-prefix P
                                 serves P_memberlist_*, --metric-label K=V
  GET    /v1/events              Server-Sent Events (join, leave, update, suspect,
                                 conflict, health, user); ids EPOCH-SEQ. Send
                                 Last-Event-ID to resume (`event: resync` and a
                                 fresh snapshot when that is no longer kept). A
                                 client that falls behind gets `event: lagged`
                                 and the stream ends.
  GET    /v1/history[?since=SEQ] the last 10 minutes, one sample a second (health
                                 score, message rates, counts by state), and the
                                 last 256 membership events
  GET    /                       the live web view (docs/web-view.md); with a
                                 token, open /?token=TOKEN once or sign in: a
                                 cookie then authorizes GET requests
Request bodies are limited to 64 KiB.";

/// Checks the options, binds the API and serves it on a task until the
/// runtime stops. Returns the bound address (`None` when disabled, or when
/// the default address is taken: then a warning is logged). An explicit
/// address that cannot be bound is an error. With the agent's
/// `--keyring-file`, key changes made through the API are written to it.
pub async fn start(
    args: &HttpArgs,
    ml: &Memberlist,
    keyring_file: Option<KeyringFile>,
) -> Result<Option<SocketAddr>, String> {
    let Some(addr) = check(args)? else {
        return Ok(None);
    };
    let listener = match tokio::net::TcpListener::bind(addr).await {
        Ok(l) => l,
        Err(e) if args.http.is_none() => {
            // Info, not a warning: several agents on one host are common
            // (tests, demos) and only the first gets the default port.
            tracing::info!("HTTP API off: cannot bind the default {addr}: {e} (set --http)");
            return Ok(None);
        }
        Err(e) => return Err(format!("--http {addr}: cannot bind: {e}")),
    };
    let bound = listener
        .local_addr()
        .map_err(|e| format!("--http {addr}: {e}"))?;
    // An event stream writes at least this often, so idle cuts spare it.
    let keep_alive =
        (args.http_idle_timeout / 2).clamp(Duration::from_millis(100), Duration::from_secs(15));
    let app = router(
        ml.clone(),
        args.http_token.clone(),
        keyring_file,
        keep_alive,
        bound.port(),
    );
    let listener = Capped {
        inner: listener,
        permits: Arc::new(Semaphore::new(MAX_CONNECTIONS)),
        idle: args.http_idle_timeout,
    };
    tokio::spawn(async move {
        if let Err(e) = axum::serve(listener, app).await {
            tracing::error!("HTTP API stopped: {e}");
        }
    });
    tracing::info!("HTTP API on http://{bound}/v1/, live view at http://{bound}/");
    Ok(Some(bound))
}

/// A listener that holds at most [`MAX_CONNECTIONS`] connections open,
/// each closed after `idle` without a byte read or written.
struct Capped {
    inner: tokio::net::TcpListener,
    permits: Arc<Semaphore>,
    idle: Duration,
}

impl axum::serve::Listener for Capped {
    type Io = CappedStream;
    type Addr = SocketAddr;

    async fn accept(&mut self) -> (CappedStream, SocketAddr) {
        // Never closed: it lives as long as the listener.
        let permit = Arc::clone(&self.permits)
            .acquire_owned()
            .await
            .expect("the semaphore is never closed");
        let (io, addr) = axum::serve::Listener::accept(&mut self.inner).await;
        (
            CappedStream {
                io,
                _permit: permit,
                idle: self.idle,
                deadline: Box::pin(tokio::time::sleep(self.idle)),
            },
            addr,
        )
    }

    fn local_addr(&self) -> std::io::Result<SocketAddr> {
        self.inner.local_addr()
    }
}

/// A connection that frees its slot when dropped, and fails its reads once
/// it has been idle (nothing read nor written) for `idle`.
///
/// Why here: axum's `serve` runs hyper without a timer, so hyper's own
/// header-read timeout is off, and a client that connects and says nothing
/// (or stops midway through a request) would keep its slot for good. The
/// event stream writes a keep-alive at least every half `idle`, so it is
/// never cut by this.
struct CappedStream {
    io: tokio::net::TcpStream,
    _permit: OwnedSemaphorePermit,
    idle: Duration,
    deadline: Pin<Box<tokio::time::Sleep>>,
}

impl CappedStream {
    fn touch(&mut self) {
        let at = tokio::time::Instant::now() + self.idle;
        self.deadline.as_mut().reset(at);
    }
}

impl AsyncRead for CappedStream {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        let this = self.get_mut();
        match Pin::new(&mut this.io).poll_read(cx, buf) {
            Poll::Ready(r) => {
                this.touch();
                Poll::Ready(r)
            }
            Poll::Pending => match this.deadline.as_mut().poll(cx) {
                Poll::Ready(()) => Poll::Ready(Err(std::io::Error::new(
                    std::io::ErrorKind::TimedOut,
                    "HTTP API connection idle",
                ))),
                Poll::Pending => Poll::Pending,
            },
        }
    }
}

impl AsyncWrite for CappedStream {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        let this = self.get_mut();
        let r = Pin::new(&mut this.io).poll_write(cx, buf);
        if r.is_ready() {
            this.touch();
        }
        r
    }
    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.get_mut().io).poll_flush(cx)
    }
    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.get_mut().io).poll_shutdown(cx)
    }
    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[std::io::IoSlice<'_>],
    ) -> Poll<std::io::Result<usize>> {
        let this = self.get_mut();
        let r = Pin::new(&mut this.io).poll_write_vectored(cx, bufs);
        if r.is_ready() {
            this.touch();
        }
        r
    }
    fn is_write_vectored(&self) -> bool {
        self.io.is_write_vectored()
    }
}

/// The JSON line the agent prints once the API is bound.
pub fn bound_line(addr: SocketAddr) -> String {
    json!({"event": "http", "addr": addr.to_string()}).to_string()
}

#[derive(Clone)]
struct AppState {
    ml: Memberlist,
    log: Arc<EventLog>,
    keyring_file: Option<Arc<KeyringFile>>,
    /// How often an idle event stream sends a comment.
    keep_alive: Duration,
}

/// The API's routes and the web view's (`crate::web_view`), behind the
/// token check; `port` is the listener's (it names the view's cookie).
fn router(
    ml: Memberlist,
    token: Option<String>,
    keyring_file: Option<KeyringFile>,
    keep_alive: Duration,
    port: u16,
) -> Router {
    let log = EventLog::start(&ml, event_json);
    let token: Option<Arc<[u8]>> = token.map(|t| Arc::from(t.into_bytes()));
    let history = crate::web_view::History::start(&ml);
    Router::new()
        .route("/v1/members", get(members))
        .route("/v1/self", get(self_node))
        .route("/v1/health", get(health))
        .route("/v1/stats", get(stats))
        .route("/v1/join", post(join))
        .route("/v1/leave", post(leave))
        .route("/v1/send", post(send))
        .route("/v1/keys", get(keys).post(add_key).delete(remove_key))
        .route("/v1/keys/use", post(use_key))
        .route("/v1/events", get(events))
        .route("/metrics", get(crate::metrics_endpoint::render))
        .merge(crate::web_view::routes(
            ml.clone(),
            history,
            token.clone(),
            port,
        ))
        .fallback(|| async { ApiError::new(StatusCode::NOT_FOUND, "no such endpoint") })
        .method_not_allowed_fallback(|| async {
            ApiError::new(
                StatusCode::METHOD_NOT_ALLOWED,
                "this method is not allowed on this path",
            )
        })
        .layer(DefaultBodyLimit::max(BODY_LIMIT))
        .layer(middleware::from_fn_with_state((token, port), authorize))
        .with_state(AppState {
            ml,
            log,
            keyring_file: keyring_file.map(Arc::new),
            keep_alive,
        })
}

/// Requires `Authorization: Bearer TOKEN` when a token is set. The
/// comparison is constant-time in the token's content (the `subtle`
/// crate); only a length mismatch ends it early.
/// Without it, the web view may still let the request through (its
/// cookie, its login page: `crate::web_view::access`).
async fn authorize(
    State((token, port)): State<(Option<Arc<[u8]>>, u16)>,
    req: Request,
    next: Next,
) -> Response {
    if let Some(token) = token {
        use crate::web_view::Access;
        use subtle::ConstantTimeEq;
        let given = req
            .headers()
            .get(header::AUTHORIZATION)
            .and_then(|v| v.as_bytes().strip_prefix(b"Bearer "))
            .unwrap_or_default();
        let access = if bool::from(given.ct_eq(&token)) {
            Access::Allow
        } else {
            crate::web_view::access(&token, port, &req)
        };
        match access {
            Access::Allow => {}
            Access::Respond(r) => return r,
            Access::Deny => {
                let mut r =
                    ApiError::new(StatusCode::UNAUTHORIZED, "missing or wrong bearer token")
                        .field("Authorization")
                        .into_response();
                r.headers_mut()
                    .insert(header::WWW_AUTHENTICATE, "Bearer".parse().expect("valid"));
                return r;
            }
        }
    }
    next.run(req).await
}

/// An error answer: `{"error": TEXT, "field": NAME|null, ...extra}`.
pub(crate) struct ApiError {
    status: StatusCode,
    error: String,
    field: Option<&'static str>,
    extra: Map<String, Value>,
}

impl ApiError {
    pub(crate) fn new(status: StatusCode, error: impl Into<String>) -> Self {
        ApiError {
            status,
            error: error.into(),
            field: None,
            extra: Map::new(),
        }
    }
    pub(crate) fn bad(field: &'static str, error: impl Into<String>) -> Self {
        ApiError::new(StatusCode::BAD_REQUEST, error).field(field)
    }
    pub(crate) fn field(mut self, f: &'static str) -> Self {
        self.field = Some(f);
        self
    }
    pub(crate) fn with(mut self, k: &str, v: Value) -> Self {
        self.extra.insert(k.into(), v);
        self
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let mut body = Map::new();
        body.insert("error".into(), Value::String(self.error));
        body.insert(
            "field".into(),
            self.field.map_or(Value::Null, |f| Value::String(f.into())),
        );
        body.extend(self.extra);
        (self.status, Json(Value::Object(body))).into_response()
    }
}

/// Maps a library error to an answer.
fn lib_error(e: Error) -> ApiError {
    let status = match &e {
        Error::UnknownNode(_) => StatusCode::NOT_FOUND,
        Error::TooLarge { limit, .. } => {
            let limit = *limit;
            return ApiError::new(StatusCode::PAYLOAD_TOO_LARGE, e.to_string())
                .field("message")
                .with("limit", json!(limit));
        }
        Error::Keyring(k) => {
            use headcount_proto::KeyringError as K;
            return match k {
                K::InvalidKeyLength(_) => ApiError::bad("key", e.to_string()),
                K::KeyNotInstalled => {
                    ApiError::new(StatusCode::NOT_FOUND, e.to_string()).field("key")
                }
                K::RemovePrimaryKey => {
                    ApiError::new(StatusCode::CONFLICT, e.to_string()).field("key")
                }
                K::NoKeyring => ApiError::new(
                    StatusCode::CONFLICT,
                    "encryption is off on this agent (start it with --encrypt)",
                ),
                _ => ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()),
            };
        }
        Error::Left => StatusCode::CONFLICT,
        Error::Shutdown => StatusCode::SERVICE_UNAVAILABLE,
        Error::Timeout(_) => StatusCode::GATEWAY_TIMEOUT,
        Error::SendFailed { .. } => StatusCode::BAD_GATEWAY,
        _ => StatusCode::INTERNAL_SERVER_ERROR,
    };
    ApiError::new(status, e.to_string())
}

/// The request body as a JSON object; 413 past [`BODY_LIMIT`], 400 when
/// it is not a JSON object.
fn body_object(body: Result<Bytes, BytesRejection>) -> Result<Map<String, Value>, ApiError> {
    let bytes = body.map_err(|r| {
        if r.status() == StatusCode::PAYLOAD_TOO_LARGE {
            ApiError::new(
                StatusCode::PAYLOAD_TOO_LARGE,
                format!("the request body is over {BODY_LIMIT} bytes"),
            )
            .with("limit", json!(BODY_LIMIT))
        } else {
            ApiError::new(r.status(), r.body_text())
        }
    })?;
    match serde_json::from_slice::<Value>(&bytes) {
        Ok(Value::Object(m)) => Ok(m),
        Ok(_) => Err(ApiError::bad("body", "the body must be a JSON object")),
        Err(e) => Err(ApiError::bad("body", format!("the body is not JSON: {e}"))),
    }
}

fn str_field<'a>(obj: &'a Map<String, Value>, name: &'static str) -> Result<&'a str, ApiError> {
    match obj.get(name) {
        Some(Value::String(s)) => Ok(s),
        Some(_) => Err(ApiError::bad(name, format!("`{name}` must be a string"))),
        None => Err(ApiError::bad(name, format!("`{name}` is missing"))),
    }
}

pub(crate) fn member_json(m: &MemberInfo) -> Value {
    let v = &m.vsn;
    json!({
        "name": m.name,
        "addr": m.addr.to_string(),
        "state": m.state.as_str(),
        "incarnation": m.incarnation,
        "meta": String::from_utf8_lossy(&m.meta),
        "meta_base64": base64::engine::general_purpose::STANDARD.encode(&m.meta),
        // Serf tags, when the metadata holds them (else null).
        "tags": crate::tags::decode(&m.meta),
        "protocol": {"min": v[0], "max": v[1], "cur": v[2]},
        "delegate": {"min": v[3], "max": v[4], "cur": v[5]},
    })
}

#[derive(Deserialize)]
struct MembersQuery {
    #[serde(default)]
    all: Option<String>,
}

async fn members(
    State(s): State<AppState>,
    q: Result<Query<MembersQuery>, axum::extract::rejection::QueryRejection>,
) -> Result<Json<Value>, ApiError> {
    let Query(q) = q.map_err(|e| ApiError::bad("all", e.body_text()))?;
    let all = match q.all.as_deref() {
        None | Some("false") | Some("0") => false,
        Some("true") | Some("1") | Some("") => true,
        Some(other) => {
            return Err(ApiError::bad(
                "all",
                format!("`all` must be true or false, not {other:?}"),
            ))
        }
    };
    let list = if all {
        s.ml.members_all()
    } else {
        s.ml.members()
    };
    Ok(Json(json!({
        "members": list.iter().map(member_json).collect::<Vec<_>>(),
    })))
}

async fn self_node(State(s): State<AppState>) -> Json<Value> {
    Json(member_json(&s.ml.local_node()))
}

async fn health(State(s): State<AppState>) -> Response {
    if s.ml.is_shutdown() {
        return (
            StatusCode::SERVICE_UNAVAILABLE,
            Json(json!({"status": "shutdown"})),
        )
            .into_response();
    }
    let (mut alive, mut suspect, mut dead, mut left) = (0u32, 0u32, 0u32, 0u32);
    for m in s.ml.members_all() {
        match m.state {
            MemberState::Alive => alive += 1,
            MemberState::Suspect => suspect += 1,
            MemberState::Dead => dead += 1,
            MemberState::Left => left += 1,
        }
    }
    // A node that left is no longer in the cluster, whoever is.
    let left_us = s.ml.local_node().state.is_dead_or_left();
    let in_cluster = alive >= 2 && !left_us;
    let status = if in_cluster {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    let body = json!({
        "status": if in_cluster { "ok" } else if left_us { "left" } else { "alone" },
        "health_score": s.ml.health_score(),
        "members": {"alive": alive, "suspect": suspect, "dead": dead, "left": left},
    });
    (status, Json(body)).into_response()
}

async fn stats(State(s): State<AppState>) -> Json<Value> {
    let st = s.ml.stats();
    let c = &st.core;
    Json(json!({
        "core": {
            "packets_received": c.packets_received,
            "bytes_received": c.bytes_received,
            "packets_sent": c.packets_sent,
            "bytes_sent": c.bytes_sent,
            "packets_dropped": c.packets_dropped,
            "packets_undecryptable": c.packets_undecryptable,
            "messages_malformed": c.messages_malformed,
            "messages_unknown": c.messages_unknown,
            "messages_ignored": c.messages_ignored,
            "streams_dialed": c.streams_dialed,
            "streams_handled": c.streams_handled,
            "streams_rejected": c.streams_rejected,
            "probes": c.probes,
            "probes_failed": c.probes_failed,
            "sources_denied": c.sources_denied,
            "alives_denied": c.alives_denied,
            "reconnect_attempts": c.reconnect_attempts,
            "reconnect_successes": c.reconnect_successes,
        },
        "udp_send_errors": st.udp_send_errors,
        "udp_recv_errors": st.udp_recv_errors,
        "inbound_streams": st.inbound_streams,
        "inbound_streams_rejected": st.inbound_streams_rejected,
        "inbound_streams_denied": st.inbound_streams_denied,
        "inbound_stream_errors": st.inbound_stream_errors,
        "dial_failures": st.dial_failures,
        "tcp_bytes_sent": st.tcp_bytes_sent,
        "health_score": s.ml.health_score(),
    }))
}

/// A machine-readable name for why joining one address failed.
fn join_kind(e: &JoinError) -> &'static str {
    use headcount::{PushPullError, StreamFailure};
    match e {
        JoinError::Address(_) => "bad_address",
        JoinError::PushPull(PushPullError::Stream(f)) => match f {
            StreamFailure::Io(std::io::ErrorKind::ConnectionRefused) => "connection_refused",
            StreamFailure::Io(_) => "io",
            StreamFailure::Timeout => "timeout",
            StreamFailure::Unanswered { .. } => "unanswered",
            _ => "bad_reply",
        },
        JoinError::PushPull(PushPullError::Remote(_)) => "remote_error",
        JoinError::PushPull(_) => "rejected",
        _ => "other",
    }
}

async fn join(
    State(s): State<AppState>,
    body: Result<Bytes, BytesRejection>,
) -> Result<Response, ApiError> {
    let obj = body_object(body)?;
    let addrs = match obj.get("addrs") {
        Some(Value::Array(a)) => a,
        Some(_) => {
            return Err(ApiError::bad(
                "addrs",
                "`addrs` must be an array of strings",
            ))
        }
        None => return Err(ApiError::bad("addrs", "`addrs` is missing")),
    };
    if addrs.is_empty() || addrs.len() > MAX_JOIN_ADDRS {
        return Err(ApiError::bad(
            "addrs",
            format!("`addrs` must hold 1 to {MAX_JOIN_ADDRS} addresses"),
        ));
    }
    let mut list = Vec::with_capacity(addrs.len());
    for a in addrs {
        match a {
            Value::String(a) => list.push(a.clone()),
            _ => {
                return Err(ApiError::bad(
                    "addrs",
                    "`addrs` must be an array of strings",
                ))
            }
        }
    }
    // One join per address, so that each gets its own answer.
    let mut joined = 0usize;
    let mut errors = Vec::new();
    for a in &list {
        match s.ml.join(std::slice::from_ref(a)).await {
            Ok(n) => joined += n,
            Err(Error::JoinFailed { failures }) => {
                for (addr, e) in failures {
                    errors
                        .push(json!({"addr": addr, "error": e.to_string(), "kind": join_kind(&e)}));
                }
            }
            Err(e) => {
                let kind = if matches!(e, Error::Shutdown) {
                    "shutdown"
                } else {
                    "other"
                };
                errors.push(json!({"addr": a, "error": e.to_string(), "kind": kind}));
            }
        }
    }
    let status = if joined > 0 {
        StatusCode::OK
    } else {
        StatusCode::BAD_GATEWAY
    };
    Ok((status, Json(json!({"joined": joined, "errors": errors}))).into_response())
}

async fn leave(State(s): State<AppState>) -> Result<Json<Value>, ApiError> {
    s.ml.leave(LEAVE_TIMEOUT).await.map_err(lib_error)?;
    Ok(Json(json!({"left": true})))
}

async fn send(
    State(s): State<AppState>,
    body: Result<Bytes, BytesRejection>,
) -> Result<Json<Value>, ApiError> {
    let obj = body_object(body)?;
    let node = str_field(&obj, "node")?;
    let message = str_field(&obj, "message")?;
    let reliable = match obj.get("mode") {
        None => true,
        Some(Value::String(m)) if m == "reliable" => true,
        Some(Value::String(m)) if m == "best-effort" => false,
        Some(_) => {
            return Err(ApiError::bad(
                "mode",
                "`mode` must be \"reliable\" or \"best-effort\"",
            ))
        }
    };
    if node.is_empty() {
        return Err(ApiError::bad("node", "`node` is empty"));
    }
    if s.ml.member(node).is_none() {
        return Err(ApiError::new(
            StatusCode::NOT_FOUND,
            format!("no member is called {node:?}"),
        )
        .field("node"));
    }
    let r = if reliable {
        s.ml.send_reliable(node, message.as_bytes()).await
    } else {
        s.ml.send_best_effort(node, message.as_bytes()).await
    };
    r.map_err(|e| match lib_error(e) {
        a if a.status == StatusCode::NOT_FOUND => a.field("node"),
        a => a,
    })?;
    Ok(Json(json!({
        "sent": true,
        "mode": if reliable { "reliable" } else { "best-effort" },
    })))
}

fn keys_json(keys: &[headcount::Key]) -> Json<Value> {
    Json(json!({
        "keys": keys
            .iter()
            .enumerate()
            .map(|(i, k)| json!({"fingerprint": k.fingerprint(), "primary": i == 0}))
            .collect::<Vec<_>>(),
    }))
}

async fn keys(State(s): State<AppState>) -> Result<Json<Value>, ApiError> {
    let keys = s.ml.keys().await.map_err(lib_error)?;
    Ok(keys_json(&keys))
}

/// The `key` field of the body, decoded (base64, standard alphabet).
fn key_field(body: Result<Bytes, BytesRejection>) -> Result<Vec<u8>, ApiError> {
    let obj = body_object(body)?;
    let text = str_field(&obj, "key")?;
    let key = base64::engine::general_purpose::STANDARD
        .decode(text.trim())
        .map_err(|e| ApiError::bad("key", format!("`key` is not valid base64 ({e})")))?;
    if !matches!(key.len(), 16 | 24 | 32) {
        return Err(ApiError::bad(
            "key",
            format!(
                "`key` is {} bytes; AES needs 16, 24 or 32 (`headcount keygen` makes one)",
                key.len()
            ),
        ));
    }
    Ok(key)
}

/// Writes the keys to the agent's `--keyring-file`, if it has one, after
/// a change. The change is made either way: a failed write is logged and
/// reported in the answer's `warning`.
async fn persisted(s: &AppState, Json(mut answer): Json<Value>) -> Json<Value> {
    if let Some(f) = &s.keyring_file {
        if let Err(e) = f.save_from(&s.ml).await {
            tracing::warn!("{e}");
            answer["warning"] = Value::String(e);
        }
    }
    Json(answer)
}

async fn add_key(
    State(s): State<AppState>,
    body: Result<Bytes, BytesRejection>,
) -> Result<Json<Value>, ApiError> {
    let key = key_field(body)?;
    let keys = s.ml.add_key(&key).await.map_err(lib_error)?;
    Ok(persisted(&s, keys_json(&keys)).await)
}

async fn use_key(
    State(s): State<AppState>,
    body: Result<Bytes, BytesRejection>,
) -> Result<Json<Value>, ApiError> {
    let key = key_field(body)?;
    let keys = s.ml.use_key(&key).await.map_err(lib_error)?;
    Ok(persisted(&s, keys_json(&keys)).await)
}

async fn remove_key(
    State(s): State<AppState>,
    body: Result<Bytes, BytesRejection>,
) -> Result<Json<Value>, ApiError> {
    let key = key_field(body)?;
    let keys = s.ml.remove_key(&key).await.map_err(lib_error)?;
    Ok(persisted(&s, keys_json(&keys)).await)
}

/// One library event as an SSE event name and JSON data; `None` for the
/// kinds not streamed (ping completions: one per probe).
fn event_json(e: &Event) -> Option<(&'static str, Value)> {
    Some(match e {
        Event::Join(m) => ("join", member_json(m)),
        Event::Leave(m) => ("leave", member_json(m)),
        Event::Update(m) => ("update", member_json(m)),
        Event::Suspect { member, from } => (
            "suspect",
            json!({"member": member_json(member), "from": from}),
        ),
        Event::Conflict { existing, other } => (
            "conflict",
            json!({"existing": member_json(existing), "other": member_json(other)}),
        ),
        Event::UserMessage(msg) => (
            "user",
            json!({
                "message": String::from_utf8_lossy(msg),
                "message_base64": base64::engine::general_purpose::STANDARD.encode(msg),
            }),
        ),
        Event::HealthChanged(score) => ("health", json!({"health_score": score})),
        _ => return None,
    })
}

/// Entries sent to a client per wake-up (then it waits for its socket).
const EVENTS_BATCH: usize = 64;

/// How long an `EventSource` waits before reconnecting (sent as `retry:`).
const EVENTS_RETRY: Duration = Duration::from_secs(1);

/// `GET /v1/events`: the agent's event log as SSE (see [`EventLog`]).
/// A new client gets the member set as `join` events, then follows; one
/// that sends `Last-Event-ID` (as browsers' `EventSource` do when they
/// reconnect) gets what it missed, or `resync` and a fresh snapshot when
/// that is no longer kept. The node never waits for a client: one that
/// falls behind the log gets `event: lagged` and the stream ends.
async fn events(State(s): State<AppState>, headers: axum::http::HeaderMap) -> impl IntoResponse {
    let last_id = headers.get("last-event-id").and_then(|v| v.to_str().ok());
    let log = s.log;
    let keep_alive = s.keep_alive;
    let mut first: Vec<SseEvent> = Vec::new();
    let cursor = match log.start_for(last_id) {
        Start::After(seq) => seq,
        start => {
            if let Start::Resync(why) = start {
                first.push(
                    SseEvent::default()
                        .event(RESYNC)
                        .data(json!({"reason": why}).to_string()),
                );
            }
            let snap = log.snapshot(member_json);
            let n = snap.events.len();
            for (i, (name, data)) in snap.events.into_iter().enumerate() {
                let mut ev = SseEvent::default().event(name).data(data);
                // Only the last carries an id: a client cut off midway
                // resumes with the id it had, and gets the snapshot again.
                if i + 1 == n {
                    ev = ev.id(log.id(snap.seq));
                }
                first.push(ev);
            }
            snap.seq
        }
    };
    if let Some(ev) = first.first_mut() {
        *ev = std::mem::take(ev).retry(EVENTS_RETRY);
    } else {
        first.push(SseEvent::default().retry(EVENTS_RETRY).comment("resumed"));
    }
    struct Follow {
        log: Arc<EventLog>,
        head: tokio::sync::watch::Receiver<u64>,
        cursor: u64,
        pending: std::collections::VecDeque<SseEvent>,
        done: bool,
    }
    let st = Follow {
        head: log.subscribe(),
        log,
        cursor,
        pending: first.into(),
        done: false,
    };
    let stream = futures_util::stream::unfold(st, |mut st| async move {
        loop {
            if let Some(ev) = st.pending.pop_front() {
                return Some((Ok::<_, std::convert::Infallible>(ev), st));
            }
            if st.done {
                return None;
            }
            // Marked seen before reading, so an entry appended after the
            // read wakes `changed` below.
            st.head.borrow_and_update();
            match st.log.next_after(st.cursor, EVENTS_BATCH) {
                Pull::Entries(entries) => {
                    for e in entries {
                        st.cursor = e.seq;
                        let id = st.log.id(e.seq);
                        let ev = if e.name == RESYNC {
                            let why = "the agent's event log fell behind the node; \
                                       the member set follows as join events";
                            SseEvent::default()
                                .event(RESYNC)
                                .data(json!({"reason": why}).to_string())
                        } else {
                            SseEvent::default().event(e.name).data(e.data.as_str())
                        };
                        st.pending.push_back(ev.id(id));
                    }
                }
                Pull::Lagged(missed) => {
                    st.done = true;
                    st.pending.push_back(
                        SseEvent::default()
                            .event("lagged")
                            .data(json!({"missed": missed}).to_string()),
                    );
                }
                Pull::Closed => return None,
                Pull::Idle => {
                    if st.head.changed().await.is_err() && st.log.is_closed() {
                        return None;
                    }
                }
            }
        }
    });
    Sse::new(stream).keep_alive(KeepAlive::default().interval(keep_alive))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn join_kinds() {
        use headcount::{PushPullError, StreamFailure};
        let refused = JoinError::PushPull(PushPullError::Stream(StreamFailure::Io(
            std::io::ErrorKind::ConnectionRefused,
        )));
        assert_eq!(join_kind(&refused), "connection_refused");
        let timeout = JoinError::PushPull(PushPullError::Stream(StreamFailure::Timeout));
        assert_eq!(join_kind(&timeout), "timeout");
        let remote = JoinError::PushPull(PushPullError::Remote("no".into()));
        assert_eq!(join_kind(&remote), "remote_error");
    }
}
