//! Gangs at the queue: who belongs to which PodGroup, when a gang may enter the queue
//! (PreEnqueue), and what becomes of it once placed or failed.
//!
//! A pod that names a PodGroup does not enter the queue alone. It waits here until its group
//! exists and at least `minCount` members do; then the first `minCount` of them enter the
//! queue as *one* unit, which a worker places whole and the binder commits whole (see
//! [`super::worker`] and [`super::binder`]). Once that unit is placed the gang is *admitted*:
//! its other members, and members that arrive later, schedule one by one as ordinary pods.
//!
//! Where a gang goes ([`placement`]) and which nodes it holds while it waits
//! ([`reservation`]) are their own modules.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use tessera_plugins::intern::Sym;
use tessera_plugins::model::{GroupKey, Pod, PodGroup, PodGroupApi, PodKey};
use tessera_plugins::resources::ResourceVec;

use super::queue::Unit;

pub mod placement;
pub mod preemption;
pub mod reservation;
pub mod status;
#[cfg(test)]
mod tests;

/// How gangs are scheduled (the `tessera.gang` block of the configuration).
#[derive(Clone, Debug, PartialEq)]
pub struct GangOptions {
    /// Node labels from the widest topology domain to the narrowest (`block`, `rack`): a gang
    /// without a topology constraint is tried in one narrowest domain first, then in one of
    /// each wider level, then anywhere, so it lands in the fewest, closest domains.
    pub topology_hierarchy: Vec<Sym>,
    /// Whether a gang that does not fit holds nodes so that a stream of small pods cannot
    /// starve it.
    pub reservation: bool,
    /// How long one reservation lasts at most, in seconds: the bound on what a waiting gang
    /// may cost everyone else.
    pub reservation_s: f64,
    /// How long a scheduler-plugins gang may try before it times out when its PodGroup sets
    /// no `scheduleTimeoutSeconds` (scheduler-plugins' `permitWaitingTimeSeconds`, 60 s).
    pub default_timeout_s: f64,
}

impl Default for GangOptions {
    fn default() -> Self {
        GangOptions { topology_hierarchy: Vec::new(), reservation: true, reservation_s: 300.0, default_timeout_s: 60.0 }
    }
}

/// What a worker needs to know of the gang a unit is.
#[derive(Clone, Debug, PartialEq)]
pub struct GangSpec {
    /// The PodGroup.
    pub key: GroupKey,
    /// Every member must land in one domain of this node label.
    pub topology_key: Option<Sym>,
    /// When the gang entered the queue (for its timeout).
    pub formed_at: f64,
    /// When it times out after entering the queue, if ever.
    pub timeout_s: Option<f64>,
    /// What the cluster must have free before the gang is tried (`minResources`).
    pub min_resources: Option<ResourceVec>,
}

/// The fate of one gang, for reports.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct GangRecord {
    /// Members the group requires at once.
    pub min_count: u32,
    /// When its first member arrived (when its PodGroup appeared, until then).
    pub first_seen: f64,
    /// When its first `minCount` members were placed together.
    pub admitted_at: Option<f64>,
    /// How many times it timed out.
    pub timeouts: u32,
    /// Members bound so far.
    pub bound: usize,
    /// Members known (waiting, queued or bound).
    pub members: usize,
    /// Why the gang last failed to fit, while it has not been admitted.
    pub last_failure: Option<String>,
    /// The API its PodGroup came from.
    pub api: Option<PodGroupApi>,
}

#[derive(Debug, Default)]
struct Gang {
    group: Option<Arc<PodGroup>>,
    /// Members not yet in the queue, in arrival order, with their profile.
    waiting: Vec<(Arc<Pod>, usize)>,
    /// A unit of the gang is in the queue or with a worker.
    in_queue: bool,
    /// Some member has arrived (`record.first_seen` is its arrival).
    has_members: bool,
    /// The gang has had its one reservation (see [`reservation`]).
    reserved_once: bool,
    record: GangRecord,
}

impl Gang {
    fn admitted(&self) -> bool {
        self.record.admitted_at.is_some()
    }
}

/// Every gang the engine knows of. See the module docs.
#[derive(Debug, Default)]
pub struct GangTable {
    gangs: HashMap<GroupKey, Gang>,
    default_timeout_s: f64,
}

