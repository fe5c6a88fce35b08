use http::HeaderMap;
use http::header::AUTHORIZATION;

use super::AuthError;

/// Credentials as sent: exactly one of the two accepted forms.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Credentials {
    /// `Authorization: Bearer <token>`.
    Bearer(String),
    /// `api-key` and `api-secret` headers.
    ApiKey {
        /// The key id.
        key: String,
        /// The secret.
        secret: String,
    },
}

impl Credentials {
    /// Reads credentials from headers; anything missing, repeated, half or mixed is an error.
    pub fn from_headers(headers: &HeaderMap) -> Result<Self, AuthError> {
        let auth = single(headers, AUTHORIZATION.as_str())?;
        let key = single(headers, "api-key")?;
        let secret = single(headers, "api-secret")?;
        match (auth, key, secret) {
            (None, None, None) => Err(AuthError::Missing),
            (Some(_), Some(_), _) | (Some(_), _, Some(_)) => Err(AuthError::Malformed(
                "send either Authorization or api-key/api-secret, not both",
            )),
            (Some(auth), None, None) => bearer(auth).map(Self::Bearer),
            (None, Some(key), Some(secret)) if !key.is_empty() && !secret.is_empty() => {
                Ok(Self::ApiKey {
                    key: key.to_owned(),
                    secret: secret.to_owned(),
                })
            }
            (None, _, _) => Err(AuthError::Malformed(
                "api-key and api-secret must both be given",
            )),
        }
    }
}

/// A header given at most once, as visible ASCII.
fn single<'a>(headers: &'a HeaderMap, name: &str) -> Result<Option<&'a str>, AuthError> {
    let mut values = headers.get_all(name).iter();
    let Some(first) = values.next() else {
        return Ok(None);
    };
    if values.next().is_some() {
        return Err(AuthError::Malformed("a credential header is repeated"));
    }
    first
        .to_str()
        .map(|v| Some(v.trim()))
        .map_err(|_| AuthError::Malformed("credential headers must be ASCII"))
}

/// The token of a `Bearer` authorization value.
fn bearer(value: &str) -> Result<String, AuthError> {
    let (scheme, token) = value.split_once(' ').ok_or(AuthError::Malformed(
        "expected Authorization: Bearer <token>",
    ))?;
    let token = token.trim();
    let token_chars = |c: char| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.');
    if !scheme.eq_ignore_ascii_case("bearer") || token.is_empty() || !token.chars().all(token_chars)
    {
        return Err(AuthError::Malformed(
            "expected Authorization: Bearer <token>",
        ));
    }
    Ok(token.to_owned())
}

#[cfg(test)]
mod tests {
    use http::HeaderValue;

    use super::*;

    fn headers(pairs: &[(&'static str, &str)]) -> HeaderMap {
        let mut map = HeaderMap::new();
        for (name, value) in pairs {
            map.append(*name, HeaderValue::from_str(value).unwrap());
        }
        map
    }

    #[test]
    fn reads_bearer_tokens_in_any_scheme_case() {
        for value in ["Bearer a.b.c", "bearer a.b.c", "BEARER  a.b.c "] {
            let got = Credentials::from_headers(&headers(&[("authorization", value)])).unwrap();
            assert_eq!(got, Credentials::Bearer("a.b.c".into()), "{value}");
        }
    }

    #[test]
    fn reads_api_key_pairs() {
        let got =
            Credentials::from_headers(&headers(&[("api-key", "k"), ("api-secret", "s")])).unwrap();
        assert_eq!(
            got,
            Credentials::ApiKey {
                key: "k".into(),
                secret: "s".into()
            }
        );
    }

    #[test]
    fn rejects_missing_half_mixed_repeated_and_malformed() {
        assert!(matches!(
            Credentials::from_headers(&HeaderMap::new()),
            Err(AuthError::Missing)
        ));
        let bad: &[&[(&str, &str)]] = &[
            &[("api-key", "k")],
            &[("api-secret", "s")],
            &[("api-key", ""), ("api-secret", "s")],
            &[
                ("authorization", "Bearer t"),
                ("api-key", "k"),
                ("api-secret", "s"),
            ],
            &[("authorization", "Bearer t"), ("authorization", "Bearer u")],
            &[("authorization", "Basic dXNlcjpwYXNz")],
            &[("authorization", "Bearer")],
            &[("authorization", "Bearer ")],
            &[("authorization", "Bearer a b")],
            &[("authorization", "Token abc")],
            &[("authorization", "abc")],
        ];
        for case in bad {
            let err = Credentials::from_headers(&headers(case)).unwrap_err();
            assert!(matches!(err, AuthError::Malformed(_)), "{case:?}: {err:?}");
        }
    }
}
