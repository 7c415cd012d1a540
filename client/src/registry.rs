//! The in-process table from running jobs to their cancel handles.
//!
//! Code that starts a task run or plan check run [registers](Registry::register) it and keeps the
//! returned [`RunGuard`] for as long as the run lives; the guard's [`CancellationToken`] is what the
//! run's work watches. The listener hands every decoded [`Signal`] to [`Registry::dispatch`], which
//! cancels the tokens of the matching run, if this replica has it.
//!
//! Signals can arrive before the run they name is registered: a cancel issued right after a run is
//! scheduled may overtake the replica picking it up, and replays after a reconnect deliver old
//! signals. So every dispatch leaves a *tombstone* for a while (the TTL, ten minutes by default), and
//! a run registered while its tombstone lives starts out cancelled. Tombstones expire and are purged
//! as the registry is used, so memory stays proportional to the signal rate times the TTL.
//!
//! Dispatch is idempotent: a duplicate or replayed signal cancels nothing new and only refreshes
//! the tombstone.
//!
//! Upstream Bytebase numbers runs per project, and plan check runs per approval input version, so
//! a run can be registered by its uid alone ([`Registry::register`]) or by a [`RunKey`] naming its
//! project and version too ([`Registry::register_run`]). A signal cancels a run when kind and uid
//! agree and
//!
//! | the run was registered with | signal without project | signal naming project `p` |
//! |---|---|---|
//! | no project | cancels | cancels |
//! | project `p` | does not cancel (it could be any project's run) | cancels |
//! | project `q` | does not cancel | does not cancel |
//!
//! and, for a registration with approval input version `v`, the signal names no version (or 0,
//! which protojson leaves out), or names `v`.
//!
//! ```
//! use bytebase_signal_client::registry::{Dispatch, Registry};
//! use bytebase_signal_client::signal::Signal;
//! use bytebase_signal_client::validate::RunUid;
//! use bytebase_signal_client::wire::SignalKind;
//!
//! let registry = Registry::new();
//! let uid = RunUid::new(42).unwrap();
//! let guard = registry.register(SignalKind::TaskRun, uid);
//! assert!(!guard.is_cancelled());
//!
//! let signal = Signal::decode(r#"{"type":"cancel_task_run","uid":42}"#).unwrap();
//! assert_eq!(registry.dispatch(&signal), Dispatch::Cancelled(1));
//! assert!(guard.is_cancelled());
//! ```

use std::collections::HashMap;
use std::fmt;
use std::num::NonZeroI64;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

use tokio_util::sync::CancellationToken;

use crate::expiring::{Expiring, Record};
use crate::signal::Signal;
use crate::validate::RunUid;
use crate::wire::SignalKind;

/// How long a dispatched signal keeps cancelling runs registered after it, unless
/// [`Registry::with_tombstone_ttl`] says otherwise: ten minutes, well beyond the replay grace
/// period and the time a scheduled run takes to start.
pub const DEFAULT_TOMBSTONE_TTL: Duration = Duration::from_secs(10 * 60);

/// The longest tombstone TTL a registry uses; longer requests are shortened to it. A day is far
/// beyond any useful window, and the cap keeps expiry instants representable on every platform.
pub const MAX_TOMBSTONE_TTL: Duration = Duration::from_secs(24 * 60 * 60);

/// The most tombstones (dispatches, strictly) a registry keeps; beyond it the oldest go first.
/// A flood of signals for runs this replica does not own (a benchmark, a bulk cancel of a whole
/// project) must not grow memory without bound: 131,072 tombstones are about 12 MiB, far more than
/// the runs a replica starts within a TTL.
pub const MAX_TOMBSTONES: usize = 1 << 17;

/// The kind and uid a registration or signal is about: what the tables are indexed by.
type Key = (SignalKind, RunUid);

/// The registry's tables: hashed on every dispatch, so with a fast, randomly seeded hasher.
type Table<V> = HashMap<Key, V, foldhash::fast::RandomState>;

