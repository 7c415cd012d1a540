//! One cancel signal as a value: its lenient decoder and its encoder (the bytes are [`wire`]'s).
//!
//! Senders of this project emit the seed encoding of [`wire`]. Listeners must also understand
//! today's upstream Go replicas, which send protobuf-JSON such as
//! `{"type":"CANCEL_TASK_RUN","uid":"123","project":"proj-a"}`, so [`Signal::decode`] accepts
//! either spelling of `type`, `uid` as a JSON number or a decimal string, optional `project` and
//! `approvalInputVersion`, any whitespace, and ignores fields it does not know.
//!
//! A payload arrives from a shared channel that anything with database access can write to, so
//! decoding is total: every input yields either a [`Signal`] or a [`DecodeError`] for the listener
//! to count and log, never a panic.
//!
//! ```
//! use bytebase_signal_client::signal::Signal;
//! use bytebase_signal_client::wire::SignalKind;
//!
//! let signal = Signal::decode(r#"{"type":"CANCEL_TASK_RUN","uid":"123","project":"proj-a"}"#)?;
//! assert_eq!(signal.kind, SignalKind::TaskRun);
//! assert_eq!(signal.uid.get(), 123);
//! assert_eq!(signal.project.as_deref(), Some("proj-a"));
//! # Ok::<(), bytebase_signal_client::signal::DecodeError>(())
//! ```

#[cfg(feature = "runtime")]
use std::num::NonZeroI64;
use std::str::FromStr;

use serde_json::Value;

use crate::validate::RunUid;
use crate::wire::{self, SignalKind, WireFormat};

/// The longest excerpt of an offending value a [`DecodeError`] carries. A payload may be close to
/// 8000 bytes of anything; errors end up in logs and status snapshots, which should stay small.
const EXCERPT_LEN: usize = 64;

/// A decoded cancel signal: which run to cancel, plus the optional context upstream senders add.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub struct Signal {
    /// What kind of run to cancel.
    pub kind: SignalKind,
    /// The id of the run to cancel.
    pub uid: RunUid,
    /// The project the run belongs to, when the sender named it (upstream protobuf-JSON does).
    pub project: Option<String>,
    /// The plan's approval input version, when the sender named it (upstream protobuf-JSON may).
    pub approval_input_version: Option<i64>,
}

impl Signal {
    /// A signal for run `uid` of `kind`, without the optional fields.
    pub fn new(kind: SignalKind, uid: RunUid) -> Self {
        Signal { kind, uid, project: None, approval_input_version: None }
    }

    /// This signal with its `project` set.
    pub fn with_project(mut self, project: impl Into<String>) -> Self {
        self.project = Some(project.into());
        self
    }

    /// This signal with its `approval_input_version` set.
    pub fn with_approval_input_version(mut self, version: i64) -> Self {
        self.approval_input_version = Some(version);
        self
    }

    /// The project and approval input version that set this cancel apart from others of the same
    /// run id, with protojson's zero values (an empty project, a version of 0, which protojson
    /// leaves out) counting as absent: the one rule the registry and the listener's
    /// de-duplication both go by.
    #[cfg(feature = "runtime")]
    pub(crate) fn scope(&self) -> (Option<&str>, Option<NonZeroI64>) {
        (
            self.project.as_deref().filter(|p| !p.is_empty()),
            self.approval_input_version.and_then(NonZeroI64::new),
        )
    }

    /// Encodes the signal as a NOTIFY payload in the seed format: [`Signal::encode`] with
    /// [`WireFormat::Seed`].
    pub fn encode_seed(&self) -> String {
        self.encode(WireFormat::Seed)
    }

    /// Encodes the signal as a NOTIFY payload in `format` ([`wire::encode`]).
    ///
    /// Without the optional fields the seed encoding is exactly [`wire::encode_seed`], e.g.
    /// `{"type":"cancel_task_run","uid":42}`; present optional fields follow in the same compact
    /// style, `,"project":"proj-a"` then `,"approvalInputVersion":2`. [`Signal::decode`] reads
    /// both formats back (in protojson a version of 0 is omitted, so it decodes as `None`).
    ///
    /// The result is not checked against [`wire::MAX_PAYLOAD_LEN`]: only a very long `project`
    /// can exceed it, and then PostgreSQL rejects the NOTIFY (and [`Signal::decode`] the payload).
    pub fn encode(&self, format: WireFormat) -> String {
        wire::encode(format, self.kind, self.uid, self.project.as_deref(), self.approval_input_version)
    }

