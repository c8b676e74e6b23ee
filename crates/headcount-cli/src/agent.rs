//! `headcount agent`: one cluster member, events as JSON lines on stdout.

use std::io::{IsTerminal, Write};
use std::net::SocketAddr;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use base64::Engine;
use clap::{Args, ValueEnum};
use headcount::{
    Cidr, Config, EventDelegate, Keyring, MemberInfo, Memberlist, MessageDelegate, Options,
};
use serde::Serialize;

use crate::keyring_file::KeyringFile;
use tokio::io::AsyncBufReadExt;
use tokio::sync::mpsc;

// A child module, so it can fill in `AgentArgs`' fields.
#[path = "agent_config.rs"]
pub(crate) mod agent_config;
pub use agent_config::{resolve, LogLevel};

/// Sets the log level at run time (`None`: RUST_LOG, else info).
pub type SetLogLevel = Box<dyn Fn(Option<LogLevel>) + Send + Sync>;

/// How long a graceful leave may take on SIGINT/SIGTERM.
const LEAVE_TIMEOUT: Duration = Duration::from_secs(3);

/// Arguments of `headcount agent`.
#[derive(Args, Clone, Debug)]
#[command(after_help = "\
OUTPUT (stdout, one JSON object per line, flushed after each):
  {\"event\":\"join\"|\"leave\"|\"update\",\"node\":NAME,\"addr\":\"IP:PORT\",\"state\":\"alive\"|\"suspect\"|\"dead\"|\"left\"}
    plus \"tags\":{KEY:VALUE,...} when the node's metadata holds Serf tags
    (as Serf agents' and --tag nodes' do; also in `members` entries)
  {\"event\":\"user\",\"msg\":TEXT}                      (a user message, lossy UTF-8)
  {\"event\":\"members\",\"members\":[{\"node\",\"addr\",\"state\"},...]}  (answer to `members`)

STDIN (read only when it is not a terminal; EOF does not stop the agent):
  send-reliable NODE TEXT      send TEXT to NODE over TCP
  send-best-effort NODE TEXT   send TEXT to NODE in one UDP packet
  members                      print the member list

JOIN: with --join, the agent exits with status 1 if no address answered
(one line on stderr says why, e.g. a wrong encryption key or label); if at
least one did, it keeps running (failures are logged on stderr).
--retry-join ADDR (repeatable) joins in the background instead, as Serf's
and Consul's: the agent runs meanwhile, each failed attempt is logged at
warn, and attempts repeat every --retry-interval (default 30s) until one
succeeds; with --retry-max N it exits with status 1 after N failures.

ADDRESSES: --name defaults to the host name, --bind to 0.0.0.0:7946, which
announces a private IPv4 address of the host; if it has none, the agent
stops and asks for --advertise or a specific --bind address.

TAGS: --tag KEY=VALUE (repeatable) stores Serf tags in the node metadata,
encoded as Serf does (`serf members` lists them; use --delegate-versions
2,5,4 with Serf). --meta TEXT is plain metadata for memberlist peers; the
two cannot be combined.

CONFIG FILE: --config FILE reads TOML whose keys are the flags' names
(kebab-case, no dashes in front); repeatable flags take arrays and tags a
table; a flag on the command line replaces the file's value. Unknown keys
are an error. Example:
  name = \"web-1\"
  bind = \"10.0.0.5:7946\"
  retry-join = [\"10.0.0.2\", \"10.0.0.3\"]
  retry-interval = \"10s\"
  delegate-versions = \"2,5,4\"
  log-level = \"debug\"
  [tag]
  role = \"web\"

ENCRYPTION: --encrypt takes a base64 key of 16, 24 or 32 bytes (as Serf's
-encrypt; `headcount keygen` makes one). Repeat it to install several keys:
the first encrypts, all decrypt. --keyring-file FILE keeps the keys on disk
as Serf does (a JSON array of base64 keys, primary first, mode 0600): read at
start (created from --encrypt when missing), rewritten after every key change
made through the API (`headcount keys`), applied again on SIGHUP.

SIGINT/SIGTERM: leave gracefully (up to 3 s), then exit 0.
SIGHUP: apply the --keyring-file (install what it adds, make its first key
the primary, remove what it drops), and re-read the --config file and apply
its log-level and tags (those not given as flags; others take effect on
restart); a bad file is logged and changes nothing.
Logs go to stderr; --log-level, else RUST_LOG (default: info).")]
pub struct AgentArgs {
    /// Unique node name [default: the host name].
    #[arg(long, default_value_t = agent_config::host_name(), hide_default_value = true)]
    name: String,
    /// Address to bind, UDP and TCP (port 0 picks one).
    #[arg(long, value_name = "IP:PORT", default_value = "0.0.0.0:7946")]
    bind: SocketAddr,
    /// Address to announce to other nodes (default: the bound address; for
    /// 0.0.0.0 a private IPv4 address of the host, for :: a unique local or
    /// global IPv6 one).
    #[arg(long, value_name = "IP:PORT")]
    advertise: Option<SocketAddr>,
    /// Address of a node to join (repeatable): host:port, name/host:port,
    /// `[v6]:port` or a DNS name (all its A and AAAA records); without a
    /// port, the bound port.
    #[arg(long, value_name = "ADDR")]
    join: Vec<String>,
    /// Address to join in the background (repeatable, forms as --join):
    /// retried every --retry-interval until one join succeeds.
    #[arg(long, value_name = "ADDR")]
    retry_join: Vec<String>,
    /// Time between --retry-join attempts (ms, s, m or h).
    #[arg(long, value_name = "DURATION", default_value = "30s", value_parser = agent_config::parse_duration)]
    retry_interval: Duration,
    /// Exit with status 1 after this many failed --retry-join attempts (0:
    /// retry forever).
    #[arg(long, value_name = "N", default_value_t = 0)]
    retry_max: u32,
    /// Configuration file (TOML); flags given on the command line win.
    #[arg(long, value_name = "FILE")]
    config: Option<std::path::PathBuf>,
    /// Log level on stderr (takes precedence over RUST_LOG) [default: info].
    #[arg(long, value_enum)]
    log_level: Option<LogLevel>,
    /// The ids of the flags given on the command line (set by `resolve`).
    #[arg(skip)]
    from_cli: Vec<String>,
    /// Timing profile.
    #[arg(long, value_enum, default_value_t = Profile::Lan)]
    profile: Profile,
    /// Timing knobs over the profile (what `headcount tune` recommends).
    #[command(flatten)]
    timing: Timing,
    /// Node metadata (text), for plain memberlist peers; see --tag for Serf.
    #[arg(long, value_name = "TEXT", conflicts_with = "tag")]
    meta: Option<String>,
    /// Serf tag (repeatable), in the node metadata as Serf encodes tags, so
    /// `serf members` shows it.
    #[arg(long, value_name = "KEY=VALUE", value_parser = crate::tags::parse_tag)]
    tag: Vec<(String, String)>,
    /// Delegate protocol versions to advertise; Serf agents need e.g. 2,5,4.
    #[arg(long, value_name = "MIN,MAX,CUR", value_parser = parse_versions, default_value = "0,0,0")]
    delegate_versions: (u8, u8, u8),
    /// Encryption key, base64 (16, 24 or 32 bytes); repeatable, the first
    /// is the primary.
    #[arg(long, value_name = "BASE64KEY", value_parser = parse_key)]
    encrypt: Vec<Vec<u8>>,
    /// Keyring file (Serf's format: a JSON array of base64 keys, the primary
    /// first): its keys are used at start, key changes made through the API
    /// are written to it, and SIGHUP applies it. Created from --encrypt when
    /// missing; not allowed with --encrypt when it exists.
    #[arg(long, value_name = "FILE")]
    keyring_file: Option<std::path::PathBuf>,
    /// Cluster label: traffic with another label is dropped (at most 255
    /// bytes; separates clusters, not a secret).
    #[arg(long, value_name = "TEXT")]
    label: Option<String>,
    /// Accept traffic and members only from this address block, e.g.
    /// 10.0.0.0/8 (repeatable).
    #[arg(long, value_name = "CIDR")]
    allow: Vec<Cidr>,
    /// The HTTP API: --http, --http-token, --http-insecure.
    #[command(flatten)]
    http: crate::http_args::HttpArgs,
    /// GET /metrics: --metrics-prefix, --metric-label.
    #[command(flatten)]
    metrics: crate::metrics_endpoint::MetricsArgs,
}

impl AgentArgs {
    /// The --log-level given (flag or configuration file), if any.
    pub fn log_level(&self) -> Option<LogLevel> {
        self.log_level
    }
}

/// Decodes a base64 encryption key and checks its length.
pub fn parse_key(s: &str) -> Result<Vec<u8>, String> {
    let key = base64::engine::general_purpose::STANDARD
        .decode(s.trim())
        .map_err(|e| format!("not valid base64 ({e})"))?;
    Keyring::validate_key(&key).map_err(|_| {
        format!(
            "the key is {} bytes; AES needs 16, 24 or 32 (e.g. from `headcount keygen`)",
            key.len()
        )
    })?;
    Ok(key)
}

/// Timing knobs that replace the profile's values when given.
#[derive(Args, Clone, Debug, Default, PartialEq, Eq)]
pub struct Timing {
    /// Time between probes of the next member (ms, s, m or h).
    #[arg(long, value_name = "DURATION", value_parser = agent_config::parse_duration)]
    probe_interval: Option<Duration>,
    /// How long a direct probe waits for its ack before asking others.
    #[arg(long, value_name = "DURATION", value_parser = agent_config::parse_duration)]
    probe_timeout: Option<Duration>,
    /// Suspicion timeout multiplier (× log10(n) × probe interval).
    #[arg(long, value_name = "N")]
    suspicion_mult: Option<u32>,
    /// Longest suspicion timeout as a multiple of the shortest.
    #[arg(long, value_name = "N")]
    suspicion_max_timeout_mult: Option<u32>,
    /// Time between gossip rounds.
    #[arg(long, value_name = "DURATION", value_parser = agent_config::parse_duration)]
    gossip_interval: Option<Duration>,
    /// Members gossiped to per round.
    #[arg(long, value_name = "N")]
    gossip_nodes: Option<usize>,
    /// Retransmissions of each broadcast (× log10(n + 1)).
    #[arg(long, value_name = "N")]
    retransmit_mult: Option<u32>,
    /// Time between full state exchanges (scaled up above 32 members; 0
    /// turns them off).
    #[arg(long, value_name = "DURATION", value_parser = agent_config::parse_duration)]
    push_pull_interval: Option<Duration>,
}

impl Timing {
    /// `config` with the knobs given.
    pub fn apply(&self, mut c: Config) -> Config {
        if let Some(v) = self.probe_interval {
            c.probe_interval = v;
        }
        if let Some(v) = self.probe_timeout {
            c.probe_timeout = v;
        }
        if let Some(v) = self.suspicion_mult {
            c.suspicion_mult = v;
        }
        if let Some(v) = self.suspicion_max_timeout_mult {
            c.suspicion_max_timeout_mult = v;
        }
        if let Some(v) = self.gossip_interval {
            c.gossip_interval = v;
        }
        if let Some(v) = self.gossip_nodes {
            c.gossip_nodes = v;
        }
        if let Some(v) = self.retransmit_mult {
            c.retransmit_mult = v;
        }
        if let Some(v) = self.push_pull_interval {
            c.push_pull_interval = v;
        }
        c
    }
}

/// A configuration preset.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
enum Profile {
    /// Go's DefaultLANConfig.
    Lan,
    /// Go's DefaultWANConfig.
    Wan,
    /// Go's DefaultLocalConfig (loopback).
    Local,
}

fn parse_versions(s: &str) -> Result<(u8, u8, u8), String> {
    let parts: Vec<&str> = s.split(',').map(str::trim).collect();
    if parts.len() != 3 {
        return Err("expected MIN,MAX,CUR, e.g. 2,5,4".to_string());
    }
    let n = |p: &str| {
        p.parse::<u8>()
            .map_err(|_| format!("{p:?} is not a version (0-255)"))
    };
    let (min, max, cur) = (n(parts[0])?, n(parts[1])?, n(parts[2])?);
    if min > max || cur < min || cur > max {
        return Err(format!("need MIN <= CUR <= MAX, got {min},{max},{cur}"));
    }
    Ok((min, max, cur))
}

/// Writes lines to stdout from one task, so the node never waits for a slow
/// reader of its output.
#[derive(Clone)]
struct Printer(mpsc::UnboundedSender<String>);

impl Printer {
    fn print(&self, line: String) {
        let _ = self.0.send(line);
    }
}

/// One membership event, fields in the documented order.
#[derive(Serialize)]
struct MemberLine<'a> {
    event: &'a str,
    node: &'a str,
    addr: String,
    state: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    tags: Option<crate::tags::Tags>,
}

/// One entry of the answer to `members`.
#[derive(Serialize)]
struct MemberEntry<'a> {
    node: &'a str,
    addr: String,
    state: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    tags: Option<crate::tags::Tags>,
}

fn member_json(event: &str, m: &MemberInfo) -> String {
    json(&MemberLine {
        event,
        node: &m.name,
        addr: m.addr.to_string(),
        state: m.state.as_str(),
        tags: crate::tags::decode(&m.meta),
    })
}

/// Serializes with fields in declaration order (serde_json's `Value` maps
/// would sort them).
fn json<T: Serialize>(v: &T) -> String {
    serde_json::to_string(v).expect("plain data serializes")
}

impl EventDelegate for Printer {
    fn notify_join(&self, node: &MemberInfo) {
        self.print(member_json("join", node));
    }
    fn notify_leave(&self, node: &MemberInfo) {
        self.print(member_json("leave", node));
    }
    fn notify_update(&self, node: &MemberInfo) {
        self.print(member_json("update", node));
    }
}

impl MessageDelegate for Printer {
    fn notify_msg(&self, msg: &[u8]) {
        #[derive(Serialize)]
        struct UserLine<'a> {
            event: &'a str,
            msg: &'a str,
        }
        let msg = String::from_utf8_lossy(msg);
        self.print(json(&UserLine {
            event: "user",
            msg: &msg,
        }));
    }
}

pub async fn run(args: AgentArgs, set_log_level: SetLogLevel) -> ExitCode {
    let (tx, mut rx) = mpsc::unbounded_channel::<String>();
    let printer_task = tokio::spawn(async move {
        while let Some(line) = rx.recv().await {
            let mut out = std::io::stdout().lock();
            if writeln!(out, "{line}").and_then(|_| out.flush()).is_err() {
                // stdout is gone; keep draining so senders never block.
                continue;
            }
        }
    });
    let printer = Printer(tx);
    let code = agent(args, printer, set_log_level).await;
    // Every sender is gone once the node is shut down: flush what is left.
    let _ = tokio::time::timeout(Duration::from_secs(2), printer_task).await;
    code
}

async fn agent(args: AgentArgs, printer: Printer, set_log_level: SetLogLevel) -> ExitCode {
    // Refuse an unsafe HTTP API before the node starts.
    let http_on = match crate::http_args::check(&args.http) {
        Ok(addr) => addr.is_some(),
        Err(e) => {
            eprintln!("headcount: {e}");
            return ExitCode::FAILURE;
        }
    };
    let config = match args.profile {
        Profile::Lan => Config::lan(),
        Profile::Wan => Config::wan(),
        Profile::Local => Config::local(),
    };
    let config = args.timing.apply(config);
    if let Err(e) = config.validate() {
        eprintln!("headcount: the timing settings do not work together: {e}");
        return ExitCode::FAILURE;
    }
    let mut config = config;
    // Before the node starts: it registers its metrics then. Nothing to
    // serve them without the API.
    #[cfg(feature = "http-api")]
    if http_on {
        if let Err(e) = crate::metrics_endpoint::install(&args.metrics) {
            eprintln!("headcount: {e}");
            return ExitCode::FAILURE;
        }
    }
    let (dmin, dmax, dcur) = args.delegate_versions;
    config.delegate_protocol_min = dmin;
    config.delegate_protocol_max = dmax;
    config.delegate_protocol_version = dcur;
    let mut opts = Options::new(args.name.clone(), args.bind, config)
        .with_event_delegate(Arc::new(printer.clone()))
        .with_message_delegate(Arc::new(printer.clone()));
    if let Some(a) = args.advertise {
        opts = opts.with_advertise_addr(a);
    }
    if let Some(m) = &args.meta {
        opts = opts.with_meta(m.as_bytes().to_vec());
    }
    if !args.tag.is_empty() {
        let tags: crate::tags::Tags = args.tag.iter().cloned().collect();
        opts = opts.with_meta(crate::tags::encode(&tags));
    }
    let keyring_file = args.keyring_file.as_ref().map(KeyringFile::new);
    let mut keys = args.encrypt.clone();
    if let Some(f) = &keyring_file {
        match f.load() {
            Ok(Some(_)) if !args.encrypt.is_empty() => {
                eprintln!(
                    "headcount: --encrypt and --keyring-file {}: the file exists and holds the \
                     keys; drop --encrypt (or the file)",
                    f.path().display()
                );
                return ExitCode::FAILURE;
            }
            Ok(Some(from_file)) => keys = from_file,
            Ok(None) => {}
            Err(e) => {
                eprintln!("headcount: {e}");
                return ExitCode::FAILURE;
            }
        }
    }
    if let Some((primary, others)) = keys.split_first() {
        // Lengths were checked while parsing the arguments.
        match Keyring::with_keys(primary, others) {
            Ok(k) => opts = opts.with_keyring(k),
            Err(e) => {
                eprintln!("headcount: --encrypt: {e}");
                return ExitCode::FAILURE;
            }
        }
    }
    if let Some(l) = &args.label {
        opts = opts.with_label(l.as_bytes().to_vec());
    }
    if !args.allow.is_empty() {
        opts = opts.with_cidrs_allowed(args.allow.iter().copied());
    }
    opts = opts.with_metric_labels(args.metrics.metric_label.iter().cloned());
    let ml = match Memberlist::create(opts).await {
        Ok(ml) => ml,
        Err(headcount::Error::NoPrivateAddress { bind }) => {
            eprintln!(
                "headcount: bound to {bind}, but no interface has a private address to \
                 announce: pass --advertise IP:PORT, or --bind a specific address"
            );
            return ExitCode::FAILURE;
        }
        Err(e) => {
            eprintln!("headcount: {e}");
            return ExitCode::FAILURE;
        }
    };
    if let Some(f) = &keyring_file {
        // A new file from --encrypt, so later changes have a place to go.
        if !f.path().exists() {
            if let Err(e) = f.save_from(&ml).await {
                eprintln!("headcount: {e}");
                ml.shutdown().await;
                return ExitCode::FAILURE;
            }
        }
    }
    #[cfg(feature = "http-api")]
    match crate::http_api::start(&args.http, &ml, keyring_file.clone()).await {
        Ok(Some(addr)) => printer.print(crate::http_api::bound_line(addr)),
        Ok(None) => {}
        Err(e) => {
            eprintln!("headcount: {e}");
            ml.shutdown().await;
            return ExitCode::FAILURE;
        }
    }
    #[cfg(not(feature = "http-api"))]
    if !http_on && args.http.http.is_none() {
        tracing::info!("HTTP API off: not in this build (cargo feature `http-api`)");
    }
    tracing::info!(
        "{} listening on {} (announced as {})",
        args.name,
        ml.local_addr(),
        ml.advertise_addr()
    );

    if !args.join.is_empty() {
        match ml.join(&args.join).await {
            Ok(n) => tracing::info!("joined the cluster through {n} of the given addresses"),
            Err(e) => {
                // One line, with why each address failed.
                eprintln!("headcount: {e}");
                ml.shutdown().await;
                return ExitCode::FAILURE;
            }
        }
    }

    let hup_task = tokio::spawn(reload_on_hup(ml.clone(), args.clone(), set_log_level));
    let stdin_task = (!std::io::stdin().is_terminal())
        .then(|| tokio::spawn(read_commands(ml.clone(), printer.clone())));
    drop(printer);

    let retry = (!args.retry_join.is_empty()).then(|| {
        tokio::spawn(retry_join(
            ml.clone(),
            args.retry_join.clone(),
            args.retry_interval,
            args.retry_max,
        ))
    });
    let retry_failed = async {
        match retry {
            Some(t) => matches!(t.await, Ok(false)),
            None => false,
        }
    };
    tokio::select! {
        _ = wait_for_signal() => {}
        true = retry_failed => {
            eprintln!(
                "headcount: --retry-join: {} attempts failed; giving up",
                args.retry_max
            );
            ml.shutdown().await;
            return ExitCode::FAILURE;
        }
    }
    tracing::info!("leaving the cluster");
    if let Err(e) = ml.leave(LEAVE_TIMEOUT).await {
        tracing::warn!("graceful leave incomplete: {e}");
    }
    ml.shutdown().await;
    if let Some(t) = stdin_task {
        t.abort();
    }
    hup_task.abort();
    ExitCode::SUCCESS
}

/// Joins through `addrs` until one attempt succeeds (true), or `max`
/// attempts failed (false; 0 is no limit).
async fn retry_join(ml: Memberlist, addrs: Vec<String>, interval: Duration, max: u32) -> bool {
    let mut attempts = 0u32;
    loop {
        match ml.join(&addrs).await {
            Ok(n) => {
                tracing::info!("retry-join: joined the cluster through {n} of the given addresses");
                return true;
            }
            Err(e) => {
                attempts += 1;
                tracing::warn!("retry-join: attempt {attempts} failed: {e}");
                if max != 0 && attempts >= max {
                    return false;
                }
            }
        }
        tokio::time::sleep(interval).await;
    }
}

/// On SIGHUP, applies the --keyring-file, then re-reads the --config file
/// and applies its log level and tags (unless given as flags); other keys
/// take effect on restart.
async fn reload_on_hup(ml: Memberlist, args: AgentArgs, set_log_level: SetLogLevel) {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{signal, SignalKind};
        let Ok(mut hup) = signal(SignalKind::hangup()) else {
            return;
        };
        let mut meta = if args.tag.is_empty() {
            args.meta.clone().unwrap_or_default().into_bytes()
        } else {
            crate::tags::encode(&args.tag.iter().cloned().collect())
        };
        let keyring_file = args.keyring_file.as_ref().map(KeyringFile::new);
        while hup.recv().await.is_some() {
            if let Some(f) = &keyring_file {
                match f.apply_to(&ml).await {
                    Ok(summary) => tracing::info!("SIGHUP: keyring file applied: {summary}"),
                    Err(e) => tracing::warn!("SIGHUP: keyring file not applied: {e}"),
                }
            }
            if args.config.is_none() {
                continue;
            }
            let r = match agent_config::reload(&args) {
                Ok(r) => r,
                Err(e) => {
                    tracing::warn!("SIGHUP: not reloaded: {e}");
                    continue;
                }
            };
            set_log_level(r.log_level);
            if args.meta.is_none() {
                let new = if r.tags.is_empty() {
                    Vec::new()
                } else {
                    crate::tags::encode(&r.tags)
                };
                if new != meta {
                    match ml.update_meta(new.clone(), LEAVE_TIMEOUT).await {
                        Ok(()) => meta = new,
                        Err(e) => tracing::warn!("SIGHUP: cannot update the tags: {e}"),
                    }
                }
            }
            tracing::info!(
                "SIGHUP: reloaded; log level {}, tags {:?} (other settings take effect on restart)",
                r.log_level.map_or("default", LogLevel::as_str),
                r.tags
            );
        }
    }
    #[cfg(not(unix))]
    {
        let _ = (ml, args, set_log_level);
    }
}

