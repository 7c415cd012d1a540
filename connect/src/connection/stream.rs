//! The TLS stream under a connection, and the connector tokio-postgres calls to make it: rustls
//! through tokio-rustls, with SCRAM's channel binding (`tls-server-end-point`) computed from the
//! server's certificate.
//!
//! Written here rather than taken from tokio-postgres-rustls: its 0.13 release reads the server
//! certificate as a bare `TBSCertificate`, which never parses, so it offers no channel binding and
//! `channel_binding=require` always failed. The rest is a thin wrapper around tokio-rustls.

use std::future::Future;
use std::io;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, OnceLock};
use std::task::{Context, Poll};

use rustls::pki_types::ServerName;
use rustls::ClientConfig;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio_postgres::tls::{ChannelBinding, MakeTlsConnect, TlsConnect};
use tokio_postgres::Socket;
use tokio_rustls::TlsConnector;
use x509_cert::der::Decode;

/// The TLS stream of a connection made by [`super::ConnectOptions::connect`].
pub struct TlsStream(tokio_rustls::client::TlsStream<Socket>);

/// What a TLS handshake negotiated, as this client saw it.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct Negotiated {
    /// The protocol, as PostgreSQL names it (`TLSv1.3`).
    pub version: String,
    /// The cipher suite, as PostgreSQL (OpenSSL) names it (`TLS_AES_256_GCM_SHA384`).
    pub cipher: String,
}

impl Negotiated {
    fn of(session: &rustls::ClientConnection) -> Self {
        let version = match session.protocol_version() {
            Some(rustls::ProtocolVersion::TLSv1_3) => "TLSv1.3".to_owned(),
            Some(rustls::ProtocolVersion::TLSv1_2) => "TLSv1.2".to_owned(),
            other => format!("{other:?}"),
        };
        let cipher = session
            .negotiated_cipher_suite()
            .map(|suite| suite.suite().as_str().unwrap_or("unknown").trim_start_matches("TLS13_").to_owned())
            .unwrap_or_default();
        // rustls names the TLS 1.3 suites TLS13_*; OpenSSL (and so pg_stat_ssl) TLS_*.
        let cipher = if version == "TLSv1.3" && !cipher.starts_with("TLS_") {
            format!("TLS_{cipher}")
        } else {
            cipher
        };
        Negotiated { version, cipher }
    }
}

impl std::fmt::Display for Negotiated {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} {}", self.version, self.cipher)
    }
}

impl tokio_postgres::tls::TlsStream for TlsStream {
    fn channel_binding(&self) -> ChannelBinding {
        let (_, session) = self.0.get_ref();
        match session.peer_certificates().and_then(|certs| certs.first()).and_then(|c| end_point(c)) {
            Some(hash) => ChannelBinding::tls_server_end_point(hash),
            None => ChannelBinding::none(),
        }
    }
}

/// RFC 5929's `tls-server-end-point`: the certificate hashed with its signature's hash function
/// (SHA-256 for MD5 and SHA-1), as the PostgreSQL server computes it. Signatures that name no
/// single hash (Ed25519, RSASSA-PSS) give none: the client then does not use channel binding
/// (and `channel_binding=require` fails), as the server could not compute the binding either.
fn end_point(der: &[u8]) -> Option<Vec<u8>> {
    use const_oid::db::rfc5912::{
        DSA_WITH_SHA_1, DSA_WITH_SHA_256, ECDSA_WITH_SHA_256, ECDSA_WITH_SHA_384, ECDSA_WITH_SHA_512,
        MD_5_WITH_RSA_ENCRYPTION, SHA_1_WITH_RSA_ENCRYPTION, SHA_224_WITH_RSA_ENCRYPTION,
        SHA_256_WITH_RSA_ENCRYPTION, SHA_384_WITH_RSA_ENCRYPTION, SHA_512_WITH_RSA_ENCRYPTION,
    };
    let cert = x509_cert::Certificate::from_der(der).ok()?;
    let algorithm = match cert.signature_algorithm.oid {
        MD_5_WITH_RSA_ENCRYPTION
        | SHA_1_WITH_RSA_ENCRYPTION
        | DSA_WITH_SHA_1
        | SHA_224_WITH_RSA_ENCRYPTION
        | SHA_256_WITH_RSA_ENCRYPTION
        | DSA_WITH_SHA_256
        | ECDSA_WITH_SHA_256 => &ring::digest::SHA256,
        SHA_384_WITH_RSA_ENCRYPTION | ECDSA_WITH_SHA_384 => &ring::digest::SHA384,
        SHA_512_WITH_RSA_ENCRYPTION | ECDSA_WITH_SHA_512 => &ring::digest::SHA512,
        _ => return None,
    };
    Some(ring::digest::digest(algorithm, der).as_ref().to_vec())
}

impl AsyncRead for TlsStream {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.0).poll_read(cx, buf)
    }
}

impl AsyncWrite for TlsStream {
    fn poll_write(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.0).poll_write(cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.0).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.0).poll_shutdown(cx)
    }
}

