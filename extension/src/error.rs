//! Turns an argument error into a PostgreSQL ERROR with the SQLSTATE the contract names.

use bytebase_signal_client::validate::ArgumentError;
use pgrx::PgSqlErrorCode;

/// Raises `error` as an ERROR; never returns (PostgreSQL unwinds to the caller's handler).
pub(crate) fn raise(error: &ArgumentError) -> ! {
    // The SQLSTATE is the client's rule (`ValueError::sqlstate`); here it only picks pgrx's
    // constant for it.
    let code = match error.error.sqlstate() {
        "22004" => PgSqlErrorCode::ERRCODE_NULL_VALUE_NOT_ALLOWED,
        _ => PgSqlErrorCode::ERRCODE_INVALID_PARAMETER_VALUE,
    };
    pgrx::ereport!(ERROR, code, error.to_string());
}
