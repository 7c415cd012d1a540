//! The reference client: libpq, through `psql`, for tests that compare what our client does with
//! what libpq does ("where psql connects, our client must connect; where psql refuses, it must
//! refuse").
//!
//! [`Psql::connect`] runs `psql -X -w -At -c <query>` with a conninfo string and the environment
//! the test gives, and nothing else: the environment is cleared (no `PG*` variable, no
//! `SSL_CERT_FILE` of the machine), `HOME` is an empty temporary directory (so no `~/.pgpass`,
//! `~/.pg_service.conf` or `~/.postgresql/root.crt` and `postgresql.crt`), standard input is
//! empty and `-w` forbids a password prompt. Its answer is typed: [`Outcome::Connected`] with
//! what the server says about the session (`pg_stat_ssl`, `current_user`), or
//! [`Outcome::Refused`] with libpq's error text.
//!
//! Which psql: any path ([`Psql::new`]); [`Psql::reference`] takes `BYTEBASE_SIGNAL_REFERENCE_PSQL`
//! when set, else the psql of the cluster's own PostgreSQL.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use anyhow::{bail, Context, Result};
use tempfile::TempDir;

use crate::cluster::Cluster;

/// The environment variable naming the psql that [`Psql::reference`] uses.
pub const REFERENCE_PSQL_ENV: &str = "BYTEBASE_SIGNAL_REFERENCE_PSQL";

/// The `PGCONNECT_TIMEOUT` (seconds) psql gets unless the test passes its own: a server that
/// never answers makes psql fail instead of hanging the test.
pub const CONNECT_TIMEOUT_SECS: &str = "10";

/// What the session query prints: one line, `|`-separated (`psql -A`).
const SESSION_QUERY: &str = "SELECT s.ssl, coalesce(s.version, ''), coalesce(s.cipher, ''), current_user, \
     current_setting('server_version_num') FROM pg_stat_ssl s WHERE s.pid = pg_backend_pid()";

/// psql's exit status when the connection to the server failed (psql's documented exit codes).
const EXIT_BADCONN: i32 = 2;

/// A `psql` program, run in isolation from the machine's libpq configuration.
pub struct Psql {
    program: PathBuf,
    home: TempDir,
}

/// What the server said about a session psql opened.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Session {
    /// `pg_stat_ssl.ssl`: whether the connection uses TLS.
    pub ssl: bool,
    /// `pg_stat_ssl.version` (`TLSv1.3`, ...), `None` without TLS.
    pub tls_version: Option<String>,
    /// `pg_stat_ssl.cipher`, `None` without TLS.
    pub cipher: Option<String>,
    /// `current_user`.
    pub user: String,
    /// The server's `server_version_num` (170011, say).
    pub server_version_num: u32,
}

/// How a connection attempt ended.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Outcome {
    /// psql connected and ran the session query.
    Connected(Session),
    /// psql could not connect (exit status 2); libpq's message as psql printed it, trimmed
    /// (`psql: error: connection to server at "127.0.0.1", port ... failed: ...`).
    Refused(String),
}

impl Outcome {
    /// The session, or an error carrying the refusal.
    pub fn connected(self) -> Result<Session> {
        match self {
            Outcome::Connected(session) => Ok(session),
            Outcome::Refused(error) => bail!("psql was refused: {error}"),
        }
    }

    /// The refusal's text, or an error carrying the session.
    pub fn refused(self) -> Result<String> {
        match self {
            Outcome::Refused(error) => Ok(error),
            Outcome::Connected(session) => bail!("psql connected: {session:?}"),
        }
    }

    /// Whether psql connected.
    pub fn is_connected(&self) -> bool {
        matches!(self, Outcome::Connected(_))
    }
}

impl Psql {
    /// The psql at `program`.
    pub fn new(program: impl Into<PathBuf>) -> Result<Psql> {
        let home = tempfile::Builder::new().prefix("bytebase-signal-psql-home-").tempdir()?;
        Ok(Psql { program: program.into(), home })
    }

    /// The psql that `BYTEBASE_SIGNAL_REFERENCE_PSQL` names, else the one in `cluster`'s bindir.
    pub fn reference(cluster: &Cluster) -> Result<Psql> {
        match std::env::var_os(REFERENCE_PSQL_ENV) {
            Some(path) if !path.is_empty() => Psql::new(path),
            _ => Psql::new(cluster.bindir().join("psql")),
        }
    }

