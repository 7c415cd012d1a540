//! The payload contract on the `bytebase_signal` channel.
//!
//! Senders emit one of two encodings, chosen by [`WireFormat`]:
//!
//! - *seed* (the default), byte-exact with Go's `json.Marshal(&Signal{Type, UID})` of the first Go
//!   design of this signal: `{"type":"cancel_task_run","uid":42}` — no spaces, `type` first, `uid`
//!   a JSON number. Listeners written to that design compare these bytes. A project and an approval input version,
//!   when given, follow in the same style: `,"project":"proj-a","approvalInputVersion":2`.
//! - *protojson*, what today's upstream Go replicas send and parse:
//!   `{"type":"CANCEL_TASK_RUN","uid":"123","project":"proj-a"}` — upper-case enum names, 64-bit
//!   numbers as strings, zero values (an empty project, a version of 0) omitted.
//!
//! The encoders are hand-written rather than left to a JSON library's formatting choices, and the
//! golden vectors in `client/golden/payloads.json`, which the extension's, the pure-SQL edition's
//! and this crate's tests all read, pin every byte.

use std::fmt::Write as _;

use crate::validate::RunUid;

/// The NOTIFY channel every signal is sent on and every replica listens to.
pub const CHANNEL: &str = "bytebase_signal";

/// The longest payload PostgreSQL accepts on a NOTIFY (it rejects 8000 bytes and more). Ours are
/// far shorter; the constant documents the limit for anyone adding fields.
pub const MAX_PAYLOAD_LEN: usize = 7999;

/// A name (a channel such as [`CHANNEL`], a schema, a role) as a SQL identifier: always in double
/// quotes, with inner ones doubled. Correct for every name, including keywords and mixed case,
/// which PostgreSQL's own `quote_ident()` would leave bare only when that is safe; the one rule
/// for the listener's `LISTEN`, the doctor's statements and the GRANTs it suggests.
///
/// ```
/// use bytebase_signal_client::wire::quote_ident;
///
/// assert_eq!(quote_ident("bytebase_signal"), r#""bytebase_signal""#);
/// assert_eq!(quote_ident(r#"we"ird"#), r#""we""ird""#);
/// ```
pub fn quote_ident(name: &str) -> String {
    format!("\"{}\"", name.replace('"', "\"\""))
}

/// What a signal asks the owning replica to cancel.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
#[non_exhaustive]
pub enum SignalKind {
    /// A task run (a row of `task_run`).
    TaskRun,
    /// A plan check run (a row of `plan_check_run`).
    PlanCheckRun,
}

/// How a sender spells a signal (see the module docs). Listeners of this crate read both.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum WireFormat {
    /// `{"type":"cancel_task_run","uid":42}`: the first Go design's bytes, and the default.
    #[default]
    Seed,
    /// `{"type":"CANCEL_TASK_RUN","uid":"42"}`: upstream Bytebase's protobuf-JSON.
    ProtoJson,
}

impl WireFormat {
    /// Every format, in a fixed order.
    pub const ALL: [WireFormat; 2] = [WireFormat::Seed, WireFormat::ProtoJson];

    /// The name the `bytebase_signal.wire_format` setting and the CLI use: `seed` or `protojson`.
    pub const fn name(self) -> &'static str {
        match self {
            WireFormat::Seed => "seed",
            WireFormat::ProtoJson => "protojson",
        }
    }
}

impl std::str::FromStr for WireFormat {
    type Err = UnknownWireFormat;

    /// Parses [`WireFormat::name`], ignoring ASCII case as PostgreSQL does for enum settings.
    fn from_str(name: &str) -> Result<Self, Self::Err> {
        WireFormat::ALL
            .into_iter()
            .find(|f| f.name().eq_ignore_ascii_case(name))
            .ok_or_else(|| UnknownWireFormat(name.to_owned()))
    }
}

/// A wire format name that is neither `seed` nor `protojson`.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("unknown wire format {0:?} (expected seed or protojson)")]
#[non_exhaustive]
pub struct UnknownWireFormat(pub String);

impl SignalKind {
    /// Every kind, in a fixed order (useful for tests and tables).
    pub const ALL: [SignalKind; 2] = [SignalKind::TaskRun, SignalKind::PlanCheckRun];

