//! What the receive-side benchmarks share: a producer that commits notifications in large
//! batches, and the consumers they compare — the bare protocol loop (the floor), our `Listener`
//! with a `Registry`, the `bytebase-signal listen` CLI, and the sqlx and psycopg programs their
//! users would write.

use std::future::poll_fn;
use std::path::PathBuf;
use std::process::Stdio;
use std::time::Duration;

use anyhow::{bail, ensure, Context, Result};
use bytebase_signal_client::connect::ConnectOptions;
use bytebase_signal_client::{Event, Listener, ListenerHandle, Registry, RunUid, SignalKind};
use bytebase_signal_tests::cluster::Cluster;
use bytebase_signal_tests::pki::{Pki, ServerCert, SERVER_NAME};
use bytebase_signal_tests::tls_cluster::Hba;
use tokio::io::{AsyncBufReadExt, AsyncReadExt, BufReader};
use tokio::task::JoinHandle;
use tokio::time::Instant;
use tokio_postgres::{AsyncMessage, Client, Config, NoTls};
use tokio_util::sync::CancellationToken;

use crate::peer_sqlx;

/// Signals per producer transaction.
const BATCH: i64 = 50_000;

/// Commits task-run cancels for uids `1..=total` through raw `pg_notify` (the seed bytes), in
/// transactions of [`BATCH`]; returns when the last one committed.
pub async fn produce(producer: &Client, total: i64) -> Result<()> {
    produce_range(producer, 1, total).await
}

/// Like [`produce`], for uids `first..=last`.
pub async fn produce_range(producer: &Client, first: i64, last: i64) -> Result<()> {
    let mut low = first;
    while low <= last {
        let high = (low + BATCH - 1).min(last);
        producer
            .query_one(
                r#"SELECT count(pg_notify('bytebase_signal', '{"type":"cancel_task_run","uid":' || g || '}'))
                     FROM generate_series($1::bigint, $2::bigint) AS g"#,
                &[&low, &high],
            )
            .await?;
        low = high + 1;
    }
    Ok(())
}

/// A consumer that is listening.
pub struct Consumer {
    done: JoinHandle<Result<Instant>>,
    stop: CancellationToken,
    /// How to hold it while notifications queue up, if it can be held.
    hold: Hold,
    /// A process's resident set (MiB) when it had every signal, taken before it is killed.
    rss_at_end: std::sync::Arc<std::sync::Mutex<Option<f64>>>,
}

/// How [`Consumer::pause`] holds a consumer.
enum Hold {
    /// It cannot be held (it runs on the benchmark's own runtime).
    No,
    /// A process: SIGSTOP, then SIGCONT.
    Process(u32),
    /// A runtime of its own: its one thread blocked.
    Lane(Lane),
}

/// A current-thread runtime on a thread of its own (as the CLI runs: one thread for its listener
/// and its output), for an in-process consumer that the benchmark can hold while notifications
/// queue up on the server and release, so that the consumer's own speed is what is timed.
struct Lane {
    handle: tokio::runtime::Handle,
    /// Open while released; a task blocking the lane's thread waits on it while held.
    gate: std::sync::Arc<(std::sync::Mutex<bool>, std::sync::Condvar)>,
    /// Dropped with the lane: the runtime and everything on it stop.
    _shutdown: tokio::sync::oneshot::Sender<()>,
}

impl Lane {
    fn start() -> Result<Lane> {
        let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
        let handle = runtime.handle().clone();
        let (shutdown, stopped) = tokio::sync::oneshot::channel::<()>();
        std::thread::Builder::new().name("bench-lane".into()).spawn(move || {
            runtime.block_on(async {
                let _ = stopped.await;
            })
        })?;
        Ok(Lane { handle, gate: Default::default(), _shutdown: shutdown })
    }

