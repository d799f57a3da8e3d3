//! The live scheduler behind `tessera run`: the same engine, plugins and configuration as the
//! simulator, fed by kube-rs watchers and binding through the API server.
//!
//! Start at [`run`], which wires the pieces, each a module of one concept:
//! - [`watch`]: one watcher per kind, converting objects to the compact model in its own task;
//! - [`feed`]: the engine thread's side, applying changes between binder commits
//!   ([`crate::engine::drive`]'s continuous drive) and turning outcomes into decisions;
//! - [`dra`]: DRA objects as the watches keep them (slices into node devices, claims and
//!   templates into the catalog pods resolve against, pods resolved again when they change);
//! - [`bind`]: the bind executor (GPU annotation, DRA claims' allocations ([`claims`]),
//!   `pods/binding`, retries, rate limit);
//! - [`report`]: `PodScheduled` conditions and Events;
//! - [`leader`]: leader election on a Lease; a standby keeps its caches warm;
//! - [`serve`] and [`metrics`]: `/healthz`, `/livez`, `/readyz`, `/metrics` on the secure port.
//!
//! The engine thread is a plain OS thread (its workers are too); everything that waits on the
//! network is a tokio task. They meet at two channels: changes in (crossbeam, drained without
//! blocking by the binder thread) and decisions out (tokio, awaited by the executor).

pub mod bind;
pub mod claims;
pub mod dra;
pub mod evict;
pub mod feed;
pub mod leader;
mod lenient;
pub mod metrics;
pub mod ratelimit;
pub mod report;
pub mod serve;
pub mod volumes;
pub mod watch;

#[cfg(test)]
mod feed_tests;
#[cfg(test)]
mod lenient_tests;

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use parking_lot::RwLock;
use thiserror::Error;
use tokio::sync::{Semaphore, mpsc, watch as tokio_watch};

use crate::config::SchedulerConfig;
use crate::engine::queue::BackoffPolicy;
use crate::engine::{Engine, EngineOptions, Eviction, Feed};
use crate::ingest::PodContext;
use crate::ingest::dra::DraCatalog;

use self::bind::BindContext;
use self::feed::{Decision, Flags, LiveFeed};
use self::leader::{LeaderElectionConfig, LeaderElector};
use self::metrics::Metrics;
use self::ratelimit::RateLimiter;
use self::report::{REPORT_QUEUE, Report, Reporter};
use self::serve::{Health, ServeOptions};
use self::watch::WatchContext;

