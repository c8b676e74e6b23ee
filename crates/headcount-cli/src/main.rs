//! The headcount command: `headcount agent` runs one cluster member and
//! reports events as JSON lines; `headcount demo` runs a five-node cluster
//! on loopback and narrates failure detection and recovery; `headcount
//! keygen` prints a new encryption key; `headcount members`, `info`,
//! `join`, `leave`, `send`, `keys` and `monitor` talk to a running agent's
//! HTTP API; `headcount tune` recommends timing knobs.
//!
//! Cargo features (all on by default) leave parts out: `client`, `demo`,
//! `bench`, `tune`, `http-api` (the agent's API), `dns` (names in
//! `--join`), `env-filter` (RUST_LOG's full syntax). Without any of them
//! (`--no-default-features`) the binary is the lean agent: `agent` and
//! `keygen`; a command left out says so when it is run.

#![forbid(unsafe_code)]

mod agent;
#[cfg(feature = "bench")]
mod bench;
#[cfg(feature = "client")]
mod client;
#[cfg(feature = "demo")]
mod demo;
#[cfg(feature = "http-api")]
mod event_log;
#[cfg(feature = "http-api")]
mod http_api;
mod http_args;
mod keyring_file;
mod metrics_endpoint;
mod tags;
#[cfg(feature = "tune")]
mod tune;
#[cfg(feature = "http-api")]
mod web_view;

use std::io::IsTerminal;
use std::process::ExitCode;
use std::time::Duration;

use clap::{CommandFactory, FromArgMatches, Parser, Subcommand};
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::reload;
use tracing_subscriber::util::SubscriberInitExt;

#[derive(Parser, Debug)]
#[command(
    name = "headcount",
    version,
    about = "Cluster membership by gossip (SWIM + Lifeguard), compatible with hashicorp/memberlist"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

// Parsed once at startup: the size of the agent's arguments does not matter.
#[allow(clippy::large_enum_variant)]
#[derive(Subcommand, Debug)]
enum Command {
    /// Run one cluster member and print one JSON object per line for every
    /// membership event and user message.
    Agent(agent::AgentArgs),
    /// Run a five-node cluster on 127.0.0.1, kill a node, bring it back,
    /// and narrate what the others see.
    #[cfg(feature = "demo")]
    Demo(demo::DemoArgs),
    /// Print a new random 32-byte encryption key, base64-encoded, for
    /// `agent --encrypt` (and Serf's -encrypt).
    Keygen,
    /// Run N nodes on 127.0.0.1, kill some, and print one JSON line of
    /// figures: convergence, detection, CPU, memory and bytes sent.
    #[cfg(feature = "bench")]
    Bench(bench::BenchArgs),
    /// Recommend a configuration for a cluster size, a network and goals
    /// (detection, dissemination, bandwidth, false deaths), with predicted
    /// figures beside Go's presets; --verify runs the simulator.
    #[cfg(feature = "tune")]
    Tune(tune::TuneArgs),
    #[cfg(feature = "client")]
    #[command(flatten)]
    Client(client::ClientCommand),
}

/// The commands a build can leave out, each with the cargo feature of
/// headcount-cli that has it. A build without one still knows the name
/// and says why it cannot run it (a test keeps this list in step with
/// `Command`).
const OPTIONAL_COMMANDS: &[(&str, &str)] = &[
    ("demo", "demo"),
    ("bench", "bench"),
    ("tune", "tune"),
    ("members", "client"),
    ("info", "client"),
    ("join", "client"),
    ("leave", "client"),
    ("send", "client"),
    ("keys", "client"),
    ("monitor", "client"),
];

/// What `headcount agent --help` ends with about the HTTP API.
#[cfg(feature = "http-api")]
const HTTP_HELP: &str = http_api::HELP;
#[cfg(not(feature = "http-api"))]
const HTTP_HELP: &str = "\
HTTP API: not in this build (built without the cargo feature `http-api`, as
the lean agent is): --http off is accepted, --http ADDR is an error.";

/// The command line: `Cli`'s commands, `agent --help` ending with the HTTP
/// API's, and a hidden stand-in for each optional command this build left
/// out (listed at the end of `--help`), with the names of those.
fn command_line() -> (clap::Command, Vec<(&'static str, &'static str)>) {
    let mut command = Cli::command().mut_subcommand("agent", |agent| {
        let before = agent
            .get_after_help()
            .map(|h| h.to_string())
            .unwrap_or_default();
        agent.after_help(format!("{before}\n\n{HTTP_HELP}"))
    });
    let missing: Vec<(&str, &str)> = OPTIONAL_COMMANDS
        .iter()
        .copied()
        .filter(|(name, _)| command.find_subcommand(name).is_none())
        .collect();
    for &(name, feature) in &missing {
        command = command.subcommand(
            clap::Command::new(name)
                .about(format!("Not in this build (cargo feature `{feature}`)"))
                .hide(true)
                .disable_help_flag(true)
                .arg(
                    clap::Arg::new("args")
                        .num_args(0..)
                        .trailing_var_arg(true)
                        .allow_hyphen_values(true),
                ),
        );
    }
    if !missing.is_empty() {
        let names: Vec<&str> = missing.iter().map(|(name, _)| *name).collect();
        command = command.after_help(format!(
            "Not in this build (left out by its cargo features): {}.",
            names.join(", ")
        ));
    }
    (command, missing)
}

/// The log filter: `--log-level`, else RUST_LOG, else `default`.
#[cfg(feature = "env-filter")]
fn log_filter(level: Option<agent::LogLevel>, default: &str) -> tracing_subscriber::EnvFilter {
    use tracing_subscriber::EnvFilter;
    match level {
        Some(level) => EnvFilter::new(level.as_str()),
        None => EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(default)),
    }
}

