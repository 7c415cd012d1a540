//! TLS test servers: a [`Cluster`] with `ssl = on`, a certificate of the test [`Pki`] and one of a
//! few typed `pg_hba.conf` files ([`Hba`]).
//!
//! `Cluster::builder().tls(&pki, ServerCert::Valid).hba(Hba::HostsslTrust).start()` gives a server
//! that accepts only TLS on 127.0.0.1, presenting the `valid` certificate, and verifying client
//! certificates against the test CA (`ssl_ca_file`). Without [`Builder::tls`] the server runs
//! with `ssl = off`. Every [`Hba`] keeps `local all postgres trust`, so the harness reaches the
//! server over the Unix socket ([`Cluster::admin`]) whatever TCP demands, and [`Cluster::set_hba`]
//! switches the rules of a running server. ([`Cluster::connect`] and [`Cluster::psql`] go over
//! TCP without a client certificate or password, `connect` without TLS: they get in only where
//! the `Hba` lets them.)
//!
//! A cluster started with [`Builder::hba`] has two roles besides the superuser: [`PASSWORD_ROLE`]
//! with password [`PASSWORD`] (SCRAM-SHA-256) and [`CERT_ROLE`], for `cert` authentication with
//! `pki.client(CERT_ROLE)`.

use std::path::Path;

use crate::cluster::{Builder, Cluster};
use crate::pki::{CertFiles, Pki, ServerCert, SERVER_NAME};

/// A role that logs in with [`PASSWORD`], stored as a SCRAM-SHA-256 verifier.
pub const PASSWORD_ROLE: &str = "scram_user";

/// [`PASSWORD_ROLE`]'s password.
pub const PASSWORD: &str = "scram-secret-42";

/// A role without a password, for `cert` authentication (CN = the role).
pub const CERT_ROLE: &str = "cert_user";

/// The SQL that creates [`PASSWORD_ROLE`] and [`CERT_ROLE`].
const ROLES_SQL: &str = "SET password_encryption = 'scram-sha-256';
    CREATE ROLE scram_user LOGIN PASSWORD 'scram-secret-42';
    CREATE ROLE cert_user LOGIN";

/// The `pg_hba.conf` files of the TLS tests. Each is a whole file; TCP rules are for 127.0.0.1,
/// the only address the test servers listen on.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Hba {
    /// `hostssl all all 127.0.0.1/32 trust`, `hostnossl all all 127.0.0.1/32 reject`.
    HostsslTrust,
    /// `hostssl all all 127.0.0.1/32 cert`, `hostnossl all all 127.0.0.1/32 reject`: the client
    /// certificate must be signed by the test CA and its CN must be the role.
    HostsslCert,
    /// `hostssl all all 127.0.0.1/32 scram-sha-256`, `hostnossl all all 127.0.0.1/32 reject`.
    HostsslScram,
    /// `host all all 127.0.0.1/32 scram-sha-256`: a password over TLS or plaintext (channel
    /// binding needs TLS, so `channel_binding=require` can only pass over TLS).
    Scram,
    /// `host all all 127.0.0.1/32 trust`: TLS and plaintext both accepted (`prefer`, `allow`).
    Trust,
    /// `hostnossl all all 127.0.0.1/32 trust`, `hostssl all all 127.0.0.1/32 reject`: only
    /// plaintext, on a server that does offer TLS (the `prefer` fallback after a rejection).
    HostnosslTrust,
}

impl Hba {
    /// Every variant, in declaration order.
    pub const ALL: [Hba; 6] =
        [Hba::HostsslTrust, Hba::HostsslCert, Hba::HostsslScram, Hba::Scram, Hba::Trust, Hba::HostnosslTrust];

    /// The TCP lines.
    fn tcp_lines(self) -> &'static str {
        match self {
            Hba::HostsslTrust => {
                "hostssl all all 127.0.0.1/32 trust\nhostnossl all all 127.0.0.1/32 reject\n"
            }
            Hba::HostsslCert => "hostssl all all 127.0.0.1/32 cert\nhostnossl all all 127.0.0.1/32 reject\n",
            Hba::HostsslScram => {
                "hostssl all all 127.0.0.1/32 scram-sha-256\nhostnossl all all 127.0.0.1/32 reject\n"
            }
            Hba::Scram => "host all all 127.0.0.1/32 scram-sha-256\n",
            Hba::Trust => "host all all 127.0.0.1/32 trust\n",
            Hba::HostnosslTrust => {
                "hostnossl all all 127.0.0.1/32 trust\nhostssl all all 127.0.0.1/32 reject\n"
            }
        }
    }

    /// The whole `pg_hba.conf`.
    pub fn contents(self) -> String {
        format!(
            "# bytebase-signal TLS test server: {self:?}\n\
             # The harness's own way in (Cluster::admin).\n\
             local all postgres trust\n{}",
            self.tcp_lines()
        )
    }
}

impl Builder {
    /// Turns TLS on with server certificate `which` of `pki` (`ssl_cert_file`, `ssl_key_file`),
    /// and the test CA as `ssl_ca_file`, which verifies client certificates. The files are copied
    /// into the data directory, owned by the server's OS user, mode 0600.
    pub fn tls(self, pki: &Pki, which: ServerCert) -> Self {
        self.tls_files(pki.server(which), pki.ca_cert())
    }

    /// Turns TLS on with the server certificate and key `server` and the CA certificate `ca`
    /// (`ssl_ca_file`), copied into the data directory like [`Builder::tls`]'s.
    pub fn tls_files(self, server: &CertFiles, ca: &Path) -> Self {
        self.setting("ssl", "on")
            .data_file_setting("ssl_cert_file", &server.cert, "server.crt", 0o600)
            .data_file_setting("ssl_key_file", &server.key, "server.key", 0o600)
            .data_file_setting("ssl_ca_file", ca, "root.crt", 0o600)
    }

    /// Uses `pg_hba.conf` `hba`, with `password_encryption = scram-sha-256`, and creates
    /// [`PASSWORD_ROLE`] and [`CERT_ROLE`] once the server is up.
    pub fn hba(mut self, hba: Hba) -> Self {
        if !self.init_sql.iter().any(|sql| sql == ROLES_SQL) {
            self.init_sql.push(ROLES_SQL.to_owned());
        }
        self.setting("password_encryption", "'scram-sha-256'").pg_hba(hba.contents())
    }
}

impl Cluster {
    /// Replaces the running server's `pg_hba.conf` with `hba` and waits until it is in force.
    /// (The roles of [`Builder::hba`] exist only if the cluster was started with it.)
    pub fn set_hba(&self, hba: Hba) -> anyhow::Result<()> {
        self.set_pg_hba(&hba.contents())
    }

    /// A libpq conninfo that reaches this server at 127.0.0.1 while naming the host
    /// [`SERVER_NAME`] (`host=db.test hostaddr=127.0.0.1`), as `user`, database `postgres`; append
    /// the TLS settings of the case (`sslmode=verify-full sslrootcert=...`).
    pub fn tls_conninfo(&self, user: &str) -> String {
        self.tls_conninfo_for(SERVER_NAME, user)
    }

    /// Like [`Cluster::tls_conninfo`], naming the host `host` (which certificate verification
    /// checks) instead.
    pub fn tls_conninfo_for(&self, host: &str, user: &str) -> String {
        format!("host={host} hostaddr={} port={} user={user} dbname=postgres", self.host(), self.port())
    }
}
