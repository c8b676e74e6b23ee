//! Addresses as Go memberlist handles them: the address announced when
//! bound to `0.0.0.0` or `::`, the port of a join address without one, DNS
//! names with both A and AAAA records, and a cluster on `::1`.
//!
//! The tests that need interfaces or a name server of their own run in a
//! network namespace they create (as root, with `ip`): the outer test sets
//! it up, runs an `#[ignore]`d inner test of this binary inside it with
//! `ip netns exec`, and deletes it. Nothing leaves loopback or that
//! namespace.

mod common;

use std::net::{IpAddr, SocketAddr};
use std::process::Command;
use std::sync::atomic::{AtomicUsize, Ordering};
#[cfg(feature = "dns")]
use std::sync::Arc;
use std::time::Duration;

use headcount::{Error, MemberState, Memberlist, Options};

const CONVERGE: Duration = Duration::from_secs(20);

/// Set by the outer test for the inner one it runs in the namespace.
const IN_NETNS: &str = "HEADCOUNT_TEST_IN_NETNS";

async fn start(name: &str, bind: SocketAddr) -> Memberlist {
    Memberlist::create(Options::new(name, bind, common::fast_config()))
        .await
        .unwrap_or_else(|e| panic!("creating {name} on {bind}: {e}"))
}

/// Waits until `ml` sees `n` alive members.
async fn wait_alive(ml: &Memberlist, n: usize) {
    let mut watch = ml.watch_members();
    tokio::time::timeout(
        CONVERGE,
        watch.wait_for(|ms| ms.iter().filter(|m| m.state == MemberState::Alive).count() == n),
    )
    .await
    .unwrap_or_else(|_| panic!("{} did not see {n} alive members", ml.name()))
    .unwrap();
}

#[tokio::test]
async fn join_without_port_uses_the_bind_port() {
    // Same port, two loopback addresses: "127.0.0.21" must mean port P
    // (the joiner's bind port, as in Go), not 7946.
    let a = start("a", "127.0.0.21:0".parse().unwrap()).await;
    let port = a.local_addr().port();
    let b = start("b", SocketAddr::from(([127, 0, 0, 22], port))).await;
    assert_eq!(b.join(&["127.0.0.21"]).await.unwrap(), 1);
    // The node-name form too.
    assert_eq!(b.join(&["a/127.0.0.21"]).await.unwrap(), 1);
    wait_alive(&a, 2).await;
    a.shutdown().await;
    b.shutdown().await;
}

#[tokio::test]
async fn ipv6_cluster_on_loopback() {
    if let Err(e) = std::net::UdpSocket::bind("[::1]:0") {
        println!("skipped: cannot bind [::1] ({e})");
        return;
    }
    let bind: SocketAddr = "[::1]:0".parse().unwrap();
    let mut nodes = Vec::new();
    for i in 0..3 {
        let ml = start(&format!("v6-{i}"), bind).await;
        assert_eq!(
            ml.advertise_addr().ip(),
            IpAddr::from([0u16, 0, 0, 0, 0, 0, 0, 1])
        );
        if i > 0 {
            let seed: &Memberlist = &nodes[i - 1];
            let to = seed.advertise_addr().to_string();
            assert_eq!(ml.join(&[to]).await.unwrap(), 1);
        }
        nodes.push(ml);
    }
    for ml in &nodes {
        wait_alive(ml, 3).await;
        assert!(ml.members().iter().all(|m| m.addr.is_ipv6()));
    }
    for ml in &nodes {
        ml.shutdown().await;
    }
}

/// A network namespace, deleted when dropped (also when a test panics).
struct Netns(String);

