//! Encryption, labels and allow-lists on live loopback clusters. Every wait
//! awaits a member snapshot, or polls counters within a bound.

mod common;

use std::net::SocketAddr;
use std::time::Duration;

use headcount::{
    Cidr, Config, Error, Event, Events, Keyring, Lagged, MemberInfo, MemberState, Memberlist,
    Options,
};

/// Generous: the machine running the tests may be busy.
const CONVERGE: Duration = Duration::from_secs(20);

const K1: [u8; 32] = [0x11; 32];
const K2: [u8; 16] = [0x22; 16];

fn config() -> Config {
    common::fast_config()
}

fn at(ip: &str) -> SocketAddr {
    format!("{ip}:0").parse().unwrap()
}

async fn start(opts: Options) -> Memberlist {
    let name = opts.name.clone();
    Memberlist::create(opts)
        .await
        .unwrap_or_else(|e| panic!("creating {name}: {e}"))
}

/// Awaits a member snapshot of `ml` that satisfies `cond`.
async fn wait_members(ml: &Memberlist, what: &str, mut cond: impl FnMut(&[MemberInfo]) -> bool) {
    let mut rx = ml.watch_members();
    let r = tokio::time::timeout(CONVERGE, rx.wait_for(|ms| cond(ms)))
        .await
        .map(|r| r.is_ok());
    match r {
        Ok(true) => {}
        Ok(false) => panic!("{what}: the node stopped"),
        Err(_) => panic!(
            "{what}: not within {CONVERGE:?}; members: {:?}; stats: {:?}",
            ml.members(),
            ml.stats()
        ),
    }
}

