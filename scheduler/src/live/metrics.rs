//! Prometheus metrics of the live scheduler, served on `/metrics`.
//!
//! [`Metrics`] owns one `prometheus-client` [`Registry`] and a handle to every metric in it; callers
//! record with plain Rust arguments (`metrics.schedule_attempt("default-scheduler",
//! AttemptResult::Scheduled, 0.004)`) and never touch `prometheus-client` themselves. The metric
//! handles are lock-free atomics (families take a short read lock per label set), so one
//! `Arc<Metrics>` is shared by the workers, the binder, the watchers and the HTTP server.
//!
//! Names, labels and buckets follow kube-scheduler (`pkg/scheduler/metrics/metrics.go`) wherever
//! the meaning is the same, so existing dashboards and alerts keep working; Tessera's own
//! metrics use the `tessera_` prefix. The text is the Prometheus text format 0.0.4 (what
//! kube-scheduler serves), written by `prometheus-client`'s `prometheus_text` encoder. That encoder
//! appends `_total` to counters, so counters are registered without it.
//!
//! The standard `process_*` metrics of the Go and Python clients are read from `/proc/self` at
//! scrape time by [`ProcessCollector`]; where `/proc` is missing (not Linux) they are simply
//! left out. [`process_cpu_seconds`] and [`parse_sample`] let `tessera loadtest` measure the CPU a
//! scheduler spent, locally or by scraping its `/metrics`.

use std::fmt::Write as _;
use std::path::Path;

use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeLabelSet, EncodeMetric};
use prometheus_client::metrics::counter::{ConstCounter, Counter};
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::{ConstGauge, Gauge};
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;

/// The `Content-Type` of [`Metrics::encode`]'s output (Prometheus text format 0.0.4).
pub const CONTENT_TYPE: &str = prometheus_client::encoding::prometheus_text::CONTENT_TYPE;

/// Outcome of one scheduling attempt: the `result` label of `scheduler_schedule_attempts_total`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum AttemptResult {
    /// A node was chosen and the bind was issued.
    Scheduled,
    /// No node fits the pod; it goes back to the queue to wait for a cluster change.
    Unschedulable,
    /// An internal or API problem stopped the attempt (the pod is retried with backoff).
    Error,
}

impl AttemptResult {
    /// The label value kube-scheduler uses for this outcome.
    pub fn as_str(self) -> &'static str {
        match self {
            AttemptResult::Scheduled => "scheduled",
            AttemptResult::Unschedulable => "unschedulable",
            AttemptResult::Error => "error",
        }
    }
}

/// The sub-queue a pending pod waits in: the `queue` label of `scheduler_pending_pods`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum PendingQueue {
    /// Ready to be tried now.
    Active,
    /// Failed recently and waiting out its backoff.
    Backoff,
    /// Tried and found unschedulable; waits for a cluster event that may help.
    Unschedulable,
    /// Has scheduling gates, so it was never tried.
    Gated,
}

impl PendingQueue {
    /// The label value kube-scheduler uses for this queue.
    pub fn as_str(self) -> &'static str {
        match self {
            PendingQueue::Active => "active",
            PendingQueue::Backoff => "backoff",
            PendingQueue::Unschedulable => "unschedulable",
            PendingQueue::Gated => "gated",
        }
    }
}

/// Outcome of one `pods/binding` request: the `result` label of `tessera_bind_requests_total`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum BindResult {
    /// The API server accepted the binding (201).
    Success,
    /// The pod was already bound, or its node changed under us (409).
    Conflict,
    /// The pod or node disappeared before the bind (404).
    NotFound,
    /// A transient failure (timeout, 429, 5xx) that will be retried.
    Retry,
    /// Any other failure; the pod is handed back to the queue.
    Error,
}

