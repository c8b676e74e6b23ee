//! discovery: services announced in node metadata.
//!
//! Every node announces the services it offers in its metadata, as JSON
//! (`{"services":["web:8080"]}`, at most 512 bytes). Its
//! [`NodeMetaDelegate`] answers with the current list; when the list
//! changes, [`Memberlist::update_node`] gossips it and the other nodes see
//! an [`Event::Update`]. Each node can build a service catalog from its
//! event stream alone: joins and updates say what a node offers, leaves
//! that it is gone.
//!
//! The run starts three nodes in one process: `web-1` and `db-1` offer
//! services, `lb` only watches. `web-1` then adds a service, and `db-1`
//! leaves. `lb` prints its catalog after each change; the run exits 0 once
//! it saw all of them, and fails with a message after 30 seconds otherwise.
//!
//! ```sh
//! cargo run -p headcount --example discovery
//! ```

use std::collections::BTreeMap;
use std::error::Error;
use std::net::SocketAddr;
use std::process::ExitCode;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use headcount::{
    Config, Event, Events, MemberInfo, Memberlist, NodeMetaDelegate, Options, META_MAX_SIZE,
};
use serde::{Deserialize, Serialize};
use tokio_stream::StreamExt;

/// How long the run may take before it gives up.
const TIMEOUT: Duration = Duration::from_secs(30);
/// How long `update_node` and `leave` spend gossiping the change.
const GOSSIP_TIMEOUT: Duration = Duration::from_secs(5);

/// What a node puts in its metadata.
#[derive(Debug, Default, Serialize, Deserialize)]
struct Announcement {
    services: Vec<String>,
}

/// This node's services: its metadata delegate.
struct Services(Mutex<Vec<u8>>);

impl Services {
    fn new(services: &[&str]) -> Result<Arc<Services>, String> {
        let this = Arc::new(Services(Mutex::default()));
        this.set(services)?;
        Ok(this)
    }

    /// Replaces the list; [`Memberlist::update_node`] then announces it.
    fn set(&self, services: &[&str]) -> Result<(), String> {
        let announcement = Announcement {
            services: services.iter().map(|s| s.to_string()).collect(),
        };
        let meta = serde_json::to_vec(&announcement).map_err(|e| e.to_string())?;
        // Checked here, where the caller can act on it: the node refuses
        // metadata over the limit.
        if meta.len() > META_MAX_SIZE {
            return Err(format!(
                "{} bytes of services, more than the {META_MAX_SIZE} metadata can hold",
                meta.len()
            ));
        }
        *self.0.lock().expect("no panic while holding the list") = meta;
        Ok(())
    }
}

impl NodeMetaDelegate for Services {
    fn node_meta(&self, _limit: usize) -> Vec<u8> {
        // `set` kept it within META_MAX_SIZE, the limit asked for.
        self.0
            .lock()
            .expect("no panic while holding the list")
            .clone()
    }
}

/// The services of every live node, as one node learns them from its
/// event stream.
#[derive(Default)]
struct Catalog(BTreeMap<String, Vec<String>>);

impl Catalog {
    /// Applies a membership event; other events change nothing.
    fn apply(&mut self, event: &Event) {
        match event {
            Event::Join(m) | Event::Update(m) => {
                self.0.insert(m.name.clone(), services_of(m));
            }
            Event::Leave(m) => {
                self.0.remove(&m.name);
            }
            _ => {}
        }
    }

    fn services(&self, node: &str) -> &[String] {
        self.0.get(node).map_or(&[], Vec::as_slice)
    }

    fn print(&self) {
        for (node, services) in &self.0 {
            if services.is_empty() {
                println!("  {node}: (none)");
            } else {
                println!("  {node}: {}", services.join(", "));
            }
        }
    }
}

/// The services a member announces; none when its metadata is not ours
/// (a node of another application, say).
fn services_of(m: &MemberInfo) -> Vec<String> {
    if m.meta.is_empty() {
        return Vec::new();
    }
    match serde_json::from_slice::<Announcement>(&m.meta) {
        Ok(a) => a.services,
        Err(e) => {
            eprintln!("{}: metadata is not an announcement: {e}", m.name);
            Vec::new()
        }
    }
}

/// Feeds `events` to `catalog` until `done` holds for it and the event
/// just applied.
async fn watch_until(
    events: &mut Events,
    catalog: &mut Catalog,
    mut done: impl FnMut(&Catalog, &Event) -> bool,
) -> Result<(), Box<dyn Error>> {
    loop {
        let event = match events.next().await {
            Some(Ok(e)) => e,
            // A lost event may be a lost announcement: a real catalog
            // would rebuild from `members()` here.
            Some(Err(lagged)) => return Err(lagged.into()),
            None => return Err("the node stopped".into()),
        };
        catalog.apply(&event);
        match &event {
            Event::Join(m) => println!("lb: {} joined", m.name),
            Event::Update(m) => println!("lb: {} updated its metadata", m.name),
            Event::Leave(m) => println!("lb: {} is {}", m.name, m.state),
            _ => {}
        }
        if done(catalog, &event) {
            return Ok(());
        }
    }
}

async fn start(name: &str, services: Arc<Services>) -> Result<Memberlist, Box<dyn Error>> {
    let addr: SocketAddr = "127.0.0.1:0".parse()?;
    let opts = Options::new(name, addr, Config::local()).with_node_meta_delegate(services);
    Ok(Memberlist::create(opts).await?)
}

#[tokio::main]
async fn main() -> ExitCode {
    match tokio::time::timeout(TIMEOUT, run()).await {
        Ok(Ok(())) => ExitCode::SUCCESS,
        Ok(Err(e)) => {
            eprintln!("discovery: {e}");
            ExitCode::FAILURE
        }
        Err(_) => {
            eprintln!("discovery: lb did not see every change within {TIMEOUT:?}");
            ExitCode::FAILURE
        }
    }
}

async fn run() -> Result<(), Box<dyn Error>> {
    let lb = start("lb", Services::new(&[])?).await?;
    let web_services = Services::new(&["web:8080"])?;
    let web = start("web-1", web_services.clone()).await?;
    let db = start("db-1", Services::new(&["postgres:5432"])?).await?;

    let mut events = lb.events();
    let mut catalog = Catalog::default();
    let seed = lb.advertise_addr().to_string();
    web.join(&[&seed]).await?;
    db.join(&[&seed]).await?;
    watch_until(&mut events, &mut catalog, |c, _| {
        c.0.contains_key("web-1") && c.0.contains_key("db-1")
    })
    .await?;
    println!("lb's catalog:");
    catalog.print();

    // web-1 starts exporting metrics and says so.
    web_services.set(&["web:8080", "metrics:9100"])?;
    web.update_node(GOSSIP_TIMEOUT).await?;
    watch_until(&mut events, &mut catalog, |c, e| {
        matches!(e, Event::Update(m) if m.name == "web-1")
            && c.services("web-1").iter().any(|s| s == "metrics:9100")
    })
    .await?;
    println!("lb's catalog after web-1's update:");
    catalog.print();

    // A graceful leave takes db-1's services out of the catalog.
    db.leave(GOSSIP_TIMEOUT).await?;
    watch_until(&mut events, &mut catalog, |c, _| !c.0.contains_key("db-1")).await?;
    println!("lb's catalog after db-1 left:");
    catalog.print();

    for ml in [&db, &web, &lb] {
        ml.shutdown().await;
    }
    Ok(())
}
