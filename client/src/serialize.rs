//! `Serialize` and `Deserialize` for the public values (the `serde` feature, on by default), so
//! that applications can log them, put them in their own APIs and test with them.
//!
//! A [`Signal`] serializes in the JSON shape of the seed wire format,
//! `{"type":"cancel_task_run","uid":42}` (then `project` and `approvalInputVersion` when present),
//! and deserializes with the payload decoder's leniency per field: `type` in either spelling,
//! `uid` and `approvalInputVersion` as numbers or decimal strings, `project` and the version
//! absent or `null`, unknown fields ignored. Three differences from [`Signal::decode`], which
//! stays the listener's decoder: a field given twice is an error here (serde's rule) where the
//! decoder takes the last; the decoder's own errors ([`crate::signal::DecodeError`]) become the
//! format's; and, as for any derived struct, a sequence of the fields in order is read too.
//! In formats that are not human-readable (bincode, CBOR, MessagePack) a signal is all four
//! fields in order, the optional ones as options, and numbers are plain integers; `Event`'s
//! tagged form needs a self-describing format (JSON, CBOR, MessagePack; not bincode).
//! [`RunKey`] has the same shape. [`SignalKind`] is its seed name (`cancel_task_run`),
//! [`RunUid`] a number. [`Status`] and [`Event`] (derived beside their definitions) use their
//! Rust field names; an `Event` is tagged by `event`:
//! `{"event":"connected","server":"db:5432"}`.
//!
//! ```
//! use bytebase_signal_client::{RunUid, Signal, SignalKind};
//!
//! let signal = Signal::new(SignalKind::TaskRun, RunUid::new(42).unwrap()).with_project("proj-a");
//! let json = serde_json::to_string(&signal).unwrap();
//! assert_eq!(json, r#"{"type":"cancel_task_run","uid":42,"project":"proj-a"}"#);
//! assert_eq!(serde_json::from_str::<Signal>(&json).unwrap(), signal);
//! // What upstream's replicas send reads the same way.
//! let upstream = r#"{"type":"CANCEL_TASK_RUN","uid":"42","project":"proj-a"}"#;
//! let upstream: Signal = serde_json::from_str(upstream).unwrap();
//! assert_eq!(upstream, signal);
//! ```
//!
//! [`RunKey`]: crate::registry::RunKey
//! [`Status`]: crate::status::Status
//! [`Event`]: crate::status::Event

use std::fmt;

use serde::de::{self, Deserializer, Unexpected, Visitor};
use serde::{Deserialize, Serialize, Serializer};

use crate::signal::{decimal, parse_kind, Signal};
use crate::validate::RunUid;
use crate::wire::SignalKind;

impl Serialize for SignalKind {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(self.seed_type())
    }
}

impl<'de> Deserialize<'de> for SignalKind {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct KindVisitor;
        impl Visitor<'_> for KindVisitor {
            type Value = SignalKind;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a signal type: cancel_task_run or cancel_plan_check_run (or CANCEL_TASK_RUN, CANCEL_PLAN_CHECK_RUN)")
            }
            fn visit_str<E: de::Error>(self, name: &str) -> Result<SignalKind, E> {
                parse_kind(name).ok_or_else(|| E::invalid_value(Unexpected::Str(name), &self))
            }
        }
        deserializer.deserialize_str(KindVisitor)
    }
}

impl Serialize for RunUid {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_i64(self.get())
    }
}

impl<'de> Deserialize<'de> for RunUid {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let uid = deserialize_integer(deserializer, "a run id: an integer in 1..=9223372036854775807")?;
        RunUid::new(uid).map_err(|_| de::Error::invalid_value(Unexpected::Signed(uid), &"a positive run id"))
    }
}