/// tokio-postgres' TLS factory for one attempt, noting when a handshake starts (which decides
/// libpq's fallbacks, see `plan`) and what it negotiated.
pub(crate) struct MakeTls {
    /// With SNI and without; `None` for a plaintext step, which tokio-postgres still wants a
    /// connector for, though it never uses it.
    configs: Option<(Arc<ClientConfig>, Arc<ClientConfig>)>,
    started: Arc<AtomicBool>,
    /// `sslnegotiation=direct`: the server must select ALPN `postgresql`.
    direct: bool,
    negotiated: Arc<OnceLock<Negotiated>>,
}

impl MakeTls {
    pub(crate) fn new(
        with_sni: Arc<ClientConfig>,
        without_sni: Arc<ClientConfig>,
        started: Arc<AtomicBool>,
        direct: bool,
    ) -> Self {
        MakeTls { configs: Some((with_sni, without_sni)), started, direct, negotiated: Arc::default() }
    }

    /// The connector of a plaintext step.
    pub(crate) fn plaintext() -> Self {
        MakeTls { configs: None, started: Arc::default(), direct: false, negotiated: Arc::default() }
    }

    /// Where the handshake records what it negotiated.
    pub(crate) fn negotiated(&self) -> Arc<OnceLock<Negotiated>> {
        Arc::clone(&self.negotiated)
    }
}

impl MakeTlsConnect<Socket> for MakeTls {
    type Stream = TlsStream;
    type TlsConnect = StartTls;
    type Error = io::Error;

    fn make_tls_connect(&mut self, domain: &str) -> Result<StartTls, io::Error> {
        let handshake = self.configs.as_ref().map(|(with_sni, without_sni)| {
            match ServerName::try_from(domain) {
                Ok(name) => (Arc::clone(with_sni), name.to_owned()),
                // A host name that is not a DNS name (an underscore, say) can be neither sent as
                // SNI nor matched; libpq connects anyway unless it must verify the name (which
                // the establishing code refuses before it gets here), so use a placeholder.
                Err(_) => {
                    (Arc::clone(without_sni), ServerName::IpAddress(std::net::Ipv4Addr::UNSPECIFIED.into()))
                }
            }
        });
        Ok(StartTls {
            handshake,
            started: Arc::clone(&self.started),
            direct: self.direct,
            negotiated: Arc::clone(&self.negotiated),
        })
    }
}

/// One attempt's TLS handshake.
pub(crate) struct StartTls {
    handshake: Option<(Arc<ClientConfig>, ServerName<'static>)>,
    started: Arc<AtomicBool>,
    direct: bool,
    negotiated: Arc<OnceLock<Negotiated>>,
}

impl TlsConnect<Socket> for StartTls {
    type Stream = TlsStream;
    type Error = io::Error;
    type Future = Pin<Box<dyn Future<Output = io::Result<TlsStream>> + Send>>;

    fn connect(self, stream: Socket) -> Self::Future {
        self.started.store(true, Ordering::Relaxed);
        match self.handshake {
            Some((config, name)) => {
                let connect = TlsConnector::from(config).connect(name, stream);
                let (direct, negotiated) = (self.direct, self.negotiated);
                Box::pin(async move {
                    let stream = connect.await?;
                    let (_, session) = stream.get_ref();
                    // Without the SSLRequest exchange, ALPN is what says the server speaks
                    // PostgreSQL; libpq refuses a direct connection without it.
                    if direct {
                        match session.alpn_protocol() {
                            Some(b"postgresql") => {}
                            None => {
                                return Err(io::Error::other(
                                    "direct SSL connection was established without ALPN protocol negotiation extension",
                                ))
                            }
                            Some(_) => {
                                return Err(io::Error::other("SSL connection was established with unexpected ALPN protocol"))
                            }
                        }
                    }
                    let _ = negotiated.set(Negotiated::of(session));
                    Ok(TlsStream(stream))
                })
            }
            None => {
                Box::pin(async { Err(io::Error::other("TLS is not configured for a plaintext attempt")) })
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_end_point_is_the_certificate_hashed_with_its_signature_hash() {
        // A certificate signed with ECDSA-SHA256 (the test PKI's kind); its hash is SHA-256.
        let cert = certificate();
        let hash = end_point(&cert).expect("ECDSA-SHA256 names SHA-256");
        assert_eq!(hash, ring::digest::digest(&ring::digest::SHA256, &cert).as_ref());
        assert_eq!(end_point(b"not a certificate"), None);
    }

    /// A self-signed ECDSA P-256 / SHA-256 certificate (made once with `openssl req -x509`), so
    /// that this unit test needs no certificate generator.
    fn certificate() -> Vec<u8> {
        const PEM: &str = include_str!("../../tests/fixtures/ecdsa-sha256.crt");
        use rustls::pki_types::pem::PemObject;
        rustls::pki_types::CertificateDer::from_pem_slice(PEM.as_bytes()).expect("PEM").to_vec()
    }
}
