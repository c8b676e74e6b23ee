//! The headcount command: `headcount agent` runs one cluster member and
//! reports events as JSON lines; `headcount demo` runs a five-node cluster
//! on loopback and narrates failure detection and recovery; `headcount
//! keygen` prints a new encryption key; `headcount members`, `info`,
//! `join`, `leave`, `send`, `keys` and `monitor` talk to a running agent's
//! HTTP API; `headcount tune` recommends timing knobs.

#![forbid(unsafe_code)]

mod agent;
mod bench;
mod client;
mod demo;
mod event_log;
mod http_api;
mod keyring_file;
mod metrics_endpoint;
mod tags;
mod tune;
mod web_view;

use std::io::IsTerminal;
use std::process::ExitCode;
use std::time::Duration;

use clap::{CommandFactory, FromArgMatches, Parser, Subcommand};
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;
use tracing_subscriber::{reload, EnvFilter};

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
    Demo(demo::DemoArgs),
    /// Print a new random 32-byte encryption key, base64-encoded, for
    /// `agent --encrypt` (and Serf's -encrypt).
    Keygen,
    /// Run N nodes on 127.0.0.1, kill some, and print one JSON line of
    /// figures: convergence, detection, CPU, memory and bytes sent.
    Bench(bench::BenchArgs),
    /// Recommend a configuration for a cluster size, a network and goals
    /// (detection, dissemination, bandwidth, false deaths), with predicted
    /// figures beside Go's presets; --verify runs the simulator.
    Tune(tune::TuneArgs),
    #[command(flatten)]
    Client(client::ClientCommand),
}

fn main() -> ExitCode {
    // `headcount agent --help` ends with the HTTP API's endpoints.
    let command = Cli::command().mut_subcommand("agent", |agent| {
        let before = agent
            .get_after_help()
            .map(|h| h.to_string())
            .unwrap_or_default();
        agent.after_help(format!("{before}\n\n{}", http_api::HELP))
    });
    let matches = command.get_matches();
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
        Command::Demo(_) | Command::Bench(_) => "warn",
        Command::Keygen => return keygen(),
        Command::Tune(args) => return tune::run(args),
        Command::Client(c) => return client::run(c),
    };
    let filter = move |level: Option<agent::LogLevel>| match level {
        Some(level) => EnvFilter::new(level.as_str()),
        None => {
            EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(default_filter))
        }
    };
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
    let cli = match cli.command {
        Command::Bench(args) => return bench::main(args),
        command => Cli { command },
    };
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
        Command::Demo(args) => rt.block_on(demo::run(args)),
        Command::Keygen => unreachable!("handled before the runtime starts"),
        Command::Bench(_) => unreachable!("handled above"),
        Command::Client(_) | Command::Tune(_) => {
            unreachable!("handled before the runtime starts")
        }
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
