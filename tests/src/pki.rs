//! Certificates made at test time, for TLS tests against real servers.
//!
//! [`Pki::generate`] makes a small public-key infrastructure with `rcgen` and writes it as PEM files
//! into a temporary directory that lives as long as the [`Pki`]: a test CA, a second CA nobody
//! trusts, one server certificate per [`ServerCert`] case, two CRLs, a CA bundle, and on request
//! client certificates for `cert` authentication ([`Pki::client`]). Nothing is shared between
//! tests and nothing comes from the machine, so a test states every trust decision it relies on.
//!
//! All keys are ECDSA P-256, which PostgreSQL's OpenSSL, libpq and rustls all accept. Every file
//! belongs to the current user; key files have mode 0600. The server does not read from here: a
//! TLS cluster copies what it needs into its own directory, owned by the server's OS user
//! (see [`crate::tls_cluster`]).

use std::fs::{self, OpenOptions};
use std::io::Write;
use std::net::{IpAddr, Ipv4Addr};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

use anyhow::{ensure, Context, Result};
use rcgen::{
    date_time_ymd, BasicConstraints, CertificateParams, CertificateRevocationListParams, DnType,
    ExtendedKeyUsagePurpose, IsCa, Issuer, KeyIdMethod, KeyPair, KeyUsagePurpose, RevocationReason,
    RevokedCertParams, SanType, SerialNumber,
};
use tempfile::TempDir;

/// The name the server certificates are made for: connect with `host=db.test hostaddr=127.0.0.1`.
pub const SERVER_NAME: &str = "db.test";

/// A host name no server certificate names (for the wrong-name case).
pub const WRONG_NAME: &str = "wrong.example";

/// The common name of the test CA, the one the tests trust.
pub const CA_NAME: &str = "bytebase-signal test CA";

/// The common name of the CA nobody trusts.
pub const UNTRUSTED_CA_NAME: &str = "bytebase-signal untrusted CA";

/// The server certificates a TLS test server can present. Apart from what the variant says, each
/// is as valid as [`ServerCert::Valid`]: it names [`SERVER_NAME`], `localhost` and `127.0.0.1`, so
/// a refusal can only come from the one thing that differs.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ServerCert {
    /// Signed by the test CA; subjectAltName DNS `db.test`, DNS `localhost`, IP `127.0.0.1`.
    Valid,
    /// Like `Valid`, but valid only from 2020-01-01 to 2021-01-01.
    Expired,
    /// Like `Valid`, but listed in [`Pki::crl_revoking_revoked`].
    Revoked,
    /// Common name `db.test` and no subjectAltName extension at all. OpenSSL (libpq) matches
    /// `verify-full` against the CN when there is no subjectAltName; rustls never looks at the CN.
    NoSan,
    /// Like `Valid`, but signed by the untrusted CA.
    Untrusted,
    /// The test CA's own certificate and key, presented as the server certificate. It has no
    /// subjectAltName and its CN is [`CA_NAME`].
    Ca,
}

impl ServerCert {
    /// Every case, in declaration order.
    pub const ALL: [ServerCert; 6] = [
        ServerCert::Valid,
        ServerCert::Expired,
        ServerCert::Revoked,
        ServerCert::NoSan,
        ServerCert::Untrusted,
        ServerCert::Ca,
    ];

    /// The file stem of the certificate and key (`server-<stem>.crt`, `.key`).
    fn stem(self) -> &'static str {
        match self {
            ServerCert::Valid => "valid",
            ServerCert::Expired => "expired",
            ServerCert::Revoked => "revoked",
            ServerCert::NoSan => "no-san",
            ServerCert::Untrusted => "untrusted",
            ServerCert::Ca => "ca",
        }
    }

    /// The certificate's serial number: fixed, so that a CRL can name the revoked one.
    fn serial(self) -> u8 {
        match self {
            ServerCert::Valid => 0x11,
            ServerCert::Expired => 0x12,
            ServerCert::Revoked => 0x13,
            ServerCert::NoSan => 0x14,
            ServerCert::Untrusted => 0x15,
            ServerCert::Ca => CA_SERIAL,
        }
    }
}

