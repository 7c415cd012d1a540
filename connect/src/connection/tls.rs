//! TLS with rustls (the ring provider), configured as libpq configures OpenSSL for each `sslmode`.
//!
//! | sslmode | the server's certificate chain | the host name |
//! |---|---|---|
//! | `allow`, `prefer`, `require` | verified only if a root certificate file exists (`sslrootcert`, else `~/.postgresql/root.crt`), as libpq does | not checked |
//! | `verify-ca` | verified against `sslrootcert` (a missing file is an error) | not checked |
//! | `verify-full` | verified | checked against the certificate's subjectAltName |
//!
//! Beside the chain: `sslcrl` / `sslcrldir` (else `~/.postgresql/root.crl`) revoke certificates
//! whenever the chain is verified; a client certificate (`sslcert` / `sslkey`, else
//! `~/.postgresql/postgresql.crt` / `.key`) is offered unless `sslcertmode=disable`, and its key
//! file must not be readable by others; ALPN `postgresql` is always offered (PostgreSQL 17 needs it
//! for `sslnegotiation=direct`); SNI follows `sslsni`.
//!
//! Where rustls is stricter than OpenSSL, a connection libpq makes is refused here, and the error
//! says why ([`super::failure`]): rustls never falls back to the certificate's Common Name when
//! it has no subjectAltName, and refuses a CA certificate used as the server's own certificate.

use std::fs;
use std::io;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::client::{ResolvesClientCert, WebPkiServerVerifier};
use rustls::crypto::{CryptoProvider, WebPkiSupportedAlgorithms};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, CertificateRevocationListDer, PrivateKeyDer, ServerName, UnixTime};
use rustls::sign::CertifiedKey;
use rustls::{CertificateError, ClientConfig, DigitallySignedStruct, RootCertStore, SignatureScheme};
use tracing::warn;

use super::stream::MakeTls;
use crate::options::settings::{RootCert, Settings, SslCertMode, SslMode, TlsVersion};

/// The file names libpq looks for in `~/.postgresql/` when the setting is not given.
const DEFAULT_ROOT_CERT: &str = "root.crt";
const DEFAULT_CRL: &str = "root.crl";
const DEFAULT_CERT: &str = "postgresql.crt";
const DEFAULT_KEY: &str = "postgresql.key";

/// What the TLS configuration checks of the server's certificate.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Verification {
    /// Nothing (the handshake's signatures only): `prefer`/`require` without a root file.
    None,
    /// The chain, against the root certificates.
    Chain,
    /// The chain and the host name.
    ChainAndName,
}

