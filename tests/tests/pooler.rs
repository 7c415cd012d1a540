//! The listener behind a real PgBouncer. In `pool_mode = session` (the README's recipe for a
//! pooler in front of the listener) it works as it does on a direct connection: it receives, and
//! it survives losing its server connection.

use anyhow::{ensure, Result};
use bytebase_signal_client::Listener;
use bytebase_signal_tests::cluster::terminate_backends;
use bytebase_signal_tests::listening::*;
use bytebase_signal_tests::pgbouncer::{PgBouncer, PoolMode};

#[tokio::test(flavor = "multi_thread")]
async fn through_pgbouncer_in_session_mode_the_listener_receives_and_reconnects() -> Result<()> {
    let (cluster, sender) = cluster_with_extension().await?;
    let bouncer = PgBouncer::start(&cluster, DB, PoolMode::Session, 4)?;
    let dsn =
        format!("host=127.0.0.1 port={} user=postgres dbname={DB} application_name={APP}", bouncer.port());
    let mut l = start(Listener::from_dsn(&dsn)?.with_config(quick())).await?;
    l.delivers(&sender, 1).await?;

    // The server connection behind the pool is lost: PgBouncer drops the client, which reconnects.
    ensure!(terminate_backends(&sender, APP).await? >= 1, "no listener backend behind PgBouncer");
    next_event(&mut l.events, disconnected).await?;
    next_event(&mut l.events, connected).await?;
    l.delivers(&sender, 2).await?;
    assert_eq!(l.handle.status().replay_available, Some(true), "the log is read through the pool too");
    drop(bouncer);
    l.stop().await.map(drop)
}
