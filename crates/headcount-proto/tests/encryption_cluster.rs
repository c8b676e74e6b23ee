//! Encrypted clusters on the virtual network of `virtual_cluster.rs` (its
//! harness, copied): every packet and stream goes through the real
//! encoder, encryption included, and streams are read with
//! `Node::stream_decoder` as a driver would.

mod common;

use std::time::Duration;

use common::{converged, Cluster, CONVERGE};
use headcount_proto::{
    Completion, Config, ConfigError, Event, Instant, Keyring, KeyringError, LocalNode, Node,
    NonceSource,
};

const K1: [u8; 16] = [0x11; 16];
const K2: [u8; 32] = [0x22; 32];

/// Every key the tests use, to recognise encrypted packets.
fn test_keys() -> Keyring {
    Keyring::with_keys(&K1, [&K2[..]]).unwrap()
}

fn encrypted_config(key: &[u8]) -> Config {
    Config::local().with_keyring(Keyring::new(key).unwrap())
}

fn suspects(c: &Cluster) -> Vec<String> {
    c.events
        .iter()
        .filter_map(|(i, t, e)| match e {
            Event::Suspect { member, .. } => Some(format!("{i} {t:?} {}", member.name)),
            Event::Leave(m) => Some(format!("{i} {t:?} leave {}", m.name)),
            _ => None,
        })
        .collect()
}

fn undecryptable(c: &Cluster) -> u64 {
    c.nodes
        .iter()
        .flatten()
        .map(|n| n.stats().packets_undecryptable + n.stats().packets_dropped)
        .sum()
}

fn local_a() -> LocalNode {
    LocalNode::new("a", "127.0.0.1:1".parse().unwrap())
}

#[test]
fn building_with_a_keyring_and_no_nonce_source_fails() {
    let err = Node::builder(encrypted_config(&K1), local_a())
        .seed(1)
        .build(Instant::ZERO)
        .unwrap_err();
    assert_eq!(err, ConfigError::NonceSourceRequired);
    // The same config with a nonce source builds and encrypts.
    let n = Node::builder(encrypted_config(&K1), local_a())
        .seed(1)
        .nonce_source(NonceSource::from_fn(|b| b.fill(7)))
        .build(Instant::ZERO)
        .unwrap();
    assert!(n.encrypts_outgoing());
}

#[test]
fn runtime_security_changes_leave_the_config_alone() {
    let config = encrypted_config(&K1)
        .with_gossip_verify_incoming(true)
        .with_gossip_verify_outgoing(true);
    let mut n = Node::builder(config.clone(), local_a())
        .seed(1)
        .nonce_source(NonceSource::from_fn(|b| b.fill(7)))
        .build(Instant::ZERO)
        .unwrap();
    // The state starts from the config.
    assert_eq!(n.keyring().unwrap().len(), 1);
    assert!(n.gossip_verify_incoming() && n.gossip_verify_outgoing());

    n.add_key(&K2).unwrap();
    n.use_key(&K2).unwrap();
    n.set_gossip_verify_incoming(false);
    n.set_gossip_verify_outgoing(false);

    // The node's security state follows the changes...
    let keys = n.keyring().unwrap();
    assert_eq!(keys.len(), 2);
    assert_eq!(keys.primary_key(), K2);
    assert!(!n.gossip_verify_incoming());
    assert!(!n.gossip_verify_outgoing());
    assert!(!n.encrypts_outgoing());
    // ...and the config is what the node was built with.
    let c = n.config();
    let started = c.keyring.as_ref().unwrap();
    assert_eq!(started.len(), 1);
    assert_eq!(started.primary_key(), K1);
    assert!(c.gossip_verify_incoming && c.gossip_verify_outgoing);

    // Turning encryption off entirely does not touch it either.
    n.set_keyring(None).unwrap();
    assert!(n.keyring().is_none());
    assert_eq!(n.config().keyring.as_ref().unwrap().primary_key(), K1);
}

#[test]
fn keys_added_at_run_time_need_a_nonce_source() {
    let mut n = Node::builder(Config::local(), local_a())
        .seed(1)
        .build(Instant::ZERO)
        .unwrap();
    assert_eq!(n.add_key(&K1), Err(KeyringError::NoNonceSource));
    assert_eq!(n.use_key(&K1), Err(KeyringError::NoKeyring));
    n.set_nonce_source(NonceSource::from_fn(|b| b.fill(7)));
    assert_eq!(n.add_key(&[1; 5]), Err(KeyringError::InvalidKeyLength(5)));
    n.add_key(&K1).unwrap();
    n.add_key(&K2).unwrap();
    assert_eq!(n.keyring().unwrap().primary_key(), K1);
    assert_eq!(n.remove_key(&K1), Err(KeyringError::RemovePrimaryKey));
    n.use_key(&K2).unwrap();
    n.remove_key(&K1).unwrap();
    assert_eq!(n.remove_key(&K1), Err(KeyringError::KeyNotInstalled));
    assert_eq!(n.keyring().unwrap().len(), 1);
    assert!(n.encrypts_outgoing());
}

