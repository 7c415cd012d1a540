//! Throwaway PostgreSQL clusters for end-to-end tests.
//!
//! Each [`Cluster`] is a fresh `initdb` in its own temporary directory, listening on 127.0.0.1 at a
//! free port and on a Unix socket inside that directory. It uses the binaries of the PostgreSQL
//! that `PG_CONFIG` names (default: the system PostgreSQL 15), so the extension must have been
//! installed there first (`make test` does that). Dropping the value stops the server with an
//! immediate shutdown and deletes the directory, also while a panicking test unwinds.
//!
//! [`Cluster::builder`] makes the clusters that need more: another PostgreSQL's binaries, a
//! `pg_hba.conf` of their own, files for the server (the TLS clusters of [`crate::tls_cluster`]
//! build on it). Whatever `pg_hba.conf` says about TCP, [`Cluster::admin`] reaches the server as
//! the superuser over the Unix socket.
//!
//! The methods block (they run `initdb` and `pg_ctl`); from async code call them on a
//! multi-threaded runtime or through `spawn_blocking`.

use std::fs::{self, OpenOptions};
use std::io::Write;
use std::net::TcpListener;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use anyhow::{bail, Context, Result};
use tempfile::TempDir;
use tokio_postgres::{Client, Config, NoTls};

/// The PostgreSQL used when `PG_CONFIG` is not set.
pub const DEFAULT_PG_CONFIG: &str = "/usr/lib/postgresql/15/bin/pg_config";

/// The superuser `initdb` creates; tests connect as this role.
pub const SUPERUSER: &str = "postgres";

/// How long [`Cluster::reload`] waits for the server to have re-read its configuration.
const RELOAD_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(30);

/// How often [`Cluster::start`] picks a new port when another process took the one it chose.
const PORT_ATTEMPTS: usize = 5;

/// Settings every test cluster gets: local only, small, and no durability work the tests don't need.
const BASE_SETTINGS: &[(&str, &str)] = &[
    ("listen_addresses", "'127.0.0.1'"),
    ("fsync", "off"),
    ("full_page_writes", "off"),
    ("shared_buffers", "32MB"),
    ("max_connections", "50"),
    ("log_min_messages", "warning"),
];

/// How the extension gets into a test database.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Install {
    /// `CREATE EXTENSION bytebase_signal`: the current version's own script.
    Fresh,
    /// Version 0.1.0 first, used once, then `ALTER EXTENSION bytebase_signal UPDATE` through the
    /// hand-written upgrade scripts.
    UpgradedFrom010,
    /// Version 0.2.0 first, used once, then `ALTER EXTENSION bytebase_signal UPDATE`.
    UpgradedFrom020,
    /// Version 0.3.0 first, used once, then `ALTER EXTENSION bytebase_signal UPDATE`.
    UpgradedFrom030,
    /// No extension: the pure-SQL edition, `psql -f sql/pure/install.sql`, run twice (the second
    /// run must be harmless).
    PureSql,
    /// The pure-SQL edition 0.2.0 (`tests/fixtures`), used once, then the current
    /// `sql/pure/install.sql` over it.
    PureSqlUpgradedFrom020,
    /// The pure-SQL edition 0.3.0 (`tests/fixtures`), used once, then the current
    /// `sql/pure/install.sql` over it.
    PureSqlUpgradedFrom030,
}

impl Install {
    /// Whether this is the pure-SQL edition rather than the extension.
    pub fn is_pure_sql(self) -> bool {
        matches!(self, Install::PureSql | Install::PureSqlUpgradedFrom020 | Install::PureSqlUpgradedFrom030)
    }
}

/// The pure-SQL edition's installer.
pub const PURE_INSTALL: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../sql/pure/install.sql");
/// The pure-SQL edition 0.2.0's installer, as released.
pub const PURE_INSTALL_0_2_0: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/fixtures/pure-install-0.2.0.sql");
/// The pure-SQL edition 0.3.0's installer, as released.
pub const PURE_INSTALL_0_3_0: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/fixtures/pure-install-0.3.0.sql");
/// The pure-SQL edition's uninstaller.
pub const PURE_UNINSTALL: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../sql/pure/uninstall.sql");

