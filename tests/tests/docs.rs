//! Every SQL example in the README and `docs/` runs, and its comments' claims hold. Each ```sql
//! block runs statement by statement on a database prepared as its section assumes: a
//! `-- returns N` comment is checked against the statement's result, and every JSON payload a
//! comment shows must arrive on the channel, in that order (other words in comments are not
//! checked; a `--` inside a string literal would be taken for a comment). An update recipe runs on a database
//! at the version its section names, with the README's GRANTs where it says so, and must leave
//! the current version with senders that can send and listeners that can replay.

use anyhow::{bail, ensure, Context, Result};
use bytebase_signal_tests::cluster::Cluster;
use bytebase_signal_tests::raw_listener::RawListener;
use tokio_postgres::{Client, SimpleQueryMessage};

/// Every page with SQL examples, by its path in the repository.
const PAGES: &[(&str, &str)] = &[
    ("README.md", include_str!("../../README.md")),
    ("docs/connecting.md", include_str!("../../docs/connecting.md")),
    ("docs/delivery.md", include_str!("../../docs/delivery.md")),
    ("docs/development.md", include_str!("../../docs/development.md")),
    ("docs/editions.md", include_str!("../../docs/editions.md")),
    ("docs/operating.md", include_str!("../../docs/operating.md")),
    ("docs/performance.md", include_str!("../../docs/performance.md")),
    ("docs/rust.md", include_str!("../../docs/rust.md")),
    ("docs/sql-reference.md", include_str!("../../docs/sql-reference.md")),
    ("docs/upgrading.md", include_str!("../../docs/upgrading.md")),
    ("docs/wire-formats.md", include_str!("../../docs/wire-formats.md")),
];

const VERSION: &str = env!("CARGO_PKG_VERSION");

/// One ```sql block and the heading it stands under.
struct Block {
    page: &'static str,
    heading: String,
    sql: String,
}

fn blocks() -> Vec<Block> {
    let mut out = Vec::new();
    for &(page, text) in PAGES {
        let mut heading = String::new();
        // Inside a fenced block: its language, and its text so far.
        let mut fence: Option<(String, String)> = None;
        for line in text.lines() {
            let fenced = line.trim_start().starts_with("```");
            match &mut fence {
                Some((language, sql)) if fenced => {
                    if language == "sql" {
                        out.push(Block { page, heading: heading.clone(), sql: std::mem::take(sql) });
                    }
                    fence = None;
                }
                Some((_, sql)) => {
                    sql.push_str(line);
                    sql.push('\n');
                }
                None if fenced => {
                    let language =
                        line.trim_start().trim_start_matches('`').split([',', ' ']).next().unwrap_or("");
                    fence = Some((language.to_owned(), String::new()));
                }
                // A heading outside any code block (a `#` line in a shell block is a comment).
                None if line.starts_with('#') => heading = line.trim_start_matches('#').trim().to_owned(),
                None => {}
            }
        }
        assert!(fence.is_none(), "{page}: a code block is not closed");
    }
    out
}

/// One statement of a block, with the comments on its lines and on the comment lines after it.
#[derive(Debug)]
enum Step {
    Sql {
        sql: String,
        comment: String,
    },
    /// A comment line that asks for the README's GRANTs ("the listeners' GRANT", "both GRANTs").
    Grants {
        senders: bool,
        listeners: bool,
    },
}

fn steps(sql: &str) -> Vec<Step> {
    let mut steps: Vec<Step> = Vec::new();
    let mut code = String::new();
    let mut comment = String::new();
    for line in sql.lines() {
        let (text, note) = match line.find("--") {
            Some(at) => (line[..at].trim_end(), line[at + 2..].trim()),
            None => (line.trim_end(), ""),
        };
        if text.trim().is_empty() {
            if note.contains("GRANT") && note.contains("README") {
                let both = note.contains("both");
                steps.push(Step::Grants {
                    senders: both || note.contains("senders'"),
                    listeners: both || note.contains("listeners'"),
                });
            } else if code.is_empty() {
                // A comment line after a statement says what that statement does.
                if let Some(Step::Sql { comment: last, .. }) = steps.last_mut() {
                    last.push(' ');
                    last.push_str(note);
                }
            } else {
                comment.push(' ');
                comment.push_str(note);
            }
            continue;
        }
        code.push_str(text);
        code.push('\n');
        comment.push(' ');
        comment.push_str(note);
        if text.ends_with(';') {
            steps.push(Step::Sql { sql: std::mem::take(&mut code), comment: std::mem::take(&mut comment) });
        }
    }
    assert!(code.trim().is_empty(), "a statement without its ';': {code}");
    steps
}

