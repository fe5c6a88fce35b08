//! The operators' console: the single page app built from `console/` (its
//! assets embedded at compile time, see `build.rs`), served under `/console/`
//! with its security headers, and its start-up settings (`config.json`).
//!
//! One answer for the Lambda (`GET /console`, `GET /console/{proxy+}`) and the
//! local server alike: `index.html` for the app's own paths, hashed assets
//! cached for good, the rest 404.

use http::{HeaderValue, Method, StatusCode, header};
use lambda_http::{Body, Response};

include!(concat!(env!("OUT_DIR"), "/assets.rs"));

/// Where the console lives (its routes are in `billing::api::CONSOLE`).
pub const BASE: &str = "/console/";

/// Tiers the filter offers when `CONSOLE_TIERS` is not set: the demo's.
const DEFAULT_TIERS: &str = "free,pro,enterprise";

/// What the console is told at start, from the environment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Settings {
    /// `CONSOLE_TIERS`: the tier names the Tier filter offers (comma list).
    pub tiers: Vec<String>,
    /// OpenID Connect sign-in, when `CONSOLE_OIDC_CLIENT_ID` is set.
    pub oidc: Option<Oidc>,
}

/// The console's OpenID Connect client: authorization code with PKCE.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Oidc {
    /// `CONSOLE_OIDC_ISSUER`, else `JWT_ISSUER`: the issuer whose discovery
    /// document the console reads.
    pub issuer: String,
    /// `CONSOLE_OIDC_CLIENT_ID`: the public client registered for the console.
    pub client_id: String,
    /// `CONSOLE_OIDC_SCOPE`, `openid` by default.
    pub scope: String,
    /// The issuer's origin: the only other origin the page may fetch from.
    origin: String,
}

impl Settings {
    /// Reads `CONSOLE_TIERS`, `CONSOLE_OIDC_CLIENT_ID`, `CONSOLE_OIDC_SCOPE`
    /// and the issuer, `CONSOLE_OIDC_ISSUER` or else `JWT_ISSUER` (needed, as an
    /// `https://` URL or a loopback `http://` one, only with a client id; the
    /// Lambda gets the first, the local server reads the API's own setting).
    /// An empty value is the same as unset.
    pub fn from_lookup(lookup: impl Fn(&str) -> Option<String>) -> Result<Self, String> {
        let get = |name: &str| {
            lookup(name)
                .map(|v| v.trim().to_owned())
                .filter(|v| !v.is_empty())
        };
        let tiers = get("CONSOLE_TIERS")
            .unwrap_or_else(|| DEFAULT_TIERS.to_owned())
            .split(',')
            .map(str::trim)
            .filter(|t| !t.is_empty())
            .map(str::to_owned)
            .collect();
        let oidc = match get("CONSOLE_OIDC_CLIENT_ID") {
            None => None,
            Some(client_id) => {
                let issuer = get("CONSOLE_OIDC_ISSUER")
                    .or_else(|| get("JWT_ISSUER"))
                    .ok_or("CONSOLE_OIDC_CLIENT_ID is set but JWT_ISSUER is not")?;
                let origin = origin(&issuer).ok_or(
                    "JWT_ISSUER must be an https:// URL (or http:// on 127.0.0.1) for the console's sign-in",
                )?;
                Some(Oidc {
                    issuer,
                    client_id,
                    scope: get("CONSOLE_OIDC_SCOPE").unwrap_or_else(|| "openid".to_owned()),
                    origin,
                })
            }
        };
        Ok(Self { tiers, oidc })
    }

    /// Reads them from the process environment.
    pub fn from_env() -> Result<Self, String> {
        Self::from_lookup(|name| std::env::var(name).ok())
    }

    /// `config.json`: what `console/src/config.ts` reads.
    fn config_json(&self) -> String {
        let oidc = self.oidc.as_ref().map(
            |o| serde_json::json!({"issuer": o.issuer, "clientId": o.client_id, "scope": o.scope}),
        );
        serde_json::json!({"tiers": self.tiers, "oidc": oidc}).to_string()
    }

    /// The Content-Security-Policy: scripts, styles and fetches from this
    /// origin only (and the issuer's, for its discovery document and token
    /// endpoint), no inline script, no framing.
    pub fn content_security_policy(&self) -> String {
        let connect = match &self.oidc {
            Some(o) => format!("'self' {}", o.origin),
            None => "'self'".to_owned(),
        };
        format!(
            "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; \
             font-src 'self'; connect-src {connect}; base-uri 'none'; form-action 'self'; \
             frame-ancestors 'none'"
        )
    }
}

