//! Where the PostgreSQL installations other than `PG_CONFIG`'s are, for tests that need a given
//! major version: a server that accepts direct TLS (17+), a libpq that knows `sslrootcert=system`
//! (16+) or `sslnegotiation` (17+).
//!
//! Each is a `bin` directory with the server programs and a psql linked to that version's libpq,
//! taken from an environment variable, with a default for the development machine.

use std::path::PathBuf;

use anyhow::{ensure, Result};

/// The environment variable naming a PostgreSQL 17 `bin` directory.
pub const PG17_BINDIR_ENV: &str = "BYTEBASE_SIGNAL_PG17_BINDIR";

/// The PostgreSQL 17 `bin` directory used when [`PG17_BINDIR_ENV`] is not set: an unpacked
/// relocatable build (its psql uses the libpq 17 in `../lib`).
pub const PG17_BINDIR_DEFAULT: &str = "/tmp/wheels/x/pg/postgresql-17.11.0-x86_64-unknown-linux-gnu/bin";

/// The `bin` directory of Debian's PostgreSQL 15, whose psql uses the system libpq 15.
pub const PG15_BINDIR: &str = "/usr/lib/postgresql/15/bin";

/// The PostgreSQL 17 `bin` directory; an error that says how to provide one if it has no psql.
pub fn pg17_bindir() -> Result<PathBuf> {
    let bindir = std::env::var_os(PG17_BINDIR_ENV).map_or_else(|| PG17_BINDIR_DEFAULT.into(), PathBuf::from);
    ensure!(
        bindir.join("psql").is_file() && bindir.join("postgres").is_file(),
        "no PostgreSQL 17 in {} (set {PG17_BINDIR_ENV} to the bin directory of a PostgreSQL 17 installation)",
        bindir.display()
    );
    Ok(bindir)
}

/// Debian's PostgreSQL 15 `bin` directory.
pub fn pg15_bindir() -> PathBuf {
    PathBuf::from(PG15_BINDIR)
}
