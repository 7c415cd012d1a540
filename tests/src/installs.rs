//! Where the PostgreSQL installations other than `PG_CONFIG`'s are, for tests that need a given
//! major version: a server that accepts direct TLS (17+), a libpq that knows `sslrootcert=system`
//! (16+) or `sslnegotiation` (17+), the newest libpq as the reference client.
//!
//! Each is a `bin` directory with the server programs and a psql linked to that version's libpq:
//! `BYTEBASE_SIGNAL_PG<major>_BINDIR` if set, else the project's cache of pinned, checksummed
//! installations (`scripts/postgres.sh`, which fetches on first use and answers at once after).

use std::path::PathBuf;
use std::process::Command;

use anyhow::{bail, ensure, Context, Result};

/// The newest PostgreSQL major the project supports: its libpq is the reference client.
pub const NEWEST_MAJOR: u32 = 18;

/// The `bin` directory of PostgreSQL `major`.
pub fn pg_bindir(major: u32) -> Result<PathBuf> {
    let env = format!("BYTEBASE_SIGNAL_PG{major}_BINDIR");
    let bindir = match std::env::var_os(&env) {
        Some(dir) if !dir.is_empty() => PathBuf::from(dir),
        _ => {
            let script = concat!(env!("CARGO_MANIFEST_DIR"), "/../scripts/postgres.sh");
            let out = Command::new("bash")
                .args([script, "pg-config", &major.to_string()])
                .output()
                .with_context(|| format!("running {script} pg-config {major}"))?;
            if !out.status.success() {
                bail!(
                    "{script} pg-config {major} failed (or set {env}): {}",
                    String::from_utf8_lossy(&out.stderr).trim()
                );
            }
            let pg_config = PathBuf::from(String::from_utf8(out.stdout)?.trim());
            pg_config.parent().context("pg_config without a directory")?.to_owned()
        }
    };
    ensure!(
        bindir.join("psql").is_file() && bindir.join("postgres").is_file(),
        "no PostgreSQL {major} in {} (set {env} to the bin directory of a PostgreSQL {major} installation)",
        bindir.display()
    );
    Ok(bindir)
}

/// The PostgreSQL 17 `bin` directory (the first major with direct TLS negotiation).
pub fn pg17_bindir() -> Result<PathBuf> {
    pg_bindir(17)
}

/// The `bin` directory of Debian's PostgreSQL 15, whose psql uses the system libpq 15.
pub fn pg15_bindir() -> PathBuf {
    PathBuf::from("/usr/lib/postgresql/15/bin")
}
