//! URLs this service sends credentials to: HTTPS, or plain HTTP to this machine.

use std::net::IpAddr;

/// A URL [`secure_url`] refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "must be an https:// URL; plain http is accepted only on loopback (127.0.0.1, ::1, \
     localhost), got scheme {scheme:?} and host {host:?}"
)]
pub struct InsecureUrl {
    /// The URL's scheme (empty when it has none).
    pub scheme: String,
    /// The URL's host (empty when it has none).
    pub host: String,
}

/// `url` parsed, when it is `https://` with a host, or `http://` on a loopback
/// host (the local stack's fakes and the tests).
pub fn secure_url(url: &str) -> Result<http::Uri, InsecureUrl> {
    let uri: Option<http::Uri> = url.parse().ok();
    let scheme = uri
        .as_ref()
        .and_then(http::Uri::scheme_str)
        .unwrap_or_default()
        .to_ascii_lowercase();
    let host = uri
        .as_ref()
        .and_then(http::Uri::host)
        .unwrap_or_default()
        .to_owned();
    match (uri, scheme.as_str()) {
        (Some(uri), "https") if !host.is_empty() => Ok(uri),
        (Some(uri), "http") if is_loopback(&host) => Ok(uri),
        _ => Err(InsecureUrl { scheme, host }),
    }
}

/// `localhost`, or a loopback address (`127.0.0.0/8`, `::1`, bracketed or not).
fn is_loopback(host: &str) -> bool {
    let bare = host
        .strip_prefix('[')
        .and_then(|h| h.strip_suffix(']'))
        .unwrap_or(host);
    bare.eq_ignore_ascii_case("localhost")
        || bare.parse::<IpAddr>().is_ok_and(|ip| ip.is_loopback())
}