    /// Blocks the lane's thread (everything on it stops) until [`Lane::release`]; returns once
    /// it is blocked.
    fn hold(&self) {
        *self.gate.0.lock().expect("gate") = true;
        let (blocked_tx, blocked_rx) = std::sync::mpsc::channel();
        let gate = std::sync::Arc::clone(&self.gate);
        self.handle.spawn(async move {
            let _ = blocked_tx.send(());
            let (held, open) = &*gate;
            let mut held = held.lock().expect("gate");
            while *held {
                held = open.wait(held).expect("gate");
            }
        });
        let _ = blocked_rx.recv();
    }

    fn release(&self) {
        *self.gate.0.lock().expect("gate") = false;
        self.gate.1.notify_all();
    }
}

/// Builds a consumer with `make` on a [`Lane`] of its own, so that it can be held.
pub async fn on_lane<F, Fut>(make: F) -> Result<Consumer>
where
    F: FnOnce() -> Fut,
    Fut: std::future::Future<Output = Result<Consumer>> + Send + 'static,
{
    let lane = Lane::start()?;
    let mut consumer = lane.handle.spawn(make()).await??;
    consumer.hold = Hold::Lane(lane);
    Ok(consumer)
}

impl Consumer {
    /// A consumer on the benchmark's runtime ([`on_lane`] moves one to a lane of its own).
    fn in_process(done: JoinHandle<Result<Instant>>, stop: CancellationToken) -> Consumer {
        Consumer { done, stop, hold: Hold::No, rss_at_end: Default::default() }
    }

    /// Holds it (it reads nothing) until [`Consumer::resume`]; an error if it cannot be held.
    pub fn pause(&self) -> Result<()> {
        match &self.hold {
            Hold::No => bail!("this consumer cannot be held"),
            // SAFETY: kill(2) on a child process we spawned and have not reaped.
            Hold::Process(pid) => {
                ensure!(unsafe { libc::kill(*pid as i32, libc::SIGSTOP) } == 0, "SIGSTOP failed")
            }
            Hold::Lane(lane) => lane.hold(),
        }
        Ok(())
    }

    /// Lets it go on; the instant it was let go.
    pub fn resume(&self) -> Result<Instant> {
        let at = Instant::now();
        match &self.hold {
            Hold::No => bail!("this consumer cannot be held"),
            // SAFETY: as in `pause`.
            Hold::Process(pid) => {
                ensure!(unsafe { libc::kill(*pid as i32, libc::SIGCONT) } == 0, "SIGCONT failed")
            }
            Hold::Lane(lane) => lane.release(),
        }
        Ok(at)
    }

    /// Stops it and waits until it has let go of its connection.
    pub async fn close(self) {
        self.stop.cancel();
        let _ = self.done.await;
    }

    /// The instant it received the last signal (failing after `within`); then stops it, so that
    /// it holds no connection into the next measurement.
    pub async fn finish(self, within: Duration) -> Result<Instant> {
        Ok(self.finish_with_rss(within).await?.0)
    }

    /// Like [`Consumer::finish`], with a process's resident set (MiB) at that instant.
    pub async fn finish_with_rss(self, within: Duration) -> Result<(Instant, Option<f64>)> {
        let done = tokio::time::timeout(within, self.done).await;
        self.stop.cancel();
        let at = done.context("consumer did not finish")???;
        let rss = *self.rss_at_end.lock().expect("not poisoned");
        Ok((at, rss))
    }
}

/// Waits until a just-spawned listener has connected and caught up from the log.
pub async fn caught_up(handle: &ListenerHandle) -> Result<()> {
    let mut events = handle.events();
    loop {
        match tokio::time::timeout(Duration::from_secs(30), events.recv())
            .await
            .context("listener start")??
        {
            Event::Replayed { .. } => return Ok(()),
            Event::ConnectFailed { reason } => bail!("listener could not connect: {reason}"),
            _ => {}
        }
    }
}

/// A throwaway cluster that takes TLS and plaintext alike (`host ... trust`), so that the TLS rows
/// and the plaintext ones of a table measure the same server; and the certificates it uses.
pub fn cluster_with_tls() -> Result<(Cluster, Pki)> {
    let pki = Pki::generate()?;
    let cluster = Cluster::builder().tls(&pki, ServerCert::Valid).hba(Hba::Trust).start()?;
    Ok((cluster, pki))
}

