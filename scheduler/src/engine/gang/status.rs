//! What a gang's PodGroup status says, in each API's own terms: Kubernetes'
//! `PodGroupInitiallyScheduled` condition, scheduler-plugins' phase and counters, Volcano's
//! phase. The simulator writes them to `podgroups.csv`; a live scheduler writes them to the
//! API server (Volcano's only to `podgroups.csv`: `tessera run` does not read Volcano's groups).

use k8s_openapi::api::scheduling::v1alpha3 as native;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, Time};

use super::GangRecord;

/// The condition type Kubernetes' PodGroup reports gang placement with.
pub const INITIALLY_SCHEDULED: &str = "PodGroupInitiallyScheduled";
/// Its reason while the gang does not fit.
pub const REASON_UNSCHEDULABLE: &str = "Unschedulable";
/// Its reason once the gang was placed (the condition then stays `True`).
pub const REASON_SCHEDULED: &str = "Scheduled";

/// The `PodGroupInitiallyScheduled` condition: `True` once the gang was placed (terminal, as
/// upstream defines it), `False`/`Unschedulable` with the shortfall while it does not fit, and
/// none before its first attempt.
pub fn initially_scheduled(record: &GangRecord, generation: Option<i64>, now: Time) -> Option<Condition> {
    let (status, reason, message) = match (&record.admitted_at, &record.last_failure) {
        (Some(_), _) => ("True", REASON_SCHEDULED, format!("{} pods were placed together", record.min_count)),
        (None, Some(why)) => ("False", REASON_UNSCHEDULABLE, why.clone()),
        (None, None) => return None,
    };
    Some(Condition {
        type_: INITIALLY_SCHEDULED.to_string(),
        status: status.to_string(),
        reason: reason.to_string(),
        message,
        last_transition_time: now,
        observed_generation: generation,
    })
}

/// The status of a Kubernetes (`scheduling.k8s.io/v1alpha3`) PodGroup.
pub fn native_status(record: &GangRecord, generation: Option<i64>, now: Time) -> native::PodGroupStatus {
    native::PodGroupStatus {
        conditions: initially_scheduled(record, generation, now).map(|c| vec![c]),
        resource_claim_statuses: None,
    }
}

/// scheduler-plugins' phase: `Pending` until `minMember` pods exist, `Scheduling` while they
/// wait to be placed together, `Scheduled` once they were. (`Running`, `Finished` and
/// `Failed` come from the kubelet's view of the pods, which the scheduler does not have.)
pub fn coscheduling_phase(record: &GangRecord) -> &'static str {
    phase(record, ["Pending", "Scheduling", "Scheduled"])
}

/// Volcano's phase: `Pending` until `minMember` pods exist, `Inqueue` while they wait to be
/// placed together, `Running` once they were. (Volcano counts running pods from the kubelet's
/// view, which the scheduler does not have: a placed gang stands for a running one.)
pub fn volcano_phase(record: &GangRecord) -> &'static str {
    phase(record, ["Pending", "Inqueue", "Running"])
}

/// The name an API gives each stage of a gang: too few members yet, all there and waiting to
/// be placed together, placed.
fn phase(record: &GangRecord, [short, waiting, placed]: [&'static str; 3]) -> &'static str {
    if record.admitted_at.is_some() {
        placed
    } else if record.members >= record.min_count as usize {
        waiting
    } else {
        short
    }
}

/// The status of a scheduler-plugins (`scheduling.x-k8s.io/v1alpha1`) PodGroup.
pub fn coscheduling_status(record: &GangRecord, started: Option<Time>) -> tessera_crds::PodGroupStatus {
    let scheduled = i32::try_from(record.bound).unwrap_or(i32::MAX);
    tessera_crds::PodGroupStatus {
        phase: Some(coscheduling_phase(record).to_string()),
        scheduled,
        schedule_start_time: started,
        ..tessera_crds::PodGroupStatus::default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn now() -> Time {
        Time(Default::default())
    }

    #[test]
    fn the_condition_follows_the_gang() {
        let mut r = GangRecord { min_count: 4, members: 4, ..GangRecord::default() };
        assert_eq!(initially_scheduled(&r, Some(1), now()), None, "not tried yet");
        assert_eq!(coscheduling_phase(&r), "Scheduling");
        assert_eq!(volcano_phase(&r), "Inqueue");
        r.last_failure = Some("gang ml/g needs 4 pods, 2 fit: 2 Insufficient nvidia.com/gpu.".into());
        let c = initially_scheduled(&r, Some(1), now()).unwrap();
        assert_eq!(
            (c.type_.as_str(), c.status.as_str(), c.reason.as_str()),
            (INITIALLY_SCHEDULED, "False", "Unschedulable")
        );
        assert!(c.message.contains("2 fit"));
        (r.admitted_at, r.bound) = (Some(5.0), 4);
        let s = native_status(&r, Some(2), now());
        assert_eq!(s.conditions.unwrap()[0].status, "True");
        let cs = coscheduling_status(&r, None);
        assert_eq!((cs.phase.as_deref(), cs.scheduled), (Some("Scheduled"), 4));
        assert_eq!(volcano_phase(&r), "Running");
        let short = GangRecord { min_count: 4, members: 3, ..GangRecord::default() };
        assert_eq!((coscheduling_phase(&short), volcano_phase(&short)), ("Pending", "Pending"));
    }
}
