//! TLS client settings for `tls://` and `https://` upstreams.

use std::sync::Arc;

use crate::config::UpstreamServer;

/// Why the TLS settings of a config's encrypted upstreams could not be built.
#[derive(Debug)]
pub struct TlsSetupError {
    /// Where the setting is written (file:line:column).
    pub at: String,
    /// Its key.
    pub key: String,
    /// What is wrong and what to do.
    pub message: String,
}

/// The TLS client settings for the `tls://` and `https://` upstreams of `config` (None when it
/// has none).
pub fn tls_for(
    config: &crate::config::Config,
) -> Result<Option<Arc<rustls::ClientConfig>>, TlsSetupError> {
    let upstream = &config.upstream;
    let wanted = upstream
        .servers
        .iter()
        .any(|s| matches!(s, UpstreamServer::Tls { .. } | UpstreamServer::Https { .. }));
    if !wanted {
        return Ok(None);
    }
    let ca = upstream.tls_ca_file.as_ref();
    tls_client_config(ca.map(|c| c.value.as_path()))
        .map(Some)
        .map_err(|message| TlsSetupError {
            at: ca.map_or_else(
                || config.path.display().to_string(),
                |c| format!("{}:{}:{}", config.path.display(), c.at.line, c.at.column),
            ),
            key: ca.map_or_else(|| "upstream.servers".to_string(), |c| c.key.clone()),
            message,
        })
}

/// The TLS client settings for `tls://` upstreams: the built-in Mozilla roots (webpki-roots,
/// so a router without a CA bundle works) plus the CAs in `ca_file`, TLS 1.2 and 1.3 with
/// the ring provider, ALPN "dot" (RFC 7858).
pub fn tls_client_config(
    ca_file: Option<&std::path::Path>,
) -> Result<Arc<rustls::ClientConfig>, String> {
    use rustls::pki_types::CertificateDer;
    use rustls::pki_types::pem::PemObject;
    let mut roots = rustls::RootCertStore {
        roots: webpki_roots::TLS_SERVER_ROOTS.to_vec(),
    };
    if let Some(path) = ca_file {
        let shown = path.display();
        let certs =
            CertificateDer::pem_file_iter(path).map_err(|e| format!("cannot read {shown}: {e}"))?;
        let mut added = 0;
        for cert in certs {
            let cert = cert.map_err(|e| format!("{shown} is not a PEM certificate file: {e}"))?;
            roots
                .add(cert)
                .map_err(|e| format!("{shown}: unusable CA certificate: {e}"))?;
            added += 1;
        }
        if added == 0 {
            return Err(format!(
                "{shown} holds no certificate; it should hold one or more \"-----BEGIN CERTIFICATE-----\" blocks"
            ));
        }
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| format!("TLS setup failed: {e}"))?
        .with_root_certificates(roots)
        .with_no_client_auth();
    config.alpn_protocols = vec![b"dot".to_vec()];
    Ok(Arc::new(config))
}
