//! Diagnostic: a spaced bootstrap of N nodes (as `headcount-sim scale`:
//! one join every 20 ms, lan profile, seed 1), then per virtual second how
//! many (observer, member) pairs are known, the suspicions, deaths and
//! protocol counters so far; at 20 s and at the end, which observer misses
//! which member. Stops once every node knows every node.
//!
//! `cargo run --release -p headcount-sim --example bootstrap_gaps -- 700 60`
//! (nodes, virtual seconds): at 700 nodes, 489 999 of the 490 000 pairs
//! are known 1 s after the last join and the last one only when a
//! push/pull carries it (no gossip is left to: bench/notes.md).
use core::time::Duration;

use headcount_proto::Config;
use headcount_sim::engine::{Kind, Sim};
use headcount_sim::experiments::JOIN_SPACING;
use headcount_sim::net::Profile;

fn main() {
    let n: usize = std::env::args()
        .nth(1)
        .and_then(|a| a.parse().ok())
        .unwrap_or(700);
    let secs: u64 = std::env::args()
        .nth(2)
        .and_then(|a| a.parse().ok())
        .unwrap_or(60);
    let mut sim = Sim::new(1, Config::lan(), Profile::lan(), 0.0);
    sim.recording = true;
    sim.bootstrap(n, JOIN_SPACING);
    for s in 1..=secs {
        sim.run_for(Duration::from_secs(1));
        let known: usize = (0..sim.len()).map(|i| sim.known(i)).sum();
        let count = |k: Kind| sim.log.iter().filter(|r| r.kind == k).count();
        let (mut dropped, mut ignored, mut failed, mut probes, mut sent) = (0, 0, 0, 0, 0);
        for i in 0..sim.len() {
            if let Some(node) = sim.node(i) {
                let st = node.stats();
                dropped += st.packets_dropped;
                ignored += st.messages_ignored;
                failed += st.probes_failed;
                probes += st.probes;
                sent += st.packets_sent;
            }
        }
        println!(
            "t={s:>3}s running={} known={known} of {} suspect={} dead={} joins={} probes={probes} failed={failed} dropped={dropped} ignored={ignored} packets={sent} lost={}",
            sim.running(),
            sim.running() * sim.running(),
            count(Kind::Suspect),
            count(Kind::Dead),
            count(Kind::Join),
            sim.stats().packets_lost,
        );
        if s == 20 || s == secs {
            for i in 0..sim.len() {
                if sim.known(i) < sim.running() {
                    let missing: Vec<usize> = (0..sim.len())
                        .filter(|&j| sim.state_seen(i, j).is_none())
                        .collect();
                    println!(
                        "  node {i} (joined at {:.2} s) misses {missing:?}",
                        i as f64 * JOIN_SPACING.as_secs_f64()
                    );
                }
            }
        }
        if sim.running() == n && sim.converged() {
            println!("converged at {s} s");
            break;
        }
    }
}
