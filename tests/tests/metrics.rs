//! `bytebase-signal listen --metrics-addr`: its Prometheus endpoint scraped over HTTP while a real
//! listener runs against a real cluster: counters move as signals are sent, the delivery lag
//! histogram fills for notifications and for replays, and `/healthz` turns 503 while the server is
//! stopped and 200 again once it is back.
//!
//! `make test` builds the binary first (`cargo build -p bytebase-signal-cli`).

use std::process::Stdio;
use std::time::Duration;

use anyhow::{bail, Context, Result};
use bytebase_signal_client::metrics;
use bytebase_signal_tests::cluster::Cluster;
use bytebase_signal_tests::ours::cli_binary;
use bytebase_signal_tests::wait;
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader, Lines};
use tokio::net::TcpStream;
use tokio::process::{Child, ChildStdout, Command};

const DB: &str = "app";
const PATIENCE: Duration = Duration::from_secs(30);

/// A `bytebase-signal listen --metrics-addr 127.0.0.1:0` process and the address it serves on.
struct Listening {
    _child: Child,
    stdout: Lines<BufReader<ChildStdout>>,
    _stderr: tokio::task::JoinHandle<()>,
    addr: String,
}

impl Listening {
    async fn start(dsn: &str) -> Result<Self> {
        let mut child = Command::new(cli_binary()?)
            .args(["listen", "--dsn", dsn, "--metrics-addr", "127.0.0.1:0", "--ping-interval", "1"])
            .env("RUST_LOG", "info")
            .env_remove("DATABASE_URL")
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true)
            .spawn()?;
        let stdout = BufReader::new(child.stdout.take().context("stdout")?).lines();
        let mut stderr = BufReader::new(child.stderr.take().context("stderr")?).lines();
        // The address is logged once the socket is bound (port 0: the system picked it).
        let mut said = Vec::new();
        let addr = tokio::time::timeout(PATIENCE, async {
            while let Some(line) = stderr.next_line().await? {
                // "serving http://127.0.0.1:PORT/metrics and ..."
                if let Some(rest) = line.split("http://").nth(1) {
                    return Ok::<_, anyhow::Error>(rest.split('/').next().map(str::to_owned));
                }
                said.push(line);
            }
            Ok(None)
        })
        .await;
        let addr = match addr {
            Ok(Ok(Some(addr))) => addr,
            _ => bail!("the listener never said where it serves; it said:\n{}", said.join("\n")),
        };
        // Keep draining stderr, so that the process never blocks on a full pipe.
        let drain = tokio::spawn(async move { while let Ok(Some(_)) = stderr.next_line().await {} });
        Ok(Listening { _child: child, stdout, _stderr: drain, addr })
    }

    async fn stdout_line(&mut self) -> Result<String> {
        tokio::time::timeout(PATIENCE, self.stdout.next_line()).await??.context("stdout closed")
    }

    /// `GET path`: the status code and the body.
    async fn get(&self, path: &str) -> Result<(u16, String)> {
        http_get(&self.addr, path).await
    }

    /// Scrapes `/metrics` until `check` finds what it wants in it.
    async fn scrape_until<T>(&self, what: &str, check: impl Fn(&Metrics) -> Option<T>) -> Result<T> {
        wait::until(what, PATIENCE, || async {
            let (code, body) = self.get("/metrics").await.ok()?;
            (code == 200).then_some(())?;
            check(&Metrics(body))
        })
        .await
    }

    /// Polls `/healthz` until it answers `code`; returns its body.
    async fn health_becomes(&self, code: u16) -> Result<String> {
        wait::until(&format!("/healthz to answer {code}"), PATIENCE, || async {
            let (got, body) = self.get("/healthz").await.ok()?;
            (got == code).then_some(body)
        })
        .await
    }
}

/// A minimal HTTP/1.1 GET with `Connection: close`: what a Prometheus scrape or a health probe
/// sends, read to the end.
async fn http_get(addr: &str, path: &str) -> Result<(u16, String)> {
    let mut stream = TcpStream::connect(addr).await?;
    stream
        .write_all(format!("GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n").as_bytes())
        .await?;
    let mut response = String::new();
    stream.read_to_string(&mut response).await?;
    let (head, body) = response.split_once("\r\n\r\n").context("no end of headers")?;
    let code = head.split(' ').nth(1).and_then(|c| c.parse().ok()).context("no status code")?;
    Ok((code, body.to_owned()))
}

/// A scrape, in Prometheus' text format.
struct Metrics(String);

impl Metrics {
    /// The value of the sample `series` (a name, with its labels if any: `name{via="replay"}`).
    fn value(&self, series: &str) -> Option<f64> {
        self.0.lines().find_map(|line| line.strip_prefix(series)?.strip_prefix(' ')?.trim().parse().ok())
    }

