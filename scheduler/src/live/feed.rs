//! The engine thread's view of the outside world: [`LiveFeed`] applies the watchers' changes
//! to the engine between binder commits, and turns the engine's outcomes into bindings and
//! reports for the async side.
//!
//! The feed keeps only what the engine cannot answer cheaply: which pods it queued (to spot
//! an update that changes nothing a plugin reads) and which bindings are in flight (so a
//! failed one takes its whole gang back). Pods behind scheduling gates are pending like any
//! other: the engine's PreEnqueue keeps them out, and the update that removes the gates
//! differs from the pod held, so it is taken in again and queued. A pod the API
//! shows bound is accounted on its node whoever bound it; a pod bound by us is confirmed by
//! that same event, never bound twice.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use crossbeam_channel::Receiver;
use tessera_plugins::dra::inventory::NodeDevices;
use tessera_plugins::dra::model::ClaimAllocation;
use tessera_plugins::intern::Sym;
use tessera_plugins::model::{GroupKey, Node, Pod, PodKey};
use tessera_plugins::nodeinfo::NodeInfo;
use tessera_plugins::plugins::volumes::index::Binding as VolumeBinding;
use tessera_plugins::plugins::volumes::model::PvcKey;
use tokio::sync::mpsc::UnboundedSender;

use crate::engine::gang::GangRecord;
use crate::engine::{Core, Feed, Outcome};

use super::claims::same_allocation;
use super::metrics::{AttemptResult, Metrics, PendingQueue};
use super::watch::{Change, Kind, PodUpdate};

/// The most changes applied in one go, so that workers waiting to refresh never wait long.
const MAX_CHANGES_PER_APPLY: usize = 20_000;

/// One pod to bind.
#[derive(Clone, Debug)]
pub struct BindItem {
    /// The pod.
    pub pod: Arc<Pod>,
    /// Its node.
    pub node: Sym,
    /// The GPUs chosen for it (bit set of device indices; 0 when none).
    pub gpus: u64,
    /// The allocations of its DRA claims on the node (PreBind writes them to the claims).
    pub claims: Vec<Arc<ClaimAllocation>>,
    /// The bindings made for its unbound `WaitForFirstConsumer` claims (PreBind writes them
    /// to the volumes and claims, see [`super::volumes`]).
    pub volumes: Vec<(PvcKey, VolumeBinding)>,
}

/// What the engine decided, for the async side to write to the API.
#[derive(Debug)]
pub enum Decision {
    /// Bind these pods: one pod, or the members of one gang placed together.
    Bind(Vec<BindItem>),
    /// A gang's PodGroup status changed.
    Group {
        /// The PodGroup.
        key: GroupKey,
        /// What became of the gang.
        record: GangRecord,
    },
    /// A pending pod was deleted: the reporter forgets it.
    Forget(PodKey),
    /// These pods fit nowhere: tell them why.
    Unschedulable {
        /// The pods.
        pods: Vec<Arc<Pod>>,
        /// The message for their `PodScheduled` condition.
        message: String,
        /// For each pod (in order), the node preemption nominated it to, if it did.
        nominated: Vec<Option<Sym>>,
    },
    /// Evict a pod for a preemptor (see [`super::evict`]).
    Evict {
        /// The victim.
        victim: Arc<Pod>,
        /// Its node.
        node: Sym,
        /// The preemptor.
        by: PodKey,
    },
}

/// Flags the feed reads to know when to stop driving.
#[derive(Clone, Debug, Default)]
pub struct Flags {
    /// The process is shutting down.
    pub shutdown: Arc<AtomicBool>,
    /// This replica holds the leader lease (always true without leader election).
    pub leading: Arc<AtomicBool>,
}

/// See the module docs.
#[derive(Debug)]
pub struct LiveFeed {
    changes: Receiver<Change>,
    decisions: UnboundedSender<Decision>,
    flags: Flags,
    metrics: Arc<Metrics>,
    /// Pods of ours waiting for a node (queued, parked, held back with their gang, or kept
    /// out by PreEnqueue).
    pending: HashMap<PodKey, Arc<Pod>>,
    /// Pods assumed and being bound, with their gang.
    inflight: HashMap<PodKey, Option<GroupKey>>,
    /// Bound pods whose node is not known yet (pods arrive before their node on a list).
    orphans: HashMap<Sym, Vec<Arc<Pod>>>,
    /// Each node's DRA devices, from its ResourceSlices (which may come before the node).
    devices: HashMap<Sym, Arc<NodeDevices>>,
    /// The latest version of pods that changed while their binding was in flight (a claim
    /// they name changed): what they go back to the queue as if the binding fails.
    updated: HashMap<PodKey, Arc<Pod>>,
    synced: HashSet<Kind>,
    clock_epoch: std::time::Instant,
    /// Each gang's status as last handed out for writing, and when gangs were last looked at.
    groups_written: HashMap<String, GangRecord>,
    groups_scanned_at: f64,
}