/// The serial number of both CAs' certificates.
const CA_SERIAL: u8 = 0x01;

/// A certificate and its private key, as PEM files.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CertFiles {
    /// The certificate (`-----BEGIN CERTIFICATE-----`).
    pub cert: PathBuf,
    /// The PKCS#8 private key (`-----BEGIN PRIVATE KEY-----`), mode 0600.
    pub key: PathBuf,
}

/// A client certificate for `cert` authentication, signed by the test CA, with CN = a role name.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ClientCert {
    /// The role name in the certificate's CN.
    pub role: String,
    /// The certificate.
    pub cert: PathBuf,
    /// The private key, mode 0600, owned by the current user: what libpq accepts.
    pub key: PathBuf,
    /// The same key with mode 0644, which libpq refuses to use ("has group or world access").
    pub key_world_readable: PathBuf,
}

/// A test PKI written to a temporary directory, removed when the value is dropped.
pub struct Pki {
    dir: TempDir,
    ca: Issuer<'static, KeyPair>,
    ca_cert: PathBuf,
    ca_bundle: PathBuf,
    untrusted_ca_cert: PathBuf,
    servers: Vec<(ServerCert, CertFiles)>,
    crl_revoking_revoked: PathBuf,
    crl_revoking_nothing: PathBuf,
    crl_expired: PathBuf,
}

impl Pki {
    /// Makes the CAs, every [`ServerCert`] and both CRLs, and writes them out.
    pub fn generate() -> Result<Pki> {
        let dir = tempfile::Builder::new().prefix("bytebase-signal-pki-").tempdir()?;
        let (ca_params, ca_key) = new_ca(CA_NAME)?;
        let ca_pem = ca_params.self_signed(&ca_key)?.pem();
        let ca_key_pem = ca_key.serialize_pem();
        let ca = Issuer::new(ca_params, ca_key);
        let (untrusted_params, untrusted_key) = new_ca(UNTRUSTED_CA_NAME)?;
        let untrusted_pem = untrusted_params.self_signed(&untrusted_key)?.pem();
        let untrusted = Issuer::new(untrusted_params, untrusted_key);

        let ca_cert = write(dir.path(), "ca.crt", &ca_pem, 0o644)?;
        let ca_key_path = write(dir.path(), "ca.key", &ca_key_pem, 0o600)?;
        let untrusted_ca_cert = write(dir.path(), "untrusted-ca.crt", &untrusted_pem, 0o644)?;
        let ca_bundle = write(dir.path(), "ca-bundle.crt", &format!("{ca_pem}{untrusted_pem}"), 0o644)?;

        let mut servers = Vec::new();
        for which in ServerCert::ALL {
            let files = match which {
                ServerCert::Ca => CertFiles { cert: ca_cert.clone(), key: ca_key_path.clone() },
                _ => {
                    let issuer = if which == ServerCert::Untrusted { &untrusted } else { &ca };
                    let key = KeyPair::generate()?;
                    let pem = server_params(which)?.signed_by(&key, issuer)?.pem();
                    let stem = which.stem();
                    CertFiles {
                        cert: write(dir.path(), &format!("server-{stem}.crt"), &pem, 0o644)?,
                        key: write(dir.path(), &format!("server-{stem}.key"), &key.serialize_pem(), 0o600)?,
                    }
                }
            };
            servers.push((which, files));
        }

        let revoked = crl(&ca, &[ServerCert::Revoked.serial()], 1)?;
        let crl_revoking_revoked = write(dir.path(), "revoking-revoked.crl", &revoked, 0o644)?;
        let nothing = crl(&ca, &[], 2)?;
        let crl_revoking_nothing = write(dir.path(), "revoking-nothing.crl", &nothing, 0o644)?;
        let expired = crl_until(&ca, &[], 3, 2024)?;
        let crl_expired = write(dir.path(), "expired.crl", &expired, 0o644)?;

        Ok(Pki {
            dir,
            ca,
            ca_cert,
            ca_bundle,
            untrusted_ca_cert,
            servers,
            crl_revoking_revoked,
            crl_revoking_nothing,
            crl_expired,
        })
    }

