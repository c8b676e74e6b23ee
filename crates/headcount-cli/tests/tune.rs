//! `headcount tune` end to end: output formats, impossible goals, bad
//! input and a small `--verify`. No network.

use std::process::{Command, Output};

const BIN: &str = env!("CARGO_BIN_EXE_headcount");

fn tune(args: &[&str]) -> Output {
    Command::new(BIN)
        .arg("tune")
        .args(args)
        .output()
        .expect("run headcount tune")
}

fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

#[test]
fn json_parses_and_carries_the_presets() {
    let o = tune(&["--nodes", "200", "--detect", "6s", "--json"]);
    assert!(o.status.success(), "{}", stderr(&o));
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).expect("valid JSON");
    assert_eq!(v["feasible"], true);
    let p = &v["recommended"]["prediction"];
    assert!(p["detect_median"].as_f64().unwrap() <= 6.0);
    assert!(p["bandwidth"]["total"].as_f64().unwrap() > 0.0);
    let presets: Vec<&str> = v["presets"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["preset"].as_str().unwrap())
        .collect();
    assert_eq!(presets, ["lan", "wan", "local"]);
    // Go's LAN preset at 200 nodes: 4 × log10(200) = 9.204 s.
    assert_eq!(v["presets"][0]["prediction"]["suspicion_min"], 9.204);
}

#[test]
fn table_shows_the_recommendation_beside_the_presets() {
    let o = tune(&["--nodes", "100", "--rtt", "wan", "--spread", "3s"]);
    assert!(o.status.success(), "{}", stderr(&o));
    let s = stdout(&o);
    for needle in [
        "recommended",
        "Go lan",
        "Go wan",
        "Go local",
        "detection median / p99",
        "false deaths per day",
        "meets the targets",
    ] {
        assert!(s.contains(needle), "missing {needle:?} in:\n{s}");
    }
}

#[test]
fn go_output_names_real_memberlist_fields() {
    let o = tune(&["--nodes", "300", "--format", "go"]);
    assert!(o.status.success(), "{}", stderr(&o));
    let s = stdout(&o);
    let fields: Vec<&str> = s
        .lines()
        .filter_map(|l| l.strip_prefix("conf."))
        .map(|l| l.split(' ').next().unwrap())
        .collect();
    assert_eq!(fields.len(), 8, "{s}");
    assert!(s.contains("conf := memberlist.DefaultLANConfig()"));
    // The fields of memberlist's Config, from its source when the Debian
    // package is installed (scripts/test.sh installs it), else as of v0.5.
    let source =
        std::fs::read_to_string("/usr/share/gocode/src/github.com/hashicorp/memberlist/config.go")
            .unwrap_or_else(|_| {
                "ProbeInterval time.Duration\nProbeTimeout time.Duration\nSuspicionMult int\n\
         SuspicionMaxTimeoutMult int\nGossipInterval time.Duration\nGossipNodes int\n\
         RetransmitMult int\nPushPullInterval time.Duration\n"
                    .to_string()
            });
    for f in fields {
        assert!(
            source
                .lines()
                .any(|l| l.trim_start().starts_with(&format!("{f} "))),
            "memberlist.Config has no field {f}"
        );
    }
}

#[test]
fn rust_output_is_a_config_expression() {
    let o = tune(&["--nodes", "300", "--format", "rust"]);
    assert!(o.status.success(), "{}", stderr(&o));
    let s = stdout(&o);
    assert!(s.contains("let config = headcount::Config::lan()"), "{s}");
    assert_eq!(s.matches("\n    .with_").count(), 8, "{s}");
    assert!(s.trim_end().ends_with(");"));
}