/// An `i64` as a number or, as protobuf-JSON writes 64-bit fields, a decimal string. Formats that
/// are not human-readable (bincode, CBOR and the like) read a plain `i64`: what they wrote.
fn deserialize_integer<'de, D: Deserializer<'de>>(
    deserializer: D,
    expecting: &'static str,
) -> Result<i64, D::Error> {
    struct IntegerVisitor(&'static str);
    impl Visitor<'_> for IntegerVisitor {
        type Value = i64;
        fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            write!(f, "{}, as a number or a decimal string", self.0)
        }
        fn visit_i64<E: de::Error>(self, value: i64) -> Result<i64, E> {
            Ok(value)
        }
        fn visit_u64<E: de::Error>(self, value: u64) -> Result<i64, E> {
            i64::try_from(value).map_err(|_| E::invalid_value(Unexpected::Unsigned(value), &self))
        }
        fn visit_str<E: de::Error>(self, text: &str) -> Result<i64, E> {
            decimal(text).ok_or_else(|| E::invalid_value(Unexpected::Str(text), &self))
        }
    }
    if deserializer.is_human_readable() {
        deserializer.deserialize_any(IntegerVisitor(expecting))
    } else {
        deserializer.deserialize_i64(IntegerVisitor(expecting))
    }
}

/// The optional `approvalInputVersion`: absent, `null`, a number or a decimal string.
fn deserialize_optional_integer<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Option<i64>, D::Error> {
    struct Integer(i64);
    impl<'de> Deserialize<'de> for Integer {
        fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
            deserialize_integer(deserializer, "an approval input version (an i64)").map(Integer)
        }
    }
    Ok(Option::<Integer>::deserialize(deserializer)?.map(|Integer(value)| value))
}

/// The seed shape shared by [`Signal`] and [`RunKey`](crate::registry::RunKey), written: absent
/// optional fields left out where the format is human-readable (JSON's shape of the wire
/// format), written as options elsewhere, where fields are read by position.
struct FieldsOut<'a> {
    kind: SignalKind,
    uid: RunUid,
    project: Option<&'a str>,
    approval_input_version: Option<i64>,
}

impl Serialize for FieldsOut<'_> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeStruct;
        let every = !serializer.is_human_readable();
        let optional = [self.project.is_some(), self.approval_input_version.is_some()];
        let len = 2 + optional.iter().filter(|&&present| every || present).count();
        let mut fields = serializer.serialize_struct("Signal", len)?;
        fields.serialize_field("type", &self.kind)?;
        fields.serialize_field("uid", &self.uid)?;
        if every || self.project.is_some() {
            fields.serialize_field("project", &self.project)?;
        } else {
            fields.skip_field("project")?;
        }
        if every || self.approval_input_version.is_some() {
            fields.serialize_field("approvalInputVersion", &self.approval_input_version)?;
        } else {
            fields.skip_field("approvalInputVersion")?;
        }
        fields.end()
    }
}

/// The seed shape, read leniently (see the module docs).
#[derive(Deserialize)]
#[serde(expecting = r#"a signal such as {"type":"cancel_task_run","uid":42}"#)]
struct FieldsIn {
    #[serde(rename = "type")]
    kind: SignalKind,
    uid: RunUid,
    #[serde(default)]
    project: Option<String>,
    #[serde(rename = "approvalInputVersion", default, deserialize_with = "deserialize_optional_integer")]
    approval_input_version: Option<i64>,
}

impl Serialize for Signal {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        FieldsOut {
            kind: self.kind,
            uid: self.uid,
            project: self.project.as_deref(),
            approval_input_version: self.approval_input_version,
        }
        .serialize(serializer)
    }
}

impl<'de> Deserialize<'de> for Signal {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let FieldsIn { kind, uid, project, approval_input_version } = FieldsIn::deserialize(deserializer)?;
        Ok(Signal { kind, uid, project, approval_input_version })
    }
}

#[cfg(feature = "runtime")]
mod run_key {
    use super::*;
    use crate::registry::RunKey;

