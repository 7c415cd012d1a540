//! Our client as a black box, run exactly as [`crate::libpq::Psql`] runs psql: the
//! `bytebase-signal status` command with a connection string, an environment cleared but for what
//! the test passes, and an empty `HOME`. Its answer has the same type as psql's, so a test can
//! compare the two outcome for outcome. [`doctor`] runs `bytebase-signal doctor` the same way and
//! reads its checklist back ([`DoctorRun::lines`]).
//!
//! `make test` builds the binary first (`cargo build -p bytebase-signal-cli`);
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
    ensure!(bin.exists(), "{} missing: run `cargo build -p bytebase-signal-cli`", bin.display());
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

/// One check's line of `bytebase-signal doctor`'s text output.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DoctorLine {
    /// `ok`, `warn`, `fail` or `skip`.
    pub status: String,
    /// The check's name (`round trip`).
    pub check: String,
    /// What it found.
    pub found: String,
    /// The `-> ...` line below it, if any.
    pub action: Option<String>,
}

/// What a run of `bytebase-signal doctor` printed, and how it exited.
#[derive(Debug)]
pub struct DoctorRun {
    /// The exit code (`None`: killed by a signal).
    pub code: Option<i32>,
    /// Everything on stdout: the checklist, or the JSON object with `--json`.
    pub stdout: String,
    /// Everything on stderr (logs).
    pub stderr: String,
}

/// Where the found text starts on a check's line: after the status (5) and the name (19).
const DOCTOR_FOUND_COLUMN: usize = 26;

impl DoctorRun {
    /// The text output's check lines, in order, each with its action.
    pub fn lines(&self) -> Vec<DoctorLine> {
        let mut lines: Vec<DoctorLine> = Vec::new();
        for line in self.stdout.lines() {
            if let Some(action) = line.trim_start().strip_prefix("-> ") {
                if let Some(last) = lines.last_mut() {
                    last.action = Some(action.to_owned());
                }
            } else if line.len() > DOCTOR_FOUND_COLUMN && line.is_char_boundary(DOCTOR_FOUND_COLUMN) {
                let (head, found) = line.split_at(DOCTOR_FOUND_COLUMN);
                let (status, check) = head.split_at(6);
                if !["ok", "warn", "fail", "skip"].contains(&status.trim()) {
                    continue; // the summary line
                }
                lines.push(DoctorLine {
                    status: status.trim().to_owned(),
                    check: check.trim().to_owned(),
                    found: found.to_owned(),
                    action: None,
                });
            }
        }
        lines
    }

    /// The line of check `name`, failing with the whole output if there is none.
    pub fn line(&self, name: &str) -> Result<DoctorLine> {
        self.lines()
            .into_iter()
            .find(|l| l.check == name)
            .with_context(|| format!("no {name:?} line in:\n{}\nstderr:\n{}", self.stdout, self.stderr))
    }

    /// The output with `--json`, parsed.
    pub fn json(&self) -> Result<serde_json::Value> {
        serde_json::from_str(&self.stdout).with_context(|| format!("doctor printed {:?}", self.stdout))
    }
}

/// Runs `bytebase-signal doctor --dsn DSN ARGS...` isolated from the machine's libpq
/// configuration (as [`Ours::connect`] runs `status`), with `env` added, to completion.
pub async fn doctor<K: AsRef<std::ffi::OsStr>, V: AsRef<std::ffi::OsStr>>(
    dsn: &str,
    args: &[&str],
    env: impl IntoIterator<Item = (K, V)>,
) -> Result<DoctorRun> {
    let home = tempfile::Builder::new().prefix("bytebase-signal-doctor-home-").tempdir()?;
    let mut cmd = tokio::process::Command::new(cli_binary()?);
    cmd.env_clear().env("HOME", home.path()).env("LC_ALL", "C").env("PATH", "/usr/bin:/bin");
    cmd.env("PGCONNECT_TIMEOUT", CONNECT_TIMEOUT_SECS).env("RUST_LOG", "warn").envs(env);
    cmd.current_dir(home.path()).stdin(Stdio::null()).kill_on_drop(true);
    cmd.arg("doctor").args(["--dsn", dsn]).args(args);
    let out = cmd.output().await.context("running bytebase-signal doctor")?;
    Ok(DoctorRun {
        code: out.status.code(),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    })
}