#[test]
fn an_impossible_goal_is_explained_with_alternatives() {
    let o = tune(&["--nodes", "10000", "--detect", "1s", "--bandwidth", "1KB/s"]);
    assert!(o.status.success(), "{}", stderr(&o));
    let s = stdout(&o);
    assert!(s.contains("No configuration meets every target."), "{s}");
    assert!(
        s.contains("detection 1.00 s cannot be met by any configuration searched"),
        "{s}"
    );
    assert!(s.contains("suspicion_mult × log10(10000)"), "{s}");
    assert!(s.contains("nearest reachable alternatives"), "{s}");
    assert!(s.contains("option 2"), "{s}");
    // The same in JSON.
    let o = tune(&[
        "--nodes",
        "10000",
        "--detect",
        "1s",
        "--bandwidth",
        "1KB/s",
        "--json",
    ]);
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(v["feasible"], false);
    assert_eq!(v["unreachable"][0]["target"], "detection");
    assert!(v["unreachable"][0]["best"].as_f64().unwrap() > 1.0);
    assert!(v["trade_off"].as_array().unwrap().len() >= 2);
}

#[test]
fn bad_input_gets_a_one_line_error() {
    for (args, needle) in [
        (&["--nodes", "-5"][..], "--nodes"),
        (&["--nodes", "2"][..], "too small"),
        (
            &["--nodes", "100", "--bandwidth", "2 parsecs/s"][..],
            "unknown unit",
        ),
        (&["--nodes", "100", "--detect", "5"][..], "needs a unit"),
        (&["--nodes", "100", "--loss", "120%"][..], "--loss"),
        (&["--nodes", "100", "--rtt", "10ms,1ms"][..], "p99"),
        (
            &["--nodes", "100", "--false-deaths", "1/fortnight"][..],
            "unknown period",
        ),
        (&["--nodes", "100", "--stalls", "often"][..], "--stalls"),
    ] {
        let o = tune(args);
        assert_eq!(o.status.code(), Some(2), "{args:?}");
        let e = stderr(&o);
        assert_eq!(e.trim_end().lines().count(), 1, "{args:?}: {e}");
        assert!(e.contains(needle), "{args:?}: {e}");
    }
}

#[test]
fn verify_agrees_with_the_simulator_on_a_small_cluster() {
    let o = tune(&[
        "--nodes",
        "40",
        "--detect",
        "8s",
        "--verify",
        "--seeds",
        "3",
        "--crashes",
        "3",
        "--json",
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    let cmp = v["verify"]["comparison"].as_array().unwrap();
    assert_eq!(v["verify"]["measured"]["undetected"], 0);
    for c in cmp {
        if let Some(bound) = c["bound"].as_f64() {
            let e = c["error"].as_f64().unwrap();
            assert!(e.abs() <= bound, "{} off by {e}: {v}", c["figure"]);
        }
    }
}

#[test]
fn agent_refuses_timing_that_cannot_work() {
    let o = Command::new(BIN)
        .args([
            "agent",
            "--bind",
            "127.0.0.1:0",
            "--probe-interval",
            "1s",
            "--probe-timeout",
            "2s",
        ])
        .output()
        .expect("run agent");
    assert!(!o.status.success());
    let e = stderr(&o);
    assert!(e.contains("timing settings do not work together"), "{e}");
}

#[test]
fn a_range_holds_the_targets_at_both_ends() {
    // Stalls kill more easily in small clusters (shorter suspicion
    // timeouts), detection is slower in large ones.
    let o = tune(&[
        "--nodes",
        "16..1000",
        "--stalls",
        "1/h:15s",
        "--false-deaths",
        "1/day",
        "--detect",
        "45s",
        "--json",
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(v["feasible"], true, "{v}");
    let r = &v["recommended"];
    assert!(
        r["prediction_at_low"]["false_deaths_per_day"]
            .as_f64()
            .unwrap()
            <= 1.0
    );
    assert!(r["prediction"]["false_deaths_per_day"].as_f64().unwrap() <= 1.0);
    assert!(r["prediction"]["detect_median"].as_f64().unwrap() <= 45.0);
    assert_eq!(r["prediction_at_low"]["nodes"], 16);
}
