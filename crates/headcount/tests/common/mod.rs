//! What the loopback cluster tests share.

use std::time::Duration;

use headcount::Config;

/// The local profile, sped up so that tests finish quickly.
pub fn fast_config() -> Config {
    let mut c = Config::local();
    c.probe_interval = Duration::from_millis(300);
    c.probe_timeout = Duration::from_millis(150);
    c.gossip_interval = Duration::from_millis(50);
    c.push_pull_interval = Duration::from_secs(3);
    c
}
