//! The one TLS client configuration of the process: every outgoing HTTPS
//! connection (the AWS SDK clients of [`crate::aws`], the JWKS client of
//! [`crate::auth::Jwks`]) uses [`client_config`].

use std::sync::Arc;

/// rustls with aws-lc-rs, its safe default protocol versions, and webpki-roots'
/// trust anchors (borrowed static data: nothing is read or parsed, so no
/// function reads the system certificate store at cold start); no client
/// certificate.
pub fn client_config() -> Result<rustls::ClientConfig, rustls::Error> {
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    Ok(rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()?
        .with_root_certificates(rustls::RootCertStore {
            roots: webpki_roots::TLS_SERVER_ROOTS.to_vec(),
        })
        .with_no_client_auth())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn uses_aws_lc_rs_and_no_client_certificate() {
        // GIVEN the configuration WHEN built THEN its cipher suites are aws-lc-rs's
        // defaults and it sends no client certificate.
        let config = client_config().expect("config");
        assert!(!config.client_auth_cert_resolver.has_certs());
        let suites = |p: &rustls::crypto::CryptoProvider| -> Vec<_> {
            p.cipher_suites.iter().map(|s| s.suite()).collect()
        };
        assert_eq!(
            suites(config.crypto_provider()),
            suites(&rustls::crypto::aws_lc_rs::default_provider())
        );
    }
}
