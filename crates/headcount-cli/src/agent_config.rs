//! The agent's configuration beyond its flags: `--config FILE` (TOML), the
//! host name as the default node name, durations and log levels.
//!
//! A child module of `agent`, so it fills in [`AgentArgs`] directly.
//!
//! The file's keys are the flags' names without the dashes in front
//! (kebab-case, e.g. `delegate-versions`); repeatable flags take arrays,
//! and `tag` takes a table. A flag given on the command line replaces the
//! file's value (a repeatable one replaces the whole list).

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::Path;
use std::str::FromStr;
use std::time::Duration;

use clap::parser::ValueSource;
use clap::{ArgMatches, ValueEnum};
use headcount::Cidr;
use serde::Deserialize;

use crate::tags::Tags;

use super::{parse_key, parse_versions, AgentArgs, Profile};

/// The keys of a configuration file, one per flag (except `config`).
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
struct FileConfig {
    name: Option<String>,
    bind: Option<String>,
    advertise: Option<String>,
    join: Option<Vec<String>>,
    retry_join: Option<Vec<String>>,
    retry_interval: Option<String>,
    retry_max: Option<u32>,
    profile: Option<String>,
    meta: Option<String>,
    tag: Option<BTreeMap<String, String>>,
    delegate_versions: Option<String>,
    encrypt: Option<Vec<String>>,
    keyring_file: Option<String>,
    label: Option<String>,
    allow: Option<Vec<String>>,
    log_level: Option<String>,
    http: Option<String>,
    http_token: Option<String>,
    http_token_file: Option<String>,
    http_insecure: Option<bool>,
    http_idle_timeout: Option<String>,
    metrics_prefix: Option<String>,
    metric_label: Option<BTreeMap<String, String>>,
    probe_interval: Option<String>,
    probe_timeout: Option<String>,
    suspicion_mult: Option<u32>,
    suspicion_max_timeout_mult: Option<u32>,
    gossip_interval: Option<String>,
    gossip_nodes: Option<usize>,
    retransmit_mult: Option<u32>,
    push_pull_interval: Option<String>,
}

/// The log levels of `--log-level`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum LogLevel {
    /// Only errors.
    Error,
    /// Errors and warnings (e.g. failed join attempts).
    Warn,
    /// The default.
    Info,
    /// More detail.
    Debug,
    /// Everything.
    Trace,
}

impl LogLevel {
    /// The level as an `EnvFilter` directive.
    pub fn as_str(self) -> &'static str {
        match self {
            LogLevel::Error => "error",
            LogLevel::Warn => "warn",
            LogLevel::Info => "info",
            LogLevel::Debug => "debug",
            LogLevel::Trace => "trace",
        }
    }
}

/// This host's name (Linux: `/proc/sys/kernel/hostname`), or an empty
/// string when it cannot be read; the agent then asks for `--name`.
pub fn host_name() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|s| s.trim().to_string())
        .unwrap_or_default()
}

/// Parses a duration: a number with a unit of ms, s, m or h (e.g. `200ms`,
/// `30s`, `1.5m`).
pub fn parse_duration(s: &str) -> Result<Duration, String> {
    let s = s.trim();
    let split = s
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(s.len());
    let (num, unit) = s.split_at(split);
    let n: f64 = num
        .parse()
        .map_err(|_| format!("{s:?} is not a duration (e.g. 200ms, 30s, 5m, 1h)"))?;
    let secs = match unit.trim() {
        "ms" => n / 1000.0,
        "s" => n,
        "m" => n * 60.0,
        "h" => n * 3600.0,
        _ => return Err(format!("{s:?} needs a unit: ms, s, m or h (e.g. 30s)")),
    };
    Duration::try_from_secs_f64(secs).map_err(|e| format!("{s:?}: {e}"))
}

/// Fills in `args` from `--config FILE` where the command line (`matches`,
/// the agent's) left a flag out, then checks what spans several flags.
pub fn resolve(args: &mut AgentArgs, matches: &ArgMatches) -> Result<(), String> {
    args.from_cli = matches
        .ids()
        .map(|id| id.as_str().to_string())
        .filter(|id| matches.value_source(id) == Some(ValueSource::CommandLine))
        .collect();
    if let Some(path) = args.config.clone() {
        let file = read(&path)?;
        let given = |id: &str| matches.value_source(id) == Some(ValueSource::CommandLine);
        apply(args, file, &given).map_err(|e| format!("{}: {e}", path.display()))?;
    }
    if args.meta.is_some() && !args.tag.is_empty() {
        return Err(
            "--meta and --tag cannot be used together (meta holds either text for \
                    memberlist peers or Serf's tags)"
                .to_string(),
        );
    }
    if args.name.is_empty() {
        return Err("cannot read the host name for the node name: pass --name".to_string());
    }
    if let Some(path) = &args.http.http_token_file {
        if args.http.http_token.is_some() {
            return Err("--http-token and --http-token-file: give the token once".to_string());
        }
        args.http.http_token = Some(read_token(path)?);
    }
    Ok(())
}