/// The log filter: `--log-level`, else RUST_LOG, else `default`. Without
/// the `env-filter` feature RUST_LOG takes `level` and `target=level`
/// directives, comma-separated (no span or field filters); one it cannot
/// parse is ignored, as with the feature.
#[cfg(not(feature = "env-filter"))]
fn log_filter(
    level: Option<agent::LogLevel>,
    default: &str,
) -> tracing_subscriber::filter::Targets {
    use tracing_subscriber::filter::Targets;
    let parse = |s: &str| s.parse::<Targets>().ok();
    match level {
        Some(level) => parse(level.as_str()),
        None => std::env::var("RUST_LOG")
            .ok()
            .filter(|s| !s.trim().is_empty())
            .and_then(|s| parse(&s)),
    }
    .or_else(|| parse(default))
    .unwrap_or_default()
}

fn main() -> ExitCode {
    let (command, missing) = command_line();
    let matches = command.get_matches();
    if let Some(&(name, feature)) = matches
        .subcommand_name()
        .and_then(|run| missing.iter().find(|(name, _)| *name == run))
    {
        eprintln!(
            "headcount: `{name}` is not in this build: it was built without the cargo feature \
             `{feature}` of headcount-cli (as the lean agent is); a build with default features \
             has every command"
        );
        return ExitCode::from(2);
    }
    let mut cli = Cli::from_arg_matches(&matches).unwrap_or_else(|e| e.exit());
    // The agent's --config file fills in what the flags leave out.
    let mut log_level = None;
    if let Command::Agent(args) = &mut cli.command {
        let sub = matches
            .subcommand_matches("agent")
            .expect("the agent subcommand was parsed");
        if let Err(e) = agent::resolve(args, sub) {
            eprintln!("headcount: {e}");
            return ExitCode::from(2);
        }
        log_level = args.log_level();
    }
    // The demo's story is on stdout; keep its stderr for problems.
    let default_filter = match cli.command {
        Command::Agent(_) => "info",
        #[cfg(feature = "demo")]
        Command::Demo(_) => "warn",
        #[cfg(feature = "bench")]
        Command::Bench(_) => "warn",
        Command::Keygen => return keygen(),
        #[cfg(feature = "tune")]
        Command::Tune(args) => return tune::run(args),
        #[cfg(feature = "client")]
        Command::Client(c) => return client::run(c),
    };
    let filter = move |level: Option<agent::LogLevel>| log_filter(level, default_filter);
    // Reloadable, for the agent's SIGHUP.
    let (filter_layer, filter_handle) = reload::Layer::new(filter(log_level));
    tracing_subscriber::registry()
        .with(filter_layer)
        .with(
            tracing_subscriber::fmt::layer()
                .with_writer(std::io::stderr)
                .with_ansi(std::io::stderr().is_terminal()),
        )
        .init();
    let set_log_level: agent::SetLogLevel = Box::new(move |level| {
        if let Err(e) = filter_handle.reload(filter(level)) {
            tracing::warn!("cannot change the log level: {e}");
        }
    });
    // The benchmark picks its own runtime flavour.
    #[cfg(feature = "bench")]
    if let Command::Bench(args) = cli.command {
        return bench::main(args);
    }
    // One node and its HTTP API need one thread: a current-thread runtime
    // spares the worker threads (their stacks and malloc arenas) a
    // multi-thread one would start. Blocking work (stdin) still gets
    // tokio's blocking pool.
    let rt = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("headcount: cannot start the runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    let code = match cli.command {
        Command::Agent(args) => rt.block_on(agent::run(args, set_log_level)),
        #[cfg(feature = "demo")]
        Command::Demo(args) => rt.block_on(demo::run(args)),
        _ => unreachable!("handled before the runtime starts"),
    };
    // A blocking read of stdin may still be pending: do not wait for it.
    rt.shutdown_timeout(Duration::from_millis(100));
    code
}

/// `headcount keygen`: 32 random bytes from the OS, base64 (standard).
fn keygen() -> ExitCode {
    use base64::Engine;
    let mut key = [0u8; 32];
    if let Err(e) = getrandom::getrandom(&mut key) {
        eprintln!("headcount: the OS random generator failed: {e}");
        return ExitCode::FAILURE;
    }
    println!("{}", base64::engine::general_purpose::STANDARD.encode(key));
    ExitCode::SUCCESS
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `OPTIONAL_COMMANDS` names every command but `agent` and `keygen`,
    /// and this build has exactly those whose feature is on.
    #[test]
    fn optional_commands_match_the_commands() {
        let enabled = |feature: &str| match feature {
            "demo" => cfg!(feature = "demo"),
            "bench" => cfg!(feature = "bench"),
            "tune" => cfg!(feature = "tune"),
            "client" => cfg!(feature = "client"),
            other => panic!("unknown feature {other}"),
        };
        let built = Cli::command();
        for (name, feature) in OPTIONAL_COMMANDS {
            assert_eq!(
                built.find_subcommand(name).is_some(),
                enabled(feature),
                "{name} (feature {feature})"
            );
        }
        for sub in built.get_subcommands() {
            let name = sub.get_name();
            assert!(
                ["agent", "keygen"].contains(&name)
                    || OPTIONAL_COMMANDS.iter().any(|(n, _)| *n == name),
                "{name} is missing from OPTIONAL_COMMANDS"
            );
        }
        // Every name is on the command line, as the command or its stand-in.
        let (line, missing) = command_line();
        for (name, _) in OPTIONAL_COMMANDS {
            assert!(line.find_subcommand(name).is_some(), "{name}");
        }
        assert_eq!(
            missing.len(),
            OPTIONAL_COMMANDS
                .iter()
                .filter(|(_, f)| !enabled(f))
                .count()
        );
        line.debug_assert();
    }
}