/// Why TLS could not be set up from the settings (files missing, unreadable or unsafe). libpq
/// reports these as the failure of each connection attempt that needs TLS, and so do we.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum TlsSetupError {
    /// `verify-ca` / `verify-full` without a root certificate file.
    #[error(
        "root certificate file \"{}\" does not exist; either provide the file, use the system's trusted \
         roots with sslrootcert=system, or change sslmode to disable server certificate verification",
        .0.display()
    )]
    RootCertMissing(PathBuf),
    /// A file named by a setting could not be read.
    #[error("could not read {what} \"{}\": {reason}", path.display())]
    Unreadable {
        /// What the file is for (`root certificate file`, ...).
        what: &'static str,
        /// The file.
        path: PathBuf,
        /// The operating system's words.
        reason: String,
    },
    /// A file held nothing usable in PEM form.
    #[error("{what} \"{}\" holds no {expected} in PEM form{}", path.display(), detail.as_deref().map(|d| format!(" ({d})")).unwrap_or_default())]
    BadPem {
        /// What the file is for.
        what: &'static str,
        /// The file.
        path: PathBuf,
        /// What it should hold.
        expected: &'static str,
        /// The parser's words, if it had any.
        detail: Option<String>,
    },
    /// `sslrootcert=system` found no certificate in the platform's store.
    #[error("sslrootcert=system: no trusted root certificate found in the system store{0}")]
    NoSystemRoots(String),
    /// A client certificate without its key.
    #[error("certificate present, but not private key file \"{}\"", .0.display())]
    KeyMissing(PathBuf),
    /// The key file is not a regular file.
    #[error("private key file \"{}\" is not a regular file", .0.display())]
    KeyNotRegular(PathBuf),
    /// The key file is readable by others, which libpq refuses.
    #[error(
        "private key file \"{}\" has group or world access; file must have permissions u=rw (0600) or \
         less if owned by the current user, or permissions u=rw,g=r (0640) or less if owned by root",
        .0.display()
    )]
    KeyPermissions(PathBuf),
    /// The client certificate's public key is not the private key's (libpq's words, with the
    /// reason).
    #[error("certificate does not match private key file \"{}\": {reason}", key.display())]
    KeyMismatch {
        /// The private key file.
        key: PathBuf,
        /// Why: the keys differ, or the certificate cannot be read.
        reason: String,
    },
    /// rustls refused the certificate, the key, a CRL or the protocol versions.
    #[error("{what}: {reason}")]
    Rustls {
        /// What was being set up.
        what: &'static str,
        /// rustls' words.
        reason: String,
    },
    /// `ssl_min_protocol_version` / `ssl_max_protocol_version` leave no version rustls speaks.
    #[error("no TLS protocol version in the requested range: rustls speaks only TLSv1.2 and TLSv1.3")]
    NoProtocolVersion,
}

/// A rustls configuration for one connect call, plus what the establishing code must check after
/// the handshake.
#[derive(Clone)]
pub(crate) struct Tls {
    config: Arc<ClientConfig>,
    /// The same without SNI, for host names rustls cannot put into a handshake.
    config_without_sni: Arc<ClientConfig>,
    pub(crate) verification: Verification,
    /// Set when the server asked for a client certificate (for `sslcertmode=require`).
    pub(crate) certificate_requested: Arc<AtomicBool>,
    /// Whether a client certificate is configured to be offered.
    pub(crate) has_client_certificate: bool,
}

impl std::fmt::Debug for Tls {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Tls").field("verification", &self.verification).finish_non_exhaustive()
    }
}

/// The ring provider: no OpenSSL, no aws-lc build.
fn provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

/// Builds the TLS configuration `settings` ask for; `home` is the OS user's home directory (for
/// the `~/.postgresql/` defaults). Not called for `sslmode=disable`.
pub(crate) fn configure(settings: &Settings, home: Option<&Path>) -> Result<Tls, TlsSetupError> {
    let provider = provider();
    let default_file = |name: &str| home.map(|h| h.join(".postgresql").join(name));

    // The root certificates, and so what is verified.
    let explicit_verify = matches!(settings.sslmode, SslMode::VerifyCa | SslMode::VerifyFull);
    let roots = match &settings.sslrootcert {
        Some(RootCert::System) => Some(system_roots()?),
        Some(RootCert::File(path)) => root_file(path, explicit_verify)?,
        None => match default_file(DEFAULT_ROOT_CERT) {
            Some(path) => root_file(&path, explicit_verify)?,
            None if explicit_verify => {
                return Err(TlsSetupError::RootCertMissing(PathBuf::from("~/.postgresql/root.crt")))
            }
            None => None,
        },
    };
    let verification = match (&roots, settings.sslmode) {
        (None, _) => Verification::None,
        (Some(_), SslMode::VerifyFull) => Verification::ChainAndName,
        (Some(_), _) => Verification::Chain,
    };
    let verifier: Arc<dyn ServerCertVerifier> = match roots {
        None => Arc::new(AnyCertificate(provider.signature_verification_algorithms)),
        Some(roots) => {
            let crls = revocation_lists(settings, default_file(DEFAULT_CRL))?;
            let webpki = WebPkiServerVerifier::builder_with_provider(Arc::new(roots), Arc::clone(&provider))
                .with_crls(crls)
                // OpenSSL, as libpq configures it, refuses a CRL past its next update.
                .enforce_revocation_expiration()
                .build()
                .map_err(|e| TlsSetupError::Rustls { what: "certificate verifier", reason: e.to_string() })?;
            match verification {
                Verification::ChainAndName => webpki,
                _ => Arc::new(ChainOnly(webpki)),
            }
        }
    };

    let versions = protocol_versions(settings)?;
    let builder = ClientConfig::builder_with_provider(Arc::clone(&provider))
        .with_protocol_versions(&versions)
        .map_err(|e| TlsSetupError::Rustls { what: "TLS protocol versions", reason: e.to_string() })?
        .dangerous()
        .with_custom_certificate_verifier(verifier);

    let certificate_requested = Arc::new(AtomicBool::new(false));
    let client_key = match settings.sslcertmode {
        SslCertMode::Disable => None,
        SslCertMode::Allow | SslCertMode::Require => client_certificate(settings, home, &provider)?,
    };
    let has_client_certificate = client_key.is_some();
    let resolver = ClientCertificate { key: client_key, requested: Arc::clone(&certificate_requested) };
    let mut config = builder.with_client_cert_resolver(Arc::new(resolver));
    config.alpn_protocols = vec![b"postgresql".to_vec()];
    config.enable_sni = settings.sslsni;
    let mut without_sni = config.clone();
    without_sni.enable_sni = false;
    Ok(Tls {
        config: Arc::new(config),
        config_without_sni: Arc::new(without_sni),
        verification,
        certificate_requested,
        has_client_certificate,
    })
}