    /// [`Signal::encode`], appended to `out` (a writer of many signals reuses one buffer).
    pub fn encode_into(&self, format: WireFormat, out: &mut String) {
        wire::encode_into(
            out,
            format,
            self.kind,
            self.uid,
            self.project.as_deref(),
            self.approval_input_version,
        )
    }

    /// Decodes a payload received on [`wire::CHANNEL`], leniently (see the module docs).
    ///
    /// `type` must be a string naming a known kind in the seed spelling (`cancel_task_run`) or
    /// the protobuf enum spelling (`CANCEL_TASK_RUN`). `uid` must be an integer in
    /// `1..=i64::MAX`, written as a JSON number without fraction or exponent, or as a decimal
    /// string. `project` must be a string and `approvalInputVersion` an `i64` (number or decimal
    /// string); either may be absent or `null`. Other fields are ignored; when a field occurs
    /// twice the last occurrence counts, as in Go's `encoding/json`.
    pub fn decode(payload: &str) -> Result<Signal, DecodeError> {
        if payload.len() > wire::MAX_PAYLOAD_LEN {
            return Err(DecodeError::TooLong { len: payload.len() });
        }
        match decode_seed_exactly(payload) {
            Some(signal) => Ok(signal),
            None => decode_json(payload),
        }
    }
}

/// The general path of [`Signal::decode`]: any JSON object, every field checked on its own.
fn decode_json(payload: &str) -> Result<Signal, DecodeError> {
    // A `Value` rather than a derived struct: every field needs its own leniency and its own
    // error, and numbers must be inspected before anything rounds them.
    let value: Value = serde_json::from_str(payload).map_err(|e| DecodeError::InvalidJson(e.to_string()))?;
    let Value::Object(fields) = value else {
        return Err(DecodeError::NotAnObject);
    };

    let kind = match fields.get("type") {
        None => return Err(DecodeError::MissingField("type")),
        Some(Value::String(name)) => {
            parse_kind(name).ok_or_else(|| DecodeError::UnknownType(shorten(name, EXCERPT_LEN)))?
        }
        Some(other) => return Err(DecodeError::TypeNotString(excerpt(other))),
    };
    let uid = match fields.get("uid") {
        None => return Err(DecodeError::MissingField("uid")),
        Some(value) => integer(value)
            .and_then(|uid| RunUid::new(uid).ok())
            .ok_or_else(|| DecodeError::BadUid(excerpt(value)))?,
    };
    let project = match fields.get("project") {
        None | Some(Value::Null) => None,
        Some(Value::String(project)) => Some(project.clone()),
        Some(other) => return Err(DecodeError::BadProject(excerpt(other))),
    };
    let approval_input_version = match fields.get("approvalInputVersion") {
        None | Some(Value::Null) => None,
        Some(value) => {
            Some(integer(value).ok_or_else(|| DecodeError::BadApprovalInputVersion(excerpt(value)))?)
        }
    };
    Ok(Signal { kind, uid, project, approval_input_version })
}

impl FromStr for Signal {
    type Err = DecodeError;

    /// Same as [`Signal::decode`].
    fn from_str(payload: &str) -> Result<Self, Self::Err> {
        Signal::decode(payload)
    }
}