/// How a [`Cluster`] is made, for the clusters [`Cluster::start_with`] cannot describe: another
/// PostgreSQL's binaries, a `pg_hba.conf` of the test's own, files the server reads (certificates
/// and keys), SQL to run once it is up. Start from [`Cluster::builder`].
#[derive(Clone, Debug, Default)]
pub struct Builder {
    pg_config: Option<PathBuf>,
    bindir: Option<PathBuf>,
    settings: Vec<(String, String)>,
    pg_hba: Option<String>,
    data_files: Vec<DataFile>,
    pub(crate) init_sql: Vec<String>,
}

/// A file copied into the data directory before the server starts.
#[derive(Clone, Debug)]
struct DataFile {
    source: PathBuf,
    name: String,
    mode: u32,
}

impl Builder {
    /// Takes the PostgreSQL programs from `pg_config --bindir` of this `pg_config` instead of the
    /// one `PG_CONFIG` names.
    pub fn pg_config(mut self, pg_config: impl Into<PathBuf>) -> Self {
        self.pg_config = Some(pg_config.into());
        self
    }

    /// Takes the PostgreSQL programs from `bindir` (wins over [`Builder::pg_config`]).
    pub fn bindir(mut self, bindir: impl Into<PathBuf>) -> Self {
        self.bindir = Some(bindir.into());
        self
    }

    /// Adds a `postgresql.conf` line (after the defaults and earlier settings, so it wins).
    /// `value` is written as it is: quote strings (`'...'`).
    pub fn setting(mut self, name: &str, value: impl Into<String>) -> Self {
        self.settings.push((name.to_owned(), value.into()));
        self
    }

    /// Adds several `postgresql.conf` lines, as [`Cluster::start_with`] takes them.
    pub fn settings(mut self, settings: &[(&str, &str)]) -> Self {
        self.settings.extend(settings.iter().map(|&(n, v)| (n.to_owned(), v.to_owned())));
        self
    }

    /// Replaces `initdb`'s `pg_hba.conf` with `contents` (written before the first start). The
    /// harness itself connects over the Unix socket as [`SUPERUSER`] ([`Cluster::admin`]): keep a
    /// `local` line that lets it in.
    pub fn pg_hba(mut self, contents: impl Into<String>) -> Self {
        self.pg_hba = Some(contents.into());
        self
    }

    /// Copies `source` into the data directory as `name`, owned by the server's OS user with
    /// permission bits `mode` (PostgreSQL wants 0600 for a key). A setting that names it can use
    /// the relative path `name`; [`Builder::data_file_setting`] does both.
    pub fn data_file(mut self, source: impl Into<PathBuf>, name: &str, mode: u32) -> Self {
        self.data_files.push(DataFile { source: source.into(), name: name.to_owned(), mode });
        self
    }

    /// Like [`Builder::data_file`], and sets `setting` to the copy's path: relative to the data
    /// directory, which is where PostgreSQL resolves relative paths in `postgresql.conf`.
    pub fn data_file_setting(self, setting: &str, source: impl Into<PathBuf>, name: &str, mode: u32) -> Self {
        self.data_file(source, name, mode).setting(setting, format!("'{name}'"))
    }

    /// SQL the superuser runs over the Unix socket once the new server is up, in order, before
    /// [`Builder::start`] returns (roles the test logs in as, say).
    pub fn init_sql(mut self, sql: impl Into<String>) -> Self {
        self.init_sql.push(sql.into());
        self
    }