/// `scheme://host[:port]` of an `https://` URL, or of an `http://` one on
/// 127.0.0.1 or localhost (a local identity provider).
fn origin(url: &str) -> Option<String> {
    let (scheme, rest) = url.split_once("://")?;
    let authority = rest.split(['/', '?', '#']).next()?;
    let host = authority.rsplit_once(':').map_or(authority, |(h, _)| h);
    let valid = !authority.is_empty()
        && !authority.contains('@')
        && authority
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | ':' | '[' | ']'));
    let allowed = match scheme {
        "https" => true,
        "http" => matches!(host, "127.0.0.1" | "localhost"),
        _ => false,
    };
    (valid && allowed).then(|| format!("{scheme}://{authority}"))
}

/// How long a browser keeps what it is told to.
enum Caching {
    /// Hashed assets: their name changes with their content.
    Immutable,
    /// The page and its settings: revalidated on every load.
    Revalidate,
}

/// The answer to `GET path` (`path` is `/console` or below `/console/`).
pub fn respond(settings: &Settings, path: &str) -> Response<Body> {
    let Some(rest) = path.strip_prefix(BASE) else {
        // `/console` itself: the app's relative URLs need the slash.
        let mut response = plain(StatusCode::PERMANENT_REDIRECT, "");
        response
            .headers_mut()
            .insert(header::LOCATION, HeaderValue::from_static(BASE));
        return secured(settings, response, Caching::Revalidate);
    };
    if rest == "config.json" {
        let response = with_type(
            Response::new(Body::Text(settings.config_json())),
            "application/json",
        );
        return secured(settings, response, Caching::Revalidate);
    }
    if let Some(bytes) = asset(rest) {
        let caching = if rest.starts_with("assets/") {
            Caching::Immutable
        } else {
            Caching::Revalidate
        };
        let response = with_type(
            Response::new(Body::Binary(bytes.to_vec())),
            content_type(rest),
        );
        return secured(settings, response, caching);
    }
    // The app's own paths (no file extension) are the page; it routes itself.
    let last = rest.rsplit('/').next().unwrap_or_default();
    if !rest.starts_with("assets/") && !last.contains('.') {
        return match asset("index.html") {
            Some(bytes) => secured(
                settings,
                with_type(
                    Response::new(Body::Binary(bytes.to_vec())),
                    content_type("index.html"),
                ),
                Caching::Revalidate,
            ),
            None => secured(
                settings,
                plain(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "console_not_built: the console's assets were not built into this binary (infra/install.sh builds them)\n",
                ),
                Caching::Revalidate,
            ),
        };
    }
    secured(
        settings,
        billing::http::ApiError::RouteNotFound.into_response(),
        Caching::Revalidate,
    )
}

fn asset(path: &str) -> Option<&'static [u8]> {
    ASSETS
        .iter()
        .find(|(name, _)| *name == path)
        .map(|(_, bytes)| *bytes)
}

fn content_type(path: &str) -> &'static str {
    match path.rsplit_once('.').map(|(_, ext)| ext) {
        Some("html") => "text/html; charset=utf-8",
        Some("js") => "text/javascript; charset=utf-8",
        Some("css") => "text/css; charset=utf-8",
        Some("json") => "application/json",
        Some("svg") => "image/svg+xml",
        Some("png") => "image/png",
        Some("ico") => "image/x-icon",
        Some("txt") => "text/plain; charset=utf-8",
        _ => "application/octet-stream",
    }
}

fn with_type(mut response: Response<Body>, content_type: &'static str) -> Response<Body> {
    response
        .headers_mut()
        .insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    response
}

fn plain(status: StatusCode, text: &str) -> Response<Body> {
    let mut response = with_type(
        Response::new(Body::Text(text.to_owned())),
        "text/plain; charset=utf-8",
    );
    *response.status_mut() = status;
    response
}

/// Adds the security and cache headers every console answer carries.
fn secured(settings: &Settings, mut response: Response<Body>, caching: Caching) -> Response<Body> {
    let headers = response.headers_mut();
    if let Ok(csp) = HeaderValue::from_str(&settings.content_security_policy()) {
        headers.insert(header::CONTENT_SECURITY_POLICY, csp);
    }
    let fixed = [
        (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
        (header::REFERRER_POLICY, "no-referrer"),
        (header::X_FRAME_OPTIONS, "DENY"),
        (header::STRICT_TRANSPORT_SECURITY, "max-age=31536000"),
    ];
    for (name, value) in fixed {
        headers.insert(name, HeaderValue::from_static(value));
    }
    headers.insert(
        "cross-origin-opener-policy",
        HeaderValue::from_static("same-origin"),
    );
    headers.insert(
        "cross-origin-resource-policy",
        HeaderValue::from_static("same-origin"),
    );
    headers.insert(
        "permissions-policy",
        HeaderValue::from_static("camera=(), microphone=(), geolocation=(), payment=()"),
    );
    let cache = match caching {
        Caching::Immutable => "public, max-age=31536000, immutable",
        Caching::Revalidate => "no-cache",
    };
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static(cache));
    response
}

/// Whether the console serves this request (every other request is the API's).
pub fn serves(method: &Method, path: &str) -> bool {
    method == Method::GET && billing::api::is_console_path(path)
}

#[cfg(test)]
mod tests;