async fn wait_for_signal() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{signal, SignalKind};
        match signal(SignalKind::terminate()) {
            Ok(mut term) => {
                tokio::select! {
                    _ = tokio::signal::ctrl_c() => {}
                    _ = term.recv() => {}
                }
            }
            Err(_) => {
                let _ = tokio::signal::ctrl_c().await;
            }
        }
    }
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
    }
}

/// Serves commands from stdin until EOF (which does not stop the agent).
async fn read_commands(ml: Memberlist, printer: Printer) {
    let mut lines = tokio::io::BufReader::new(tokio::io::stdin()).lines();
    loop {
        let line = match lines.next_line().await {
            Ok(Some(l)) => l,
            Ok(None) => break,
            Err(e) => {
                tracing::warn!("reading stdin failed: {e}");
                break;
            }
        };
        let line = line.trim();
        if line.is_empty() {
            continue;
        }
        let (cmd, rest) = line.split_once(char::is_whitespace).unwrap_or((line, ""));
        let rest = rest.trim_start();
        match cmd {
            "members" => {
                #[derive(Serialize)]
                struct MembersLine<'a> {
                    event: &'a str,
                    members: Vec<MemberEntry<'a>>,
                }
                // Every state, as the answer shows each member's.
                let members = ml.members_all();
                let entries = members
                    .iter()
                    .map(|m| MemberEntry {
                        node: &m.name,
                        addr: m.addr.to_string(),
                        state: m.state.as_str(),
                        tags: crate::tags::decode(&m.meta),
                    })
                    .collect();
                printer.print(json(&MembersLine {
                    event: "members",
                    members: entries,
                }));
            }
            "send-reliable" | "send-best-effort" => {
                let Some((node, text)) = rest
                    .split_once(char::is_whitespace)
                    .or(Some((rest, "")))
                    .filter(|(n, _)| !n.is_empty())
                else {
                    eprintln!("headcount: usage: {cmd} NODE TEXT");
                    continue;
                };
                let r = if cmd == "send-reliable" {
                    ml.send_reliable(node, text.as_bytes()).await
                } else {
                    ml.send_best_effort(node, text.as_bytes()).await
                };
                if let Err(e) = r {
                    eprintln!("headcount: {cmd} {node}: {e}");
                }
            }
            other => eprintln!(
                "headcount: unknown command {other:?} (send-reliable, send-best-effort, members)"
            ),
        }
    }
    tracing::debug!("stdin closed; still running");
}