    /// The `type` field of the protojson encoding: `CANCEL_TASK_RUN` or `CANCEL_PLAN_CHECK_RUN`.
    pub const fn protojson_type(self) -> &'static str {
        match self {
            SignalKind::TaskRun => "CANCEL_TASK_RUN",
            SignalKind::PlanCheckRun => "CANCEL_PLAN_CHECK_RUN",
        }
    }

    /// The `type` field of the seed encoding: `cancel_task_run` or `cancel_plan_check_run`.
    pub const fn seed_type(self) -> &'static str {
        match self {
            SignalKind::TaskRun => "cancel_task_run",
            SignalKind::PlanCheckRun => "cancel_plan_check_run",
        }
    }

    /// The SQL function that cancels one run of this kind.
    pub const fn cancel_function(self) -> &'static str {
        match self {
            SignalKind::TaskRun => "bytebase_cancel_task_run",
            SignalKind::PlanCheckRun => "bytebase_cancel_plan_check_run",
        }
    }

    /// The SQL function that cancels a batch of runs of this kind.
    pub const fn batch_cancel_function(self) -> &'static str {
        match self {
            SignalKind::TaskRun => "bytebase_cancel_task_runs",
            SignalKind::PlanCheckRun => "bytebase_cancel_plan_check_runs",
        }
    }
}

/// Encodes a signal in the seed format, e.g. `{"type":"cancel_task_run","uid":42}`.
pub fn encode_seed(kind: SignalKind, uid: RunUid) -> String {
    // `"type":"cancel_plan_check_run"` plus the widest i64 stays below 64 bytes.
    let mut payload = String::with_capacity(64);
    push_seed_fields(&mut payload, kind, uid);
    payload.push('}');
    payload
}

