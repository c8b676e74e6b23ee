//! The agent in whatever build this is, and what a build without some of
//! headcount-cli's cargo features says instead of running what it left
//! out. `scripts/test.sh` runs it on the lean build (`cargo test -p
//! headcount-cli --no-default-features --test lean`) as well as on the
//! default one. Loopback only.

mod common;

use std::process::{Command, Output, Stdio};
use std::time::Duration;

use common::{headcount_agent, headcount_bin};

/// Runs the binary to its end with stdin closed.
fn run(args: &[&str], env: &[(&str, &str)]) -> Output {
    let mut cmd = Command::new(headcount_bin());
    cmd.args(args).stdin(Stdio::null()).env_remove("RUST_LOG");
    for (k, v) in env {
        cmd.env(k, v);
    }
    cmd.output().expect("run headcount")
}

/// A loopback port nothing listens on (TCP), for joins that must fail.
fn closed_port() -> u16 {
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    l.local_addr().unwrap().port()
}

#[test]
fn agents_join_by_address_and_see_a_kill() {
    let t = Duration::from_secs(30);
    let args = ["--profile", "local", "--http", "off"];
    let mut a = headcount_agent("lean-a", "127.0.0.1:0", &args);
    let addr = a.wait_event(t, "join", "lean-a", "alive")["addr"]
        .as_str()
        .unwrap()
        .to_string();
    let join = ["--profile", "local", "--http", "off", "--join", &addr];
    let mut b = headcount_agent("lean-b", "127.0.0.1:0", &join);
    b.wait_event(t, "join", "lean-a", "alive");
    a.wait_event(t, "join", "lean-b", "alive");
    // Killed without leaving: a detects it.
    b.proc.kill();
    a.wait_event(t, "leave", "lean-b", "dead");
}

#[test]
fn commands_left_out_say_which_feature_has_them() {
    for (command, on) in [
        ("demo", cfg!(feature = "demo")),
        ("bench", cfg!(feature = "bench")),
        ("tune", cfg!(feature = "tune")),
        ("members", cfg!(feature = "client")),
        ("monitor", cfg!(feature = "client")),
    ] {
        let out = run(&[command, "--help"], &[]);
        let err = String::from_utf8_lossy(&out.stderr);
        if on {
            assert!(out.status.success(), "{command} --help: {err}");
            continue;
        }
        assert_eq!(out.status.code(), Some(2), "{command}: {err}");
        assert!(err.contains("is not in this build"), "{command}: {err}");
        assert!(err.contains("cargo feature"), "{command}: {err}");
    }
    // The top-level help names what is left out.
    let out = run(&["--help"], &[]);
    let help = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success());
    assert!(help.contains("agent") && help.contains("keygen"), "{help}");
    let lean = !cfg!(feature = "demo");
    assert_eq!(help.contains("Not in this build"), lean, "{help}");
}

#[test]
fn http_api_flag_without_the_api() {
    let out = run(
        &[
            "agent",
            "--name",
            "x",
            "--bind",
            "127.0.0.1:0",
            "--http",
            "127.0.0.1:0",
            "--join",
            &format!("127.0.0.1:{}", closed_port()),
        ],
        &[],
    );
    let err = String::from_utf8_lossy(&out.stderr);
    // Either way the agent exits 1: with the API, because the join fails;
    // without it, before it starts.
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert_eq!(
        err.contains("built without the HTTP API"),
        !cfg!(feature = "http-api"),
        "{err}"
    );
}

#[test]
fn host_names_in_join_need_dns() {
    let out = run(
        &[
            "agent",
            "--name",
            "x",
            "--bind",
            "127.0.0.1:0",
            "--http",
            "off",
            "--join",
            "no-such-host.invalid:7946",
        ],
        &[],
    );
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(err.contains("no-such-host.invalid"), "{err}");
    assert_eq!(
        err.contains("built without the `dns` feature"),
        !cfg!(feature = "dns"),
        "{err}"
    );
}

#[test]
fn rust_log_filters_by_level_and_target() {
    // The join fails at once, after the agent has logged at info that it
    // listens; RUST_LOG decides whether that line is shown.
    let port = closed_port();
    let args = [
        "agent",
        "--name",
        "logs",
        "--bind",
        "127.0.0.1:0",
        "--http",
        "off",
        "--join",
        &format!("127.0.0.1:{port}"),
    ];
    let listening = |env: &[(&str, &str)]| {
        let out = run(&args, env);
        assert_eq!(out.status.code(), Some(1));
        String::from_utf8_lossy(&out.stderr).contains("logs listening on")
    };
    assert!(listening(&[]), "info is the default");
    assert!(!listening(&[("RUST_LOG", "warn")]));
    assert!(listening(&[("RUST_LOG", "warn,headcount::agent=info")]));
    // --log-level wins over RUST_LOG.
    let out = run(
        &[&args[..], &["--log-level", "warn"]].concat(),
        &[("RUST_LOG", "info")],
    );
    assert!(!String::from_utf8_lossy(&out.stderr).contains("logs listening on"));
}