/// How often gang records are compared with what their PodGroups show, in seconds.
const GROUP_STATUS_PERIOD_S: f64 = 1.0;

impl LiveFeed {
    /// A feed reading `changes` and writing `decisions`.
    pub fn new(
        changes: Receiver<Change>,
        decisions: UnboundedSender<Decision>,
        flags: Flags,
        metrics: Arc<Metrics>,
    ) -> LiveFeed {
        LiveFeed {
            changes,
            decisions,
            flags,
            metrics,
            pending: HashMap::new(),
            inflight: HashMap::new(),
            orphans: HashMap::new(),
            devices: HashMap::new(),
            updated: HashMap::new(),
            synced: HashSet::new(),
            clock_epoch: std::time::Instant::now(),
            groups_written: HashMap::new(),
            groups_scanned_at: f64::NEG_INFINITY,
        }
    }

    /// When the feed started: the live drive's clock counts seconds from here.
    pub fn epoch(&self) -> std::time::Instant {
        self.clock_epoch
    }

    /// Whether the process is shutting down.
    pub fn shutting_down(&self) -> bool {
        self.flags.shutdown.load(Ordering::Acquire)
    }

    /// Whether every kind has been listed once: before that, scheduling would place pods on
    /// nodes whose running pods are not counted yet.
    pub fn synced(&self) -> bool {
        Kind::ALL.iter().all(|k| self.synced.contains(k))
    }

    /// Whether the drive may schedule now.
    pub fn may_schedule(&self) -> bool {
        self.synced() && self.flags.leading.load(Ordering::Acquire) && !self.flags.shutdown.load(Ordering::Acquire)
    }

    /// Pods whose binding is in flight.
    pub fn inflight(&self) -> usize {
        self.inflight.len()
    }

    fn on_change(&mut self, core: &mut Core<'_>, change: Change, now: f64) {
        match change {
            Change::Node(mut node) => {
                let name = node.name;
                node.devices = self.devices.get(&name).cloned().unwrap_or_default();
                core.upsert_node(node, now);
                for pod in self.orphans.remove(&name).unwrap_or_default() {
                    self.place_bound(core, pod, now);
                }
            }
            Change::NodeGone(name) => {
                core.remove_node(Sym::new(&name));
            }
            Change::NodeDevices { node, devices } => {
                if devices.is_empty() && devices.incomplete.is_empty() {
                    self.devices.remove(&node);
                } else {
                    self.devices.insert(node, devices.clone());
                }
                if let Some(info) = core.state().snapshot().node_by_name(node) {
                    let updated = Node { devices, ..Node::clone(&info.node) };
                    core.upsert_node(updated, now);
                }
            }
            Change::ClaimAllocation { key, pin } => core.set_claim_allocation(key, pin, now),
            Change::Pod(update) => self.on_pod(core, *update, now),
            Change::PodGone { namespace, name } => self.forget_pod(core, &PodKey::new(&namespace, &name), now),
            Change::Namespaces(table) => core.set_namespaces(table),
            Change::SelectorSource(change) => core.apply_selector_source(change),
            Change::Budget(budget) => core.upsert_budget(budget),
            Change::BudgetGone { namespace, name } => core.remove_budget(namespace, &name),
            Change::Group(group) => core.upsert_pod_group(group, now),
            Change::GroupGone(key) => core.remove_pod_group(key, now),
            Change::Synced(kind) => {
                self.synced.insert(kind);
                tracing::debug!(kind = kind.name(), "listed");
                if self.synced() {
                    tracing::info!("caches synced: every kind listed");
                }
            }
            Change::BindSucceeded(key) => {
                self.inflight.remove(&key);
            }
            Change::BindFailed { pods, gone } => self.bind_failed(core, &pods, gone, now),
            Change::EvictionFailed(victim) => core.eviction_failed(&victim, now),
            Change::Volume(change) => core.change_volume_objects(|objects| change.apply(objects), now),
        }
    }