impl Tls {
    /// A connector for one attempt; `started` is set when the TLS handshake begins (the server
    /// accepted the SSLRequest, or the negotiation is direct), which decides libpq's fallbacks.
    pub(crate) fn connector(&self, started: Arc<AtomicBool>, direct: bool) -> MakeTls {
        MakeTls::new(Arc::clone(&self.config), Arc::clone(&self.config_without_sni), started, direct)
    }
}

/// The root store from a PEM file; `None` if there is no such file and nothing demands one. As in
/// libpq, a file that cannot even be looked at (a `HOME` that is not a directory, an unreadable
/// `~/.postgresql`) counts as absent.
fn root_file(path: &Path, required: bool) -> Result<Option<RootCertStore>, TlsSetupError> {
    if fs::metadata(path).is_err() {
        return if required { Err(TlsSetupError::RootCertMissing(path.to_owned())) } else { Ok(None) };
    }
    let pem = fs::read(path).map_err(|e| unreadable("root certificate file", path, &e))?;
    let what = "root certificate file";
    let mut roots = RootCertStore::empty();
    for cert in CertificateDer::pem_slice_iter(&pem) {
        let cert = cert.map_err(|e| bad_pem(what, path, "certificate", Some(e.to_string())))?;
        roots.add(cert).map_err(|e| bad_pem(what, path, "usable CA certificate", Some(e.to_string())))?;
    }
    if roots.is_empty() {
        return Err(bad_pem(what, path, "certificate", None));
    }
    Ok(Some(roots))
}

/// The platform's trusted roots, as OpenSSL finds them (`SSL_CERT_FILE` and `SSL_CERT_DIR` first).
fn system_roots() -> Result<RootCertStore, TlsSetupError> {
    let found = rustls_native_certs::load_native_certs();
    let mut roots = RootCertStore::empty();
    let (added, _) = roots.add_parsable_certificates(found.certs);
    if added == 0 {
        let why = found.errors.first().map(|e| format!(": {e}")).unwrap_or_default();
        return Err(TlsSetupError::NoSystemRoots(why));
    }
    Ok(roots)
}

