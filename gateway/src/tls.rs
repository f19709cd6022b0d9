//! HTTPS for the S3 endpoint (and the zone-to-zone gRPC on the same port):
//! rustls with ring, certificate and key from PEM files, ALPN offering h2
//! (gRPC clients of other zones) and http/1.1 (S3 clients).

use std::path::Path;
use std::sync::Arc;
use tokio_rustls::TlsAcceptor;
use tokio_rustls::rustls::ServerConfig;
use tokio_rustls::rustls::pki_types::pem::PemObject as _;
use tokio_rustls::rustls::pki_types::{CertificateDer, PrivateKeyDer};

/// Why a certificate or key could not be loaded.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    /// The certificate file is missing, unreadable or holds no certificate.
    #[error("certificate {path}: {message}")]
    Certificate { path: String, message: String },
    /// The key file is missing, unreadable or holds no private key.
    #[error("private key {path}: {message}")]
    Key { path: String, message: String },
    /// rustls refused the pair (e.g. the key does not match the certificate).
    #[error("certificate {cert} with key {key}: {message}")]
    Pair {
        cert: String,
        key: String,
        message: String,
    },
}

/// A TLS acceptor serving the chain in `cert` with the key in `key`.
pub fn acceptor(cert: &Path, key: &Path) -> Result<TlsAcceptor, TlsError> {
    let chain: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(cert)
        .and_then(|it| it.collect::<Result<_, _>>())
        .map_err(|e| TlsError::Certificate {
            path: cert.display().to_string(),
            message: e.to_string(),
        })?;
    if chain.is_empty() {
        return Err(TlsError::Certificate {
            path: cert.display().to_string(),
            message: "no PEM certificate in the file".into(),
        });
    }
    let private = PrivateKeyDer::from_pem_file(key).map_err(|e| TlsError::Key {
        path: key.display().to_string(),
        message: e.to_string(),
    })?;
    let provider = Arc::new(tokio_rustls::rustls::crypto::ring::default_provider());
    let mut config = ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .and_then(|b| b.with_no_client_auth().with_single_cert(chain, private))
        .map_err(|e| TlsError::Pair {
            cert: cert.display().to_string(),
            key: key.display().to_string(),
            message: e.to_string(),
        })?;
    config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    Ok(TlsAcceptor::from(Arc::new(config)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn loads_a_pair_and_refuses_junk_and_mismatches() {
        let dir = tempfile::tempdir().unwrap();
        let write = |name: &str, text: &str| {
            let p = dir.path().join(name);
            std::fs::write(&p, text).unwrap();
            p
        };
        let one = rcgen::generate_simple_self_signed(vec!["localhost".into()]).unwrap();
        let two = rcgen::generate_simple_self_signed(vec!["localhost".into()]).unwrap();
        let cert = write("cert.pem", &one.cert.pem());
        let key = write("key.pem", &one.signing_key.serialize_pem());
        let other_key = write("other.pem", &two.signing_key.serialize_pem());
        let junk = write("junk.pem", "not a certificate\n");
        assert!(acceptor(&cert, &key).is_ok());
        assert!(matches!(
            acceptor(&junk, &key),
            Err(TlsError::Certificate { .. })
        ));
        assert!(matches!(acceptor(&cert, &junk), Err(TlsError::Key { .. })));
        assert!(matches!(
            acceptor(&cert, &dir.path().join("missing.pem")),
            Err(TlsError::Key { .. })
        ));
        let e = acceptor(&cert, &other_key).err().expect("mismatched key");
        assert!(matches!(e, TlsError::Pair { .. }), "{e}");
    }
}