impl Netns {
    /// Creates a namespace with `lo` up, or says why it cannot.
    fn create() -> Result<Netns, String> {
        if !is_root() {
            return Err("not root".into());
        }
        static N: AtomicUsize = AtomicUsize::new(0);
        let name = format!(
            "hc-addr-{}-{}",
            std::process::id(),
            N.fetch_add(1, Ordering::Relaxed)
        );
        run("ip", &["netns", "add", &name]).map_err(|e| format!("`ip netns add`: {e}"))?;
        let ns = Netns(name);
        ns.exec(&["ip", "link", "set", "lo", "up"])?;
        Ok(ns)
    }

    /// Runs `cmd` inside the namespace.
    fn exec(&self, cmd: &[&str]) -> Result<(), String> {
        let mut args = vec!["netns", "exec", &self.0];
        args.extend_from_slice(cmd);
        run("ip", &args)
    }

    /// Runs the `#[ignore]`d test `inner` of this binary inside the
    /// namespace, and fails if it fails.
    fn run_test(&self, inner: &str) {
        let exe = std::env::current_exe().unwrap();
        let out = Command::new("ip")
            .args(["netns", "exec", &self.0])
            .arg(exe)
            .args([
                "--exact",
                inner,
                "--ignored",
                "--nocapture",
                "--test-threads=1",
            ])
            .env(IN_NETNS, "1")
            .output()
            .expect("running ip netns exec");
        let text = format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(
            out.status.success(),
            "{inner} failed in the namespace:\n{text}"
        );
        // Guards against a filter that matched nothing.
        assert!(text.contains("1 passed"), "{inner} did not run:\n{text}");
    }
}

impl Drop for Netns {
    fn drop(&mut self) {
        let _ = run("ip", &["netns", "del", &self.0]);
    }
}

fn is_root() -> bool {
    std::fs::read_to_string("/proc/self/status")
        .map(|s| {
            s.lines()
                .any(|l| l.starts_with("Uid:") && l.split_whitespace().nth(1) == Some("0"))
        })
        .unwrap_or(false)
}

fn run(cmd: &str, args: &[&str]) -> Result<(), String> {
    let out = Command::new(cmd)
        .args(args)
        .output()
        .map_err(|e| format!("{cmd}: {e}"))?;
    if out.status.success() {
        Ok(())
    } else {
        Err(format!(
            "{cmd} {args:?}: {}",
            String::from_utf8_lossy(&out.stderr).trim()
        ))
    }
}

/// Whether the inner test runs where the outer one put it; prints why not.
fn in_netns() -> bool {
    let inside = std::env::var_os(IN_NETNS).is_some();
    if !inside {
        println!("skipped: runs only inside the namespace its outer test creates");
    }
    inside
}

#[test]
fn unspecified_bind_announces_the_private_address() {
    let ns = match Netns::create() {
        Ok(ns) => ns,
        Err(why) => return println!("skipped: {why}"),
    };
    // A public address on the first interface and a private one on the
    // second: Go's rule announces the private one. No default route.
    // veth pairs, both ends up so the link runs (dummy interfaces need a
    // module that containers may lack).
    let setup: &[&[&str]] = &[
        &[
            "ip", "link", "add", "hc0", "type", "veth", "peer", "name", "hc0p",
        ],
        &["ip", "addr", "add", "203.0.114.1/24", "dev", "hc0"],
        &["ip", "addr", "add", "2a00:77::1/64", "dev", "hc0", "nodad"],
        &[
            "ip", "link", "add", "hc1", "type", "veth", "peer", "name", "hc1p",
        ],
        &["ip", "addr", "add", "10.77.0.1/24", "dev", "hc1"],
        &["ip", "addr", "add", "fd77::1/64", "dev", "hc1", "nodad"],
        &["ip", "link", "set", "hc0p", "up"],
        &["ip", "link", "set", "hc0", "up"],
        &["ip", "link", "set", "hc1p", "up"],
        &["ip", "link", "set", "hc1", "up"],
    ];
    for cmd in setup {
        ns.exec(cmd).unwrap();
    }
    ns.run_test("inner_unspecified_bind");
}

