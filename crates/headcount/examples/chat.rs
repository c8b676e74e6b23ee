//! Chat: user messages between nodes.
//!
//! By default this starts three nodes in one process on 127.0.0.1 (free
//! ports), joins them, and has every node send every other node one line
//! best-effort (a UDP packet) and one reliably (over TCP). Each node prints
//! the lines its event stream delivers. The run exits 0 once every node got
//! every line, after the nodes leave and shut down, and fails with a message
//! if lines are still missing after 30 seconds.
//!
//! ```sh
//! cargo run -p headcount --example chat
//! ```
//!
//! It also runs as one interactive node: every line typed on stdin goes to
//! every other member, and what the others send is printed. Ctrl-D or
//! Ctrl-C leaves the cluster. In two terminals:
//!
//! ```sh
//! cargo run -p headcount --example chat -- --name alice --bind 127.0.0.1:7946
//! cargo run -p headcount --example chat -- --name bob --bind 127.0.0.1:7947 --join 127.0.0.1:7946
//! ```

use std::collections::BTreeSet;
use std::error::Error;
use std::net::SocketAddr;
use std::process::ExitCode;
use std::time::Duration;

use headcount::{Config, Event, Events, Memberlist, Options};
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::time::Instant;
use tokio_stream::StreamExt;

/// Nodes of the default run.
const NODES: usize = 3;
/// How long the default run may take before it gives up.
const TIMEOUT: Duration = Duration::from_secs(30);
/// How long a node spends telling the others it leaves.
const LEAVE_TIMEOUT: Duration = Duration::from_secs(5);

#[tokio::main]
async fn main() -> ExitCode {
    let result = match parse_args() {
        Ok(None) => demo().await,
        Ok(Some(args)) => interactive(args).await,
        Err(usage) => Err(usage.into()),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("chat: {e}");
            ExitCode::FAILURE
        }
    }
}

/// The default run: every node sends every other node two lines.
async fn demo() -> Result<(), Box<dyn Error>> {
    let mut nodes = Vec::new();
    for i in 1..=NODES {
        let addr: SocketAddr = "127.0.0.1:0".parse()?;
        let opts = Options::new(format!("node-{i}"), addr, Config::local());
        nodes.push(Memberlist::create(opts).await?);
    }
    // Joining one node is enough: gossip tells everyone about the rest.
    let seed = nodes[0].advertise_addr().to_string();
    for node in &nodes[1..] {
        node.join(&[&seed]).await?;
    }
    // Lines are addressed by member name, so every node must know the others.
    let deadline = Instant::now() + TIMEOUT;
    for node in &nodes {
        let mut watch = node.watch_members();
        tokio::time::timeout_at(deadline, watch.wait_for(|ms| ms.len() == NODES))
            .await
            .map_err(|_| format!("{} did not see all {NODES} nodes in time", node.name()))??;
    }
    let names: Vec<String> = nodes.iter().map(|n| n.name().to_string()).collect();

    // Subscribe before sending, so no line can arrive unseen.
    let receivers: Vec<_> = nodes
        .iter()
        .map(|node| {
            let me = node.name().to_string();
            let expected = names
                .iter()
                .filter(|from| **from != me)
                .flat_map(|from| ["best-effort", "reliable"].map(|how| line(from, &me, how)))
                .collect();
            let events = node.events();
            tokio::spawn(tokio::time::timeout_at(
                deadline,
                receive(me, events, expected),
            ))
        })
        .collect();

    for from in &nodes {
        for to in names.iter().filter(|to| *to != from.name()) {
            from.send_best_effort(to, line(from.name(), to, "best-effort").as_bytes())
                .await?;
            // Returns once the line was written to the peer's TCP socket.
            from.send_reliable(to, line(from.name(), to, "reliable").as_bytes())
                .await?;
        }
    }

    let mut failures = Vec::new();
    for (name, receiver) in names.iter().zip(receivers) {
        match receiver.await? {
            Ok(Ok(())) => {}
            Ok(Err(e)) => failures.push(format!("{name}: {e}")),
            Err(_elapsed) => failures.push(format!("{name}: timed out")),
        }
    }

    for node in &nodes {
        node.leave(LEAVE_TIMEOUT).await?;
        node.shutdown().await;
    }
    if failures.is_empty() {
        println!("every node got all {} lines", 2 * (NODES - 1));
        Ok(())
    } else {
        Err(failures.join("; ").into())
    }
}