/// Why a payload is not a signal. Each is a counted, logged no-op for the listener, never fatal.
///
/// Variants that quote the payload carry at most a short excerpt of it, so that an error is always
/// cheap to keep and to log.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum DecodeError {
    /// The payload is longer than PostgreSQL allows on a NOTIFY ([`wire::MAX_PAYLOAD_LEN`]); no
    /// conforming sender produces it.
    #[error("payload is {len} bytes, over the {} byte NOTIFY limit", wire::MAX_PAYLOAD_LEN)]
    TooLong {
        /// The payload's length in bytes.
        len: usize,
    },
    /// The payload is not one JSON value (the parser's message says where it failed).
    #[error("payload is not valid JSON: {0}")]
    InvalidJson(String),
    /// The payload is JSON, but not an object.
    #[error("payload is not a JSON object")]
    NotAnObject,
    /// A required field (`type` or `uid`) is absent.
    #[error("payload has no `{0}` field")]
    MissingField(&'static str),
    /// `type` is present but not a string; carries an excerpt of its JSON.
    #[error("`type` is not a string: {0}")]
    TypeNotString(String),
    /// `type` is a string naming no known signal; carries (an excerpt of) it.
    #[error("unknown signal type {0:?}")]
    UnknownType(String),
    /// `uid` is not an integer in `1..=i64::MAX` (zero, negative, fractional, too large, not a
    /// number or decimal string); carries an excerpt of its JSON.
    #[error("`uid` is not a run id in 1..=9223372036854775807: {0}")]
    BadUid(String),
    /// `project` is neither a string nor `null`; carries an excerpt of its JSON.
    #[error("`project` is not a string: {0}")]
    BadProject(String),
    /// `approvalInputVersion` is not a 64-bit integer (number or decimal string) nor `null`;
    /// carries an excerpt of its JSON.
    #[error("`approvalInputVersion` is not a 64-bit integer: {0}")]
    BadApprovalInputVersion(String),
}

