//! Black-box: the `bytebase-signal` binary against a real cluster, as an operator would run it.
//!
//! `make test` builds the binary first (`cargo build -p bytebase-signal-cli`).

use std::process::Stdio;
use std::time::Duration;

use anyhow::{bail, ensure, Context, Result};
use std::collections::BTreeSet;

use bytebase_signal_tests::cluster::{terminate_backends, Cluster, Install, SUPERUSER};
use bytebase_signal_tests::ours::cli_binary;
use bytebase_signal_tests::proxy::{Mode, Proxy};
use bytebase_signal_tests::raw_listener::RawListener;
use tokio::io::{AsyncBufReadExt, BufReader, Lines};
use tokio::process::{Child, ChildStderr, ChildStdout, Command};

const DB: &str = "app";
const PATIENCE: Duration = Duration::from_secs(30);

fn cli(args: &[&str]) -> Result<Command> {
    let mut cmd = Command::new(cli_binary()?);
    cmd.args(args).env("RUST_LOG", "info").env_remove("DATABASE_URL").kill_on_drop(true);
    Ok(cmd)
}

struct Listening {
    child: Child,
    stdout: Lines<BufReader<ChildStdout>>,
    stderr: Lines<BufReader<ChildStderr>>,
}

impl Listening {
    async fn start(dsn: &str) -> Result<Self> {
        let mut child =
            cli(&["listen", "--dsn", dsn])?.stdout(Stdio::piped()).stderr(Stdio::piped()).spawn()?;
        let stdout = BufReader::new(child.stdout.take().context("stdout")?).lines();
        let stderr = BufReader::new(child.stderr.take().context("stderr")?).lines();
        let mut l = Listening { child, stdout, stderr };
        l.stderr_until("listening").await?;
        Ok(l)
    }

    /// Reads stderr up to and including the first line containing `needle`; returns what it read.
    async fn stderr_until(&mut self, needle: &str) -> Result<Vec<String>> {
        let mut seen = Vec::new();
        let found = tokio::time::timeout(PATIENCE, async {
            while let Some(line) = self.stderr.next_line().await? {
                let hit = line.contains(needle);
                seen.push(line);
                if hit {
                    return Ok::<_, std::io::Error>(true);
                }
            }
            Ok(false)
        })
        .await;
        match found {
            Ok(Ok(true)) => Ok(seen),
            _ => bail!("stderr never said {needle:?}; it said:\n{}", seen.join("\n")),
        }
    }

    async fn stdout_line(&mut self) -> Result<String> {
        tokio::time::timeout(PATIENCE, self.stdout.next_line()).await??.context("stdout closed")
    }