impl GangTable {
    /// An empty table; `default_timeout_s` as in [`GangOptions`].
    pub fn new(default_timeout_s: f64) -> GangTable {
        GangTable { gangs: HashMap::new(), default_timeout_s }
    }

    /// Adds or replaces a PodGroup. A gang already queued whose PodGroup changed is taken back
    /// (`requeue` is `true`):
    /// the caller removes its unit from the queue and calls [`GangTable::take_back`].
    pub fn upsert_group(&mut self, group: PodGroup, now: f64) -> GroupUpdate {
        let key = group.key;
        let gang = self.gangs.entry(key).or_insert_with(|| Gang {
            record: GangRecord { first_seen: now, ..GangRecord::default() },
            ..Gang::default()
        });
        // Any change reaches a queued unit (its GangSpec copies the group's settings).
        let changed = gang.group.as_ref().is_some_and(|g| **g != group);
        gang.record.min_count = group.min_count;
        gang.record.api = Some(group.api);
        if gang.record.bound >= group.min_count as usize {
            // Members already run (the group arrived after them): nothing to wait for.
            gang.record.admitted_at.get_or_insert(now);
        }
        gang.group = Some(Arc::new(group));
        GroupUpdate { key, requeue: changed && gang.in_queue && !gang.admitted() }
    }

    /// Forgets a PodGroup; its waiting members wait on (for a group of that name to appear).
    /// Returns whether the gang had a unit in the queue, which the caller takes back.
    pub fn remove_group(&mut self, key: GroupKey) -> bool {
        let Some(gang) = self.gangs.get_mut(&key) else { return false };
        let queued = gang.in_queue && !gang.admitted();
        // A PodGroup created again under this name is a new gang: all or nothing again.
        gang.group = None;
        gang.reserved_once = false;
        gang.record.admitted_at = None;
        gang.record.timeouts = 0;
        gang.record.last_failure = None;
        self.forget_if_gone(key);
        queued
    }

    /// Returns the pods of a gang unit taken out of the queue to the waiting list (front,
    /// keeping arrival order).
    pub fn take_back(&mut self, key: GroupKey, unit: Unit) {
        if let Some(gang) = self.gangs.get_mut(&key) {
            let back = unit.pods.into_iter().map(|p| (p, unit.profile));
            gang.waiting.splice(0..0, back);
            gang.in_queue = false;
        }
    }

    /// Takes in a member. `Ok(pod)` hands it back to be queued alone (its gang is admitted
    /// already); `Err(key)` means it waits here and the caller should try to [`form`] `key`.
    ///
    /// [`form`]: GangTable::form
    pub fn add_member(&mut self, pod: Arc<Pod>, profile: usize, now: f64) -> Result<Arc<Pod>, GroupKey> {
        let Some(key) = pod.group_key() else { return Ok(pod) };
        let gang = self.gangs.entry(key).or_insert_with(|| Gang {
            record: GangRecord { first_seen: now, ..GangRecord::default() },
            ..Gang::default()
        });
        if !gang.has_members {
            gang.has_members = true;
            gang.record.first_seen = now;
        }
        gang.record.members += 1;
        if gang.admitted() {
            return Ok(pod);
        }
        gang.waiting.push((pod, profile));
        Err(key)
    }

    /// A member already running on its node (a dump of a live cluster, a restart): counted
    /// bound, and the gang admitted once `minCount` members run.
    pub fn add_running(&mut self, pod: &Pod, now: f64) {
        let Some(key) = pod.group_key() else { return };
        let gang = self.gangs.entry(key).or_insert_with(|| Gang {
            record: GangRecord { first_seen: now, ..GangRecord::default() },
            ..Gang::default()
        });
        gang.has_members = true;
        gang.record.members += 1;
        gang.record.bound += 1;
        let min = gang.group.as_ref().map_or(u32::MAX, |g| g.min_count) as usize;
        if gang.record.bound >= min {
            gang.record.admitted_at.get_or_insert(now);
        }
    }

    /// Whether gang `key` may take a reservation: once per gang, so that one that can never
    /// fit does not hold nodes again and again.
    pub fn may_reserve(&mut self, key: GroupKey) -> bool {
        match self.gangs.get_mut(&key) {
            Some(g) if !g.reserved_once => {
                g.reserved_once = true;
                true
            }
            _ => false,
        }
    }