#[tokio::test]
#[ignore = "run by unspecified_bind_announces_the_private_address in a namespace"]
async fn inner_unspecified_bind() {
    if !in_netns() {
        return;
    }
    let v4 = start("v4", "0.0.0.0:0".parse().unwrap()).await;
    let port = v4.local_addr().port();
    assert_eq!(
        v4.advertise_addr(),
        SocketAddr::from(([10, 77, 0, 1], port))
    );
    assert_eq!(v4.local_node().addr, v4.advertise_addr());

    // `::`: the unique local address over the global one.
    let v6 = start("v6", "[::]:0".parse().unwrap()).await;
    assert_eq!(
        v6.advertise_addr().ip(),
        "fd77::1".parse::<IpAddr>().unwrap()
    );

    // The announced addresses work: each joins the other's.
    let other = start("other", "10.77.0.1:0".parse().unwrap()).await;
    assert_eq!(
        other
            .join(&[v4.advertise_addr().to_string()])
            .await
            .unwrap(),
        1
    );
    wait_alive(&v4, 2).await;

    // Without private addresses: the public IPv6 one for `::`, and an
    // error for `0.0.0.0`.
    for cmd in [
        ["ip", "addr", "del", "10.77.0.1/24", "dev", "hc1"],
        ["ip", "addr", "del", "fd77::1/64", "dev", "hc1"],
    ] {
        run(cmd[0], &cmd[1..]).unwrap();
    }
    let v6 = start("v6-global", "[::]:0".parse().unwrap()).await;
    assert_eq!(
        v6.advertise_addr().ip(),
        "2a00:77::1".parse::<IpAddr>().unwrap()
    );
    let bind: SocketAddr = "0.0.0.0:0".parse().unwrap();
    match Memberlist::create(Options::new("none", bind, common::fast_config())).await {
        Err(Error::NoPrivateAddress { bind }) => assert!(bind.ip().is_unspecified()),
        other => panic!("expected NoPrivateAddress, got {other:?}"),
    }
    for ml in [v4, other] {
        ml.shutdown().await;
    }
}

#[cfg(feature = "dns")]
#[test]
fn dns_names_resolve_to_a_and_aaaa() {
    // A name server must listen on port 53 (resolv.conf has no port), so
    // it runs in a namespace of its own, where the test also owns the
    // loopback addresses it joins.
    let ns = match Netns::create() {
        Ok(ns) => ns,
        Err(why) => return println!("skipped: {why}"),
    };
    ns.run_test("inner_dns_a_and_aaaa");
}