/// A run as it is registered: its kind and uid, and, where upstream scopes run ids so, the project
/// it belongs to and the approval input version it checks (see the module docs for how signals
/// match these).
///
/// ```
/// use bytebase_signal_client::registry::RunKey;
/// use bytebase_signal_client::{RunUid, Signal, SignalKind};
///
/// let uid = RunUid::new(7).unwrap();
/// let run = RunKey::new(SignalKind::PlanCheckRun, uid).in_project("proj-a").with_approval_input_version(2);
/// assert!(run.is_cancelled_by(&Signal::new(SignalKind::PlanCheckRun, uid).with_project("proj-a")));
/// assert!(!run.is_cancelled_by(&Signal::new(SignalKind::PlanCheckRun, uid).with_project("proj-b")));
/// assert!(!run.is_cancelled_by(&Signal::new(SignalKind::PlanCheckRun, uid)));
/// ```
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub struct RunKey {
    /// The kind of run.
    pub kind: SignalKind,
    /// Its id (unique per project upstream).
    pub uid: RunUid,
    /// The project it belongs to; `None` registers it for signals naming any project or none.
    pub project: Option<Arc<str>>,
    /// The approval input version a plan check run checks; `None` for any.
    pub approval_input_version: Option<i64>,
}

impl RunKey {
    /// Run `uid` of `kind`, in any project.
    pub fn new(kind: SignalKind, uid: RunUid) -> Self {
        RunKey { kind, uid, project: None, approval_input_version: None }
    }

    /// This run, scoped to `project`. An empty project is no project (protojson omits it), so
    /// the run stays unscoped.
    pub fn in_project(mut self, project: impl Into<Arc<str>>) -> Self {
        let project = project.into();
        self.project = (!project.is_empty()).then_some(project);
        self
    }

    /// This run, at approval input version `version`.
    pub fn with_approval_input_version(mut self, version: i64) -> Self {
        self.approval_input_version = Some(version);
        self
    }

    /// Whether `signal` cancels this run (the rules are in the module docs).
    pub fn is_cancelled_by(&self, signal: &Signal) -> bool {
        self.kind == signal.kind && self.uid == signal.uid && {
            SignalScope::of(signal).reaches(self.scope())
        }
    }

    fn scope(&self) -> RunScope<'_> {
        RunScope { project: self.project.as_deref(), version: self.approval_input_version }
    }
}

/// Where a registered run belongs besides its kind and uid: its project and approval input
/// version, `None` for any.
#[derive(Clone, Copy)]
struct RunScope<'a> {
    project: Option<&'a str>,
    version: Option<i64>,
}

/// What a signal names besides kind and uid ([`Signal::scope`]: an empty project and a version
/// of 0 already count as none).
#[derive(Clone, Copy)]
struct SignalScope<'a> {
    project: Option<&'a str>,
    version: Option<NonZeroI64>,
}

impl<'a> SignalScope<'a> {
    fn of(signal: &'a Signal) -> Self {
        let (project, version) = signal.scope();
        SignalScope { project, version }
    }

    /// Whether a signal of this scope reaches a run registered with `run` (kind and uid already
    /// agree; the rules are in the module docs).
    fn reaches(self, run: RunScope<'_>) -> bool {
        let project_ok = run.project.is_none() || self.project == run.project;
        let version_ok = match (run.version, self.version) {
            (Some(run), Some(signal)) => run == signal.get(),
            _ => true,
        };
        project_ok && version_ok
    }
}

/// One live registration of a run.
struct Registration {
    id: u64,
    project: Option<Arc<str>>,
    approval_input_version: Option<i64>,
    token: CancellationToken,
}

/// What a dispatched signal leaves behind for runs registered after it, until its stamp in the
/// table (its expiry). The version is the signal's, 0 counting as none.
struct Tombstone {
    project: Option<Arc<str>>,
    approval_input_version: Option<NonZeroI64>,
}

impl Tombstone {
    /// The scope of the signal that left it.
    fn scope(&self) -> SignalScope<'_> {
        SignalScope { project: self.project.as_deref(), version: self.approval_input_version }
    }
}

impl Record for Tombstone {
    /// The same signal dispatched again (same project and version): its newer expiry replaces
    /// the older.
    fn replaces(&self, older: &Self) -> bool {
        self.project == older.project && self.approval_input_version == older.approval_input_version
    }

    fn succeed(&mut self, _older: Self) {}
}

/// The registry of running jobs on this replica. Cheap to clone: clones share one table.
#[derive(Clone)]
pub struct Registry {
    inner: Arc<Inner>,
}

struct Inner {
    tombstone_ttl: Duration,
    state: Mutex<State>,
    counters: Counters,
}