    /// PreEnqueue: the gang's unit when it exists, is not queued, and has `minCount` members
    /// waiting (the first `minCount` to arrive); `None` otherwise. `seq` numbers the unit.
    pub fn form(&mut self, key: GroupKey, seq: u64, now: f64) -> Option<Unit> {
        let default_timeout = self.default_timeout_s;
        let gang = self.gangs.get_mut(&key)?;
        let group = gang.group.clone()?;
        // Members already bound count towards minCount (a gang one of whose bindings failed
        // needs only the rest again).
        let need = (group.min_count as usize).saturating_sub(gang.record.bound).max(1);
        if gang.in_queue || gang.admitted() || gang.waiting.len() < need {
            return None;
        }
        let members: Vec<(Arc<Pod>, usize)> = gang.waiting.drain(..need).collect();
        let profile = members.first().map_or(0, |(_, p)| *p);
        let pods: Vec<Arc<Pod>> = members.into_iter().map(|(p, _)| p).collect();
        let priority = group.priority.unwrap_or_else(|| pods.iter().map(|p| p.priority).max().unwrap_or(0));
        let timeout_s = group.schedule_timeout_s.or(match group.api {
            PodGroupApi::Coscheduling => Some(default_timeout),
            PodGroupApi::Kubernetes | PodGroupApi::Volcano => None,
        });
        gang.in_queue = true;
        Some(Unit {
            pods,
            priority,
            queued_at: gang.record.first_seen,
            seq,
            attempts: 0,
            profile,
            last_failure: None,
            offered: None,
            gang: Some(GangSpec {
                key,
                topology_key: group.topology_key,
                formed_at: now,
                timeout_s,
                min_resources: group.min_resources.clone(),
            }),
            nominated: None,
        })
    }

    /// The gang's unit was placed: the gang is admitted and its other waiting members are
    /// returned to be queued one by one.
    pub fn admit(&mut self, key: GroupKey, placed: usize, now: f64) -> Vec<(Arc<Pod>, usize)> {
        let Some(gang) = self.gangs.get_mut(&key) else { return Vec::new() };
        gang.in_queue = false;
        gang.record.admitted_at.get_or_insert(now);
        gang.record.last_failure = None;
        gang.record.bound += placed;
        std::mem::take(&mut gang.waiting)
    }

    /// Withdraws admission from a gang that fell below `minCount` bound members before it
    /// ever ran whole (a binding failed): its unbound members wait to be placed together again.
    pub fn revoke_if_short(&mut self, key: GroupKey) {
        let Some(gang) = self.gangs.get_mut(&key) else { return };
        let min = gang.group.as_ref().map_or(0, |g| g.min_count as usize);
        if gang.record.bound < min {
            gang.record.admitted_at = None;
        }
    }

    /// A member of an admitted gang was placed on its own.
    pub fn member_bound(&mut self, key: GroupKey) {
        if let Some(gang) = self.gangs.get_mut(&key) {
            gang.record.bound += 1;
        }
    }

    /// The gang's unit did not fit: why.
    pub fn failed(&mut self, key: GroupKey, message: &str) {
        if let Some(gang) = self.gangs.get_mut(&key) {
            gang.record.last_failure = Some(message.to_string());
        }
    }

    /// The gang timed out once more.
    pub fn timed_out(&mut self, key: GroupKey) {
        if let Some(gang) = self.gangs.get_mut(&key) {
            gang.record.timeouts += 1;
        }
    }

    /// Forgets a waiting member (deleted before it was queued). Returns whether it waited.
    pub fn remove_waiting(&mut self, key: &PodKey) -> bool {
        let found = self.gangs.iter_mut().find_map(|(g, gang)| {
            let i = gang.waiting.iter().position(|(p, _)| &p.key() == key)?;
            gang.waiting.remove(i);
            gang.record.members = gang.record.members.saturating_sub(1);
            Some(*g)
        });
        found.inspect(|g| self.forget_if_gone(*g)).is_some()
    }