    fn on_pod(&mut self, core: &mut Core<'_>, update: PodUpdate, now: f64) {
        let key = update.pod.key();
        if update.finished {
            return self.forget_pod(core, &key, now);
        }
        let pod = Arc::new(update.pod);
        if let Some(node) = pod.node_name {
            return self.on_bound(core, key, pod, node, now);
        }
        if update.terminating || !core.schedules_for(pod.scheduler_name) {
            // Not ours, or leaving before it ran: it holds nothing and waits for nothing.
            return self.forget_pod(core, &key, now);
        }
        if core.state().node_of(&key).is_some() {
            // Assumed by us, binding in flight: the binding's own event will confirm it.
            if self.inflight.contains_key(&key) {
                self.updated.insert(key, pod);
            }
            return;
        }
        match self.pending.get(&key) {
            Some(old) if **old == *pod => return,
            Some(_) => {
                core.delete_pod(&key, now);
            }
            None => {}
        }
        self.pending.insert(key, pod.clone());
        if let Err(e) = core.add_pod(pod, now) {
            tracing::warn!("pod not queued: {e}");
        }
    }

    /// A pod the API shows on `node`: confirms our binding, or accounts someone else's. A pod
    /// accounted there already is accounted again only when its claims now record allocations
    /// the node does not hold (its claims were listed after it, or someone else allocated them).
    fn on_bound(&mut self, core: &mut Core<'_>, key: PodKey, pod: Arc<Pod>, node: Sym, now: f64) {
        self.inflight.remove(&key);
        self.updated.remove(&key);
        if let Some(id) = core.state().node_of(&key)
            && let Some(info) = core.state().snapshot().node(id)
            && info.name() == node
        {
            self.pending.remove(&key);
            if claims_accounted(info, &pod) {
                return;
            }
        }
        if self.pending.remove(&key).is_some() || core.state().node_of(&key).is_some() {
            core.delete_pod(&key, now);
        }
        self.place_bound(core, pod, now);
    }

    fn place_bound(&mut self, core: &mut Core<'_>, pod: Arc<Pod>, now: f64) {
        let Some(node) = pod.node_name else { return };
        if core.state().snapshot().node_by_name(node).is_none() {
            self.orphans.entry(node).or_default().push(pod);
            return;
        }
        if let Err(e) = core.add_pod(pod, now) {
            tracing::warn!("bound pod not accounted: {e}");
        }
    }

    fn forget_pod(&mut self, core: &mut Core<'_>, key: &PodKey, now: f64) {
        if self.pending.remove(key).is_some() {
            let _ = self.decisions.send(Decision::Forget(key.clone()));
        }
        self.inflight.remove(key);
        self.updated.remove(key);
        for pods in self.orphans.values_mut() {
            pods.retain(|p| &p.key() != key);
        }
        core.delete_pod(key, now);
    }

    /// A binding failed: take back the pod and every member of its gang still in flight, and
    /// queue them again; a pod gone from the API is forgotten instead.
    fn bind_failed(&mut self, core: &mut Core<'_>, keys: &[PodKey], gone: bool, now: f64) {
        let gangs: HashSet<GroupKey> = keys.iter().filter_map(|k| self.inflight.get(k).copied().flatten()).collect();
        let mut back: Vec<PodKey> = keys.to_vec();
        back.extend(
            self.inflight.iter().filter(|(_, g)| g.is_some_and(|g| gangs.contains(&g))).map(|(k, _)| k.clone()),
        );
        back.sort_unstable();
        back.dedup();
        for k in &back {
            self.inflight.remove(k);
        }
        if gone {
            for k in keys {
                self.forget_pod(core, k, now);
            }
            back.retain(|k| !keys.contains(k));
        }
        for pod in core.forget_assumed(&back, now) {
            let key = pod.key();
            match self.updated.remove(&key) {
                Some(newer) if *newer != *pod => {
                    core.delete_pod(&key, now);
                    self.pending.insert(key, newer.clone());
                    if let Err(e) = core.add_pod(newer, now) {
                        tracing::warn!("pod not queued: {e}");
                    }
                }
                _ => {
                    self.pending.insert(key, pod);
                }
            }
        }
    }

