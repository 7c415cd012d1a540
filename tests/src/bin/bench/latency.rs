//! Latency: one sender commits 1,000 cancels a second; 8 listeners each time every signal from
//! just before its autocommit call was issued until their handler has it. p50 / p99 / p99.9 over
//! all listeners' samples, ours — the registry path (`Listener` + `Registry`: the run's own task
//! woken by its token) and the queue path (`Listener` + its `Signals` handler) — against sqlx's
//! `PgListener`, in interleaved rounds (they rotate, so none always runs first).

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, Result};
use bytebase_signal_client::connect::ConnectOptions;
use bytebase_signal_client::{Listener, Registry, RunUid, SignalKind};
use bytebase_signal_tests::cluster::Cluster;
use tokio::task::JoinSet;
use tokio::time::{Instant, MissedTickBehavior};
use tokio_util::sync::CancellationToken;

use crate::peer_sqlx;

const LISTENERS: usize = 8;
const SIGNALS: usize = 3_000;
const PER_SECOND: u64 = 1_000;
const DB: &str = "bench";
const ROUNDS: usize = 3;
const NAMES: [&str; 4] = [
    "Listener + Registry (ours): each run's task woken by its token",
    "Listener + Signals handler (ours)",
    "Listener + Signals handler (ours), over TLS (verify-full)",
    "sqlx PgListener + serde_json + a map of run tokens (a sqlx user's listener)",
];

/// Which listener a run measures.
#[derive(Clone, Copy)]
enum Which {
    OursRegistry,
    Ours,
    OursTls,
    Sqlx,
}

/// When each uid's call was issued, in nanoseconds after `base` (0: not yet).
struct Clock {
    base: Instant,
    sent: Vec<AtomicU64>,
}

impl Clock {
    /// Milliseconds from the call for `uid` until now.
    fn since_sent(&self, uid: i64) -> Option<f64> {
        let sent = self.sent.get(usize::try_from(uid).ok()?)?.load(Ordering::Acquire);
        (sent > 0).then(|| (self.base.elapsed().as_nanos() as f64 - sent as f64) / 1e6)
    }
}

fn percentile(sorted: &[f64], p: f64) -> f64 {
    sorted[((sorted.len() as f64 - 1.0) * p).round() as usize]
}

/// One of our listeners: the handler is the application's loop over `Signals`.
async fn ours(
    options: ConnectOptions,
    clock: Arc<Clock>,
    stop: CancellationToken,
) -> Result<tokio::task::JoinHandle<Result<Vec<f64>>>> {
    let (handle, mut signals) = Listener::new(options).spawn(stop);
    crate::feed::caught_up(&handle).await?;
    Ok(tokio::spawn(async move {
        let _handle = handle;
        let mut samples = Vec::with_capacity(SIGNALS);
        while samples.len() < SIGNALS {
            let signal = signals.recv().await.context("listener stopped")?;
            samples.extend(clock.since_sent(signal.uid.get()));
        }
        Ok(samples)
    }))
}

/// One of our listeners on the registry path: every uid registered as a run whose task waits for
/// its token, as a job on a replica does; the sample is taken when that task wakes.
async fn ours_registry(
    options: ConnectOptions,
    clock: Arc<Clock>,
    stop: CancellationToken,
) -> Result<tokio::task::JoinHandle<Result<Vec<f64>>>> {
    let registry = Registry::new();
    let mut runs = JoinSet::new();
    for uid in 1..=SIGNALS as i64 {
        let guard = registry.register(SignalKind::TaskRun, RunUid::new(uid)?);
        let clock = Arc::clone(&clock);
        runs.spawn(async move {
            guard.token().cancelled().await;
            clock.since_sent(uid)
        });
    }
    let handle = Listener::new(options).spawn_with_registry(registry, stop);
    crate::feed::caught_up(&handle).await?;
    Ok(tokio::spawn(async move {
        let _handle = handle;
        let mut samples = Vec::with_capacity(SIGNALS);
        while let Some(sample) = runs.join_next().await {
            samples.extend(sample?);
        }
        Ok(samples)
    }))
}

