//! `headcount demo`: five nodes on 127.0.0.1 in one process. Everyone
//! joins, one node is killed, the others suspect it and declare it dead, it
//! comes back on a new port under the same name and is taken back. The
//! timeline is driven by the nodes' own events and member snapshots.
//!
//! node-1 serves the agent's HTTP API and live web view (`crate::web_view`)
//! on an ephemeral loopback port and the demo prints its URL; with
//! `--stay` the cluster keeps running after the script, killing and
//! restarting another node every [`STAY_PAUSE`], until Ctrl-C.

use std::collections::{HashMap, HashSet};
use std::net::SocketAddr;
use std::process::ExitCode;
use std::time::Duration;

use clap::Args;
use headcount::{Config, Event, MemberInfo, MemberState, Memberlist, Options};
use tokio::sync::mpsc;
use tokio::time::Instant;
use tokio_stream::StreamExt;

/// Arguments of `headcount demo`.
#[derive(Args, Debug)]
pub struct DemoArgs {
    /// Number of nodes (at least 3).
    #[arg(long, default_value_t = 5, value_parser = clap::value_parser!(u16).range(3..=32))]
    nodes: u16,
    /// Give up if the demo's script has not finished after this many
    /// seconds.
    #[arg(long, default_value_t = 50)]
    timeout: u64,
    /// Keep the cluster running after the script, killing and restarting
    /// a node every 20 s, until Ctrl-C (to watch it in node-1's web view).
    #[arg(long)]
    stay: bool,
    /// Where node-1 serves its HTTP API and web view, or `off`.
    #[arg(long, value_name = "IP:PORT|off", default_value = "127.0.0.1:0", value_parser = crate::http_args::parse_listen)]
    http: crate::http_args::Listen,
}

/// With `--stay`, the pause between one node's return and the next kill.
const STAY_PAUSE: Duration = Duration::from_secs(20);

/// How long a dead node's name stays reserved in the demo configuration.
const RECLAIM: Duration = Duration::from_millis(500);

/// What the per-node watcher tasks report.
enum Report {
    Event(String, Event),
    Members(String, Vec<MemberInfo>),
    Stopped(String),
}

struct Demo {
    start: Instant,
    tx: mpsc::UnboundedSender<Report>,
    nodes: HashMap<String, Memberlist>,
    views: HashMap<String, Vec<MemberInfo>>,
}

impl Demo {
    fn say(&self, msg: impl AsRef<str>) {
        println!(
            "[{:6.2}s] {}",
            self.start.elapsed().as_secs_f64(),
            msg.as_ref()
        );
    }

    async fn start_node(&mut self, name: &str) -> Result<Memberlist, String> {
        let mut config = Config::local();
        config.dead_node_reclaim_time = RECLAIM;
        let bind: SocketAddr = "127.0.0.1:0".parse().expect("literal");
        let opts = Options::new(name, bind, config);
        let ml = Memberlist::create(opts)
            .await
            .map_err(|e| format!("{name}: {e}"))?;
        let tx = self.tx.clone();
        let mut events = ml.events();
        let mut members = ml.watch_members();
        let observer = name.to_string();
        tokio::spawn(async move {
            // Every state: the timeline waits for members to be seen dead.
            let _ = tx.send(Report::Members(observer.clone(), members.members_all()));
            loop {
                tokio::select! {
                    e = events.next() => match e {
                        Some(Ok(e)) => { let _ = tx.send(Report::Event(observer.clone(), e)); }
                        Some(Err(_lagged)) => {}
                        None => break,
                    },
                    r = members.changed() => match r {
                        Ok(()) => {
                            let _ = tx.send(Report::Members(observer.clone(), members.members_all()));
                        }
                        Err(_) => break,
                    },
                }
            }
            let _ = tx.send(Report::Stopped(observer));
        });
        self.nodes.insert(name.to_string(), ml.clone());
        Ok(ml)
    }

    /// The state of `node` as `observer` sees it, with its address.
    fn view(&self, observer: &str, node: &str) -> Option<(MemberState, SocketAddr)> {
        self.views
            .get(observer)?
            .iter()
            .find(|m| m.name == node)
            .map(|m| (m.state, m.addr))
    }