impl BindResult {
    /// The label value of this outcome.
    pub fn as_str(self) -> &'static str {
        match self {
            BindResult::Success => "success",
            BindResult::Conflict => "conflict",
            BindResult::NotFound => "not_found",
            BindResult::Retry => "retry",
            BindResult::Error => "error",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
struct AttemptLabels {
    result: &'static str,
    profile: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
struct QueueLabels {
    queue: &'static str,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
struct IncomingLabels {
    queue: &'static str,
    event: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
struct AttemptsLabels {
    attempts: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
struct ResultLabels {
    result: &'static str,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
struct KindLabels {
    kind: String,
}

/// Builds a histogram; a plain `fn` so that histogram families have a nameable type.
type HistogramCtor = fn() -> Histogram;

/// kube-scheduler's attempt buckets: 1 ms doubling up to ~16 s.
fn attempt_histogram() -> Histogram {
    Histogram::new(exponential_buckets(0.001, 2.0, 15))
}

/// kube-scheduler's end-to-end (SLI) buckets: 10 ms doubling up to ~88 min.
fn sli_histogram() -> Histogram {
    Histogram::new(exponential_buckets(0.01, 2.0, 20))
}

/// Every metric the live scheduler exports, plus the registry that encodes them.
///
/// Create one with [`Metrics::new`], share it as `Arc<Metrics>`, and serve [`Metrics::encode`].
#[derive(Debug)]
pub struct Metrics {
    registry: Registry,
    schedule_attempts: Family<AttemptLabels, Counter>,
    attempt_duration: Family<AttemptLabels, Histogram, HistogramCtor>,
    pending_pods: Family<QueueLabels, Gauge>,
    sli_duration: Family<AttemptsLabels, Histogram, HistogramCtor>,
    queue_incoming: Family<IncomingLabels, Counter>,
    binder_conflicts: Counter,
    preemption_victims: Counter,
    proposals: Counter,
    snapshot_refreshes: Counter,
    bind_queue_depth: Gauge,
    bind_requests: Family<ResultLabels, Counter>,
    bind_duration: Histogram,
    watch_events: Family<KindLabels, Counter>,
    malformed_objects: Family<KindLabels, Counter>,
    watch_restarts: Family<KindLabels, Counter>,
    leader: Gauge,
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

impl Metrics {
    /// Registers every metric and the `/proc`-based process collector.
    ///
    /// Series with a fixed label set (pending queues, bind results) start at 0 so rates work from
    /// the first scrape; per-profile series appear with [`Metrics::register_profile`] or the first
    /// attempt, per-kind series with the first event (as in the Go client, an empty family is not
    /// encoded at all).
    pub fn new() -> Self {
        let m = Metrics {
            registry: Registry::default(),
            schedule_attempts: Family::default(),
            attempt_duration: Family::new_with_constructor(attempt_histogram as HistogramCtor),
            pending_pods: Family::default(),
            sli_duration: Family::new_with_constructor(sli_histogram as HistogramCtor),
            queue_incoming: Family::default(),
            binder_conflicts: Counter::default(),
            preemption_victims: Counter::default(),
            proposals: Counter::default(),
            snapshot_refreshes: Counter::default(),
            bind_queue_depth: Gauge::default(),
            bind_requests: Family::default(),
            bind_duration: attempt_histogram(),
            watch_events: Family::default(),
            malformed_objects: Family::default(),
            watch_restarts: Family::default(),
            leader: Gauge::default(),
        };
        for queue in [PendingQueue::Active, PendingQueue::Backoff, PendingQueue::Unschedulable, PendingQueue::Gated] {
            m.set_pending(queue, 0);
        }
        for result in
            [BindResult::Success, BindResult::Conflict, BindResult::NotFound, BindResult::Retry, BindResult::Error]
        {
            let _ = m.bind_requests.get_or_create(&ResultLabels { result: result.as_str() });
        }
        m.with_registrations()
    }

    /// Creates the zero-valued attempt series of `profile`, so dashboards see it before its first pod.
    pub fn register_profile(&self, profile: &str) {
        for result in [AttemptResult::Scheduled, AttemptResult::Unschedulable, AttemptResult::Error] {
            let labels = AttemptLabels { result: result.as_str(), profile: profile.to_owned() };
            let _ = self.schedule_attempts.get_or_create(&labels);
            let _ = self.attempt_duration.get_or_create(&labels);
        }
    }

    fn with_registrations(mut self) -> Self {
        // Names are registered without `_total`: the encoder appends it to counters.
        let r = &mut self.registry;
        r.register(
            "scheduler_schedule_attempts",
            "Number of attempts to schedule pods, by the result. 'unschedulable' means a pod could not be \
             scheduled, while 'error' means an internal scheduler problem",
            self.schedule_attempts.clone(),
        );
        r.register(
            "scheduler_scheduling_attempt_duration_seconds",
            "Scheduling attempt latency in seconds (scheduling algorithm + binding)",
            self.attempt_duration.clone(),
        );
        r.register(
            "scheduler_pending_pods",
            "Number of pending pods, by the queue type. 'active' means number of pods in activeQ; 'backoff' \
             means number of pods in backoffQ; 'unschedulable' means number of pods the scheduler attempted \
             to schedule and failed; 'gated' is the number of pods the scheduler never attempted to schedule \
             because they are gated",
            self.pending_pods.clone(),
        );
        r.register(
            "scheduler_pod_scheduling_sli_duration_seconds",
            "E2e latency for a pod being scheduled, from the time the pod enters the scheduling queue, by the \
             number of attempts it took",
            self.sli_duration.clone(),
        );
        r.register(
            "scheduler_queue_incoming_pods",
            "Number of pods added to scheduling queues by event and queue type",
            self.queue_incoming.clone(),
        );
        r.register(
            "tessera_binder_conflicts",
            "Proposals the binder rejected because a node changed since the worker's snapshot",
            self.binder_conflicts.clone(),
        );
        r.register(
            "tessera_preemption_victims",
            "Pods preemption evicted to make room for pods of higher priority",
            self.preemption_victims.clone(),
        );
        r.register("tessera_proposals", "Placements proposed by workers to the binder", self.proposals.clone());
        r.register(
            "tessera_snapshot_refreshes",
            "Incremental refreshes of worker snapshots from the live cluster state",
            self.snapshot_refreshes.clone(),
        );
        r.register(
            "tessera_bind_queue_depth",
            "Bindings accepted by the binder and not yet confirmed by the API server",
            self.bind_queue_depth.clone(),
        );
        r.register(
            "tessera_bind_requests",
            "pods/binding requests sent to the API server, by outcome",
            self.bind_requests.clone(),
        );
        r.register(
            "tessera_bind_duration_seconds",
            "Latency of one pods/binding request in seconds",
            self.bind_duration.clone(),
        );
        r.register(
            "tessera_watch_events",
            "Watch events received from the API server, by object kind",
            self.watch_events.clone(),
        );
        r.register(
            "tessera_malformed_objects",
            "Objects skipped because a field could not be parsed, by object kind",
            self.malformed_objects.clone(),
        );
        r.register(
            "tessera_watch_restarts",
            "Watches re-listed after an error or an expired resourceVersion, by object kind",
            self.watch_restarts.clone(),
        );
        r.register("tessera_leader", "1 while this replica holds the leader lease and binds pods", self.leader.clone());
        r.register_collector(Box::new(ProcessCollector));
        self
    }

    /// Records one scheduling attempt of `profile` that took `seconds` (algorithm + bind issue).
    pub fn schedule_attempt(&self, profile: &str, result: AttemptResult, seconds: f64) {
        let labels = AttemptLabels { result: result.as_str(), profile: profile.to_owned() };
        self.schedule_attempts.get_or_create(&labels).inc();
        self.attempt_duration.get_or_create(&labels).observe(seconds);
    }

    /// Sets how many pods currently wait in `queue`.
    pub fn set_pending(&self, queue: PendingQueue, n: i64) {
        self.pending_pods.get_or_create(&QueueLabels { queue: queue.as_str() }).set(n);
    }

    /// Records a pod's end-to-end latency from entering the queue to being scheduled.
    ///
    /// `attempts` is how many attempts it took; like kube-scheduler, 15 and above share the label
    /// value "15+" so the series count stays bounded.
    pub fn sli(&self, attempts: u32, seconds: f64) {
        let attempts = if attempts >= 15 { "15+".to_owned() } else { attempts.to_string() };
        self.sli_duration.get_or_create(&AttemptsLabels { attempts }).observe(seconds);
    }

    /// Counts a pod added to `queue` because of `event` (e.g. "PodAdd", "NodeUpdate").
    pub fn queue_incoming(&self, queue: PendingQueue, event: &str) {
        let labels = IncomingLabels { queue: queue.as_str(), event: event.to_owned() };
        self.queue_incoming.get_or_create(&labels).inc();
    }

    /// Records one `pods/binding` request and its latency.
    pub fn bind_request(&self, result: BindResult, seconds: f64) {
        self.bind_requests.get_or_create(&ResultLabels { result: result.as_str() }).inc();
        self.bind_duration.observe(seconds);
    }

    /// Counts a pod evicted by preemption.
    pub fn preemption_victim(&self) {
        self.preemption_victims.inc();
    }

    /// Adds `n` proposals the binder rejected for being stale.
    pub fn binder_conflicts_inc(&self, n: u64) {
        self.binder_conflicts.inc_by(n);
    }

    /// Adds `n` proposals made by workers.
    pub fn proposals_inc(&self, n: u64) {
        self.proposals.inc_by(n);
    }

    /// Adds `n` worker snapshot refreshes.
    pub fn snapshot_refreshes_inc(&self, n: u64) {
        self.snapshot_refreshes.inc_by(n);
    }

    /// Sets the number of bindings in flight.
    pub fn set_bind_queue_depth(&self, n: i64) {
        self.bind_queue_depth.set(n);
    }

    /// Counts one watch event for objects of `kind` (e.g. "Pod", "Node").
    pub fn watch_event(&self, kind: &str) {
        self.watch_events.get_or_create(&KindLabels { kind: kind.to_owned() }).inc();
    }

    /// Counts one object of `kind` that was skipped as malformed.
    pub fn malformed_object(&self, kind: &str) {
        self.malformed_objects.get_or_create(&KindLabels { kind: kind.to_owned() }).inc();
    }

    /// Counts one restart of the watch on `kind`.
    pub fn watch_restart(&self, kind: &str) {
        self.watch_restarts.get_or_create(&KindLabels { kind: kind.to_owned() }).inc();
    }

    /// Sets `tessera_leader` to 1 while leading, 0 on standby.
    pub fn set_leader(&self, leading: bool) {
        self.leader.set(i64::from(leading));
    }

    /// The whole registry in Prometheus text format 0.0.4 (see [`CONTENT_TYPE`]).
    pub fn encode(&self) -> String {
        let mut out = String::with_capacity(16 * 1024);
        if let Err(err) = prometheus_client::encoding::prometheus_text::encode(&mut out, &self.registry) {
            // Only a failing `fmt::Write` can get here and a `String` never fails; say so rather than panic.
            let _ = writeln!(out, "# encoding metrics failed: {err}");
        }
        out
    }
}

/// Finds the value of the unlabelled sample `name` in Prometheus text, e.g. `process_cpu_seconds_total`.
///
/// Comment lines and labelled samples (`name{...}`) are skipped (an empty label set, `name{}`,
/// counts as unlabelled); a trailing timestamp is ignored.
pub fn parse_sample(text: &str, name: &str) -> Option<f64> {
    text.lines().filter(|line| !line.starts_with('#')).find_map(|line| {
        let rest = line.strip_prefix(name)?;
        let rest = rest.strip_prefix("{}").unwrap_or(rest);
        // `rest` must start with whitespace, otherwise `name` was only a prefix of a longer name.
        if !rest.starts_with([' ', '\t']) {
            return None;
        }
        rest.split_whitespace().next()?.parse().ok()
    })
}

/// CPU time (user + system) this process has used so far, in seconds; `None` without `/proc`.
pub fn process_cpu_seconds() -> Option<f64> {
    ProcStat::read().map(|stat| stat.cpu_seconds())
}

/// Clock ticks per second in `/proc/<pid>/stat`: the kernel's `USER_HZ`, 100 on every platform
/// Kubernetes runs on (the Go client assumes the same; reading it needs `sysconf`, i.e. unsafe FFI).
const USER_HZ: f64 = 100.0;

/// The fields of `/proc/self/stat` the process metrics need.
#[derive(Debug, Clone, Copy, PartialEq)]
struct ProcStat {
    utime_ticks: u64,
    stime_ticks: u64,
    start_ticks_since_boot: u64,
}

impl ProcStat {
    fn read() -> Option<ProcStat> {
        Self::parse(&std::fs::read_to_string("/proc/self/stat").ok()?)
    }

    /// Parses a `stat` line; the command name may contain spaces and parentheses, so fields are
    /// counted from the last `)`.
    fn parse(stat: &str) -> Option<ProcStat> {
        let after_comm = &stat[stat.rfind(')')? + 1..];
        // After the name come fields 3.. (state is field 3); utime is 14, stime 15, starttime 22.
        let fields: Vec<&str> = after_comm.split_whitespace().collect();
        let field = |n: usize| fields.get(n - 3)?.parse::<u64>().ok();
        Some(ProcStat { utime_ticks: field(14)?, stime_ticks: field(15)?, start_ticks_since_boot: field(22)? })
    }

    fn cpu_seconds(&self) -> f64 {
        (self.utime_ticks + self.stime_ticks) as f64 / USER_HZ
    }
}

/// Reads `name:   <n> kB` from `/proc/self/status` text, in bytes.
fn status_kb_as_bytes(status: &str, name: &str) -> Option<f64> {
    let line = status.lines().find(|l| l.starts_with(name) && l[name.len()..].starts_with(':'))?;
    let kb: f64 = line[name.len() + 1..].split_whitespace().next()?.parse().ok()?;
    Some(kb * 1024.0)
}

/// Boot time in Unix seconds (`btime` in `/proc/stat`).
fn boot_time_seconds(proc_stat: &str) -> Option<f64> {
    proc_stat.lines().find_map(|l| l.strip_prefix("btime ")).and_then(|v| v.trim().parse().ok())
}

/// The soft `Max open files` limit from `/proc/self/limits` text; "unlimited" has no number.
fn max_open_files(limits: &str) -> Option<f64> {
    let line = limits.lines().find(|l| l.starts_with("Max open files"))?;
    line["Max open files".len()..].split_whitespace().next()?.parse().ok()
}

fn count_entries(dir: &Path) -> Option<f64> {
    Some(std::fs::read_dir(dir).ok()?.count() as f64)
}

/// Encodes the standard `process_*` metrics, read from `/proc/self` on each scrape.
///
/// Every metric whose source is missing or unparsable is left out rather than reported as 0.
#[derive(Debug, Clone, Copy, Default)]
pub struct ProcessCollector;

impl ProcessCollector {
    fn gauge(encoder: &mut DescriptorEncoder, name: &str, help: &str, value: Option<f64>) -> std::fmt::Result {
        let Some(value) = value else { return Ok(()) };
        let gauge = ConstGauge::new(value);
        gauge.encode(encoder.encode_descriptor(name, help, None, gauge.metric_type())?)
    }
}

impl Collector for ProcessCollector {
    fn encode(&self, mut encoder: DescriptorEncoder) -> std::fmt::Result {
        let stat = ProcStat::read();
        if let Some(stat) = stat {
            let counter = ConstCounter::new(stat.cpu_seconds());
            let metric = encoder.encode_descriptor(
                "process_cpu_seconds",
                "Total user and system CPU time spent in seconds.",
                None,
                counter.metric_type(),
            )?;
            counter.encode(metric)?;
        }
        let status = std::fs::read_to_string("/proc/self/status").ok();
        let status = status.as_deref();
        let rss = status.and_then(|s| status_kb_as_bytes(s, "VmRSS"));
        Self::gauge(&mut encoder, "process_resident_memory_bytes", "Resident memory size in bytes.", rss)?;
        let vsize = status.and_then(|s| status_kb_as_bytes(s, "VmSize"));
        Self::gauge(&mut encoder, "process_virtual_memory_bytes", "Virtual memory size in bytes.", vsize)?;
        let boot = std::fs::read_to_string("/proc/stat").ok().and_then(|s| boot_time_seconds(&s));
        let start = stat.zip(boot).map(|(st, boot)| boot + st.start_ticks_since_boot as f64 / USER_HZ);
        Self::gauge(
            &mut encoder,
            "process_start_time_seconds",
            "Start time of the process since unix epoch in seconds.",
            start,
        )?;
        let open = count_entries(Path::new("/proc/self/fd"));
        Self::gauge(&mut encoder, "process_open_fds", "Number of open file descriptors.", open)?;
        let max = std::fs::read_to_string("/proc/self/limits").ok().and_then(|s| max_open_files(&s));
        Self::gauge(&mut encoder, "process_max_fds", "Maximum number of open file descriptors.", max)
    }
}

#[cfg(test)]
#[path = "metrics_tests.rs"]
mod tests;