    impl Serialize for RunKey {
        fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
            FieldsOut {
                kind: self.kind,
                uid: self.uid,
                project: self.project.as_deref(),
                approval_input_version: self.approval_input_version,
            }
            .serialize(serializer)
        }
    }

    impl<'de> Deserialize<'de> for RunKey {
        /// Through [`RunKey::in_project`]: an empty project is no project, as when registering.
        fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
            let FieldsIn { kind, uid, project, approval_input_version } =
                FieldsIn::deserialize(deserializer)?;
            let mut run = RunKey::new(kind, uid);
            if let Some(project) = project {
                run = run.in_project(project);
            }
            run.approval_input_version = approval_input_version;
            Ok(run)
        }
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;
    use crate::wire::WireFormat;

    fn uid(value: i64) -> RunUid {
        RunUid::new(value).unwrap()
    }

    fn signals() -> impl Strategy<Value = Signal> {
        (
            prop::sample::select(SignalKind::ALL.to_vec()),
            1..=i64::MAX,
            prop::option::of(".{0,40}"),
            prop::option::of(any::<i64>()),
        )
            .prop_map(|(kind, value, project, version)| Signal {
                kind,
                uid: uid(value),
                project,
                approval_input_version: version,
            })
    }

    proptest! {
        #[test]
        fn every_signal_round_trips_and_reads_as_a_payload(signal in signals()) {
            let json = serde_json::to_string(&signal).unwrap();
            prop_assert_eq!(serde_json::from_str::<Signal>(&json).unwrap(), signal.clone());
            // The same shape as the seed encoding: the payload decoder reads what serde wrote.
            prop_assert_eq!(Signal::decode(&json).unwrap(), signal.clone());
            // And serde reads both wire formats as the decoder does (protojson drops a version
            // of 0 and an empty project, which the decoder reads as absent as well).
            for format in WireFormat::ALL {
                let payload = signal.encode(format);
                prop_assert_eq!(serde_json::from_str::<Signal>(&payload).unwrap(), Signal::decode(&payload).unwrap());
            }
        }
    }

    #[test]
    fn a_signal_without_exotic_characters_is_its_seed_encoding() {
        let signal = Signal::new(SignalKind::PlanCheckRun, uid(7))
            .with_project("proj-a")
            .with_approval_input_version(2);
        assert_eq!(serde_json::to_string(&signal).unwrap(), signal.encode_seed());
        let bare = Signal::new(SignalKind::TaskRun, uid(i64::MAX));
        assert_eq!(serde_json::to_string(&bare).unwrap(), bare.encode_seed());
    }

    #[test]
    fn reading_is_as_lenient_as_the_decoder_per_field() {
        let read = |json: &str| serde_json::from_str::<Signal>(json);
        let expected = Signal::new(SignalKind::TaskRun, uid(9)).with_approval_input_version(-3);
        assert_eq!(
            read(r#"{"uid":"9","approvalInputVersion":"-3","type":"CANCEL_TASK_RUN","extra":[1]}"#).unwrap(),
            expected
        );
        assert_eq!(
            read(r#"{"type":"cancel_task_run","uid":9,"project":null,"approvalInputVersion":-3}"#).unwrap(),
            expected
        );
    }

    #[test]
    fn what_the_decoder_refuses_is_refused_with_the_value_named() {
        let error = |json: &str| serde_json::from_str::<Signal>(json).unwrap_err().to_string();
        assert!(error(r#"{"type":"cancel_task_run","uid":0}"#).contains("invalid value: integer `0`"));
        assert!(error(r#"{"type":"cancel_task_run","uid":"+7"}"#).contains(r#"invalid value: string "+7""#));
        assert!(
            error(r#"{"type":"cancel_task_run","uid":1.5}"#).contains("invalid type: floating point `1.5`")
        );
        assert!(
            error(r#"{"type":"cancel_task_run","uid":9223372036854775808}"#).contains("9223372036854775808")
        );
        assert!(error(r#"{"type":"Cancel_Task_Run","uid":7}"#)
            .contains(r#"invalid value: string "Cancel_Task_Run""#));
        assert!(error(r#"{"uid":7}"#).contains("missing field `type`"));
        assert!(error(r#"{"type":"cancel_task_run"}"#).contains("missing field `uid`"));
        assert!(
            error(r#"{"type":"cancel_task_run","uid":7,"project":3}"#).contains("invalid type: integer `3`")
        );
        assert!(error(r#""str""#).contains(r#"invalid type: string "str", expected a signal"#));
        // Every payload the decoder refuses is refused here too: signal.rs's test of garbage.
    }

    /// bincode: not human-readable, fields by position, no `deserialize_any`.
    #[test]
    fn a_signal_round_trips_through_a_format_that_reads_fields_by_position() {
        for signal in [
            Signal::new(SignalKind::TaskRun, uid(42)),
            Signal::new(SignalKind::PlanCheckRun, uid(7)).with_project("proj-a"),
            Signal::new(SignalKind::PlanCheckRun, uid(7)).with_approval_input_version(0),
            Signal::new(SignalKind::PlanCheckRun, uid(i64::MAX))
                .with_project("p")
                .with_approval_input_version(-2),
        ] {
            let bytes = bincode::serialize(&signal).unwrap();
            assert_eq!(bincode::deserialize::<Signal>(&bytes).unwrap(), signal);
        }
        assert_eq!(bincode::deserialize::<RunUid>(&bincode::serialize(&uid(9)).unwrap()).unwrap(), uid(9));
        assert!(bincode::deserialize::<RunUid>(&bincode::serialize(&0i64).unwrap()).is_err());
    }

    #[test]
    fn a_kind_and_a_uid_are_a_name_and_a_number() {
        assert_eq!(serde_json::to_string(&SignalKind::PlanCheckRun).unwrap(), r#""cancel_plan_check_run""#);
        assert_eq!(
            serde_json::from_str::<SignalKind>(r#""CANCEL_PLAN_CHECK_RUN""#).unwrap(),
            SignalKind::PlanCheckRun
        );
        assert_eq!(serde_json::to_string(&uid(42)).unwrap(), "42");
        assert_eq!(serde_json::from_str::<RunUid>(r#""42""#).unwrap(), uid(42));
    }

    #[cfg(feature = "runtime")]
    #[test]
    fn a_run_key_round_trips_and_an_empty_project_is_none() {
        use crate::registry::RunKey;
        let run =
            RunKey::new(SignalKind::PlanCheckRun, uid(7)).in_project("proj-a").with_approval_input_version(2);
        let json = serde_json::to_string(&run).unwrap();
        assert_eq!(
            json,
            r#"{"type":"cancel_plan_check_run","uid":7,"project":"proj-a","approvalInputVersion":2}"#
        );
        assert_eq!(serde_json::from_str::<RunKey>(&json).unwrap(), run);
        let unscoped: RunKey =
            serde_json::from_str(r#"{"type":"cancel_task_run","uid":7,"project":""}"#).unwrap();
        assert_eq!(unscoped, RunKey::new(SignalKind::TaskRun, uid(7)));
    }

    #[cfg(feature = "runtime")]
    #[test]
    fn a_status_and_every_event_round_trip() {
        use std::time::{Duration, SystemTime};

        use crate::status::{Event, Status};
        let status = Status {
            connected: true,
            connected_since: Some(SystemTime::UNIX_EPOCH + Duration::new(1_764_547_200, 123)),
            reconnects: 1,
            received: 2,
            dispatched: 3,
            unmatched: 4,
            malformed: 5,
            overflowed: 6,
            replayed: 7,
            replays: 8,
            duplicates: 9,
            unconfirmed: 10,
            replay_available: Some(true),
            notifications: Some(false),
            last_error: Some("connection to 10.0.0.1:5432 lost".into()),
        };
        let json = serde_json::to_string(&status).unwrap();
        assert_eq!(serde_json::from_str::<Status>(&json).unwrap(), status);
        assert_eq!(
            serde_json::from_str::<Status>(&serde_json::to_string(&Status::default()).unwrap()).unwrap(),
            Status::default()
        );

        let events = [
            Event::Connected { server: "db:5432".into() },
            Event::Disconnected { reason: "server closed the connection".into() },
            Event::ConnectFailed { reason: "connection refused".into() },
            Event::Overflow,
            Event::Replayed { signals: 3 },
            Event::Notifications { arriving: false },
        ];
        for event in events {
            let json = serde_json::to_string(&event).unwrap();
            assert_eq!(serde_json::from_str::<Event>(&json).unwrap(), event, "{json}");
        }
        assert_eq!(
            serde_json::to_string(&Event::Connected { server: "db:5432".into() }).unwrap(),
            r#"{"event":"connected","server":"db:5432"}"#
        );
        assert_eq!(serde_json::to_string(&Event::Overflow).unwrap(), r#"{"event":"overflow"}"#);
    }
}