/// One sqlx `PgListener` as its users write it ([`crate::peer_sqlx`]): serde_json, then the run's
/// token looked up in the application's map and cancelled; as on our registry path, every uid is
/// a run whose task waits for its token, and the sample is taken when that task wakes.
async fn sqlx(cluster: &Cluster, clock: Arc<Clock>) -> Result<tokio::task::JoinHandle<Result<Vec<f64>>>> {
    let url = format!("postgres://postgres@{}:{}/{DB}", cluster.host(), cluster.port());
    let mut listener = peer_sqlx::listen(&url).await?;
    let owned = peer_sqlx::Runs::default();
    let mut runs = JoinSet::new();
    for uid in 1..=SIGNALS as i64 {
        let token = CancellationToken::new();
        owned.lock().expect("not poisoned").insert((peer_sqlx::Kind::CancelTaskRun, uid), token.clone());
        let (clock, owned) = (Arc::clone(&clock), Arc::clone(&owned));
        runs.spawn(async move {
            token.cancelled().await;
            owned.lock().expect("not poisoned").remove(&(peer_sqlx::Kind::CancelTaskRun, uid));
            clock.since_sent(uid)
        });
    }
    let reader = tokio::spawn(async move {
        while let Ok(n) = listener.recv().await {
            peer_sqlx::handle(&owned, n.payload());
        }
    });
    Ok(tokio::spawn(async move {
        let mut samples = Vec::with_capacity(SIGNALS);
        while let Some(sample) = runs.join_next().await {
            samples.extend(sample?);
        }
        reader.abort();
        Ok(samples)
    }))
}

/// Runs the latency table.
pub async fn run() -> Result<()> {
    eprintln!("latency: starting a throwaway cluster ...");
    let (cluster, pki) = crate::feed::cluster_with_tls()?;
    cluster.create_database_with_extension(DB).await?;
    let sender = cluster.connect(DB).await?;
    let tls = crate::feed::tls_options(&cluster, &pki, DB)?;
    let mut samples: [Vec<f64>; 4] = Default::default();
    for round in 0..ROUNDS {
        for i in 0..NAMES.len() {
            let which = (i + round) % NAMES.len();
            let kind = [Which::OursRegistry, Which::Ours, Which::OursTls, Which::Sqlx][which];
            let got = one_run(&cluster, &tls, &sender, kind).await?;
            eprintln!("round {}: {}: {} samples", round + 1, NAMES[which], got.len());
            samples[which].extend(got);
        }
    }
    let mut rows = Vec::new();
    for (name, mut samples) in NAMES.into_iter().zip(samples) {
        samples.sort_by(f64::total_cmp);
        rows.push((name, percentile(&samples, 0.5), percentile(&samples, 0.99), percentile(&samples, 0.999)));
    }
    println!(
        "\n### Latency (call issued → handler; {PER_SECOND} signals/s, {SIGNALS} signals, {LISTENERS} listeners, \
         {ROUNDS} interleaved rounds pooled, loopback)\n"
    );
    println!("| listener | p50 | p99 | p99.9 | goal |");
    println!("|---|---:|---:|---:|---|");
    for (i, (name, p50, p99, p999)) in rows.into_iter().enumerate() {
        let goal = if i == 0 { "p99 ≤ 1 ms, p99.9 reported" } else { "reported" };
        println!("| {name} | {p50:.2} ms | {p99:.2} ms | {p999:.2} ms | {goal} |");
    }
    Ok(())
}

/// One run: `LISTENERS` listeners (ours on the registry path, ours through a `Signals` handler, over TLS, or sqlx's) while `SIGNALS` cancels are sent at
/// `PER_SECOND`; every listener's latency samples.
async fn one_run(
    cluster: &Cluster,
    tls: &ConnectOptions,
    sender: &tokio_postgres::Client,
    which: Which,
) -> Result<Vec<f64>> {
    // An empty log, so that no listener's first catch-up hands it the previous run's uids.
    sender.batch_execute("TRUNCATE bytebase_signal_log").await?;
    let clock =
        Arc::new(Clock { base: Instant::now(), sent: (0..=SIGNALS).map(|_| AtomicU64::new(0)).collect() });
    let stop = CancellationToken::new();
    let mut handlers = JoinSet::new();
    for _ in 0..LISTENERS {
        let handler = match which {
            Which::OursRegistry => {
                ours_registry(crate::feed::plaintext(&cluster.config(DB)), Arc::clone(&clock), stop.clone())
                    .await?
            }
            Which::Ours => {
                ours(crate::feed::plaintext(&cluster.config(DB)), Arc::clone(&clock), stop.clone()).await?
            }
            Which::OursTls => ours(tls.clone(), Arc::clone(&clock), stop.clone()).await?,
            Which::Sqlx => sqlx(cluster, Arc::clone(&clock)).await?,
        };
        handlers.spawn(async move { handler.await? });
    }
    let mut tick = tokio::time::interval(Duration::from_micros(1_000_000 / PER_SECOND));
    tick.set_missed_tick_behavior(MissedTickBehavior::Burst);
    for uid in 1..=SIGNALS {
        tick.tick().await;
        clock.sent[uid].store(clock.base.elapsed().as_nanos() as u64, Ordering::Release);
        sender.execute("SELECT bytebase_cancel_task_run($1)", &[&(uid as i64)]).await?;
    }
    let mut samples = Vec::with_capacity(LISTENERS * SIGNALS);
    while let Some(done) = tokio::time::timeout(Duration::from_secs(60), handlers.join_next()).await? {
        samples.extend(done??);
    }
    stop.cancel();
    Ok(samples)
}
