//! The golden vectors (`client/golden/payloads.json`) on a real server: every vector's exact bytes
//! from the extension's functions and from the pure-SQL edition's, single and batch forms, under
//! its `bytebase_signal.wire_format`, and from the client's raw sender; and the CLI prints each
//! with its project and version. (The client's unit tests check the encoder and decoder against
//! the same file.)

use anyhow::{Context, Result};
use bytebase_signal_client::send::{Cancel, SendMode};
use bytebase_signal_client::wire::{SignalKind, WireFormat};
use bytebase_signal_client::RunUid;
use bytebase_signal_tests::cluster::{Cluster, Install};
use bytebase_signal_tests::raw_listener::RawListener;
use serde_json::Value;

const GOLDEN: &str = include_str!("../../client/golden/payloads.json");

/// One golden vector.
struct Vector {
    format: WireFormat,
    kind: SignalKind,
    uid: i64,
    project: Option<String>,
    approval_input_version: Option<i64>,
    payload: String,
}

fn vectors() -> Result<Vec<Vector>> {
    let doc: Value = serde_json::from_str(GOLDEN)?;
    let vectors = doc["vectors"].as_array().context("a vectors array")?;
    vectors
        .iter()
        .map(|v| {
            Ok(Vector {
                format: v["format"].as_str().context("format")?.parse()?,
                kind: match v["kind"].as_str() {
                    Some("task_run") => SignalKind::TaskRun,
                    Some("plan_check_run") => SignalKind::PlanCheckRun,
                    other => anyhow::bail!("unknown kind {other:?}"),
                },
                uid: v["uid"].as_i64().context("uid")?,
                project: v.get("project").and_then(Value::as_str).map(str::to_owned),
                approval_input_version: v.get("approval_input_version").and_then(Value::as_i64),
                payload: v["payload"].as_str().context("payload")?.to_owned(),
            })
        })
        .collect()
}

bytebase_signal_tests::on_installs!(
    [extension: Fresh, pure_sql: PureSql];
    every_golden_vector_is_sent_byte_for_byte,
);

async fn every_golden_vector_is_sent_byte_for_byte(install: Install) -> Result<()> {
    let cluster = Cluster::start()?;
    cluster.create_database_with("app", install).await?;
    let sender = cluster.connect("app").await?;
    let probe = cluster.connect("app").await?;
    let mut listener = RawListener::connect(&cluster.config("app"), "bytebase_signal").await?;
    let vectors = vectors()?;
    assert!(vectors.len() >= 16);
    for v in &vectors {
        sender
            .execute("SELECT set_config('bytebase_signal.wire_format', $1, false)", &[&v.format.name()])
            .await?;
        // The single and the batch form, with exactly the arguments the vector names.
        let (single, batch) = (v.kind.cancel_function(), v.kind.batch_cancel_function());
        match (&v.project, v.approval_input_version) {
            (None, _) => {
                sender.execute(&format!("SELECT {single}($1)"), &[&v.uid]).await?;
                sender.execute(&format!("SELECT {batch}($1)"), &[&vec![v.uid]]).await?;
            }
            (Some(p), None) => {
                sender.execute(&format!("SELECT {single}($1, $2)"), &[&v.uid, p]).await?;
                sender.execute(&format!("SELECT {batch}($1, $2)"), &[&vec![v.uid], p]).await?;
            }
            (Some(p), Some(version)) => {
                sender.execute(&format!("SELECT {single}($1, $2, $3)"), &[&v.uid, p, &version]).await?;
                sender.execute(&format!("SELECT {batch}($1, $2, $3)"), &[&vec![v.uid], p, &version]).await?;
            }
        }
        // The client's raw sender, which needs neither edition.
        let uids = [RunUid::new(v.uid)?];
        let mut raw = Cancel::new(v.kind, &uids).mode(SendMode::Raw).format(v.format);
        if let Some(p) = &v.project {
            raw = raw.in_project(p);
        }
        if let Some(version) = v.approval_input_version {
            raw = raw.with_approval_input_version(version);
        }
        raw.send(&sender).await?;
        assert_eq!(listener.drain(&probe).await?, [v.payload.as_str(); 3], "{install:?}");
    }
    // The acceptance example, spelled out.
    sender
        .batch_execute(
            "SET bytebase_signal.wire_format = 'protojson'; SELECT bytebase_cancel_task_run(123, 'proj-a')",
        )
        .await?;
    assert_eq!(
        listener.drain(&probe).await?,
        [r#"{"type":"CANCEL_TASK_RUN","uid":"123","project":"proj-a"}"#]
    );
    Ok(())
}
