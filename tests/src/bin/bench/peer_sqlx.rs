//! The in-process Rust peer: what a sqlx 0.8 user would write to cancel the runs their process
//! owns. One task loops over `PgListener::recv()`, decodes each payload with serde_json into a
//! typed struct, looks the run up in the application's own map of cancellation tokens (a
//! `Mutex<HashMap>`, which the tasks running the runs insert into and remove from) and cancels it
//! if it is there. No reconnects, no log, no de-duplication: nothing shaped like ours.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use anyhow::Result;
use serde::Deserialize;
use tokio_util::sync::CancellationToken;

/// The payload's `type`.
#[derive(Clone, Copy, Debug, Deserialize, PartialEq, Eq, Hash)]
#[serde(rename_all = "snake_case")]
pub enum Kind {
    CancelTaskRun,
    CancelPlanCheckRun,
}

/// One cancel, as the seed wire format spells it.
#[derive(Debug, Deserialize)]
pub struct Cancel {
    #[serde(rename = "type")]
    pub kind: Kind,
    pub uid: i64,
    #[allow(dead_code)] // decoded as a user's struct would, not read here
    pub project: Option<String>,
    #[serde(rename = "approvalInputVersion")]
    #[allow(dead_code)]
    pub approval_input_version: Option<i64>,
}

/// The runs this process owns: one token each.
pub type Runs = Arc<Mutex<HashMap<(Kind, i64), CancellationToken>>>;

/// A listener on the cancels' channel, at `url`.
pub async fn listen(url: &str) -> Result<sqlx::postgres::PgListener> {
    let mut listener = sqlx::postgres::PgListener::connect(url).await?;
    listener.listen("bytebase_signal").await?;
    Ok(listener)
}

/// What the user's loop does with one notification: decode it and cancel the run if this process
/// owns it. The decoded cancel, or `None` for a payload that is not one (reported, skipped).
pub fn handle(runs: &Runs, payload: &str) -> Option<Cancel> {
    match serde_json::from_str::<Cancel>(payload) {
        Ok(cancel) => {
            if let Some(token) =
                runs.lock().unwrap_or_else(|e| e.into_inner()).get(&(cancel.kind, cancel.uid))
            {
                token.cancel();
            }
            Some(cancel)
        }
        Err(e) => {
            eprintln!("malformed payload ignored: {e}");
            None
        }
    }
}