/// `config` without TLS. tokio-postgres' `Config` (and libpq) default to `sslmode=prefer`, which
/// on a server that offers TLS (`cluster_with_tls`) means TLS: our plaintext rows would pay for
/// decryption that the bare loop and sqlx (built without TLS) do not.
pub fn plaintext(config: &Config) -> ConnectOptions {
    let mut config = config.clone();
    config.ssl_mode(tokio_postgres::config::SslMode::Disable);
    config.into()
}

/// The settings of a listener reaching `db` on `cluster` over TLS, verifying it fully.
pub fn tls_options(cluster: &Cluster, pki: &Pki, db: &str) -> Result<ConnectOptions> {
    let dsn = format!(
        "host={SERVER_NAME} hostaddr={} port={} user=postgres dbname={db} sslmode=verify-full sslrootcert='{}'",
        cluster.host(),
        cluster.port(),
        pki.ca_cert().display()
    );
    Ok(ConnectOptions::parse(&dsn)?)
}

/// Spawns `command` (stdout as given, stderr piped) and waits until its stderr says "listening";
/// the rest of its stderr is passed through, prefixed with `name`.
async fn spawn_listening(
    mut command: tokio::process::Command,
    name: &'static str,
) -> Result<tokio::process::Child> {
    let mut child = command.stderr(Stdio::piped()).kill_on_drop(true).spawn()?;
    let mut stderr = BufReader::new(child.stderr.take().context("stderr")?).lines();
    tokio::time::timeout(Duration::from_secs(30), async {
        while let Some(line) = stderr.next_line().await? {
            if line.contains("listening") {
                return Ok(());
            }
            eprintln!("{name}: {line}");
        }
        bail!("{name} exited before listening")
    })
    .await
    .with_context(|| format!("{name} start"))??;
    tokio::spawn(async move { while let Ok(Some(_)) = stderr.next_line().await {} });
    Ok(child)
}

/// The floor: a bare tokio-postgres `poll_message` loop that only counts.
pub async fn bare(config: &Config, total: u64) -> Result<Consumer> {
    let (client, mut connection) = config.connect(NoTls).await?;
    let (ready_tx, ready_rx) = tokio::sync::oneshot::channel();
    let stop = CancellationToken::new();
    let stopped = stop.clone();
    let done = tokio::spawn(async move {
        let listen = client.batch_execute("LISTEN bytebase_signal");
        tokio::pin!(listen);
        let (mut listening, mut ready_tx, mut count) = (false, Some(ready_tx), 0_u64);
        loop {
            tokio::select! {
                () = stopped.cancelled() => bail!("stopped after {count} signals"),
                r = &mut listen, if !listening => {
                    r?;
                    listening = true;
                    if let Some(tx) = ready_tx.take() { let _ = tx.send(()); }
                }
                m = poll_fn(|cx| connection.poll_message(cx)) => match m {
                    Some(Ok(AsyncMessage::Notification(_))) => {
                        count += 1;
                        if count == total {
                            return Ok(Instant::now());
                        }
                    }
                    Some(Ok(_)) => {}
                    Some(Err(e)) => return Err(e.into()),
                    None => bail!("connection closed after {count} signals"),
                },
            }
        }
    });
    ready_rx.await.context("bare loop never listened")?;
    Ok(Consumer::in_process(done, stop))
}

