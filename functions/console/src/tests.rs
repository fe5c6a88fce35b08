use super::*;

fn settings() -> Settings {
    Settings::from_lookup(|_| None).unwrap()
}

fn header<'a>(response: &'a Response<Body>, name: &str) -> &'a str {
    response
        .headers()
        .get(name)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_else(|| panic!("no {name}"))
}

fn body(response: &Response<Body>) -> &[u8] {
    match response.body() {
        Body::Text(t) => t.as_bytes(),
        Body::Binary(b) => b,
        _ => &[],
    }
}

fn assert_secured(response: &Response<Body>) {
    let csp = header(response, "content-security-policy");
    assert!(csp.contains("frame-ancestors 'none'"), "{csp}");
    assert!(csp.contains("script-src 'self';"), "{csp}");
    assert!(!csp.contains("unsafe"), "{csp}");
    assert_eq!(header(response, "x-content-type-options"), "nosniff");
    assert_eq!(header(response, "referrer-policy"), "no-referrer");
}

#[test]
fn the_app_paths_are_the_page_revalidated_on_every_load() {
    // GIVEN the built console (infra/install.sh builds it before cargo)
    assert!(asset("index.html").is_some(), "console/dist was not built");
    for path in ["/console/", "/console/customers/c1", "/console/users"] {
        // WHEN a page of the app is asked for
        let response = respond(&settings(), path);
        // THEN it is index.html, never cached without revalidation, secured
        assert_eq!(response.status(), StatusCode::OK, "{path}");
        assert_eq!(
            header(&response, "content-type"),
            "text/html; charset=utf-8"
        );
        assert_eq!(header(&response, "cache-control"), "no-cache");
        assert!(body(&response).starts_with(b"<!doctype html>"), "{path}");
        assert_secured(&response);
    }
}

#[test]
fn hashed_assets_are_immutable_with_their_type() {
    let scripts: Vec<&str> = ASSETS
        .iter()
        .map(|(name, _)| *name)
        .filter(|n| n.starts_with("assets/"))
        .collect();
    assert!(scripts.iter().any(|n| n.ends_with(".js")), "{scripts:?}");
    assert!(scripts.iter().any(|n| n.ends_with(".css")), "{scripts:?}");
    for name in scripts {
        let response = respond(&settings(), &format!("{BASE}{name}"));
        assert_eq!(response.status(), StatusCode::OK, "{name}");
        assert_eq!(
            header(&response, "cache-control"),
            "public, max-age=31536000, immutable"
        );
        let want = if name.ends_with(".js") {
            "text/javascript"
        } else {
            "text/css"
        };
        assert!(
            header(&response, "content-type").starts_with(want),
            "{name}"
        );
        assert_eq!(body(&response), asset(name).unwrap());
        assert_secured(&response);
    }
}

#[test]
fn the_bare_path_redirects_and_unknown_files_are_404() {
    let response = respond(&settings(), "/console");
    assert_eq!(response.status(), StatusCode::PERMANENT_REDIRECT);
    assert_eq!(header(&response, "location"), "/console/");
    assert_secured(&response);
    for path in [
        "/console/assets/missing-123.js",
        "/console/robots.txt",
        "/console/../Cargo.toml",
        "/console/assets/",
    ] {
        let response = respond(&settings(), path);
        assert_eq!(response.status(), StatusCode::NOT_FOUND, "{path}");
        assert_eq!(header(&response, "content-type"), "application/json");
        assert_secured(&response);
    }
}

#[test]
fn config_json_carries_the_tiers_and_the_oidc_client() {
    let response = respond(&settings(), "/console/config.json");
    let value: serde_json::Value = serde_json::from_slice(body(&response)).unwrap();
    assert_eq!(
        value,
        serde_json::json!({"tiers": ["free", "pro", "enterprise"], "oidc": null})
    );
    let env = [
        ("CONSOLE_TIERS", "gold, silver"),
        ("CONSOLE_OIDC_CLIENT_ID", "console-client"),
        ("JWT_ISSUER", "https://idp.example.com/realms/ops"),
    ];
    let with_oidc = Settings::from_lookup(|k| {
        env.iter()
            .find(|(n, _)| *n == k)
            .map(|(_, v)| v.to_string())
    })
    .unwrap();
    let response = respond(&with_oidc, "/console/config.json");
    let value: serde_json::Value = serde_json::from_slice(body(&response)).unwrap();
    assert_eq!(
        value,
        serde_json::json!({"tiers": ["gold", "silver"], "oidc": {
            "issuer": "https://idp.example.com/realms/ops", "clientId": "console-client", "scope": "openid"}})
    );
    // The page may fetch the issuer's discovery document and token endpoint.
    assert!(
        with_oidc
            .content_security_policy()
            .contains("connect-src 'self' https://idp.example.com;")
    );
}

#[test]
fn oidc_needs_an_issuer_on_https_or_loopback() {
    let with = |issuer: Option<&str>| {
        Settings::from_lookup(|k| match k {
            "CONSOLE_OIDC_CLIENT_ID" => Some("c".to_owned()),
            "JWT_ISSUER" => issuer.map(str::to_owned),
            _ => None,
        })
    };
    assert!(with(None).is_err());
    assert!(with(Some("http://idp.example.com")).is_err());
    assert!(with(Some("https://user@idp.example.com")).is_err());
    assert!(with(Some("ftp://idp.example.com")).is_err());
    assert!(with(Some("https://idp.example.com 'unsafe-inline'")).is_err());
    assert!(with(Some("http://127.0.0.1:9000/")).is_ok());
    assert!(with(Some("https://idp.example.com/")).is_ok());
}

#[test]
fn serves_get_on_its_paths_only() {
    assert!(serves(&Method::GET, "/console"));
    assert!(serves(&Method::GET, "/console/customers"));
    assert!(!serves(&Method::POST, "/console/"));
    assert!(!serves(&Method::GET, "/consoles"));
    assert!(!serves(&Method::GET, "/api/billing/v1/admin/customers"));
}

#[test]
fn any_path_below_the_console_is_answered_without_a_panic() {
    // GIVEN paths built from awkward pieces: escapes, dots, unicode, long runs
    let pieces = [
        "",
        "a",
        ".",
        "..",
        "%2e%2e",
        "%00",
        "%FF",
        "é",
        "assets",
        "index.html",
        "config.json",
        "x.js",
        "?",
        "#",
        "//",
        " ",
        "\u{202e}",
        &"z".repeat(2048),
    ];
    for a in pieces {
        for b in pieces {
            let path = format!("{BASE}{a}/{b}");
            // WHEN each is asked for
            let response = respond(&settings(), &path);
            // THEN the answer is the page, an asset or a 404, always secured
            assert!(
                [StatusCode::OK, StatusCode::NOT_FOUND].contains(&response.status()),
                "{path}: {}",
                response.status()
            );
            assert_secured(&response);
        }
    }
}
