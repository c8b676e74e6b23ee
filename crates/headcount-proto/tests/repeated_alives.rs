//! Alive messages that repeat what a node holds are dropped before they
//! are copied out of their packet (`Stats::repeated_alives`), with the same
//! outcome as the full path: no event, no state change. Anything that could
//! matter (a higher incarnation, another address, an `allow_alive` hook that
//! must see every alive) still takes the full path.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use headcount_proto::wire::{encode_message, Alive, Message, Suspect};
use headcount_proto::{
    Config, Event, Hooks, Instant, LocalNode, MemberInfo, MemberState, Node, Output, Veto,
};

const NODE: &str = "node-0";

fn addr(port: u16) -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], port))
}

fn node(hooks: Option<Box<dyn Hooks>>) -> Node {
    let mut b = Node::builder(Config::lan(), LocalNode::new(NODE, addr(7000))).seed(1);
    if let Some(h) = hooks {
        b = b.hooks(h);
    }
    let mut n = b.build(Instant::ZERO).expect("valid config");
    // Our own join.
    assert!(matches!(events(&mut n)[..], [Event::Join(_)]));
    n
}

fn alive(incarnation: u32, port: u16) -> Message {
    Message::Alive(Alive {
        incarnation,
        node: "node-1".into(),
        addr: vec![127, 0, 0, 1],
        port,
        meta: Vec::new(),
        vsn: [1, 5, 2, 0, 0, 0],
    })
}

fn deliver(n: &mut Node, msg: &Message) {
    let mut bytes = Vec::new();
    encode_message(msg, &mut bytes);
    n.handle_packet(Instant::ZERO, addr(7001), &bytes);
}

/// Events since the last call (other outputs are dropped).
fn events(n: &mut Node) -> Vec<Event> {
    std::iter::from_fn(|| n.poll_output())
        .filter_map(|o| match o {
            Output::Event(e) => Some(e),
            _ => None,
        })
        .collect()
}

fn state_of(n: &Node) -> (MemberState, u32) {
    let m = n.member("node-1").expect("node-1 known");
    (m.state, m.incarnation)
}

#[test]
fn repeats_are_dropped_early_and_change_nothing() {
    let mut n = node(None);
    deliver(&mut n, &alive(1, 7001));
    assert!(matches!(events(&mut n)[..], [Event::Join(_)]));
    assert_eq!(n.stats().repeated_alives, 0);

    // The same alive again, and an older one: repeats.
    deliver(&mut n, &alive(1, 7001));
    deliver(&mut n, &alive(0, 7001));
    assert_eq!(n.stats().repeated_alives, 2);
    assert!(events(&mut n).is_empty());
    assert_eq!(state_of(&n), (MemberState::Alive, 1));

    // Another address with the same incarnation is a conflict, which the
    // application hears about: not a repeat.
    deliver(&mut n, &alive(1, 7002));
    assert_eq!(n.stats().repeated_alives, 2);
    assert!(matches!(events(&mut n)[..], [Event::Conflict { .. }]));

    // A higher incarnation is news.
    deliver(&mut n, &alive(2, 7001));
    assert_eq!(n.stats().repeated_alives, 2);
    assert_eq!(state_of(&n), (MemberState::Alive, 2));

    // Suspected at 2: an alive at 2 does not refute it (a repeat), one at
    // 3 does.
    deliver(
        &mut n,
        &Message::Suspect(Suspect {
            incarnation: 2,
            node: "node-1".into(),
            from: "node-2".into(),
        }),
    );
    assert_eq!(state_of(&n), (MemberState::Suspect, 2));
    deliver(&mut n, &alive(2, 7001));
    assert_eq!(n.stats().repeated_alives, 3);
    assert_eq!(state_of(&n), (MemberState::Suspect, 2));
    deliver(&mut n, &alive(3, 7001));
    assert_eq!(state_of(&n), (MemberState::Alive, 3));
    assert_eq!(n.stats().repeated_alives, 3);

    // An alive about ourselves is never dropped early: it may need
    // refuting.
    let before = n.stats().repeated_alives;
    deliver(
        &mut n,
        &Message::Alive(Alive {
            incarnation: 0,
            node: NODE.into(),
            addr: vec![127, 0, 0, 1],
            port: 7000,
            meta: Vec::new(),
            vsn: [1, 5, 2, 0, 0, 0],
        }),
    );
    assert_eq!(n.stats().repeated_alives, before);
}

/// Counts the alives it is shown and vetoes none.
struct CountAlives(Arc<AtomicUsize>);

impl Hooks for CountAlives {
    fn allow_alive(&mut self, _: &MemberInfo) -> Result<(), Veto> {
        self.0.fetch_add(1, Ordering::Relaxed);
        Ok(())
    }
}

#[test]
fn an_alive_hook_sees_every_repeat() {
    let seen = Arc::new(AtomicUsize::new(0));
    let mut n = node(Some(Box::new(CountAlives(seen.clone()))));
    for _ in 0..3 {
        deliver(&mut n, &alive(1, 7001));
    }
    assert_eq!(seen.load(Ordering::Relaxed), 3);
    assert_eq!(n.stats().repeated_alives, 0);
    assert_eq!(state_of(&n), (MemberState::Alive, 1));
}
