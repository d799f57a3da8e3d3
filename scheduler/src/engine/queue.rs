//! The scheduling queue: active (priority, then age), backoff, and unschedulable, with
//! upstream's semantics at *unit* granularity (a unit is a lone pod or a whole gang).
//!
//! A unit that failed goes to the unschedulable pool until a cluster event that could make it
//! fit (a node added or changed, a pod leaving) moves it back; it then waits out its backoff
//! (initial × 2^(attempts−1), capped) before it is active again. Time is seconds on whatever
//! clock the driver uses: real in the live scheduler, virtual in the simulator.
//!
//! Pods a PreEnqueue plugin turns away (scheduling gates) wait in a fourth pool, [`Gated`],
//! outside every queue: they are never tried, so never unschedulable, until an update to the
//! pod lets PreEnqueue admit it (upstream keeps them in its unschedulable pool flagged gated).

use std::cmp::Ordering;
use std::collections::{BTreeMap, BinaryHeap};
use std::sync::Arc;

use tessera_plugins::framework::Nomination;
use tessera_plugins::model::{GroupKey, Pod, PodKey};
use tessera_plugins::nodeinfo::NodeId;
use tessera_plugins::status::Status;

use super::gang::{GangSpec, GangTable};

/// A unit of scheduling: one pod, or every member of a gang.
#[derive(Clone, Debug)]
pub struct Unit {
    /// The pods, scheduled together (all or nothing).
    pub pods: Vec<Arc<Pod>>,
    /// Queue priority (the pods' priority).
    pub priority: i32,
    /// When the unit first entered the queue (seconds).
    pub queued_at: f64,
    /// Arrival order, breaking ties between equal priority and time.
    pub seq: u64,
    /// Scheduling attempts so far.
    pub attempts: u32,
    /// Index of the profile that schedules it.
    pub profile: usize,
    /// The last reason it failed, for the pending pod's condition.
    pub last_failure: Option<String>,
    /// Set when the unit is a gang's first `minCount` members.
    pub gang: Option<GangSpec>,
    /// The node whose freed room woke the unit ([`Wake::ForRoomOn`]): if the unit does not
    /// take it, the room is offered to the next parked unit.
    pub offered: Option<NodeId>,
    /// The unit's pod preempted others and waits for them: where, and whom (a single pod's
    /// unit only). Its room on that node is held against pods of lower or equal priority.
    pub nominated: Option<Arc<Nomination>>,
}

impl Unit {
    /// A unit of one pod.
    pub fn single(pod: Arc<Pod>, profile: usize, queued_at: f64, seq: u64) -> Unit {
        Unit {
            priority: pod.priority,
            pods: vec![pod],
            queued_at,
            seq,
            attempts: 0,
            profile,
            last_failure: None,
            gang: None,
            offered: None,
            nominated: None,
        }
    }

    /// The key of the unit's first pod, naming the unit.
    pub fn key(&self) -> Option<PodKey> {
        self.pods.first().map(|p| p.key())
    }
}

struct Active(Unit);

impl PartialEq for Active {
    fn eq(&self, other: &Self) -> bool {
        self.cmp(other) == Ordering::Equal
    }
}
impl Eq for Active {}
impl PartialOrd for Active {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}
impl Ord for Active {
    /// Max-heap order: higher priority, then earlier arrival, is "greater" (PrioritySort).
    fn cmp(&self, other: &Self) -> Ordering {
        self.0
            .priority
            .cmp(&other.0.priority)
            .then_with(|| other.0.queued_at.total_cmp(&self.0.queued_at))
            .then_with(|| other.0.seq.cmp(&self.0.seq))
    }
}

/// A parked unit's place in the unschedulable pool: queue order (higher priority, then earlier
/// arrival, then arrival order first), so that an event that can help only a few units offers
/// its room to the ones the active queue would have served first.
#[derive(Clone, Copy, Debug)]
struct Parked {
    priority: i32,
    queued_at: f64,
    seq: u64,
}

impl Parked {
    fn of(unit: &Unit) -> Parked {
        Parked { priority: unit.priority, queued_at: unit.queued_at, seq: unit.seq }
    }
}

impl PartialEq for Parked {
    fn eq(&self, other: &Self) -> bool {
        self.cmp(other) == Ordering::Equal
    }
}
impl Eq for Parked {}
impl PartialOrd for Parked {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}
impl Ord for Parked {
    fn cmp(&self, other: &Self) -> Ordering {
        other
            .priority
            .cmp(&self.priority)
            .then_with(|| self.queued_at.total_cmp(&other.queued_at))
            .then_with(|| self.seq.cmp(&other.seq))
    }
}