/// `sslcrl` and `sslcrldir`, else `~/.postgresql/root.crl`. As in libpq, a CRL file that does not
/// exist is not an error (we say so in the log when it was named explicitly).
fn revocation_lists(
    settings: &Settings,
    default: Option<PathBuf>,
) -> Result<Vec<CertificateRevocationListDer<'static>>, TlsSetupError> {
    let mut files = Vec::new();
    match (&settings.sslcrl, &settings.sslcrldir) {
        (None, None) => files.extend(default.filter(|p| p.exists())),
        (file, dir) => {
            if let Some(file) = file {
                if file.exists() {
                    files.push(file.clone());
                } else {
                    warn!(sslcrl = %file.display(), "certificate revocation list file does not exist; ignored, as libpq does");
                }
            }
            if let Some(dir) = dir {
                match fs::read_dir(dir) {
                    Ok(entries) => {
                        let mut in_dir: Vec<PathBuf> = entries
                            .filter_map(|e| e.ok())
                            .map(|e| e.path())
                            .filter(|p| p.is_file())
                            .collect();
                        in_dir.sort();
                        files.extend(in_dir);
                    }
                    Err(e) => {
                        warn!(sslcrldir = %dir.display(), error = %e, "certificate revocation list directory unreadable; ignored, as libpq does")
                    }
                }
            }
        }
    }
    let mut crls = Vec::new();
    for path in files {
        let pem = fs::read(&path).map_err(|e| unreadable("certificate revocation list", &path, &e))?;
        for crl in CertificateRevocationListDer::pem_slice_iter(&pem) {
            crls.push(
                crl.map_err(|e| bad_pem("certificate revocation list", &path, "CRL", Some(e.to_string())))?,
            );
        }
    }
    Ok(crls)
}

/// The TLS versions between `ssl_min_protocol_version` and `ssl_max_protocol_version` that rustls
/// speaks.
fn protocol_versions(
    settings: &Settings,
) -> Result<Vec<&'static rustls::SupportedProtocolVersion>, TlsSetupError> {
    let max = settings.ssl_max_protocol_version.unwrap_or(TlsVersion::Tls1_3);
    let versions: Vec<_> =
        [(TlsVersion::Tls1_2, &rustls::version::TLS12), (TlsVersion::Tls1_3, &rustls::version::TLS13)]
            .into_iter()
            .filter(|(v, _)| *v >= settings.ssl_min_protocol_version && *v <= max)
            .map(|(_, v)| v)
            .collect();
    if versions.is_empty() {
        return Err(TlsSetupError::NoProtocolVersion);
    }
    Ok(versions)
}

/// The client certificate and key to offer, if a certificate file exists (libpq: a missing
/// certificate file just means none is sent).
fn client_certificate(
    settings: &Settings,
    home: Option<&Path>,
    provider: &CryptoProvider,
) -> Result<Option<Arc<CertifiedKey>>, TlsSetupError> {
    let default = |name| home.map(|h| h.join(".postgresql").join(name));
    let Some(cert_path) = settings.sslcert.clone().or_else(|| default(DEFAULT_CERT)) else { return Ok(None) };
    let cert_pem = match fs::read(&cert_path) {
        Ok(pem) => pem,
        Err(e) if matches!(e.kind(), io::ErrorKind::NotFound | io::ErrorKind::NotADirectory) => {
            return Ok(None)
        }
        Err(e) => return Err(unreadable("certificate file", &cert_path, &e)),
    };
    let certs = CertificateDer::pem_slice_iter(&cert_pem)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| bad_pem("certificate file", &cert_path, "certificate", Some(e.to_string())))?;
    if certs.is_empty() {
        return Err(bad_pem("certificate file", &cert_path, "certificate", None));
    }
    let key_path = settings.sslkey.clone().or_else(|| default(DEFAULT_KEY)).unwrap_or_default();
    let meta = match fs::metadata(&key_path) {
        Ok(meta) => meta,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Err(TlsSetupError::KeyMissing(key_path)),
        Err(e) => return Err(unreadable("private key file", &key_path, &e)),
    };
    check_key_permissions(&key_path, &meta)?;
    let key_pem = fs::read(&key_path).map_err(|e| unreadable("private key file", &key_path, &e))?;
    let key = PrivateKeyDer::from_pem_slice(&key_pem)
        .map_err(|e| bad_pem("private key file", &key_path, "private key", Some(e.to_string())))?;
    let signing = provider
        .key_provider
        .load_private_key(key)
        .map_err(|e| TlsSetupError::Rustls { what: "client private key", reason: e.to_string() })?;
    let certified = CertifiedKey::new(certs, signing);
    check_key_matches(&certified)
        .map_err(|reason| TlsSetupError::KeyMismatch { key: key_path.clone(), reason })?;
    Ok(Some(Arc::new(certified)))
}

