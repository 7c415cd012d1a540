//! Certificates made the way PostgreSQL's documentation makes them ("Creating Certificates" in
//! its server TLS chapter), with the `openssl` command line, not a library: a root made with
//! `-extensions v3_ca`, and server and client certificates signed with
//! `openssl x509 -req -in X.csr -CA root.crt -CAkey root.key -CAcreateserial`, with no extension
//! file, which OpenSSL 3 writes as X.509 version 1 (subject CN only, no subjectAltName). This is
//! what users who follow the manual have; [`crate::pki`] makes version 3 certificates for the
//! rest of the TLS tests.

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{ensure, Context, Result};
use tempfile::TempDir;

use crate::pki::{CertFiles, SERVER_NAME};
use crate::tls_cluster::CERT_ROLE;

/// The root's subject CN.
pub const ROOT_NAME: &str = "root.test";

/// The files, in a temporary directory removed with the value.
pub struct DocsPki {
    dir: TempDir,
    root: PathBuf,
    server: CertFiles,
    client: CertFiles,
    other_key: PathBuf,
}

impl DocsPki {
    /// Runs the documented commands: the root, a server certificate for [`SERVER_NAME`] and a
    /// client certificate for [`CERT_ROLE`], and a key that belongs to neither.
    pub fn generate() -> Result<DocsPki> {
        let dir = tempfile::Builder::new().prefix("bytebase-signal-docs-pki-").tempdir()?;
        let d = dir.path();
        openssl(
            d,
            &["req", "-new", "-nodes", "-text", "-out", "root.csr", "-keyout", "root.key", "-subj"],
            &format!("/CN={ROOT_NAME}"),
        )?;
        // The manual names the distribution's openssl.cnf for the v3_ca section; Debian's is here.
        openssl(
            d,
            &[
                "x509",
                "-req",
                "-in",
                "root.csr",
                "-text",
                "-days",
                "3650",
                "-extfile",
                "/etc/ssl/openssl.cnf",
                "-extensions",
                "v3_ca",
                "-signkey",
                "root.key",
                "-out",
                "root.crt",
            ],
            "",
        )?;
        let server = signed(d, "server", SERVER_NAME)?;
        let client = signed(d, "client", CERT_ROLE)?;
        openssl(d, &["genpkey", "-algorithm", "RSA", "-out", "other.key"], "")?;
        for key in ["root.key", "server.key", "client.key", "other.key"] {
            // chmod og-rwx, as the manual says: libpq refuses a key others can read.
            fs::set_permissions(d.join(key), fs::Permissions::from_mode(0o600))?;
        }
        Ok(DocsPki { root: d.join("root.crt"), server, client, other_key: d.join("other.key"), dir })
    }

    /// The directory holding every file.
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// The root certificate (version 3, a CA): the server's `ssl_ca_file` and the clients'
    /// `sslrootcert`.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// The server's certificate (version 1, CN = [`SERVER_NAME`]) and key.
    pub fn server(&self) -> &CertFiles {
        &self.server
    }

    /// The client's certificate (version 1, CN = [`CERT_ROLE`]) and key.
    pub fn client(&self) -> &CertFiles {
        &self.client
    }

    /// A private key that matches neither certificate.
    pub fn other_key(&self) -> &Path {
        &self.other_key
    }
}

/// `name.key`, `name.csr` and `name.crt` for subject CN `cn`, signed by the root as the manual
/// signs server and client certificates.
fn signed(dir: &Path, name: &str, cn: &str) -> Result<CertFiles> {
    let (csr, key, crt) = (format!("{name}.csr"), format!("{name}.key"), format!("{name}.crt"));
    openssl(
        dir,
        &["req", "-new", "-nodes", "-text", "-out", &csr, "-keyout", &key, "-subj"],
        &format!("/CN={cn}"),
    )?;
    openssl(
        dir,
        &[
            "x509",
            "-req",
            "-in",
            &csr,
            "-text",
            "-days",
            "365",
            "-CA",
            "root.crt",
            "-CAkey",
            "root.key",
            "-CAcreateserial",
            "-out",
            &crt,
        ],
        "",
    )?;
    Ok(CertFiles { cert: dir.join(crt), key: dir.join(key) })
}

/// Runs `openssl args... [last]` in `dir` (`last` appended when not empty).
fn openssl(dir: &Path, args: &[&str], last: &str) -> Result<()> {
    let mut cmd = Command::new("openssl");
    cmd.current_dir(dir).args(args);
    if !last.is_empty() {
        cmd.arg(last);
    }
    let out = cmd.output().context("running openssl (Debian's openssl package)")?;
    ensure!(out.status.success(), "openssl {args:?} {last}: {}", String::from_utf8_lossy(&out.stderr));
    Ok(())
}

/// The X.509 version `openssl x509 -text` reports for `cert` (1 or 3).
pub fn version(cert: &Path) -> Result<u32> {
    let out = Command::new("openssl").args(["x509", "-noout", "-text", "-in"]).arg(cert).output()?;
    ensure!(out.status.success(), "openssl x509 -text {}", cert.display());
    let text = String::from_utf8(out.stdout)?;
    let line = text.lines().find(|l| l.trim_start().starts_with("Version:")).context("no Version line")?;
    let number = line.trim().trim_start_matches("Version:").trim().split(' ').next().unwrap_or_default();
    number.parse().with_context(|| format!("version in {line:?}"))
}