#[test]
fn encrypted_cluster_converges() {
    for (seed, config) in [
        (1, encrypted_config(&K1)),
        (
            2,
            encrypted_config(&K2)
                .with_label("prod")
                .with_protocol_version(1), // v0: padded
        ),
    ] {
        let mut c = Cluster::with_tap_keys(4, config, seed, Some(test_keys()));
        c.join_all_to(0);
        let t = c.run_until(CONVERGE, |c| converged(c, 4));
        assert!(t.is_some(), "cluster did not converge");
        c.run_for(Duration::from_secs(20));
        assert!(converged(&c, 4));
        assert!(c.packets > 100);
        assert_eq!(
            c.plaintext_packets, 0,
            "plaintext packets in an encrypted cluster"
        );
        assert!(c.streams >= 6);
        assert_eq!(c.plaintext_streams, 0);
        assert_eq!(undecryptable(&c), 0);
        assert_eq!(suspects(&c), Vec::<String>::new());
        // Push/pulls happened, encrypted both ways.
        let joins = c
            .completions
            .iter()
            .filter(|(_, _, e)| matches!(e, Completion::JoinFinished { succeeded: 1, .. }))
            .count();
        assert_eq!(joins, 3);
    }
}

#[test]
fn wrong_key_or_plaintext_cannot_join() {
    let mut c = Cluster::new(3, encrypted_config(&K1), 3);
    c.join_all_to(0);
    c.run_until(CONVERGE, |c| converged(c, 3))
        .expect("converged");
    let wrong = c.add_node("intruder", 7100, encrypted_config(&K2), 99);
    let plain = c.add_node("plain", 7101, Config::local(), 98);
    let now = c.now;
    let seed = c.addrs[0];
    let jw = c.node(wrong).join(now, &[seed]);
    c.drain(wrong);
    let jp = c.node(plain).join(now, &[seed]);
    c.drain(plain);
    c.run_for(Duration::from_secs(30));
    for (i, id) in [(wrong, jw), (plain, jp)] {
        let finished = c.completions.iter().find_map(|(n, _, e)| match e {
            Completion::JoinFinished {
                id: jid,
                succeeded,
                errors,
            } if *n == i && *jid == id => Some((*succeeded, errors.len())),
            _ => None,
        });
        assert_eq!(finished, Some((0, 1)), "node {i} join");
        assert_eq!(c.node(i).num_members(), 1);
    }
    for i in 0..3 {
        let n = c.nodes[i].as_ref().unwrap();
        assert!(n.member("intruder").is_none() && n.member("plain").is_none());
        assert_eq!(n.num_members(), 3);
    }
    assert_eq!(suspects(&c), Vec::<String>::new());
}

#[test]
fn live_migration_to_encryption_then_key_rotation() {
    let n = 4;
    let mut c = Cluster::with_tap_keys(n, Config::local(), 21, Some(test_keys()));
    c.join_all_to(0);
    c.run_until(CONVERGE, |c| converged(c, n))
        .expect("converged");
    c.run_for(Duration::from_secs(5));
    assert!(c.plaintext_packets > 0);
    let step = Duration::from_secs(8);

    // Each step applies to one node at a time, with traffic in between,
    // so mixed states are exercised.
    let each = |c: &mut Cluster, f: &dyn Fn(&mut Node)| {
        for i in 0..n {
            f(c.node(i));
            c.run_for(Duration::from_secs(2));
            assert!(converged(c, n));
        }
        c.run_for(step);
        assert!(converged(c, n));
        assert_eq!(suspects(c), Vec::<String>::new());
        assert_eq!(undecryptable(c), 0);
    };

    // Phase 1: install the key, verify nothing.
    each(&mut c, &|node| {
        node.set_gossip_verify_incoming(false);
        node.set_gossip_verify_outgoing(false);
        node.add_key(&K1).unwrap();
        assert!(!node.encrypts_outgoing());
    });
    // Phase 2: encrypt outgoing.
    each(&mut c, &|node| node.set_gossip_verify_outgoing(true));
    let plain_before = (c.plaintext_packets, c.plaintext_streams);
    let streams_before = c.streams;
    // Long enough for periodic push/pulls (15 s under the local profile).
    c.run_for(Duration::from_secs(40));
    assert!(c.streams > streams_before);
    assert_eq!(
        (c.plaintext_packets, c.plaintext_streams),
        plain_before,
        "plaintext after phase 2"
    );
    // Phase 3: verify incoming.
    each(&mut c, &|node| node.set_gossip_verify_incoming(true));

    // The cluster now refuses plaintext.
    let plain = c.add_node("plain", 7101, Config::local(), 98);
    let now = c.now;
    let seed = c.addrs[0];
    c.node(plain).join(now, &[seed]);
    c.drain(plain);
    c.run_for(step);
    assert_eq!(c.node(plain).num_members(), 1);
    assert!(c.nodes[0].as_ref().unwrap().member("plain").is_none());
    c.kill(plain);

    // Rotation: install K2 everywhere, make it primary everywhere, remove K1.
    each(&mut c, &|node| node.add_key(&K2).unwrap());
    each(&mut c, &|node| node.use_key(&K2).unwrap());
    each(&mut c, &|node| node.remove_key(&K1).unwrap());
    for i in 0..n {
        let k: Vec<&[u8]> = c.nodes[i]
            .as_ref()
            .unwrap()
            .keyring()
            .unwrap()
            .keys()
            .collect();
        assert_eq!(k, vec![&K2[..]]);
    }

    // A node holding only the old key is now shut out.
    let old = c.add_node("old", 7102, encrypted_config(&K1), 97);
    let now = c.now;
    c.node(old).join(now, &[seed]);
    c.drain(old);
    c.run_for(step);
    assert_eq!(c.node(old).num_members(), 1);
    assert!(c.nodes[0].as_ref().unwrap().member("old").is_none());
    c.kill(old);

    c.run_for(Duration::from_secs(30));
    assert!(converged(&c, n));
    assert_eq!(suspects(&c), Vec::<String>::new());
    assert_eq!(undecryptable(&c), 0);
}
