//! What the listener knows about the log across connections, and the decisions it makes from it,
//! without I/O: each call takes the time and the replay's results as arguments, so every rule is
//! unit-tested without a server.
//!
//! - **Which replay.** On the server whose snapshot the listener holds (the *cursor*, from its last
//!   replay there), an exact one: what that snapshot had not seen committed. After a reconnect it
//!   is joined with a time-based one (what was stamped since the last moment the server was known
//!   alive, minus the grace period), which covers what an exact one cannot see: a crash that lost
//!   the end of the WAL (`synchronous_commit = off`) hands transaction ids out again, and the
//!   restart after a crash keeps the server's identity. On another server (a failover or a clean
//!   restart: the postmaster's start time differs), or where the log has no exact replay (before
//!   0.4.0, or not granted), time-based alone; where exact replays exist, its snapshot is the next
//!   cursor. A replay whose exact part ran on another server than the cursor's, or on one whose
//!   transaction ids went back below the cursor's, is not trusted: the next one is time-based,
//!   from the cursor's time.
//! - **Falling behind.** A signal the hand-off queue refuses (the handler is too slow) is not lost:
//!   a replay that dropped anything does not move the cursor (or, time-based, the mark it started
//!   from), so the next one returns the same rows again, until one hands everything on. A refused
//!   notification needs nothing when the listener holds a cursor of this server (the next exact
//!   replay returns its row); otherwise the following replays reach back by time to the mark
//!   before it, joined with the exact one once there is a cursor.
//! - **De-duplication** ([`Seen`]): a cancel reaches the handler once however it arrived; the
//!   window is only trimmed while nothing is pending.
//! - **Strict mode's candidates**: notifications wait here until a replay confirms them.

use std::collections::HashSet;
use std::time::{Duration, SystemTime};

use tokio::time::Instant;

use crate::listener::log::{Ask, Replayed, Since};
use crate::seen::{self, Offered, Seen};
use crate::signal::Signal;

/// Where the time-based replays start.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Mark {
    /// The listener's start (nothing was missed before it existed).
    Start,
    /// The server's `now()` at a successful read.
    Alive(SystemTime),
}

impl Mark {
    /// The earlier of two marks.
    fn earlier(self, other: Mark) -> Mark {
        match (self, other) {
            (Mark::Start, _) | (_, Mark::Start) => Mark::Start,
            (Mark::Alive(a), Mark::Alive(b)) => Mark::Alive(a.min(b)),
        }
    }
}

/// A snapshot of the server that took it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Cursor {
    /// The server's identity (its postmaster's start time).
    pub(crate) server: String,
    /// The snapshot, in `pg_snapshot`'s text form.
    pub(crate) snapshot: String,
    /// The server's `now()` when it was taken: where a time-based fallback must reach back to.
    pub(crate) at: SystemTime,
}

/// How a signal reached the listener.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Arrival {
    /// As a notification.
    Notification,
    /// From the log, by the replay under way.
    Replay,
    /// As a notification that a confirming replay found in the log (strict mode).
    Confirmed,
}

/// The replay under way.
#[derive(Clone, Copy, Debug)]
struct Replaying {
    /// Exact (from the cursor), or time-based from this mark.
    from: Option<Mark>,
    /// Notification drops counted when it started (to tell whether one happened meanwhile).
    drops_at_start: u64,
    /// Whether it dropped a hand-off itself.
    dropped: bool,
}

/// The listener's memory across connections. See the module docs.
#[derive(Debug)]
pub(crate) struct CatchUp {
    grace: Duration,
    started: Instant,
    /// The server's `now()` at the last successful replay or heartbeat.
    alive: Mark,
    /// The snapshot of the last replay that handed everything on, and its server.
    cursor: Option<Cursor>,
    /// Time-based replays must reach back to this mark (a hand-off was dropped).
    behind: Option<Mark>,
    /// Notifications refused that set `behind`, ever.
    drops: u64,
    /// The current connection's server identity, and whether its log has exact replays.
    server: Option<(String, bool)>,
    /// A reconnect's catch-up has not completed yet (handed everything on, trusted).
    catching_up: bool,
    /// No replay has returned on this connection yet.
    first_replay: bool,
    replaying: Option<Replaying>,
    seen: Seen,
    candidates: Vec<Signal>,
}

