//! Driver completions travel as `Output::Completion`, apart from the
//! application's `Output::Event`s, and in the same queue (so in order).

mod common;

use common::Cluster;
use headcount_proto::{Completion, Config, Event, Output, StreamFailure};

/// Everything node `i` has queued, in order.
fn outputs(c: &mut Cluster, i: usize) -> Vec<Output> {
    std::iter::from_fn(|| c.node(i).poll_output()).collect()
}

#[test]
fn a_join_finishes_with_a_completion_after_the_events_it_caused() {
    let mut c = Cluster::new(2, Config::local(), 7);
    let now = c.now;
    let seed = c.addrs[0];
    // The nodes' own start-up outputs (each announces itself).
    outputs(&mut c, 0);
    outputs(&mut c, 1);

    let id = c.node(1).join(now, &[seed]);
    let out = outputs(&mut c, 1);
    let [Output::Dial(d)] = &out[..] else {
        panic!("a join dials its contact first: {out:?}");
    };
    let reply = c.serve_stream(1, d.to, &d.data, d.expect_reply);
    c.node(1).handle_stream_result(now, d.id, reply);
    let out = outputs(&mut c, 1);

    let completions: Vec<_> = out
        .iter()
        .enumerate()
        .filter_map(|(k, o)| match o {
            Output::Completion(c) => Some((k, c)),
            _ => None,
        })
        .collect();
    let [(
        done_at,
        Completion::JoinFinished {
            id: jid,
            succeeded,
            errors,
        },
    )] = &completions[..]
    else {
        panic!("exactly one completion, the join's: {out:?}");
    };
    assert_eq!((*jid, *succeeded, errors.len()), (id, 1, 0));
    // The merged state is reported before the join completes, so a caller
    // woken by the completion has already been told about the seed.
    let joined_at = out
        .iter()
        .position(|o| matches!(o, Output::Event(Event::Join(m)) if m.name == "node-0"))
        .expect("node-0 announced to the application");
    assert!(joined_at < *done_at, "{out:?}");
}

#[test]
fn a_failed_join_is_a_completion_only() {
    let mut c = Cluster::new(1, Config::local(), 7);
    let now = c.now;
    outputs(&mut c, 0);
    let nowhere = "127.0.0.1:1".parse().unwrap();

    let id = c.node(0).join(now, &[nowhere]);
    let out = outputs(&mut c, 0);
    let [Output::Dial(d)] = &out[..] else {
        panic!("a join dials its contact first: {out:?}");
    };
    let dial = d.id;
    c.node(0).handle_stream_result(
        now,
        dial,
        Err(StreamFailure::Io(std::io::ErrorKind::ConnectionRefused)),
    );
    let out = outputs(&mut c, 0);
    match &out[..] {
        [Output::Completion(Completion::JoinFinished {
            id: jid,
            succeeded: 0,
            errors,
        })] => {
            assert_eq!(*jid, id);
            assert_eq!(errors.len(), 1);
            assert_eq!(errors[0].0, nowhere);
        }
        other => panic!("only the join's completion, no event: {other:?}"),
    }

    // A join with nothing to try completes at once, the same way.
    let id = c.node(0).join(now, &[]);
    let out = outputs(&mut c, 0);
    assert!(
        matches!(
            &out[..],
            [Output::Completion(Completion::JoinFinished { id: jid, succeeded: 0, errors })]
                if *jid == id && errors.is_empty()
        ),
        "{out:?}"
    );
}