    /// The program's path.
    pub fn program(&self) -> &Path {
        &self.program
    }

    /// The empty directory psql gets as `HOME` (libpq would look for `.postgresql/root.crt`,
    /// `.pgpass` and the rest there).
    pub fn home(&self) -> &Path {
        self.home.path()
    }

    /// `psql --version`, e.g. `psql (PostgreSQL) 17.11`. (psql's own version; the libpq it uses
    /// is the one next to it, or the system's for Debian's packages.)
    pub fn version(&self) -> Result<String> {
        let out = self.command().arg("--version").output().with_context(|| self.spawn_error())?;
        if !out.status.success() {
            bail!("{} --version failed: {}", self.program.display(), String::from_utf8_lossy(&out.stderr));
        }
        Ok(String::from_utf8(out.stdout)?.trim().to_owned())
    }

    /// The major version in [`Psql::version`] (15, 17, ...).
    pub fn major(&self) -> Result<u32> {
        let version = self.version()?;
        let number = version.rsplit(' ').next().unwrap_or_default();
        let major = number.split(|c: char| !c.is_ascii_digit()).next().unwrap_or_default();
        major.parse().with_context(|| format!("no major version in {version:?}"))
    }

    /// Connects with `conninfo` and `env` (the whole environment besides `HOME`, `LC_ALL=C`,
    /// `PATH` and [`CONNECT_TIMEOUT_SECS`], which `env` may override) and reports the session, or
    /// the refusal. An error means psql could not be run, or connected and then failed.
    pub fn connect<K: AsRef<std::ffi::OsStr>, V: AsRef<std::ffi::OsStr>>(
        &self,
        conninfo: &str,
        env: impl IntoIterator<Item = (K, V)>,
    ) -> Result<Outcome> {
        let mut cmd = self.command();
        cmd.env("PGCONNECT_TIMEOUT", CONNECT_TIMEOUT_SECS).envs(env);
        cmd.args(["-X", "-w", "-At", "-v", "ON_ERROR_STOP=1", "-d", conninfo, "-c", SESSION_QUERY]);
        let out = cmd.output().with_context(|| self.spawn_error())?;
        let stderr = String::from_utf8_lossy(&out.stderr).trim().to_owned();
        match out.status.code() {
            Some(0) => {}
            Some(EXIT_BADCONN) => return Ok(Outcome::Refused(stderr)),
            _ => bail!("{} -d {conninfo:?} failed ({}): {stderr}", self.program.display(), out.status),
        }
        let stdout = String::from_utf8(out.stdout)?;
        parse_session(stdout.trim()).with_context(|| format!("psql printed {stdout:?} (stderr: {stderr})"))
    }

    /// The program with a cleared environment, an empty `HOME`, C messages and empty stdin.
    fn command(&self) -> Command {
        let mut cmd = Command::new(&self.program);
        cmd.env_clear().env("HOME", self.home.path()).env("LC_ALL", "C").env("PATH", "/usr/bin:/bin");
        cmd.current_dir(self.home.path()).stdin(Stdio::null());
        cmd
    }

    fn spawn_error(&self) -> String {
        format!("running {}", self.program.display())
    }
}

/// Parses the session query's line: `t|TLSv1.3|TLS_AES_256_GCM_SHA384|postgres|150020`.
fn parse_session(line: &str) -> Result<Outcome> {
    let fields: Vec<&str> = line.split('|').collect();
    let [ssl, version, cipher, user, server_version_num] = fields[..] else {
        bail!("expected 5 fields");
    };
    let text = |s: &str| (!s.is_empty()).then(|| s.to_owned());
    Ok(Outcome::Connected(Session {
        ssl: match ssl {
            "t" => true,
            "f" => false,
            other => bail!("pg_stat_ssl.ssl is {other:?}"),
        },
        tls_version: text(version),
        cipher: text(cipher),
        user: user.to_owned(),
        server_version_num: server_version_num.parse()?,
    }))
}

/// Quotes `value` for a libpq conninfo string (`'...'`, with `\` and `'` escaped), for paths and
/// passwords that may hold spaces or quotes.
pub fn quote(value: impl AsRef<std::ffi::OsStr>) -> String {
    let mut quoted = String::from("'");
    for c in value.as_ref().to_string_lossy().chars() {
        if c == '\'' || c == '\\' {
            quoted.push('\\');
        }
        quoted.push(c);
    }
    quoted.push('\'');
    quoted
}