/// The line `from` sends `to`.
fn line(from: &str, to: &str, how: &str) -> String {
    format!("hello {to}, from {from} ({how})")
}

/// Prints the user messages of `events` until every line of `expected`
/// has arrived.
async fn receive(
    me: String,
    mut events: Events,
    mut expected: BTreeSet<String>,
) -> Result<(), String> {
    while !expected.is_empty() {
        match events.next().await {
            Some(Ok(Event::UserMessage(msg))) => {
                let msg = String::from_utf8_lossy(&msg).into_owned();
                println!("[{me}] {msg}");
                expected.remove(&msg);
            }
            // Joins (the stream starts with the current members) and the rest.
            Some(Ok(_)) => {}
            // Too slow to keep up: lines may have been dropped from the stream.
            Some(Err(lagged)) => return Err(lagged.to_string()),
            None => return Err(format!("stream ended, still missing {expected:?}")),
        }
    }
    Ok(())
}

/// Arguments of the interactive mode.
struct Args {
    name: String,
    bind: SocketAddr,
    join: Vec<String>,
}

const USAGE: &str = "usage: chat [--name NAME [--bind ADDR] [--join ADDR]...]";

/// `None` without arguments (the default run), else the interactive node's.
fn parse_args() -> Result<Option<Args>, String> {
    let mut args = std::env::args().skip(1);
    let mut name = None;
    let mut bind = "127.0.0.1:7946".to_string();
    let mut join = Vec::new();
    let mut any = false;
    while let Some(flag) = args.next() {
        any = true;
        let mut value = || args.next().ok_or(format!("{flag} needs a value; {USAGE}"));
        match flag.as_str() {
            "--name" => name = Some(value()?),
            "--bind" => bind = value()?,
            "--join" => join.push(value()?),
            _ => return Err(USAGE.to_string()),
        }
    }
    if !any {
        return Ok(None);
    }
    let name = name.ok_or(format!("--name is required; {USAGE}"))?;
    let bind = bind.parse().map_err(|e| format!("--bind {bind}: {e}"))?;
    Ok(Some(Args { name, bind, join }))
}

/// One node: stdin lines go to every other member, received lines and
/// membership changes are printed.
async fn interactive(args: Args) -> Result<(), Box<dyn Error>> {
    let ml = Memberlist::create(Options::new(&args.name, args.bind, Config::local())).await?;
    if !args.join.is_empty() {
        ml.join(&args.join).await?;
    }
    println!(
        "{} on {}: type a line to send it to every member, Ctrl-D to leave",
        args.name,
        ml.advertise_addr()
    );

    let mut events = ml.events();
    let printer = tokio::spawn(async move {
        while let Some(event) = events.next().await {
            match event {
                Ok(Event::UserMessage(msg)) => println!("{}", String::from_utf8_lossy(&msg)),
                Ok(Event::Join(m)) => println!("* {} joined ({})", m.name, m.addr),
                Ok(Event::Leave(m)) => println!("* {} is {}", m.name, m.state),
                Ok(_) => {}
                Err(lagged) => eprintln!("* {lagged}"),
            }
        }
    });

    let mut lines = BufReader::new(tokio::io::stdin()).lines();
    loop {
        let line = tokio::select! {
            line = lines.next_line() => line?,
            _ = tokio::signal::ctrl_c() => None,
        };
        let Some(line) = line else { break };
        let msg = format!("<{}> {line}", args.name);
        for m in ml.members().iter().filter(|m| m.name != args.name) {
            // One unreachable member must not stop the others getting it.
            if let Err(e) = ml.send_reliable(m, msg.as_bytes()).await {
                eprintln!("* to {}: {e}", m.name);
            }
        }
    }

    ml.leave(LEAVE_TIMEOUT).await?;
    ml.shutdown().await;
    // The stream ends with the node.
    printer.await?;
    Ok(())
}