    /// Creates the cluster and starts it on a free port.
    pub fn start(self) -> Result<Cluster> {
        let bindir = match (&self.bindir, &self.pg_config) {
            (Some(bindir), _) => bindir.clone(),
            (None, Some(pg_config)) => bindir_of(pg_config)?,
            (None, None) => default_bindir()?,
        };
        let mut cluster = Cluster::unstarted_in(bindir)?;
        let settings: Vec<(&str, &str)> =
            self.settings.iter().map(|(n, v)| (n.as_str(), v.as_str())).collect();
        cluster.initdb(&settings)?;
        if let Some(contents) = &self.pg_hba {
            cluster.write_data_file("pg_hba.conf", contents.as_bytes(), 0o600)?;
        }
        for file in &self.data_files {
            let contents =
                fs::read(&file.source).with_context(|| format!("reading {}", file.source.display()))?;
            cluster.write_data_file(&file.name, &contents, file.mode)?;
        }
        cluster.start_on_free_port()?;
        for sql in &self.init_sql {
            cluster.admin_sql(sql)?;
        }
        Ok(cluster)
    }
}

/// A running (or stopped) throwaway PostgreSQL cluster.
pub struct Cluster {
    // `Drop::drop` stops the server before the fields are dropped, so `root` goes last.
    root: TempDir,
    bindir: PathBuf,
    port: u16,
    run_as: Option<&'static str>,
    running: bool,
}

impl Cluster {
    /// Creates and starts a cluster with the default settings.
    pub fn start() -> Result<Self> {
        Self::start_with(&[])
    }

    /// Creates and starts a cluster; `settings` are `postgresql.conf` lines (`name`, `value`)
    /// applied after the defaults, so they win.
    pub fn start_with(settings: &[(&str, &str)]) -> Result<Self> {
        Self::builder().settings(settings).start()
    }

    /// A [`Builder`] for a cluster with more than settings: other binaries, its own `pg_hba.conf`,
    /// files for the server (TLS: see [`crate::tls_cluster`]).
    pub fn builder() -> Builder {
        Builder::default()
    }

    /// Creates and starts a hot standby of this (running) cluster, streaming from it
    /// (`pg_basebackup -R`). It refuses writes, NOTIFY and LISTEN until promoted.
    pub fn start_standby(&self) -> Result<Cluster> {
        self.start_standby_through(self.port)
    }

    /// Like [`Cluster::start_standby`], streaming through `port` (a proxy in front of this
    /// cluster, so that a test can cut the replication off while both servers run on).
    pub fn start_standby_through(&self, port: u16) -> Result<Cluster> {
        let mut standby = Self::unstarted_in(self.bindir.clone())?;
        let mut cmd = standby.command("pg_basebackup");
        cmd.arg("-D").arg(standby.data_dir());
        cmd.args(["-h", self.host(), "-p", &self.port.to_string(), "-U", SUPERUSER, "-R", "-X", "stream"]);
        cmd.args(["--no-sync", "--checkpoint=fast"]);
        run(&mut cmd).context("pg_basebackup")?;
        // The copied configuration points the socket at the primary's directory; use our own.
        let mut conf = OpenOptions::new().append(true).open(standby.data_dir().join("postgresql.conf"))?;
        writeln!(conf, "unix_socket_directories = '{}'", standby.root.path().display())?;
        if port != self.port {
            // -R wrote primary_conninfo with the primary's port; a later line wins.
            let auto = standby.data_dir().join("postgresql.auto.conf");
            let conninfo = fs::read_to_string(&auto)?
                .lines()
                .rev()
                .find_map(|l| {
                    l.strip_prefix("primary_conninfo = '")
                        .and_then(|v| v.strip_suffix('\''))
                        .map(str::to_owned)
                })
                .context("pg_basebackup -R wrote no primary_conninfo")?;
            let through = conninfo.replace(&format!("port={}", self.port), &format!("port={port}"));
            let mut auto = OpenOptions::new().append(true).open(auto)?;
            writeln!(auto, "primary_conninfo = '{through}'")?;
        }
        standby.start_on_free_port()?;
        Ok(standby)
    }

