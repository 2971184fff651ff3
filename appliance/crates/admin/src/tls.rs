//! TLS for the admin listener (rustls, ring provider): the certificate chain and private
//! key files of `--admin-tls-cert` and `--admin-tls-key`, read once at start into the
//! server configuration the listener hands every connection to. Only files and
//! configuration here: [`super::listener`] does the handshakes.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use rustls::ServerConfig;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};

/// Why the admin listener's certificate or key cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    /// The certificate file cannot be read or holds no PEM certificate.
    #[error("--admin-tls-cert {}: {message}", path.display())]
    Certificate {
        /// The file.
        path: PathBuf,
        /// What is wrong with it.
        message: String,
    },
    /// The key file cannot be read or holds no PEM private key.
    #[error("--admin-tls-key {}: {message}", path.display())]
    Key {
        /// The file.
        path: PathBuf,
        /// What is wrong with it.
        message: String,
    },
    /// rustls refused the pair (the key does not match the certificate, say).
    #[error("--admin-tls-cert and --admin-tls-key cannot be used together: {0}")]
    Pair(rustls::Error),
}

/// The server configuration for a certificate chain (PEM, leaf first) and its private key
/// (PEM: PKCS#8, PKCS#1 or SEC1). HTTP/1.1 only, as the listener serves.
pub fn server_config(cert: &Path, key: &Path) -> Result<Arc<ServerConfig>, TlsError> {
    let certificate = |message: String| TlsError::Certificate {
        path: cert.to_owned(),
        message,
    };
    let chain: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(cert)
        .map_err(|e| certificate(e.to_string()))?
        .collect::<Result<_, _>>()
        .map_err(|e| certificate(e.to_string()))?;
    if chain.is_empty() {
        return Err(certificate("no PEM certificate in it".into()));
    }
    let private = PrivateKeyDer::from_pem_file(key).map_err(|e| TlsError::Key {
        path: key.to_owned(),
        message: e.to_string(),
    })?;
    // The crypto provider is rustls's process default: ring, the only one built in.
    let mut config = ServerConfig::builder()
        .with_no_client_auth()
        .with_single_cert(chain, private)
        .map_err(TlsError::Pair)?;
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(Arc::new(config))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unreadable_or_empty_files_are_named() {
        let dir = tempfile::tempdir().unwrap();
        let empty = dir.path().join("empty.pem");
        std::fs::write(&empty, "not pem\n").unwrap();
        let missing = dir.path().join("missing.pem");
        let e = server_config(&missing, &empty).unwrap_err();
        assert!(
            matches!(&e, TlsError::Certificate { path, .. } if *path == missing),
            "{e}"
        );
        let e = server_config(&empty, &empty).unwrap_err();
        assert!(e.to_string().contains("no PEM certificate"), "{e}");
    }
}
