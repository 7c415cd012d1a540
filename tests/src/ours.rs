//! Our client as a black box, run exactly as [`crate::libpq::Psql`] runs psql: the
//! `bytebase-signal status` command with a connection string, an environment cleared but for what
//! the test passes, and an empty `HOME`. Its answer has the same type as psql's, so a test can
//! compare the two outcome for outcome.
//!
//! `make test` builds the binary first (`cargo build -p bytebase-signal-client --features cli`);
//! it is found next to the test executable's directory.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use anyhow::{bail, ensure, Context, Result};
use tempfile::TempDir;

use crate::libpq::{Outcome, Session, CONNECT_TIMEOUT_SECS};

/// The `bytebase-signal` binary of this build.
pub fn cli_binary() -> Result<PathBuf> {
    // target/debug/deps/<test>-<hash> -> target/debug/bytebase-signal
    let exe = std::env::current_exe()?;
    let bin = exe.parent().and_then(|d| d.parent()).context("test binary location")?.join("bytebase-signal");
    ensure!(
        bin.exists(),
        "{} missing: run `cargo build -p bytebase-signal-client --features cli`",
        bin.display()
    );
    Ok(bin)
}

/// `bytebase-signal status`, isolated from the machine's libpq configuration.
pub struct Ours {
    program: PathBuf,
    home: TempDir,
}

impl Ours {
    /// The binary of this build, with its own empty `HOME`.
    pub fn new() -> Result<Ours> {
        let home = tempfile::Builder::new().prefix("bytebase-signal-ours-home-").tempdir()?;
        Ok(Ours { program: cli_binary()?, home })
    }

    /// The empty directory our client gets as `HOME`.
    pub fn home(&self) -> &Path {
        self.home.path()
    }

    /// Connects with `conninfo` and `env` as [`crate::libpq::Psql::connect`] does, and reports
    /// the session (from `status`'s JSON) or the refusal (its error line on stderr).
    pub fn connect<K: AsRef<std::ffi::OsStr>, V: AsRef<std::ffi::OsStr>>(
        &self,
        conninfo: &str,
        env: impl IntoIterator<Item = (K, V)>,
    ) -> Result<Outcome> {
        let mut cmd = Command::new(&self.program);
        cmd.env_clear().env("HOME", self.home.path()).env("LC_ALL", "C").env("PATH", "/usr/bin:/bin");
        cmd.env("PGCONNECT_TIMEOUT", CONNECT_TIMEOUT_SECS).env("RUST_LOG", "error").envs(env);
        cmd.current_dir(self.home.path()).stdin(Stdio::null());
        cmd.args(["status", "--dsn", conninfo]);
        let out = cmd.output().with_context(|| format!("running {}", self.program.display()))?;
        let stderr = String::from_utf8_lossy(&out.stderr).trim().to_owned();
        if !out.status.success() {
            return Ok(Outcome::Refused(stderr));
        }
        let status: serde_json::Value = serde_json::from_slice(&out.stdout)
            .with_context(|| format!("status printed {:?}", String::from_utf8_lossy(&out.stdout)))?;
        let text = |field: &str| status[field].as_str().map(str::to_owned);
        let Some(user) = text("user") else { bail!("status without a user: {status}") };
        Ok(Outcome::Connected(Session {
            ssl: status["tls_version"].is_string(),
            tls_version: text("tls_version"),
            cipher: text("tls_cipher"),
            user,
            server_version_num: status["server_version_num"].as_u64().context("server_version_num")? as u32,
        }))
    }
}