    /// The directory holding every file.
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// The test CA's certificate: the `sslrootcert` that trusts every server certificate except
    /// [`ServerCert::Untrusted`]. The servers' `ssl_ca_file` too.
    pub fn ca_cert(&self) -> &Path {
        &self.ca_cert
    }

    /// The untrusted CA's certificate (which signed [`ServerCert::Untrusted`]).
    pub fn untrusted_ca_cert(&self) -> &Path {
        &self.untrusted_ca_cert
    }

    /// Both CAs' certificates in one file, the test CA first: an `sslrootcert` that trusts every
    /// server certificate, [`ServerCert::Untrusted`] included.
    pub fn ca_bundle(&self) -> &Path {
        &self.ca_bundle
    }

    /// The certificate and key files of server certificate `which`.
    pub fn server(&self, which: ServerCert) -> &CertFiles {
        &self.servers.iter().find(|(w, _)| *w == which).expect("every ServerCert is generated").1
    }

    /// A CRL from the test CA that revokes [`ServerCert::Revoked`] (and nothing else).
    pub fn crl_revoking_revoked(&self) -> &Path {
        &self.crl_revoking_revoked
    }

    /// A CRL from the test CA that revokes nothing: with it, revocation checking is on and every
    /// certificate of the test CA still passes.
    pub fn crl_revoking_nothing(&self) -> &Path {
        &self.crl_revoking_nothing
    }

    /// A CRL from the test CA that revokes nothing, but whose next update was due in 2024: OpenSSL
    /// (and so libpq) refuses a chain checked against it.
    pub fn crl_expired(&self) -> &Path {
        &self.crl_expired
    }

    /// The environment that makes OpenSSL's default trust store (libpq's `sslrootcert=system`)
    /// the test CA alone: `SSL_CERT_FILE=<ca_cert>`. (`SSL_CERT_DIR` is not set: a test runs its
    /// client with a cleared environment, see [`crate::libpq`].)
    pub fn system_trust_env(&self) -> [(&'static str, &Path); 1] {
        [("SSL_CERT_FILE", self.ca_cert())]
    }

    /// Makes (again, if asked twice) a client certificate signed by the test CA with CN = `role`,
    /// for `cert` authentication as that role, and writes its files.
    pub fn client(&self, role: &str) -> Result<ClientCert> {
        ensure!(
            !role.is_empty() && role.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_'),
            "client certificate role {role:?}: use letters, digits and _ (it becomes a file name)"
        );
        let mut params = CertificateParams::default();
        params.distinguished_name = rcgen::DistinguishedName::new();
        params.distinguished_name.push(DnType::CommonName, role);
        params.serial_number = Some(SerialNumber::from_slice(&serial_for(role)));
        params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
        params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ClientAuth];
        params.use_authority_key_identifier_extension = true;
        let key = KeyPair::generate()?;
        let pem = params.signed_by(&key, &self.ca)?.pem();
        let key_pem = key.serialize_pem();
        let dir = self.dir.path();
        Ok(ClientCert {
            role: role.to_owned(),
            cert: write(dir, &format!("client-{role}.crt"), &pem, 0o644)?,
            key: write(dir, &format!("client-{role}.key"), &key_pem, 0o600)?,
            key_world_readable: write(dir, &format!("client-{role}-0644.key"), &key_pem, 0o644)?,
        })
    }
}

