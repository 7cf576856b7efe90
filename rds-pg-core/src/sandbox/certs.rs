//! A throw-away certificate authority and server certificate for the sandbox's TLS (15+).

use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, Issuer, KeyPair, KeyUsagePurpose};

use crate::error::{Error, Result};

/// PEM texts of a CA certificate and a server certificate and key signed by it.
pub(crate) struct SandboxCerts {
    pub ca_pem: String,
    pub server_cert_pem: String,
    pub server_key_pem: String,
}

fn cert_error(e: rcgen::Error) -> Error {
    Error::Tls {
        message: format!("generating sandbox certificates: {e}"),
        source: Some(Box::new(e)),
    }
}

/// Generates a CA and a server certificate valid for `localhost`, `127.0.0.1`, `::1` and
/// [`super::ENDPOINT_NAME`].
pub(crate) fn generate() -> Result<SandboxCerts> {
    let ca_key = KeyPair::generate().map_err(cert_error)?;
    let mut ca_params = CertificateParams::new(Vec::<String>::new()).map_err(cert_error)?;
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    ca_params
        .distinguished_name
        .push(DnType::CommonName, "rds-pg sandbox CA");
    ca_params.key_usages = vec![
        KeyUsagePurpose::KeyCertSign,
        KeyUsagePurpose::CrlSign,
        KeyUsagePurpose::DigitalSignature,
    ];
    let ca_cert = ca_params.self_signed(&ca_key).map_err(cert_error)?;
    let issuer = Issuer::new(ca_params, ca_key);

    let server_key = KeyPair::generate().map_err(cert_error)?;
    let mut params = CertificateParams::new(vec![
        "localhost".to_string(),
        "127.0.0.1".into(),
        "::1".into(),
        super::ENDPOINT_NAME.into(),
    ])
    .map_err(cert_error)?;
    params
        .distinguished_name
        .push(DnType::CommonName, "localhost");
    let server_cert = params.signed_by(&server_key, &issuer).map_err(cert_error)?;
    Ok(SandboxCerts {
        ca_pem: ca_cert.pem(),
        server_cert_pem: server_cert.pem(),
        server_key_pem: server_key.serialize_pem(),
    })
}
