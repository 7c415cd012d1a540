//! A real PgBouncer (Debian's `pgbouncer` package) in front of a test cluster, in the pool mode a
//! test asks for: `session` (one server connection per client, as a listener needs) or
//! `transaction` (a server connection per transaction, which swallows LISTEN without an error).
//!
//! It runs as the cluster's OS user from a configuration written into its own temporary directory,
//! listens on 127.0.0.1 at a free port, trusts every user, and is killed when dropped.

use std::fs;
use std::net::TcpListener;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use anyhow::{bail, Context, Result};
use tempfile::TempDir;

use tokio_postgres::NoTls;
use tokio_util::sync::CancellationToken;

use crate::cluster::{Cluster, SUPERUSER};
use crate::wait;

/// Where Debian's package puts the program.
pub const PGBOUNCER: &str = "/usr/sbin/pgbouncer";

/// PgBouncer's `pool_mode`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PoolMode {
    /// A server connection for the client's whole session.
    Session,
    /// A server connection per transaction: asynchronous messages such as notifications never
    /// reach a client that is not in a transaction.
    Transaction,
}

impl PoolMode {
    fn name(self) -> &'static str {
        match self {
            PoolMode::Session => "session",
            PoolMode::Transaction => "transaction",
        }
    }
}

/// A running PgBouncer; stops when dropped.
pub struct PgBouncer {
    dir: TempDir,
    port: u16,
    child: Child,
}

impl PgBouncer {
    /// Starts PgBouncer in `mode` for database `dbname` of `cluster` (the same name on both sides),
    /// with a pool of at most `pool_size` server connections per user and database.
    pub fn start(cluster: &Cluster, dbname: &str, mode: PoolMode, pool_size: u32) -> Result<PgBouncer> {
        if !Path::new(PGBOUNCER).exists() {
            bail!("{PGBOUNCER} missing: install Debian's pgbouncer package (make test does)");
        }
        let dir = tempfile::Builder::new().prefix("bytebase-signal-pgbouncer-").tempdir()?;
        let port = TcpListener::bind("127.0.0.1:0")?.local_addr()?.port();
        let ini = dir.path().join("pgbouncer.ini");
        let users = dir.path().join("userlist.txt");
        fs::write(&users, format!("\"{SUPERUSER}\" \"\"\n"))?;
        fs::write(
            &ini,
            format!(
                "[databases]\n{dbname} = host={host} port={server_port} dbname={dbname}\n\n\
                 [pgbouncer]\nlisten_addr = 127.0.0.1\nlisten_port = {port}\nunix_socket_dir =\n\
                 auth_type = trust\nauth_file = {users}\npool_mode = {mode}\ndefault_pool_size = {pool_size}\n\
                 max_client_conn = 100\nlogfile = {log}\npidfile = {pid}\nadmin_users = {SUPERUSER}\n\
                 server_reset_query = DISCARD ALL\nignore_startup_parameters = extra_float_digits,options\n",
                host = cluster.host(),
                server_port = cluster.port(),
                users = users.display(),
                mode = mode.name(),
                log = dir.path().join("pgbouncer.log").display(),
                pid = dir.path().join("pgbouncer.pid").display(),
            ),
        )?;
        // PgBouncer, like PostgreSQL, refuses to run as root: run it as the OS user the clusters
        // run as then (`postgres`), which must own its directory.
        let mut cmd = if running_as_root() {
            let status =
                Command::new("chown").arg("-R").arg(format!("{SUPERUSER}:")).arg(dir.path()).status()?;
            if !status.success() {
                bail!("chown of {} failed", dir.path().display());
            }
            let mut cmd = Command::new("runuser");
            cmd.args(["-u", SUPERUSER, "--", PGBOUNCER]);
            cmd
        } else {
            Command::new(PGBOUNCER)
        };
        cmd.arg(&ini).stdin(Stdio::null()).stdout(Stdio::null()).stderr(Stdio::piped());
        let child = cmd.spawn().with_context(|| format!("starting {PGBOUNCER}"))?;
        let bouncer = PgBouncer { dir, port, child };
        wait::until_blocking("PgBouncer to accept connections", Duration::from_secs(30), || {
            std::net::TcpStream::connect(("127.0.0.1", port)).ok().map(drop)
        })
        .with_context(|| bouncer.log())?;
        Ok(bouncer)
    }

    /// The port clients connect to (on 127.0.0.1).
    pub fn port(&self) -> u16 {
        self.port
    }

    /// PgBouncer's log so far.
    pub fn log(&self) -> String {
        fs::read_to_string(self.dir.path().join("pgbouncer.log")).unwrap_or_default()
    }

    /// The directory holding its configuration and log.
    pub fn dir(&self) -> PathBuf {
        self.dir.path().to_owned()
    }
}

impl Drop for PgBouncer {
    /// Kills PgBouncer. Started through `runuser` (as root), it outlives a kill of `runuser`,
    /// which does not pass SIGKILL on, so it is killed by the pid in its pidfile first (`runuser`,
    /// its parent, reaps it). SIGKILL, not SIGTERM: since
    /// PgBouncer 1.23 SIGTERM waits for every client to leave, and a reconnecting listener never
    /// does. The pid is checked to still be PgBouncer's (a stale pidfile's pid may be reused).
    fn drop(&mut self) {
        if !running_as_root() {
            // PgBouncer is our own child: killing and reaping it is enough.
            let _ = self.child.kill();
            let _ = self.child.wait();
            return;
        }
        let pidfile = self.dir.path().join("pgbouncer.pid");
        if let Some(pid) = fs::read_to_string(&pidfile).ok().and_then(|p| p.trim().parse::<u32>().ok()) {
            let comm = format!("/proc/{pid}/comm");
            let is_ours = || fs::read_to_string(&comm).is_ok_and(|c| c.trim() == "pgbouncer");
            if is_ours() {
                let _ = Command::new("kill").args(["-KILL", &pid.to_string()]).stderr(Stdio::null()).status();
                let _ = wait::until_blocking("PgBouncer to exit", Duration::from_secs(10), || {
                    (!is_ours()).then_some(())
                });
            }
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn running_as_root() -> bool {
    fs::metadata("/proc/self").map(|m| m.uid() == 0).unwrap_or(false)
}

/// Clients that keep the pool busy, so that server connections change hands as in production.
pub struct Neighbours {
    stop: CancellationToken,
}

impl Neighbours {
    /// `n` clients of database `dbname` through `port` (the pooler's), each running `SELECT 1`
    /// every few milliseconds until dropped.
    pub fn start(cluster: &Cluster, dbname: &str, port: u16, n: usize) -> Self {
        let stop = CancellationToken::new();
        for _ in 0..n {
            let mut pg = cluster.config_via(dbname, port);
            pg.application_name("pool-neighbour");
            let stop = stop.clone();
            tokio::spawn(async move {
                let Ok((client, connection)) = pg.connect(NoTls).await else { return };
                tokio::spawn(connection);
                while !stop.is_cancelled() {
                    if client.simple_query("SELECT 1").await.is_err() {
                        return;
                    }
                    tokio::time::sleep(Duration::from_millis(5)).await; // their own pace
                }
            });
        }
        Neighbours { stop }
    }
}

impl Drop for Neighbours {
    fn drop(&mut self) {
        self.stop.cancel();
    }
}