#[derive(Default)]
struct State {
    /// The live registrations of each kind and uid. Usually one; more if the same run is
    /// registered twice (say, by overlapping attempts), each guard removing just its own, or if
    /// runs of several projects share the uid.
    runs: Table<Vec<Registration>>,
    /// Ids for registrations; a `u64` counter does not wrap in practice.
    next_id: u64,
    /// The tombstones, one per distinct kind, uid, project and version signalled, each stamped
    /// with its expiry (the latest, if signalled more than once). The TTL is constant, so
    /// expiries only grow along the table and purging takes from the front.
    tombstones: Expiring<Key, Tombstone, Instant>,
}

#[derive(Default)]
struct Counters {
    dispatched: AtomicU64,
    matched: AtomicU64,
    unmatched: AtomicU64,
    cancelled_tokens: AtomicU64,
    cancelled_on_register: AtomicU64,
}

/// What [`Registry::dispatch`] did with a signal.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Dispatch {
    /// The run is registered here: this many registrations (usually one) now have their token
    /// cancelled. Repeated signals report the same registrations again; cancelling is idempotent.
    Cancelled(usize),
    /// No run of that kind and uid is registered here (it runs elsewhere, has finished, or has not
    /// started yet — the tombstone covers the last case).
    Unmatched,
}

/// A snapshot of a registry's counters since it was created (clones share them).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct RegistryStats {
    /// Signals passed to [`Registry::dispatch`].
    pub dispatched: u64,
    /// Dispatches that found the run registered.
    pub matched: u64,
    /// Dispatches that found no such run.
    pub unmatched: u64,
    /// Tokens cancelled by dispatches, summed (a run registered twice counts twice).
    pub cancelled_tokens: u64,
    /// Registrations that started out cancelled because their run's tombstone was live.
    pub cancelled_on_register: u64,
}

impl Registry {
    /// An empty registry with the [`DEFAULT_TOMBSTONE_TTL`].
    pub fn new() -> Self {
        Registry::with_tombstone_ttl(DEFAULT_TOMBSTONE_TTL)
    }

    /// An empty registry whose tombstones live for `ttl` (at most [`MAX_TOMBSTONE_TTL`]). A zero
    /// TTL disables tombstones: only runs registered at the time of a signal are cancelled.
    pub fn with_tombstone_ttl(ttl: Duration) -> Self {
        Registry {
            inner: Arc::new(Inner {
                tombstone_ttl: ttl.min(MAX_TOMBSTONE_TTL),
                state: Mutex::new(State::default()),
                counters: Counters::default(),
            }),
        }
    }

    /// The tombstone TTL in force.
    pub fn tombstone_ttl(&self) -> Duration {
        self.inner.tombstone_ttl
    }

    /// Registers a run that is starting on this replica, by kind and uid alone: any signal for
    /// that uid cancels it, whatever project it names (see [`Registry::register_run`] to scope it).
    /// Keep the guard for as long as the run lives and watch its token; dropping the guard
    /// unregisters the run.
    ///
    /// If a signal for this run was dispatched within the tombstone TTL, the token is already
    /// cancelled.
    pub fn register(&self, kind: SignalKind, uid: RunUid) -> RunGuard {
        self.register_run(RunKey::new(kind, uid))
    }

    /// Registers a run by its [`RunKey`]: scoped to a project, and to an approval input version,
    /// as upstream keys them. Otherwise as [`Registry::register`].
    pub fn register_run(&self, run: RunKey) -> RunGuard {
        self.register_at(run, Instant::now())
    }

    /// [`Registry::register_run`] at a given time, so tests can move the clock.
    pub(crate) fn register_at(&self, run: RunKey, now: Instant) -> RunGuard {
        let key = (run.kind, run.uid);
        let token = CancellationToken::new();
        let (id, tombstoned) = {
            let mut state = self.inner.lock();
            state.purge(now);
            let tombstoned = state
                .tombstones
                .with_key(&key)
                .any(|(expiry, t)| now < expiry && t.scope().reaches(run.scope()));
            if tombstoned {
                // Cancel before the token is visible to anyone: the run never sees it live.
                token.cancel();
            }
            let id = state.next_id;
            state.next_id += 1;
            state.runs.entry(key).or_default().push(Registration {
                id,
                project: run.project.clone(),
                approval_input_version: run.approval_input_version,
                token: token.clone(),
            });
            (id, tombstoned)
        };
        if tombstoned {
            self.inner.counters.cancelled_on_register.fetch_add(1, Ordering::Relaxed);
            tracing::debug!(
                kind = run.kind.seed_type(),
                uid = run.uid.get(),
                project = run.project.as_deref(),
                "run registered after its cancel signal"
            );
        }
        RunGuard { registry: Arc::clone(&self.inner), run, id, token }
    }