/// The fast path: a payload in exactly the bytes our senders produce,
/// `{"type":"cancel_task_run","uid":42}`, decoded without building a JSON tree. Anything else
/// (other spacing, field order, extra fields, the upstream spelling) returns `None` and takes the
/// general path, which gives the same result for these bytes; a property test checks that.
fn decode_seed_exactly(payload: &str) -> Option<Signal> {
    let rest = payload.strip_prefix(r#"{"type":""#)?;
    let kind = SignalKind::ALL.into_iter().find(|k| rest.starts_with(k.seed_type()))?;
    let digits = rest[kind.seed_type().len()..].strip_prefix(r#"","uid":"#)?.strip_suffix('}')?;
    // Canonical decimal only (no sign, no leading zero), as our encoder writes it.
    if digits.is_empty()
        || digits.len() > 19
        || digits.starts_with('0')
        || !digits.bytes().all(|b| b.is_ascii_digit())
    {
        return None;
    }
    let uid = RunUid::new(digits.parse().ok()?).ok()?;
    Some(Signal::new(kind, uid))
}

/// Maps either accepted spelling of `type` to its kind: the seed's `cancel_task_run` or the
/// protobuf enum name `CANCEL_TASK_RUN`. Mixed case is neither, so it is rejected.
pub(crate) fn parse_kind(name: &str) -> Option<SignalKind> {
    SignalKind::ALL.into_iter().find(|kind| {
        let seed = kind.seed_type();
        name == seed
            || (name.len() == seed.len()
                && name.bytes().zip(seed.bytes()).all(|(n, s)| n == s.to_ascii_uppercase()))
    })
}

/// An `i64` written as a JSON integer or, as protobuf-JSON writes 64-bit fields, a decimal string.
///
/// `serde_json` keeps integers exact and turns anything with a fraction or exponent (even `42.0`)
/// into a float, for which `as_i64` is `None`; integers beyond `i64` are `None` too.
fn integer(value: &Value) -> Option<i64> {
    match value {
        Value::Number(number) => number.as_i64(),
        Value::String(text) => decimal(text),
        _ => None,
    }
}

/// An `i64` written in decimal: an optional minus and ASCII digits, nothing else (`str::parse`
/// alone would also take `+7`).
pub(crate) fn decimal(text: &str) -> Option<i64> {
    let digits = text.strip_prefix('-').unwrap_or(text);
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    text.parse().ok()
}

/// The compact JSON of `value`, shortened for an error message.
fn excerpt(value: &Value) -> String {
    shorten(&value.to_string(), EXCERPT_LEN)
}

/// `text` cut to at most `max` bytes on a character boundary, marked with `…` if cut.
pub(crate) fn shorten(text: &str, max: usize) -> String {
    if text.len() <= max {
        return text.to_owned();
    }
    let mut end = max;
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}…", &text[..end])
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    use crate::test_support::{plan_check, task, uid};

    /// A valid payload padded with an unknown string field to exactly `len` bytes.
    fn padded(len: usize) -> String {
        let base = r#"{"type":"cancel_task_run","uid":42,"padding":""}"#;
        let padding = "x".repeat(len - base.len());
        let payload = format!(r#"{{"type":"cancel_task_run","uid":42,"padding":"{padding}"}}"#);
        assert_eq!(payload.len(), len);
        payload
    }

    #[test]
    fn seed_bytes_are_exact() {
        assert_eq!(task(42).encode_seed(), r#"{"type":"cancel_task_run","uid":42}"#);
        assert_eq!(plan_check(7).encode_seed(), r#"{"type":"cancel_plan_check_run","uid":7}"#);
        for kind in SignalKind::ALL {
            assert_eq!(
                Signal::new(kind, uid(i64::MAX)).encode_seed(),
                wire::encode_seed(kind, uid(i64::MAX))
            );
        }
    }

    #[test]
    fn seed_payloads_decode() {
        assert_eq!(Signal::decode(r#"{"type":"cancel_task_run","uid":42}"#), Ok(task(42)));
        assert_eq!(Signal::decode(r#"{"type":"cancel_plan_check_run","uid":7}"#), Ok(plan_check(7)));
        assert_eq!(
            Signal::decode(r#"{"type":"cancel_task_run","uid":9223372036854775807}"#),
            Ok(task(i64::MAX))
        );
        assert_eq!(r#"{"type":"cancel_task_run","uid":1}"#.parse::<Signal>(), Ok(task(1)));
    }

    #[test]
    fn optional_fields_are_appended_compactly_and_round_trip() {
        let signal = task(42).with_project("proj-a").with_approval_input_version(2);
        let payload = signal.encode_seed();
        assert_eq!(
            payload,
            r#"{"type":"cancel_task_run","uid":42,"project":"proj-a","approvalInputVersion":2}"#
        );
        assert_eq!(Signal::decode(&payload), Ok(signal));

        let only_version = plan_check(7).with_approval_input_version(-3);
        assert_eq!(
            only_version.encode_seed(),
            r#"{"type":"cancel_plan_check_run","uid":7,"approvalInputVersion":-3}"#
        );
        let tricky = task(1).with_project("a\"b\\c\nd\u{1}é\u{7f}");
        assert_eq!(
            tricky.encode_seed(),
            r#"{"type":"cancel_task_run","uid":1,"project":"a\"b\\c\nd\u0001é"#.to_owned() + "\u{7f}\"}"
        );
        assert_eq!(Signal::decode(&tricky.encode_seed()), Ok(tricky));
    }

    #[test]
    fn upstream_protobuf_json_decodes() {
        assert_eq!(
            Signal::decode(r#"{"type":"CANCEL_TASK_RUN","uid":"123","project":"proj-a"}"#),
            Ok(task(123).with_project("proj-a"))
        );
        assert_eq!(
            Signal::decode(
                r#"{"type":"CANCEL_PLAN_CHECK_RUN","uid":"7","project":"p","approvalInputVersion":"2"}"#
            ),
            Ok(plan_check(7).with_project("p").with_approval_input_version(2))
        );
        assert_eq!(
            Signal::decode(r#"{"type":"CANCEL_TASK_RUN","uid":"9223372036854775807"}"#),
            Ok(task(i64::MAX))
        );
        // Numbers where protobuf-JSON writes strings, and the reverse, are both fine.
        assert_eq!(
            Signal::decode(r#"{"type":"CANCEL_TASK_RUN","uid":5,"approvalInputVersion":-1}"#),
            Ok(task(5).with_approval_input_version(-1))
        );
        assert_eq!(Signal::decode(r#"{"type":"cancel_task_run","uid":"5"}"#), Ok(task(5)));
    }

    #[test]
    fn whitespace_field_order_nulls_and_unknown_fields_are_tolerated() {
        let cases = [
            " {\"type\" : \"cancel_task_run\" ,\n\t\"uid\" : 42 } \n",
            "\r\n{\r\n  \"uid\": 42,\r\n  \"type\": \"cancel_task_run\"\r\n}\r\n",
            r#"{"type":"cancel_task_run","uid":42,"extra":{"nested":[1,2.5,null]},"x":true}"#,
            r#"{"type":"cancel_task_run","uid":42,"project":null,"approvalInputVersion":null}"#,
            r#"{"uid":1,"type":"cancel_task_run","uid":42}"#,
            r#"{"type":"cancel_task_run","uid":42,"Type":"nonsense","UID":-1}"#,
        ];
        for payload in cases {
            assert_eq!(Signal::decode(payload), Ok(task(42)), "{payload:?}");
        }
    }

    #[test]
    fn payload_length_limit() {
        let under = padded(7900);
        assert_eq!(Signal::decode(&under), Ok(task(42)));
        assert_eq!(Signal::decode(&padded(wire::MAX_PAYLOAD_LEN)), Ok(task(42)));
        let over = padded(8000);
        assert_eq!(Signal::decode(&over), Err(DecodeError::TooLong { len: 8000 }));
    }

    /// In an expected error: any non-empty text will do, only the variant is checked.
    const ANY: &str = "<any>";

    #[test]
    fn garbage_is_rejected_with_the_right_error() {
        use DecodeError::*;
        let t = |uid: &str| format!(r#"{{"type":"cancel_task_run","uid":{uid}}}"#);
        let cases: Vec<(String, DecodeError)> = vec![
            ("{".into(), InvalidJson(ANY.into())),
            (String::new(), InvalidJson(ANY.into())),
            ("   ".into(), InvalidJson(ANY.into())),
            ("cancel_task_run 42".into(), InvalidJson(ANY.into())),
            (r#"{"type":"cancel_task_run","uid":42} x"#.into(), InvalidJson(ANY.into())),
            (r#"{"type":"cancel_task_run","uid":42}{}"#.into(), InvalidJson(ANY.into())),
            (r#"{'type':'cancel_task_run','uid':42}"#.into(), InvalidJson(ANY.into())),
            (r#"{"type":"cancel_task_run","uid":42,}"#.into(), InvalidJson(ANY.into())),
            ("\u{feff}{\"type\":\"cancel_task_run\",\"uid\":42}".into(), InvalidJson(ANY.into())),
            // Deep nesting hits the parser's recursion limit instead of overflowing the stack.
            ("[".repeat(3000) + &"]".repeat(3000), InvalidJson(ANY.into())),
            ("null".into(), NotAnObject),
            ("[]".into(), NotAnObject),
            (r#"[{"type":"cancel_task_run","uid":42}]"#.into(), NotAnObject),
            (r#""str""#.into(), NotAnObject),
            ("42".into(), NotAnObject),
            ("{}".into(), MissingField("type")),
            (r#"{"uid":42}"#.into(), MissingField("type")),
            (r#"{"type":"cancel_task_run"}"#.into(), MissingField("uid")),
            (t("0"), BadUid("0".into())),
            (t("-1"), BadUid("-1".into())),
            // Floats are quoted as the JSON library formats them, which is its own business.
            (t("-0"), BadUid(ANY.into())),
            (t("1.5"), BadUid(ANY.into())),
            (t("42.0"), BadUid(ANY.into())),
            (t("4.2e1"), BadUid(ANY.into())),
            (t("1e2"), BadUid(ANY.into())),
            (t("9223372036854775808"), BadUid("9223372036854775808".into())),
            (t("18446744073709551616"), BadUid(ANY.into())),
            (t("-9223372036854775808"), BadUid("-9223372036854775808".into())),
            (t(r#""abc""#), BadUid(r#""abc""#.into())),
            (t(r#""""#), BadUid(r#""""#.into())),
            (t(r#""0""#), BadUid(r#""0""#.into())),
            (t(r#""-1""#), BadUid(r#""-1""#.into())),
            (t(r#""-""#), BadUid(r#""-""#.into())),
            (t(r#""+42""#), BadUid(r#""+42""#.into())),
            (t(r#"" 42""#), BadUid(r#"" 42""#.into())),
            (t(r#""42 ""#), BadUid(r#""42 ""#.into())),
            (t(r#""4_2""#), BadUid(r#""4_2""#.into())),
            (t(r#""42.0""#), BadUid(r#""42.0""#.into())),
            (t(r#""0x2a""#), BadUid(r#""0x2a""#.into())),
            (t(r#""9223372036854775808""#), BadUid(r#""9223372036854775808""#.into())),
            (t(r#""４２""#), BadUid(r#""４２""#.into())),
            (t("true"), BadUid("true".into())),
            (t("null"), BadUid("null".into())),
            (t("[42]"), BadUid("[42]".into())),
            (t(r#"{"value":42}"#), BadUid(r#"{"value":42}"#.into())),
            (r#"{"type":"cancel_everything","uid":42}"#.into(), UnknownType("cancel_everything".into())),
            (r#"{"type":"Cancel_Task_Run","uid":42}"#.into(), UnknownType("Cancel_Task_Run".into())),
            (r#"{"type":"cancel_task_run ","uid":42}"#.into(), UnknownType("cancel_task_run ".into())),
            (r#"{"type":"","uid":42}"#.into(), UnknownType(String::new())),
            (r#"{"type":"CANCEL_TASK_RUN_","uid":42}"#.into(), UnknownType("CANCEL_TASK_RUN_".into())),
            (r#"{"type":1,"uid":42}"#.into(), TypeNotString("1".into())),
            (r#"{"type":null,"uid":42}"#.into(), TypeNotString("null".into())),
            (
                r#"{"type":["cancel_task_run"],"uid":42}"#.into(),
                TypeNotString(r#"["cancel_task_run"]"#.into()),
            ),
            (r#"{"type":"cancel_task_run","uid":42,"project":5}"#.into(), BadProject("5".into())),
            (r#"{"type":"cancel_task_run","uid":42,"project":["a"]}"#.into(), BadProject(r#"["a"]"#.into())),
            (
                r#"{"type":"cancel_task_run","uid":42,"approvalInputVersion":"x"}"#.into(),
                BadApprovalInputVersion(r#""x""#.into()),
            ),
            (
                r#"{"type":"cancel_task_run","uid":42,"approvalInputVersion":1.5}"#.into(),
                BadApprovalInputVersion(ANY.into()),
            ),
            (
                r#"{"type":"cancel_task_run","uid":42,"approvalInputVersion":true}"#.into(),
                BadApprovalInputVersion("true".into()),
            ),
            (padded(8000), TooLong { len: 8000 }),
            ("{".repeat(20_000), TooLong { len: 20_000 }),
        ];
        assert!(cases.len() >= 16);
        for (payload, expected) in cases {
            let got = Signal::decode(&payload);
            let shown: String = payload.chars().take(80).collect();
            // serde's reading of a signal refuses the same payloads (the length limit is the
            // decoder's alone: a NOTIFY cannot carry more).
            #[cfg(feature = "serde")]
            if !matches!(expected, TooLong { .. }) {
                assert!(serde_json::from_str::<Signal>(&payload).is_err(), "serde read {shown:?}");
            }
            match (&got, &expected) {
                (Err(InvalidJson(quoted)), InvalidJson(any))
                | (Err(BadUid(quoted)), BadUid(any))
                | (Err(BadApprovalInputVersion(quoted)), BadApprovalInputVersion(any))
                    if any == ANY =>
                {
                    assert!(!quoted.is_empty(), "{shown:?}")
                }
                _ => assert_eq!(got, Err(expected), "{shown:?}"),
            }
        }
    }

    #[test]
    fn required_fields_are_checked_type_first() {
        // Both broken: the error names `type`, so a stream of junk is classified consistently.
        assert_eq!(Signal::decode(r#"{"uid":0}"#), Err(DecodeError::MissingField("type")));
        assert_eq!(
            Signal::decode(r#"{"type":"nope","uid":0}"#),
            Err(DecodeError::UnknownType("nope".into()))
        );
    }

    #[test]
    fn errors_quote_only_a_short_excerpt() {
        let long = "é".repeat(1000);
        let err = Signal::decode(&format!(r#"{{"type":"{long}","uid":1}}"#)).unwrap_err();
        let DecodeError::UnknownType(quoted) = &err else { panic!("unexpected {err:?}") };
        assert!(quoted.len() <= EXCERPT_LEN + '…'.len_utf8(), "{}", quoted.len());
        assert!(quoted.ends_with('…'));
        let err = Signal::decode(&format!(r#"{{"type":"cancel_task_run","uid":"{long}"}}"#));
        let Err(DecodeError::BadUid(quoted)) = &err else { panic!("unexpected {err:?}") };
        assert!(quoted.starts_with("\"é") && quoted.len() <= EXCERPT_LEN + 3);
        // Messages are readable on their own.
        assert_eq!(
            Signal::decode(r#"{"type":"cancel_task_run","uid":0}"#).unwrap_err().to_string(),
            "`uid` is not a run id in 1..=9223372036854775807: 0"
        );
        assert_eq!(
            DecodeError::TooLong { len: 8000 }.to_string(),
            "payload is 8000 bytes, over the 7999 byte NOTIFY limit"
        );
    }

    #[test]
    fn both_spellings_of_every_kind_are_known() {
        for kind in SignalKind::ALL {
            assert_eq!(parse_kind(kind.seed_type()), Some(kind));
            assert_eq!(parse_kind(&kind.seed_type().to_ascii_uppercase()), Some(kind));
        }
        assert_eq!(parse_kind("CANCEL_task_run"), None);
    }

    fn kinds() -> impl Strategy<Value = SignalKind> {
        prop::sample::select(SignalKind::ALL.to_vec())
    }

    fn uids() -> impl Strategy<Value = RunUid> {
        (1..=i64::MAX).prop_map(uid)
    }

    /// Any characters at all, control characters and astral ones included, kept short enough
    /// that the encoded payload stays under the NOTIFY limit.
    fn projects() -> impl Strategy<Value = String> {
        prop::collection::vec(any::<char>(), 0..200).prop_map(String::from_iter)
    }

    /// Pieces of JSON, valid and broken, that glue together into near-miss payloads.
    const FRAGMENTS: &[&str] = &[
        "{",
        "}",
        "[",
        "]",
        ":",
        ",",
        " ",
        "\n",
        "\"",
        "\\",
        "\\u",
        "00",
        "d83d",
        "\\ud83d",
        "\"type\"",
        "\"uid\"",
        "\"project\"",
        "\"approvalInputVersion\"",
        "\"cancel_task_run\"",
        "\"CANCEL_TASK_RUN\"",
        "\"cancel_plan_check_run\"",
        "\"CANCEL_PLAN_CHECK_RUN\"",
        "0",
        "1",
        "-",
        "42",
        "9223372036854775807",
        "9223372036854775808",
        "18446744073709551616",
        "1e999",
        "-1",
        "1.5",
        "e",
        "E+",
        ".",
        "true",
        "false",
        "null",
        "\"42\"",
        "\"\"",
        "\"x\"",
        "é",
        "\u{0}",
        "\u{1f600}",
    ];

    fn json_ish() -> impl Strategy<Value = String> {
        prop::collection::vec(prop::sample::select(FRAGMENTS), 0..48).prop_map(|parts| parts.concat())
    }

    fn whitespace() -> impl Strategy<Value = &'static str> {
        prop::sample::select(vec!["", " ", "\n", "\t", "\r\n", "  "])
    }

    /// Whatever decodes must re-encode to a payload that decodes to the same signal.
    fn check_total(payload: &str) -> Result<(), TestCaseError> {
        if let Ok(signal) = Signal::decode(payload) {
            prop_assert!(signal.uid.get() > 0);
            let again = Signal::decode(&signal.encode_seed());
            prop_assert_eq!(again, Ok(signal));
        }
        Ok(())
    }

    proptest! {
        #[test]
        fn encode_then_decode_round_trips(
            kind in kinds(),
            uid in uids(),
            project in prop::option::of(projects()),
            version in prop::option::of(any::<i64>()),
        ) {
            let signal = Signal { kind, uid, project, approval_input_version: version };
            let payload = signal.encode_seed();
            prop_assert!(payload.len() <= wire::MAX_PAYLOAD_LEN);
            prop_assert_eq!(Signal::decode(&payload), Ok(signal));
        }

        #[test]
        fn the_fast_path_agrees_with_the_general_decoder(
            kind in kinds(),
            uid in any::<i64>(),
            digits in "[-+0-9]{0,21}",
            tail in prop::sample::select(vec!["}", "} ", ",\"x\":1}", "", "}}"]),
        ) {
            // Exact seed bytes, and near misses of them (bad digits, odd endings).
            for payload in [
                format!(r#"{{"type":"{}","uid":{uid}{tail}"#, kind.seed_type()),
                format!(r#"{{"type":"{}","uid":{digits}{tail}"#, kind.seed_type()),
            ] {
                if let Some(fast) = decode_seed_exactly(&payload) {
                    prop_assert_eq!(Ok(fast), decode_json(&payload), "{}", payload);
                }
            }
        }

        #[test]
        fn our_own_payloads_take_the_fast_path(kind in kinds(), uid in uids()) {
            prop_assert_eq!(decode_seed_exactly(&wire::encode_seed(kind, uid)), Some(Signal::new(kind, uid)));
        }

        #[test]
        fn seed_encoding_matches_the_wire_module(kind in kinds(), uid in uids()) {
            prop_assert_eq!(Signal::new(kind, uid).encode_seed(), wire::encode_seed(kind, uid));
        }

        #[test]
        fn protobuf_json_with_any_whitespace_decodes(
            kind in kinds(),
            uid in uids(),
            upper in any::<bool>(),
            quoted in any::<bool>(),
            ws in prop::collection::vec(whitespace(), 8),
        ) {
            let name = if upper { kind.seed_type().to_ascii_uppercase() } else { kind.seed_type().to_owned() };
            let uid_json = if quoted { format!("\"{uid}\"") } else { uid.to_string() };
            let payload = format!(
                "{}{{{}\"type\"{}:{}\"{name}\"{},{}\"uid\":{}{uid_json}{}}}",
                ws[0], ws[1], ws[2], ws[3], ws[4], ws[5], ws[6], ws[7]
            );
            prop_assert_eq!(Signal::decode(&payload), Ok(Signal::new(kind, uid)));
        }

        #[test]
        fn decode_is_total_on_arbitrary_strings(payload in any::<String>()) {
            check_total(&payload)?;
        }

        #[test]
        fn decode_is_total_on_json_ish_strings(payload in json_ish()) {
            check_total(&payload)?;
        }

        #[test]
        fn decode_is_total_on_objects_with_json_ish_values(
            type_value in json_ish(),
            uid_value in json_ish(),
            extra in json_ish(),
        ) {
            // Well-formed enough to reach the field checks most of the time.
            check_total(&format!(r#"{{"type":{type_value},"uid":{uid_value}}}"#))?;
            check_total(&format!(r#"{{"type":"cancel_task_run","uid":{uid_value},"project":{extra}}}"#))?;
            check_total(&format!(r#"{{"type":"cancel_task_run","uid":1,"approvalInputVersion":{extra}}}"#))?;
        }

        #[test]
        fn decimal_uid_strings_agree_with_numbers(value in any::<i64>()) {
            let as_number = Signal::decode(&format!(r#"{{"type":"cancel_task_run","uid":{value}}}"#));
            let as_string = Signal::decode(&format!(r#"{{"type":"cancel_task_run","uid":"{value}"}}"#));
            prop_assert_eq!(as_number.is_ok(), value > 0);
            prop_assert_eq!(as_number.ok(), as_string.ok());
        }
    }
}