struct Backoff(f64, Unit);

impl PartialEq for Backoff {
    fn eq(&self, other: &Self) -> bool {
        self.cmp(other) == Ordering::Equal
    }
}
impl Eq for Backoff {}
impl PartialOrd for Backoff {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}
impl Ord for Backoff {
    /// Min-heap on ready time.
    fn cmp(&self, other: &Self) -> Ordering {
        other.0.total_cmp(&self.0).then_with(|| other.1.seq.cmp(&self.1.seq))
    }
}

/// Backoff settings (upstream defaults 1 s and 10 s).
#[derive(Clone, Copy, Debug)]
pub struct BackoffPolicy {
    /// The first backoff.
    pub initial_s: f64,
    /// The cap.
    pub max_s: f64,
}

impl Default for BackoffPolicy {
    fn default() -> Self {
        BackoffPolicy { initial_s: 1.0, max_s: 10.0 }
    }
}

impl BackoffPolicy {
    /// Backoff after `attempts` failed attempts.
    pub fn duration(&self, attempts: u32) -> f64 {
        let exp = attempts.saturating_sub(1).min(30);
        (self.initial_s * f64::from(1u32 << exp)).min(self.max_s)
    }
}

/// Whether an event wakes a parked unit ([`SchedulingQueue::move_to_active_or_backoff_if`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Wake {
    /// It stays parked.
    No,
    /// It may fit now, anywhere.
    Yes,
    /// It may fit in the room that appeared on this node, which it is given first.
    ForRoomOn(NodeId),
}

/// A pod a PreEnqueue plugin keeps out of the queue.
#[derive(Clone, Debug)]
pub struct Gated {
    /// The pod, as last given.
    pub pod: Arc<Pod>,
    /// Index of the profile whose PreEnqueue plugins turned it away.
    pub profile: usize,
    /// The rejecting plugin's status (its `plugin` names it).
    pub status: Status,
    /// When it was turned away.
    pub since: f64,
}

/// The three queues, and the pods kept out of them.
#[derive(Default)]
pub struct SchedulingQueue {
    active: BinaryHeap<Active>,
    backoff: BinaryHeap<Backoff>,
    /// Parked units in queue order, with when they were parked.
    unschedulable: BTreeMap<Parked, (f64, Unit)>,
    policy: BackoffPolicy,
    next_seq: u64,
    /// Gang members held back until their gang may enter (PreEnqueue).
    pub gangs: GangTable,
    /// Pods PreEnqueue plugins turned away, by key.
    gated: BTreeMap<PodKey, Gated>,
}

impl std::fmt::Debug for SchedulingQueue {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SchedulingQueue")
            .field("active", &self.active.len())
            .field("backoff", &self.backoff.len())
            .field("unschedulable", &self.unschedulable.len())
            .field("gated", &self.gated.len())
            .finish()
    }
}

impl SchedulingQueue {
    /// An empty queue with `policy`.
    pub fn new(policy: BackoffPolicy) -> SchedulingQueue {
        SchedulingQueue { policy, ..Default::default() }
    }

    /// An empty queue with `policy` whose gangs time out after `gang_timeout_s` by default.
    pub fn with_gangs(policy: BackoffPolicy, gangs: GangTable) -> SchedulingQueue {
        SchedulingQueue { policy, gangs, ..Default::default() }
    }

    /// A fresh arrival sequence number.
    pub fn next_seq(&mut self) -> u64 {
        self.next_seq += 1;
        self.next_seq
    }

    /// Adds a unit to the active queue.
    pub fn push_active(&mut self, unit: Unit) {
        self.active.push(Active(unit));
    }

    /// The next unit to schedule, moving backoff units whose time has come first.
    pub fn pop(&mut self, now: f64) -> Option<Unit> {
        self.flush_backoff(now);
        self.pop_active()
    }

    /// The next active unit, leaving backoff alone: the parallel drive's pop, which must only
    /// hand out units it counted (a unit in backoff waits for the next run).
    pub fn pop_active(&mut self) -> Option<Unit> {
        self.active.pop().map(|a| a.0)
    }

    /// When a unit with `attempts` failures sent to backoff at `now` is ready again.
    pub fn backoff_ready(&self, attempts: u32, now: f64) -> f64 {
        now + self.policy.duration(attempts.max(1))
    }

    /// Parks a unit that fit nowhere until a cluster event.
    pub fn park_unschedulable(&mut self, unit: Unit, now: f64) {
        self.unschedulable.insert(Parked::of(&unit), (now, unit));
    }