    /// Cancels every registration of the run `signal` names (see the module docs for how the
    /// project and version count) and records a tombstone for it, so that a matching registration
    /// arriving within the TTL is cancelled too.
    pub fn dispatch(&self, signal: &Signal) -> Dispatch {
        self.dispatch_at(signal, Instant::now())
    }

    /// [`Registry::dispatch`] at a given time, so tests can move the clock.
    pub(crate) fn dispatch_at(&self, signal: &Signal, now: Instant) -> Dispatch {
        let key = (signal.kind, signal.uid);
        let (project, version) = signal.scope();
        let project: Option<Arc<str>> = project.map(Arc::from);
        let tokens: Vec<CancellationToken> = {
            let mut state = self.inner.lock();
            state.purge(now);
            let expiry = now + self.inner.tombstone_ttl;
            state.bury(key, project.clone(), version, expiry);
            state.cap(MAX_TOMBSTONES);
            state
                .runs
                .get(&key)
                .map(|registrations| {
                    registrations
                        .iter()
                        .filter(|r| {
                            let run =
                                RunScope { project: r.project.as_deref(), version: r.approval_input_version };
                            SignalScope { project: project.as_deref(), version }.reaches(run)
                        })
                        .map(|r| r.token.clone())
                        .collect()
                })
                .unwrap_or_default()
        };
        // Cancel outside the lock: cancelling wakes the runs' tasks, which may register or drop
        // guards right away. The tombstone is already in place for any registration in between.
        for token in &tokens {
            token.cancel();
        }

        let counters = &self.inner.counters;
        counters.dispatched.fetch_add(1, Ordering::Relaxed);
        let outcome = if tokens.is_empty() {
            counters.unmatched.fetch_add(1, Ordering::Relaxed);
            Dispatch::Unmatched
        } else {
            counters.matched.fetch_add(1, Ordering::Relaxed);
            counters.cancelled_tokens.fetch_add(tokens.len() as u64, Ordering::Relaxed);
            Dispatch::Cancelled(tokens.len())
        };
        tracing::debug!(
            kind = signal.kind.seed_type(),
            uid = signal.uid.get(),
            project = signal.project.as_deref(),
            ?outcome,
            "cancel signal dispatched"
        );
        outcome
    }

    /// The number of distinct kinds and uids registered now (a run registered twice, or the same
    /// uid in two projects, counts once).
    pub fn len(&self) -> usize {
        self.inner.lock().runs.len()
    }

    /// Whether no run is registered.
    pub fn is_empty(&self) -> bool {
        self.inner.lock().runs.is_empty()
    }

    /// The number of live tombstones: distinct signals (kind, uid, project, version) dispatched
    /// within the TTL. Purges expired ones first.
    pub fn tombstones(&self) -> usize {
        self.tombstones_at(Instant::now())
    }

    /// [`Registry::tombstones`] at a given time, so tests can move the clock.
    pub(crate) fn tombstones_at(&self, now: Instant) -> usize {
        let mut state = self.inner.lock();
        state.purge(now);
        state.tombstones.len()
    }

    /// A snapshot of the counters.
    pub fn stats(&self) -> RegistryStats {
        let c = &self.inner.counters;
        RegistryStats {
            dispatched: c.dispatched.load(Ordering::Relaxed),
            matched: c.matched.load(Ordering::Relaxed),
            unmatched: c.unmatched.load(Ordering::Relaxed),
            cancelled_tokens: c.cancelled_tokens.load(Ordering::Relaxed),
            cancelled_on_register: c.cancelled_on_register.load(Ordering::Relaxed),
        }
    }
}

impl Default for Registry {
    fn default() -> Self {
        Registry::new()
    }
}

impl fmt::Debug for Registry {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let (runs, tombstones) = {
            let mut state = self.inner.lock();
            (state.runs.len(), state.tombstones.len())
        };
        f.debug_struct("Registry")
            .field("runs", &runs)
            .field("tombstones", &tombstones)
            .field("tombstone_ttl", &self.inner.tombstone_ttl)
            .field("stats", &self.stats())
            .finish()
    }
}

impl Inner {
    /// The table, also after a panic elsewhere poisoned the lock: every update leaves it
    /// consistent (no user code runs under the lock), so there is nothing to refuse.
    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

impl State {
    /// Records the tombstone of a signal (replacing, when it is next looked at, the one an earlier
    /// dispatch of the same signal left).
    fn bury(&mut self, key: Key, project: Option<Arc<str>>, version: Option<NonZeroI64>, expiry: Instant) {
        self.tombstones.append(key, Tombstone { project, approval_input_version: version }, expiry);
    }

