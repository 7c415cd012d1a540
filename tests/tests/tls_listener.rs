//! The listener over TLS, against TLS-only servers (`hostssl` in `pg_hba.conf`, plaintext TCP
//! rejected): it survives what it survives in plaintext (a terminated backend, a restart, a
//! frozen stream, being cut off while cancels are sent), its session is encrypted as
//! `pg_stat_ssl` shows, and a password provider is asked anew for every connection, so a rotated
//! password (a cloud IAM token) is picked up on reconnect.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use anyhow::{ensure, Context, Result};
use bytebase_signal_client::connect::{BoxError, ConnectOptions, PasswordRequest};
use bytebase_signal_client::{send, Listener};
use bytebase_signal_tests::client_listener::*;
use bytebase_signal_tests::cluster::{terminate_backends, Cluster, Install};
use bytebase_signal_tests::libpq::quote;
use bytebase_signal_tests::pki::{Pki, ServerCert, SERVER_NAME};
use bytebase_signal_tests::proxy::{Mode, Proxy};
use bytebase_signal_tests::tls_cluster::{Hba, PASSWORD, PASSWORD_ROLE};
use bytebase_signal_tests::wait;
use tokio_postgres::Client;

/// A TLS-only cluster (valid certificate, `hba`) with database [`DB`] holding the extension, and
/// a sender connected over the Unix socket.
async fn tls_cluster(pki: &Pki, hba: Hba) -> Result<(Cluster, Client)> {
    let cluster = Cluster::builder().tls(pki, ServerCert::Valid).hba(hba).start()?;
    cluster.create_database_with(DB, Install::Fresh).await?;
    if hba == Hba::HostsslScram {
        // The listeners' grant, as the README gives it.
        let grant =
            format!("GRANT EXECUTE ON FUNCTION bytebase_signal_replay(timestamptz) TO {PASSWORD_ROLE}");
        cluster.admin_on(DB).await?.batch_execute(&grant).await?;
    }
    let sender = cluster.admin_on(DB).await?;
    Ok((cluster, sender))
}

/// verify-full settings for the listener under test, reaching the server through `port`.
fn verify_full(cluster: &Cluster, pki: &Pki, port: u16, user: &str) -> Result<ConnectOptions> {
    let dsn = format!(
        "host={SERVER_NAME} hostaddr={} port={port} user={user} dbname={DB} application_name={APP} \
         sslmode=verify-full sslrootcert={}",
        cluster.host(),
        quote(pki.ca_cert())
    );
    Ok(ConnectOptions::parse(&dsn)?)
}

/// Whether the backend of the listener under test is encrypted, per `pg_stat_ssl`.
async fn listener_session_encrypted(sender: &Client) -> Result<Option<(bool, String)>> {
    let row = sender
        .query_opt(
            "SELECT s.ssl, coalesce(s.version, '') FROM pg_stat_ssl s JOIN pg_stat_activity a USING (pid)
              WHERE a.application_name = $1",
            &[&APP],
        )
        .await?;
    Ok(row.map(|r| (r.get(0), r.get(1))))
}

#[tokio::test(flavor = "multi_thread")]
async fn over_tls_the_listener_survives_a_terminated_backend_and_a_restart() -> Result<()> {
    let pki = Pki::generate()?;
    let (cluster, sender) = tls_cluster(&pki, Hba::HostsslTrust).await?;
    let mut l =
        start(Listener::new(verify_full(&cluster, &pki, cluster.port(), "postgres")?).with_config(quick()))
            .await
            .context("listener over verify-full TLS")?;
    let (ssl, version) = listener_session_encrypted(&sender).await?.context("listener backend not found")?;
    ensure!(ssl, "pg_stat_ssl says the listener's session is not encrypted");
    assert!(version.starts_with("TLSv1."), "{version}");
    l.delivers(&sender, 1).await?;

    ensure!(terminate_backends(&sender, APP).await? >= 1, "no listener backend to terminate");
    next_event(&mut l.events, disconnected).await?;
    next_event(&mut l.events, connected).await?;
    l.delivers(&sender, 2).await?;

    let mut cluster = cluster;
    let cluster = tokio::task::spawn_blocking(move || cluster.restart().map(|()| cluster)).await??;
    next_event(&mut l.events, connected).await?;
    let sender = cluster.admin_on(DB).await?;
    l.delivers(&sender, 3).await?;
    assert!(listener_session_encrypted(&sender).await?.is_some_and(|(ssl, _)| ssl));
    assert!(l.handle.status().reconnects >= 2, "{:?}", l.handle.status());
    l.stop().await.map(drop)
}