impl CatchUp {
    /// A listener started at `started`, whose time-based replays reach back `grace`.
    pub(crate) fn new(grace: Duration, started: Instant) -> Self {
        CatchUp {
            grace,
            started,
            alive: Mark::Start,
            cursor: None,
            behind: None,
            drops: 0,
            server: None,
            catching_up: false,
            first_replay: false,
            replaying: None,
            seen: Seen::default(),
            candidates: Vec::new(),
        }
    }

    /// When the listener started.
    pub(crate) fn started(&self) -> Instant {
        self.started
    }

    /// A new connection to the server `identity`, whose log has exact replays if `exact`: the
    /// next replay is its catch-up.
    pub(crate) fn connected(&mut self, identity: &str, exact: bool) {
        self.server = Some((identity.to_owned(), exact));
        self.catching_up = true;
        self.first_replay = true;
    }

    /// What this connection's log offers changed (an update, a GRANT, a REVOKE).
    pub(crate) fn set_exact(&mut self, exact: bool) {
        if let Some((_, was)) = &mut self.server {
            *was = exact;
        }
    }

    /// The cursor, if the next replay can be exact: one of this very server, whose log has exact
    /// replays.
    fn exact_cursor(&self) -> Option<&Cursor> {
        match (&self.server, &self.cursor) {
            (Some((identity, true)), Some(cursor)) if cursor.server == *identity => Some(cursor),
            _ => None,
        }
    }

    /// Whether a dropped hand-off is still pending.
    #[cfg(test)]
    pub(crate) fn behind(&self) -> bool {
        self.behind.is_some()
    }

    /// The earliest mark a time-based replay must reach back to.
    fn time_mark(&self) -> Mark {
        let mark = self.behind.map_or(self.alive, |behind| behind.earlier(self.alive));
        match &self.cursor {
            Some(cursor) => mark.earlier(Mark::Alive(cursor.at)),
            None => mark,
        }
    }

    /// Begins a replay at `now`: which one to run.
    pub(crate) fn start_replay(&mut self, now: Instant) -> Ask {
        let (from, ask) = match self.exact_cursor() {
            // Exact from the cursor; joined with the time window after a reconnect, and while a
            // dropped hand-off is pending (its row may be older than the cursor).
            Some(cursor) => {
                let window = self.catching_up || self.behind.is_some();
                let since = window.then(|| self.since(self.time_mark(), now));
                (None, Ask::After { snapshot: cursor.snapshot.clone(), since })
            }
            None => {
                let mark = self.time_mark();
                (Some(mark), Ask::Since(self.since(mark, now)))
            }
        };
        self.replaying = Some(Replaying { from, drops_at_start: self.drops, dropped: false });
        ask
    }

    /// The time-based replay from `mark`.
    fn since(&self, mark: Mark, now: Instant) -> Since {
        match mark {
            Mark::Alive(at) => Since { since: Some(at), grace: self.grace },
            // Nothing was missed before the listener existed; the grace still covers senders
            // whose transactions were open when it started.
            Mark::Start => Since {
                since: None,
                grace: self.grace.saturating_add(now.saturating_duration_since(self.started)),
            },
        }
    }

