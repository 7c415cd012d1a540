//! The TLS part of the harness, checked against real servers with libpq itself (psql 15 and 17):
//! the certificates of `pki`, the servers and `pg_hba.conf` files of `tls_cluster`, and the
//! reference client of `libpq` do what the TLS tests of our client will rely on.
//!
//! Each case runs every psql and prints one line per psql (`cargo test -- --nocapture` shows
//! them): what libpq did is the reference our client is compared with.

use std::os::unix::fs::MetadataExt;
use std::path::Path;

use anyhow::{ensure, Context, Result};
use bytebase_signal_tests::cluster::{hba_encryption, Cluster, SUPERUSER};
use bytebase_signal_tests::installs::{pg15_bindir, pg17_bindir};
use bytebase_signal_tests::libpq::{quote, Outcome, Psql, Session};
use bytebase_signal_tests::pki::{Pki, ServerCert, CA_NAME, SERVER_NAME, WRONG_NAME};
use bytebase_signal_tests::tls_cluster::{Hba, CERT_ROLE, PASSWORD, PASSWORD_ROLE};

/// psql with libpq 15 (Debian's) and with libpq 17.
fn psqls() -> Result<Vec<Psql>> {
    Ok(vec![Psql::new(pg15_bindir().join("psql"))?, Psql::new(pg17_bindir()?.join("psql"))?])
}

/// The libpq 17 psql alone.
fn psql17() -> Result<Psql> {
    Psql::new(pg17_bindir()?.join("psql"))
}

/// Runs `psql` on `conninfo` with `env`, and prints the outcome under `case`.
fn attempt(psql: &Psql, case: &str, conninfo: &str, env: &[(&str, &str)]) -> Result<Outcome> {
    let outcome = psql.connect(conninfo, env.iter().copied())?;
    let major = psql.major()?;
    match &outcome {
        Outcome::Connected(s) => eprintln!(
            "[tls-case] {case} | psql {major} | connected ssl={} {} {} user={} server={}",
            s.ssl,
            s.tls_version.as_deref().unwrap_or("-"),
            s.cipher.as_deref().unwrap_or("-"),
            s.user,
            s.server_version_num
        ),
        Outcome::Refused(e) => {
            eprintln!("[tls-case] {case} | psql {major} | refused: {}", e.replace('\n', " / "))
        }
    }
    Ok(outcome)
}

/// Like [`attempt`], requiring a TLS session as `user`.
fn connects_with_tls(
    psql: &Psql,
    case: &str,
    conninfo: &str,
    env: &[(&str, &str)],
    user: &str,
) -> Result<Session> {
    let session = attempt(psql, case, conninfo, env)?.connected().with_context(|| case.to_owned())?;
    ensure!(session.ssl, "{case}: psql connected without TLS: {session:?}");
    ensure!(session.tls_version.as_deref().is_some_and(|v| v.starts_with("TLSv1.")), "{case}: {session:?}");
    ensure!(session.user == user, "{case}: logged in as {} instead of {user}", session.user);
    Ok(session)
}

/// Like [`attempt`], requiring a refusal whose text contains `expected`; returns the text.
fn refused_with(
    psql: &Psql,
    case: &str,
    conninfo: &str,
    env: &[(&str, &str)],
    expected: &str,
) -> Result<String> {
    let error = attempt(psql, case, conninfo, env)?.refused().with_context(|| case.to_owned())?;
    ensure!(error.contains(expected), "{case}: expected {expected:?} in psql's error:\n{error}");
    Ok(error)
}

/// `sslmode=verify-full`, trusting the test CA, naming the host `db.test`.
fn verify_full(cluster: &Cluster, pki: &Pki, user: &str) -> String {
    format!("{} sslmode=verify-full sslrootcert={}", cluster.tls_conninfo(user), quote(pki.ca_cert()))
}

fn tls_cluster(pki: &Pki, cert: ServerCert, hba: Hba) -> Result<Cluster> {
    Cluster::builder().tls(pki, cert).hba(hba).start()
}

