//! Serf's key rotation (install the new key everywhere, use it everywhere,
//! remove the old one everywhere) driven through `headcount keys` against a
//! 3-agent encrypted cluster on 127.0.0.1: nobody is suspected meanwhile,
//! traffic under the new key flows, and a joiner with the old key is refused.
//! Suspicions are read from `headcount monitor --json` (the agents' stdout
//! has no line for them).

mod common;

use std::process::{Command, Stdio};
use std::sync::mpsc::RecvTimeoutError;
use std::time::{Duration, Instant};

use common::{headcount_bin, JsonAgent};
use serde_json::Value;

const T: Duration = Duration::from_secs(20);
const NAMES: [&str; 3] = ["kr1", "kr2", "kr3"];

/// Runs a client command; answers (exit code, stdout, stderr).
fn run(args: &[&str]) -> (i32, String, String) {
    let o = Command::new(headcount_bin())
        .args(args)
        .env_remove("HEADCOUNT_HTTP_ADDR")
        .env_remove("HEADCOUNT_HTTP_TOKEN")
        .stdin(Stdio::null())
        .output()
        .expect("run headcount");
    (
        o.status.code().expect("exited"),
        String::from_utf8_lossy(&o.stdout).into_owned(),
        String::from_utf8_lossy(&o.stderr).into_owned(),
    )
}

fn keygen() -> String {
    let (code, key, err) = run(&["keygen"]);
    assert_eq!(code, 0, "{err}");
    key.trim().to_string()
}

/// `headcount keys OP [KEY] --http API`, which must exit 0; its stdout.
fn keys(api: &str, op: &[&str]) -> String {
    let mut args = vec!["keys"];
    args.extend_from_slice(op);
    args.extend_from_slice(&["--http", api]);
    let (code, out, err) = run(&args);
    assert_eq!(code, 0, "headcount {args:?}: {out}{err}");
    out
}

/// Collects every line an agent prints for `d` (it is the observation of
/// the steady period, not a bare sleep: the lines are checked afterwards).
fn watch(a: &mut JsonAgent, d: Duration) {
    let deadline = Instant::now() + d;
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        match a.lines.recv_timeout(left) {
            Ok(v) => a.seen.push(v),
            Err(RecvTimeoutError::Timeout) => return,
            Err(RecvTimeoutError::Disconnected) => panic!("{} exited", a.proc.name),
        }
    }
}

/// Takes every line already printed, without waiting.
fn drain(a: &mut JsonAgent) {
    while let Ok(v) = a.lines.try_recv() {
        a.seen.push(v);
    }
}

/// `from` sends `text` to `to` through `headcount send`; `to` prints it.
fn message(api_from: &str, to: &mut JsonAgent, to_name: &str, text: &str) {
    let (code, out, err) = run(&["send", "--http", api_from, to_name, text]);
    assert_eq!(code, 0, "send to {to_name}: {out}{err}");
    to.wait_for(T, &format!("the message {text:?}"), |v| {
        v["event"] == "user" && v["msg"] == text
    });
}

/// A line that would mean a member was suspected, failed, left or was
/// otherwise not seen alive by `me`.
fn trouble(me: &str, v: &Value) -> bool {
    let about_other = v["node"].is_string() && v["node"] != me;
    let bad_state = matches!(v["state"].as_str(), Some("suspect" | "dead" | "left"));
    about_other && (v["event"] == "leave" || bad_state)
}

