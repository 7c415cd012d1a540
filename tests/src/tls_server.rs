//! A TLS server that is not PostgreSQL: it completes TLS handshakes at once (as a direct-TLS
//! PostgreSQL 17 server would) but negotiates no ALPN, then says nothing. A client that connects
//! with `sslnegotiation=direct` must refuse it: without the SSLRequest exchange, ALPN `postgresql`
//! is what says the other end speaks PostgreSQL.

use std::net::SocketAddr;
use std::sync::Arc;

use anyhow::{Context, Result};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use tokio::io::AsyncReadExt;
use tokio::net::TcpListener;
use tokio::task::JoinHandle;
use tokio_rustls::TlsAcceptor;

use crate::pki::CertFiles;

/// A running server on 127.0.0.1; stops when dropped.
pub struct NotPostgres {
    addr: SocketAddr,
    task: JoinHandle<()>,
}

impl NotPostgres {
    /// Serves TLS with the certificate and key in `files`, without ALPN.
    pub async fn start(files: &CertFiles) -> Result<NotPostgres> {
        let certs = CertificateDer::pem_file_iter(&files.cert)?.collect::<Result<Vec<_>, _>>()?;
        let key = PrivateKeyDer::from_pem_file(&files.key).context("server key")?;
        let config =
            rustls::ServerConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
                .with_safe_default_protocol_versions()?
                .with_no_client_auth()
                .with_single_cert(certs, key)?;
        let acceptor = TlsAcceptor::from(Arc::new(config));
        let listener = TcpListener::bind("127.0.0.1:0").await?;
        let addr = listener.local_addr()?;
        let task = tokio::spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                let acceptor = acceptor.clone();
                tokio::spawn(async move {
                    if let Ok(mut tls) = acceptor.accept(stream).await {
                        // Read until the client gives up; answer nothing.
                        let mut buf = [0u8; 1024];
                        while matches!(tls.read(&mut buf).await, Ok(n) if n > 0) {}
                    }
                });
            }
        });
        Ok(NotPostgres { addr, task })
    }

    /// The port it listens on.
    pub fn port(&self) -> u16 {
        self.addr.port()
    }
}

impl Drop for NotPostgres {
    fn drop(&mut self) {
        self.task.abort();
    }
}