    /// Drops a gang with neither a PodGroup nor members, so a long-lived scheduler does not
    /// keep every gang it ever saw.
    fn forget_if_gone(&mut self, key: GroupKey) {
        if self.gangs.get(&key).is_some_and(|g| g.group.is_none() && g.record.members == 0 && !g.in_queue) {
            self.gangs.remove(&key);
        }
    }

    /// A member that was queued (in a gang unit taken back) left.
    pub fn member_deleted(&mut self, key: GroupKey) {
        if let Some(gang) = self.gangs.get_mut(&key) {
            gang.record.members = gang.record.members.saturating_sub(1);
        }
        self.forget_if_gone(key);
    }

    /// A bound member left.
    pub fn member_gone(&mut self, key: GroupKey) {
        if let Some(gang) = self.gangs.get_mut(&key) {
            gang.record.bound = gang.record.bound.saturating_sub(1);
            gang.record.members = gang.record.members.saturating_sub(1);
        }
        self.forget_if_gone(key);
    }

    /// Members waiting outside the queue, with why: the message their `PodScheduled`
    /// condition shows.
    pub fn waiting(&self) -> impl Iterator<Item = (&Arc<Pod>, String)> + '_ {
        self.gangs.iter().flat_map(|(key, gang)| {
            let why = match &gang.group {
                None => format!("pod group {key} does not exist"),
                Some(g) if !gang.admitted() => format!(
                    "gang {key} waits for {} pods, {} exist",
                    g.min_count,
                    gang.waiting.len() + usize::from(gang.in_queue) * g.min_count as usize
                ),
                Some(_) => format!("gang {key} is waiting"),
            };
            gang.waiting.iter().map(move |(p, _)| (p, why.clone()))
        })
    }

    /// Number of members waiting outside the queue.
    pub fn waiting_len(&self) -> usize {
        self.gangs.values().map(|g| g.waiting.len()).sum()
    }

    /// Every gang with a PodGroup, by key (ordered, for reports).
    pub fn records(&self) -> BTreeMap<String, GangRecord> {
        self.gangs.iter().filter(|(_, g)| g.group.is_some()).map(|(k, g)| (k.to_string(), g.record.clone())).collect()
    }

    /// The key of the gang `records` names `name` (`namespace/name`).
    pub fn key_of(&self, name: &str) -> Option<GroupKey> {
        let (ns, n) = name.split_once('/')?;
        let key = GroupKey::new(ns, n);
        self.gangs.contains_key(&key).then_some(key)
    }

    /// The gang's PodGroup, if known.
    pub fn group(&self, key: GroupKey) -> Option<&Arc<PodGroup>> {
        self.gangs.get(&key).and_then(|g| g.group.as_ref())
    }

    /// Whether the gang was admitted.
    pub fn is_admitted(&self, key: GroupKey) -> bool {
        self.gangs.get(&key).is_some_and(Gang::admitted)
    }
}

/// What [`GangTable::upsert_group`] asks of the caller.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct GroupUpdate {
    /// The gang.
    pub key: GroupKey,
    /// The gang's queued unit no longer matches its `minCount`: take it back and form anew.
    pub requeue: bool,
}

/// How many pods of a gang could be placed, and why the rest could not: the message a gang's
/// pods show when it does not fit.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Shortfall {
    /// Pods the gang needs at once.
    pub needed: usize,
    /// Pods that found a node, placed one after another.
    pub fit: usize,
    /// For the pods that found none: each one's main reason, counted.
    pub reasons: BTreeMap<String, usize>,
    /// The topology domain the count was made in, when the gang must keep to one.
    pub domain: Option<String>,
}

impl Shortfall {
    /// "gang ns/train-64 needs 64 pods, 41 fit: 23 Insufficient nvidia.com/gpu."
    pub fn message(&self, key: GroupKey) -> String {
        let mut reasons: Vec<(&String, &usize)> = self.reasons.iter().collect();
        reasons.sort_by(|a, b| b.1.cmp(a.1).then_with(|| a.0.cmp(b.0)));
        let why: Vec<String> = reasons.iter().map(|(r, n)| format!("{n} {r}")).collect();
        let within = self.domain.as_ref().map_or_else(String::new, |d| format!(" in {d}"));
        let why = if why.is_empty() { String::new() } else { format!(": {}", why.join(", ")) };
        format!("gang {key} needs {} pods, {} fit{within}{why}.", self.needed, self.fit)
    }
}
