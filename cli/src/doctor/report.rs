//! The checklist: each check's verdict, and how it is printed (lines for people, one JSON object
//! for scripts).

use std::fmt::Write as _;

/// A check's verdict.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Status {
    /// Nothing to do.
    Ok,
    /// Works, but something deserves attention; the exit code stays 0.
    Warn,
    /// Broken; the doctor exits 1.
    Fail,
}

impl Status {
    /// How the status is spelled in both outputs.
    pub(crate) fn name(self) -> &'static str {
        match self {
            Status::Ok => "ok",
            Status::Warn => "warn",
            Status::Fail => "fail",
        }
    }
}

/// The checks, in the order they run.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum CheckId {
    Connection,
    ServerRole,
    Edition,
    Privileges,
    Log,
    NotificationQueue,
    Listeners,
    RoundTrip,
    ClockSkew,
}

impl CheckId {
    /// Every check, in order.
    pub(crate) const ALL: [CheckId; 9] = [
        CheckId::Connection,
        CheckId::ServerRole,
        CheckId::Edition,
        CheckId::Privileges,
        CheckId::Log,
        CheckId::NotificationQueue,
        CheckId::Listeners,
        CheckId::RoundTrip,
        CheckId::ClockSkew,
    ];

    /// The name on the line and in the JSON (`"check"`).
    pub(crate) fn name(self) -> &'static str {
        match self {
            CheckId::Connection => "connection",
            CheckId::ServerRole => "server role",
            CheckId::Edition => "edition",
            CheckId::Privileges => "privileges",
            CheckId::Log => "log",
            CheckId::NotificationQueue => "notification queue",
            CheckId::Listeners => "listeners",
            CheckId::RoundTrip => "round trip",
            CheckId::ClockSkew => "clock skew",
        }
    }
}

/// One check's result: what it found and, unless it is ok, what to do.
#[derive(Clone, Debug, PartialEq)]
pub(crate) struct Check {
    pub(crate) id: CheckId,
    pub(crate) status: Status,
    pub(crate) found: String,
    pub(crate) action: Option<String>,
}

impl Check {
    /// An ok check.
    pub(crate) fn ok(id: CheckId, found: impl Into<String>) -> Check {
        Check { id, status: Status::Ok, found: found.into(), action: None }
    }

    /// A warning, with what to do about it.
    pub(crate) fn warn(id: CheckId, found: impl Into<String>, action: impl Into<String>) -> Check {
        Check { id, status: Status::Warn, found: found.into(), action: Some(action.into()) }
    }

    /// A failure, with what to do about it.
    pub(crate) fn fail(id: CheckId, found: impl Into<String>, action: impl Into<String>) -> Check {
        Check { id, status: Status::Fail, found: found.into(), action: Some(action.into()) }
    }
}

/// A check that did not run, and why (its answer would mean nothing, or it cannot run at all).
#[derive(Clone, Debug, PartialEq)]
pub(crate) struct NotRun {
    pub(crate) id: CheckId,
    pub(crate) reason: String,
}

/// The whole checklist.
#[derive(Debug, Default)]
pub(crate) struct Report {
    pub(crate) checks: Vec<Check>,
    pub(crate) not_run: Vec<NotRun>,
}

impl Report {
    /// Adds a check's result.
    pub(crate) fn push(&mut self, check: Check) {
        self.checks.push(check);
    }

    /// Records that `id` did not run because of `reason`.
    pub(crate) fn skip(&mut self, id: CheckId, reason: impl Into<String>) {
        self.not_run.push(NotRun { id, reason: reason.into() });
    }

    /// Whether no check failed (warnings allowed).
    pub(crate) fn healthy(&self) -> bool {
        !self.checks.iter().any(|c| c.status == Status::Fail)
    }

    fn count(&self, status: Status) -> usize {
        self.checks.iter().filter(|c| c.status == status).count()
    }

    /// One line per check (`ok`, `warn`, `fail`, and `skip` for one that did not run), the action
    /// indented below a warning or failure, then a summary line.
    pub(crate) fn to_text(&self) -> String {
        let mut out = String::new();
        for id in CheckId::ALL {
            if let Some(check) = self.checks.iter().find(|c| c.id == id) {
                let _ = writeln!(out, "{:<5} {:<19} {}", check.status.name(), id.name(), check.found);
                if let Some(action) = &check.action {
                    let _ = writeln!(out, "{:<25} -> {action}", "");
                }
            } else if let Some(skipped) = self.not_run.iter().find(|s| s.id == id) {
                let _ = writeln!(out, "{:<5} {:<19} not run: {}", "skip", id.name(), skipped.reason);
            }
        }
        let (failed, warned) = (self.count(Status::Fail), self.count(Status::Warn));
        let plural = |n: usize, word: &str| format!("{n} {word}{}", if n == 1 { "" } else { "s" });
        let _ = writeln!(
            out,
            "{}: {}, {}, {} not run",
            if self.healthy() { "healthy" } else { "unhealthy" },
            plural(failed, "failure"),
            plural(warned, "warning"),
            self.not_run.len()
        );
        out
    }

    /// `{"healthy":..,"checks":[{"check","status","found","action"}..],"not_run":[{"check","reason"}..]}`.
    pub(crate) fn to_json(&self) -> serde_json::Value {
        let checks: Vec<_> = self
            .checks
            .iter()
            .map(|c| {
                serde_json::json!({
                    "check": c.id.name(),
                    "status": c.status.name(),
                    "found": c.found,
                    "action": c.action,
                })
            })
            .collect();
        let not_run: Vec<_> = self
            .not_run
            .iter()
            .map(|s| serde_json::json!({ "check": s.id.name(), "reason": s.reason }))
            .collect();
        serde_json::json!({ "healthy": self.healthy(), "checks": checks, "not_run": not_run })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> Report {
        let mut report = Report::default();
        report.push(Check::ok(CheckId::Connection, "host h, port 1, user u, not encrypted"));
        report.push(Check::warn(CheckId::Listeners, "none", "start one"));
        report.skip(CheckId::RoundTrip, "a standby");
        report
    }

    #[test]
    fn a_warning_keeps_the_report_healthy_and_a_failure_does_not() {
        let mut report = sample();
        assert!(report.healthy());
        report.push(Check::fail(CheckId::ServerRole, "standby", "use the primary"));
        assert!(!report.healthy());
    }

    #[test]
    fn text_lists_checks_in_order_with_actions_below_and_a_summary() {
        let mut report = sample();
        report.push(Check::fail(CheckId::ServerRole, "standby", "use the primary"));
        let text = report.to_text();
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines[0], "ok    connection          host h, port 1, user u, not encrypted");
        assert_eq!(lines[1], "fail  server role         standby");
        assert_eq!(lines[2], "                          -> use the primary");
        assert_eq!(lines[3], "warn  listeners           none");
        assert_eq!(lines[5], "skip  round trip          not run: a standby");
        assert_eq!(lines[6], "unhealthy: 1 failure, 1 warning, 1 not run");
    }

    #[test]
    fn json_carries_the_same_verdicts() {
        let json = sample().to_json();
        assert_eq!(json["healthy"], true);
        assert_eq!(json["checks"][0]["check"], "connection");
        assert_eq!(json["checks"][0]["action"], serde_json::Value::Null);
        assert_eq!(json["checks"][1]["status"], "warn");
        assert_eq!(json["checks"][1]["action"], "start one");
        assert_eq!(json["not_run"][0]["check"], "round trip");
    }
}
