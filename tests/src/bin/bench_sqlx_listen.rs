//! A peer for `make bench`: the command-line listener one would write with sqlx 0.8 in a few
//! lines — `PgListener`, each payload decoded with serde_json into a typed struct and printed as one
//! JSON line, flushed once per burst, as `bytebase-signal listen` does. Compiled only for the
//! benchmark (feature `bench`). No reconnects, no log, no de-duplication: the contract measured is
//! only "decode, print one line per signal".
//!
//! `bytebase-signal-bench-sqlx-listen postgres://user@host:port/db` prints "listening" on stderr
//! once LISTEN is in effect.

use std::io::{BufWriter, Write};
use std::process::ExitCode;

use serde::{Deserialize, Serialize};

/// The seed wire format, borrowed from the payload.
#[derive(Deserialize, Serialize)]
struct Signal<'a> {
    #[serde(rename = "type")]
    kind: &'a str,
    uid: i64,
    #[serde(skip_serializing_if = "Option::is_none")]
    project: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    approval_input_version: Option<i64>,
}

fn print(out: &mut impl Write, payload: &str) -> std::io::Result<()> {
    match serde_json::from_str::<Signal>(payload) {
        Ok(signal) => {
            serde_json::to_writer(&mut *out, &signal)?;
            out.write_all(b"\n")
        }
        Err(e) => {
            eprintln!("malformed payload ignored: {e}");
            Ok(())
        }
    }
}

async fn listen(url: &str) -> Result<(), Box<dyn std::error::Error>> {
    let mut listener = sqlx::postgres::PgListener::connect(url).await?;
    listener.listen("bytebase_signal").await?;
    eprintln!("listening");
    let mut out = BufWriter::new(std::io::stdout().lock());
    loop {
        let first = listener.recv().await?;
        print(&mut out, first.payload())?;
        while let Some(next) = listener.next_buffered() {
            print(&mut out, next.payload())?;
        }
        out.flush()?;
    }
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> ExitCode {
    let Some(url) = std::env::args().nth(1) else {
        eprintln!("usage: bytebase-signal-bench-sqlx-listen postgres://...");
        return ExitCode::FAILURE;
    };
    match listen(&url).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}
