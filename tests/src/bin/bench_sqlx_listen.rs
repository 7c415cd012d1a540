//! A peer for `make bench`: the command-line listener one would write with sqlx 0.8 in a few
//! lines — `PgListener` read by one task, each payload decoded with serde_json into a typed struct
//! and printed as one JSON line by another, flushed once per burst (whatever is queued is written,
//! then one flush), as `bytebase-signal listen` does. Compiled only for the
//! benchmark (feature `bench`). No reconnects, no log, no de-duplication: the contract measured is
//! only "decode, print one line per signal".
//!
//! `bytebase-signal-bench-sqlx-listen postgres://user@host:port/db` prints "listening" on stderr
//! once LISTEN is in effect.

use std::borrow::Cow;
use std::io::{BufWriter, Write};
use std::process::ExitCode;

use serde::{Deserialize, Serialize};

/// The seed wire format, borrowed from the payload where no escape needs decoding.
#[derive(Deserialize, Serialize)]
struct Signal<'a> {
    #[serde(rename = "type", borrow)]
    kind: Cow<'a, str>,
    uid: i64,
    #[serde(skip_serializing_if = "Option::is_none", borrow)]
    project: Option<Cow<'a, str>>,
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
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
    let reader = tokio::spawn(async move {
        loop {
            let notification = listener.recv().await?;
            if tx.send(notification).is_err() {
                return Ok::<_, sqlx::Error>(());
            }
        }
    });
    let mut out = BufWriter::new(std::io::stdout().lock());
    while let Some(first) = rx.recv().await {
        print(&mut out, first.payload())?;
        while let Ok(next) = rx.try_recv() {
            print(&mut out, next.payload())?;
        }
        out.flush()?;
    }
    Ok(reader.await??)
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