    /// Offers `signal`, which arrived as `arrival` says at `now`, to the handler through `offer` (which
    /// says whether it took it) unless it was handed on already.
    pub(crate) fn offer(
        &mut self,
        signal: &Signal,
        arrival: Arrival,
        now: Instant,
        offer: impl FnOnce() -> bool,
    ) -> Offered {
        let from_log = arrival == Arrival::Replay;
        let offered = self.seen.offer(seen::key(signal), now, from_log, offer);
        if offered == Offered::Refused {
            match (arrival, &mut self.replaying) {
                (Arrival::Replay, Some(replaying)) => replaying.dropped = true,
                (Arrival::Replay, None) => {}
                // The next replay, if exact on this server, has its row; if not, the following
                // ones must reach back to before it.
                (Arrival::Notification | Arrival::Confirmed, _) => {
                    if self.exact_cursor().is_none() {
                        self.drops += 1;
                        let mark = self.time_mark();
                        self.fall_behind(mark);
                    }
                }
            }
        }
        offered
    }

    fn fall_behind(&mut self, mark: Mark) {
        self.behind = Some(self.behind.map_or(mark, |b| b.earlier(mark)));
    }

    /// Ends the replay that [`CatchUp::start_replay`] began, sent at local instant `sent`, which
    /// returned `replayed` (its signals offered already). Returns whether it was the connection's
    /// first (its catch-up, which the next replays complete if it dropped anything or is not
    /// trusted).
    pub(crate) fn replayed(&mut self, replayed: &Replayed, sent: Instant) -> bool {
        let Some(replaying) = self.replaying.take() else { return false };
        let first = std::mem::take(&mut self.first_replay);
        self.alive = Mark::Alive(replayed.alive);
        let exact = self.server.as_ref().is_some_and(|(_, exact)| *exact);
        if replaying.from.is_none() {
            // The exact part is only trusted on the cursor's own server, with transaction ids that
            // did not go back: otherwise it may have skipped rows under reused ids.
            if let Some(cursor) = &self.cursor {
                if replayed.server != cursor.server || replayed.rewound {
                    let at = cursor.at;
                    self.cursor = None;
                    self.fall_behind(Mark::Alive(at));
                    return first;
                }
            }
        }
        if replaying.dropped {
            // Keep the starting point: an exact replay's cursor stays, a time-based one's mark is
            // pending. The next replay comes back over the same rows.
            if let Some(from) = replaying.from {
                self.fall_behind(from);
            }
            return first;
        }
        // A notification refused meanwhile needs a later replay than this one.
        if self.drops == replaying.drops_at_start {
            self.behind = None;
        }
        self.cursor = exact.then(|| Cursor {
            server: replayed.server.clone(),
            snapshot: replayed.snapshot.clone(),
            at: replayed.alive,
        });
        if self.behind.is_none() {
            self.seen.alive_at(sent, self.grace, HEARTBEAT_MARGIN);
        }
        self.catching_up = false;
        first
    }

    /// A replay that did not complete (an error, a lost connection): its starting point stays.
    pub(crate) fn replay_failed(&mut self) {
        if let Some(Replaying { from: Some(from), dropped: true, .. }) = self.replaying.take() {
            self.fall_behind(from);
        }
    }

    /// A heartbeat read the server's clock (`alive`) at local instant `sent`, without a replay
    /// (a database without the log).
    pub(crate) fn heartbeat(&mut self, alive: SystemTime, sent: Instant) {
        self.alive = Mark::Alive(alive);
        if self.behind.is_none() {
            self.seen.alive_at(sent, self.grace, HEARTBEAT_MARGIN);
        }
    }

    /// Strict mode: `signal` arrived as a notification and waits for the log to confirm it.
    pub(crate) fn candidate(&mut self, signal: Signal) {
        self.candidates.push(signal);
    }

    /// Strict mode: the candidates to confirm now.
    pub(crate) fn take_candidates(&mut self) -> Vec<Signal> {
        std::mem::take(&mut self.candidates)
    }