    /// Whether every running node other than `except` sees `node` in `state`
    /// (at `addr`, when given).
    fn all_see(
        &self,
        node: &str,
        state: MemberState,
        addr: Option<SocketAddr>,
        except: &str,
    ) -> bool {
        self.nodes.keys().filter(|o| o.as_str() != except).all(|o| {
            self.view(o, node)
                .is_some_and(|(s, a)| s == state && addr.is_none_or(|x| x == a))
        })
    }
}

#[derive(Debug, PartialEq, Eq)]
enum Stage {
    Joining,
    Detecting,
    Rejoining,
}

pub async fn run(args: DemoArgs) -> ExitCode {
    let deadline = Instant::now() + Duration::from_secs(args.timeout);
    let demo = demo(args.nodes as usize, deadline, args.stay, args.http);
    let result = if args.stay {
        tokio::select! {
            r = demo => r,
            _ = tokio::signal::ctrl_c() => {
                println!("stopped (Ctrl-C)");
                Ok(())
            }
        }
    } else {
        demo.await
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("headcount demo: {e}");
            ExitCode::FAILURE
        }
    }
}

async fn demo(
    n: usize,
    deadline: Instant,
    stay: bool,
    http: crate::http_args::Listen,
) -> Result<(), String> {
    let (tx, mut rx) = mpsc::unbounded_channel();
    let mut d = Demo {
        start: Instant::now(),
        tx,
        nodes: HashMap::new(),
        views: HashMap::new(),
    };
    let names: Vec<String> = (1..=n).map(|i| format!("node-{i}")).collect();
    let mut victim = names[n / 2].clone();
    let seed_node = names[0].clone();

    d.say(format!(
        "starting {n} nodes on 127.0.0.1 (local profile, dead node reclaim time {RECLAIM:?})"
    ));
    let first = d.start_node(&seed_node).await?;
    let seed_addr = first.advertise_addr();
    d.say(format!("{seed_node} is up at {seed_addr}"));
    let args = crate::web_view::local_api(http);
    if let Some(api) = crate::http_api::start(&args, &first, None).await? {
        let more = if stay {
            ""
        } else {
            "; add --stay to keep the cluster running"
        };
        d.say(format!(
            "{seed_node}'s live view: http://{api}/ (open it in a browser{more})"
        ));
    }
    for name in &names[1..] {
        let ml = d.start_node(name).await?;
        let joined = ml
            .join(&[seed_addr.to_string()])
            .await
            .map_err(|e| format!("{name}: {e}"))?;
        d.say(format!(
            "{name} is up at {} and joined through {joined} node",
            ml.advertise_addr()
        ));
    }

    let mut stage = Stage::Joining;
    let mut announced: HashSet<String> = HashSet::new();
    let mut suspecters: HashSet<String> = HashSet::new();
    let mut declared_dead: HashSet<String> = HashSet::new();
    let mut last_dead_at = Instant::now();
    let mut new_addr: Option<SocketAddr> = None;
    let mut welcomed: HashSet<String> = HashSet::new();
    // With --stay: the script is done, and the next victim in turn.
    let mut staying = false;
    let mut round = 0usize;

    loop {
        let report = if staying {
            rx.recv().await
        } else {
            tokio::time::timeout_at(deadline, rx.recv())
                .await
                .map_err(|_| "the script did not finish in time (see --timeout)".to_string())?
        };
        let Some(report) = report else { break };
        match report {
            Report::Members(observer, snap) => {
                if d.nodes.contains_key(&observer) {
                    d.views.insert(observer, snap);
                }
            }
            Report::Stopped(observer) => {
                d.views.remove(&observer);
            }
            Report::Event(observer, event) => match event {
                Event::Suspect { member, from }
                    if member.name == victim
                        && stage == Stage::Detecting
                        && suspecters.insert(observer.clone()) =>
                {
                    if from == observer {
                        d.say(format!(
                            "{observer} suspects {victim}: its probe got no ack"
                        ));
                    } else {
                        d.say(format!(
                            "{observer} hears from {from} that {victim} is suspect"
                        ));
                    }
                }
                Event::Leave(member)
                    if member.name == victim
                        && stage == Stage::Detecting
                        && declared_dead.insert(observer.clone()) =>
                {
                    last_dead_at = Instant::now();
                    d.say(format!("{observer} marks {victim} {}", member.state));
                }
                Event::Join(member)
                    if member.name == victim
                        && stage == Stage::Rejoining
                        && observer != victim
                        && welcomed.insert(observer.clone()) =>
                {
                    d.say(format!(
                        "{observer} sees {victim} alive again at {}",
                        member.addr
                    ));
                }
                Event::Conflict { existing, other } => {
                    d.say(format!(
                        "{observer} sees a name conflict: {} at {} and at {}",
                        existing.name, existing.addr, other.addr
                    ));
                }
                _ => {}
            },
        }

        match stage {
            Stage::Joining => {
                for name in &names {
                    if !announced.contains(name) && d.all_see(name, MemberState::Alive, None, "") {
                        announced.insert(name.clone());
                        d.say(format!("{name} joined (seen by all {n})"));
                    }
                }
                if announced.len() == n && names.iter().all(|o| d.views.contains_key(o)) {
                    d.say(format!("all {n} nodes agree on the membership"));
                    let ml = d.nodes.remove(&victim).expect("victim runs");
                    d.views.remove(&victim);
                    ml.shutdown().await;
                    d.say(format!("{victim} killed (shut down without leaving)"));
                    stage = Stage::Detecting;
                }
            }
            Stage::Detecting => {
                // A survivor that declared the death and has already reaped
                // the dead entry (after `gossip_to_the_dead_time`) agrees
                // too: on a loaded machine the last survivor may hear of
                // the death after the first ones reaped it.
                let agree = d.nodes.keys().all(|o| match d.view(o, &victim) {
                    Some((state, _)) => state == MemberState::Dead,
                    None => declared_dead.contains(o),
                });
                if agree {
                    d.say(format!("all {} survivors agree {victim} is dead", n - 1));
                    // The old name may be taken by a new address only once
                    // it has been dead for the reclaim time everywhere.
                    tokio::time::sleep_until(last_dead_at + RECLAIM + Duration::from_millis(50))
                        .await;
                    let ml = d.start_node(&victim).await?;
                    let addr = ml.advertise_addr();
                    new_addr = Some(addr);
                    ml.join(&[seed_addr.to_string()])
                        .await
                        .map_err(|e| format!("{victim}: {e}"))?;
                    d.say(format!("{victim} restarted at {addr} (same name, new port) and joined through {seed_node}"));
                    stage = Stage::Rejoining;
                }
            }
            Stage::Rejoining => {
                if d.views.contains_key(&victim)
                    && d.all_see(&victim, MemberState::Alive, new_addr, "")
                {
                    d.say(format!("all {n} nodes agree {victim} is alive again"));
                    if !stay {
                        break;
                    }
                    if !staying {
                        staying = true;
                        d.say(format!(
                            "--stay: the cluster keeps running; every {} s a node is killed and \
                             restarted. Ctrl-C to stop.",
                            STAY_PAUSE.as_secs()
                        ));
                    }
                    // A user message, for the view's timeline.
                    if let Some(ml) = d.nodes.get(&victim) {
                        let text = format!("{victim} is back (round {})", round + 1);
                        let _ = ml
                            .send_best_effort(seed_node.as_str(), text.as_bytes())
                            .await;
                    }
                    tokio::time::sleep(STAY_PAUSE).await;
                    // Every node but the one serving the view, in turn.
                    round += 1;
                    victim = names[1 + round % (n - 1)].clone();
                    suspecters.clear();
                    declared_dead.clear();
                    welcomed.clear();
                    new_addr = None;
                    let ml = d
                        .nodes
                        .remove(&victim)
                        .expect("every node runs between rounds");
                    d.views.remove(&victim);
                    ml.shutdown().await;
                    d.say(format!("{victim} killed (shut down without leaving)"));
                    stage = Stage::Detecting;
                }
            }
        }
    }
    for ml in d.nodes.values() {
        ml.shutdown().await;
    }
    d.say("done");
    Ok(())
}