    fn record_outcome(&mut self, outcome: Outcome, binds: &mut Vec<Vec<BindItem>>) {
        match outcome {
            Outcome::Bound { pod, node, gpus, attempts, queued_at, at, cycle_s, claims, volumes, .. } => {
                let key = pod.key();
                self.pending.remove(&key);
                self.inflight.insert(key, pod.group_key());
                self.metrics.schedule_attempt(pod.scheduler_name.as_str(), AttemptResult::Scheduled, cycle_s);
                self.metrics.sli(attempts, (at - queued_at).max(0.0));
                let item = BindItem { pod, node, gpus, claims, volumes };
                // Members of one gang, committed together, are bound as one job.
                match binds.last_mut() {
                    Some(last)
                        if item.pod.group_key().is_some()
                            && last.first().map(|b| b.pod.group_key()) == Some(item.pod.group_key()) =>
                    {
                        last.push(item)
                    }
                    _ => binds.push(vec![item]),
                }
            }
            Outcome::Unschedulable { pods, message, cycle_s, nominated, .. } => {
                for p in &pods {
                    self.metrics.schedule_attempt(p.scheduler_name.as_str(), AttemptResult::Unschedulable, cycle_s);
                }
                let _ = self.decisions.send(Decision::Unschedulable { pods, message, nominated });
            }
            Outcome::Preempted { pod, node, by, .. } => {
                self.metrics.preemption_victim();
                let _ = self.decisions.send(Decision::Evict { victim: pod, node, by });
            }
        }
    }

    /// Hands out the status of every gang whose record changed since it was last written.
    fn publish_groups(&mut self, core: &Core<'_>, now: f64) {
        if now - self.groups_scanned_at < GROUP_STATUS_PERIOD_S || !self.may_schedule() {
            return;
        }
        self.groups_scanned_at = now;
        let records = core.queue().gangs.records();
        self.groups_written.retain(|k, _| records.contains_key(k));
        for (name, record) in records {
            if self.groups_written.get(&name).is_some_and(|old| same_status(old, &record)) {
                continue;
            }
            if let Some(key) = core.queue().gangs.key_of(&name) {
                let _ = self.decisions.send(Decision::Group { key, record: record.clone() });
            }
            self.groups_written.insert(name, record);
        }
    }

    /// Publishes queue sizes.
    pub fn publish_queue(&self, core: &Core<'_>) {
        let (active, backoff, unschedulable) = core.queue().lens();
        self.metrics.set_pending(PendingQueue::Active, active as i64);
        self.metrics.set_pending(PendingQueue::Backoff, backoff as i64);
        self.metrics.set_pending(PendingQueue::Unschedulable, unschedulable as i64);
        self.metrics.set_pending(PendingQueue::Gated, core.queue().gated_len() as i64);
        self.metrics.set_bind_queue_depth(self.inflight.len() as i64);
    }
}

/// Whether every allocation `pod`'s claims record is held on `node` with those very devices.
fn claims_accounted(node: &NodeInfo, pod: &Pod) -> bool {
    pod.claims.iter().all(|pc| match &pc.allocation {
        None => true,
        Some(a) => node.held_claim(&pc.key).is_some_and(|h| same_allocation(&h.allocation, a)),
    })
}

/// Whether two records show the same PodGroup status (what the status builders read).
fn same_status(a: &GangRecord, b: &GangRecord) -> bool {
    (a.admitted_at.is_some(), &a.last_failure, a.bound, a.members, a.min_count)
        == (b.admitted_at.is_some(), &b.last_failure, b.bound, b.members, b.min_count)
}

impl Feed for LiveFeed {
    fn has_events(&self) -> bool {
        !self.changes.is_empty()
    }

    fn apply(&mut self, core: &mut Core<'_>, now: f64) {
        let changes: Vec<Change> = self.changes.try_iter().take(MAX_CHANGES_PER_APPLY).collect();
        for change in changes {
            self.on_change(core, change, now);
        }
        self.publish_queue(core);
        self.publish_groups(core, now);
    }

    fn outcomes(&mut self, outcomes: Vec<Outcome>) {
        let mut binds = Vec::new();
        for o in outcomes {
            self.record_outcome(o, &mut binds);
        }
        for job in binds {
            let _ = self.decisions.send(Decision::Bind(job));
        }
    }

    fn stop(&self) -> bool {
        !self.may_schedule()
    }
}