/// The JSON payloads a comment shows, in order: each `{...}` it holds.
fn payloads_in(comment: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut rest = comment;
    while let Some(start) = rest.find('{') {
        let end = rest[start..].find('}').map(|e| start + e + 1).unwrap_or(rest.len());
        out.push(rest[start..end].to_owned());
        rest = &rest[end..];
    }
    out
}

/// `N` of a `returns N` comment.
fn returns_in(comment: &str) -> Option<String> {
    let after = comment.split("returns ").nth(1)?;
    let n: String = after.chars().take_while(char::is_ascii_digit).collect();
    (!n.is_empty()).then_some(n)
}

/// The README's two GRANTs: the senders', then the listeners'.
fn readme_grants() -> (String, String) {
    let grant =
        blocks().into_iter().find(|b| b.page == "README.md" && b.heading == "Grant").expect("README's Grant");
    let mut sql = steps(&grant.sql).into_iter().filter_map(|s| match s {
        Step::Sql { sql, .. } => Some(sql),
        Step::Grants { .. } => None,
    });
    (sql.next().expect("the senders' GRANT"), sql.next().expect("the listeners' GRANT"))
}

async fn value(client: &Client, sql: &str) -> Result<Option<String>> {
    let messages = client.simple_query(sql).await.with_context(|| format!("running {sql}"))?;
    Ok(messages.into_iter().find_map(|m| match m {
        SimpleQueryMessage::Row(row) => Some(row.get(0).map(str::to_owned).unwrap_or_default()),
        _ => None,
    }))
}

/// Runs a block in database `db` of `cluster`: statements in order, their claims checked.
async fn run(cluster: &Cluster, db: &str, block: &Block) -> Result<()> {
    let what = format!("{} ({}): {}", block.page, block.heading, block.sql.lines().next().unwrap_or(""));
    let client = cluster.admin_on(db).await?;
    let mut listener = RawListener::connect(&cluster.admin_config(db), "bytebase_signal").await?;
    let (senders, listeners) = readme_grants();
    let mut expected = Vec::new();
    for step in steps(&block.sql) {
        match step {
            Step::Grants { senders: s, listeners: l } => {
                for (wanted, grant) in [(s, &senders), (l, &listeners)] {
                    if wanted {
                        client
                            .batch_execute(grant)
                            .await
                            .with_context(|| format!("{what}: the README's {grant}"))?;
                    }
                }
            }
            Step::Sql { sql, comment } => {
                let got = value(&client, &sql).await.with_context(|| what.clone())?;
                if let Some(n) = returns_in(&comment) {
                    ensure!(
                        got.as_deref() == Some(n.as_str()),
                        "{what}: {sql} returned {got:?}, its comment says {n}"
                    );
                }
                expected.extend(payloads_in(&comment));
            }
        }
    }
    let received = listener.drain(&client).await?;
    let mut unseen = received.iter();
    for payload in &expected {
        ensure!(
            unseen.any(|r| r == payload),
            "{what}: the comments show {payload}, which did not arrive in that order (received {received:?})"
        );
    }
    Ok(())
}

/// The table the examples update (the roles they grant to are the cluster's).
const TASK_RUN: &str =
    "CREATE TABLE task_run (id bigint PRIMARY KEY, status text); INSERT INTO task_run VALUES (42, 'RUNNING')";

/// What the README of each older version had operators grant, before its update recipe runs.
fn grants_at(version: &str) -> Result<String> {
    let (senders, _) = readme_grants();
    Ok(match version {
        "0.1.0" => String::new(), // EXECUTE was PUBLIC's
        "0.2.0" => "GRANT EXECUTE ON FUNCTION bytebase_cancel_task_run(bigint), bytebase_cancel_plan_check_run(bigint),
                    bytebase_cancel_task_runs(bigint[]), bytebase_cancel_plan_check_runs(bigint[]) TO bytebase_app;
                    GRANT EXECUTE ON FUNCTION bytebase_signal_replay(timestamptz) TO bytebase_listener;"
            .to_owned(),
        "0.3.0" => format!("{senders}\nGRANT EXECUTE ON FUNCTION bytebase_signal_replay(timestamptz) TO bytebase_listener;"),
        other => bail!("no update recipe expected from {other}"),
    })
}

