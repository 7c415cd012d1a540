//! Memory: bytes per registered run and per tombstone (counted by this binary's allocator), the
//! process's resident set while a listener with a registry receives 10,000,000 signals, what a
//! listener handing on to a queue holds after 1,000,000 distinct cancels, and the resident sets
//! of the CLI and of the sqlx CLI after the same.

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicIsize, Ordering};

use anyhow::{ensure, Context, Result};
use bytebase_signal_client::{Listener, Registry, RunUid, Signal, SignalKind};
use bytebase_signal_tests::cluster::Cluster;
use tokio_util::sync::CancellationToken;

use crate::feed;

/// The system allocator, counting the bytes currently allocated.
pub struct Counting;

static ALLOCATED: AtomicIsize = AtomicIsize::new(0);

// SAFETY: forwards every call to the system allocator unchanged; only counts.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        ALLOCATED.fetch_add(layout.size() as isize, Ordering::Relaxed);
        unsafe { System.alloc(layout) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        ALLOCATED.fetch_sub(layout.size() as isize, Ordering::Relaxed);
        unsafe { System.dealloc(ptr, layout) }
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        ALLOCATED.fetch_add(new_size as isize - layout.size() as isize, Ordering::Relaxed);
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

fn allocated() -> isize {
    ALLOCATED.load(Ordering::Relaxed)
}

const N: i64 = 100_000;
const FLOOD: i64 = 10_000_000;
/// The flood the CLI rows receive.
const CLI_FLOOD: i64 = 1_000_000;
const DB: &str = "bench";

/// Runs the memory table.
pub async fn run() -> Result<()> {
    // Bytes per registered run: the registry entry and the guard the application keeps.
    let registry = Registry::new();
    let before = allocated();
    let guards: Vec<_> =
        (1..=N).map(|n| registry.register(SignalKind::TaskRun, RunUid::new(n).expect("positive"))).collect();
    let per_run = (allocated() - before) as f64 / N as f64;
    // Bytes per tombstone: unmatched dispatches of signals for runs nobody registered.
    let before = allocated();
    for n in 1..=N {
        registry.dispatch(&Signal::new(SignalKind::PlanCheckRun, RunUid::new(n).expect("positive")));
    }
    // Dispatches append without indexing; the next lookup (here the count, as a registration
    // would) indexes them all, once: that pause, and the memory with the index.
    let started = std::time::Instant::now();
    let tombstones = registry.tombstones();
    let indexing = started.elapsed();
    ensure!(tombstones == N as usize, "{tombstones} tombstones after {N} dispatches");
    let per_tombstone = (allocated() - before) as f64 / N as f64;
    drop(guards);

    eprintln!("memory: starting a throwaway cluster ...");
    let cluster = Cluster::start()?;
    cluster.create_database_with_extension(DB).await?;
    let producer = cluster.connect(DB).await?;
    let registry = Registry::new();
    let stop = CancellationToken::new();
    let handle = Listener::new(cluster.config(DB)).spawn_with_registry(registry.clone(), stop.clone());
    feed::caught_up(&handle).await?;
    let start_rss = feed::rss_mib_of(std::process::id()).unwrap_or(0.0);
    let mut samples = Vec::new();
    let step = FLOOD / 10;
    for i in 0..10 {
        // Distinct uids throughout, so every signal is a new tombstone and a new remembered key.
        feed::produce_range(&producer, i * step + 1, (i + 1) * step).await?;
        let want = ((i + 1) * step) as u64;
        while registry.stats().dispatched < want {
            tokio::time::sleep(std::time::Duration::from_millis(5)).await;
        }
        samples.push(feed::rss_mib_of(std::process::id()).unwrap_or(0.0));
    }
    let status = handle.status();
    stop.cancel();
    handle.join().await;
    ensure!(status.dispatched == FLOOD as u64, "dispatched {status:?}");

    // What a listener handing on to an application queue (as the CLI's) holds after a flood of
    // distinct cancels, drained: its de-duplication window and what its queue kept.
    // A queue as long as the flood: here the consumer runs on another thread than the reader
    // and may fall behind it, and these notifications are not logged, so none may be dropped.
    // What is measured is what stays allocated once the flood is drained.
    let stop = CancellationToken::new();
    let listener = Listener::new(cluster.config(DB));
    let config = listener.config().clone().queue_capacity(CLI_FLOOD as usize);
    let (handle, mut signals) = listener.with_config(config).spawn(stop.clone());
    feed::caught_up(&handle).await?;
    let base = allocated();
    feed::produce_range(&producer, FLOOD + 1, FLOOD + CLI_FLOOD).await?;
    let drained = tokio::time::timeout(std::time::Duration::from_secs(120), async {
        for _ in 0..CLI_FLOOD {
            signals.recv().await?;
        }
        Some(())
    })
    .await;
    drained.ok().flatten().with_context(|| format!("the flood did not arrive: {:?}", handle.status()))?;
    let held = (allocated() - base) as f64 / (1024.0 * 1024.0);
    stop.cancel();
    handle.join().await;
    drop(signals);

    // The CLI and the sqlx CLI, each after the same flood of distinct cancels (new uids).
    let dir = tempfile::tempdir()?;
    let config = cluster.config(DB);
    let mut rss = Vec::new();
    for (i, name) in ["bytebase-signal listen > file", "sqlx CLI > file (Rust peer)"].into_iter().enumerate()
    {
        let consumer = if i == 0 {
            feed::cli(&config, CLI_FLOOD as u64, dir.path()).await?
        } else {
            feed::sqlx_cli(&config, CLI_FLOOD as u64, dir.path()).await?
        };
        let first = FLOOD + CLI_FLOOD * (i as i64 + 1) + 1;
        feed::produce_range(&producer, first, first + CLI_FLOOD - 1).await?;
        let (_, mib) = consumer.finish_with_rss(std::time::Duration::from_secs(300)).await?;
        rss.push((name, mib.context("no RSS read")?));
    }

    println!("\n### Memory\n");
    println!("| measure | value | goal |");
    println!("|---|---:|---|");
    println!("| bytes per registered run (registry entry + guard) | {per_run:.0} | reported |");
    println!("| bytes per tombstone (with its index entry) | {per_tombstone:.0} | reported |");
    println!(
        "| the first lookup after {N} dispatches (it indexes them, once) | {:.1} ms | reported |",
        indexing.as_secs_f64() * 1e3
    );
    let series: Vec<String> = samples.iter().map(|m| format!("{m:.0}")).collect();
    println!(
        "| RSS while receiving {FLOOD} signals: before, then after each million (MiB) | {start_rss:.0}; {} | flat |",
        series.join(", ")
    );
    println!(
        "| allocated by a Listener handing on to a queue, after {CLI_FLOOD} distinct cancels (MiB; its window \
         keeps at most {} keys) | {held:.1} | reported |",
        bytebase_signal_client::listener::DEDUP_WINDOW_MAX
    );
    for (name, mib) in rss {
        println!("| RSS of {name} after {CLI_FLOOD} distinct cancels (MiB) | {mib:.1} | reported |");
    }

    Ok(())
}
