//! Argument rules of the SQL send functions, kept free of PostgreSQL so they can be unit-tested
//! and shared: a run uid is a positive `bigint`, a project a non-empty `text` of at most
//! [`MAX_PROJECT_LEN`] bytes, an approval input version a non-negative `bigint` (NULL: none), NULL
//! is never a silent no-op for a uid or project, and a batch is checked whole before anything is
//! sent.

use std::collections::HashSet;
use std::fmt;

/// A validated run id: an integer in `1..=i64::MAX` (the ids of `task_run` / `plan_check_run`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct RunUid(i64);

impl RunUid {
    /// Accepts `value` if it is positive.
    pub const fn new(value: i64) -> Result<Self, ValueError> {
        if value > 0 {
            Ok(RunUid(value))
        } else {
            Err(ValueError::NotPositive(value))
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
    type Error = ValueError;

    fn try_from(value: i64) -> Result<Self, Self::Error> {
        RunUid::new(value)
    }
}

/// The longest project name the send functions accept, in bytes. Upstream project ids are far
/// shorter; the bound keeps every payload, even with each byte escaped, below PostgreSQL's NOTIFY
/// limit ([`crate::wire::MAX_PAYLOAD_LEN`]).
pub const MAX_PROJECT_LEN: usize = 1024;

/// Why a single value is not acceptable.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ValueError {
    /// SQL NULL where a value was required.
    #[error("must not be NULL")]
    Null,
    /// A uid that is zero or negative.
    #[error("must be a positive run id, got {0}")]
    NotPositive(i64),
    /// An empty project.
    #[error("must not be empty")]
    Empty,
    /// A project longer than [`MAX_PROJECT_LEN`] bytes; carries its length.
    #[error("must be at most {MAX_PROJECT_LEN} bytes, got {0}")]
    TooLong(usize),
    /// A negative approval input version.
    #[error("must not be negative, got {0}")]
    Negative(i64),
}

/// The former name of [`ValueError`], from when uids were the only checked values.
pub type UidError = ValueError;

impl ValueError {
    /// The SQLSTATE PostgreSQL reports for this error: `22004` (null_value_not_allowed) for NULL,
    /// `22023` (invalid_parameter_value) for the rest.
    pub const fn sqlstate(self) -> &'static str {
        match self {
            ValueError::Null => "22004",
            _ => "22023",
        }
    }
}

/// A rejected argument of a SQL function, with everything its error message names.
///
/// Displays as, for example, `bytebase_cancel_task_runs(uids): uids[2] must not be NULL`.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{function}({argument}): {argument}{} {error}", position(*.index))]
#[non_exhaustive]
pub struct ArgumentError {
    /// The SQL function that was called.
    pub function: &'static str,
    /// The name of the offending argument, as declared in SQL.
    pub argument: &'static str,
    /// For an array argument, the 1-based position of the offending element; `None` when the
    /// argument itself is at fault.
    pub index: Option<usize>,
    /// What is wrong with the value.
    pub error: ValueError,
}

fn position(index: Option<usize>) -> String {
    index.map(|i| format!("[{i}]")).unwrap_or_default()
}

impl ArgumentError {
    /// The SQLSTATE to raise; see [`ValueError::sqlstate`].
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
    RunUid::new(value.ok_or_else(|| error(ValueError::Null))?).map_err(error)
}

/// Validates the `argument` of `function`, a project: not NULL, not empty, at most
/// [`MAX_PROJECT_LEN`] bytes.
pub fn validate_project<'a>(
    function: &'static str,
    argument: &'static str,
    value: Option<&'a str>,
) -> Result<&'a str, ArgumentError> {
    let error = |error| ArgumentError { function, argument, index: None, error };
    match value {
        None => Err(error(ValueError::Null)),
        Some("") => Err(error(ValueError::Empty)),
        Some(p) if p.len() > MAX_PROJECT_LEN => Err(error(ValueError::TooLong(p.len()))),
        Some(p) => Ok(p),
    }
}

/// Validates the `argument` of `function`, an optional approval input version: NULL means none,
/// otherwise it must not be negative.
pub fn validate_approval_input_version(
    function: &'static str,
    argument: &'static str,
    value: Option<i64>,
) -> Result<Option<i64>, ArgumentError> {
    match value {
        Some(v) if v < 0 => {
            Err(ArgumentError { function, argument, index: None, error: ValueError::Negative(v) })
        }
        v => Ok(v),
    }
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
        return Err(ArgumentError { function, argument, index: None, error: ValueError::Null });
    };
    let values = values.into_iter();
    let mut distinct = Vec::with_capacity(values.size_hint().0);
    let mut seen = HashSet::with_capacity(values.size_hint().0);
    for (i, value) in values.enumerate() {
        let error = |error| ArgumentError { function, argument, index: Some(i + 1), error };
        let uid = RunUid::new(value.ok_or_else(|| error(ValueError::Null))?).map_err(error)?;
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
    fn projects_must_be_present_non_empty_and_bounded() {
        let f = "bytebase_cancel_task_run";
        assert_eq!(validate_project(f, "project", Some("proj-a")), Ok("proj-a"));
        let longest = "p".repeat(MAX_PROJECT_LEN);
        assert_eq!(validate_project(f, "project", Some(&longest)), Ok(longest.as_str()));
        let err = validate_project(f, "project", None).unwrap_err();
        assert_eq!(
            (err.to_string().as_str(), err.sqlstate()),
            ("bytebase_cancel_task_run(project): project must not be NULL", "22004")
        );
        let err = validate_project(f, "project", Some("")).unwrap_err();
        assert_eq!(
            (err.to_string().as_str(), err.sqlstate()),
            ("bytebase_cancel_task_run(project): project must not be empty", "22023")
        );
        let too_long = "p".repeat(MAX_PROJECT_LEN + 1);
        let err = validate_project(f, "project", Some(&too_long)).unwrap_err();
        assert_eq!(
            err.to_string(),
            "bytebase_cancel_task_run(project): project must be at most 1024 bytes, got 1025"
        );
    }

    #[test]
    fn approval_input_versions_are_optional_and_not_negative() {
        let f = "bytebase_cancel_plan_check_run";
        let a = "approval_input_version";
        assert_eq!(validate_approval_input_version(f, a, None), Ok(None));
        assert_eq!(validate_approval_input_version(f, a, Some(0)), Ok(Some(0)));
        assert_eq!(validate_approval_input_version(f, a, Some(i64::MAX)), Ok(Some(i64::MAX)));
        let err = validate_approval_input_version(f, a, Some(-1)).unwrap_err();
        assert_eq!(err.sqlstate(), "22023");
        assert_eq!(
            err.to_string(),
            "bytebase_cancel_plan_check_run(approval_input_version): approval_input_version must not be negative, got -1"
        );
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
        assert_eq!((err.index, err.error), (Some(2), ValueError::Null));
        let err = validate_uids(FS, "uids", Some([Some(1), Some(-1), None])).unwrap_err();
        assert_eq!((err.index, err.error), (Some(2), ValueError::NotPositive(-1)));
        assert_eq!(err.sqlstate(), "22023");
    }
}