#[test]
fn pki_files_are_pem_with_private_keys_kept_private() -> Result<()> {
    let pki = Pki::generate()?;
    let mode = |p: &Path| -> Result<u32> { Ok(std::fs::metadata(p)?.mode() & 0o777) };
    let pem = |p: &Path| std::fs::read_to_string(p);
    assert!(pem(pki.ca_cert())?.starts_with("-----BEGIN CERTIFICATE-----"));
    assert_eq!(pem(pki.ca_bundle())?.matches("-----BEGIN CERTIFICATE-----").count(), 2);
    for which in ServerCert::ALL {
        let files = pki.server(which);
        assert!(pem(&files.cert)?.starts_with("-----BEGIN CERTIFICATE-----"), "{which:?}");
        assert!(pem(&files.key)?.starts_with("-----BEGIN PRIVATE KEY-----"), "{which:?}");
        assert_eq!(mode(&files.key)?, 0o600, "{which:?} key");
    }
    assert_eq!(pki.server(ServerCert::Ca).cert, pki.ca_cert());
    for crl in [pki.crl_revoking_revoked(), pki.crl_revoking_nothing()] {
        assert!(pem(crl)?.starts_with("-----BEGIN X509 CRL-----"));
    }
    let client = pki.client("alice")?;
    assert_eq!(mode(&client.key)?, 0o600);
    assert_eq!(mode(&client.key_world_readable)?, 0o644);
    assert_eq!(pem(&client.key)?, pem(&client.key_world_readable)?);
    assert_eq!(std::fs::metadata(&client.key)?.uid(), std::fs::metadata(pki.dir())?.uid());
    assert!(pki.client("../etc").is_err());
    Ok(())
}

#[tokio::test(flavor = "multi_thread")]
async fn a_tls_only_server_keeps_its_key_private_and_lets_the_harness_in_over_the_socket() -> Result<()> {
    let pki = Pki::generate()?;
    let cluster = tls_cluster(&pki, ServerCert::Valid, Hba::HostsslCert)?;
    for name in ["server.crt", "server.key", "root.crt"] {
        let meta = std::fs::metadata(cluster.data_dir().join(name))?;
        assert_eq!(meta.mode() & 0o777, 0o600, "{name}");
        assert_eq!(meta.uid(), std::fs::metadata(cluster.data_dir())?.uid(), "{name} owner");
    }
    // TCP without TLS is rejected; the socket is the harness's way in.
    assert!(cluster.connect("postgres").await.is_err(), "NoTls over TCP got into a hostssl-only server");
    let admin = cluster.admin().await?;
    let row = admin.query_one("SELECT current_user::text, current_setting('ssl')", &[]).await?;
    assert_eq!((row.get::<_, String>(0).as_str(), row.get::<_, String>(1).as_str()), (SUPERUSER, "on"));
    let roles: i64 = admin
        .query_one("SELECT count(*) FROM pg_roles WHERE rolname IN ($1, $2)", &[&PASSWORD_ROLE, &CERT_ROLE])
        .await?
        .get(0);
    assert_eq!(roles, 2);
    assert_eq!(cluster.admin_sql("SHOW ssl_ca_file")?, "root.crt");
    Ok(())
}