/// A CA's parameters and key: CN `name`, CA:TRUE, allowed to sign certificates and CRLs (and,
/// so that it can also serve as [`ServerCert::Ca`], to sign TLS handshakes).
fn new_ca(name: &str) -> Result<(CertificateParams, KeyPair)> {
    let mut params = CertificateParams::default();
    params.distinguished_name = rcgen::DistinguishedName::new();
    params.distinguished_name.push(DnType::CommonName, name);
    params.distinguished_name.push(DnType::OrganizationName, "bytebase-signal tests");
    params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    params.serial_number = Some(SerialNumber::from_slice(&[CA_SERIAL]));
    params.key_usages =
        vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign, KeyUsagePurpose::DigitalSignature];
    params.key_identifier_method = KeyIdMethod::Sha256;
    Ok((params, KeyPair::generate()?))
}

/// The parameters of server certificate `which` (not [`ServerCert::Ca`]).
fn server_params(which: ServerCert) -> Result<CertificateParams> {
    let mut params = CertificateParams::default();
    params.distinguished_name = rcgen::DistinguishedName::new();
    params.distinguished_name.push(DnType::CommonName, SERVER_NAME);
    if which != ServerCert::NoSan {
        params.subject_alt_names = vec![
            SanType::DnsName(SERVER_NAME.try_into()?),
            SanType::DnsName("localhost".try_into()?),
            SanType::IpAddress(IpAddr::V4(Ipv4Addr::LOCALHOST)),
        ];
    }
    if which == ServerCert::Expired {
        params.not_before = date_time_ymd(2020, 1, 1);
        params.not_after = date_time_ymd(2021, 1, 1);
    }
    params.serial_number = Some(SerialNumber::from_slice(&[which.serial()]));
    params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
    params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
    params.use_authority_key_identifier_extension = true;
    Ok(params)
}

/// A PEM CRL from `ca` listing the certificates with serial numbers `serials` as revoked.
fn crl(ca: &Issuer<'_, KeyPair>, serials: &[u8], number: u8) -> Result<String> {
    crl_until(ca, serials, number, 2100)
}

/// Like [`crl`], with its next update due in the middle of `year`.
fn crl_until(ca: &Issuer<'_, KeyPair>, serials: &[u8], number: u8, year: i32) -> Result<String> {
    let params = CertificateRevocationListParams {
        this_update: date_time_ymd(2024, 1, 1),
        next_update: date_time_ymd(year, 6, 1),
        crl_number: SerialNumber::from_slice(&[number]),
        issuing_distribution_point: None,
        revoked_certs: serials
            .iter()
            .map(|&serial| RevokedCertParams {
                serial_number: SerialNumber::from_slice(&[serial]),
                revocation_time: date_time_ymd(2024, 1, 1),
                reason_code: Some(RevocationReason::KeyCompromise),
                invalidity_date: None,
            })
            .collect(),
        key_identifier_method: KeyIdMethod::Sha256,
    };
    Ok(params.signed_by(ca)?.pem()?)
}

/// A positive serial number for a client certificate, distinct from the servers' (which are below
/// 0x20) and, in practice, per role: 0x40 followed by the role's first bytes.
fn serial_for(role: &str) -> Vec<u8> {
    let mut serial = vec![0x40];
    serial.extend(role.bytes().take(15));
    serial
}

/// Writes `contents` to `dir/name` with permission bits `mode` (also when the file exists).
fn write(dir: &Path, name: &str, contents: &str, mode: u32) -> Result<PathBuf> {
    use std::os::unix::fs::PermissionsExt;
    let path = dir.join(name);
    let mut file = OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(mode)
        .open(&path)
        .with_context(|| format!("creating {}", path.display()))?;
    file.write_all(contents.as_bytes())?;
    // `mode` at creation is filtered by the umask; set it exactly.
    fs::set_permissions(&path, fs::Permissions::from_mode(mode))?;
    Ok(path)
}
