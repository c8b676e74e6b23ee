//! Stream failures reach the application typed: a reliable send reports the
//! driver's [`StreamFailure`] as is, and a join reports each address's
//! [`PushPullError`].

use std::net::SocketAddr;

use headcount_proto::wire::{ErrResp, StreamError};
use headcount_proto::{
    Completion, Config, Instant, LocalNode, Node, Output, PushPullError, StreamFailure,
    StreamMessage,
};

fn node() -> Node {
    let local = LocalNode::new("n", "127.0.0.1:7946".parse().unwrap());
    Node::builder(Config::local(), local)
        .seed(1)
        .build(Instant::ZERO)
        .unwrap()
}

/// Drains the node's outputs: the streams it dialed and its completions.
fn drain(n: &mut Node) -> (Vec<headcount_proto::Dial>, Vec<Completion>) {
    let (mut dials, mut events) = (Vec::new(), Vec::new());
    while let Some(out) = n.poll_output() {
        match out {
            Output::Dial(d) => dials.push(d),
            Output::Completion(c) => events.push(c),
            Output::Event(_) | Output::Packet { .. } => {}
        }
    }
    (dials, events)
}

#[test]
fn a_reliable_send_reports_the_stream_failure() {
    let mut n = node();
    drain(&mut n);
    let to: SocketAddr = "127.0.0.1:7000".parse().unwrap();
    let id = n.send_reliable(Instant::ZERO, to, b"hi".to_vec()).unwrap();
    let (dials, _) = drain(&mut n);
    assert_eq!(dials.len(), 1);
    n.handle_stream_result(Instant::ZERO, id, Err(StreamFailure::Timeout));
    let (_, events) = drain(&mut n);
    assert!(
        events.iter().any(|e| matches!(
            e,
            Completion::ReliableSent { id: i, result: Err(StreamFailure::Timeout) } if *i == id
        )),
        "{events:?}"
    );
}

#[test]
fn a_join_reports_why_each_address_failed() {
    let mut n = node();
    drain(&mut n);
    let addrs: Vec<SocketAddr> = (7001..=7004)
        .map(|p| format!("127.0.0.1:{p}").parse().unwrap())
        .collect();
    let join = n.join(Instant::ZERO, &addrs);
    let (dials, _) = drain(&mut n);
    assert_eq!(dials.len(), 4);
    let refused = StreamFailure::Io(std::io::ErrorKind::ConnectionRefused);
    let bad = StreamFailure::Decode(StreamError::UnexpectedType(99));
    let results = [
        Err(refused.clone()),
        Err(bad.clone()),
        Ok(Some(StreamMessage::Err(ErrResp {
            error: "go away".into(),
        }))),
        Ok(None),
    ];
    for (d, r) in dials.iter().zip(results) {
        n.handle_stream_result(Instant::ZERO, d.id, r);
    }
    let (_, events) = drain(&mut n);
    let errors = events
        .iter()
        .find_map(|e| match e {
            Completion::JoinFinished {
                id,
                succeeded: 0,
                errors,
            } if *id == join => Some(errors.clone()),
            _ => None,
        })
        .expect("join finished");
    let by_addr = |a: SocketAddr| {
        errors
            .iter()
            .find(|(x, _)| *x == a)
            .map(|(_, e)| e.clone())
            .unwrap()
    };
    let d = |i: usize| dials[i].to;
    assert_eq!(by_addr(d(0)), PushPullError::Stream(refused));
    assert_eq!(by_addr(d(0)).to_string(), "connection refused");
    assert_eq!(by_addr(d(1)), PushPullError::Stream(bad));
    assert_eq!(
        by_addr(d(2)),
        PushPullError::Remote("go away".into()),
        "{errors:?}"
    );
    assert_eq!(by_addr(d(2)).to_string(), "remote error: go away");
    assert_eq!(by_addr(d(3)), PushPullError::UnexpectedReply);
}