    /// Reads stdout until task-run cancels for all of `uids` were printed, within `within`;
    /// fails on anything else or on a uid printed twice.
    async fn task_runs(&mut self, uids: std::ops::RangeInclusive<i64>, within: Duration) -> Result<()> {
        let want: BTreeSet<i64> = uids.collect();
        let mut got = BTreeSet::new();
        tokio::time::timeout(within, async {
            while got != want {
                let line = self.stdout.next_line().await?.context("stdout closed")?;
                let uid = line
                    .strip_prefix(r#"{"type":"cancel_task_run","uid":"#)
                    .and_then(|rest| rest.strip_suffix('}'))
                    .and_then(|n| n.parse::<i64>().ok())
                    .with_context(|| format!("unexpected line {line:?}"))?;
                ensure!(want.contains(&uid) && got.insert(uid), "unexpected or repeated {line:?}");
            }
            Ok(())
        })
        .await
        .with_context(|| {
            format!("missing after {within:?}: {:?}", want.difference(&got).collect::<Vec<_>>())
        })?
    }
}

async fn run(args: &[&str]) -> Result<std::process::Output> {
    let out = cli(args)?.output().await?;
    ensure!(out.status.success(), "{args:?} failed: {}", String::from_utf8_lossy(&out.stderr));
    Ok(out)
}

#[tokio::test(flavor = "multi_thread")]
async fn listen_prints_signals_survives_faults_and_exits_cleanly_on_sigterm() -> Result<()> {
    let mut cluster = Cluster::start()?;
    cluster.create_database_with_extension(DB).await?;
    let dsn = cluster.conninfo(DB);
    let db = cluster.connect(DB).await?;
    let mut cli = Listening::start(&dsn).await?;

    run(&["send", "task-run", "77", "--dsn", &dsn]).await?;
    assert_eq!(cli.stdout_line().await?, r#"{"type":"cancel_task_run","uid":77}"#);

    // Project and version are shown whichever format carried them.
    let scoped = [
        "send",
        "plan-check-run",
        "8",
        "--project",
        "proj-b",
        "--approval-input-version",
        "3",
        "--dsn",
        &dsn,
    ];
    for format in ["seed", "protojson"] {
        run(&[&scoped[..], &["--format", format]].concat()).await?;
        assert_eq!(
            cli.stdout_line().await?,
            r#"{"type":"cancel_plan_check_run","uid":8,"project":"proj-b","approvalInputVersion":3}"#,
            "{format}"
        );
    }

    // Garbage goes to stderr as a warning, never to stdout; the upstream format is understood.
    db.batch_execute("SELECT pg_notify('bytebase_signal', 'garbage')").await?;
    db.batch_execute(
        r#"SELECT pg_notify('bytebase_signal', '{ "type": "CANCEL_PLAN_CHECK_RUN", "uid": "5", "project": "proj-a", "approvalInputVersion": "2" }')"#,
    )
    .await?;
    assert_eq!(
        cli.stdout_line().await?,
        r#"{"type":"cancel_plan_check_run","uid":5,"project":"proj-a","approvalInputVersion":2}"#
    );
    cli.stderr_until("malformed signal").await?;

    // The listener's backend is killed: it reconnects by itself.
    terminate_backends(&db, "bytebase-signal").await?;
    cli.stderr_until("listening").await?;
    run(&["send", "plan-check-run", "8", "9", "8", "--dsn", &dsn]).await?;
    assert_eq!(cli.stdout_line().await?, r#"{"type":"cancel_plan_check_run","uid":8}"#);
    assert_eq!(cli.stdout_line().await?, r#"{"type":"cancel_plan_check_run","uid":9}"#);

    // The server restarts: same.
    cluster = tokio::task::spawn_blocking(move || cluster.restart().map(|()| cluster)).await??;
    cli.stderr_until("listening").await?;
    run(&["send", "task-run", "78", "--raw", "--dsn", &dsn]).await?;
    assert_eq!(cli.stdout_line().await?, r#"{"type":"cancel_task_run","uid":78}"#);

    let pid = cli.child.id().context("pid")?;
    let killed = Command::new("kill").args(["-TERM", &pid.to_string()]).status().await?;
    ensure!(killed.success());
    let status = tokio::time::timeout(PATIENCE, cli.child.wait()).await??;
    assert!(status.success(), "listen exited with {status}");
    assert_eq!(cli.stdout.next_line().await?, None, "nothing else on stdout");
    cluster.stop()?;
    Ok(())
}

#[tokio::test(flavor = "multi_thread")]
async fn send_emits_exactly_the_seed_bytes_and_rejects_bad_uids() -> Result<()> {
    let cluster = Cluster::start()?;
    cluster.create_database_with_extension(DB).await?;
    let dsn = cluster.conninfo(DB);
    let mut raw = RawListener::connect(&cluster.config(DB), "bytebase_signal").await?;
    let probe = cluster.connect(DB).await?;

    run(&["send", "task-run", "77", "--dsn", &dsn]).await?;
    assert_eq!(raw.drain(&probe).await?, [r#"{"type":"cancel_task_run","uid":77}"#]);

    for bad in ["0", "-1", "x"] {
        let out = cli(&["send", "task-run", bad, "--dsn", &dsn])?.output().await?;
        assert!(!out.status.success(), "uid {bad} accepted");
    }
    // A bad project or version is refused before anything is sent, naming the argument.
    for (args, says) in [
        (&["--project", ""][..], "project must not be empty"),
        (
            &["--project", "p", "--approval-input-version", "-1"][..],
            "approval_input_version must not be negative",
        ),
        (&["--approval-input-version", "1"][..], "--project"),
        (&["--project", "p", "--format", "json"][..], "unknown wire format"),
    ] {
        for raw_mode in [false, true] {
            let mut argv = vec!["send", "plan-check-run", "7", "--dsn", &dsn];
            argv.extend_from_slice(args);
            if raw_mode {
                argv.push("--raw");
            }
            let out = cli(&argv)?.output().await?;
            let stderr = String::from_utf8_lossy(&out.stderr);
            assert!(!out.status.success() && stderr.contains(says), "{argv:?}: {stderr}");
        }
    }
    assert_eq!(raw.drain(&probe).await?, Vec::<String>::new());

    // --format and --project, through the extension and raw.
    run(&[
        "send",
        "plan-check-run",
        "7",
        "--project",
        "proj-a",
        "--approval-input-version",
        "2",
        "--format",
        "protojson",
        "--dsn",
        &dsn,
    ])
    .await?;
    run(&["send", "task-run", "123", "--project", "proj-a", "--format", "protojson", "--raw", "--dsn", &dsn])
        .await?;
    run(&["send", "task-run", "124", "--project", "proj-a", "--dsn", &dsn]).await?;
    assert_eq!(
        raw.drain(&probe).await?,
        [
            r#"{"type":"CANCEL_PLAN_CHECK_RUN","uid":"7","project":"proj-a","approvalInputVersion":"2"}"#,
            r#"{"type":"CANCEL_TASK_RUN","uid":"123","project":"proj-a"}"#,
            r#"{"type":"cancel_task_run","uid":124,"project":"proj-a"}"#,
        ]
    );

    // A bad libpq variable, keyword or value is named in the error, as libpq names it.
    for (env, dsn, says) in [
        (
            Some(("PGPORT", "notaport")),
            "",
            r#"invalid integer value "notaport" for connection option "port" (from PGPORT)"#,
        ),
        (None, "host=x sslmod=verify-full", r#"invalid connection option "sslmod""#),
        (None, "host=x sslmode=verify_full", r#"invalid sslmode value: "verify_full""#),
    ] {
        let mut cmd = cli(&["status", "--dsn", dsn])?;
        if let Some((name, value)) = env {
            cmd.env(name, value);
        }
        let out = cmd.output().await?;
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success() && stderr.contains(says), "{dsn:?} {env:?}: {stderr}");
    }
    // A failed connection names the host, the port and the cause.
    let closed = std::net::TcpListener::bind("127.0.0.1:0")?.local_addr()?.port();
    let out =
        cli(&["status", "--dsn", &format!("host=127.0.0.1 port={closed} user=postgres")])?.output().await?;
    let stderr = String::from_utf8_lossy(&out.stderr);
    let says = format!(
        r#"connection to server at "127.0.0.1", port {closed} failed: Connection refused (os error 111)"#
    );
    assert!(!out.status.success() && stderr.contains(&says), "{stderr}");

    // Through DATABASE_URL, as a URL.
    let url = format!("postgres://postgres@127.0.0.1:{}/{DB}", cluster.port());
    let out = cli(&["status"])?.env("DATABASE_URL", &url).output().await?;
    ensure!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let status = String::from_utf8(out.stdout)?;
    let version = format!(r#""extension_version":"{}""#, env!("CARGO_PKG_VERSION"));
    for part in [
        version.as_str(),
        r#""edition":"extension""#,
        r#""primary":true"#,
        r#""notification_queue_usage":0.0"#,
    ] {
        assert!(status.contains(part), "status lacks {part}: {status}");
    }
    Ok(())
}

bytebase_signal_tests::on_installs!(
    [extension: Fresh, pure_sql: PureSql];
    listen_prints_every_cancel_sent_while_cut_off_or_frozen,
);

/// The acceptance check of the durable log, black-box: the CLI listens through a proxy; cancels
/// sent while the proxy refuses connections, and while it holds the stream frozen, are all printed
/// once the listener is back — with default settings and no restart by hand.
async fn listen_prints_every_cancel_sent_while_cut_off_or_frozen(install: Install) -> Result<()> {
    let cluster = Cluster::start()?;
    cluster.create_database_with(DB, install).await?;
    let proxy = Proxy::start(([127, 0, 0, 1], cluster.port()).into()).await?;
    let via_proxy = format!("host={} port={} user={SUPERUSER} dbname={DB}", cluster.host(), proxy.port());
    let db = cluster.connect(DB).await?;
    let status = String::from_utf8(run(&["status", "--dsn", &cluster.conninfo(DB)]).await?.stdout)?;
    let edition = if install.is_pure_sql() { "pure-sql" } else { "extension" };
    assert!(status.contains(&format!(r#""edition":"{edition}""#)), "{status}");
    let mut cli = Listening::start(&via_proxy).await?;

    proxy.set_mode(Mode::Refuse);
    cli.stderr_until("connection lost").await?;
    for uid in 1..=50_i64 {
        db.execute("SELECT bytebase_cancel_task_run($1)", &[&uid]).await?;
    }
    proxy.set_mode(Mode::Forward);
    cli.task_runs(1..=50, Duration::from_secs(60)).await?;

    proxy.set_mode(Mode::Freeze);
    for uid in 51..=70_i64 {
        db.execute("SELECT bytebase_cancel_task_run($1)", &[&uid]).await?;
    }
    // Hold the stream frozen until the CLI has given it up (its heartbeat deadline), so that what
    // arrives afterwards can only have come back through the log.
    cli.stderr_until("connection lost").await?;
    proxy.set_mode(Mode::Forward);
    cli.task_runs(51..=70, Duration::from_secs(60)).await?;
    Ok(())
}

/// Against a database without the log (plain pg_notify senders) the CLI still listens, and says
/// once — not at every reconnect — that gaps are not covered.
#[tokio::test(flavor = "multi_thread")]
async fn listen_without_the_log_warns_once() -> Result<()> {
    let cluster = Cluster::start()?;
    cluster.connect("postgres").await?.batch_execute(&format!("CREATE DATABASE {DB}")).await?;
    let dsn = cluster.conninfo(DB);
    let db = cluster.connect(DB).await?;
    let mut cli = Listening::start(&dsn).await?;
    let warning = "signals sent while the listener is disconnected are not recovered";
    cli.stderr_until(warning).await?;

    terminate_backends(&db, "bytebase-signal").await?;
    let after = cli.stderr_until("listening").await?;
    run(&["send", "task-run", "5", "--raw", "--dsn", &dsn]).await?;
    assert_eq!(cli.stdout_line().await?, r#"{"type":"cancel_task_run","uid":5}"#);
    // The reconnect has completed its catch-up attempt once the signal was printed.
    cli.child.start_kill()?;
    let mut rest = after;
    while let Ok(Some(line)) = cli.stderr.next_line().await {
        rest.push(line);
    }
    assert!(!rest.iter().any(|l| l.contains(warning)), "warned again: {rest:#?}");
    Ok(())
}
