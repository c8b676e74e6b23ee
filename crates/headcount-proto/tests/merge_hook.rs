//! The merge hook (Go `MergeDelegate.NotifyMerge`) still vetoes push/pull
//! merges now that hooks which never veto (`vets_merges() == false`) skip
//! building its member list.

mod common;

use std::time::Duration;

use common::Cluster;
use headcount_proto::{
    Completion, Config, Hooks, LocalNode, MemberInfo, MergeError, Node, PushPullError, Veto,
};

/// The application's own reason, kept through the veto.
#[derive(Debug)]
struct NotThisCluster;

impl std::fmt::Display for NotThisCluster {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("not this cluster")
    }
}

impl std::error::Error for NotThisCluster {}

struct Vetoes {
    seen: std::sync::Arc<std::sync::atomic::AtomicUsize>,
}

impl Hooks for Vetoes {
    fn allow_merge(&mut self, peers: &[MemberInfo]) -> Result<(), Veto> {
        self.seen
            .fetch_add(peers.len(), std::sync::atomic::Ordering::Relaxed);
        Err(Veto::new(NotThisCluster))
    }
}

#[test]
fn a_vetoing_merge_hook_is_called_and_rejects_the_join() {
    let mut c = Cluster::new(2, Config::local(), 3);
    let seen = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let local = LocalNode::new("node-0", c.addrs[0]);
    let now = c.now;
    c.nodes[0] = Some(
        Node::builder(Config::local(), local)
            .hooks(Box::new(Vetoes { seen: seen.clone() }))
            .seed(3)
            .build(now)
            .unwrap(),
    );
    c.join_all_to(1);
    c.run_for(Duration::from_secs(1));
    let finished = c
        .completions
        .iter()
        .find_map(|(i, _, e)| match e {
            Completion::JoinFinished {
                succeeded, errors, ..
            } if *i == 0 => Some((*succeeded, errors.clone())),
            _ => None,
        })
        .expect("join finished");
    assert_eq!(finished.0, 0);
    let [(addr, PushPullError::Merge(MergeError::Vetoed(veto)))] = &finished.1[..] else {
        panic!("one vetoed merge expected: {finished:?}");
    };
    assert_eq!(*addr, c.addrs[1]);
    assert!(veto.reason().is::<NotThisCluster>(), "{veto:?}");
    assert_eq!(
        finished.1[0].1.to_string(),
        "merge refused: not this cluster"
    );
    // The hook saw node-1's state: node-1 answers before it merges ours
    // (as Go's handleConn does), so it lists only itself.
    assert_eq!(seen.load(std::sync::atomic::Ordering::Relaxed), 1);
}
