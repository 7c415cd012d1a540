//! Whether this session may read the durable log, decided without I/O.
//!
//! A session detects what the log offers after LISTEN and again every `probe_interval` (so that
//! an update or a GRANT takes effect without a reconnect), and reads it at the catch-up and at
//! every heartbeat. A read can fail in three ways, and each has its answer:
//!
//! - the log is *locked* (a `VACUUM FULL`, an update under way): this read is skipped, the next
//!   one tries again;
//! - the read is *refused* (the function revoked or dropped since detection): detect again at
//!   once. If detection still finds the log readable and the next read is refused too, something
//!   detection cannot see is wrong (an error raised inside the function): the session does
//!   without the log until its next scheduled detection, instead of failing every heartbeat;
//! - the connection is *lost*: the session ends.
//!
//! `session.rs` does the I/O and says what happened; [`LogAccess`] decides, and is tested here
//! like `catch_up.rs` and `probe.rs`.

use std::time::Duration;

use tokio::time::Instant;

use crate::listener::log::{Log, Unavailable};

/// How a read of the log failed, as far as the decision cares.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum ReadFailure {
    /// The log is locked; the error reply proves the connection alive.
    Locked,
    /// The server refused the read: the function is missing or not granted now.
    Refused,
    /// The connection failed or timed out.
    Lost,
}

/// What the session does after a failed read.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum AfterFailure {
    /// Skip this read; the next one tries again.
    Skip,
    /// Detect again now, then [`LogAccess::redetected`].
    Redetect,
    /// Refused again although detection found the log readable: the log has been dropped from
    /// this session until the next scheduled detection (say so, once).
    DoWithout,
    /// The session ends.
    End,
}

/// The log as this session last found it, and whether a refusal is already being explained.
#[derive(Debug)]
pub(crate) struct LogAccess {
    /// The log as last detected (`None`: a plain listener).
    log: Option<Log>,
    /// When the log was last detected.
    detected: Instant,
    /// Set when a read was refused and the detection that followed still found the log
    /// readable; cleared by a read that succeeds and by a scheduled detection.
    refused: bool,
}

impl LogAccess {
    /// Nothing detected yet (a plain listener until [`LogAccess::adopt`]).
    pub(crate) fn new(now: Instant) -> Self {
        LogAccess { log: None, detected: now, refused: false }
    }

    /// The log as last detected.
    pub(crate) fn log(&self) -> Option<&Log> {
        self.log.as_ref()
    }

    /// Takes what a detection at `now` found; whether the log has exact replays.
    pub(crate) fn adopt(&mut self, found: Result<Log, Unavailable>, now: Instant) -> bool {
        self.log = found.ok();
        self.detected = now;
        self.log.as_ref().is_some_and(Log::exact)
    }

    /// Whether the scheduled detection is due at a heartbeat at `now`.
    pub(crate) fn detection_due(&self, now: Instant, every: Duration) -> bool {
        now.duration_since(self.detected) >= every
    }

    /// The scheduled detection found `found` at `now`: a fresh look, so a refusal after it is
    /// judged anew (it may be one this detection explains). Whether the log has exact replays.
    pub(crate) fn detected_on_schedule(&mut self, found: Result<Log, Unavailable>, now: Instant) -> bool {
        self.refused = false;
        self.adopt(found, now)
    }

    /// A read succeeded.
    pub(crate) fn read_succeeded(&mut self) {
        self.refused = false;
    }

    /// A read failed: what to do.
    pub(crate) fn read_failed(&mut self, failure: ReadFailure) -> AfterFailure {
        match failure {
            ReadFailure::Locked => AfterFailure::Skip,
            ReadFailure::Lost => AfterFailure::End,
            ReadFailure::Refused if self.refused => {
                self.log = None;
                AfterFailure::DoWithout
            }
            ReadFailure::Refused => AfterFailure::Redetect,
        }
    }

