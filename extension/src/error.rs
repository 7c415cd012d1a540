//! Turns an argument error into a PostgreSQL ERROR with the SQLSTATE the contract names.

use bytebase_signal_client::validate::{ArgumentError, ValueError};
use pgrx::PgSqlErrorCode;

/// Raises `error` as an ERROR; never returns (PostgreSQL unwinds to the caller's handler).
pub(crate) fn raise(error: &ArgumentError) -> ! {
    let code = match error.error {
        ValueError::Null => PgSqlErrorCode::ERRCODE_NULL_VALUE_NOT_ALLOWED,
        ValueError::NotPositive(_) | ValueError::Empty | ValueError::TooLong(_) | ValueError::Negative(_) => {
            PgSqlErrorCode::ERRCODE_INVALID_PARAMETER_VALUE
        }
    };
    pgrx::ereport!(ERROR, code, error.to_string());
}