#[cfg(feature = "dns")]
#[tokio::test]
#[ignore = "run by dns_names_resolve_to_a_and_aaaa in a namespace"]
async fn inner_dns_a_and_aaaa() {
    if !in_netns() {
        return;
    }
    let dns = dns::serve().await;
    let dir = std::env::temp_dir().join(format!("hc-resolv-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let resolv = dir.join("resolv.conf");
    std::fs::write(&resolv, "nameserver 127.0.0.1\n").unwrap();

    // The name's two addresses, listening on the same port.
    let v4 = start("v4", "127.0.0.1:0".parse().unwrap()).await;
    let port = v4.local_addr().port();
    let v6 = start("v6", SocketAddr::from(([0u16, 0, 0, 0, 0, 0, 0, 1], port))).await;
    let joiner = Memberlist::create(
        Options::new(
            "joiner",
            "127.0.0.2:0".parse().unwrap(),
            common::fast_config(),
        )
        .with_dns_config_path(&resolv),
    )
    .await
    .unwrap();

    // A name with a dot: looked up over TCP first, as Go does.
    assert_eq!(
        joiner.join(&[format!("nodes.test:{port}")]).await.unwrap(),
        2
    );
    assert!(dns.tcp.load(Ordering::Relaxed) > 0, "no TCP lookup");
    // Without a dot: the usual (UDP) lookup.
    assert_eq!(joiner.join(&[format!("nodes:{port}")]).await.unwrap(), 2);
    assert!(dns.udp.load(Ordering::Relaxed) > 0, "no UDP lookup");
    wait_alive(&joiner, 3).await;

    let _ = std::fs::remove_dir_all(&dir);
    for ml in [v4, v6, joiner] {
        ml.shutdown().await;
    }
}

/// A name server on 127.0.0.1:53 (UDP and TCP) that answers `nodes.test.`
/// and `nodes.` with A 127.0.0.1 and AAAA ::1, and everything else with
/// NXDOMAIN.
#[cfg(feature = "dns")]
mod dns {
    use super::*;
    use hickory_proto::op::{Message, MessageType, ResponseCode};
    use hickory_proto::rr::rdata::{A, AAAA};
    use hickory_proto::rr::{RData, Record, RecordType};
    use hickory_proto::serialize::binary::{BinDecodable, BinEncodable};
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    use tokio::net::{TcpListener, UdpSocket};

    /// How many queries came over each transport.
    #[derive(Default)]
    pub struct Counts {
        pub udp: AtomicUsize,
        pub tcp: AtomicUsize,
    }

    pub async fn serve() -> Arc<Counts> {
        let counts = Arc::new(Counts::default());
        let udp = UdpSocket::bind("127.0.0.1:53").await.unwrap();
        let tcp = TcpListener::bind("127.0.0.1:53").await.unwrap();
        let c = counts.clone();
        tokio::spawn(async move {
            let mut buf = vec![0u8; 4096];
            while let Ok((n, from)) = udp.recv_from(&mut buf).await {
                c.udp.fetch_add(1, Ordering::Relaxed);
                if let Some(reply) = answer(&buf[..n]) {
                    let _ = udp.send_to(&reply, from).await;
                }
            }
        });
        let c = counts.clone();
        tokio::spawn(async move {
            while let Ok((mut s, _)) = tcp.accept().await {
                let c = c.clone();
                tokio::spawn(async move {
                    // Each message is preceded by its length (RFC 1035 4.2.2).
                    loop {
                        let Ok(len) = s.read_u16().await else { return };
                        let mut msg = vec![0u8; usize::from(len)];
                        if s.read_exact(&mut msg).await.is_err() {
                            return;
                        }
                        c.tcp.fetch_add(1, Ordering::Relaxed);
                        let Some(reply) = answer(&msg) else { return };
                        let mut framed = (reply.len() as u16).to_be_bytes().to_vec();
                        framed.extend_from_slice(&reply);
                        if s.write_all(&framed).await.is_err() {
                            return;
                        }
                    }
                });
            }
        });
        counts
    }

    fn answer(query: &[u8]) -> Option<Vec<u8>> {
        let q = Message::from_bytes(query).ok()?;
        let mut r = Message::new();
        r.set_id(q.id())
            .set_message_type(MessageType::Response)
            .set_op_code(q.op_code())
            .set_recursion_desired(q.recursion_desired())
            .set_recursion_available(true)
            .set_authoritative(true);
        for question in q.queries() {
            r.add_query(question.clone());
            let name = question.name().to_ascii().to_lowercase();
            if name != "nodes.test." && name != "nodes." {
                r.set_response_code(ResponseCode::NXDomain);
                continue;
            }
            let t = question.query_type();
            if matches!(t, RecordType::A | RecordType::ANY) {
                let rdata = RData::A(A::new(127, 0, 0, 1));
                r.add_answer(Record::from_rdata(question.name().clone(), 60, rdata));
            }
            if matches!(t, RecordType::AAAA | RecordType::ANY) {
                let rdata = RData::AAAA(AAAA::new(0, 0, 0, 0, 0, 0, 0, 1));
                r.add_answer(Record::from_rdata(question.name().clone(), 60, rdata));
            }
        }
        r.to_bytes().ok()
    }
}