#[test]
fn hostssl_trust_accepts_verify_full_and_rejects_plaintext() -> Result<()> {
    let pki = Pki::generate()?;
    let cluster = tls_cluster(&pki, ServerCert::Valid, Hba::HostsslTrust)?;
    for psql in psqls()? {
        connects_with_tls(
            &psql,
            "valid cert, verify-full host=db.test",
            &verify_full(&cluster, &pki, SUPERUSER),
            &[],
            SUPERUSER,
        )?;
        for host in ["localhost", "127.0.0.1"] {
            let conninfo = format!(
                "{} sslmode=verify-full sslrootcert={}",
                cluster.tls_conninfo_for(host, SUPERUSER),
                quote(pki.ca_cert())
            );
            connects_with_tls(
                &psql,
                &format!("valid cert, verify-full host={host}"),
                &conninfo,
                &[],
                SUPERUSER,
            )?;
        }
        let bundle = format!(
            "{} sslmode=verify-full sslrootcert={}",
            cluster.tls_conninfo(SUPERUSER),
            quote(pki.ca_bundle())
        );
        connects_with_tls(&psql, "valid cert, verify-full, CA bundle", &bundle, &[], SUPERUSER)?;
        let disable = format!("{} sslmode=disable", cluster.tls_conninfo(SUPERUSER));
        refused_with(
            &psql,
            "hostssl-only server, sslmode=disable",
            &disable,
            &[],
            &format!(
                r#"pg_hba.conf rejects connection for host "127.0.0.1", user "postgres", database "postgres", {}"#,
                hba_encryption(cluster.major()?, false)
            ),
        )?;
        // The empty HOME: no ~/.postgresql/root.crt of the machine can make verify-ca pass.
        let no_root = format!("{} sslmode=verify-ca", cluster.tls_conninfo(SUPERUSER));
        let expected = format!(
            "root certificate file \"{}/.postgresql/root.crt\" does not exist",
            psql.home().display()
        );
        refused_with(&psql, "verify-ca without sslrootcert (empty HOME)", &no_root, &[], &expected)?;
        // Without verification any certificate of any CA is fine.
        let require = format!("{} sslmode=require", cluster.tls_conninfo(SUPERUSER));
        connects_with_tls(&psql, "valid cert, sslmode=require", &require, &[], SUPERUSER)?;
    }
    Ok(())
}

#[test]
fn cert_authentication_takes_the_role_from_the_client_certificate() -> Result<()> {
    let pki = Pki::generate()?;
    let cluster = tls_cluster(&pki, ServerCert::Valid, Hba::HostsslCert)?;
    let client = pki.client(CERT_ROLE)?;
    let with_cert = |user: &str, key: &Path| {
        format!("{} sslcert={} sslkey={}", verify_full(&cluster, &pki, user), quote(&client.cert), quote(key))
    };
    for psql in psqls()? {
        connects_with_tls(
            &psql,
            "cert auth, client cert CN=cert_user",
            &with_cert(CERT_ROLE, &client.key),
            &[],
            CERT_ROLE,
        )?;
        refused_with(
            &psql,
            "cert auth, no client cert",
            &verify_full(&cluster, &pki, CERT_ROLE),
            &[],
            "connection requires a valid client certificate",
        )?;
        refused_with(
            &psql,
            "cert auth, cert CN=cert_user, user=postgres",
            &with_cert(SUPERUSER, &client.key),
            &[],
            r#"certificate authentication failed for user "postgres""#,
        )?;
        let expected = format!(
            "private key file \"{}\" has group or world access; file must have permissions u=rw (0600) or less \
             if owned by the current user, or permissions u=rw,g=r (0640) or less if owned by root",
            client.key_world_readable.display()
        );
        refused_with(
            &psql,
            "cert auth, key mode 0644",
            &with_cert(CERT_ROLE, &client.key_world_readable),
            &[],
            &expected,
        )?;
    }
    Ok(())
}

#[test]
fn scram_over_tls_with_and_without_channel_binding() -> Result<()> {
    let pki = Pki::generate()?;
    let cluster = tls_cluster(&pki, ServerCert::Valid, Hba::HostsslScram)?;
    let password = [("PGPASSWORD", PASSWORD)];
    let tls = verify_full(&cluster, &pki, PASSWORD_ROLE);
    for psql in psqls()? {
        connects_with_tls(&psql, "scram over TLS", &tls, &password, PASSWORD_ROLE)?;
        let bound = format!("{tls} channel_binding=require");
        connects_with_tls(
            &psql,
            "scram over TLS, channel_binding=require",
            &bound,
            &password,
            PASSWORD_ROLE,
        )?;
        let in_conninfo = format!("{tls} password={}", quote(PASSWORD));
        connects_with_tls(&psql, "scram over TLS, password in conninfo", &in_conninfo, &[], PASSWORD_ROLE)?;
        refused_with(&psql, "scram over TLS, no password", &tls, &[], "fe_sendauth: no password supplied")?;
        refused_with(
            &psql,
            "scram over TLS, wrong password",
            &tls,
            &[("PGPASSWORD", "wrong")],
            r#"password authentication failed for user "scram_user""#,
        )?;
        let disable = format!("{} sslmode=disable", cluster.tls_conninfo(PASSWORD_ROLE));
        let no_tls = hba_encryption(cluster.major()?, false);
        refused_with(&psql, "hostssl scram server, sslmode=disable", &disable, &password, no_tls)?;
    }
    Ok(())
}