    /// A cluster directory owned by the right OS user, with nothing in it yet, for the
    /// PostgreSQL programs in `bindir`.
    fn unstarted_in(bindir: PathBuf) -> Result<Self> {
        let root = tempfile::Builder::new()
            .prefix("bytebase-signal-pg-")
            .tempdir()
            .context("creating the cluster's temporary directory")?;
        // Files we create belong to our effective user: uid 0 means root, and PostgreSQL refuses
        // to run as root, so the cluster is owned and run by the `postgres` OS user instead.
        let run_as = (root.path().metadata()?.uid() == 0).then_some(SUPERUSER);
        if let Some(user) = run_as {
            run(Command::new("chown").arg(format!("{user}:")).arg(root.path()))?;
        }
        Ok(Cluster { root, bindir, port: 0, run_as, running: false })
    }

    /// The TCP port the server listens on (on 127.0.0.1).
    pub fn port(&self) -> u16 {
        self.port
    }

    /// The host to connect to.
    pub fn host(&self) -> &'static str {
        "127.0.0.1"
    }

    /// Whether the server is running (as far as this handle knows).
    pub fn is_running(&self) -> bool {
        self.running
    }

    /// The directory holding the data directory, the socket and the server log.
    pub fn root(&self) -> &Path {
        self.root.path()
    }

    /// The directory of the server's Unix socket (`host=` this directory, with [`Cluster::port`]).
    pub fn socket_dir(&self) -> &Path {
        self.root.path()
    }

    /// The data directory (`postgresql.conf`, `pg_hba.conf` and the files of
    /// [`Builder::data_file`] are in it).
    pub fn data_dir(&self) -> PathBuf {
        self.root.path().join("data")
    }

    /// A libpq-style connection string for `dbname`, as the superuser.
    pub fn conninfo(&self, dbname: &str) -> String {
        format!("host={} port={} user={SUPERUSER} dbname={dbname}", self.host(), self.port)
    }

    /// A tokio-postgres configuration for `dbname`, as the superuser.
    pub fn config(&self, dbname: &str) -> Config {
        self.config_via(dbname, self.port)
    }

    /// Like [`Cluster::config`], reaching the server through `port` instead: a proxy in front of
    /// it. (A `Config`'s port cannot be replaced: setting it again adds a second one.)
    pub fn config_via(&self, dbname: &str, port: u16) -> Config {
        let mut config = Config::new();
        config.host(self.host()).port(port).user(SUPERUSER).dbname(dbname);
        config.application_name("bytebase-signal-tests");
        config
    }

    /// Connects to `dbname` and drives the connection on a background task. Use this for senders;
    /// a listener needs its connection driven by hand (see [`crate::raw_listener`]).
    pub async fn connect(&self, dbname: &str) -> Result<Client> {
        self.connect_as(dbname, SUPERUSER).await
    }

    /// Like [`Cluster::connect`], as role `user` (authentication is `trust`).
    pub async fn connect_as(&self, dbname: &str, user: &str) -> Result<Client> {
        let (client, connection) = self
            .config(dbname)
            .user(user)
            .connect(NoTls)
            .await
            .with_context(|| format!("connecting to {} as {user}", self.conninfo(dbname)))?;
        tokio::spawn(async move {
            // The error surfaces on the client's next query; nothing to do with it here.
            let _ = connection.await;
        });
        Ok(client)
    }

    /// A tokio-postgres configuration for `dbname` as the superuser over the Unix socket, which
    /// the harness's `pg_hba.conf` files always let in with `trust` (also when TCP requires TLS).
    pub fn admin_config(&self, dbname: &str) -> Config {
        let mut config = Config::new();
        config.host_path(self.socket_dir()).port(self.port).user(SUPERUSER).dbname(dbname);
        config.application_name("bytebase-signal-tests-admin");
        config
    }

    /// Connects as the superuser to database `postgres` over the Unix socket (no TLS) and drives
    /// the connection on a background task: the harness's way in whatever TCP demands.
    pub async fn admin(&self) -> Result<Client> {
        self.admin_on("postgres").await
    }

    /// Like [`Cluster::admin`], to database `dbname`.
    pub async fn admin_on(&self, dbname: &str) -> Result<Client> {
        let (client, connection) =
            self.admin_config(dbname).connect(NoTls).await.with_context(|| {
                format!("connecting over the Unix socket in {}", self.socket_dir().display())
            })?;
        tokio::spawn(async move {
            let _ = connection.await;
        });
        Ok(client)
    }

    /// Runs `sql` on database `postgres` as the superuser over the Unix socket with `psql -At`
    /// (ON_ERROR_STOP) and returns what it printed, trimmed. Blocking; for the harness's own
    /// set-up, where no runtime may be at hand.
    pub fn admin_sql(&self, sql: &str) -> Result<String> {
        let mut cmd = self.command("psql");
        cmd.args(["-X", "-q", "-At", "-v", "ON_ERROR_STOP=1", "-w"]);
        cmd.arg("-h").arg(self.socket_dir());
        cmd.args(["-p", &self.port.to_string(), "-U", SUPERUSER, "-d", "postgres", "-c", sql]);
        let out = run(&mut cmd).with_context(|| format!("running {sql:?} as {SUPERUSER}"))?;
        Ok(String::from_utf8(out.stdout)?.trim().to_owned())
    }

    /// Replaces `pg_hba.conf` with `contents` and makes the running server load it
    /// ([`Cluster::reload`]). Fails if PostgreSQL finds an error in the new file.
    pub fn set_pg_hba(&self, contents: &str) -> Result<()> {
        self.write_data_file("pg_hba.conf", contents.as_bytes(), 0o600)?;
        // `pg_hba_file_rules` parses the file on disk: an error there would make the reload keep
        // the old rules (and only log it), so refuse it here.
        let errors = self.admin_sql(
            "SELECT string_agg(line_number || ': ' || error, '; ') FROM pg_hba_file_rules WHERE error IS NOT NULL",
        )?;
        if !errors.is_empty() {
            bail!("the new pg_hba.conf has errors: {errors}\n{contents}");
        }
        self.reload()
    }

    /// Makes the running server re-read its configuration files (`pg_ctl reload`) and waits until
    /// it has: until a new backend reports a later `pg_conf_load_time()` (backends inherit the
    /// postmaster's, which it sets as it re-reads the files; it reloads `pg_hba.conf` right
    /// after, before it starts any new backend).
    pub fn reload(&self) -> Result<()> {
        let query = "SELECT pg_conf_load_time()";
        let before = self.admin_sql(query)?;
        self.pg_ctl(&["reload"])?;
        crate::wait::until_blocking("the server to reload its configuration", RELOAD_TIMEOUT, || {
            self.admin_sql(query).ok().filter(|now| *now != before)
        })?;
        Ok(())
    }

    /// Writes `contents` to `name` in the data directory with permission bits `mode`, owned by
    /// the server's OS user.
    pub fn write_data_file(&self, name: &str, contents: &[u8], mode: u32) -> Result<()> {
        use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
        let path = self.data_dir().join(name);
        let mut file = OpenOptions::new().write(true).create(true).truncate(true).mode(mode).open(&path)?;
        file.write_all(contents).with_context(|| format!("writing {}", path.display()))?;
        // Exactly `mode`, also for a file that existed (and whatever the umask).
        fs::set_permissions(&path, fs::Permissions::from_mode(mode))?;
        if let Some(user) = self.run_as {
            run(Command::new("chown").arg(format!("{user}:")).arg(&path))?;
        }
        Ok(())
    }

    /// Creates database `dbname` with the `bytebase_signal` extension installed in it.
    pub async fn create_database_with_extension(&self, dbname: &str) -> Result<()> {
        self.create_database_with(dbname, Install::Fresh).await
    }

    /// Creates database `dbname` with the extension installed the way `install` says. It goes over
    /// the Unix socket, so that it works whatever `pg_hba.conf` demands of TCP.
    pub async fn create_database_with(&self, dbname: &str, install: Install) -> Result<()> {
        let admin = self.admin().await?;
        admin
            .batch_execute(&format!("CREATE DATABASE \"{dbname}\""))
            .await
            .with_context(|| format!("creating database {dbname}"))?;
        match install {
            Install::PureSql => {
                for _ in 0..2 {
                    self.run_sql_file(dbname, SUPERUSER, PURE_INSTALL, &[])?;
                }
                return Ok(());
            }
            Install::PureSqlUpgradedFrom020 | Install::PureSqlUpgradedFrom030 => {
                let old = if install == Install::PureSqlUpgradedFrom020 {
                    PURE_INSTALL_0_2_0
                } else {
                    PURE_INSTALL_0_3_0
                };
                self.run_sql_file(dbname, SUPERUSER, old, &[])?;
                self.admin_on(dbname).await?.batch_execute("SELECT bytebase_cancel_task_run(1)").await?;
                self.run_sql_file(dbname, SUPERUSER, PURE_INSTALL, &[])?;
                return Ok(());
            }
            _ => {}
        }
        let db = self.admin_on(dbname).await?;
        let sql = match install {
            Install::PureSql | Install::PureSqlUpgradedFrom020 | Install::PureSqlUpgradedFrom030 => {
                unreachable!("installed above")
            }
            Install::Fresh => "CREATE EXTENSION bytebase_signal",
            Install::UpgradedFrom010 => {
                "CREATE EXTENSION bytebase_signal VERSION '0.1.0';
                 SELECT bytebase_cancel_task_run(1);
                 ALTER EXTENSION bytebase_signal UPDATE"
            }
            Install::UpgradedFrom020 => {
                "CREATE EXTENSION bytebase_signal VERSION '0.2.0';
                 SELECT bytebase_cancel_task_run(1);
                 ALTER EXTENSION bytebase_signal UPDATE"
            }
            Install::UpgradedFrom030 => {
                "CREATE EXTENSION bytebase_signal VERSION '0.3.0';
                 SELECT bytebase_cancel_task_run(1);
                 ALTER EXTENSION bytebase_signal UPDATE"
            }
        };
        db.batch_execute(sql).await.map_err(|e| {
            let why = e.as_db_error().map_or_else(|| e.to_string(), |d| d.message().to_owned());
            anyhow::anyhow!(
                "{install:?} install of bytebase_signal failed: {why} (is the extension installed into \
                 this PostgreSQL, with its older versions' scripts? make install does both)"
            )
        })?;
        Ok(())
    }

    /// A `psql` command connected to `dbname`, with `.psqlrc` ignored and ON_ERROR_STOP set:
    /// an independent client for checks that must not go through our code.
    pub fn psql(&self, dbname: &str) -> Command {
        self.psql_as(dbname, SUPERUSER)
    }

    /// Like [`Cluster::psql`], as role `user`.
    pub fn psql_as(&self, dbname: &str, user: &str) -> Command {
        let mut cmd = Command::new(self.bindir.join("psql"));
        let conninfo = format!("host={} port={} user={user} dbname={dbname}", self.host(), self.port);
        cmd.args(["-X", "-q", "-v", "ON_ERROR_STOP=1", "-d", &conninfo]);
        cmd
    }

    /// Runs the SQL file at `path` on `dbname` as role `user` with `psql -f` (ON_ERROR_STOP), with
    /// `env` added to its environment (e.g. `PGOPTIONS`); fails with psql's stderr if psql does.
    pub fn run_sql_file(&self, dbname: &str, user: &str, path: &str, env: &[(&str, &str)]) -> Result<Output> {
        let mut cmd = self.psql_as(dbname, user);
        cmd.arg("-f").arg(path).envs(env.iter().copied());
        let out = cmd.output().with_context(|| format!("running psql -f {path}"))?;
        if !out.status.success() {
            bail!("psql -f {path} failed ({}): {}", out.status, String::from_utf8_lossy(&out.stderr).trim());
        }
        Ok(out)
    }

    /// Stops the server with a fast shutdown (clients are disconnected, the cluster is kept).
    pub fn stop(&mut self) -> Result<()> {
        self.pg_ctl(&["stop", "-m", "fast", "-w"])?;
        self.running = false;
        Ok(())
    }

    /// Stops the server abruptly (`-m immediate`: no shutdown checkpoint, like a crash or a
    /// failed host), keeping the cluster.
    pub fn crash(&mut self) -> Result<()> {
        self.pg_ctl(&["stop", "-m", "immediate", "-w"])?;
        self.running = false;
        Ok(())
    }

    /// Promotes a standby to a primary and waits until it accepts writes.
    pub fn promote(&self) -> Result<()> {
        self.pg_ctl(&["promote", "-w"]).map(drop)
    }

    /// Starts a stopped server again on the same port.
    pub fn start_again(&mut self) -> Result<()> {
        self.start_on(self.port)
    }

    /// Restarts the server (fast shutdown, then start on the same port). Every connection is
    /// closed and every pending notification is lost, as in a production restart.
    pub fn restart(&mut self) -> Result<()> {
        self.stop()?;
        self.start_again()
    }

    /// The directory of the PostgreSQL programs this cluster runs (for `pgbench`, `psql`, ...).
    pub fn bindir(&self) -> &Path {
        &self.bindir
    }

    /// The major version of this cluster's server (13, say), from `postgres --version`.
    pub fn major(&self) -> Result<u32> {
        major_of(&self.bindir)
    }

    /// The server log so far (for failure messages).
    pub fn log(&self) -> String {
        fs::read_to_string(self.log_path()).unwrap_or_default()
    }

    fn log_path(&self) -> PathBuf {
        self.root.path().join("server.log")
    }

    fn initdb(&self, settings: &[(&str, &str)]) -> Result<()> {
        let mut cmd = self.command("initdb");
        cmd.arg("-D").arg(self.data_dir());
        cmd.args(["-U", SUPERUSER, "-A", "trust", "-E", "UTF8", "--locale=C", "--no-sync"]);
        run(&mut cmd).context("initdb")?;
        let mut conf = OpenOptions::new()
            .append(true)
            .open(self.data_dir().join("postgresql.conf"))
            .context("opening postgresql.conf")?;
        writeln!(conf, "\n# bytebase-signal test cluster")?;
        writeln!(conf, "unix_socket_directories = '{}'", self.root.path().display())?;
        for (name, value) in BASE_SETTINGS.iter().chain(settings) {
            writeln!(conf, "{name} = {value}")?;
        }
        Ok(())
    }

    fn start_on_free_port(&mut self) -> Result<()> {
        let mut last_error = None;
        for _ in 0..PORT_ATTEMPTS {
            // Ask the kernel for a free port, then hand it to the server. Another process may take
            // it in between; the server then fails to bind and we try another one.
            let port = TcpListener::bind("127.0.0.1:0")?.local_addr()?.port();
            match self.start_on(port) {
                Ok(()) => return Ok(()),
                Err(e) if self.log().contains("could not bind") => last_error = Some(e),
                Err(e) => return Err(e),
            }
        }
        Err(last_error.expect("at least one attempt was made"))
    }

    fn start_on(&mut self, port: u16) -> Result<()> {
        self.port = port;
        let log = self.log_path();
        let opts = format!("-p {port}");
        let result = self.pg_ctl(&["start", "-w", "-t", "60", "-l", &log.to_string_lossy(), "-o", &opts]);
        if let Err(e) = result {
            bail!("{e:#}\n--- server log ---\n{}", self.log());
        }
        self.running = true;
        Ok(())
    }

    fn pg_ctl(&self, args: &[&str]) -> Result<Output> {
        let mut cmd = self.command("pg_ctl");
        cmd.arg("-D").arg(self.data_dir()).args(args);
        run(&mut cmd).with_context(|| format!("pg_ctl {}", args.join(" ")))
    }

    /// A PostgreSQL program, run as the cluster's owner, from inside the cluster's directory (the
    /// `postgres` user may not be able to read the current directory).
    fn command(&self, program: &str) -> Command {
        let program = self.bindir.join(program);
        let mut cmd = match self.run_as {
            Some(user) => {
                let mut cmd = Command::new("runuser");
                cmd.args(["-u", user, "--"]).arg(program);
                cmd
            }
            None => Command::new(program),
        };
        cmd.current_dir(self.root.path());
        cmd
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        if self.running {
            // Immediate: nothing to preserve, and a dropped cluster must not outlive its test.
            if let Err(e) = self.pg_ctl(&["stop", "-m", "immediate", "-w"]) {
                eprintln!("warning: could not stop test cluster in {}: {e:#}", self.root.path().display());
            }
        }
    }
}