    /// Drops the oldest tombstones until at most `max` dispatches are remembered.
    fn cap(&mut self, max: usize) {
        while self.tombstones.stampings() > max {
            if self.tombstones.expire_oldest().is_none() {
                break;
            }
        }
    }

    /// Drops the tombstones that expired by `now`.
    fn purge(&mut self, now: Instant) {
        self.tombstones.expire_while(|expiry| expiry <= now);
    }
}

/// A registered run. Holds the run's [`CancellationToken`]; dropping the guard unregisters the run
/// (this registration only, if the run is registered more than once).
#[must_use = "dropping the guard unregisters the run at once"]
pub struct RunGuard {
    registry: Arc<Inner>,
    run: RunKey,
    id: u64,
    token: CancellationToken,
}

impl RunGuard {
    /// The token that is cancelled when a signal for this run arrives. Clone it, or derive child
    /// tokens from it, to hand to the run's work.
    pub fn token(&self) -> &CancellationToken {
        &self.token
    }

    /// Whether a signal for this run has arrived.
    pub fn is_cancelled(&self) -> bool {
        self.token.is_cancelled()
    }

    /// Completes once a signal for this run has arrived (at once if one already has).
    pub async fn cancelled(&self) {
        self.token.cancelled().await
    }

    /// The kind of the registered run.
    pub fn kind(&self) -> SignalKind {
        self.run.kind
    }

    /// The uid of the registered run.
    pub fn uid(&self) -> RunUid {
        self.run.uid
    }

    /// The run as it was registered, with its project and version if it had them.
    pub fn run(&self) -> &RunKey {
        &self.run
    }
}

impl fmt::Debug for RunGuard {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RunGuard")
            .field("run", &self.run)
            .field("cancelled", &self.token.is_cancelled())
            .finish()
    }
}

