//! The cluster harness itself: later fault tests rely on restart and on cleanup after a panic.

use std::panic::AssertUnwindSafe;

use anyhow::Result;
use bytebase_signal_tests::cluster::Cluster;

fn postmaster_pid(root: &std::path::Path) -> Result<i32> {
    let pidfile = std::fs::read_to_string(root.join("data/postmaster.pid"))?;
    Ok(pidfile.lines().next().unwrap_or_default().trim().parse()?)
}

/// Whether `pid` is a live process (a zombie waiting for a reaper counts as gone).
fn process_exists(pid: i32) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        // The state follows the parenthesised command name: "1234 (postgres) S ...".
        Ok(stat) => stat.rsplit_once(") ").is_some_and(|(_, rest)| !rest.starts_with('Z')),
        Err(_) => false,
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn restart_keeps_port_and_data_and_drops_connections() -> Result<()> {
    let mut cluster = Cluster::start()?;
    let port = cluster.port();
    let client = cluster.connect("postgres").await?;
    client.batch_execute("CREATE TABLE kept (x int); INSERT INTO kept VALUES (1)").await?;
    cluster.restart()?;
    assert_eq!(cluster.port(), port);
    assert!(client.batch_execute("SELECT 1").await.is_err(), "old connection survived a restart");
    let client = cluster.connect("postgres").await?;
    let n: i64 = client.query_one("SELECT count(*) FROM kept", &[]).await?.get(0);
    assert_eq!(n, 1);
    cluster.stop()?;
    assert!(!cluster.is_running());
    assert!(cluster.connect("postgres").await.is_err(), "connected to a stopped server");
    cluster.start_again()?;
    cluster.connect("postgres").await?;
    Ok(())
}

#[test]
fn a_panicking_test_leaves_no_server_and_no_files_behind() -> Result<()> {
    let mut seen = None;
    let outcome = std::panic::catch_unwind(AssertUnwindSafe(|| {
        let cluster = Cluster::start().expect("cluster starts");
        seen = Some((cluster.root().to_owned(), postmaster_pid(cluster.root()).expect("pid file")));
        panic!("test failure while the cluster runs");
    }));
    assert!(outcome.is_err());
    let (root, pid) = seen.expect("the cluster was started");
    assert!(!process_exists(pid), "postmaster {pid} still running");
    assert!(!root.exists(), "{} was not removed", root.display());
    Ok(())
}

#[test]
fn clusters_run_side_by_side_on_different_ports() -> Result<()> {
    let a = Cluster::start()?;
    let b = Cluster::start()?;
    assert_ne!(a.port(), b.port());
    assert_ne!(a.root(), b.root());
    Ok(())
}
