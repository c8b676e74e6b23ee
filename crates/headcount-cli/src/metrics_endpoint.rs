//! `GET /metrics` on the agent's HTTP API: the library's metrics (Go
//! memberlist's names, see docs/metrics.md) in the Prometheus text format,
//! rendered by `metrics-exporter-prometheus` inside the API's router (same
//! listener, same token), not by a listener of its own.
//!
//! Names: the exporter turns the dots of `memberlist.msg.suspect` into
//! underscores, as Go's Prometheus sink does (`memberlist_msg_suspect`);
//! `--metrics-prefix consul` puts `consul.` in front
//! (`consul_memberlist_msg_suspect`, as a Consul agent exports them).
//! Counters get no `_total` suffix and no unit suffix, as in Go. Timers and
//! samples are summaries, like Go's sink: quantiles 0.5, 0.9 and 0.99 over
//! a sliding 10 s window, with `_sum` and `_count` over the whole run.
//!
//! The options are in every build (a build without the `http-api` feature
//! takes them and hides them: nothing records or serves metrics there).

#[cfg(feature = "http-api")]
use std::sync::OnceLock;
#[cfg(feature = "http-api")]
use std::time::Duration;

#[cfg(feature = "http-api")]
use axum::http::{header, StatusCode};
#[cfg(feature = "http-api")]
use axum::response::{IntoResponse, Response};
use clap::Args;
#[cfg(feature = "http-api")]
use metrics_exporter_prometheus::{PrometheusBuilder, PrometheusHandle};
#[cfg(feature = "http-api")]
use metrics_util::layers::{Layer, PrefixLayer};

/// Hide the options from `--help` when nothing serves metrics.
const HIDE: bool = !cfg!(feature = "http-api");

/// The metrics options of `headcount agent` (flattened into its
/// arguments).
#[derive(Args, Debug, Clone, Default)]
#[cfg_attr(not(feature = "http-api"), allow(dead_code))]
pub struct MetricsArgs {
    /// Prefix of the names served at /metrics, e.g. `consul` for
    /// consul_memberlist_msg_suspect (default: none, memberlist_msg_suspect).
    #[arg(long, value_name = "PREFIX", value_parser = parse_prefix, hide = HIDE)]
    pub(crate) metrics_prefix: Option<String>,
    /// A label on every metric (Go memberlist's MetricLabels), KEY=VALUE
    /// (repeatable).
    #[arg(long, value_name = "KEY=VALUE", value_parser = parse_label, hide = HIDE)]
    pub(crate) metric_label: Vec<(String, String)>,
}

/// A prefix must be a Prometheus name's start: a letter or `_`, then
/// letters, digits and `_` (dots are allowed too, and become `_`).
pub(crate) fn parse_prefix(s: &str) -> Result<String, String> {
    let ok = s
        .chars()
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '.');
    if ok && s.len() <= 64 {
        Ok(s.to_string())
    } else {
        Err(format!(
            "{s:?}: a prefix is a letter or _ then letters, digits, _ or . (at most 64)"
        ))
    }
}

/// `KEY=VALUE`, the key a Prometheus label name.
pub(crate) fn parse_label(s: &str) -> Result<(String, String), String> {
    let (k, v) = s
        .split_once('=')
        .ok_or_else(|| format!("{s:?} is not KEY=VALUE"))?;
    let ok = k
        .chars()
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && k.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
        && !k.starts_with("__");
    if !ok {
        return Err(format!(
            "{k:?} is not a label name (a letter or _, then letters, digits or _; not __...)"
        ));
    }
    if k == "node_state" {
        return Err("node_state is the label memberlist.node.instances sets".into());
    }
    Ok((k.to_string(), v.to_string()))
}

/// The exporter's handle, once installed.
#[cfg(feature = "http-api")]
static HANDLE: OnceLock<PrometheusHandle> = OnceLock::new();

/// How often samples are folded into the summaries when nobody scrapes,
/// so that they do not pile up.
#[cfg(feature = "http-api")]
const UPKEEP: Duration = Duration::from_secs(5);

/// Installs the Prometheus recorder as the process's recorder, with the
/// prefix. Must run before the node is created (the node registers its
/// metrics when it starts) and inside the tokio runtime (it spawns the
/// upkeep task). A second call changes nothing.
#[cfg(feature = "http-api")]
pub fn install(args: &MetricsArgs) -> Result<(), String> {
    if HANDLE.get().is_some() {
        return Ok(());
    }
    let recorder = PrometheusBuilder::new()
        // Go's prometheus sink: objectives 0.5, 0.9, 0.99 over 10 s.
        .set_quantiles(&[0.5, 0.9, 0.99])
        .and_then(|b| b.set_bucket_duration(Duration::from_secs(2)))
        .map(|b| b.set_bucket_count(std::num::NonZeroU32::new(5).expect("non-zero")))
        .map_err(|e| format!("metrics: {e}"))?
        .build_recorder();
    let handle = recorder.handle();
    let installed = match &args.metrics_prefix {
        Some(p) => metrics::set_global_recorder(PrefixLayer::new(p.clone()).layer(recorder))
            .map_err(|e| e.to_string()),
        None => metrics::set_global_recorder(recorder).map_err(|e| e.to_string()),
    };
    installed.map_err(|e| format!("metrics: {e}"))?;
    let upkeep = handle.clone();
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(UPKEEP);
        loop {
            tick.tick().await;
            upkeep.run_upkeep();
        }
    });
    let _ = HANDLE.set(handle);
    Ok(())
}

/// `GET /metrics`: the Prometheus text format (404 when no recorder was
/// installed, as in the tests of the bare router).
#[cfg(feature = "http-api")]
pub async fn render() -> Response {
    match HANDLE.get() {
        Some(h) => (
            [(
                header::CONTENT_TYPE,
                "text/plain; version=0.0.4; charset=utf-8",
            )],
            h.render(),
        )
            .into_response(),
        None => (StatusCode::NOT_FOUND, "metrics are not enabled\n").into_response(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prefixes_and_labels_are_checked() {
        assert_eq!(parse_prefix("consul").unwrap(), "consul");
        assert_eq!(parse_prefix("my_app.x").unwrap(), "my_app.x");
        for bad in ["", "1x", "a-b", "a b", &"a".repeat(65)] {
            assert!(parse_prefix(bad).is_err(), "{bad:?}");
        }
        assert_eq!(
            parse_label("dc=eu-west=1").unwrap(),
            ("dc".to_string(), "eu-west=1".to_string())
        );
        for bad in ["dc", "=x", "1a=x", "a-b=x", "__x=y", "node_state=x"] {
            assert!(parse_label(bad).is_err(), "{bad:?}");
        }
    }
}