    /// Strict mode: the confirming replay (restricted to the candidates' uids by the caller). Its
    /// rows committed before their notifications arrived: exact from the cursor where possible
    /// (a long transaction's row is older than any time window), joined with the time window
    /// from the last mark (rows the cursor already saw).
    pub(crate) fn confirming(&self, now: Instant) -> Ask {
        let since = self.since(self.alive, now);
        match self.exact_cursor() {
            Some(cursor) => Ask::After { snapshot: cursor.snapshot.clone(), since: Some(since) },
            None => Ask::Since(since),
        }
    }

    /// Strict mode: which of `candidates` the confirming replay's `found` rows confirm (each key
    /// once), and which it does not. The replay's uid filter also matches the other kind's runs
    /// and other projects: only what was named counts.
    pub(crate) fn confirm(candidates: Vec<Signal>, found: Vec<Signal>) -> (Vec<Signal>, Vec<Signal>) {
        let wanted: HashSet<_> = candidates.iter().map(seen::key).collect();
        let mut done = HashSet::new();
        let confirmed: Vec<Signal> = found
            .into_iter()
            .filter(|signal| {
                let key = seen::key(signal);
                wanted.contains(&key) && done.insert(key)
            })
            .collect();
        let unconfirmed = candidates.into_iter().filter(|s| !done.contains(&seen::key(s))).collect();
        (confirmed, unconfirmed)
    }
}