/// Polls `cond` every 20 ms for at most [`CONVERGE`].
async fn poll(what: &str, mut cond: impl FnMut() -> bool) {
    let deadline = tokio::time::Instant::now() + CONVERGE;
    while !cond() {
        assert!(
            tokio::time::Instant::now() < deadline,
            "{what}: not within {CONVERGE:?}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

fn alive(ms: &[MemberInfo]) -> usize {
    ms.iter().filter(|m| m.state == MemberState::Alive).count()
}

/// Changes the metadata of `nodes[i]` and awaits every node seeing it: a
/// proof that gossip flows in whatever mode the cluster is in.
async fn gossip_round(nodes: &[Memberlist], i: usize, tag: &str) {
    let meta = tag.as_bytes().to_vec();
    nodes[i]
        .update_meta(meta.clone(), CONVERGE)
        .await
        .unwrap_or_else(|e| panic!("{tag}: update_meta: {e}"));
    let name = nodes[i].name().to_string();
    for ml in nodes {
        wait_members(
            ml,
            &format!("{tag}: {} sees {name}'s meta", ml.name()),
            |ms| ms.iter().any(|m| m.name == name && m.meta == meta),
        )
        .await;
    }
}

/// Every `Leave` (dead or left) received so far.
fn leaves(rx: &mut Events) -> Vec<String> {
    let mut out = Vec::new();
    loop {
        match rx.try_next() {
            Some(Ok(Event::Leave(m))) => out.push(format!("{} {}", m.name, m.state)),
            Some(Ok(_)) => {}
            Some(Err(Lagged(n))) => panic!("missed {n} events"),
            None => return out,
        }
    }
}

/// A node that tries to join `seed` and must be refused, saying `hint`.
async fn refused(name: &str, opts: Options, seed: SocketAddr, hint: &str) {
    let ml = start(opts).await;
    let e = ml.join(&[seed.to_string()]).await.unwrap_err();
    let text = e.to_string();
    assert!(matches!(e, Error::JoinFailed { .. }), "{name}: {text}");
    assert!(text.contains(hint), "{name}: {text}");
    ml.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn plaintext_cluster_moves_to_encryption_and_rotates_keys_without_losing_anyone() {
    let n = 4;
    let mut nodes = Vec::new();
    for i in 0..n {
        let ml = start(Options::new(format!("mig-{i}"), at("127.0.0.1"), config())).await;
        if i > 0 {
            ml.join(&[nodes_addr(&nodes)]).await.unwrap();
        }
        nodes.push(ml);
    }
    for ml in &nodes {
        wait_members(ml, "plaintext cluster converges", |ms| alive(ms) == n).await;
    }
    let mut events: Vec<_> = nodes.iter().map(Memberlist::events).collect();
    let seed: SocketAddr = nodes[0].advertise_addr();

    // 1. Both flags off, key installed everywhere: still plaintext.
    for ml in &nodes {
        ml.set_gossip_verify_incoming(false).await.unwrap();
        ml.set_gossip_verify_outgoing(false).await.unwrap();
        let keys = ml.add_key(&K1).await.unwrap();
        assert_eq!(keys.len(), 1);
        assert_eq!(keys[0].as_bytes(), K1);
    }
    gossip_round(&nodes, 1, "keys installed, flags off").await;

    // 2. Outgoing on everywhere: nodes send encrypted and still take
    //    plaintext from the ones not switched yet.
    for ml in &nodes {
        ml.set_gossip_verify_outgoing(true).await.unwrap();
    }
    gossip_round(&nodes, 2, "outgoing on").await;

    // 3. Incoming on everywhere: encrypted only.
    for ml in &nodes {
        ml.set_gossip_verify_incoming(true).await.unwrap();
    }
    gossip_round(&nodes, 3, "incoming on").await;
    refused(
        "plaintext outsider",
        Options::new("outsider-plain", at("127.0.0.1"), config()),
        seed,
        // Like Go, the cluster answers a plaintext stream with an error
        // reply, encrypted, which the outsider cannot read.
        "it is encrypted and we have no encryption key",
    )
    .await;

    // 4. Rotation: add K2 everywhere, make it primary everywhere, remove K1.
    for ml in &nodes {
        let keys = ml.add_key(&K2).await.unwrap();
        assert_eq!(keys.len(), 2);
        assert_eq!(keys[0].as_bytes(), K1, "adding does not change the primary");
    }
    gossip_round(&nodes, 0, "K2 installed").await;
    for ml in &nodes {
        let keys = ml.use_key(&K2).await.unwrap();
        assert_eq!(keys[0].as_bytes(), K2);
    }
    gossip_round(&nodes, 1, "K2 primary").await;
    for ml in &nodes {
        assert!(matches!(
            ml.remove_key(&K2).await,
            Err(Error::Keyring(headcount::KeyringError::RemovePrimaryKey))
        ));
        let keys = ml.remove_key(&K1).await.unwrap();
        assert_eq!(keys.len(), 1);
        assert_eq!(
            keys[0].fingerprint(),
            ml.keys().await.unwrap()[0].fingerprint()
        );
        assert!(
            !format!("{keys:?}").contains("34, 34"),
            "Debug leaks the key"
        );
    }
    gossip_round(&nodes, 2, "K1 removed").await;

    // The old key no longer opens the cluster; the new one does.
    refused(
        "old-key outsider",
        Options::new("outsider-k1", at("127.0.0.1"), config())
            .with_keyring(Keyring::new(&K1).unwrap()),
        seed,
        "wrong encryption key or label?",
    )
    .await;
    let newcomer = start(
        Options::new("newcomer-k2", at("127.0.0.1"), config())
            .with_keyring(Keyring::new(&K2).unwrap()),
    )
    .await;
    newcomer.join(&[seed.to_string()]).await.unwrap();
    for ml in &nodes {
        wait_members(ml, "the newcomer with K2 is seen alive", |ms| {
            ms.iter()
                .any(|m| m.name == "newcomer-k2" && m.state == MemberState::Alive)
        })
        .await;
    }

    // Nobody was lost on the way, and the outsiders never got in.
    for (ml, rx) in nodes.iter().zip(events.iter_mut()) {
        let lost = leaves(rx);
        assert!(lost.is_empty(), "{} saw {lost:?}", ml.name());
        assert!(ml.members().iter().all(|m| !m.name.starts_with("outsider")));
        assert_eq!(alive(&ml.members()), n + 1, "{}", ml.name());
    }
    newcomer.shutdown().await;
    for ml in &nodes {
        ml.shutdown().await;
    }
}

fn nodes_addr(nodes: &[Memberlist]) -> String {
    nodes[0].advertise_addr().to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_different_label_cannot_join() {
    let opts = |name: &str, label: &str| {
        Options::new(name, at("127.0.0.1"), config()).with_label(label.as_bytes().to_vec())
    };
    let a = start(opts("lab-a", "blue")).await;
    let seed = a.advertise_addr();
    refused(
        "other label",
        opts("lab-b", "green"),
        seed,
        "wrong encryption key or label?",
    )
    .await;
    // No label at all is refused as well (with the unsecured hint).
    let plain = start(Options::new("lab-plain", at("127.0.0.1"), config())).await;
    let e = plain
        .join(&[seed.to_string()])
        .await
        .unwrap_err()
        .to_string();
    assert!(e.contains("closed the connection without answering"), "{e}");
    plain.shutdown().await;
    // Same label, and the same label with encryption, get in.
    let c = start(opts("lab-c", "blue")).await;
    c.join(&[seed.to_string()]).await.unwrap();
    wait_members(&a, "same label joins", |ms| alive(ms) == 2).await;
    assert!(a
        .members()
        .iter()
        .all(|m| m.name != "lab-b" && m.name != "lab-plain"));
    assert!(a.stats().inbound_stream_errors >= 2);
    for ml in [a, c] {
        ml.shutdown().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_allow_list_keeps_a_source_out() {
    // Streams we dial leave from an address the kernel picks, as Go's do:
    // on loopback 127.0.0.1. Packets leave from the bound address.
    let tcp_src: Cidr = "127.0.0.1/32".parse().unwrap();
    let block: Cidr = "127.67.1.0/30".parse().unwrap();

    // A node that does not allow 127.0.0.1 refuses every stream at once.
    let strict =
        start(Options::new("acl-strict", at("127.67.1.3"), config()).with_cidrs_allowed([block]))
            .await;
    let b = start(Options::new("acl-b", at("127.67.1.2"), config())).await;
    let e = b
        .join(&[strict.advertise_addr().to_string()])
        .await
        .unwrap_err();
    assert!(e.to_string().contains("refuse our address?"), "{e}");
    assert!(strict.stats().inbound_streams_denied >= 1);
    strict.shutdown().await;

    // a allows the block (b at .2) and 127.0.0.1, not c at 127.67.1.9.
    let a = start(
        Options::new("acl-a", at("127.67.1.1"), config()).with_cidrs_allowed([block, tcp_src]),
    )
    .await;
    let c = start(Options::new("acl-c", at("127.67.1.9"), config())).await;
    let mut a_events = a.events();
    b.join(&[a.advertise_addr().to_string()]).await.unwrap();
    wait_members(&a, "b joins a", |ms| alive(ms) == 2).await;

    // c's push/pull with a goes through (its stream comes from 127.0.0.1),
    // but a ignores the alive announcing 127.67.1.9.
    c.join(&[a.advertise_addr().to_string()]).await.unwrap();
    wait_members(&c, "c learns a and b", |ms| ms.len() == 3).await;
    // c also reaches a through b, which has no list: b gossips c to a, and
    // c probes a. a drops c's packets and every alive about it.
    wait_members(&b, "b sees c", |ms| alive(ms) == 3).await;
    poll("a drops c's packets and alives", || {
        let s = a.stats().core;
        s.sources_denied >= 1 && s.alives_denied >= 1
    })
    .await;
    // More gossip from b reaches a; a still does not list c.
    b.update_meta(b"again".to_vec(), CONVERGE).await.unwrap();
    wait_members(&a, "a sees b's new meta", |ms| {
        ms.iter().any(|m| m.name == "acl-b" && m.meta == b"again")
    })
    .await;
    assert!(a.members().iter().all(|m| m.name != "acl-c"));
    loop {
        match a_events.try_next() {
            Some(Ok(Event::Join(m))) => assert_ne!(m.name, "acl-c", "a let c in"),
            Some(_) => {}
            None => break,
        }
    }
    for ml in [a, b, c] {
        ml.shutdown().await;
    }
}