/// Terminates every backend whose `application_name` is `application_name` (a listener under
/// test, say) through `client`; returns how many it terminated.
pub async fn terminate_backends(
    client: &Client,
    application_name: &str,
) -> Result<i64, tokio_postgres::Error> {
    let row = client
        .query_one(
            "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity WHERE application_name = $1",
            &[&application_name],
        )
        .await?;
    Ok(row.get(0))
}

/// The major version of the server in `bindir` (13, say), from `postgres --version`.
pub fn major_of(bindir: &Path) -> Result<u32> {
    let out = run(Command::new(bindir.join("postgres")).arg("--version"))?;
    let text = String::from_utf8(out.stdout)?;
    // "postgres (PostgreSQL) 16.15", "postgres (PostgreSQL) 15.20 (Debian 15.20-0+deb12u1)" or,
    // before a major's release, "postgres (PostgreSQL) 19rc1 (Debian 19~rc1-1)".
    let version =
        text.split_whitespace().nth(2).with_context(|| format!("postgres --version said {text:?}"))?;
    let major: String = version.chars().take_while(char::is_ascii_digit).collect();
    major.parse().with_context(|| format!("postgres --version said {text:?}"))
}

/// The directory of the PostgreSQL programs the tests use unless told otherwise, from
/// `pg_config --bindir` of `PG_CONFIG`.
pub fn default_bindir() -> Result<PathBuf> {
    let pg_config = std::env::var("PG_CONFIG").unwrap_or_else(|_| DEFAULT_PG_CONFIG.to_owned());
    bindir_of(Path::new(&pg_config)).context("set PG_CONFIG to your pg_config")
}

