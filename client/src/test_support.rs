//! Helpers shared by the unit tests of several modules.

use crate::signal::Signal;
use crate::validate::RunUid;
use crate::wire::SignalKind;

pub(crate) fn uid(v: i64) -> RunUid {
    RunUid::new(v).expect("test uid is positive")
}

pub(crate) fn task(v: i64) -> Signal {
    Signal::new(SignalKind::TaskRun, uid(v))
}

pub(crate) fn plan_check(v: i64) -> Signal {
    Signal::new(SignalKind::PlanCheckRun, uid(v))
}