/// Ours: a `Listener` handing every signal to a `Registry` that holds `runs` registered runs
/// (none of them signalled, so each signal is a full miss: lookup, tombstone, counters).
pub async fn ours(options: ConnectOptions, total: u64, runs: i64) -> Result<Consumer> {
    let registry = Registry::new();
    let guards: Vec<_> = (1..=runs)
        .map(|n| registry.register(SignalKind::TaskRun, RunUid::new(1_000_000_000 + n).expect("positive")))
        .collect();
    let stop = CancellationToken::new();
    let handle = Listener::new(options).spawn_with_registry(registry.clone(), stop.clone());
    caught_up(&handle).await?;
    let done = tokio::spawn(async move {
        let _guards = guards;
        // The registry dispatches in the listener's reading task; watch its counter (atomic loads).
        while registry.stats().dispatched < total {
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
        let at = Instant::now();
        let status = handle.status();
        ensure!(status.overflowed == 0 && status.dispatched == total, "unexpected {status:?}");
        Ok(at)
    });
    Ok(Consumer::in_process(done, stop))
}

/// The `bytebase-signal listen` CLI (release build) writing to a file; done when the file holds
/// `total` lines.
pub async fn cli(config: &Config, total: u64, dir: &std::path::Path) -> Result<Consumer> {
    let port = config.get_ports().first().copied().unwrap_or(5432);
    let dsn = format!(
        "host=127.0.0.1 port={port} user=postgres dbname={} sslmode=disable",
        config.get_dbname().unwrap_or("postgres")
    );
    printing("bytebase-signal", &["listen", "--dsn", &dsn], "the CLI", total, dir).await
}

/// The sqlx CLI peer (`bytebase-signal-bench-sqlx-listen`): the same contract, one line per
/// signal into a file, as a sqlx user would write it (one loop, serde_json, a 64 KiB buffer).
pub async fn sqlx_cli(config: &Config, total: u64, dir: &std::path::Path) -> Result<Consumer> {
    printing("bytebase-signal-bench-sqlx-listen", &[&sqlx_url(config)], "the sqlx CLI", total, dir).await
}

/// Runs the program `bin` (built beside this one) with `args`, its stdout into a file, and
/// completes once the file holds `total` lines.
async fn printing(
    bin: &str,
    args: &[&str],
    name: &'static str,
    total: u64,
    dir: &std::path::Path,
) -> Result<Consumer> {
    let exe = std::env::current_exe()?;
    let bin: PathBuf = exe.parent().context("bench binary location")?.join(bin);
    ensure!(bin.exists(), "{} missing: build it with --release (make bench does)", bin.display());
    let out_path = dir.join(format!("{}.out", bin.file_name().and_then(|n| n.to_str()).unwrap_or("cli")));
    let out = std::fs::File::create(&out_path)?;
    let mut command = tokio::process::Command::new(bin);
    command.args(args).stdout(out);
    let mut child = spawn_listening(command, name).await?;
    let pid = child.id().context("the child's pid")?;
    let stop = CancellationToken::new();
    let stopped = stop.clone();
    let rss_at_end: std::sync::Arc<std::sync::Mutex<Option<f64>>> = Default::default();
    let rss = std::sync::Arc::clone(&rss_at_end);
    let done = tokio::spawn(async move {
        let mut file = tokio::fs::File::open(&out_path).await?;
        let (mut lines, mut buf) = (0_u64, vec![0_u8; 1 << 16]);
        loop {
            let n = tokio::select! {
                () = stopped.cancelled() => { let _ = child.kill().await; bail!("stopped after {lines} lines") }
                n = file.read(&mut buf) => n?,
            };
            if n == 0 {
                // At the end of what is written so far: look again shortly (the CLI flushes per burst).
                tokio::time::sleep(Duration::from_millis(2)).await;
                continue;
            }
            lines += buf[..n].iter().filter(|&&b| b == b'\n').count() as u64;
            if lines >= total {
                let at = Instant::now();
                *rss.lock().expect("not poisoned") = rss_mib_of(pid);
                let _ = child.kill().await;
                return Ok(at);
            }
        }
    });
    Ok(Consumer { done, stop, hold: Hold::Process(pid), rss_at_end })
}

/// The resident set of process `pid`, in MiB (Linux: VmRSS).
pub fn rss_mib_of(pid: u32) -> Option<f64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let kib: f64 = status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))?
        .trim()
        .trim_end_matches("kB")
        .trim()
        .parse()
        .ok()?;
    Some(kib / 1024.0)
}