/// How long a heartbeat's answer may lag behind what it read: what its replay's snapshot may
/// have missed by that much is kept.
const HEARTBEAT_MARGIN: Duration = Duration::from_secs(5);

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_support::uid;
    use crate::wire::SignalKind;

    const GRACE: Duration = Duration::from_secs(60);

    fn replayed(server: &str, snapshot: &str, alive: SystemTime) -> Replayed {
        Replayed {
            alive,
            snapshot: snapshot.into(),
            server: server.into(),
            rewound: false,
            listening: true,
            signals: Vec::new(),
        }
    }

    fn task(n: i64) -> Signal {
        Signal::new(SignalKind::TaskRun, uid(n))
    }

    /// Offers `signal`, arrived as `arrival` says, the handler taking it if `takes`.
    fn offer(c: &mut CatchUp, signal: &Signal, arrival: Arrival, takes: bool) -> Offered {
        c.offer(signal, arrival, Instant::now(), || takes)
    }

    fn t(secs: u64) -> SystemTime {
        SystemTime::UNIX_EPOCH + Duration::from_secs(1_000_000 + secs)
    }

    fn since(at: SystemTime) -> Since {
        Since { since: Some(at), grace: GRACE }
    }

    fn after(snapshot: &str) -> Ask {
        Ask::After { snapshot: snapshot.into(), since: None }
    }

    /// A listener connected to `server` (exact if `exact`) whose first replay returned `snapshot`
    /// at `alive`.
    fn caught_up(server: &str, exact: bool, snapshot: &str, alive: SystemTime) -> CatchUp {
        let t0 = Instant::now();
        let mut c = CatchUp::new(GRACE, t0);
        c.connected(server, exact);
        c.start_replay(t0);
        assert!(c.replayed(&replayed(server, snapshot, alive), t0), "the first replay is the catch-up");
        assert!(!c.catching_up);
        c
    }

    #[test]
    fn the_first_catch_up_is_time_based_from_the_start_then_exact_on_that_server() {
        let t0 = Instant::now();
        let mut c = CatchUp::new(GRACE, t0);
        c.connected("A", true);
        let first = c.start_replay(t0 + Duration::from_secs(7));
        assert_eq!(first, Ask::Since(Since { since: None, grace: GRACE + Duration::from_secs(7) }));
        assert!(c.replayed(&replayed("A", "10:12:10,11", t(100)), t0), "caught up");
        assert_eq!(c.start_replay(t0), after("10:12:10,11"));
        assert!(!c.replayed(&replayed("A", "12:12:", t(110)), t0), "a heartbeat is no catch-up");
        assert_eq!(c.start_replay(t0), after("12:12:"), "the cursor moves on");
    }

    #[test]
    fn a_reconnect_to_the_same_server_joins_the_exact_replay_with_a_time_window() {
        let mut c = caught_up("A", true, "10:10:", t(100));
        let t0 = Instant::now();
        c.start_replay(t0);
        c.replayed(&replayed("A", "12:12:", t(110)), t0);
        c.connected("A", true);
        assert_eq!(
            c.start_replay(t0),
            Ask::After { snapshot: "12:12:".into(), since: Some(since(t(110))) },
            "what the snapshot did not see, and what was stamped since the last mark"
        );
        assert!(c.replayed(&replayed("A", "13:13:", t(140)), t0));
        assert_eq!(c.start_replay(t0), after("13:13:"), "then exact alone");
        assert!(!c.replayed(&replayed("A", "14:14:", t(150)), t0), "not the first any more");
    }

    #[test]
    fn a_reconnect_catch_up_that_dropped_a_hand_off_keeps_its_time_window() {
        let mut c = caught_up("A", true, "10:10:", t(100));
        let t0 = Instant::now();
        c.connected("A", true);
        let ask = c.start_replay(t0);
        offer(&mut c, &task(1), Arrival::Replay, false);
        assert!(c.replayed(&replayed("A", "12:12:", t(130)), t0));
        assert_eq!(c.start_replay(t0), ask, "exact from the same cursor, with the same window");
    }

    #[test]
    fn another_server_is_caught_up_by_time_from_the_last_mark_then_exactly_there() {
        let mut c = caught_up("A", true, "10:10:", t(100));
        let t0 = Instant::now();
        // A failover (or A restarted: a new start time is another identity).
        c.connected("B", true);
        assert_eq!(c.start_replay(t0), Ask::Since(since(t(100))), "from the last mark");
        assert!(c.replayed(&replayed("B", "3:3:", t(130)), t0));
        assert_eq!(c.start_replay(t0), after("3:3:"));
    }

    #[test]
    fn an_exact_replay_answered_by_another_server_is_not_trusted() {
        let mut c = caught_up("A", true, "10:10:", t(100));
        let t0 = Instant::now();
        c.start_replay(t0);
        c.replayed(&replayed("A", "11:11:", t(110)), t0);
        // The connection still names A, but a pool (or a failover under a proxy) answered from B.
        assert_eq!(c.start_replay(t0), after("11:11:"));
        assert!(!c.replayed(&replayed("B", "3:3:", t(150)), t0));
        assert_eq!(
            c.start_replay(t0),
            Ask::Since(since(t(110))),
            "by time from the cursor's moment, not from B's answer"
        );
        c.replayed(&replayed("A", "12:12:", t(160)), t0);
        assert_eq!(c.start_replay(t0), after("12:12:"), "exact again once a replay handed everything on");
    }

    #[test]
    fn an_exact_replay_on_rewound_transaction_ids_is_not_trusted() {
        let mut c = caught_up("A", true, "1000:1000:", t(100));
        let t0 = Instant::now();
        c.start_replay(t0);
        let rewound = Replayed { rewound: true, ..replayed("A", "900:900:", t(120)) };
        assert!(!c.replayed(&rewound, t0));
        assert_eq!(c.start_replay(t0), Ask::Since(since(t(100))), "by time from the cursor's moment");
    }

    #[test]
    fn a_database_without_exact_replays_is_always_caught_up_by_time() {
        let mut c = caught_up("A", false, "10:10:", t(100));
        let t0 = Instant::now();
        assert_eq!(c.start_replay(t0), Ask::Since(since(t(100))));
        c.replay_failed();
        c.heartbeat(t(110), t0);
        assert_eq!(c.start_replay(t0), Ask::Since(since(t(110))));
    }

    #[test]
    fn granting_the_exact_replay_later_makes_the_next_replays_exact() {
        let mut c = caught_up("A", false, "10:10:", t(100));
        let t0 = Instant::now();
        c.set_exact(true);
        assert_eq!(c.start_replay(t0), Ask::Since(since(t(100))), "no cursor yet: by time once");
        c.replayed(&replayed("A", "11:11:", t(110)), t0);
        assert_eq!(c.start_replay(t0), after("11:11:"));
        c.replay_failed();
        c.set_exact(false);
        assert_eq!(c.start_replay(t0), Ask::Since(since(t(110))), "revoked: by time again");
    }

    #[test]
    fn an_exact_replay_that_dropped_a_hand_off_keeps_its_cursor_until_one_hands_everything_on() {
        let mut c = caught_up("A", true, "10:10:", t(100));
        let t0 = Instant::now();
        let ask = c.start_replay(t0);
        assert_eq!(offer(&mut c, &task(1), Arrival::Replay, true), Offered::Accepted);
        assert_eq!(offer(&mut c, &task(2), Arrival::Replay, false), Offered::Refused, "queue full");
        c.replayed(&replayed("A", "20:20:", t(110)), t0);
        assert_eq!(c.start_replay(t0), ask, "the same rows again");
        // The second time round, 1 is a duplicate and 2 gets through.
        assert_eq!(offer(&mut c, &task(1), Arrival::Replay, true), Offered::Duplicate(None));
        assert_eq!(offer(&mut c, &task(2), Arrival::Replay, true), Offered::Accepted);
        c.replayed(&replayed("A", "21:21:", t(120)), t0);
        assert_eq!(c.start_replay(t0), after("21:21:"));
    }

    #[test]
    fn a_catch_up_that_dropped_a_hand_off_is_not_complete_until_one_hands_everything_on() {
        let t0 = Instant::now();
        let mut c = CatchUp::new(GRACE, t0);
        c.heartbeat(t(100), t0);
        c.connected("B", true);
        let ask = c.start_replay(t0);
        assert_eq!(ask, Ask::Since(since(t(100))));
        offer(&mut c, &task(1), Arrival::Replay, false);
        assert!(c.replayed(&replayed("B", "5:5:", t(130)), t0), "the first replay");
        assert!(c.behind() && c.catching_up, "but not caught up");
        assert_eq!(c.start_replay(t0), ask, "from the same mark, not exactly from 5:5:");
        assert!(!c.replayed(&replayed("B", "6:6:", t(140)), t0));
        assert!(!c.catching_up, "caught up now");
        assert!(!c.behind());
        assert_eq!(c.start_replay(t0), after("6:6:"));
    }

    #[test]
    fn a_dropped_notification_needs_nothing_with_a_cursor_and_a_time_replay_without() {
        let mut exact = caught_up("A", true, "10:10:", t(100));
        offer(&mut exact, &task(1), Arrival::Notification, false);
        assert!(!exact.behind(), "the next exact replay returns its row");
        assert_eq!(exact.start_replay(Instant::now()), after("10:10:"));

        let t0 = Instant::now();
        let mut timed = caught_up("A", false, "10:10:", t(100));
        offer(&mut timed, &task(1), Arrival::Notification, false);
        assert!(timed.behind());
        timed.heartbeat(t(110), t0);
        assert_eq!(
            timed.start_replay(t0),
            Ask::Since(since(t(100))),
            "from the mark before the drop, not the later heartbeat's"
        );
    }

    #[test]
    fn a_notification_dropped_during_a_time_based_replay_needs_a_later_one() {
        let mut c = caught_up("A", false, "10:10:", t(100));
        let t0 = Instant::now();
        c.start_replay(t0);
        // Refused while the replay runs: that replay's snapshot may predate its commit.
        offer(&mut c, &task(1), Arrival::Notification, false);
        c.replayed(&replayed("A", "11:11:", t(110)), t0);
        assert!(c.behind(), "still behind after the replay under way");
        assert_eq!(c.start_replay(t0), Ask::Since(since(t(100))));
        c.replayed(&replayed("A", "12:12:", t(120)), t0);
        assert!(!c.behind());
    }

    #[test]
    fn a_notification_dropped_during_the_first_catch_up_is_read_exactly_and_by_time() {
        let t0 = Instant::now();
        let mut c = CatchUp::new(GRACE, t0);
        c.heartbeat(t(100), t0);
        c.connected("A", true);
        assert_eq!(c.start_replay(t0), Ask::Since(since(t(100))));
        // Refused while that replay runs: its snapshot may predate the commit.
        offer(&mut c, &task(1), Arrival::Notification, false);
        c.replayed(&replayed("A", "10:10:", t(110)), t0);
        assert!(c.behind());
        assert_eq!(
            c.start_replay(t0),
            Ask::After { snapshot: "10:10:".into(), since: Some(since(t(100))) },
            "exact from the new cursor (a long transaction's row), and by time from before the drop"
        );
        c.replayed(&replayed("A", "11:11:", t(120)), t0);
        assert!(!c.behind());
        assert_eq!(c.start_replay(t0), after("11:11:"));
    }

    #[test]
    fn a_failed_replay_leaves_everything_where_it_was() {
        let mut c = caught_up("A", true, "10:10:", t(100));
        let t0 = Instant::now();
        let ask = c.start_replay(t0);
        c.replay_failed();
        assert_eq!(c.start_replay(t0), ask);

        let mut timed = caught_up("A", false, "10:10:", t(100));
        let ask = timed.start_replay(t0);
        offer(&mut timed, &task(1), Arrival::Replay, false);
        timed.replay_failed();
        timed.heartbeat(t(200), t0);
        assert_eq!(timed.start_replay(t0), ask, "a drop in a failed replay still reaches back");
    }

    #[test]
    fn nothing_is_forgotten_while_behind() {
        let t0 = Instant::now();
        let mut c = CatchUp::new(Duration::from_secs(1), t0);
        c.heartbeat(t(100), t0);
        assert_eq!(offer(&mut c, &task(1), Arrival::Notification, true), Offered::Accepted);
        offer(&mut c, &task(2), Arrival::Notification, false);
        // Far later heartbeats: while behind, 1 is still known (its replayed copy is skipped).
        c.heartbeat(t(200), t0 + Duration::from_secs(100));
        assert!(matches!(offer(&mut c, &task(1), Arrival::Replay, true), Offered::Duplicate(Some(_))));
    }

    #[test]
    fn confirming_reads_exactly_from_the_cursor_and_by_time_from_the_mark() {
        let exact = caught_up("A", true, "10:10:", t(100));
        assert_eq!(
            exact.confirming(Instant::now()),
            Ask::After { snapshot: "10:10:".into(), since: Some(since(t(100))) }
        );
        let timed = caught_up("A", false, "10:10:", t(100));
        assert_eq!(timed.confirming(Instant::now()), Ask::Since(since(t(100))));
    }

    #[test]
    fn confirmation_takes_only_what_was_named_once() {
        let named = [task(1), task(2), task(2)];
        let plan_check = Signal::new(SignalKind::PlanCheckRun, uid(1));
        let found =
            vec![plan_check, task(1), task(1), Signal::new(SignalKind::TaskRun, uid(2)).with_project("p")];
        let (confirmed, unconfirmed) = CatchUp::confirm(named.to_vec(), found);
        assert_eq!(confirmed, [task(1)]);
        assert_eq!(
            unconfirmed,
            [task(2), task(2)],
            "the other kind's run and another project do not confirm"
        );
    }

    #[test]
    fn strict_candidates_wait_until_taken() {
        let mut c = CatchUp::new(GRACE, Instant::now());
        c.candidate(task(1));
        c.candidate(task(2));
        assert_eq!(c.take_candidates(), [task(1), task(2)]);
        assert!(c.take_candidates().is_empty());
    }
}
