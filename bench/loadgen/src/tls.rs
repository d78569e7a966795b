//! The TLS client both generators use: rustls with ring (rulegate's own stack), TLS 1.3 only,
//! the preferences of bench/run.sh's OpenSSL clients (`client.cnf`: AES-128-GCM, AES-256-GCM,
//! ChaCha20-Poly1305; X25519 then P-256; ALPN http/1.1), no session resumption, and the
//! bench's certificate pinned rather than chain-verified (see `handshakes.rs` for why only one
//! handshake signature in [`CHECK_EVERY`] is checked).

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::{ring, CryptoProvider, WebPkiSupportedAlgorithms};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{ClientConfig, ClientConnection, DigitallySignedStruct, SignatureScheme};
use std::io::{ErrorKind, Read, Write};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

/// One handshake signature in this many is verified (see the module's doc).
pub const CHECK_EVERY: u64 = 16;

/// Accepts exactly the bench's certificate and checks the server's handshake signature with it
/// on one connection in [`CHECK_EVERY`].
#[derive(Debug)]
struct Pinned {
    cert: CertificateDer<'static>,
    algorithms: WebPkiSupportedAlgorithms,
    /// Signatures seen so far.
    seen: AtomicU64,
}

impl ServerCertVerifier for Pinned {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        if end_entity.as_ref() == self.cert.as_ref() {
            Ok(ServerCertVerified::assertion())
        } else {
            Err(rustls::Error::InvalidCertificate(
                rustls::CertificateError::UnknownIssuer,
            ))
        }
    }

    fn verify_tls12_signature(
        &self,
        _message: &[u8],
        _cert: &CertificateDer<'_>,
        _dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        Err(rustls::Error::General("TLS 1.2 is not offered".into()))
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        if self
            .seen
            .fetch_add(1, Ordering::Relaxed)
            .is_multiple_of(CHECK_EVERY)
        {
            rustls::crypto::verify_tls13_signature(message, cert, dss, &self.algorithms)
        } else {
            Ok(HandshakeSignatureValid::assertion())
        }
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.algorithms.supported_schemes()
    }
}

pub fn config(cert_file: &str) -> Result<Arc<ClientConfig>, String> {
    let cert = CertificateDer::from_pem_file(cert_file).map_err(|e| format!("{cert_file}: {e}"))?;
    let base = ring::default_provider();
    let provider = CryptoProvider {
        cipher_suites: vec![
            ring::cipher_suite::TLS13_AES_128_GCM_SHA256,
            ring::cipher_suite::TLS13_AES_256_GCM_SHA384,
            ring::cipher_suite::TLS13_CHACHA20_POLY1305_SHA256,
        ],
        kx_groups: vec![ring::kx_group::X25519, ring::kx_group::SECP256R1],
        ..base
    };
    let verifier = Pinned {
        cert,
        algorithms: provider.signature_verification_algorithms,
        seen: AtomicU64::new(0),
    };
    let mut c = ClientConfig::builder_with_provider(Arc::new(provider))
        .with_protocol_versions(&[&rustls::version::TLS13])
        .map_err(|e| e.to_string())?
        .dangerous()
        .with_custom_certificate_verifier(Arc::new(verifier))
        .with_no_client_auth();
    c.resumption = rustls::client::Resumption::disabled();
    c.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(Arc::new(c))
}

/// The name a client sends for `host:port` (an IP literal: no SNI; the servers here answer
/// without one).
pub fn server_name(authority: &str) -> Result<ServerName<'static>, String> {
    let host = authority.rsplit_once(':').map_or(authority, |(h, _)| h);
    ServerName::try_from(host.to_string()).map_err(|e| format!("{host}: {e}"))
}

/// Writes what TLS has to send: `Ok(true)` when all of it went out, `Ok(false)` when the socket
/// would take no more for now.
pub fn flush(tls: &mut ClientConnection, socket: &mut impl Write) -> std::io::Result<bool> {
    while tls.wants_write() {
        match tls.write_tls(socket) {
            Ok(_) => {}
            Err(e) if e.kind() == ErrorKind::WouldBlock => return Ok(false),
            Err(e) => return Err(e),
        }
    }
    Ok(true)
}

/// What reading a connection until its socket would block came to.
pub enum Received {
    /// More may come.
    Pending,
    /// The server closed it: a close_notify, or the socket's end without one.
    Closed,
    /// The socket failed, or what came was not TLS this client accepts.
    Failed,
}

/// Reads and decrypts what has come, into `buf`, until the socket would block.
pub fn receive(
    tls: &mut ClientConnection,
    socket: &mut impl Read,
    chunk: &mut [u8],
    buf: &mut Vec<u8>,
) -> Received {
    loop {
        match tls.read_tls(socket) {
            Ok(0) => return Received::Closed,
            Ok(_) => {}
            Err(e) if e.kind() == ErrorKind::WouldBlock => return Received::Pending,
            Err(e) if e.kind() == ErrorKind::Interrupted => continue,
            Err(_) => return Received::Failed,
        }
        if tls.process_new_packets().is_err() {
            return Received::Failed;
        }
        loop {
            match tls.reader().read(chunk) {
                Ok(0) => return Received::Closed, // close_notify
                Ok(n) => buf.extend_from_slice(&chunk[..n]),
                Err(e) if e.kind() == ErrorKind::WouldBlock => break,
                Err(_) => return Received::Closed, // the socket's end without close_notify
            }
        }
    }
}
