//! Our client connects where libpq connects and refuses where it refuses: every `sslmode` (and the
//! settings around it) against real servers that accept only TLS, accept both, accept only
//! plaintext or have `ssl = off`, with real certificates made at test time: valid, expired,
//! untrusted, revoked, without a subjectAltName, a CA certificate as the server's own.
//!
//! Each case runs the newest libpq's `psql` (the reference) and `bytebase-signal status` with the
//! same connection string and the same (otherwise empty) environment, and compares the outcomes:
//! both connected, with or without TLS alike, as the same user; or both refused, ours naming the
//! host, the port and the cause in words given here. Two cases are deliberate differences, where
//! rustls is stricter than OpenSSL; there the reference connects and we refuse, saying why.

use std::fmt::Write as _;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;

use anyhow::{bail, Result};
use bytebase_signal_tests::cluster::{hba_encryption, Cluster};
use bytebase_signal_tests::docs_pki::{self, DocsPki};
use bytebase_signal_tests::installs::{pg17_bindir, pg_bindir, NEWEST_MAJOR};
use bytebase_signal_tests::libpq::{quote, Outcome, Psql};
use bytebase_signal_tests::ours::Ours;
use bytebase_signal_tests::pki::{Pki, ServerCert, SERVER_NAME, WRONG_NAME};
use bytebase_signal_tests::tls_cluster::{Hba, CERT_ROLE, PASSWORD, PASSWORD_ROLE};
use bytebase_signal_tests::tls_server::NotPostgres;

/// What a case expects of the two clients.
#[derive(Clone, Copy, Debug)]
enum Expect {
    /// Both connect, with or without TLS alike.
    Connect,
    /// Both refuse; our error contains this.
    Refuse(&'static str),
    /// libpq connects, we refuse with this in the error: a deliberate difference (rustls).
    OnlyLibpq(&'static str),
    /// Both refuse after one attempt (no fallback, no further host); our error contains this.
    RefuseOnce(&'static str),
}

/// What `cluster`'s server says when pg_hba.conf refuses a connection with (`tls`) or without
/// TLS, between `before` and `after`: its words differ between majors (see `hba_encryption`).
/// Leaked, to sit among the tables' literals; a test builds a handful.
fn refusal(cluster: &Cluster, before: &str, tls: bool, after: &str) -> Result<&'static str> {
    let words = format!("{before}{}{after}", hba_encryption(cluster.major()?, tls));
    Ok(Box::leak(words.into_boxed_str()))
}

struct Case {
    name: String,
    conninfo: String,
    env: Vec<(String, String)>,
    expect: Expect,
}

/// The cases of one server, run against both clients; every mismatch is reported at once.
struct Table<'a> {
    cluster: &'a Cluster,
    cases: Vec<Case>,
}

impl<'a> Table<'a> {
    fn new(cluster: &'a Cluster) -> Self {
        Table { cluster, cases: Vec::new() }
    }

    /// `host=db.test hostaddr=127.0.0.1 port=<port> dbname=postgres` plus `extra`.
    fn base(&self, extra: &str) -> String {
        format!(
            "host={SERVER_NAME} hostaddr={} port={} dbname=postgres {extra}",
            self.cluster.host(),
            self.cluster.port()
        )
    }

    fn case(&mut self, name: &str, extra: &str, env: &[(&str, &str)], expect: Expect) -> &mut Self {
        let conninfo = self.base(extra);
        self.raw(name, conninfo, env, expect)
    }

    fn raw(&mut self, name: &str, conninfo: String, env: &[(&str, &str)], expect: Expect) -> &mut Self {
        let env = env.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
        self.cases.push(Case { name: name.to_owned(), conninfo, env, expect });
        self
    }