/// The in-process Rust peer ([`crate::peer_sqlx`]): a sqlx user's loop, decoding each payload
/// with serde_json and looking the run up among `runs` registered ones (as many as ours has).
pub async fn sqlx(config: &Config, total: u64, runs: i64) -> Result<Consumer> {
    let owned: peer_sqlx::Runs = Default::default();
    owned.lock().expect("fresh").extend(
        (1..=runs).map(|n| ((peer_sqlx::Kind::CancelTaskRun, 1_000_000_000 + n), CancellationToken::new())),
    );
    sqlx_loop(config, total, move |payload| peer_sqlx::handle(&owned, payload).is_some()).await
}

/// sqlx's own floor: `PgListener::recv()` in a loop that only counts (no decoding, no lookup).
pub async fn sqlx_counting(config: &Config, total: u64) -> Result<Consumer> {
    sqlx_loop(config, total, |_| true).await
}

/// A `PgListener::recv()` loop that gives each payload to `handle` and is done once `handle` has
/// counted `total` of them.
async fn sqlx_loop(
    config: &Config,
    total: u64,
    mut handle: impl FnMut(&str) -> bool + Send + 'static,
) -> Result<Consumer> {
    let mut listener = peer_sqlx::listen(&sqlx_url(config)).await?;
    let stop = CancellationToken::new();
    let stopped = stop.clone();
    let done = tokio::spawn(async move {
        let mut count = 0_u64;
        loop {
            tokio::select! {
                () = stopped.cancelled() => bail!("stopped after {count} signals"),
                n = listener.recv() => {
                    if handle(n?.payload()) {
                        count += 1;
                    }
                    if count == total {
                        return Ok(Instant::now());
                    }
                }
            }
        }
    });
    Ok(Consumer::in_process(done, stop))
}

/// The URL sqlx connects to (plaintext: sqlx is built without TLS here).
fn sqlx_url(config: &Config) -> String {
    let port = config.get_ports().first().copied().unwrap_or(5432);
    format!("postgres://postgres@127.0.0.1:{port}/{}", config.get_dbname().unwrap_or("postgres"))
}

/// The Python peer: psycopg 3 (`peer_psycopg.py`), with the interpreter `make bench` set up in a
/// virtualenv (`BENCH_PYTHON`).
pub async fn psycopg(config: &Config, total: u64) -> Result<Consumer> {
    let python = std::env::var("BENCH_PYTHON").context("BENCH_PYTHON unset: run through make bench")?;
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/src/bin/bench/peer_psycopg.py");
    let port = config.get_ports().first().copied().unwrap_or(5432);
    let dsn = format!(
        "host=127.0.0.1 port={port} user=postgres dbname={} sslmode=disable",
        config.get_dbname().unwrap_or("postgres")
    );
    let mut command = tokio::process::Command::new(python);
    command.args([script, &dsn, &total.to_string()]).stdout(Stdio::piped());
    let mut child = spawn_listening(command, "psycopg").await?;
    let pid = child.id().context("the child's pid")?;
    let mut stdout = BufReader::new(child.stdout.take().context("stdout")?).lines();
    let stop = CancellationToken::new();
    let stopped = stop.clone();
    let done = tokio::spawn(async move {
        let line = tokio::select! {
            () = stopped.cancelled() => { let _ = child.kill().await; bail!("stopped") }
            line = stdout.next_line() => line?.context("psycopg printed nothing")?,
        };
        // Its wall-clock completion time, as an instant on our clock.
        let epoch: f64 = line.trim().parse().with_context(|| format!("psycopg printed {line:?}"))?;
        let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH)?.as_secs_f64();
        Ok(Instant::now() - Duration::from_secs_f64((now - epoch).max(0.0)))
    });
    Ok(Consumer { done, stop, hold: Hold::Process(pid), rss_at_end: Default::default() })
}