/// Whether the first certificate's public key is the private key's, as OpenSSL's
/// `SSL_check_private_key` (libpq's check) decides it: on the certificate's subjectPublicKeyInfo,
/// whatever its version. (rustls' own `keys_match` parses the certificate as webpki does, which
/// refuses X.509 v1, the version `openssl x509 -req` writes without extensions: PostgreSQL's
/// documented recipe for client certificates. The server decides whether it accepts v1, and
/// PostgreSQL does.)
fn check_key_matches(certified: &CertifiedKey) -> Result<(), String> {
    let key = certified.key.public_key().ok_or("the private key's public key cannot be derived")?;
    let cert = certified.end_entity_cert().map_err(|e| e.to_string())?;
    let spki = spki_of(cert).map_err(|e| format!("the certificate cannot be parsed: {e}"))?;
    if spki.as_slice() == key.as_ref() {
        Ok(())
    } else {
        Err("key values mismatch".to_owned())
    }
}

/// libpq's rule: a key owned by root may be readable by its group (for keys shared through a
/// group), any other key must not be accessible to group or others.
fn check_key_permissions(path: &Path, meta: &fs::Metadata) -> Result<(), TlsSetupError> {
    if !meta.is_file() {
        return Err(TlsSetupError::KeyNotRegular(path.to_owned()));
    }
    let forbidden = if meta.uid() == 0 { 0o037 } else { 0o077 };
    if meta.mode() & forbidden != 0 {
        return Err(TlsSetupError::KeyPermissions(path.to_owned()));
    }
    Ok(())
}

fn unreadable(what: &'static str, path: &Path, e: &io::Error) -> TlsSetupError {
    TlsSetupError::Unreadable { what, path: path.to_owned(), reason: e.to_string() }
}

fn bad_pem(what: &'static str, path: &Path, expected: &'static str, detail: Option<String>) -> TlsSetupError {
    TlsSetupError::BadPem { what, path: path.to_owned(), expected, detail }
}

/// Offers the configured client certificate, and remembers that the server asked for one.
#[derive(Debug)]
struct ClientCertificate {
    key: Option<Arc<CertifiedKey>>,
    requested: Arc<AtomicBool>,
}

impl ResolvesClientCert for ClientCertificate {
    fn resolve(&self, _hints: &[&[u8]], _schemes: &[SignatureScheme]) -> Option<Arc<CertifiedKey>> {
        self.requested.store(true, Ordering::Relaxed);
        self.key.clone()
    }

    fn has_certs(&self) -> bool {
        self.key.is_some()
    }
}

/// `prefer` / `require` without a root certificate file: any certificate is accepted (libpq does
/// not verify then either), but the handshake's own signatures are still checked.
#[derive(Debug)]
struct AnyCertificate(WebPkiSupportedAlgorithms);

impl ServerCertVerifier for AnyCertificate {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        match rustls::crypto::verify_tls12_signature(message, cert, dss, &self.0) {
            Err(e) if is_version_1(&e) => verify_tls12_with_key_of(message, cert, dss, &self.0),
            other => other,
        }
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        // (rustls refuses a scheme TLS 1.3 does not allow before it parses the certificate.)
        match rustls::crypto::verify_tls13_signature(message, cert, dss, &self.0) {
            Err(e) if is_version_1(&e) => {
                rustls::crypto::verify_tls13_signature_with_raw_key(message, &key_of(cert)?, dss, &self.0)
            }
            other => other,
        }
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.supported_schemes()
    }
}

