//! How this process reaches monitors and OSDs: plain HTTP/2, or TLS when the
//! cluster runs with `internal_tls` (every monitor and OSD serves a
//! certificate from the cluster's CA). Tickets authenticate callers either
//! way; TLS adds secrecy and integrity of the bytes on the wire.
//!
//! The choice is process-wide, set once from the configuration
//! ([`configure`]), because every monitor and OSD of a cluster speaks the
//! same way; each channel to a daemon is built by [`endpoint`].

use std::path::Path;
use std::sync::RwLock;
use tonic::transport::{Certificate, ClientTlsConfig, Endpoint, Identity, ServerTlsConfig};

/// Largest HTTP/2 frame this process accepts (RFC 9113's default is 16 KiB).
/// A 4 MiB object read or write crosses in 4 frames instead of 256: each
/// frame is a separate parse, wake-up and buffer on both sides, and with
/// 16 KiB frames the 4 MiB rows ran 25–35% slower (README, Performance).
pub const H2_MAX_FRAME_BYTES: u32 = 1 << 20;
/// Flow-control window of one HTTP/2 stream: room for a whole 4 MiB op and
/// its envelope, so a large read or write never stops halfway to wait for a
/// WINDOW_UPDATE (hyper's default is 1 MiB on servers).
pub const H2_STREAM_WINDOW_BYTES: u32 = 8 << 20;
/// Flow-control window of one HTTP/2 connection (all its streams): several
/// 4 MiB ops in flight at once between two daemons.
pub const H2_CONNECTION_WINDOW_BYTES: u32 = 32 << 20;

/// `Some`: connect with TLS, trusting these CAs.
static INTERNAL_TLS: RwLock<Option<Certificate>> = RwLock::new(None);

/// Why TLS could not be set up.
#[derive(Debug, thiserror::Error)]
pub enum TransportError {
    /// A certificate, key or CA file is missing or holds no PEM block.
    #[error("{what} {path}: {message}")]
    File {
        what: &'static str,
        path: String,
        message: String,
    },
    /// tonic refused the TLS settings.
    #[error("TLS settings: {0}")]
    Tls(String),
}

fn read_pem(what: &'static str, path: &Path, marker: &str) -> Result<Vec<u8>, TransportError> {
    let err = |message: String| TransportError::File {
        what,
        path: path.display().to_string(),
        message,
    };
    let pem = std::fs::read(path).map_err(|e| err(e.to_string()))?;
    let text = String::from_utf8_lossy(&pem);
    if !text.contains("-----BEGIN ") || !text.contains(marker) {
        return Err(err(format!("no PEM {marker} in the file")));
    }
    Ok(pem)
}

/// Makes every later [`endpoint`] use TLS verified by the CA in `ca_file`
/// (`None`: plain HTTP/2).
pub fn configure(ca_file: Option<&Path>) -> Result<(), TransportError> {
    let ca = match ca_file {
        Some(p) => Some(Certificate::from_pem(read_pem(
            "CA file",
            p,
            "CERTIFICATE",
        )?)),
        None => None,
    };
    *INTERNAL_TLS.write().unwrap_or_else(|p| p.into_inner()) = ca;
    Ok(())
}

/// Whether channels to monitors and OSDs use TLS.
pub fn is_tls() -> bool {
    INTERNAL_TLS
        .read()
        .unwrap_or_else(|p| p.into_inner())
        .is_some()
}

/// A channel endpoint for the monitor or OSD at `addr` (`host:port`).
pub fn endpoint(addr: &str) -> Result<Endpoint, TransportError> {
    let ca = INTERNAL_TLS
        .read()
        .unwrap_or_else(|p| p.into_inner())
        .clone();
    let scheme = if ca.is_some() { "https" } else { "http" };
    let ep = Endpoint::from_shared(format!("{scheme}://{addr}"))
        .map_err(|e| TransportError::Tls(format!("address {addr:?}: {e}")))?
        .max_frame_size(H2_MAX_FRAME_BYTES)
        .initial_stream_window_size(H2_STREAM_WINDOW_BYTES)
        .initial_connection_window_size(H2_CONNECTION_WINDOW_BYTES);
    match ca {
        None => Ok(ep),
        Some(ca) => ep
            .tls_config(ClientTlsConfig::new().ca_certificate(ca))
            .map_err(|e| TransportError::Tls(e.to_string())),
    }
}

/// A gRPC server builder for daemon `name` (`mon.1`), serving TLS with its
/// certificate and key when `internal_tls` is on.
pub fn server(
    name: &str,
    internal_tls: bool,
    cert: Option<&Path>,
    key: Option<&Path>,
) -> Result<tonic::transport::Server, TransportError> {
    let builder = tonic::transport::Server::builder()
        .max_frame_size(H2_MAX_FRAME_BYTES)
        .initial_stream_window_size(H2_STREAM_WINDOW_BYTES)
        .initial_connection_window_size(H2_CONNECTION_WINDOW_BYTES);
    if !internal_tls {
        return Ok(builder);
    }
    builder
        .tls_config(daemon_tls(name, cert, key)?)
        .map_err(|e| TransportError::Tls(format!("{name}: {e}")))
}

/// The server side of daemon `name` (`mon.1`): its certificate chain and
/// key, both required.
pub fn daemon_tls(
    name: &str,
    cert: Option<&Path>,
    key: Option<&Path>,
) -> Result<ServerTlsConfig, TransportError> {
    let (Some(cert), Some(key)) = (cert, key) else {
        return Err(TransportError::Tls(format!(
            "internal_tls needs tls_cert and tls_key in [{name}]"
        )));
    };
    let cert = read_pem("certificate", cert, "CERTIFICATE")?;
    let key = read_pem("private key", key, "PRIVATE KEY")?;
    Ok(ServerTlsConfig::new().identity(Identity::from_pem(cert, key)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plain_by_default_and_refuses_files_without_pem() {
        assert!(!is_tls());
        assert_eq!(
            endpoint("127.0.0.1:1").unwrap().uri().scheme_str(),
            Some("http")
        );
        let dir = tempfile::tempdir().unwrap();
        let junk = dir.path().join("junk");
        std::fs::write(&junk, "not pem").unwrap();
        assert!(matches!(
            configure(Some(&junk)),
            Err(TransportError::File { .. })
        ));
        assert!(matches!(
            daemon_tls("osd.0", Some(&junk), Some(&dir.path().join("missing"))),
            Err(TransportError::File { .. })
        ));
        assert!(matches!(
            daemon_tls("osd.0", None, Some(&junk)),
            Err(TransportError::Tls(_))
        ));
        assert!(!is_tls(), "a refused CA file changes nothing");
    }
}