#[test]
fn keys_rotate_through_the_client_without_suspicion_and_the_old_key_is_refused() {
    let old = keygen();
    let new = keygen();
    assert_ne!(old, new);

    // Three agents under OLD, 2 and 3 joining 1.
    let (a1, g1, api1) = common::agent_with_api(NAMES[0], &["--encrypt", &old], T);
    let (a2, _, api2) = common::agent_with_api(NAMES[1], &["--encrypt", &old, "--join", &g1], T);
    let (a3, _, api3) = common::agent_with_api(NAMES[2], &["--encrypt", &old, "--join", &g1], T);
    let mut agents = [a1, a2, a3];
    let apis = [api1, api2, api3];
    for (i, a) in agents.iter_mut().enumerate() {
        for (j, other) in NAMES.iter().enumerate() {
            if i != j {
                a.wait_event(T, "join", other, "alive");
            }
        }
    }

    // Everyone has one key, the same primary.
    let lists: Vec<String> = apis.iter().map(|api| keys(api, &["list"])).collect();
    let old_fp = lists[0]
        .trim_end()
        .strip_suffix(" (primary)")
        .unwrap()
        .to_string();
    for l in &lists {
        assert_eq!(l, &format!("{old_fp} (primary)\n"));
    }

    // The agents' stdout has no line for a suspicion (the event delegate
    // only hears join, leave and update), but their event streams do:
    // watch each through `headcount monitor --json`, from before the
    // rotation to the end, once it listed the three members.
    let mut monitors: Vec<JsonAgent> = apis
        .iter()
        .enumerate()
        .map(|(i, api)| {
            let mut c = Command::new(headcount_bin());
            c.args(["monitor", "--json", "--http", api])
                .env_remove("HEADCOUNT_HTTP_ADDR")
                .env_remove("HEADCOUNT_HTTP_TOKEN");
            let mut m = JsonAgent::spawn(&format!("monitor of {}", NAMES[i]), c);
            for n in NAMES {
                m.wait_for(T, &format!("the join of {n}"), |v| {
                    v["event"] == "join" && v["data"]["name"] == n
                });
            }
            m
        })
        .collect();

    // Rotation: lines printed from here on must show no trouble.
    let mark: Vec<usize> = agents
        .iter_mut()
        .map(|a| {
            drain(a);
            a.seen.len()
        })
        .collect();

    let mut new_fp = String::new();
    for api in &apis {
        let out = keys(api, &["install", &new]);
        let lines: Vec<&str> = out.lines().collect();
        assert_eq!(lines.len(), 2, "{out}");
        assert_eq!(lines[0], format!("{old_fp} (primary)"), "{out}");
        assert_ne!(lines[1], old_fp);
        if new_fp.is_empty() {
            new_fp = lines[1].to_string();
        }
        assert_eq!(lines[1], new_fp, "{out}");
    }
    for api in &apis {
        let out = keys(api, &["use", &new]);
        assert_eq!(out, format!("{new_fp} (primary)\n{old_fp}\n"));
    }
    for api in &apis {
        let out = keys(api, &["remove", &old]);
        assert_eq!(out, format!("{new_fp} (primary)\n"));
    }
    for api in &apis {
        assert_eq!(keys(api, &["list"]), format!("{new_fp} (primary)\n"));
    }

    // Steady period under NEW only: rounds of messages, each awaited where
    // it lands, spanning several probe rounds (1 s each with --profile
    // local) during which every line the agents print is collected.
    for round in 0..4 {
        let [x1, x2, x3] = &mut agents;
        message(&apis[0], x3, NAMES[2], &format!("1->3 #{round}"));
        message(&apis[2], x1, NAMES[0], &format!("3->1 #{round}"));
        message(&apis[1], x1, NAMES[0], &format!("2->1 #{round}"));
        message(&apis[0], x2, NAMES[1], &format!("1->2 #{round}"));
        for a in agents.iter_mut() {
            watch(a, Duration::from_millis(200));
        }
    }

    // A joiner with the old key is refused, saying why.
    let out = Command::new(headcount_bin())
        .args(["agent", "--name", "kr-old", "--bind", "127.0.0.1:0"])
        .args(["--profile", "local", "--encrypt", &old, "--join", &g1])
        .env("RUST_LOG", "warn")
        .stdin(Stdio::null())
        .output()
        .expect("run headcount agent");
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert_eq!(err.lines().count(), 1, "one line on stderr: {err}");
    assert!(
        err.contains(&format!("join failed: no address answered ({g1}: "))
            && err.contains("wrong encryption key or label?"),
        "{err}"
    );

    // One more awaited round after it: whatever it sent has been handled.
    {
        let [x1, _, x3] = &mut agents;
        message(&apis[0], x3, NAMES[2], "1->3 after");
        message(&apis[2], x1, NAMES[0], "3->1 after");
    }
    for (i, a) in agents.iter_mut().enumerate() {
        watch(a, Duration::from_millis(300));
        let since = &a.seen[mark[i]..];
        let bad: Vec<&Value> = since.iter().filter(|v| trouble(NAMES[i], v)).collect();
        assert!(bad.is_empty(), "{}: {bad:#?}", NAMES[i]);
        assert!(
            a.seen.iter().all(|v| v["node"] != "kr-old"),
            "{} saw the refused joiner: {:#?}",
            NAMES[i],
            a.seen
        );
    }
    // No suspicion, failure or leave in the event streams, no lost events,
    // and no trace of the refused joiner.
    for m in monitors.iter_mut() {
        drain(m);
        let bad: Vec<&Value> = m
            .seen
            .iter()
            .filter(|v| {
                matches!(
                    v["event"].as_str(),
                    Some("suspect" | "leave" | "lagged" | "conflict")
                ) || v["data"]["name"] == "kr-old"
                    || matches!(
                        v["data"]["state"].as_str(),
                        Some("suspect" | "dead" | "left")
                    )
            })
            .collect();
        assert!(bad.is_empty(), "{}: {bad:#?}", m.proc.name);
        // It saw the messages of the steady period, so it was streaming.
        assert!(
            m.seen.iter().any(|v| v["event"] == "user"),
            "{}: {:#?}",
            m.proc.name,
            m.seen
        );
    }
    // Nobody thinks it is a member either.
    for api in &apis {
        let (code, out, err) = run(&["members", "--http", api]);
        assert_eq!(code, 0, "{err}");
        assert!(!out.contains("kr-old"), "{out}");
        for n in NAMES {
            assert!(out.contains(n), "{out}");
        }
    }
}