    /// The detection that followed a refusal found `found` at `now`: if the log still looks
    /// readable, the next refusal is one detection cannot explain. Whether the log has exact
    /// replays.
    pub(crate) fn redetected(&mut self, found: Result<Log, Unavailable>, now: Instant) -> bool {
        self.refused = found.is_ok();
        self.adopt(found, now)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn readable(exact: bool) -> Result<Log, Unavailable> {
        Ok(Log::for_tests(exact))
    }

    #[test]
    fn a_detection_sets_the_log_and_whether_it_is_exact() {
        let t0 = Instant::now();
        let mut access = LogAccess::new(t0);
        assert!(access.log().is_none(), "a plain listener until the first detection");
        assert!(access.adopt(readable(true), t0));
        assert!(access.log().is_some());
        assert!(!access.adopt(readable(false), t0), "time-based replays only");
        assert!(!access.adopt(Err(Unavailable::NotGranted), t0));
        assert!(access.log().is_none());
    }

    #[test]
    fn detection_is_due_every_interval_from_the_last_one() {
        let (t0, every) = (Instant::now(), Duration::from_secs(60));
        let mut access = LogAccess::new(t0);
        assert!(!access.detection_due(t0 + Duration::from_secs(59), every));
        assert!(access.detection_due(t0 + every, every));
        access.detected_on_schedule(readable(true), t0 + every);
        assert!(!access.detection_due(t0 + every + Duration::from_secs(1), every));
        access.redetected(readable(true), t0 + 2 * every);
        assert!(
            !access.detection_due(t0 + 2 * every + Duration::from_secs(59), every),
            "a redetection counts"
        );
    }

    #[test]
    fn locked_skips_and_lost_ends_whatever_came_before() {
        let mut access = LogAccess::new(Instant::now());
        access.adopt(readable(true), Instant::now());
        for _ in 0..2 {
            assert_eq!(access.read_failed(ReadFailure::Locked), AfterFailure::Skip);
            assert_eq!(access.read_failed(ReadFailure::Lost), AfterFailure::End);
        }
        assert!(access.log().is_some(), "neither gives up the log");
    }

    #[test]
    fn a_refusal_is_looked_into_and_a_second_one_that_detection_cannot_explain_drops_the_log() {
        let t0 = Instant::now();
        let mut access = LogAccess::new(t0);
        access.adopt(readable(true), t0);
        assert_eq!(access.read_failed(ReadFailure::Refused), AfterFailure::Redetect);
        // Detection still finds it readable: the next refusal is not explained by it.
        assert!(access.redetected(readable(true), t0));
        assert_eq!(access.read_failed(ReadFailure::Refused), AfterFailure::DoWithout);
        assert!(access.log().is_none(), "without the log until the next detection");
        // The scheduled detection takes it back, and judges the next refusal anew.
        assert!(access.detected_on_schedule(readable(true), t0 + Duration::from_secs(60)));
        assert_eq!(access.read_failed(ReadFailure::Refused), AfterFailure::Redetect);
    }

    #[test]
    fn a_read_that_succeeds_or_a_log_found_unreadable_restarts_the_judgement() {
        let t0 = Instant::now();
        let mut access = LogAccess::new(t0);
        access.adopt(readable(true), t0);
        assert_eq!(access.read_failed(ReadFailure::Refused), AfterFailure::Redetect);
        // Only the exact replay was revoked: detection finds the time-based one, not exact; the
        // read that follows succeeds, so a later refusal is looked into afresh.
        assert!(!access.redetected(readable(false), t0));
        access.read_succeeded();
        assert_eq!(access.read_failed(ReadFailure::Refused), AfterFailure::Redetect, "a success in between");
        // Revoked entirely: detection finds nothing, and a later grant's first refusal redetects.
        assert!(!access.redetected(Err(Unavailable::NotGranted), t0));
        assert!(access.log().is_none());
        access.detected_on_schedule(readable(true), t0 + Duration::from_secs(60));
        assert_eq!(access.read_failed(ReadFailure::Refused), AfterFailure::Redetect);
    }
}