#[test]
fn channel_binding_require_needs_tls() -> Result<()> {
    let pki = Pki::generate()?;
    let cluster = tls_cluster(&pki, ServerCert::Valid, Hba::Scram)?;
    let password = [("PGPASSWORD", PASSWORD)];
    let plain = format!("{} sslmode=disable", cluster.tls_conninfo(PASSWORD_ROLE));
    for psql in psqls()? {
        let session = attempt(&psql, "scram without TLS", &plain, &password)?.connected()?;
        assert!(!session.ssl);
        let bound = format!("{plain} channel_binding=require");
        refused_with(
            &psql,
            "scram without TLS, channel_binding=require",
            &bound,
            &password,
            "channel binding",
        )?;
        let tls = format!("{} channel_binding=require", verify_full(&cluster, &pki, PASSWORD_ROLE));
        connects_with_tls(
            &psql,
            "scram (host) over TLS, channel_binding=require",
            &tls,
            &password,
            PASSWORD_ROLE,
        )?;
    }
    Ok(())
}

#[test]
fn plaintext_allowed_prefer_takes_tls_and_allow_does_not() -> Result<()> {
    let pki = Pki::generate()?;
    let cluster = tls_cluster(&pki, ServerCert::Valid, Hba::Trust)?;
    let mode = |m: &str| format!("{} sslmode={m}", cluster.tls_conninfo(SUPERUSER));
    for psql in psqls()? {
        for (sslmode, tls) in [("disable", false), ("allow", false), ("prefer", true), ("require", true)] {
            let session = attempt(&psql, &format!("host trust, sslmode={sslmode}"), &mode(sslmode), &[])?
                .connected()?;
            assert_eq!(session.ssl, tls, "sslmode={sslmode}");
        }
        connects_with_tls(
            &psql,
            "host trust, verify-full",
            &verify_full(&cluster, &pki, SUPERUSER),
            &[],
            SUPERUSER,
        )?;
    }
    Ok(())
}

#[test]
fn hostnossl_only_prefer_falls_back_and_require_is_refused() -> Result<()> {
    let pki = Pki::generate()?;
    let cluster = tls_cluster(&pki, ServerCert::Valid, Hba::HostnosslTrust)?;
    let mode = |m: &str| format!("{} sslmode={m}", cluster.tls_conninfo(SUPERUSER));
    for psql in psqls()? {
        for sslmode in ["disable", "allow", "prefer"] {
            let session = attempt(&psql, &format!("hostnossl only, sslmode={sslmode}"), &mode(sslmode), &[])?
                .connected()?;
            assert!(!session.ssl, "sslmode={sslmode}");
        }
        refused_with(
            &psql,
            "hostnossl only, verify-full",
            &verify_full(&cluster, &pki, SUPERUSER),
            &[],
            &format!(
                r#"pg_hba.conf rejects connection for host "127.0.0.1", user "postgres", database "postgres", {}"#,
                hba_encryption(cluster.major()?, true)
            ),
        )?;
        refused_with(
            &psql,
            "hostnossl only, sslmode=require",
            &mode("require"),
            &[],
            &format!(
                r#"pg_hba.conf rejects connection for host "127.0.0.1", user "postgres", database "postgres", {}"#,
                hba_encryption(cluster.major()?, true)
            ),
        )?;
    }
    Ok(())
}