    /// Whether `name` is declared with Prometheus `kind` (`counter`, `gauge`, `histogram`).
    fn is(&self, name: &str, kind: &str) -> bool {
        self.0.lines().any(|line| line == format!("# TYPE {name} {kind}"))
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn the_endpoint_counts_signals_times_their_delivery_and_tells_health() -> Result<()> {
    let mut cluster = Cluster::start()?;
    cluster.create_database_with_extension(DB).await?;
    let db = cluster.connect(DB).await?;
    let mut cli = Listening::start(&cluster.conninfo(DB)).await?;
    let body = cli.health_becomes(200).await?;
    assert!(body.starts_with("ok"), "{body}");

    // Three cancels by notification; each is timed once the next heartbeat's replay reads its
    // row (or, if a heartbeat's replay read the row before the notification was read, as a replay).
    for uid in 1..=3 {
        db.batch_execute(&format!("SELECT bytebase_cancel_task_run({uid})")).await?;
        assert_eq!(cli.stdout_line().await?, format!(r#"{{"type":"cancel_task_run","uid":{uid}}}"#));
    }
    let lag =
        |via: &str, series: &str| format!("{}_{series}{{via=\"{via}\"}}", metrics::DELIVERY_LAG_SECONDS);
    let timed =
        |m: &Metrics| Some(m.value(&lag("notification", "count"))? + m.value(&lag("replay", "count"))?);
    let scrape = cli
        .scrape_until("three cancels counted and timed", |m| {
            (m.value(metrics::RECEIVED)? >= 3.0 && m.value(metrics::DISPATCHED)? >= 3.0 && timed(m)? >= 3.0)
                .then(|| m.0.clone())
        })
        .await?;
    let m = Metrics(scrape);
    assert_eq!(m.value(metrics::RECEIVED), Some(3.0), "{}", m.0);
    assert_eq!(m.value(metrics::DISPATCHED), Some(3.0), "each cancel handed on once:\n{}", m.0);
    assert_eq!(timed(&m), Some(3.0), "each cancel timed once:\n{}", m.0);
    assert_eq!(m.value(metrics::CONNECTED), Some(1.0));
    assert_eq!(m.value(metrics::NOTIFICATIONS_ARRIVING), Some(1.0), "the first probe came back");
    assert!(m.is(metrics::DELIVERY_LAG_SECONDS, "histogram"), "buckets, not a summary:\n{}", m.0);
    assert!(m.is(metrics::DISPATCHED, "counter") && m.is(metrics::CONNECTED, "gauge"));
    // Loopback: each cancel reached the listener well within a second of its send call.
    let within_1s = |via: &str| {
        m.value(&format!("{}_bucket{{via=\"{via}\",le=\"1\"}}", metrics::DELIVERY_LAG_SECONDS)).unwrap_or(0.0)
    };
    assert_eq!(within_1s("notification") + within_1s("replay"), 3.0, "{}", m.0);

    // A row in the log without a notification (as if it was lost): the heartbeat's replay hands it
    // on, and times it as a replay.
    let (replayed_before, timed_replays_before) =
        (m.value(metrics::REPLAYED).unwrap_or(0.0), m.value(&lag("replay", "count")).unwrap_or(0.0));
    cluster
        .admin_on(DB)
        .await?
        .batch_execute(
            "INSERT INTO bytebase_signal_log (type, uid, sent_by) VALUES ('cancel_task_run', 4, current_user)",
        )
        .await?;
    assert_eq!(cli.stdout_line().await?, r#"{"type":"cancel_task_run","uid":4}"#);
    cli.scrape_until("the replayed signal counted and timed", |m| {
        (m.value(metrics::REPLAYED)? == replayed_before + 1.0
            && m.value(&lag("replay", "count"))? == timed_replays_before + 1.0
            && m.value(metrics::DISPATCHED)? == 4.0)
            .then_some(())
    })
    .await?;

    // The server goes away: unhealthy, and the gauge says so; back: healthy again, one reconnect.
    cluster.stop()?;
    let body = cli.health_becomes(503).await?;
    assert!(body.starts_with("not connected"), "{body}");
    cli.scrape_until("connected 0", |m| (m.value(metrics::CONNECTED)? == 0.0).then_some(())).await?;
    cluster.start_again()?;
    cli.health_becomes(200).await?;
    cli.scrape_until("one reconnect", |m| {
        (m.value(metrics::CONNECTED)? == 1.0 && m.value(metrics::RECONNECTS)? >= 1.0).then_some(())
    })
    .await?;
    Ok(())
}

#[tokio::test]
async fn a_metrics_address_in_use_fails_the_command_naming_it() -> Result<()> {
    let taken = std::net::TcpListener::bind("127.0.0.1:0")?;
    let addr = taken.local_addr()?.to_string();
    let out = Command::new(cli_binary()?)
        .args(["listen", "--dsn", "host=127.0.0.1 port=1", "--metrics-addr", &addr])
        .env_remove("DATABASE_URL")
        .output()
        .await?;
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "{stderr}");
    assert!(stderr.contains(&format!("--metrics-addr {addr}: cannot listen")), "{stderr}");
    Ok(())
}
