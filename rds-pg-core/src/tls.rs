//! TLS through rustls (ring provider, no global state), with libpq's `sslmode` meanings:
//! `require` encrypts without checking, `verify-ca` checks the chain, `verify-full` also the host.

use std::path::Path;
use std::sync::Arc;

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::client::WebPkiServerVerifier;
use rustls::crypto::{ring, CryptoProvider};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{
    CertificateError, ClientConfig, DigitallySignedStruct, RootCertStore, SignatureScheme,
};
use tokio_postgres_rustls::MakeRustlsConnect;

use crate::config::SslMode;
use crate::error::{Error, Result};

/// Reads every certificate of a PEM file (for RDS, AWS's `global-bundle.pem`) into a root store.
///
/// # Errors
/// [`Error::Tls`] when the file cannot be read or holds no certificate.
pub fn load_root_store(path: &Path) -> Result<RootCertStore> {
    let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(path)
        .map_err(|e| tls_error(format!("cannot read sslrootcert {}: {e}", path.display())))?
        .collect::<std::result::Result<_, _>>()
        .map_err(|e| tls_error(format!("cannot parse sslrootcert {}: {e}", path.display())))?;
    let mut store = RootCertStore::empty();
    let (added, _ignored) = store.add_parsable_certificates(certs);
    if added == 0 {
        return Err(tls_error(format!(
            "no usable certificate in sslrootcert {}",
            path.display()
        )));
    }
    Ok(store)
}

fn tls_error(message: String) -> Error {
    Error::Tls {
        message,
        source: None,
    }
}

/// Builds the tokio-postgres connector for `mode`. `sslrootcert` is required for `verify-ca` and
/// `verify-full`.
///
/// # Errors
/// [`Error::Tls`] for a missing or unreadable root certificate file.
pub fn make_connector(mode: SslMode, sslrootcert: Option<&Path>) -> Result<MakeRustlsConnect> {
    let provider = Arc::new(ring::default_provider());
    let builder = ClientConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .map_err(|e| Error::Tls {
            message: "no usable TLS version".into(),
            source: Some(Box::new(e)),
        })?;
    let verifier: Arc<dyn ServerCertVerifier> = if mode.verifies() {
        let path = sslrootcert.ok_or_else(|| {
            tls_error(format!(
                "sslmode={mode} needs sslrootcert (for RDS: the global-bundle.pem from AWS)"
            ))
        })?;
        let roots = Arc::new(load_root_store(path)?);
        let webpki = WebPkiServerVerifier::builder_with_provider(roots, provider.clone())
            .build()
            .map_err(|e| Error::Tls {
                message: "cannot build verifier".into(),
                source: Some(Box::new(e)),
            })?;
        Arc::new(Verifier {
            inner: Inner::WebPki(webpki),
            check_name: mode == SslMode::VerifyFull,
            provider,
        })
    } else {
        Arc::new(Verifier {
            inner: Inner::None,
            check_name: false,
            provider,
        })
    };
    let config = builder
        .dangerous()
        .with_custom_certificate_verifier(verifier)
        .with_no_client_auth();
    Ok(MakeRustlsConnect::new(config))
}

#[derive(Debug)]
enum Inner {
    /// `require`/`prefer`: encrypt, trust any certificate (libpq's behaviour without a root file).
    None,
    WebPki(Arc<WebPkiServerVerifier>),
}

#[derive(Debug)]
struct Verifier {
    inner: Inner,
    check_name: bool,
    provider: Arc<CryptoProvider>,
}

impl ServerCertVerifier for Verifier {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        ocsp_response: &[u8],
        now: UnixTime,
    ) -> std::result::Result<ServerCertVerified, rustls::Error> {
        match &self.inner {
            Inner::None => Ok(ServerCertVerified::assertion()),
            Inner::WebPki(v) => {
                match v.verify_server_cert(
                    end_entity,
                    intermediates,
                    server_name,
                    ocsp_response,
                    now,
                ) {
                    Err(rustls::Error::InvalidCertificate(
                        CertificateError::NotValidForName
                        | CertificateError::NotValidForNameContext { .. },
                    )) if !self.check_name => Ok(ServerCertVerified::assertion()),
                    other => other,
                }
            }
        }
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> std::result::Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> std::result::Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.provider
            .signature_verification_algorithms
            .supported_schemes()
    }
}