impl Drop for RunGuard {
    fn drop(&mut self) {
        let key = (self.run.kind, self.run.uid);
        let mut state = self.registry.lock();
        if let Some(registrations) = state.runs.get_mut(&key) {
            registrations.retain(|r| r.id != self.id);
            if registrations.is_empty() {
                state.runs.remove(&key);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::thread;

    use crate::test_support::{plan_check, task, uid};

    const TTL: Duration = Duration::from_secs(60);

    #[test]
    fn a_flood_keeps_only_the_newest_tombstones() {
        let registry = Registry::new();
        let t0 = Instant::now();
        let n = MAX_TOMBSTONES as i64 + 10;
        for i in 1..=n {
            registry.dispatch_at(&task(i), t0);
        }
        assert_eq!(registry.tombstones_at(t0), MAX_TOMBSTONES);
        assert!(!registry.register(SignalKind::TaskRun, uid(1)).is_cancelled(), "the oldest went first");
        assert!(registry.register(SignalKind::TaskRun, uid(n)).is_cancelled(), "the newest stays");
    }

    #[test]
    fn project_scoped_runs_are_cancelled_only_by_signals_naming_their_project() {
        let registry = Registry::new();
        let key = |p: &str| RunKey::new(SignalKind::TaskRun, uid(42)).in_project(p);
        let in_a = registry.register_run(key("proj-a"));
        let in_b = registry.register_run(key("proj-b"));
        let anywhere = registry.register(SignalKind::TaskRun, uid(42));
        // Without a project the signal could be any project's run 42: only the unscoped one.
        assert_eq!(registry.dispatch(&task(42)), Dispatch::Cancelled(1));
        assert!(anywhere.is_cancelled() && !in_a.is_cancelled() && !in_b.is_cancelled());
        assert_eq!(registry.dispatch(&task(42).with_project("proj-a")), Dispatch::Cancelled(2));
        assert!(in_a.is_cancelled() && !in_b.is_cancelled());
        assert_eq!(
            registry.dispatch(&task(42).with_project("proj-c")),
            Dispatch::Cancelled(1),
            "the unscoped run"
        );
        assert!(!in_b.is_cancelled());
    }

    #[test]
    fn an_empty_project_is_no_project() {
        let registry = Registry::new();
        let run = registry.register_run(RunKey::new(SignalKind::TaskRun, uid(1)).in_project(""));
        assert_eq!(run.run().project, None);
        assert_eq!(registry.dispatch(&task(1)), Dispatch::Cancelled(1));
    }

    #[test]
    fn versioned_plan_checks_match_their_version_or_none() {
        let registry = Registry::new();
        let run = RunKey::new(SignalKind::PlanCheckRun, uid(7)).in_project("p");
        let v2 = registry.register_run(run.clone().with_approval_input_version(2));
        let v3 = registry.register_run(run.clone().with_approval_input_version(3));
        let signal = plan_check(7).with_project("p");
        assert_eq!(registry.dispatch(&signal.clone().with_approval_input_version(2)), Dispatch::Cancelled(1));
        assert!(v2.is_cancelled() && !v3.is_cancelled());
        // Without a version (protojson leaves out 0): every attempt of the run.
        assert_eq!(registry.dispatch(&signal.clone().with_approval_input_version(0)), Dispatch::Cancelled(2));
        assert!(v3.is_cancelled());
    }

    #[test]
    fn tombstones_remember_the_project_and_version() {
        let registry = Registry::with_tombstone_ttl(TTL);
        let t0 = Instant::now();
        registry.dispatch_at(&task(42).with_project("proj-a"), t0);
        registry.dispatch_at(&plan_check(7).with_project("p").with_approval_input_version(2), t0);
        assert_eq!(registry.tombstones_at(t0), 2);
        let later = t0 + TTL / 2;
        let task_in = |p: &str| RunKey::new(SignalKind::TaskRun, uid(42)).in_project(p);
        assert!(registry.register_at(task_in("proj-a"), later).is_cancelled());
        assert!(!registry.register_at(task_in("proj-b"), later).is_cancelled());
        assert!(registry.register_at(RunKey::new(SignalKind::TaskRun, uid(42)), later).is_cancelled());
        let check = RunKey::new(SignalKind::PlanCheckRun, uid(7)).in_project("p");
        assert!(registry.register_at(check.clone().with_approval_input_version(2), later).is_cancelled());
        assert!(!registry.register_at(check.clone().with_approval_input_version(3), later).is_cancelled());
        assert!(registry.register_at(check, later).is_cancelled(), "any version");
        // The same signal again extends, not adds; both expire with the TTL.
        registry.dispatch_at(&task(42).with_project("proj-a"), later);
        assert_eq!(registry.tombstones_at(later), 2);
        assert_eq!(registry.tombstones_at(t0 + TTL), 1);
        assert_eq!(registry.tombstones_at(later + TTL), 0);
    }

    #[test]
    fn registry_and_guard_are_thread_safe() {
        fn assert_send_sync<T: Send + Sync>() {}
        assert_send_sync::<Registry>();
        assert_send_sync::<RunGuard>();
    }

    #[test]
    fn a_signal_cancels_only_the_matching_run() {
        let registry = Registry::new();
        let target = registry.register(SignalKind::TaskRun, uid(42));
        let other_uid = registry.register(SignalKind::TaskRun, uid(43));
        let other_kind = registry.register(SignalKind::PlanCheckRun, uid(42));
        assert_eq!(registry.len(), 3);

        assert_eq!(registry.dispatch(&task(42)), Dispatch::Cancelled(1));
        assert!(target.is_cancelled());
        assert!(!other_uid.is_cancelled());
        assert!(!other_kind.is_cancelled());
        assert_eq!((target.kind(), target.uid()), (SignalKind::TaskRun, uid(42)));

        assert_eq!(registry.dispatch(&plan_check(42)), Dispatch::Cancelled(1));
        assert!(other_kind.is_cancelled());
        assert!(!other_uid.is_cancelled());
        // Cancelled runs stay registered until their guard goes.
        assert_eq!(registry.len(), 3);
    }

    #[test]
    fn unmatched_signals_are_counted() {
        let registry = Registry::new();
        let _guard = registry.register(SignalKind::TaskRun, uid(1));
        assert_eq!(registry.dispatch(&task(2)), Dispatch::Unmatched);
        assert_eq!(registry.dispatch(&plan_check(1)), Dispatch::Unmatched);
        assert_eq!(registry.dispatch(&task(1)), Dispatch::Cancelled(1));
        assert_eq!(
            registry.stats(),
            RegistryStats {
                dispatched: 3,
                matched: 1,
                unmatched: 2,
                cancelled_tokens: 1,
                cancelled_on_register: 0
            }
        );
    }

    #[test]
    fn dropping_the_guard_unregisters_the_run() {
        let registry = Registry::with_tombstone_ttl(Duration::ZERO);
        let guard = registry.register(SignalKind::TaskRun, uid(42));
        let token = guard.token().clone();
        assert_eq!(registry.len(), 1);
        assert!(!registry.is_empty());
        drop(guard);
        assert_eq!(registry.len(), 0);
        assert!(registry.is_empty());
        assert_eq!(registry.dispatch(&task(42)), Dispatch::Unmatched);
        assert!(!token.is_cancelled());
    }

    #[test]
    fn the_same_run_registered_twice_is_tracked_per_guard() {
        let registry = Registry::new();
        let first = registry.register(SignalKind::TaskRun, uid(42));
        let second = registry.register(SignalKind::TaskRun, uid(42));
        assert_eq!(registry.len(), 1);

        // Dropping one guard leaves the other registered.
        let first_token = first.token().clone();
        drop(first);
        assert_eq!(registry.len(), 1);
        assert_eq!(registry.dispatch(&task(42)), Dispatch::Cancelled(1));
        assert!(second.is_cancelled());
        assert!(!first_token.is_cancelled());

        // Both registered: one signal cancels both.
        let third = registry.register(SignalKind::TaskRun, uid(7));
        let fourth = registry.register(SignalKind::TaskRun, uid(7));
        assert_eq!(registry.dispatch(&task(7)), Dispatch::Cancelled(2));
        assert!(third.is_cancelled() && fourth.is_cancelled());
        assert_eq!(registry.stats().cancelled_tokens, 3);

        drop((second, third, fourth));
        assert!(registry.is_empty());
    }

    #[test]
    fn dispatch_is_idempotent() {
        let registry = Registry::new();
        let guard = registry.register(SignalKind::PlanCheckRun, uid(9));
        let now = Instant::now();
        assert_eq!(registry.dispatch_at(&plan_check(9), now), Dispatch::Cancelled(1));
        assert_eq!(registry.dispatch_at(&plan_check(9), now), Dispatch::Cancelled(1));
        assert!(guard.is_cancelled());
        assert_eq!(registry.tombstones_at(now), 1);
        assert_eq!(registry.len(), 1);
    }

    #[test]
    fn a_run_registered_after_its_signal_starts_cancelled() {
        let registry = Registry::with_tombstone_ttl(TTL);
        let t0 = Instant::now();
        assert_eq!(registry.dispatch_at(&task(42), t0), Dispatch::Unmatched);
        assert_eq!(registry.tombstones_at(t0), 1);

        let late = registry.register_at(RunKey::new(SignalKind::TaskRun, uid(42)), t0 + TTL / 2);
        assert!(late.is_cancelled());
        // Only that run: another uid or kind is unaffected.
        assert!(!registry
            .register_at(RunKey::new(SignalKind::TaskRun, uid(43)), t0 + TTL / 2)
            .is_cancelled());
        assert!(!registry
            .register_at(RunKey::new(SignalKind::PlanCheckRun, uid(42)), t0 + TTL / 2)
            .is_cancelled());
        assert_eq!(registry.stats().cancelled_on_register, 1);

        // After the TTL the uid is free again.
        let much_later = registry.register_at(RunKey::new(SignalKind::TaskRun, uid(42)), t0 + TTL);
        assert!(!much_later.is_cancelled());
    }

    #[test]
    fn a_repeated_signal_extends_its_tombstone() {
        let registry = Registry::with_tombstone_ttl(TTL);
        let t0 = Instant::now();
        registry.dispatch_at(&task(1), t0);
        registry.dispatch_at(&task(1), t0 + TTL / 2);
        // The first entry expired, the refreshed tombstone did not.
        assert_eq!(registry.tombstones_at(t0 + TTL), 1);
        assert!(registry.register_at(RunKey::new(SignalKind::TaskRun, uid(1)), t0 + TTL).is_cancelled());
        assert_eq!(registry.tombstones_at(t0 + TTL + TTL / 2), 0);
        assert!(!registry.register_at(RunKey::new(SignalKind::TaskRun, uid(1)), t0 + 2 * TTL).is_cancelled());
    }

    #[test]
    fn expired_tombstones_are_purged() {
        let registry = Registry::with_tombstone_ttl(TTL);
        let t0 = Instant::now();
        for i in 1..=100 {
            registry.dispatch_at(&task(i), t0 + Duration::from_millis(i as u64));
        }
        assert_eq!(registry.tombstones_at(t0 + Duration::from_millis(100)), 100);
        // Half of them expired.
        assert_eq!(registry.tombstones_at(t0 + TTL + Duration::from_millis(50)), 50);
        // A dispatch purges too, so memory stays bounded without anyone asking for counts.
        registry.dispatch_at(&plan_check(1), t0 + 2 * TTL);
        let mut state = registry.inner.lock();
        assert_eq!(state.tombstones.len(), 1);
        assert_eq!(state.tombstones.stampings(), 1);
    }

    #[test]
    fn a_zero_ttl_keeps_no_live_tombstones() {
        let registry = Registry::with_tombstone_ttl(Duration::ZERO);
        let now = Instant::now();
        registry.dispatch_at(&task(5), now);
        assert!(!registry.register_at(RunKey::new(SignalKind::TaskRun, uid(5)), now).is_cancelled());
        assert_eq!(registry.tombstones_at(now), 0);
    }

    #[test]
    fn huge_ttls_are_capped() {
        let registry = Registry::with_tombstone_ttl(Duration::MAX);
        assert_eq!(registry.tombstone_ttl(), MAX_TOMBSTONE_TTL);
        assert_eq!(Registry::default().tombstone_ttl(), DEFAULT_TOMBSTONE_TTL);
        // Must not overflow the instant arithmetic.
        assert_eq!(registry.dispatch(&task(1)), Dispatch::Unmatched);
        assert!(registry.register(SignalKind::TaskRun, uid(1)).is_cancelled());
    }

    #[test]
    fn clones_share_the_table() {
        let registry = Registry::new();
        let clone = registry.clone();
        let guard = clone.register(SignalKind::TaskRun, uid(3));
        assert_eq!(registry.dispatch(&task(3)), Dispatch::Cancelled(1));
        assert!(guard.is_cancelled());
        assert_eq!(clone.stats().matched, 1);
        let shown = format!("{registry:?} {guard:?}");
        assert!(shown.contains("runs: 1") && shown.contains("cancelled: true"), "{shown}");
    }

    #[tokio::test]
    async fn cancelled_completes_when_the_signal_arrives() {
        let registry = Registry::new();
        let guard = registry.register(SignalKind::TaskRun, uid(11));
        let sender = registry.clone();
        let waiter = tokio::spawn(async move {
            guard.cancelled().await;
            guard.is_cancelled()
        });
        tokio::task::yield_now().await;
        assert_eq!(sender.dispatch(&task(11)), Dispatch::Cancelled(1));
        let cancelled = tokio::time::timeout(Duration::from_secs(10), waiter)
            .await
            .expect("the waiter wakes up")
            .expect("the waiter does not panic");
        assert!(cancelled);
        assert!(registry.is_empty());
    }

    #[test]
    fn concurrent_registration_and_dispatch() {
        const THREADS: i64 = 4;
        const RUNS: i64 = 500;
        let registry = Registry::new();
        // Each thread registers its own uids and signals half of them (the even ones) while the
        // other threads do the same; some signals come before their run's registration, some
        // after, and the tombstones must make the outcome the same.
        let handles: Vec<_> = (0..THREADS)
            .map(|t| {
                let registry = registry.clone();
                thread::spawn(move || {
                    let mut guards = Vec::new();
                    for i in 1..=RUNS {
                        let id = uid(t * RUNS + i);
                        if i % 4 == 0 {
                            registry.dispatch(&Signal::new(SignalKind::TaskRun, id));
                        }
                        guards.push(registry.register(SignalKind::TaskRun, id));
                        if i % 4 == 2 {
                            registry.dispatch(&Signal::new(SignalKind::TaskRun, id));
                        }
                    }
                    let cancelled: Vec<bool> = guards.iter().map(RunGuard::is_cancelled).collect();
                    drop(guards);
                    cancelled
                })
            })
            .collect();
        for handle in handles {
            let cancelled = handle.join().expect("no thread panics");
            for (i, was_cancelled) in (1..=RUNS).zip(cancelled) {
                assert_eq!(was_cancelled, i % 2 == 0, "run {i}");
            }
        }
        assert!(registry.is_empty());
        let stats = registry.stats();
        let signalled = (THREADS * RUNS / 2) as u64;
        assert_eq!(stats.dispatched, signalled);
        assert_eq!(stats.matched, signalled / 2);
        assert_eq!(stats.unmatched, signalled / 2);
        assert_eq!(stats.cancelled_on_register, signalled / 2);
        assert_eq!(registry.tombstones(), signalled as usize);
    }
}