#[test]
fn a_server_with_ssl_off_refuses_sslmode_require() -> Result<()> {
    let cluster = Cluster::builder().hba(Hba::Trust).start()?;
    assert_eq!(cluster.admin_sql("SHOW ssl")?, "off");
    let mode = |m: &str| format!("{} sslmode={m}", cluster.tls_conninfo(SUPERUSER));
    for psql in psqls()? {
        let session = attempt(&psql, "ssl=off server, sslmode=prefer", &mode("prefer"), &[])?.connected()?;
        assert!(!session.ssl);
        refused_with(
            &psql,
            "ssl=off server, sslmode=require",
            &mode("require"),
            &[],
            "server does not support SSL, but SSL was required",
        )?;
    }
    Ok(())
}

#[test]
fn verify_full_refuses_expired_untrusted_and_wrongly_named_certificates() -> Result<()> {
    let pki = Pki::generate()?;
    let expired = tls_cluster(&pki, ServerCert::Expired, Hba::HostsslTrust)?;
    let untrusted = tls_cluster(&pki, ServerCert::Untrusted, Hba::HostsslTrust)?;
    let valid = tls_cluster(&pki, ServerCert::Valid, Hba::HostsslTrust)?;
    for psql in psqls()? {
        let verify_failed = "certificate verify failed";
        refused_with(
            &psql,
            "expired cert, verify-full",
            &verify_full(&expired, &pki, SUPERUSER),
            &[],
            verify_failed,
        )?;
        refused_with(
            &psql,
            "untrusted cert, verify-full",
            &verify_full(&untrusted, &pki, SUPERUSER),
            &[],
            verify_failed,
        )?;
        let bundle = format!(
            "{} sslmode=verify-full sslrootcert={}",
            untrusted.tls_conninfo(SUPERUSER),
            quote(pki.ca_bundle())
        );
        connects_with_tls(
            &psql,
            "untrusted cert, verify-full, CA bundle with its CA",
            &bundle,
            &[],
            SUPERUSER,
        )?;
        let require = format!("{} sslmode=require", expired.tls_conninfo(SUPERUSER));
        connects_with_tls(&psql, "expired cert, sslmode=require", &require, &[], SUPERUSER)?;

        let wrong = |sslmode: &str| {
            format!(
                "{} sslmode={sslmode} sslrootcert={}",
                valid.tls_conninfo_for(WRONG_NAME, SUPERUSER),
                quote(pki.ca_cert())
            )
        };
        refused_with(
            &psql,
            "valid cert, verify-full host=wrong.example",
            &wrong("verify-full"),
            &[],
            &format!(
                r#"server certificate for "{SERVER_NAME}" (and 2 other names) does not match host name "{WRONG_NAME}""#
            ),
        )?;
        connects_with_tls(
            &psql,
            "valid cert, verify-ca host=wrong.example",
            &wrong("verify-ca"),
            &[],
            SUPERUSER,
        )?;
    }
    Ok(())
}

#[test]
fn a_crl_refuses_the_revoked_certificate_only() -> Result<()> {
    let pki = Pki::generate()?;
    let revoked = tls_cluster(&pki, ServerCert::Revoked, Hba::HostsslTrust)?;
    let valid = tls_cluster(&pki, ServerCert::Valid, Hba::HostsslTrust)?;
    let with_crl = |cluster: &Cluster, crl: &Path| {
        format!("{} sslcrl={}", verify_full(cluster, &pki, SUPERUSER), quote(crl))
    };
    for psql in psqls()? {
        connects_with_tls(
            &psql,
            "revoked cert, verify-full, no CRL",
            &verify_full(&revoked, &pki, SUPERUSER),
            &[],
            SUPERUSER,
        )?;
        refused_with(
            &psql,
            "revoked cert, verify-full, CRL revoking it",
            &with_crl(&revoked, pki.crl_revoking_revoked()),
            &[],
            "certificate verify failed",
        )?;
        connects_with_tls(
            &psql,
            "revoked cert, verify-full, CRL revoking nothing",
            &with_crl(&revoked, pki.crl_revoking_nothing()),
            &[],
            SUPERUSER,
        )?;
        connects_with_tls(
            &psql,
            "valid cert, verify-full, CRL revoking the other",
            &with_crl(&valid, pki.crl_revoking_revoked()),
            &[],
            SUPERUSER,
        )?;
    }
    Ok(())
}

