//! TLS configuration (rustls with the *ring* provider): from PEM files, or a server identity
//! issued by the catalog's own CA (`--tls-from-ca`). HTTP/2 and HTTP/1.1 are offered by ALPN.

use std::net::IpAddr;
use std::path::Path;
use std::sync::Arc;

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};

use crate::error::ServerError;
use pfxkit::identity::Identity;
use pfxkit_catalog::ca::San;
use pfxkit_catalog::service::Service;

fn config(
    chain: Vec<CertificateDer<'static>>,
    key: PrivateKeyDer<'static>,
    agent_roots: &[CertificateDer<'static>],
) -> Result<Arc<rustls::ServerConfig>, ServerError> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let builder = rustls::ServerConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .map_err(|e| ServerError::Config(format!("TLS: {e}")))?;
    let builder = if agent_roots.is_empty() {
        builder.with_no_client_auth()
    } else {
        // Agents show a certificate from the catalog's CA; everyone else shows none and
        // authenticates with Basic or Bearer credentials, so a client certificate is asked
        // for but not required. Which agent it is, and whether it is revoked, the agent
        // endpoints ask the catalog on every request.
        let mut roots = rustls::RootCertStore::empty();
        for root in agent_roots {
            roots
                .add(root.clone())
                .map_err(|e| ServerError::Config(format!("agent CA: {e}")))?;
        }
        let verifier =
            rustls::server::WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider)
                .allow_unauthenticated()
                .build()
                .map_err(|e| ServerError::Config(format!("agent client verifier: {e}")))?;
        builder.with_client_cert_verifier(verifier)
    };
    let mut config = builder
        .with_single_cert(chain, key)
        .map_err(|e| ServerError::Config(format!("TLS certificate and key: {e}")))?;
    config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    Ok(Arc::new(config))
}

/// A TLS configuration from a PEM certificate chain (leaf first) and a PEM private key.
///
/// # Errors
/// [`ServerError::Config`] naming the file that cannot be read or does not hold what it should,
/// or a key that does not match the certificate.
pub fn from_pem_files(cert: &Path, key: &Path) -> Result<Arc<rustls::ServerConfig>, ServerError> {
    let chain = CertificateDer::pem_file_iter(cert)
        .and_then(Iterator::collect::<Result<Vec<_>, _>>)
        .map_err(|e| ServerError::Config(format!("{}: {e}", cert.display())))?;
    if chain.is_empty() {
        return Err(ServerError::Config(format!(
            "{}: no certificate",
            cert.display()
        )));
    }
    let key = PrivateKeyDer::from_pem_file(key)
        .map_err(|e| ServerError::Config(format!("{}: {e}", key.display())))?;
    config(chain, key, &[])
}

/// [`from_pem_files`] that also accepts the agents' client certificates, issued by the
/// catalog's CA (a catalog without a CA has no agents: no client certificate is asked for).
///
/// # Errors
/// As [`from_pem_files`]; [`ServerError::Catalog`] when the catalog cannot be read.
pub fn from_pem_files_with_agents(
    cert: &Path,
    key: &Path,
    service: &Service,
) -> Result<Arc<rustls::ServerConfig>, ServerError> {
    let chain = CertificateDer::pem_file_iter(cert)
        .and_then(Iterator::collect::<Result<Vec<_>, _>>)
        .map_err(|e| ServerError::Config(format!("{}: {e}", cert.display())))?;
    if chain.is_empty() {
        return Err(ServerError::Config(format!(
            "{}: no certificate",
            cert.display()
        )));
    }
    let key = PrivateKeyDer::from_pem_file(key)
        .map_err(|e| ServerError::Config(format!("{}: {e}", key.display())))?;
    config(chain, key, &agent_roots(service)?)
}

/// The trust anchors of agents' client certificates: the catalog's CA chain (none without a
/// CA).
///
/// # Errors
/// [`ServerError::Catalog`] for database errors.
pub fn agent_roots(service: &Service) -> Result<Vec<CertificateDer<'static>>, ServerError> {
    if service.catalog().issuing_ca()?.is_none() {
        return Ok(Vec::new());
    }
    Ok(service
        .ca_chain()?
        .iter()
        .map(|c| CertificateDer::from(c.der().to_vec()))
        .collect())
}

/// A TLS configuration from an identity (key, leaf, chain).
///
/// # Errors
/// [`ServerError::Config`] when rustls refuses the key.
pub fn from_identity(identity: &Identity) -> Result<Arc<rustls::ServerConfig>, ServerError> {
    let chain = identity
        .chain()
        .iter()
        .map(|c| CertificateDer::from(c.der().to_vec()))
        .collect();
    let key = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(
        identity.key().expose_pkcs8_der().to_vec(),
    ));
    config(chain, key, &[])
}

/// Issues the server's certificate from the catalog's CA for `localhost`, `127.0.0.1`, `::1`,
/// this host's name and the listening address, valid 30 days (a restart issues a new one), and
/// makes a TLS configuration of it.
///
/// # Errors
/// [`ServerError::Catalog`] without a CA; as [`from_identity`].
pub fn from_catalog_ca(
    service: &Service,
    host: &str,
    listen: IpAddr,
) -> Result<Arc<rustls::ServerConfig>, ServerError> {
    let mut sans = vec![
        San::Dns("localhost".into()),
        San::Ip(IpAddr::from([127, 0, 0, 1])),
        San::Ip("::1".parse().unwrap_or(IpAddr::from([0u8; 16]))),
    ];
    if !host.is_empty() && host != "localhost" {
        sans.push(San::Dns(host.to_string()));
    }
    if !listen.is_unspecified() && !listen.is_loopback() {
        sans.push(San::Ip(listen));
    }
    let identity = service.issue_server_identity("CN=pfxkit serve", &sans, 30)?;
    let chain = identity
        .chain()
        .iter()
        .map(|c| CertificateDer::from(c.der().to_vec()))
        .collect();
    let key = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(
        identity.key().expose_pkcs8_der().to_vec(),
    ));
    config(chain, key, &agent_roots(service)?)
}