/// Why the live scheduler could not start.
#[derive(Debug, Error)]
pub enum LiveError {
    /// The secure port could not be served.
    #[error(transparent)]
    Serve(#[from] serve::ServeError),
    /// The leader election settings are inconsistent.
    #[error(transparent)]
    LeaderElection(#[from] leader::LeaderElectionError),
    /// The engine thread could not be started or died.
    #[error("engine thread: {0}")]
    Engine(String),
    /// A profile's pods would never be bound.
    #[error(transparent)]
    NoBinder(#[from] bind::NoBinder),
}

/// How `tessera run` runs.
pub struct RunOptions {
    /// The configuration (profiles, backoff, gangs, `leaderElection`, `clientConnection`).
    pub config: SchedulerConfig,
    /// The API client.
    pub client: kube::Client,
    /// `--leader-elect`, overriding `leaderElection.leaderElect` when given.
    pub leader_elect: Option<bool>,
    /// Where to serve probes and metrics; `None` serves nothing (tests).
    pub serve: Option<ServeOptions>,
    /// Scheduling workers; 0 takes `parallelism` capped at the cores there are.
    pub workers: usize,
    /// Bindings in flight at most.
    pub bind_concurrency: usize,
}

impl std::fmt::Debug for RunOptions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RunOptions")
            .field("leader_elect", &self.leader_elect)
            .field("serve", &self.serve)
            .field("workers", &self.workers)
            .finish_non_exhaustive()
    }
}

/// Handles of a running scheduler, for whoever started it.
#[derive(Debug, Clone)]
pub struct Handles {
    /// The metrics registry.
    pub metrics: Arc<Metrics>,
    /// Readiness and leadership.
    pub health: Arc<Health>,
}

/// Runs the scheduler until `shutdown` completes; `started` receives its handles once the
/// pieces are up (the secure port bound, the watches started).
pub async fn run(
    opts: RunOptions,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
    started: Option<tokio::sync::oneshot::Sender<Handles>>,
) -> Result<(), LiveError> {
    bind::check_profiles(&opts.config.profiles)?;
    let _ = rustls::crypto::ring::default_provider().install_default();
    let metrics = Arc::new(Metrics::new());
    let health = Arc::new(Health::new());
    let flags = Flags::default();
    let (stop_tx, stop_rx) = tokio_watch::channel(false);
    let stopped = {
        let mut rx = stop_rx.clone();
        async move {
            let _ = rx.wait_for(|s| *s).await;
        }
    };
    let server = match &opts.serve {
        Some(s) => Some(serve::serve(s.clone(), metrics.clone(), health.clone(), stopped).await?),
        None => None,
    };
    let le = &opts.config.leader_election;
    let elect = opts.leader_elect.unwrap_or(le.leader_elect);
    health.set_leader_election_enabled(elect);
    let elector = if elect {
        let mut cfg = LeaderElectionConfig::new(&le.resource_namespace, &le.resource_name);
        cfg.lease_duration = le.lease_duration;
        cfg.renew_deadline = le.renew_deadline;
        cfg.retry_period = le.retry_period;
        Some(LeaderElector::new(cfg)?)
    } else {
        flags.leading.store(true, Ordering::Release);
        health.set_leader(true);
        metrics.set_leader(true);
        None
    };
    let identity = elector.as_ref().map_or_else(leader::default_identity, |e| e.identity().to_string());

    let (changes_tx, changes_rx) = crossbeam_channel::unbounded();
    let (decisions_tx, decisions_rx) = mpsc::unbounded_channel();
    let cc = &opts.config.client_connection;
    let mut pod_context = PodContext::new();
    *pod_context.dra_mut() = DraCatalog::live();
    let (reports_tx, reports_rx) = mpsc::channel(REPORT_QUEUE);
    let watch_cx = WatchContext {
        changes: changes_tx.clone(),
        pods: Arc::new(RwLock::new(pod_context)),
        dra: Arc::default(),
        metrics: metrics.clone(),
        reports: reports_tx.clone(),
    };
    let watchers = watch::spawn_all(&opts.client, &watch_cx);
    let reporter = Reporter::new(opts.client.clone(), cc.qps, cc.burst, identity);
    let reporter_task = tokio::spawn(reporter.run(reports_rx));
    let bind_cx = BindContext {
        client: opts.client.clone(),
        limiter: Arc::new(RateLimiter::new(cc.qps, cc.burst)),
        concurrency: Arc::new(Semaphore::new(opts.bind_concurrency.max(1))),
        changes: changes_tx,
        leading: flags.leading.clone(),
        metrics: metrics.clone(),
        reports: reports_tx.clone(),
        dra: watch_cx.dra.clone(),
    };
    let executor = tokio::spawn(execute(decisions_rx, bind_cx, reports_tx));
    let leader_task = elector.map(|e| {
        let (tx, rx) = tokio_watch::channel(false);
        tokio::spawn(mirror_leadership(rx, flags.clone(), health.clone(), metrics.clone()));
        let client = opts.client.clone();
        let mut stop = stop_rx.clone();
        tokio::spawn(async move {
            e.run(client, tx, async move {
                let _ = stop.wait_for(|s| *s).await;
            })
            .await
        })
    });

    let engine = engine_for(&opts.config, opts.workers);
    let feed = LiveFeed::new(changes_rx, decisions_tx, flags.clone(), metrics.clone());
    let engine_thread = {
        let health = health.clone();
        std::thread::Builder::new()
            .name("tessera-engine".into())
            .spawn(move || drive(engine, feed, &health))
            .map_err(|e| LiveError::Engine(e.to_string()))?
    };
    if let Some(tx) = started {
        let _ = tx.send(Handles { metrics: metrics.clone(), health: health.clone() });
    }

    shutdown.await;
    tracing::info!("shutting down");
    flags.shutdown.store(true, Ordering::Release);
    let _ = stop_tx.send(true);
    let joined = tokio::task::spawn_blocking(move || engine_thread.join()).await;
    if let Some(t) = leader_task {
        // Gives the elector its chance to release the lease, bounded.
        let _ = tokio::time::timeout(Duration::from_secs(5), t).await;
    }
    for w in watchers {
        w.abort();
    }
    executor.abort();
    reporter_task.abort();
    if let Some(s) = server {
        let _ = s.wait().await;
    }
    match joined {
        Ok(Ok(())) => Ok(()),
        _ => Err(LiveError::Engine("the engine thread panicked".into())),
    }
}

/// The engine `config` asks for, with `workers` scheduling threads (0: `parallelism` capped at
/// the cores there are).
fn engine_for(config: &SchedulerConfig, workers: usize) -> Engine {
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    let workers = if workers == 0 { (config.parallelism as usize).min(cores) } else { workers };
    let seed = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_nanos() as u64);
    let opts = EngineOptions {
        workers: workers.max(1),
        seed,
        parallel_filter: false,
        backoff: BackoffPolicy {
            initial_s: config.pod_initial_backoff.as_secs_f64(),
            max_s: config.pod_max_backoff.as_secs_f64(),
        },
        gang: config.gang.clone(),
        eviction: Eviction::ByApi,
    };
    Engine::new(config.profiles.clone(), opts)
}

