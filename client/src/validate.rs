//! Argument rules of the SQL send functions, kept free of PostgreSQL so they can be unit-tested
//! and shared: a run uid is a positive `bigint`, NULL is never a silent no-op, and a batch is
//! checked whole before anything is sent.

use std::collections::HashSet;
use std::fmt;

/// A validated run id: an integer in `1..=i64::MAX` (the ids of `task_run` / `plan_check_run`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct RunUid(i64);

impl RunUid {
    /// Accepts `value` if it is positive.
    pub const fn new(value: i64) -> Result<Self, UidError> {
        if value > 0 {
            Ok(RunUid(value))
        } else {
            Err(UidError::NotPositive(value))
        }
    }

    /// The id as PostgreSQL stores it.
    pub const fn get(self) -> i64 {
        self.0
    }
}

impl fmt::Display for RunUid {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

impl TryFrom<i64> for RunUid {
    type Error = UidError;

    fn try_from(value: i64) -> Result<Self, Self::Error> {
        RunUid::new(value)
    }
}

/// Why a single value is not a run uid.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum UidError {
    /// SQL NULL where a uid was required.
    #[error("must not be NULL")]
    Null,
    /// Zero or negative.
    #[error("must be a positive run id, got {0}")]
    NotPositive(i64),
}

impl UidError {
    /// The SQLSTATE PostgreSQL reports for this error: `22004` (null_value_not_allowed) or
    /// `22023` (invalid_parameter_value).
    pub const fn sqlstate(self) -> &'static str {
        match self {
            UidError::Null => "22004",
            UidError::NotPositive(_) => "22023",
        }
    }
}

/// A rejected argument of a SQL function, with everything its error message names.
///
/// Displays as, for example, `bytebase_cancel_task_runs(uids): uids[2] must not be NULL`.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{function}({argument}): {argument}{} {error}", position(*.index))]
pub struct ArgumentError {
    /// The SQL function that was called.
    pub function: &'static str,
    /// The name of the offending argument, as declared in SQL.
    pub argument: &'static str,
    /// For an array argument, the 1-based position of the offending element; `None` when the
    /// argument itself is at fault.
    pub index: Option<usize>,
    /// What is wrong with the value.
    pub error: UidError,
}

fn position(index: Option<usize>) -> String {
    index.map(|i| format!("[{i}]")).unwrap_or_default()
}

impl ArgumentError {
    /// The SQLSTATE to raise; see [`UidError::sqlstate`].
    pub const fn sqlstate(&self) -> &'static str {
        self.error.sqlstate()
    }
}

/// Validates the `argument` of `function`, a single nullable uid.
pub fn validate_uid(
    function: &'static str,
    argument: &'static str,
    value: Option<i64>,
) -> Result<RunUid, ArgumentError> {
    let error = |error| ArgumentError { function, argument, index: None, error };
    RunUid::new(value.ok_or_else(|| error(UidError::Null))?).map_err(error)
}

/// Validates a nullable array of nullable uids, every element before any is used, and returns
/// the distinct uids in the order of their first occurrence.
///
/// `values` is `None` for a NULL array. Elements are numbered from 1 in iteration order, which for
/// an ordinary one-dimensional SQL array is its subscript.
pub fn validate_uids<I>(
    function: &'static str,
    argument: &'static str,
    values: Option<I>,
) -> Result<Vec<RunUid>, ArgumentError>
where
    I: IntoIterator<Item = Option<i64>>,
{
    let Some(values) = values else {
        return Err(ArgumentError { function, argument, index: None, error: UidError::Null });
    };
    let values = values.into_iter();
    let mut distinct = Vec::with_capacity(values.size_hint().0);
    let mut seen = HashSet::with_capacity(values.size_hint().0);
    for (i, value) in values.enumerate() {
        let error = |error| ArgumentError { function, argument, index: Some(i + 1), error };
        let uid = RunUid::new(value.ok_or_else(|| error(UidError::Null))?).map_err(error)?;
        if seen.insert(uid) {
            distinct.push(uid);
        }
    }
    Ok(distinct)
}

#[cfg(test)]
mod tests {
    use super::*;

    const F: &str = "bytebase_cancel_task_run";
    const FS: &str = "bytebase_cancel_task_runs";

    #[test]
    fn positive_uids_are_accepted() {
        assert_eq!(validate_uid(F, "uid", Some(1)).map(RunUid::get), Ok(1));
        assert_eq!(validate_uid(F, "uid", Some(i64::MAX)).map(RunUid::get), Ok(i64::MAX));
    }

    #[test]
    fn null_and_non_positive_uids_are_rejected_with_their_sqlstate() {
        let cases = [(None, "22004"), (Some(0), "22023"), (Some(-1), "22023"), (Some(i64::MIN), "22023")];
        for (value, sqlstate) in cases {
            let err = validate_uid(F, "uid", value).expect_err("must be rejected");
            assert_eq!(err.sqlstate(), sqlstate, "{value:?}");
            assert_eq!(err.index, None);
        }
    }

    #[test]
    fn messages_name_the_function_the_argument_and_the_value() {
        let err = validate_uid(F, "uid", None).unwrap_err();
        assert_eq!(err.to_string(), "bytebase_cancel_task_run(uid): uid must not be NULL");
        let err = validate_uid(F, "uid", Some(-9223372036854775808)).unwrap_err();
        assert_eq!(
            err.to_string(),
            "bytebase_cancel_task_run(uid): uid must be a positive run id, got -9223372036854775808"
        );
        let err = validate_uids(FS, "uids", Some([Some(5), Some(0)])).unwrap_err();
        assert_eq!(
            err.to_string(),
            "bytebase_cancel_task_runs(uids): uids[2] must be a positive run id, got 0"
        );
        let err = validate_uids(FS, "uids", None::<Vec<Option<i64>>>).unwrap_err();
        assert_eq!(err.to_string(), "bytebase_cancel_task_runs(uids): uids must not be NULL");
    }

    #[test]
    fn batches_keep_distinct_uids_in_first_occurrence_order() {
        let got = validate_uids(FS, "uids", Some([Some(3), Some(1), Some(3), Some(2), Some(1)])).unwrap();
        assert_eq!(got.iter().map(|u| u.get()).collect::<Vec<_>>(), [3, 1, 2]);
        let empty = validate_uids(FS, "uids", Some(Vec::<Option<i64>>::new())).unwrap();
        assert!(empty.is_empty());
    }

    #[test]
    fn batches_report_the_first_bad_element() {
        let err = validate_uids(FS, "uids", Some([Some(1), None, Some(-1)])).unwrap_err();
        assert_eq!((err.index, err.error), (Some(2), UidError::Null));
        let err = validate_uids(FS, "uids", Some([Some(1), Some(-1), None])).unwrap_err();
        assert_eq!((err.index, err.error), (Some(2), UidError::NotPositive(-1)));
        assert_eq!(err.sqlstate(), "22023");
    }
}