    /// Sends a unit to backoff (it failed for a reason that may pass by itself, e.g. a
    /// conflict or an API error).
    pub fn push_backoff(&mut self, unit: Unit, now: f64) {
        let ready = self.backoff_ready(unit.attempts, now);
        self.backoff.push(Backoff(ready, unit));
    }

    /// A cluster event may let parked units fit: move them to backoff or, when their backoff
    /// has passed, straight to active (upstream `MoveAllToActiveOrBackoffQueue`). Returns how
    /// many went straight to active.
    pub fn move_all_to_active_or_backoff(&mut self, now: f64) -> usize {
        let mut parked: Vec<(f64, Unit)> = std::mem::take(&mut self.unschedulable).into_values().collect();
        parked.sort_by_key(|(_, u)| u.seq);
        parked.into_iter().map(|(since, unit)| self.unpark(since, unit, now)).sum()
    }

    /// As [`Self::move_all_to_active_or_backoff`], for the parked units `wake` picks; it is
    /// asked in queue order (upstream's queueing hints, which decide per unit whether an event
    /// could make it schedulable).
    pub fn move_to_active_or_backoff_if(&mut self, now: f64, mut wake: impl FnMut(&Unit) -> Wake) -> usize {
        let picked: Vec<(Parked, Option<NodeId>)> = self
            .unschedulable
            .iter()
            .filter_map(|(k, (_, u))| match wake(u) {
                Wake::No => None,
                Wake::Yes => Some((*k, None)),
                Wake::ForRoomOn(id) => Some((*k, Some(id))),
            })
            .collect();
        let mut active = 0;
        for (key, offered) in picked {
            if let Some((since, mut unit)) = self.unschedulable.remove(&key) {
                unit.offered = offered;
                active += self.unpark(since, unit, now);
            }
        }
        active
    }

    /// Sends a unit parked since `since` to active (1) or, while its backoff lasts, to backoff (0).
    fn unpark(&mut self, since: f64, unit: Unit, now: f64) -> usize {
        let ready = self.backoff_ready(unit.attempts, since);
        if ready <= now {
            self.push_active(unit);
            1
        } else {
            self.backoff.push(Backoff(ready, unit));
            0
        }
    }

    /// Moves backoff units whose time has come to active; returns how many.
    pub fn flush_backoff(&mut self, now: f64) -> usize {
        let mut moved = 0;
        while self.backoff.peek().is_some_and(|b| b.0 <= now) {
            if let Some(Backoff(_, unit)) = self.backoff.pop() {
                self.push_active(unit);
                moved += 1;
            }
        }
        moved
    }

    /// When the next backoff unit becomes ready, if any.
    pub fn next_backoff_ready(&self) -> Option<f64> {
        self.backoff.peek().map(|b| b.0)
    }

    /// Removes every trace of pod `key` (deleted while pending). Returns whether it was
    /// queued, and the gang it belonged to when its gang's unit was taken back to wait (the
    /// caller tries to form the gang again).
    pub fn remove_pod(&mut self, key: &PodKey) -> (bool, Option<GroupKey>) {
        if self.gated.remove(key).is_some() || self.gangs.remove_waiting(key) {
            return (true, None);
        }
        let Some(mut unit) = self.take_unit(|u| u.pods.iter().any(|p| &p.key() == key)) else { return (false, None) };
        let Some(gang) = unit.gang.take() else {
            if let Some(group) = unit.pods.first().and_then(|p| p.group_key()) {
                self.gangs.member_deleted(group);
            }
            return (true, None);
        };
        unit.pods.retain(|p| &p.key() != key);
        self.gangs.member_deleted(gang.key);
        self.gangs.take_back(gang.key, unit);
        (true, Some(gang.key))
    }

    /// Takes the queued unit of gang `key` out of the queue, if there is one.
    pub fn take_gang_unit(&mut self, key: GroupKey) -> Option<Unit> {
        self.take_unit(|u| u.gang.as_ref().is_some_and(|g| g.key == key))
    }

    /// Removes and returns the first unit matching `hit` in any queue.
    fn take_unit(&mut self, hit: impl Fn(&Unit) -> bool) -> Option<Unit> {
        let mut found = None;
        let active = std::mem::take(&mut self.active).into_vec();
        for a in active {
            if found.is_none() && hit(&a.0) {
                found = Some(a.0);
            } else {
                self.active.push(a);
            }
        }
        let backoff = std::mem::take(&mut self.backoff).into_vec();
        for b in backoff {
            if found.is_none() && hit(&b.1) {
                found = Some(b.1);
            } else {
                self.backoff.push(b);
            }
        }
        if found.is_none() {
            let key = self.unschedulable.iter().find(|(_, (_, u))| hit(u)).map(|(k, _)| *k);
            found = key.and_then(|k| self.unschedulable.remove(&k)).map(|(_, u)| u);
        }
        found
    }