/// Whether webpki refused a certificate for being X.509 version 1 (before looking at anything
/// else).
fn is_version_1(e: &rustls::Error) -> bool {
    matches!(e, rustls::Error::InvalidCertificate(CertificateError::Other(other))
        if matches!(other.0.downcast_ref::<webpki::Error>(), Some(webpki::Error::UnsupportedCertVersion)))
}

/// A certificate error in words, for what webpki cannot say.
fn certificate_error(what: String) -> rustls::Error {
    rustls::Error::InvalidCertificate(CertificateError::Other(rustls::OtherError(Arc::new(
        std::io::Error::other(what),
    ))))
}

/// The public key of `cert`, read as OpenSSL reads it, whatever the certificate's version: for a
/// version 1 certificate (`openssl x509 -req` without extensions, PostgreSQL's documented
/// recipe), which webpki will not parse, where nothing else of the certificate is verified
/// (`prefer`, `require` without a root file: libpq does not verify it either), so that the
/// handshake's signature is still checked.
fn key_of(
    cert: &CertificateDer<'_>,
) -> Result<rustls::pki_types::SubjectPublicKeyInfoDer<'static>, rustls::Error> {
    let spki =
        spki_of(cert).map_err(|e| certificate_error(format!("server certificate cannot be parsed: {e}")))?;
    Ok(spki.into())
}

/// A certificate's subjectPublicKeyInfo (DER), read with x509-cert, which parses every X.509
/// version (webpki refuses version 1).
fn spki_of(cert: &CertificateDer<'_>) -> Result<Vec<u8>, x509_cert::der::Error> {
    use x509_cert::der::{Decode, Encode};

    x509_cert::Certificate::from_der(cert)?.tbs_certificate.subject_public_key_info.to_der()
}

/// TLS 1.2's handshake signature checked with [`key_of`] `cert`, by webpki on the raw key, trying
/// each algorithm the scheme maps to as rustls does for a certificate.
fn verify_tls12_with_key_of(
    message: &[u8],
    cert: &CertificateDer<'_>,
    dss: &DigitallySignedStruct,
    algorithms: &WebPkiSupportedAlgorithms,
) -> Result<HandshakeSignatureValid, rustls::Error> {
    let bad = certificate_error;
    let spki = key_of(cert)?;
    let key =
        webpki::RawPublicKeyEntity::try_from(&spki).map_err(|e| bad(format!("server public key: {e}")))?;
    let candidates =
        algorithms.mapping.iter().find(|(scheme, _)| *scheme == dss.scheme).map(|(_, algs)| *algs).ok_or(
            rustls::Error::PeerMisbehaved(rustls::PeerMisbehaved::SignedHandshakeWithUnadvertisedSigScheme),
        )?;
    let mut last = None;
    for alg in candidates {
        match key.verify_signature(*alg, message, dss.signature()) {
            Ok(()) => return Ok(HandshakeSignatureValid::assertion()),
            Err(e) => last = Some(e),
        }
    }
    Err(bad(format!(
        "the handshake signature does not verify with the server certificate's key: {}",
        last.map_or_else(|| "no algorithm for its scheme".to_owned(), |e| e.to_string())
    )))
}

/// `verify-ca` (and `require` with a root file): the chain is verified, the name is not. webpki
/// checks the name only after the chain, so a name error means the chain was good.
#[derive(Debug)]
struct ChainOnly(Arc<WebPkiServerVerifier>);

impl ServerCertVerifier for ChainOnly {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        ocsp_response: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        match self.0.verify_server_cert(end_entity, intermediates, server_name, ocsp_response, now) {
            Err(rustls::Error::InvalidCertificate(
                CertificateError::NotValidForName | CertificateError::NotValidForNameContext { .. },
            )) => Ok(ServerCertVerified::assertion()),
            other => other,
        }
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.0.verify_tls12_signature(message, cert, dss)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.0.verify_tls13_signature(message, cert, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.supported_verify_schemes()
    }
}
