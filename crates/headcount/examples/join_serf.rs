//! join_serf: a Rust node in a Serf cluster.
//!
//! Serf runs on Go memberlist, so a headcount node can join a Serf cluster
//! at the gossip layer: Serf agents list it in `serf members`, with its
//! tags, and report it failed when it dies. It takes part in membership
//! only; Serf's own messages (user events, queries, join and leave
//! intents) reach it as user messages and are only counted here.
//!
//! What Serf needs from a member:
//! - delegate protocol versions within Serf's 2 to 5 (memberlist refuses a
//!   node outside another's range), set in `serf_config`;
//! - node metadata in Serf's tag encoding: a `0xff` byte, then a
//!   MessagePack map of strings (metadata without that byte is read as the
//!   `role` tag), see `encode_tags`;
//! - the cluster's key, if it is encrypted (`serf agent -encrypt KEY`).
//!
//! It prints the members' events, with their tags, until Ctrl-C, then
//! leaves gracefully. Serf 0.8 lists a node that left this way as `failed`
//! (it shows `left` only after its own leave intent, a Serf message this
//! example does not send); newer Serf lists it as `left`.
//!
//! It needs a Serf agent, so the tests only build it. To try it by hand:
//!
//! ```sh
//! serf agent -node s1 -bind 127.0.0.11:7946 -tag role=web &
//! cargo run -p headcount --example join_serf -- --join 127.0.0.11:7946 --tag role=rust
//! serf members    # lists headcount-rs, alive, with its tags
//! ```
//!
//! Options: `--name NAME` (default `headcount-rs`), `--bind ADDR` (default
//! `127.0.0.1:7946`), `--join ADDR` (repeatable, at least one),
//! `--encrypt KEY` (base64, as `serf keygen` prints), `--tag KEY=VALUE`
//! (repeatable).

use std::collections::BTreeMap;
use std::error::Error;
use std::net::SocketAddr;
use std::process::ExitCode;
use std::time::Duration;

use base64::Engine;
use headcount::{Config, Event, Keyring, MemberInfo, Memberlist, Options};
use tokio_stream::StreamExt;

/// How long the node spends telling the cluster it leaves.
const LEAVE_TIMEOUT: Duration = Duration::from_secs(5);

/// Memberlist's LAN profile, as Serf's agent uses, with Serf's delegate
/// protocol versions.
fn serf_config() -> Config {
    // Serf understands delegate (Serf) protocol 2 to 5 and speaks 4.
    Config::lan()
        .with_delegate_protocol_min(2)
        .with_delegate_protocol_max(5)
        .with_delegate_protocol_version(4)
}

struct Args {
    name: String,
    bind: SocketAddr,
    join: Vec<String>,
    key: Option<Vec<u8>>,
    tags: BTreeMap<String, String>,
}

const USAGE: &str = "usage: join_serf --join ADDR [--join ADDR]... [--name NAME] [--bind ADDR] \
                     [--encrypt KEY] [--tag KEY=VALUE]...";

fn parse_args() -> Result<Args, String> {
    let mut args = Args {
        name: "headcount-rs".to_string(),
        bind: "127.0.0.1:7946".parse().expect("a valid address"),
        join: Vec::new(),
        key: None,
        tags: BTreeMap::new(),
    };
    let mut argv = std::env::args().skip(1);
    while let Some(flag) = argv.next() {
        let value = argv
            .next()
            .ok_or_else(|| format!("{flag} needs a value; {USAGE}"))?;
        match flag.as_str() {
            "--name" => args.name = value,
            "--bind" => args.bind = value.parse().map_err(|e| format!("--bind {value}: {e}"))?,
            "--join" => args.join.push(value),
            "--encrypt" => {
                let key = base64::engine::general_purpose::STANDARD
                    .decode(&value)
                    .map_err(|e| format!("--encrypt: {e}"))?;
                args.key = Some(key);
            }
            "--tag" => {
                let (k, v) = value
                    .split_once('=')
                    .ok_or_else(|| format!("--tag {value}: expected KEY=VALUE"))?;
                args.tags.insert(k.to_string(), v.to_string());
            }
            _ => return Err(USAGE.to_string()),
        }
    }
    if args.join.is_empty() {
        return Err(format!("--join is required; {USAGE}"));
    }
    Ok(args)
}

#[tokio::main]
async fn main() -> ExitCode {
    let result = match parse_args() {
        Ok(args) => run(args).await,
        Err(usage) => Err(usage.into()),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("join_serf: {e}");
            ExitCode::FAILURE
        }
    }
}