/// What SIGHUP changes: the log level and the tags, re-read from the
/// configuration file unless given on the command line.
#[derive(Debug)]
pub struct Reloaded {
    /// The log level (`None`: RUST_LOG, else info).
    pub log_level: Option<LogLevel>,
    /// The tags (empty: none).
    pub tags: Tags,
}

/// Re-reads `args.config` for SIGHUP. The whole file is checked as at
/// startup; only the log level and tags take effect.
pub fn reload(args: &AgentArgs) -> Result<Reloaded, String> {
    let Some(path) = &args.config else {
        return Err("no --config file to reload".to_string());
    };
    let mut fresh = args.clone();
    let given = |id: &str| args.from_cli.iter().any(|g| g == id);
    // What the file no longer sets goes back to the defaults.
    if !given("tag") {
        fresh.tag.clear();
    }
    if !given("log_level") {
        fresh.log_level = None;
    }
    apply(&mut fresh, read(path)?, &given).map_err(|e| format!("{}: {e}", path.display()))?;
    if fresh.meta.is_some() && !fresh.tag.is_empty() {
        return Err("--meta and --tag cannot be used together".to_string());
    }
    Ok(Reloaded {
        log_level: fresh.log_level,
        tags: fresh.tag.into_iter().collect(),
    })
}

/// Reads an API token from a file: its first line, trimmed; the file must
/// be small and the token not empty.
fn read_token(path: &Path) -> Result<String, String> {
    use std::io::Read;
    let shown = path.display();
    let mut text = String::new();
    std::fs::File::open(path)
        .and_then(|f| f.take(4096).read_to_string(&mut text))
        .map_err(|e| format!("--http-token-file {shown}: {e}"))?;
    let token = text.lines().next().unwrap_or_default().trim();
    if token.is_empty() {
        return Err(format!(
            "--http-token-file {shown}: the first line holds no token"
        ));
    }
    Ok(token.to_string())
}

fn read(path: &Path) -> Result<FileConfig, String> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| format!("cannot read the configuration {}: {e}", path.display()))?;
    toml::from_str(&text).map_err(|e| {
        let line = e
            .span()
            .map(|r| {
                let n = text[..r.start].matches('\n').count();
                let at = text.lines().nth(n).unwrap_or_default().trim();
                format!(" line {} ({at}):", n + 1)
            })
            .unwrap_or_default();
        format!("{}:{line} {}", path.display(), e.message().trim_end())
    })
}