    fn run(&self) -> Result<()> {
        let psql = Psql::new(pg_bindir(NEWEST_MAJOR)?.join("psql"))?;
        let ours = Ours::new()?;
        let port = self.cluster.port();
        let mut failures = String::new();
        for case in &self.cases {
            let reference = psql.connect(&case.conninfo, case.env.clone())?;
            let got = ours.connect(&case.conninfo, case.env.clone())?;
            let verdict = judge(case.expect, &reference, &got, port);
            if let Err(why) = verdict {
                let _ = writeln!(
                    failures,
                    "\n- {}: {why}\n  conninfo: {}\n  env: {:?}\n  libpq: {reference:?}\n  ours:  {got:?}",
                    case.name, case.conninfo, case.env
                );
            }
        }
        if !failures.is_empty() {
            bail!("our client and libpq disagree:{failures}");
        }
        Ok(())
    }
}

fn judge(expect: Expect, reference: &Outcome, got: &Outcome, port: u16) -> Result<(), String> {
    match (expect, reference, got) {
        (Expect::Connect, Outcome::Connected(r), Outcome::Connected(o)) => {
            if (r.ssl, &r.tls_version, &r.user) != (o.ssl, &o.tls_version, &o.user) {
                return Err("connected differently".into());
            }
            Ok(())
        }
        (Expect::Refuse(words), Outcome::Refused(_), Outcome::Refused(ours)) => {
            refused_saying(ours, words, port)
        }
        (Expect::OnlyLibpq(words), Outcome::Connected(_), Outcome::Refused(ours)) => {
            refused_saying(ours, words, port)
        }
        (Expect::RefuseOnce(words), Outcome::Refused(_), Outcome::Refused(ours)) => {
            refused_saying(ours, words, port)?;
            match ours.matches("connection to server ").count() {
                1 => Ok(()),
                n => Err(format!("{n} attempts, expected 1")),
            }
        }
        _ => Err(format!("expected {expect:?}")),
    }
}

/// Our refusal says `words`, and names the server and port unless the settings themselves were
/// refused before any connection (then there is no server to name).
fn refused_saying(ours: &str, words: &str, port: u16) -> Result<(), String> {
    if !ours.contains(words) {
        return Err(format!("our error does not say {words:?}"));
    }
    let before_connecting = ["may not be used with", "invalid ", "root certificate file"];
    let names_server = (ours.contains("connection to server at \"")
        && (ours.contains(&format!("(127.0.0.1), port {port} failed"))
            || ours.contains(&format!("\"127.0.0.1\", port {port} failed"))))
        || ours.contains("connection to server on socket \"")
            && ours.contains(&format!(".s.PGSQL.{port}\" failed"));
    if !names_server && !before_connecting.iter().any(|w| words.contains(w)) {
        return Err("our error does not name the server and port".into());
    }
    Ok(())
}

fn tls_server(pki: &Pki, cert: ServerCert, hba: Hba) -> Result<Cluster> {
    Cluster::builder().tls(pki, cert).hba(hba).start()
}

fn file(path: &Path) -> String {
    quote(path)
}

#[test]
fn a_tls_only_server_and_each_sslmode() -> Result<()> {
    let pki = Pki::generate()?;
    let cluster = tls_server(&pki, ServerCert::Valid, Hba::HostsslTrust)?;
    let ca = file(pki.ca_cert());
    let other_ca = file(pki.untrusted_ca_cert());
    let bundle = file(pki.ca_bundle());
    let ca_path = pki.ca_cert().to_string_lossy().into_owned();
    let mut t = Table::new(&cluster);
    t.case(
        "verify-full",
        &format!("user=postgres sslmode=verify-full sslrootcert={ca}"),
        &[],
        Expect::Connect,
    )
    .case(
        "verify-full, CA bundle",
        &format!("user=postgres sslmode=verify-full sslrootcert={bundle}"),
        &[],
        Expect::Connect,
    )
    .case(
        "verify-full, wrong host name",
        &format!("user=postgres sslmode=verify-full sslrootcert={ca} host={WRONG_NAME}"),
        &[],
        Expect::Refuse(
            "server certificate is not valid for \"wrong.example\" (it names db.test, localhost, 127.0.0.1)",
        ),
    )
    .case(
        "verify-ca, wrong host name",
        &format!("user=postgres sslmode=verify-ca sslrootcert={ca} host={WRONG_NAME}"),
        &[],
        Expect::Connect,
    )
    .case(
        "verify-full, untrusted root",
        &format!("user=postgres sslmode=verify-full sslrootcert={other_ca}"),
        &[],
        Expect::Refuse("not trusted"),
    )
    .case(
        "verify-ca without a root certificate file",
        "user=postgres sslmode=verify-ca",
        &[],
        Expect::Refuse("root certificate file"),
    )
    .case("require", "user=postgres sslmode=require", &[], Expect::Connect)
    .case("prefer (the default)", "user=postgres", &[], Expect::Connect)
    .case("allow: plaintext refused, then TLS", "user=postgres sslmode=allow", &[], Expect::Connect)
    .case(
        "disable",
        "user=postgres sslmode=disable",
        &[],
        Expect::Refuse(refusal(&cluster, "", false, " (SQLSTATE 28000)")?),
    )
    .case(
        "the environment fills the gaps",
        "user=postgres",
        &[("PGSSLMODE", "verify-full"), ("PGSSLROOTCERT", &ca_path)],
        Expect::Connect,
    )
    .case(
        "PGSSLMODE names the bad value",
        "user=postgres",
        &[("PGSSLMODE", "verify_full")],
        Expect::Refuse("invalid sslmode value: \"verify_full\""),
    )
    .case(
        "TLS 1.2 at most",
        "user=postgres sslmode=require ssl_max_protocol_version=TLSv1.2",
        &[],
        Expect::Connect,
    )
    .case(
        "TLS 1.3 at least",
        "user=postgres sslmode=require ssl_min_protocol_version=TLSv1.3",
        &[],
        Expect::Connect,
    )
    .case(
        "sslrootcert=system (SSL_CERT_FILE)",
        "user=postgres sslrootcert=system",
        &pki.system_trust_env().map(|(k, v)| (k, v.to_str().unwrap())),
        Expect::Connect,
    )
    .case(
        "sslrootcert=system, wrong host name",
        &format!("user=postgres sslrootcert=system host={WRONG_NAME}"),
        &pki.system_trust_env().map(|(k, v)| (k, v.to_str().unwrap())),
        Expect::Refuse("not valid for \"wrong.example\""),
    )
    .case(
        "sslrootcert=system with a weaker sslmode",
        "user=postgres sslrootcert=system sslmode=require",
        &[],
        Expect::Refuse("weak sslmode \"require\" may not be used with sslrootcert=system"),
    )
    .case(
        "direct TLS with a weak sslmode",
        "user=postgres sslnegotiation=direct",
        &[],
        Expect::Refuse("weak sslmode \"prefer\" may not be used with sslnegotiation=direct"),
    )
    .case(
        "channel_binding=require without SCRAM",
        "user=postgres sslmode=require channel_binding=require",
        &[],
        Expect::Refuse("channel binding required"),
    )
    .case(
        "a HOME that is not a directory: prefer still takes TLS",
        "user=postgres",
        &[("HOME", "/dev/null")],
        Expect::Connect,
    )
    .case(
        "an expired CRL",
        &format!("user=postgres sslmode=verify-full sslrootcert={ca} sslcrl={}", file(pki.crl_expired())),
        &[],
        Expect::Refuse("the certificate revocation list (sslcrl) has expired"),
    );
    let socket = cluster.socket_dir().to_string_lossy().into_owned();
    let port = cluster.port();
    t.raw(
        "hostaddr wins over a socket directory in host",
        format!("host={socket} hostaddr=127.0.0.1 port={port} dbname=postgres user=postgres sslmode=require"),
        &[],
        Expect::Connect,
    )
    .raw(
        "allow over a Unix socket never tries TLS after a refusal",
        format!("host={socket} port={port} dbname=postgres user=nobody sslmode=allow"),
        &[],
        Expect::RefuseOnce(refusal(&cluster, "user \"nobody\", database \"postgres\", ", false, "")?),
    );
    t.run()
}

#[test]
fn client_certificates() -> Result<()> {
    let pki = Pki::generate()?;
    let cluster = tls_server(&pki, ServerCert::Valid, Hba::HostsslCert)?;
    let client = pki.client(CERT_ROLE)?;
    let ca = file(pki.ca_cert());
    let (cert, key, open_key) = (file(&client.cert), file(&client.key), file(&client.key_world_readable));
    // libpq refuses a key others can read whoever owns it (unless root owns it, mode 0640).
    let foreign = tempfile::tempdir()?;
    let foreign_key = foreign.path().join("postgres-owned.key");
    std::fs::copy(&client.key, &foreign_key)?;
    std::fs::set_permissions(&foreign_key, std::fs::Permissions::from_mode(0o644))?;
    std::process::Command::new("chown").arg("postgres:").arg(&foreign_key).status()?;
    let mut t = Table::new(&cluster);
    let login = format!("user={CERT_ROLE} sslmode=verify-full sslrootcert={ca} sslcert={cert}");
    t.case("client certificate", &format!("{login} sslkey={key}"), &[], Expect::Connect)
        .case(
            "sslcertmode=require",
            &format!("{login} sslkey={key} sslcertmode=require"),
            &[],
            Expect::Connect,
        )
        .case(
            "a key file others can read",
            &format!("{login} sslkey={open_key}"),
            &[],
            Expect::Refuse("has group or world access"),
        )
        .case(
            "no client certificate",
            &format!("user={CERT_ROLE} sslmode=verify-full sslrootcert={ca}"),
            &[],
            Expect::Refuse("connection requires a valid client certificate"),
        )
        .case(
            "sslcertmode=disable",
            &format!("{login} sslkey={key} sslcertmode=disable"),
            &[],
            Expect::Refuse("connection requires a valid client certificate"),
        )
        .case(
            "a key file of another user that others can read",
            &format!("{login} sslkey={}", file(&foreign_key)),
            &[],
            Expect::Refuse("has group or world access"),
        )
        .case(
            "a certificate of another role",
            &format!("user=postgres sslmode=verify-full sslrootcert={ca} sslcert={cert} sslkey={key}"),
            &[],
            Expect::Refuse("certificate authentication failed for user \"postgres\""),
        );
    t.run()
}

#[test]
fn scram_passwords_the_password_file_and_channel_binding() -> Result<()> {
    let pki = Pki::generate()?;
    let cluster = tls_server(&pki, ServerCert::Valid, Hba::HostsslScram)?;
    let ca = file(pki.ca_cert());
    let dir = tempfile::tempdir()?;
    let passfile = dir.path().join("pgpass");
    std::fs::write(
        &passfile,
        format!("# a comment\n{SERVER_NAME}:{}:*:{PASSWORD_ROLE}:{PASSWORD}\n", cluster.port()),
    )?;
    std::fs::set_permissions(&passfile, std::fs::Permissions::from_mode(0o600))?;
    let open_passfile = dir.path().join("pgpass-open");
    std::fs::copy(&passfile, &open_passfile)?;
    std::fs::set_permissions(&open_passfile, std::fs::Permissions::from_mode(0o644))?;
    let login = format!("user={PASSWORD_ROLE} sslmode=verify-full sslrootcert={ca}");
    let mut t = Table::new(&cluster);
    t.case("password", &format!("{login} password={PASSWORD}"), &[], Expect::Connect)
        .case("PGPASSWORD", &login, &[("PGPASSWORD", PASSWORD)], Expect::Connect)
        .case(
            "channel_binding=require",
            &format!("{login} password={PASSWORD} channel_binding=require"),
            &[],
            Expect::Connect,
        )
        .case("the password file", &format!("{login} passfile={}", file(&passfile)), &[], Expect::Connect)
        .case(
            "a password file others can read is ignored",
            &format!("{login} passfile={}", file(&open_passfile)),
            &[],
            Expect::Refuse("no password supplied"),
        )
        .case("no password", &login, &[], Expect::Refuse("fe_sendauth: no password supplied"))
        .case(
            "a wrong password",
            &format!("{login} password=wrong"),
            &[],
            Expect::Refuse("password authentication failed for user \"scram_user\" (SQLSTATE 28P01)"),
        );
    t.run()?;

    // SCRAM with or without TLS: channel binding needs TLS.
    cluster.set_hba(Hba::Scram)?;
    let mut t = Table::new(&cluster);
    let plain = format!("user={PASSWORD_ROLE} password={PASSWORD} sslmode=disable");
    t.case("plaintext SCRAM", &plain, &[], Expect::Connect).case(
        "channel_binding=require without TLS",
        &format!("{plain} channel_binding=require"),
        &[],
        Expect::Refuse("channel binding required, but SSL not in use"),
    );
    t.run()
}

#[test]
fn servers_that_take_plaintext() -> Result<()> {
    let pki = Pki::generate()?;
    let both = tls_server(&pki, ServerCert::Valid, Hba::Trust)?;
    let mut t = Table::new(&both);
    for mode in ["disable", "allow", "prefer", "require", "verify-full"] {
        let root = if mode == "verify-full" {
            format!(" sslrootcert={}", file(pki.ca_cert()))
        } else {
            String::new()
        };
        t.case(
            &format!("TLS or not: {mode}"),
            &format!("user=postgres sslmode={mode}{root}"),
            &[],
            Expect::Connect,
        );
    }
    // A certificate is required but none is configured: the session over TLS does not count,
    // and prefer must not fall back to plaintext for it.
    t.case(
        "sslcertmode=require without a client certificate",
        "user=postgres sslcertmode=require",
        &[],
        Expect::RefuseOnce("server accepted connection without a valid SSL certificate"),
    );
    t.run()?;

    // A read-only server for read-write: the next host, never a second, plaintext login.
    let read_only = tls_server(&pki, ServerCert::Valid, Hba::Trust)?;
    read_only.admin_sql("ALTER SYSTEM SET default_transaction_read_only = on")?;
    read_only.reload()?;
    let mut t = Table::new(&read_only);
    t.case(
        "a read-only server for target_session_attrs=read-write",
        "user=postgres target_session_attrs=read-write",
        &[],
        Expect::RefuseOnce("session is read-only"),
    );
    t.run()?;

    let plaintext_only = tls_server(&pki, ServerCert::Valid, Hba::HostnosslTrust)?;
    let mut t = Table::new(&plaintext_only);
    for mode in ["disable", "allow", "prefer"] {
        t.case(
            &format!("plaintext only: {mode}"),
            &format!("user=postgres sslmode={mode}"),
            &[],
            Expect::Connect,
        );
    }
    t.case(
        "plaintext only: require",
        "user=postgres sslmode=require",
        &[],
        Expect::Refuse(refusal(&plaintext_only, "", true, " (SQLSTATE 28000)")?),
    );
    t.run()?;

    let ssl_off = Cluster::builder().hba(Hba::Trust).start()?;
    let mut t = Table::new(&ssl_off);
    t.case("ssl=off: prefer", "user=postgres", &[], Expect::Connect)
        .case("ssl=off: allow", "user=postgres sslmode=allow", &[], Expect::Connect)
        .case(
            "ssl=off: require",
            "user=postgres sslmode=require",
            &[],
            Expect::Refuse("server does not support TLS, but sslmode=require requires it"),
        )
        .case(
            "ssl=off: verify-full",
            &format!("user=postgres sslmode=verify-full sslrootcert={}", file(pki.ca_cert())),
            &[],
            Expect::Refuse("server does not support TLS, but sslmode=verify-full requires it"),
        );
    t.run()
}

#[test]
fn certificates_that_must_not_pass() -> Result<()> {
    let pki = Pki::generate()?;
    let ca = file(pki.ca_cert());
    let verify_full = format!("user=postgres sslmode=verify-full sslrootcert={ca}");

    let expired = tls_server(&pki, ServerCert::Expired, Hba::HostsslTrust)?;
    let mut t = Table::new(&expired);
    t.case("expired, verify-full", &verify_full, &[], Expect::Refuse("server certificate has expired")).case(
        "expired, require (nothing verified)",
        "user=postgres sslmode=require",
        &[],
        Expect::Connect,
    );
    t.run()?;

    let untrusted = tls_server(&pki, ServerCert::Untrusted, Hba::HostsslTrust)?;
    let mut t = Table::new(&untrusted);
    t.case("untrusted issuer", &verify_full, &[], Expect::Refuse("not trusted")).case(
        "untrusted issuer in the bundle",
        &format!("user=postgres sslmode=verify-full sslrootcert={}", file(pki.ca_bundle())),
        &[],
        Expect::Connect,
    );
    t.run()?;

    let revoked = tls_server(&pki, ServerCert::Revoked, Hba::HostsslTrust)?;
    let mut t = Table::new(&revoked);
    t.case("revoked, no CRL", &verify_full, &[], Expect::Connect)
        .case(
            "revoked, sslcrl",
            &format!("{verify_full} sslcrl={}", file(pki.crl_revoking_revoked())),
            &[],
            Expect::Refuse("server certificate is revoked"),
        )
        .case(
            "revoked, a CRL that revokes nothing",
            &format!("{verify_full} sslcrl={}", file(pki.crl_revoking_nothing())),
            &[],
            Expect::Connect,
        );
    t.run()
}

#[test]
fn where_rustls_is_stricter_than_openssl() -> Result<()> {
    let pki = Pki::generate()?;
    let ca = file(pki.ca_cert());
    let no_san = tls_server(&pki, ServerCert::NoSan, Hba::HostsslTrust)?;
    let mut t = Table::new(&no_san);
    t.case(
        "no subjectAltName, verify-full (libpq matches the Common Name)",
        &format!("user=postgres sslmode=verify-full sslrootcert={ca}"),
        &[],
        Expect::OnlyLibpq("it has no subjectAltName, and rustls does not fall back to the Common Name"),
    )
    .case(
        "no subjectAltName, verify-ca",
        &format!("user=postgres sslmode=verify-ca sslrootcert={ca}"),
        &[],
        Expect::Connect,
    );
    t.run()?;

    let ca_as_server = tls_server(&pki, ServerCert::Ca, Hba::HostsslTrust)?;
    let mut t = Table::new(&ca_as_server);
    t.case(
        "the CA certificate as the server's, verify-ca",
        &format!("user=postgres sslmode=verify-ca sslrootcert={ca}"),
        &[],
        Expect::OnlyLibpq("rustls refuses a CA certificate used as the server's own certificate"),
    )
    .case(
        "the CA certificate as the server's, require",
        "user=postgres sslmode=require",
        &[],
        Expect::Connect,
    );
    t.run()
}

#[test]
fn direct_tls_negotiation_with_postgresql_17() -> Result<()> {
    let pki = Pki::generate()?;
    let cluster = Cluster::builder()
        .pg_config(pg17_bindir()?.join("pg_config"))
        .tls(&pki, ServerCert::Valid)
        .hba(Hba::HostsslTrust)
        .start()?;
    let verify_full = format!("user=postgres sslmode=verify-full sslrootcert={}", file(pki.ca_cert()));
    let mut t = Table::new(&cluster);
    t.case("direct, verify-full", &format!("{verify_full} sslnegotiation=direct"), &[], Expect::Connect)
        .case("direct, require", "user=postgres sslmode=require sslnegotiation=direct", &[], Expect::Connect)
        .case(
            "postgres negotiation",
            &format!("{verify_full} sslnegotiation=postgres"),
            &[],
            Expect::Connect,
        );
    t.run()?;

    // A server older than 17 does not speak direct TLS (15 explicitly: the default server may
    // be any major, `make test PG=18`).
    let old = Cluster::builder()
        .bindir(pg_bindir(15)?)
        .tls(&pki, ServerCert::Valid)
        .hba(Hba::HostsslTrust)
        .start()?;
    let mut t = Table::new(&old);
    t.case(
        "direct against PostgreSQL 15",
        &format!("{verify_full} sslnegotiation=direct"),
        &[],
        Expect::RefuseOnce("TLS handshake failed"),
    );
    t.run()
}

#[tokio::test(flavor = "multi_thread")]
async fn direct_tls_to_a_server_that_negotiates_no_alpn_is_refused() -> Result<()> {
    // Any TLS service would complete the handshake; ALPN is what says it speaks PostgreSQL.
    let pki = Pki::generate()?;
    let not_postgres = NotPostgres::start(pki.server(ServerCert::Valid)).await?;
    let conninfo = format!(
        "host={SERVER_NAME} hostaddr=127.0.0.1 port={} dbname=postgres user=postgres sslmode=verify-full \
         sslrootcert={} sslnegotiation=direct",
        not_postgres.port(),
        file(pki.ca_cert())
    );
    let (psql, ours) = (Psql::new(pg_bindir(NEWEST_MAJOR)?.join("psql"))?, Ours::new()?);
    let (reference, got) = tokio::task::spawn_blocking(move || {
        Ok::<_, anyhow::Error>((
            psql.connect(&conninfo, [("A", "B")])?,
            ours.connect(&conninfo, [("A", "B")])?,
        ))
    })
    .await??;
    assert!(matches!(reference, Outcome::Refused(ref e) if e.contains("ALPN")), "libpq: {reference:?}");
    let Outcome::Refused(error) = got else { bail!("connected to a server that is not PostgreSQL") };
    assert!(
        error.contains("direct SSL connection was established without ALPN protocol negotiation extension"),
        "{error}"
    );
    Ok(())
}

#[test]
fn several_hosts_name_each_failed_attempt() -> Result<()> {
    let pki = Pki::generate()?;
    let cluster = tls_server(&pki, ServerCert::Valid, Hba::HostsslTrust)?;
    let closed = std::net::TcpListener::bind("127.0.0.1:0")?.local_addr()?.port();
    let ours = Ours::new()?;
    let conninfo = format!(
        "host=127.0.0.1,{SERVER_NAME} hostaddr=127.0.0.1,127.0.0.1 port={closed},{} user=postgres sslmode=disable",
        cluster.port()
    );
    let Outcome::Refused(error) = ours.connect(&conninfo, [("A", "B")])? else {
        bail!("connected in plaintext")
    };
    let first = format!("connection to server at \"127.0.0.1\", port {closed} failed: Connection refused");
    let second = format!(
        "connection to server at \"{SERVER_NAME}\" (127.0.0.1), port {} failed: FATAL:  pg_hba.conf rejects connection",
        cluster.port()
    );
    assert!(error.contains(&first) && error.contains(&second), "{error}");

    // A server that refuses the login ends the attempt, as in libpq: the next host is not tried
    // (its password, or a provider's token, would go to it too).
    let accepting = tls_server(&pki, ServerCert::Valid, Hba::Trust)?;
    let mut t = Table::new(&cluster);
    t.raw(
        "a refused login stops the host list",
        format!(
            "host={SERVER_NAME},{SERVER_NAME} hostaddr=127.0.0.1,127.0.0.1 port={},{} dbname=postgres user=postgres sslmode=disable",
            cluster.port(),
            accepting.port()
        ),
        &[],
        Expect::RefuseOnce(refusal(&cluster, "", false, "")?),
    );
    t.run()
}

/// Certificates made with PostgreSQL's documented recipe (`openssl x509 -req` without an
/// extension file: X.509 version 1). A version 1 client certificate is sent and accepted as psql
/// sends it; a key that is not the certificate's is refused by both, in libpq's words. A version 1
/// server certificate is verified by libpq (`verify-ca`, and `require` with a root file, which
/// libpq treats as `verify-ca`; `verify-full` through its Common Name): rustls cannot, and we
/// refuse saying what to reissue — the documented difference.
#[test]
fn certificates_made_as_postgresqls_manual_makes_them() -> Result<()> {
    let pki = DocsPki::generate()?;
    assert_eq!(docs_pki::version(&pki.server().cert)?, 1, "the manual's recipe gives version 1");
    assert_eq!(docs_pki::version(&pki.client().cert)?, 1);
    let root = file(pki.root());
    let (cert, key, other) = (file(&pki.client().cert), file(&pki.client().key), file(pki.other_key()));

    let cert_auth = Cluster::builder().tls_files(pki.server(), pki.root()).hba(Hba::HostsslCert).start()?;
    let mut t = Table::new(&cert_auth);
    t.case(
        "version 1 client certificate, require",
        &format!("user={CERT_ROLE} sslmode=require sslcert={cert} sslkey={key}"),
        &[],
        Expect::Connect,
    )
    .case(
        "a key that is not the certificate's",
        &format!("user={CERT_ROLE} sslmode=require sslcert={cert} sslkey={other}"),
        &[],
        Expect::Refuse("certificate does not match private key file"),
    );
    t.run()?;

    let trust = Cluster::builder().tls_files(pki.server(), pki.root()).hba(Hba::HostsslTrust).start()?;
    let mut t = Table::new(&trust);
    t.case(
        "version 1 server certificate, require without a root file",
        "user=postgres sslmode=require",
        &[],
        Expect::Connect,
    )
    .case(
        "version 1 server certificate, verify-ca",
        &format!("user=postgres sslmode=verify-ca sslrootcert={root}"),
        &[],
        Expect::OnlyLibpq("not X.509 version 3"),
    )
    .case(
        "version 1 server certificate, require with a root file (verify-ca in libpq)",
        &format!("user=postgres sslmode=require sslrootcert={root}"),
        &[],
        Expect::OnlyLibpq("not X.509 version 3"),
    )
    .case(
        "version 1 server certificate, verify-full (libpq matches the Common Name)",
        &format!("user=postgres sslmode=verify-full sslrootcert={root}"),
        &[],
        Expect::OnlyLibpq("reissue it as version 3"),
    )
    .case(
        "version 1 server certificate, require over TLS 1.2 (its handshake signature checked)",
        "user=postgres sslmode=require ssl_max_protocol_version=TLSv1.2",
        &[],
        Expect::Connect,
    );
    t.run()
}
