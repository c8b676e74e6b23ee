//! The HTTP API's options of `headcount agent` (`--http`, its token and
//! timeout) and their checks: in every build, so that a build without the
//! API (cargo feature `http-api` off: the lean agent) takes the same flags
//! and configuration keys and says why `--http ADDR` cannot work. The API
//! itself is in `http_api`.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::time::Duration;

use clap::Args;

/// The default API address.
pub const DEFAULT_ADDR: SocketAddr = SocketAddr::new(IpAddr::V4(Ipv4Addr::LOCALHOST), 7947);

/// Why `--http ADDR` fails in a build without the API.
pub const NOT_BUILT: &str = "this headcount was built without the HTTP API (cargo feature \
                             `http-api`, left out of the lean agent build): use --http off, or \
                             a build with default features";

/// Hide the API's flags from `--help` when the API is not built in.
const HIDE: bool = !cfg!(feature = "http-api");

/// The HTTP API options of `headcount agent` (flattened into its
/// arguments).
#[derive(Args, Debug, Clone)]
#[cfg_attr(not(feature = "http-api"), allow(dead_code))]
pub struct HttpArgs {
    /// Address of the HTTP API, or `off` (default 127.0.0.1:7947; see
    /// HTTP API below).
    #[arg(long, value_name = "IP:PORT|off", value_parser = parse_listen, hide = HIDE)]
    pub(crate) http: Option<Listen>,
    /// Bearer token the HTTP API requires (`Authorization: Bearer TOKEN`);
    /// needed for a non-loopback --http address.
    #[arg(long, value_name = "TOKEN", hide = HIDE)]
    pub(crate) http_token: Option<String>,
    /// Read the --http-token from the first line of this file (keeps it out
    /// of the process list).
    #[arg(long, value_name = "FILE", hide = HIDE)]
    pub(crate) http_token_file: Option<std::path::PathBuf>,
    /// Allow a non-loopback --http address without a token.
    #[arg(long, hide = HIDE)]
    pub(crate) http_insecure: bool,
    /// Close an API connection after this long without a byte read or
    /// written (an event stream writes a keep-alive every 15 s).
    #[arg(long, value_name = "DURATION", default_value = "30s", value_parser = crate::agent::agent_config::parse_duration, hide = HIDE)]
    pub(crate) http_idle_timeout: Duration,
}

/// Where the API listens.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Listen {
    /// Disabled.
    Off,
    /// This address.
    At(SocketAddr),
}

pub(crate) fn parse_listen(s: &str) -> Result<Listen, String> {
    if s.eq_ignore_ascii_case("off") {
        return Ok(Listen::Off);
    }
    s.parse::<SocketAddr>()
        .map(Listen::At)
        .map_err(|_| format!("{s:?} is not IP:PORT nor `off`"))
}

/// Checks the options without binding anything: a non-loopback address
/// needs a token or `--http-insecure`; an empty token is refused. Without
/// the `http-api` feature the API is off unless `--http ADDR` asks for it,
/// which is an error.
pub fn check(args: &HttpArgs) -> Result<Option<SocketAddr>, String> {
    let addr = match args.http {
        Some(Listen::Off) => return Ok(None),
        Some(Listen::At(a)) => a,
        None if !cfg!(feature = "http-api") => return Ok(None),
        None => DEFAULT_ADDR,
    };
    if !cfg!(feature = "http-api") {
        return Err(format!("--http {addr}: {NOT_BUILT}"));
    }
    if let Some(t) = &args.http_token {
        if t.is_empty() {
            return Err("--http-token: the token is empty".into());
        }
    }
    if !addr.ip().is_loopback() && args.http_token.is_none() && !args.http_insecure {
        return Err(format!(
            "--http {addr} is not a loopback address: set --http-token TOKEN (clients then send \
             `Authorization: Bearer TOKEN`), or --http-insecure to serve it without one"
        ));
    }
    Ok(Some(addr))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(http: Option<&str>, token: Option<&str>, insecure: bool) -> HttpArgs {
        HttpArgs {
            http: http.map(|h| parse_listen(h).unwrap()),
            http_token: token.map(str::to_string),
            http_token_file: None,
            http_insecure: insecure,
            http_idle_timeout: Duration::from_secs(30),
        }
    }

    #[cfg(feature = "http-api")]
    #[test]
    fn loopback_is_the_default_and_needs_no_token() {
        assert_eq!(check(&args(None, None, false)), Ok(Some(DEFAULT_ADDR)));
        let v6: SocketAddr = "[::1]:8000".parse().unwrap();
        assert_eq!(check(&args(Some("[::1]:8000"), None, false)), Ok(Some(v6)));
        let other: SocketAddr = "127.3.4.5:0".parse().unwrap();
        assert_eq!(
            check(&args(Some("127.3.4.5:0"), None, false)),
            Ok(Some(other))
        );
        assert_eq!(check(&args(Some("off"), None, false)), Ok(None));
        assert_eq!(check(&args(Some("OFF"), None, false)), Ok(None));
    }

    #[cfg(feature = "http-api")]
    #[test]
    fn non_loopback_needs_a_token_or_insecure() {
        for addr in ["0.0.0.0:7947", "10.1.2.3:80", "[::]:7947"] {
            let e = check(&args(Some(addr), None, false)).unwrap_err();
            assert!(e.contains("not a loopback address"), "{e}");
            assert!(check(&args(Some(addr), Some("t"), false)).is_ok());
            assert!(check(&args(Some(addr), None, true)).is_ok());
        }
        assert!(check(&args(None, Some(""), false)).is_err());
    }

    #[test]
    fn listen_values() {
        assert!(parse_listen("localhost:80").is_err());
        assert!(parse_listen("127.0.0.1").is_err());
        assert_eq!(
            parse_listen("127.0.0.1:1"),
            Ok(Listen::At("127.0.0.1:1".parse().unwrap()))
        );
    }

    #[cfg(not(feature = "http-api"))]
    #[test]
    fn without_the_api_only_off_is_accepted() {
        assert_eq!(check(&args(None, None, false)), Ok(None));
        assert_eq!(check(&args(Some("off"), None, false)), Ok(None));
        let e = check(&args(Some("127.0.0.1:7947"), None, false)).unwrap_err();
        assert!(e.contains("without the HTTP API"), "{e}");
    }
}