async fn run(args: Args) -> Result<(), Box<dyn Error>> {
    let mut opts =
        Options::new(&args.name, args.bind, serf_config()).with_meta(encode_tags(&args.tags));
    if let Some(key) = &args.key {
        opts = opts.with_keyring(Keyring::new(key)?);
    }
    let ml = Memberlist::create(opts).await?;
    // Fails, saying why for each address, when no agent answered (a wrong
    // key shows up here too).
    let n = ml.join(&args.join).await?;
    println!(
        "{} on {} joined through {n} address(es); Ctrl-C to leave",
        args.name,
        ml.advertise_addr()
    );

    let mut events = ml.events();
    let mut serf_messages = 0u64;
    loop {
        let event = tokio::select! {
            event = events.next() => event,
            _ = tokio::signal::ctrl_c() => break,
        };
        match event {
            Some(Ok(Event::Join(m))) => println!("join   {}", describe(&m)),
            Some(Ok(Event::Update(m))) => println!("update {}", describe(&m)),
            // Serf calls a dead member "failed".
            Some(Ok(Event::Leave(m))) => println!("leave  {} ({})", m.name, m.state),
            Some(Ok(Event::Suspect { member, from })) => {
                println!("suspect {} (by {from})", member.name);
            }
            Some(Ok(Event::UserMessage(_))) => serf_messages += 1,
            Some(Ok(_)) => {}
            Some(Err(lagged)) => eprintln!("{lagged}"),
            None => return Err("the node stopped".into()),
        }
    }

    println!("leaving ({serf_messages} Serf messages seen)");
    ml.leave(LEAVE_TIMEOUT).await?;
    ml.shutdown().await;
    Ok(())
}

/// A member's name, address and tags.
fn describe(m: &MemberInfo) -> String {
    let tags = match decode_tags(&m.meta) {
        Ok(tags) => tags
            .iter()
            .map(|(k, v)| format!("{k}={v}"))
            .collect::<Vec<_>>()
            .join(","),
        Err(e) => format!("<bad tags: {e}>"),
    };
    format!("{} {} [{tags}]", m.name, m.addr)
}

/// Serf's first metadata byte when it holds tags (Go: `tagMagicByte`).
const TAG_MAGIC: u8 = 0xff;

/// Encodes `tags` as Serf does: the magic byte, then a MessagePack map of
/// strings. Uses only the map and string forms that Serf's (old) msgpack
/// codec reads: fixmap/map16 and fixstr/str16, never str8.
fn encode_tags(tags: &BTreeMap<String, String>) -> Vec<u8> {
    fn len16(out: &mut Vec<u8>, len: usize) {
        let len = u16::try_from(len).expect("metadata is at most 512 bytes");
        out.extend_from_slice(&len.to_be_bytes());
    }
    fn string(out: &mut Vec<u8>, s: &str) {
        match s.len() {
            n @ 0..=31 => out.push(0xa0 | n as u8),
            n => {
                out.push(0xda);
                len16(out, n);
            }
        }
        out.extend_from_slice(s.as_bytes());
    }
    if tags.is_empty() {
        // What Serf reads as no role and no tags.
        return Vec::new();
    }
    let mut out = vec![TAG_MAGIC];
    match tags.len() {
        n @ 0..=15 => out.push(0x80 | n as u8),
        n => {
            out.push(0xde);
            len16(&mut out, n);
        }
    }
    for (k, v) in tags {
        string(&mut out, k);
        string(&mut out, v);
    }
    out
}

/// Decodes a member's Serf tags: metadata without the magic byte is the
/// `role` tag alone (Serf's protocol 2 encoding), as Serf reads it.
fn decode_tags(meta: &[u8]) -> Result<BTreeMap<String, String>, String> {
    let Some((&TAG_MAGIC, mut rest)) = meta.split_first() else {
        let role = String::from_utf8_lossy(meta).into_owned();
        return Ok(BTreeMap::from([("role".to_string(), role)]));
    };
    let n = match byte(&mut rest)? {
        b @ 0x80..=0x8f => usize::from(b & 0x0f),
        0xde => uint(&mut rest, 2)?,
        0xdf => uint(&mut rest, 4)?,
        b => return Err(format!("expected a map, found 0x{b:02x}")),
    };
    let mut tags = BTreeMap::new();
    for _ in 0..n {
        let k = string(&mut rest)?;
        let v = string(&mut rest)?;
        tags.insert(k, v);
    }
    Ok(tags)
}

fn byte(buf: &mut &[u8]) -> Result<u8, String> {
    Ok(take(buf, 1)?[0])
}

fn take<'a>(buf: &mut &'a [u8], n: usize) -> Result<&'a [u8], String> {
    if buf.len() < n {
        return Err("truncated".to_string());
    }
    let (head, tail) = buf.split_at(n);
    *buf = tail;
    Ok(head)
}

/// A big-endian unsigned integer of `n` bytes.
fn uint(buf: &mut &[u8], n: usize) -> Result<usize, String> {
    Ok(take(buf, n)?
        .iter()
        .fold(0, |acc, &b| (acc << 8) | usize::from(b)))
}

/// A MessagePack string (or raw, its old name).
fn string(buf: &mut &[u8]) -> Result<String, String> {
    let n = match byte(buf)? {
        b @ 0xa0..=0xbf => usize::from(b & 0x1f),
        0xd9 => uint(buf, 1)?,
        0xda => uint(buf, 2)?,
        0xdb => uint(buf, 4)?,
        b => return Err(format!("expected a string, found 0x{b:02x}")),
    };
    Ok(String::from_utf8_lossy(take(buf, n)?).into_owned())
}