#[tokio::test(flavor = "multi_thread")]
async fn over_tls_a_frozen_stream_is_given_up_and_cancels_sent_while_cut_off_are_replayed() -> Result<()> {
    let pki = Pki::generate()?;
    let (cluster, sender) = tls_cluster(&pki, Hba::HostsslTrust).await?;
    let upstream = format!("{}:{}", cluster.host(), cluster.port()).parse()?;
    let proxy = Proxy::start(upstream).await?;
    let mut l =
        start(Listener::new(verify_full(&cluster, &pki, proxy.port(), "postgres")?).with_config(quick()))
            .await?;
    l.delivers(&sender, 1).await?;
    // (The first cancel may have come from the log: the first catch-up can run after it.)
    let replayed_before = l.handle.status().replayed;

    // Half-open: nothing passes, nothing closes. The heartbeat gives the connection up.
    proxy.set_mode(Mode::Freeze);
    next_event(&mut l.events, disconnected).await?;
    // Cut off: every connection refused, while cancels are committed.
    proxy.set_mode(Mode::Refuse);
    let missed: Vec<_> = (100..150).map(uid).collect();
    send::cancel_task_runs(&sender, &missed).await?;
    proxy.set_mode(Mode::Forward);
    next_event(&mut l.events, connected).await?;
    let mut got = Vec::new();
    while got.len() < missed.len() {
        got.push(recv(&mut l.signals).await?.uid);
    }
    got.sort();
    assert_eq!(got, missed, "every cancel sent while cut off, once, from the log");
    // (Each is counted just after its hand-off.)
    let want = replayed_before + missed.len() as u64;
    wait::until("all 50 counted as recovered from the log", PATIENCE, || async {
        (l.handle.status().replayed == want).then_some(())
    })
    .await?;
    l.delivers(&sender, 2).await?;
    l.stop().await.map(drop)
}

#[tokio::test(flavor = "multi_thread")]
async fn a_rotated_password_is_asked_for_again_on_reconnect() -> Result<()> {
    let pki = Pki::generate()?;
    let (cluster, sender) = tls_cluster(&pki, Hba::HostsslScram).await?;
    let current = Arc::new(Mutex::new(PASSWORD.to_owned()));
    let asked = Arc::new(AtomicUsize::new(0));
    let requests = Arc::new(Mutex::new(Vec::new()));
    let provider = {
        let (current, asked, requests) = (Arc::clone(&current), Arc::clone(&asked), Arc::clone(&requests));
        move |request: PasswordRequest| {
            asked.fetch_add(1, Ordering::SeqCst);
            requests.lock().unwrap().push(request);
            let password = current.lock().unwrap().clone();
            async move { Ok::<_, BoxError>(password) }
        }
    };
    let listener = Listener::new(verify_full(&cluster, &pki, cluster.port(), PASSWORD_ROLE)?)
        .with_password_provider(provider)
        .with_config(quick());
    let mut l = start(listener).await?;
    l.delivers(&sender, 1).await?;
    let first = asked.load(Ordering::SeqCst);
    ensure!(first >= 1, "the provider was never asked");

    // Rotate: the old password stops working, the provider hands out the new one.
    sender.batch_execute(&format!("ALTER ROLE {PASSWORD_ROLE} PASSWORD 'rotated-secret-43'")).await?;
    *current.lock().unwrap() = "rotated-secret-43".to_owned();
    ensure!(terminate_backends(&sender, APP).await? >= 1, "no listener backend to terminate");
    next_event(&mut l.events, disconnected).await?;
    next_event(&mut l.events, connected).await?;
    assert!(asked.load(Ordering::SeqCst) > first, "the provider was not asked again on reconnect");
    l.delivers(&sender, 2).await?;
    // Each request named the attempt's host, port and user (what an IAM token is issued for).
    for request in requests.lock().unwrap().iter() {
        assert_eq!(
            (request.host.as_str(), request.port, request.user.as_str(), request.dbname.as_str()),
            (SERVER_NAME, cluster.port(), PASSWORD_ROLE, DB)
        );
    }
    l.stop().await.map(drop)
}

#[tokio::test(flavor = "multi_thread")]
async fn a_password_that_stopped_working_is_reported_with_the_server_and_its_words() -> Result<()> {
    let pki = Pki::generate()?;
    let (cluster, sender) = tls_cluster(&pki, Hba::HostsslScram).await?;
    let mut options = verify_full(&cluster, &pki, cluster.port(), PASSWORD_ROLE)?;
    options.settings_mut().password = Some(PASSWORD.to_owned());
    let mut l = start(Listener::new(options).with_config(quick())).await?;
    l.delivers(&sender, 1).await?;

    sender.batch_execute(&format!("ALTER ROLE {PASSWORD_ROLE} PASSWORD 'rotated-secret-43'")).await?;
    terminate_backends(&sender, APP).await?;
    let error = wait::until("the failed reconnect reported", PATIENCE, || async {
        l.handle.status().last_error.filter(|e| e.contains("password authentication failed"))
    })
    .await?;
    let port = cluster.port();
    assert!(
        error.contains(&format!(
            "connection to server at \"{SERVER_NAME}\" (127.0.0.1), port {port} failed: FATAL:"
        )),
        "{error}"
    );
    assert!(error.contains("SQLSTATE 28P01"), "{error}");
    assert!(!l.handle.status().connected);
    l.stop().await.map(drop)
}