/// Sets each field the file has and the command line does not.
fn apply(args: &mut AgentArgs, f: FileConfig, given: &dyn Fn(&str) -> bool) -> Result<(), String> {
    fn addr(key: &str, s: &str) -> Result<SocketAddr, String> {
        s.parse()
            .map_err(|_| format!("{key}: {s:?} is not an IP:PORT address"))
    }
    let key = |k: &str, e: String| format!("{}: {e}", k.replace('_', "-"));
    if let Some(v) = f.name.filter(|_| !given("name")) {
        args.name = v;
    }
    if let Some(v) = f.bind.filter(|_| !given("bind")) {
        args.bind = addr("bind", &v)?;
    }
    if let Some(v) = f.advertise.filter(|_| !given("advertise")) {
        args.advertise = Some(addr("advertise", &v)?);
    }
    if let Some(v) = f.join.filter(|_| !given("join")) {
        args.join = v;
    }
    if let Some(v) = f.retry_join.filter(|_| !given("retry_join")) {
        args.retry_join = v;
    }
    if let Some(v) = f.retry_interval.filter(|_| !given("retry_interval")) {
        args.retry_interval = parse_duration(&v).map_err(|e| key("retry_interval", e))?;
    }
    if let Some(v) = f.retry_max.filter(|_| !given("retry_max")) {
        args.retry_max = v;
    }
    if let Some(v) = f.profile.filter(|_| !given("profile")) {
        args.profile = Profile::from_str(&v, true)
            .map_err(|_| key("profile", format!("{v:?} is not one of lan, wan, local")))?;
    }
    if let Some(v) = f.meta.filter(|_| !given("meta")) {
        args.meta = Some(v);
    }
    if let Some(v) = f.tag.filter(|_| !given("tag")) {
        args.tag = v.into_iter().collect();
    }
    if let Some(v) = f.delegate_versions.filter(|_| !given("delegate_versions")) {
        args.delegate_versions = parse_versions(&v).map_err(|e| key("delegate_versions", e))?;
    }
    if let Some(v) = f.encrypt.filter(|_| !given("encrypt")) {
        args.encrypt = v
            .iter()
            .map(|k| parse_key(k))
            .collect::<Result<_, _>>()
            .map_err(|e| key("encrypt", e))?;
    }
    if let Some(v) = f.keyring_file.filter(|_| !given("keyring_file")) {
        args.keyring_file = Some(v.into());
    }
    if let Some(v) = f.label.filter(|_| !given("label")) {
        args.label = Some(v);
    }
    if let Some(v) = f.allow.filter(|_| !given("allow")) {
        args.allow = v
            .iter()
            .map(|c| Cidr::from_str(c).map_err(|e| key("allow", format!("{c:?}: {e}"))))
            .collect::<Result<_, _>>()?;
    }
    if let Some(v) = f.http.filter(|_| !given("http")) {
        args.http.http = Some(crate::http_args::parse_listen(&v).map_err(|e| key("http", e))?);
    }
    if let Some(v) = f.http_token.filter(|_| !given("http_token")) {
        args.http.http_token = Some(v);
    }
    if let Some(v) = f.http_token_file.filter(|_| !given("http_token_file")) {
        args.http.http_token_file = Some(v.into());
    }
    if let Some(v) = f.http_insecure.filter(|_| !given("http_insecure")) {
        args.http.http_insecure = v;
    }
    if let Some(v) = f.http_idle_timeout.filter(|_| !given("http_idle_timeout")) {
        args.http.http_idle_timeout =
            parse_duration(&v).map_err(|e| key("http_idle_timeout", e))?;
    }
    if let Some(v) = f.metrics_prefix.filter(|_| !given("metrics_prefix")) {
        args.metrics.metrics_prefix =
            Some(crate::metrics_endpoint::parse_prefix(&v).map_err(|e| key("metrics_prefix", e))?);
    }
    if let Some(v) = f.metric_label.filter(|_| !given("metric_label")) {
        args.metrics.metric_label = v
            .iter()
            .map(|(k, v)| crate::metrics_endpoint::parse_label(&format!("{k}={v}")))
            .collect::<Result<_, _>>()
            .map_err(|e| key("metric_label", e))?;
    }
    let t = &mut args.timing;
    let dur = |k: &str, v: &str| parse_duration(v).map_err(|e| key(k, e));
    if let Some(v) = f.probe_interval.filter(|_| !given("probe_interval")) {
        t.probe_interval = Some(dur("probe_interval", &v)?);
    }
    if let Some(v) = f.probe_timeout.filter(|_| !given("probe_timeout")) {
        t.probe_timeout = Some(dur("probe_timeout", &v)?);
    }
    if let Some(v) = f.suspicion_mult.filter(|_| !given("suspicion_mult")) {
        t.suspicion_mult = Some(v);
    }
    if let Some(v) = f
        .suspicion_max_timeout_mult
        .filter(|_| !given("suspicion_max_timeout_mult"))
    {
        t.suspicion_max_timeout_mult = Some(v);
    }
    if let Some(v) = f.gossip_interval.filter(|_| !given("gossip_interval")) {
        t.gossip_interval = Some(dur("gossip_interval", &v)?);
    }
    if let Some(v) = f.gossip_nodes.filter(|_| !given("gossip_nodes")) {
        t.gossip_nodes = Some(v);
    }
    if let Some(v) = f.retransmit_mult.filter(|_| !given("retransmit_mult")) {
        t.retransmit_mult = Some(v);
    }
    if let Some(v) = f
        .push_pull_interval
        .filter(|_| !given("push_pull_interval"))
    {
        t.push_pull_interval = Some(dur("push_pull_interval", &v)?);
    }
    if let Some(v) = f.log_level.filter(|_| !given("log_level")) {
        args.log_level = Some(LogLevel::from_str(&v, true).map_err(|_| {
            key(
                "log_level",
                format!("{v:?} is not one of error, warn, info, debug, trace"),
            )
        })?);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::{CommandFactory, FromArgMatches, Parser};

    #[derive(Parser)]
    struct Cli {
        #[command(flatten)]
        agent: AgentArgs,
    }

    /// Parses the agent's flags and a configuration file as `main` does.
    fn parse(flags: &[&str], file: Option<&str>) -> Result<AgentArgs, String> {
        let dir = std::env::temp_dir().join(format!("headcount-cfg-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let mut argv = vec!["agent".to_string()];
        argv.extend(flags.iter().map(|s| s.to_string()));
        if let Some(text) = file {
            let path = dir.join(format!("{:x}.toml", text.len() * 31 + flags.len()));
            std::fs::write(&path, text).unwrap();
            argv.push("--config".into());
            argv.push(path.display().to_string());
        }
        let m = Cli::command()
            .try_get_matches_from(argv)
            .map_err(|e| e.to_string())?;
        let mut args = Cli::from_arg_matches(&m).map_err(|e| e.to_string())?.agent;
        resolve(&mut args, &m)?;
        Ok(args)
    }

    #[test]
    fn defaults_are_the_host_name_and_all_interfaces_on_7946() {
        let a = parse(&[], None).unwrap();
        assert_eq!(a.name, host_name());
        assert!(!a.name.is_empty());
        assert_eq!(a.bind, "0.0.0.0:7946".parse().unwrap());
        assert_eq!(a.retry_interval, Duration::from_secs(30));
        assert_eq!(a.retry_max, 0);
        assert_eq!(a.log_level, None);
    }

    #[test]
    fn the_file_fills_in_and_flags_override() {
        let file = r#"
            name = "from-file"
            bind = "127.0.0.1:7000"
            join = ["127.0.0.2:7946"]
            retry-join = ["127.0.0.3:7946", "127.0.0.4:7946"]
            retry-interval = "200ms"
            retry-max = 3
            profile = "local"
            delegate-versions = "2,5,4"
            encrypt = ["MDEyMzQ1Njc4OWFiY2RlZjAxMjM0NTY3ODlhYmNkZWY="]
            label = "l"
            allow = ["127.0.0.0/8"]
            log-level = "debug"
            http = "127.0.0.1:7999"
            http-token = "t0k3n"
            http-insecure = true
            metrics-prefix = "consul"
            [tag]
            role = "web"
            zone = "a"
            [metric-label]
            dc = "eu"
        "#;
        let a = parse(&[], Some(file)).unwrap();
        assert_eq!(a.metrics.metrics_prefix.as_deref(), Some("consul"));
        assert_eq!(
            a.metrics.metric_label,
            [("dc".to_string(), "eu".to_string())]
        );
        let a = parse(&["--metrics-prefix", "nomad"], Some(file)).unwrap();
        assert_eq!(a.metrics.metrics_prefix.as_deref(), Some("nomad"));
        assert_eq!(a.name, "from-file");
        assert_eq!(
            a.http.http,
            Some(crate::http_args::Listen::At(
                "127.0.0.1:7999".parse().unwrap()
            ))
        );
        assert_eq!(a.http.http_token.as_deref(), Some("t0k3n"));
        assert!(a.http.http_insecure);
        assert_eq!(a.bind, "127.0.0.1:7000".parse().unwrap());
        assert_eq!(a.join, ["127.0.0.2:7946"]);
        assert_eq!(a.retry_join.len(), 2);
        assert_eq!(a.retry_interval, Duration::from_millis(200));
        assert_eq!(a.retry_max, 3);
        assert_eq!(a.profile, Profile::Local);
        assert_eq!(a.delegate_versions, (2, 5, 4));
        assert_eq!(a.encrypt.len(), 1);
        assert_eq!(a.label.as_deref(), Some("l"));
        assert_eq!(a.allow.len(), 1);
        assert_eq!(a.log_level, Some(LogLevel::Debug));
        assert_eq!(
            a.tag,
            [("role".into(), "web".into()), ("zone".into(), "a".into())]
        );
        let a = parse(
            &[
                "--name",
                "flag",
                "--tag",
                "x=y",
                "--profile",
                "wan",
                "--log-level",
                "warn",
            ],
            Some(file),
        )
        .unwrap();
        assert_eq!(a.name, "flag");
        assert_eq!(a.tag, [("x".into(), "y".into())]);
        assert_eq!(a.profile, Profile::Wan);
        assert_eq!(a.log_level, Some(LogLevel::Warn));
        assert_eq!(a.bind, "127.0.0.1:7000".parse().unwrap());
    }

    #[test]
    fn bad_files_are_refused_naming_the_key() {
        let err = parse(&[], Some("nmae = \"x\"\n")).unwrap_err();
        assert!(err.contains("unknown field `nmae`"), "{err}");
        let err = parse(&[], Some("retry-interval = \"5\"\n")).unwrap_err();
        assert!(err.contains("retry-interval: "), "{err}");
        let err = parse(&[], Some("bind = \"nowhere\"\n")).unwrap_err();
        assert!(err.contains("bind: "), "{err}");
        let err = parse(&[], Some("meta = \"m\"\n[tag]\nk = \"v\"\n")).unwrap_err();
        assert!(err.contains("--meta and --tag"), "{err}");
        let err = parse(&["--config", "/nonexistent/headcount.toml"], None).unwrap_err();
        assert!(err.contains("cannot read the configuration"), "{err}");
    }

    #[test]
    fn reload_takes_the_file_unless_a_flag_was_given() {
        let dir = std::env::temp_dir().join(format!("headcount-reload-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("a.toml");
        std::fs::write(&path, "log-level = \"warn\"\n[tag]\nrole = \"web\"\n").unwrap();
        let p = path.to_str().unwrap();
        let a = parse(&["--config", p], None).unwrap();
        let b = parse(&["--config", p, "--tag", "x=y"], None).unwrap();
        std::fs::write(&path, "log-level = \"debug\"\n[tag]\nrole = \"db\"\n").unwrap();
        let r = reload(&a).unwrap();
        assert_eq!(r.log_level, Some(LogLevel::Debug));
        assert_eq!(r.tags, [("role".into(), "db".into())].into());
        let r = reload(&b).unwrap();
        assert_eq!(r.tags, [("x".into(), "y".into())].into());
        // Removed from the file: back to the defaults.
        std::fs::write(&path, "").unwrap();
        let r = reload(&a).unwrap();
        assert_eq!((r.log_level, r.tags.len()), (None, 0));
        std::fs::write(&path, "bogus = 1\n").unwrap();
        assert!(reload(&a).unwrap_err().contains("bogus"));
    }

    #[cfg(feature = "tune")]
    #[test]
    fn tune_toml_loads_as_agent_config() {
        use headcount::Config;
        #[derive(Parser)]
        struct Tune {
            #[command(flatten)]
            t: crate::tune::TuneArgs,
        }
        let args = Tune::try_parse_from([
            "tune",
            "--nodes",
            "500",
            "--detect",
            "4s",
            "--bandwidth",
            "1KB/s",
            "--format",
            "toml",
        ])
        .unwrap();
        let text = crate::tune::answer(&args.t).unwrap();
        let a = parse(&[], Some(&text)).unwrap();
        let t = &a.timing;
        assert!(t.probe_interval.is_some() && t.push_pull_interval.is_some());
        let config = t.apply(Config::lan());
        config.validate().unwrap();
        // The knobs the file sets are the ones the answer recommends: the
        // predicted detection in its header is what the model gives them.
        let p = headcount_sim::tune::model::predict(
            &config,
            &headcount_sim::tune::Situation {
                names: headcount_sim::tune::Names::Len(16),
                ..headcount_sim::tune::Situation::lan(500)
            },
        );
        assert!(p.detect_median <= 4.0, "{p:?}\n{text}");
        // A flag still wins over the file.
        let a = parse(&["--gossip-nodes", "9"], Some(&text)).unwrap();
        assert_eq!(a.timing.gossip_nodes, Some(9));
        // Bad values in the file are named.
        let e = parse(&[], Some("probe-interval = \"fast\"\n")).unwrap_err();
        assert!(e.contains("probe-interval"), "{e}");
    }

    #[test]
    fn durations() {
        assert_eq!(parse_duration("200ms"), Ok(Duration::from_millis(200)));
        assert_eq!(parse_duration("30s"), Ok(Duration::from_secs(30)));
        assert_eq!(parse_duration("1.5m"), Ok(Duration::from_secs(90)));
        assert_eq!(parse_duration("2h"), Ok(Duration::from_secs(7200)));
        assert!(parse_duration("30").is_err());
        assert!(parse_duration("s").is_err());
        assert!(parse_duration("-1s").is_err());
    }
}