/// Appends the seed encoding without its closing brace: `{"type":"cancel_task_run","uid":42`.
fn push_seed_fields(out: &mut String, kind: SignalKind, uid: RunUid) {
    out.push_str(r#"{"type":""#);
    out.push_str(kind.seed_type());
    out.push_str(r#"","uid":"#);
    // itoa: a flood prints a million of these, and `fmt`'s machinery was a visible part of it.
    out.push_str(itoa::Buffer::new().format(uid.get()));
}

/// Encodes a signal in `format`, with the optional fields a sender may give: the project the run
/// belongs to and the plan's approval input version (see the module docs for both spellings).
///
/// Without the optional fields and in [`WireFormat::Seed`] this is [`encode_seed`]. A project
/// passes through [`crate::validate::validate_project`] first in every sender of this project, so
/// the payload stays below [`MAX_PAYLOAD_LEN`].
pub fn encode(
    format: WireFormat,
    kind: SignalKind,
    uid: RunUid,
    project: Option<&str>,
    approval_input_version: Option<i64>,
) -> String {
    let mut payload = String::with_capacity(64);
    encode_into(&mut payload, format, kind, uid, project, approval_input_version);
    payload
}

/// [`encode`], appended to `out`: a writer of many signals reuses one buffer (the CLI prints a
/// line per signal).
pub fn encode_into(
    out: &mut String,
    format: WireFormat,
    kind: SignalKind,
    uid: RunUid,
    project: Option<&str>,
    approval_input_version: Option<i64>,
) {
    match format {
        WireFormat::Seed => {
            push_seed_fields(out, kind, uid);
            if let Some(project) = project {
                out.push_str(r#","project":"#);
                push_json_string(out, project);
            }
            if let Some(version) = approval_input_version {
                let _ = write!(out, r#","approvalInputVersion":{version}"#);
            }
        }
        WireFormat::ProtoJson => {
            out.push_str(r#"{"type":""#);
            out.push_str(kind.protojson_type());
            let _ = write!(out, r#"","uid":"{}""#, uid.get());
            // Proto3 omits fields at their zero value.
            if let Some(project) = project.filter(|p| !p.is_empty()) {
                out.push_str(r#","project":"#);
                push_json_string(out, project);
            }
            if let Some(version) = approval_input_version.filter(|&v| v != 0) {
                let _ = write!(out, r#","approvalInputVersion":"{version}""#);
            }
        }
    }
    out.push('}');
}

/// Appends `text` as a JSON string literal the way PostgreSQL's `to_json` and Go's protojson
/// write it: quoted; `"` and `\` escaped; `\b`, `\f`, `\n`, `\r`, `\t` for those controls and
/// `\u00xx` (lower-case hex) for the other characters below U+0020; everything else as it is.
pub(crate) fn push_json_string(out: &mut String, text: &str) {
    out.push('"');
    for c in text.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\u{8}' => out.push_str("\\b"),
            '\u{c}' => out.push_str("\\f"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if c < ' ' => {
                // Writing to a `String` cannot fail.
                let _ = write!(out, "\\u{:04x}", u32::from(c));
            }
            c => out.push(c),
        }
    }
    out.push('"');
}

#[cfg(test)]
mod tests {
    use super::*;

    use crate::test_support::uid;

    #[test]
    fn encode_into_appends_what_encode_returns_in_either_format() {
        for format in [WireFormat::Seed, WireFormat::ProtoJson] {
            for (project, version) in [
                (None, None),
                (Some("proj \"a\""), Some(7)),
                (None, Some(0)),
                (Some(""), None),
                (Some("p"), None),
            ] {
                let mut out = String::from("line: ");
                encode_into(&mut out, format, SignalKind::PlanCheckRun, uid(42), project, version);
                let alone = encode(format, SignalKind::PlanCheckRun, uid(42), project, version);
                assert_eq!(out, format!("line: {alone}"), "{format:?} {project:?} {version:?}");
            }
        }
        assert_eq!(
            encode(WireFormat::Seed, SignalKind::TaskRun, uid(9), None, None),
            encode_seed(SignalKind::TaskRun, uid(9))
        );
    }

    #[test]
    fn seed_encoding_is_byte_exact() {
        assert_eq!(encode_seed(SignalKind::TaskRun, uid(42)), r#"{"type":"cancel_task_run","uid":42}"#);
        assert_eq!(
            encode_seed(SignalKind::PlanCheckRun, uid(7)),
            r#"{"type":"cancel_plan_check_run","uid":7}"#
        );
    }

    #[test]
    fn seed_encoding_covers_the_uid_range() {
        assert_eq!(encode_seed(SignalKind::TaskRun, uid(1)), r#"{"type":"cancel_task_run","uid":1}"#);
        let widest = encode_seed(SignalKind::PlanCheckRun, uid(i64::MAX));
        assert_eq!(widest, r#"{"type":"cancel_plan_check_run","uid":9223372036854775807}"#);
        assert!(widest.len() <= 64, "capacity hint too small: {}", widest.len());
        assert!(widest.len() <= MAX_PAYLOAD_LEN);
    }

    /// The golden vectors (`client/golden/payloads.json`): every byte of every encoding, and that
    /// the decoder reads each payload back.
    #[test]
    fn golden_vectors_encode_and_decode() {
        let doc: serde_json::Value =
            serde_json::from_str(include_str!("../golden/payloads.json")).expect("golden file is JSON");
        let vectors = doc["vectors"].as_array().expect("a vectors array");
        assert!(vectors.len() >= 16, "only {} golden vectors", vectors.len());
        for v in vectors {
            let format: WireFormat = v["format"].as_str().unwrap().parse().unwrap();
            let kind = match v["kind"].as_str().unwrap() {
                "task_run" => SignalKind::TaskRun,
                "plan_check_run" => SignalKind::PlanCheckRun,
                other => panic!("unknown kind {other}"),
            };
            let uid = uid(v["uid"].as_i64().unwrap());
            let project = v.get("project").map(|p| p.as_str().unwrap());
            let version = v.get("approval_input_version").map(|n| n.as_i64().unwrap());
            let payload = v["payload"].as_str().unwrap();
            assert_eq!(encode(format, kind, uid, project, version), payload, "{v}");
            assert!(payload.len() <= MAX_PAYLOAD_LEN);

            let decoded = crate::signal::Signal::decode(payload).unwrap_or_else(|e| panic!("{payload}: {e}"));
            let zero_omitted = format == WireFormat::ProtoJson && version == Some(0);
            let expected = crate::signal::Signal {
                kind,
                uid,
                project: project.map(str::to_owned),
                approval_input_version: if zero_omitted { None } else { version },
            };
            assert_eq!(decoded, expected, "{payload}");
            #[cfg(feature = "serde")]
            assert_eq!(
                serde_json::from_str::<crate::signal::Signal>(payload).unwrap(),
                expected,
                "{payload}"
            );
            assert_eq!(
                decoded.encode(format),
                if zero_omitted { encode(format, kind, uid, project, None) } else { payload.to_owned() }
            );
        }
    }

    #[test]
    fn wire_format_names_round_trip_ignoring_case() {
        for format in WireFormat::ALL {
            assert_eq!(format.name().parse(), Ok(format));
            assert_eq!(format.name().to_uppercase().parse(), Ok(format));
        }
        assert_eq!("json".parse::<WireFormat>(), Err(UnknownWireFormat("json".into())));
    }

    #[test]
    fn function_names_follow_the_kind() {
        for kind in SignalKind::ALL {
            let single = kind.cancel_function();
            assert_eq!(kind.batch_cancel_function(), format!("{single}s"));
            assert!(single.ends_with(kind.seed_type().trim_start_matches("cancel")));
        }
    }
}