/// Every page under `docs/` is in [`PAGES`], so a new one cannot be skipped.
#[test]
fn every_page_is_read() {
    let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/../docs");
    for entry in std::fs::read_dir(dir).unwrap() {
        let name = format!("docs/{}", entry.unwrap().file_name().to_string_lossy());
        if !name.ends_with(".md") {
            continue;
        }
        assert!(PAGES.iter().any(|(page, _)| *page == name), "{name} is not in PAGES");
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn every_sql_example_runs_and_does_what_it_says() -> Result<()> {
    let blocks = blocks();
    ensure!(blocks.len() >= 6, "only {} SQL examples found", blocks.len());
    let cluster = Cluster::start()?;
    let admin = cluster.admin().await?;
    admin.batch_execute("CREATE ROLE bytebase_app LOGIN; CREATE ROLE bytebase_listener LOGIN").await?;
    for (i, block) in blocks.iter().enumerate() {
        let db = format!("example_{i}");
        if block.sql.contains("CREATE EXTENSION") {
            // Each statement is a way to install: one database each.
            for (j, step) in steps(&block.sql).into_iter().enumerate() {
                let Step::Sql { sql, .. } = step else {
                    bail!("{}: a GRANT placeholder among installs", block.page)
                };
                let db = format!("{db}_{j}");
                admin.batch_execute(&format!("CREATE DATABASE {db}")).await?;
                let client = cluster.admin_on(&db).await?;
                client.batch_execute("CREATE SCHEMA meta").await?;
                client.batch_execute(&sql).await.with_context(|| format!("{}: {sql}", block.page))?;
                let version =
                    value(&client, "SELECT extversion FROM pg_extension WHERE extname = 'bytebase_signal'")
                        .await?;
                ensure!(version.as_deref() == Some(VERSION), "{}: {sql} installed {version:?}", block.page);
            }
            continue;
        }
        if let Some(from) = block.heading.strip_prefix("Upgrading from ") {
            admin.batch_execute(&format!("CREATE DATABASE {db}")).await?;
            let client = cluster.admin_on(&db).await?;
            client.batch_execute(&format!("CREATE EXTENSION bytebase_signal VERSION '{from}'")).await?;
            client.batch_execute(&grants_at(from)?).await?;
            run(&cluster, &db, block).await?;
            let version =
                value(&client, "SELECT extversion FROM pg_extension WHERE extname = 'bytebase_signal'")
                    .await?;
            ensure!(
                version.as_deref() == Some(VERSION),
                "{} ({}): left {version:?}",
                block.page,
                block.heading
            );
            // Whatever the recipe granted is what the roles can do now.
            // (From 0.2.0 the senders' GRANT of the project-scoped forms is a sentence after the
            // recipe, not part of it.)
            let app = cluster.connect_as(&db, "bytebase_app").await?;
            let sends = if from == "0.2.0" {
                "SELECT bytebase_cancel_task_run(1)"
            } else {
                "SELECT bytebase_cancel_task_run(1); SELECT bytebase_cancel_task_run(2, 'proj-a')"
            };
            app.batch_execute(sends).await.with_context(|| {
                format!("{} ({}): the senders after the recipe", block.page, block.heading)
            })?;
            let listener = cluster.connect_as(&db, "bytebase_listener").await?;
            listener
                .batch_execute(
                    "SELECT * FROM bytebase_signal_replay(now() - interval '1 hour');
                     SELECT * FROM bytebase_signal_replay_after(pg_current_snapshot())",
                )
                .await
                .with_context(|| {
                    format!("{} ({}): the listeners after the recipe", block.page, block.heading)
                })?;
            continue;
        }
        admin.batch_execute(&format!("CREATE DATABASE {db}")).await?;
        let client = cluster.admin_on(&db).await?;
        client.batch_execute("CREATE EXTENSION bytebase_signal").await?;
        client.batch_execute(TASK_RUN).await?;
        run(&cluster, &db, block).await?;
    }
    Ok(())
}

#[test]
fn the_examples_are_read_as_written() {
    let steps = steps(
        "BEGIN;\nSELECT f(42);\nCOMMIT;   -- listeners receive {\"a\":1} now\nSELECT g(7,\n  8);  -- returns 2\n\
         SELECT h(1);\n      -- {\"b\":2}\n-- then both GRANTs of the README's Grant section\n",
    );
    let shown: Vec<String> = steps
        .iter()
        .map(|s| match s {
            Step::Sql { sql, comment } => {
                format!("{}|{:?}|{:?}", sql.trim(), payloads_in(comment), returns_in(comment))
            }
            Step::Grants { senders, listeners } => format!("grants {senders} {listeners}"),
        })
        .collect();
    assert_eq!(
        shown,
        [
            "BEGIN;|[]|None",
            "SELECT f(42);|[]|None",
            "COMMIT;|[\"{\\\"a\\\":1}\"]|None",
            "SELECT g(7,\n  8);|[]|Some(\"2\")",
            "SELECT h(1);|[\"{\\\"b\\\":2}\"]|None",
            "grants true true",
        ]
    );
    let (senders, listeners) = readme_grants();
    assert!(senders.contains("TO bytebase_app") && listeners.contains("TO bytebase_listener"));
}