/// How a server of `major` names a connection's encryption in its pg_hba.conf refusals (`... user
/// "postgres", database "postgres", no encryption`): "no encryption" and "SSL encryption" from
/// PostgreSQL 14 on (which added GSSAPI encryption to the wording), "SSL off" and "SSL on" in 13.
pub fn hba_encryption(major: u32, tls: bool) -> &'static str {
    match (major >= 14, tls) {
        (true, false) => "no encryption",
        (true, true) => "SSL encryption",
        (false, false) => "SSL off",
        (false, true) => "SSL on",
    }
}

/// `pg_config --bindir` of this `pg_config`.
fn bindir_of(pg_config: &Path) -> Result<PathBuf> {
    let out = run(Command::new(pg_config).arg("--bindir"))
        .with_context(|| format!("running {} --bindir", pg_config.display()))?;
    Ok(PathBuf::from(String::from_utf8(out.stdout)?.trim()))
}

/// Runs `cmd` to completion; a non-zero exit is an error that carries its output.
fn run(cmd: &mut Command) -> Result<Output> {
    let out = cmd.output().with_context(|| format!("spawning {cmd:?}"))?;
    if !out.status.success() {
        bail!(
            "{cmd:?} exited with {}\n{}{}",
            out.status,
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }
    Ok(out)
}