    /// Units in the active queue.
    pub fn active_len(&self) -> usize {
        self.active.len()
    }

    /// Units in the active, backoff and unschedulable queues.
    pub fn lens(&self) -> (usize, usize, usize) {
        (self.active.len(), self.backoff.len(), self.unschedulable.len())
    }

    /// Units in every queue.
    pub fn len(&self) -> usize {
        self.active.len() + self.backoff.len() + self.unschedulable.len()
    }

    /// Whether every queue is empty.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Units parked as unschedulable.
    pub fn unschedulable_units(&self) -> impl Iterator<Item = &Unit> {
        self.unschedulable.values().map(|(_, u)| u)
    }

    /// Units in backoff.
    pub fn backoff_units(&self) -> impl Iterator<Item = &Unit> {
        self.backoff.iter().map(|b| &b.1)
    }

    /// Keeps a pod PreEnqueue turned away, replacing an earlier version of it.
    pub fn hold_gated(&mut self, gated: Gated) {
        self.gated.insert(gated.pod.key(), gated);
    }

    /// The pods PreEnqueue plugins keep out, by key.
    pub fn gated(&self) -> impl Iterator<Item = &Gated> {
        self.gated.values()
    }

    /// How many pods PreEnqueue plugins keep out (not counted by [`Self::len`]: they are no
    /// work for a worker).
    pub fn gated_len(&self) -> usize {
        self.gated.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tessera_plugins::resources::ResourceVec;

    fn unit(q: &mut SchedulingQueue, name: &str, priority: i32, at: f64) -> Unit {
        let mut p = Pod::new("default", name, ResourceVec::ZERO);
        p.priority = priority;
        let seq = q.next_seq();
        Unit::single(Arc::new(p), 0, at, seq)
    }

    fn name(u: &Unit) -> String {
        u.pods[0].name.to_string()
    }

    #[test]
    fn active_is_priority_then_age() {
        let mut q = SchedulingQueue::new(BackoffPolicy::default());
        for (n, p, t) in [("late-low", 0, 2.0), ("early-low", 0, 1.0), ("high", 10, 3.0)] {
            let u = unit(&mut q, n, p, t);
            q.push_active(u);
        }
        let order: Vec<String> = std::iter::from_fn(|| q.pop(0.0)).map(|u| name(&u)).collect();
        assert_eq!(order, ["high", "early-low", "late-low"]);
    }

    #[test]
    fn backoff_doubles_up_to_the_cap() {
        let p = BackoffPolicy::default();
        assert_eq!([1, 2, 3, 4, 5, 9].map(|a| p.duration(a)), [1.0, 2.0, 4.0, 8.0, 10.0, 10.0]);
    }

    #[test]
    fn parked_units_return_only_after_an_event_and_their_backoff() {
        let mut q = SchedulingQueue::new(BackoffPolicy::default());
        let mut u = unit(&mut q, "p", 0, 0.0);
        u.attempts = 2;
        q.park_unschedulable(u, 10.0);
        assert!(q.pop(100.0).is_none(), "parked units wait for an event");
        q.move_all_to_active_or_backoff(11.0);
        assert!(q.pop(11.0).is_none(), "still backing off (2 s from 10 s)");
        assert_eq!(q.next_backoff_ready(), Some(12.0));
        assert!(q.pop(12.0).is_some());
    }

    #[test]
    fn removing_a_pod_clears_it_everywhere() {
        let mut q = SchedulingQueue::new(BackoffPolicy::default());
        let a = unit(&mut q, "a", 0, 0.0);
        let b = unit(&mut q, "b", 0, 0.0);
        let key = a.pods[0].key();
        q.push_active(a);
        q.park_unschedulable(b, 0.0);
        assert!(q.remove_pod(&key).0);
        assert_eq!(q.len(), 1);
        assert!(!q.remove_pod(&key).0);
        let c = unit(&mut q, "c", 0, 0.0);
        let key = c.pods[0].key();
        q.hold_gated(Gated { pod: c.pods[0].clone(), profile: 0, status: Status::unresolvable("gated"), since: 0.0 });
        assert_eq!((q.len(), q.gated_len()), (1, 1), "a gated pod is no unit of work");
        assert!(q.remove_pod(&key).0);
        assert_eq!(q.gated_len(), 0);
    }
}