/// The engine thread: keeps the caches current always, and schedules while this replica may
/// (caches synced, lease held).
fn drive(mut engine: Engine, mut feed: LiveFeed, health: &Health) {
    let epoch = feed.epoch();
    let clock = move || epoch.elapsed().as_secs_f64();
    while !feed.shutting_down() {
        if feed.may_schedule() {
            health.set_synced(true);
            tracing::info!("scheduling");
            engine.run_continuous(&clock, &mut feed);
            continue;
        }
        let now = clock();
        feed.apply(&mut engine.core(), now);
        health.set_synced(feed.synced());
        if !feed.has_events() {
            std::thread::sleep(Duration::from_millis(5));
        }
    }
}

/// Hands each decision to the executor (bindings) or the reporter (why a pod is pending).
async fn execute(mut decisions: mpsc::UnboundedReceiver<Decision>, cx: BindContext, reports: mpsc::Sender<Report>) {
    while let Some(d) = decisions.recv().await {
        match d {
            Decision::Bind(job) => {
                tokio::spawn(bind::bind_job(cx.clone(), job));
            }
            Decision::Group { key, record } => {
                let _ = reports.try_send(Report::Group { key, record });
            }
            Decision::Forget(key) => {
                let _ = reports.try_send(Report::Forget(key));
            }
            Decision::Unschedulable { pods, message, nominated } => {
                let nominated = nominated.into_iter().map(|n| n.map(|n| n.as_str().to_string())).collect();
                if reports.try_send(Report::Unschedulable { pods, message, nominated }).is_err() {
                    tracing::debug!("report queue full; a FailedScheduling report was dropped");
                }
            }
            Decision::Evict { victim, node, by } => {
                tokio::spawn(evict::evict(cx.clone(), victim, node, by));
            }
        }
    }
}

/// Mirrors the elector's verdict into the flags the engine thread and the executor read.
async fn mirror_leadership(
    mut rx: tokio_watch::Receiver<bool>,
    flags: Flags,
    health: Arc<Health>,
    metrics: Arc<Metrics>,
) {
    loop {
        let leading = *rx.borrow_and_update();
        flags.leading.store(leading, Ordering::Release);
        health.set_leader(leading);
        metrics.set_leader(leading);
        if rx.changed().await.is_err() {
            flags.leading.store(false, Ordering::Release);
            return;
        }
    }
}
