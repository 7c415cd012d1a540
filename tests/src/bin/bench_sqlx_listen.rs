//! A peer for `make bench`: the command-line listener a sqlx 0.8 user would write — one loop in
//! one task on a current-thread runtime: `PgListener::recv()`, each payload decoded with
//! serde_json into a typed struct and written back out as one JSON line into a 64 KiB
//! `BufWriter`, flushed when no notification is ready without waiting. Compiled
//! only for the benchmark (feature `bench`). No reconnects, no log, no de-duplication: the
//! contract measured is only "decode, print one line per signal".
//!
//! `bytebase-signal-bench-sqlx-listen postgres://user@host:port/db` prints "listening" on stderr
//! once LISTEN is in effect.

use std::borrow::Cow;
use std::io::{BufWriter, Write};
use std::process::ExitCode;

use futures_util::FutureExt;
use serde::{Deserialize, Serialize};

/// The seed wire format, borrowed from the payload where no escape needs decoding.
#[derive(Deserialize, Serialize)]
struct Signal<'a> {
    #[serde(rename = "type", borrow)]
    kind: Cow<'a, str>,
    uid: i64,
    #[serde(skip_serializing_if = "Option::is_none", borrow)]
    project: Option<Cow<'a, str>>,
    #[serde(rename = "approvalInputVersion", skip_serializing_if = "Option::is_none")]
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
    let mut out = BufWriter::with_capacity(64 * 1024, std::io::stdout().lock());
    loop {
        let notification = listener.recv().await?;
        print(&mut out, notification.payload())?;
        // Whatever is ready without waiting (`recv` is cancel-safe), then one flush.
        // (`next_buffered()` sees only notifications sqlx set aside while answering a query, so
        // it would flush after every line.)
        while let Some(next) = listener.recv().now_or_never() {
            print(&mut out, next?.payload())?;
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