#[test]
fn libpq_matches_the_common_name_of_a_certificate_without_san() -> Result<()> {
    let pki = Pki::generate()?;
    let cluster = tls_cluster(&pki, ServerCert::NoSan, Hba::HostsslTrust)?;
    for psql in psqls()? {
        // Recorded behaviour: OpenSSL-based libpq falls back to the CN when there is no
        // subjectAltName. rustls does not; our client is expected to refuse here.
        connects_with_tls(
            &psql,
            "no-SAN cert (CN=db.test), verify-full",
            &verify_full(&cluster, &pki, SUPERUSER),
            &[],
            SUPERUSER,
        )?;
        let wrong = format!(
            "{} sslmode=verify-full sslrootcert={}",
            cluster.tls_conninfo_for(WRONG_NAME, SUPERUSER),
            quote(pki.ca_cert())
        );
        refused_with(
            &psql,
            "no-SAN cert (CN=db.test), verify-full host=wrong.example",
            &wrong,
            &[],
            &format!(r#"server certificate for "{SERVER_NAME}" does not match host name "{WRONG_NAME}""#),
        )?;
    }
    Ok(())
}

#[test]
fn the_ca_certificate_as_the_server_certificate() -> Result<()> {
    let pki = Pki::generate()?;
    let cluster = tls_cluster(&pki, ServerCert::Ca, Hba::HostsslTrust)?;
    for psql in psqls()? {
        // Recorded behaviour: OpenSSL accepts a trusted self-signed CA certificate as the whole
        // chain; only the name check (the CA's CN, no subjectAltName) can fail.
        let ca = format!(
            "{} sslmode=verify-ca sslrootcert={}",
            cluster.tls_conninfo(SUPERUSER),
            quote(pki.ca_cert())
        );
        connects_with_tls(&psql, "CA cert as server cert, verify-ca", &ca, &[], SUPERUSER)?;
        refused_with(
            &psql,
            "CA cert as server cert, verify-full host=db.test",
            &verify_full(&cluster, &pki, SUPERUSER),
            &[],
            &format!(r#"server certificate for "{CA_NAME}" does not match host name "{SERVER_NAME}""#),
        )?;
    }
    Ok(())
}

#[test]
fn sslrootcert_system_uses_ssl_cert_file_in_libpq_17() -> Result<()> {
    let pki = Pki::generate()?;
    let cluster = tls_cluster(&pki, ServerCert::Valid, Hba::HostsslTrust)?;
    let system = format!("{} sslrootcert=system", cluster.tls_conninfo(SUPERUSER));
    let [(name, ca)] = pki.system_trust_env();
    let env = [(name, ca.to_str().expect("temporary paths are UTF-8"))];
    let psql17 = psql17()?;
    let session =
        connects_with_tls(&psql17, "sslrootcert=system, SSL_CERT_FILE=ca", &system, &env, SUPERUSER)?;
    assert!(session.ssl);
    // Without SSL_CERT_FILE the machine's store is used, which does not hold the test CA.
    refused_with(&psql17, "sslrootcert=system, machine store", &system, &[], "certificate verify failed")?;
    // sslrootcert=system implies verify-full, and refuses anything weaker.
    let wrong = format!("{} sslrootcert=system", cluster.tls_conninfo_for(WRONG_NAME, SUPERUSER));
    refused_with(&psql17, "sslrootcert=system host=wrong.example", &wrong, &env, "does not match host name")?;
    let weak = format!("{system} sslmode=verify-ca");
    refused_with(&psql17, "sslrootcert=system sslmode=verify-ca", &weak, &env, "weak sslmode \"verify-ca\"")?;
    // libpq 15 does not know `system`: it is a file name there, which does not exist. With the
    // default sslmode (prefer) libpq 15 then verifies nothing (it connects under a wrong name
    // too); asked to verify, it refuses.
    let psql15 = Psql::new(pg15_bindir().join("psql"))?;
    connects_with_tls(&psql15, "sslrootcert=system, SSL_CERT_FILE=ca", &system, &env, SUPERUSER)?;
    connects_with_tls(&psql15, "sslrootcert=system host=wrong.example", &wrong, &env, SUPERUSER)?;
    let full = format!("{system} sslmode=verify-full");
    refused_with(
        &psql15,
        "sslrootcert=system sslmode=verify-full",
        &full,
        &env,
        r#"root certificate file "system" does not exist"#,
    )?;
    Ok(())
}

#[test]
fn direct_tls_negotiation_with_a_postgresql_17_server() -> Result<()> {
    let pki = Pki::generate()?;
    let pg17 = Cluster::builder()
        .pg_config(pg17_bindir()?.join("pg_config"))
        .tls(&pki, ServerCert::Valid)
        .hba(Hba::HostsslTrust)
        .start()?;
    // 15 explicitly: the default server may be any major (`make test PG=18`).
    let pg15 = Cluster::builder()
        .bindir(pg15_bindir())
        .tls(&pki, ServerCert::Valid)
        .hba(Hba::HostsslTrust)
        .start()?;
    let direct =
        |cluster: &Cluster| format!("{} sslnegotiation=direct", verify_full(cluster, &pki, SUPERUSER));
    let psql17 = psql17()?;
    let session =
        connects_with_tls(&psql17, "PG 17 server, sslnegotiation=direct", &direct(&pg17), &[], SUPERUSER)?;
    assert!((170000..180000).contains(&session.server_version_num), "{session:?}");
    let session = connects_with_tls(
        &psql17,
        "PG 17 server, sslnegotiation=postgres",
        &verify_full(&pg17, &pki, SUPERUSER),
        &[],
        SUPERUSER,
    )?;
    assert!((170000..180000).contains(&session.server_version_num), "{session:?}");
    let weak = format!("{} sslnegotiation=direct sslmode=prefer", pg17.tls_conninfo(SUPERUSER));
    refused_with(
        &psql17,
        "PG 17 server, sslnegotiation=direct sslmode=prefer",
        &weak,
        &[],
        "weak sslmode \"prefer\"",
    )?;
    // A PostgreSQL 15 server does not speak TLS first.
    let error = attempt(&psql17, "PG 15 server, sslnegotiation=direct", &direct(&pg15), &[])?.refused()?;
    assert!(error.contains("SSL"), "{error}");
    let psql15 = Psql::new(pg15_bindir().join("psql"))?;
    refused_with(
        &psql15,
        "PG 17 server, sslnegotiation=direct",
        &direct(&pg17),
        &[],
        r#"invalid connection option "sslnegotiation""#,
    )?;
    Ok(())
}

#[test]
fn set_hba_reloads_a_running_server_and_restart_keeps_tls() -> Result<()> {
    let pki = Pki::generate()?;
    let mut cluster = tls_cluster(&pki, ServerCert::Valid, Hba::HostsslTrust)?;
    let plain = format!("{} sslmode=disable", cluster.tls_conninfo(SUPERUSER));
    let psql = Psql::reference(&cluster)?;
    assert_eq!(psql.program(), cluster.bindir().join("psql"));
    attempt(&psql, "before set_hba(Trust), sslmode=disable", &plain, &[])?.refused()?;
    cluster.set_hba(Hba::Trust)?;
    assert!(!attempt(&psql, "after set_hba(Trust), sslmode=disable", &plain, &[])?.connected()?.ssl);
    cluster.set_hba(Hba::HostsslTrust)?;
    attempt(&psql, "after set_hba(HostsslTrust), sslmode=disable", &plain, &[])?.refused()?;
    assert!(
        cluster.set_pg_hba("hostssl all all 127.0.0.1/32 no-such-method\n").is_err(),
        "a broken pg_hba.conf was accepted"
    );
    cluster.set_hba(Hba::HostsslTrust)?;
    cluster.restart()?;
    connects_with_tls(
        &psql,
        "after restart, verify-full",
        &verify_full(&cluster, &pki, SUPERUSER),
        &[],
        SUPERUSER,
    )?;
    Ok(())
}
