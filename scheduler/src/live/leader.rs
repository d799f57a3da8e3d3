//! Leader election on a `coordination.k8s.io/v1` Lease, with client-go's semantics.
//!
//! Several `tessera run` replicas may run for availability; only the one holding the Lease binds
//! pods. Every replica runs a [`LeaderElector`], which reports through a
//! `tokio::sync::watch::Sender<bool>` whether it leads right now. The protocol is client-go's
//! `leaderelection` package (what kube-scheduler uses):
//!
//! - Every `retry_period` (plus up to 120 % jitter while standing by) the elector GETs the Lease,
//!   creates it if missing, and otherwise calls [`decide`]: renew it when we hold it, take it over
//!   when it is free or expired, or wait.
//! - Expiry is measured on the LOCAL monotonic clock from the moment this elector last OBSERVED the
//!   lease record change (client-go's `observedTime`), never from the holder's `renewTime`, so
//!   clock skew between machines does not matter. A holder that keeps renewing keeps changing the
//!   record, so standbys keep waiting.
//! - Writes are PUTs carrying the `resourceVersion` that was read, so when two replicas race for
//!   an expired lease the API server accepts exactly one and answers 409 to the other.
//! - While leading, the lease is renewed every `retry_period`. If no renewal succeeds for
//!   `renew_deadline`, the elector sends `false` at once so the caller stops binding, before the
//!   others can consider the lease expired (`renew_deadline < lease_duration`). kube-scheduler
//!   exits at that point; Tessera instead keeps its warm caches and goes back to standby, trying
//!   to acquire again like any other replica. Seeing another holder in the lease also ends
//!   leadership immediately.
//! - On shutdown while leading, the elector first sends `false`, then releases the lease (empty
//!   holder, 1 s duration, as client-go's `ReleaseOnCancel`) so a standby takes over at once.
//!
//! The Lease API is reached through the small [`LeaseStore`] trait: [`ApiLeaseStore`] for a real
//! API server, and an in-memory store in the tests that exercise the whole loop.

use std::future::Future;
use std::hash::{BuildHasher, Hasher};
use std::io::Read;
use std::time::Duration;

use k8s_openapi::api::coordination::v1::{Lease, LeaseSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{MicroTime, ObjectMeta};
use kube::Api;
use kube::api::PostParams;
use tokio::sync::watch;
use tokio::time::Instant;

/// kube-scheduler's `--leader-elect-lease-duration`.
pub const DEFAULT_LEASE_DURATION: Duration = Duration::from_secs(15);
/// kube-scheduler's `--leader-elect-renew-deadline`.
pub const DEFAULT_RENEW_DEADLINE: Duration = Duration::from_secs(10);
/// kube-scheduler's `--leader-elect-retry-period`.
pub const DEFAULT_RETRY_PERIOD: Duration = Duration::from_secs(2);
/// Where Tessera's lease lives unless `leaderElection.resourceNamespace` says otherwise.
pub const DEFAULT_LEASE_NAMESPACE: &str = "kube-system";
/// Tessera's lease name unless `leaderElection.resourceName` says otherwise (upstream: `kube-scheduler`).
pub const DEFAULT_LEASE_NAME: &str = "tessera";
/// client-go's `JitterFactor`: standby retries wait `retry_period * (1 + up to 1.2)`.
const JITTER_FACTOR: f64 = 1.2;

/// Timing and identity of one elector.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LeaderElectionConfig {
    /// How long standbys wait, from when they last saw the lease change, before taking it over.
    pub lease_duration: Duration,
    /// How long the leader keeps trying to renew before it stops leading.
    pub renew_deadline: Duration,
    /// Pause between attempts to acquire or renew.
    pub retry_period: Duration,
    /// Namespace of the Lease object.
    pub namespace: String,
    /// Name of the Lease object.
    pub name: String,
    /// This replica's holder identity; unique per process (see [`default_identity`]).
    pub identity: String,
}

impl Default for LeaderElectionConfig {
    fn default() -> Self {
        Self::new(DEFAULT_LEASE_NAMESPACE, DEFAULT_LEASE_NAME)
    }
}

impl LeaderElectionConfig {
    /// kube-scheduler's timings for the lease `namespace/name`, with a fresh [`default_identity`].
    pub fn new(namespace: impl Into<String>, name: impl Into<String>) -> Self {
        LeaderElectionConfig {
            lease_duration: DEFAULT_LEASE_DURATION,
            renew_deadline: DEFAULT_RENEW_DEADLINE,
            retry_period: DEFAULT_RETRY_PERIOD,
            namespace: namespace.into(),
            name: name.into(),
            identity: default_identity(),
        }
    }

    /// Checks client-go's constraints, which keep two replicas from leading at once.
    pub fn validate(&self) -> Result<(), LeaderElectionError> {
        for (field, value) in
            [("resourceNamespace", &self.namespace), ("resourceName", &self.name), ("identity", &self.identity)]
        {
            if value.is_empty() {
                return Err(LeaderElectionError::Empty { field });
            }
        }
        if self.lease_duration < Duration::from_secs(1) || lease_seconds(self.lease_duration).is_none() {
            return Err(LeaderElectionError::LeaseDurationOutOfRange { lease_duration: self.lease_duration });
        }
        if self.lease_duration <= self.renew_deadline {
            return Err(LeaderElectionError::LeaseNotLongerThanRenewDeadline {
                lease_duration: self.lease_duration,
                renew_deadline: self.renew_deadline,
            });
        }
        if self.retry_period.is_zero()
            || self.renew_deadline.as_secs_f64() <= JITTER_FACTOR * self.retry_period.as_secs_f64()
        {
            return Err(LeaderElectionError::RenewDeadlineTooShort {
                renew_deadline: self.renew_deadline,
                retry_period: self.retry_period,
            });
        }
        Ok(())
    }
}

/// A configuration that could let two replicas lead at once, or could not name a lease.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum LeaderElectionError {
    /// The lease namespace, lease name or identity is empty.
    #[error("leaderElection.{field} must not be empty")]
    Empty {
        /// The empty setting.
        field: &'static str,
    },
    /// The lease duration is under 1 s or over `i32::MAX` seconds (the Lease stores whole seconds).
    #[error("leaderElection.leaseDuration {lease_duration:?} must be between 1s and 2^31-1 s")]
    LeaseDurationOutOfRange {
        /// The configured value.
        lease_duration: Duration,
    },
    /// The leader could still believe it leads after a standby took the lease over.
    #[error(
        "leaderElection.leaseDuration ({lease_duration:?}) must be greater than leaderElection.renewDeadline \
         ({renew_deadline:?})"
    )]
    LeaseNotLongerThanRenewDeadline {
        /// The configured lease duration.
        lease_duration: Duration,
        /// The configured renew deadline.
        renew_deadline: Duration,
    },
    /// The leader would give up before it had a chance to retry a failed renewal.
    #[error(
        "leaderElection.renewDeadline ({renew_deadline:?}) must be greater than 1.2 x leaderElection.retryPeriod \
         ({retry_period:?}), and retryPeriod must not be 0"
    )]
    RenewDeadlineTooShort {
        /// The configured renew deadline.
        renew_deadline: Duration,
        /// The configured retry period.
        retry_period: Duration,
    },
}

/// `lease_duration` as the Lease's whole seconds, rounded up so others never wait less than us.
fn lease_seconds(lease_duration: Duration) -> Option<i32> {
    let secs = lease_duration.as_secs() + u64::from(lease_duration.subsec_nanos() > 0);
    i32::try_from(secs).ok()
}

/// `hostname_<random uuid-like hex>`, as kube-scheduler's `id := hostname + "_" + uuid`.
pub fn default_identity() -> String {
    let host = hostname().unwrap_or_else(|| "tessera".to_owned());
    let b = random_bytes();
    let hex = |range: std::ops::Range<usize>| b[range].iter().map(|x| format!("{x:02x}")).collect::<String>();
    format!("{host}_{}-{}-{}-{}-{}", hex(0..4), hex(4..6), hex(6..8), hex(8..10), hex(10..16))
}

fn hostname() -> Option<String> {
    let from_env = std::env::var("HOSTNAME").ok();
    let from_proc = || std::fs::read_to_string("/proc/sys/kernel/hostname").ok();
    let from_etc = || std::fs::read_to_string("/etc/hostname").ok();
    [from_env, from_proc(), from_etc()].into_iter().flatten().map(|h| h.trim().to_owned()).find(|h| !h.is_empty())
}

/// 16 random bytes from `/dev/urandom`, or from std's randomly keyed hasher where that is missing.
fn random_bytes() -> [u8; 16] {
    let mut bytes = [0u8; 16];
    let from_urandom = std::fs::File::open("/dev/urandom").and_then(|mut f| f.read_exact(&mut bytes)).is_ok();
    if !from_urandom {
        let (a, b) = (random_u64(), random_u64());
        bytes[..8].copy_from_slice(&a.to_le_bytes());
        bytes[8..].copy_from_slice(&b.to_le_bytes());
    }
    bytes
}

/// A random number from std: every `RandomState` is keyed differently.
fn random_u64() -> u64 {
    let mut hasher = std::hash::RandomState::new().build_hasher();
    hasher.write_u64(0x5eed);
    hasher.finish()
}

/// The fields of a Lease that leader election reads and writes (client-go's `LeaderElectionRecord`).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct LeaderElectionRecord {
    /// Who holds the lease; empty when free (e.g. released).
    pub holder_identity: String,
    /// How long others must wait after seeing the record change; `None` when the Lease omits it.
    pub lease_duration_seconds: Option<i32>,
    /// When the current holder acquired the lease.
    pub acquire_time: Option<jiff::Timestamp>,
    /// When the current holder last renewed it.
    pub renew_time: Option<jiff::Timestamp>,
    /// How many times the lease changed hands.
    pub lease_transitions: i32,
}

impl LeaderElectionRecord {
    /// Reads the record out of a Lease; missing fields read as free / zero.
    pub fn from_lease(lease: &Lease) -> Self {
        let spec = lease.spec.clone().unwrap_or_default();
        LeaderElectionRecord {
            holder_identity: spec.holder_identity.unwrap_or_default(),
            lease_duration_seconds: spec.lease_duration_seconds,
            acquire_time: spec.acquire_time.map(|t| t.0),
            renew_time: spec.renew_time.map(|t| t.0),
            lease_transitions: spec.lease_transitions.unwrap_or(0),
        }
    }

    /// Writes the record into `lease`'s spec, keeping the spec fields it does not own.
    pub fn apply_to(&self, lease: &mut Lease) {
        let spec = lease.spec.get_or_insert_with(LeaseSpec::default);
        spec.holder_identity = (!self.holder_identity.is_empty()).then(|| self.holder_identity.clone());
        spec.lease_duration_seconds = self.lease_duration_seconds;
        spec.acquire_time = self.acquire_time.map(MicroTime);
        spec.renew_time = self.renew_time.map(MicroTime);
        spec.lease_transitions = Some(self.lease_transitions);
    }

    /// How long others wait after seeing this record; a missing or negative value means no wait.
    fn lease_duration(&self) -> Duration {
        Duration::from_secs(self.lease_duration_seconds.and_then(|s| u64::try_from(s).ok()).unwrap_or(0))
    }
}

/// What an elector should do about the lease it just read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Decision {
    /// No Lease exists: create it holding it ourselves.
    Create,
    /// We hold it: renew it, keeping `acquireTime` and `leaseTransitions`.
    Renew,
    /// It is free or expired: take it over, incrementing `leaseTransitions`.
    Acquire,
    /// Someone else holds a lease that has not expired on our clock yet.
    Wait {
        /// The current holder.
        holder: String,
        /// Time left until we may take it over if the holder stops renewing.
        expires_in: Duration,
    },
}

/// client-go's `tryAcquireOrRenew` decision, on the local clock.
///
/// `observed_at` is when this elector last saw `record` change; the lease has expired once
/// `observed_at + record.leaseDurationSeconds` has passed.
pub fn decide(record: Option<&LeaderElectionRecord>, observed_at: Instant, now: Instant, me: &str) -> Decision {
    let Some(record) = record else { return Decision::Create };
    if record.holder_identity == me {
        return Decision::Renew;
    }
    if record.holder_identity.is_empty() {
        return Decision::Acquire;
    }
    let expires_at = observed_at + record.lease_duration();
    if expires_at > now {
        return Decision::Wait { holder: record.holder_identity.clone(), expires_in: expires_at - now };
    }
    Decision::Acquire
}

/// The record to write after `decision` (`Create`, `Renew` or `Acquire`) at wall time `now`.
fn next_record(
    old: Option<&LeaderElectionRecord>,
    decision: &Decision,
    config: &LeaderElectionConfig,
    now: jiff::Timestamp,
) -> LeaderElectionRecord {
    let (acquire_time, lease_transitions) = match (decision, old) {
        (Decision::Renew, Some(old)) => (old.acquire_time.or(Some(now)), old.lease_transitions),
        (_, Some(old)) => (Some(now), old.lease_transitions.saturating_add(1)),
        (_, None) => (Some(now), 0),
    };
    LeaderElectionRecord {
        holder_identity: config.identity.clone(),
        lease_duration_seconds: lease_seconds(config.lease_duration),
        acquire_time,
        renew_time: Some(now),
        lease_transitions,
    }
}

/// The record that gives the lease away at once (client-go's `release`).
fn released_record(old: &LeaderElectionRecord, now: jiff::Timestamp) -> LeaderElectionRecord {
    LeaderElectionRecord {
        holder_identity: String::new(),
        lease_duration_seconds: Some(1),
        acquire_time: Some(now),
        renew_time: Some(now),
        lease_transitions: old.lease_transitions,
    }
}

/// A Lease API failure, reduced to what the election needs to tell apart.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum LeaseStoreError {
    /// 409: the lease was created or changed by someone else since we read it.
    #[error("the lease was changed concurrently (409 Conflict)")]
    Conflict,
    /// Any other failure (network, timeout, 5xx, forbidden); the attempt is simply retried.
    #[error("{0}")]
    Other(String),
}

impl From<kube::Error> for LeaseStoreError {
    fn from(err: kube::Error) -> Self {
        match err {
            kube::Error::Api(status) if status.code == 409 => LeaseStoreError::Conflict,
            other => LeaseStoreError::Other(other.to_string()),
        }
    }
}

/// Access to the one Lease object the election runs on.
pub trait LeaseStore: Send + Sync {
    /// Reads the lease; `Ok(None)` when it does not exist.
    fn get(&self) -> impl Future<Output = Result<Option<Lease>, LeaseStoreError>> + Send;
    /// Creates the lease; [`LeaseStoreError::Conflict`] when it exists already.
    fn create(&self, lease: &Lease) -> impl Future<Output = Result<Lease, LeaseStoreError>> + Send;
    /// Replaces the lease if its `metadata.resourceVersion` is still current, else
    /// [`LeaseStoreError::Conflict`].
    fn replace(&self, lease: &Lease) -> impl Future<Output = Result<Lease, LeaseStoreError>> + Send;
}

/// The Lease `namespace/name` on an API server.
#[derive(Clone)]
pub struct ApiLeaseStore {
    api: Api<Lease>,
    name: String,
}

impl std::fmt::Debug for ApiLeaseStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ApiLeaseStore").field("name", &self.name).finish_non_exhaustive()
    }
}

impl ApiLeaseStore {
    /// The lease `namespace/name` reached through `client`.
    pub fn new(client: kube::Client, namespace: &str, name: &str) -> Self {
        ApiLeaseStore { api: Api::namespaced(client, namespace), name: name.to_owned() }
    }
}

impl LeaseStore for ApiLeaseStore {
    async fn get(&self) -> Result<Option<Lease>, LeaseStoreError> {
        Ok(self.api.get_opt(&self.name).await?)
    }

    async fn create(&self, lease: &Lease) -> Result<Lease, LeaseStoreError> {
        Ok(self.api.create(&PostParams::default(), lease).await?)
    }

    async fn replace(&self, lease: &Lease) -> Result<Lease, LeaseStoreError> {
        Ok(self.api.replace(&self.name, &PostParams::default(), lease).await?)
    }
}

/// Result of one acquire-or-renew round.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Attempt {
    /// We hold the lease now (created, acquired or renewed).
    Holding,
    /// Someone else holds it.
    HeldBy(String),
    /// We raced another replica and lost (409).
    LostRace,
}

/// What this elector last saw of the lease, and when (local monotonic clock).
#[derive(Debug, Clone)]
struct Observation {
    record: LeaderElectionRecord,
    at: Instant,
}

/// One replica's participant in the election; consumed by [`LeaderElector::run`].
#[derive(Debug)]
pub struct LeaderElector {
    config: LeaderElectionConfig,
    observed: Option<Observation>,
}

impl LeaderElector {
    /// An elector for `config`, after checking it with [`LeaderElectionConfig::validate`].
    pub fn new(config: LeaderElectionConfig) -> Result<Self, LeaderElectionError> {
        config.validate()?;
        Ok(LeaderElector { config, observed: None })
    }

    /// This replica's holder identity.
    pub fn identity(&self) -> &str {
        &self.config.identity
    }

    /// Runs the election on the configured Lease until `shutdown` completes; see the module docs.
    ///
    /// `leading` gets `true` when this replica starts leading and `false` the moment it stops
    /// (`send_replace`, so it works with or without receivers). It ends at `false`.
    pub async fn run(self, client: kube::Client, leading: watch::Sender<bool>, shutdown: impl Future<Output = ()>) {
        let store = ApiLeaseStore::new(client, &self.config.namespace, &self.config.name);
        self.run_with_store(&store, leading, shutdown).await;
    }

    /// [`LeaderElector::run`] against any [`LeaseStore`].
    pub async fn run_with_store<S: LeaseStore>(
        mut self,
        store: &S,
        leading: watch::Sender<bool>,
        shutdown: impl Future<Output = ()>,
    ) {
        let cfg = self.config.clone();
        let lease = format!("{}/{}", cfg.namespace, cfg.name);
        tracing::info!(%lease, identity = %cfg.identity, "leader election: attempting to acquire the lease");
        tokio::pin!(shutdown);
        // `Some(last successful renewal)` while leading.
        let mut leading_since_renew: Option<Instant> = None;
        loop {
            // While leading, one round may take at most what is left of the renew deadline.
            let budget = leading_since_renew.map_or(cfg.renew_deadline, |renewed| {
                (renewed + cfg.renew_deadline).saturating_duration_since(Instant::now())
            });
            let attempt = tokio::select! {
                () = &mut shutdown => break,
                r = tokio::time::timeout(budget, self.try_acquire_or_renew(store)) => {
                    r.unwrap_or_else(|_| Err(LeaseStoreError::Other(format!("no answer within {budget:?}"))))
                }
            };
            let now = Instant::now();
            match (attempt, leading_since_renew) {
                (Ok(Attempt::Holding), None) => {
                    tracing::info!(%lease, identity = %cfg.identity, "leader election: acquired the lease, now leading");
                    leading.send_replace(true);
                    leading_since_renew = Some(now);
                }
                (Ok(Attempt::Holding), Some(_)) => leading_since_renew = Some(now),
                (Ok(Attempt::HeldBy(holder)), Some(_)) => {
                    tracing::warn!(%lease, %holder, "leader election: the lease was taken over, stopped leading");
                    leading.send_replace(false);
                    leading_since_renew = None;
                }
                (Ok(Attempt::LostRace), Some(_)) => {
                    tracing::warn!(%lease, "leader election: lost a renewal race, stopped leading");
                    leading.send_replace(false);
                    leading_since_renew = None;
                }
                (Ok(Attempt::HeldBy(holder)), None) => tracing::debug!(%lease, %holder, "leader election: lease held"),
                (Ok(Attempt::LostRace), None) => {
                    tracing::debug!(%lease, "leader election: another replica won the race")
                }
                (Err(err), Some(renewed)) if now >= renewed + cfg.renew_deadline => {
                    tracing::error!(
                        %lease, error = %err,
                        "leader election: could not renew the lease within the renew deadline, stopped leading \
                         (keeping caches warm and standing by)"
                    );
                    leading.send_replace(false);
                    leading_since_renew = None;
                }
                (Err(err), Some(_)) => {
                    tracing::warn!(%lease, error = %err, "leader election: renewal failed, retrying")
                }
                (Err(err), None) => tracing::warn!(%lease, error = %err, "leader election: acquire attempt failed"),
            }
            let pause = if leading_since_renew.is_some() { cfg.retry_period } else { jittered(cfg.retry_period) };
            tokio::select! {
                () = &mut shutdown => break,
                () = tokio::time::sleep(pause) => {}
            }
        }
        // Stop binding before anyone else can take over.
        if leading.send_replace(false) {
            tracing::info!(%lease, "leader election: shutting down, stopped leading");
        }
        self.release(store).await;
    }

    /// GET the lease, decide, and write it if we should hold it (client-go's `tryAcquireOrRenew`).
    async fn try_acquire_or_renew<S: LeaseStore>(&mut self, store: &S) -> Result<Attempt, LeaseStoreError> {
        let current = store.get().await?;
        let now = Instant::now();
        let record = current.as_ref().map(LeaderElectionRecord::from_lease);
        if let Some(record) = &record {
            self.observe(record, now);
        }
        let observed_at = self.observed.as_ref().map_or(now, |o| o.at);
        let decision = decide(record.as_ref(), observed_at, now, &self.config.identity);
        if let Decision::Wait { holder, .. } = decision {
            return Ok(Attempt::HeldBy(holder));
        }
        let new_record = next_record(record.as_ref(), &decision, &self.config, jiff::Timestamp::now());
        let written = match current {
            None => store.create(&self.new_lease(&new_record)).await,
            Some(mut lease) => {
                // The read resourceVersion stays in `lease.metadata`: the PUT only succeeds if nobody wrote since.
                new_record.apply_to(&mut lease);
                store.replace(&lease).await
            }
        };
        match written {
            Ok(_) => {
                self.observed = Some(Observation { record: new_record, at: Instant::now() });
                Ok(Attempt::Holding)
            }
            Err(LeaseStoreError::Conflict) => Ok(Attempt::LostRace),
            Err(err) => Err(err),
        }
    }

    /// Records `record` as observed now if it differs from what we saw last.
    fn observe(&mut self, record: &LeaderElectionRecord, now: Instant) {
        if self.observed.as_ref().is_none_or(|o| &o.record != record) {
            self.observed = Some(Observation { record: record.clone(), at: now });
        }
    }

    fn new_lease(&self, record: &LeaderElectionRecord) -> Lease {
        let mut lease = Lease {
            metadata: ObjectMeta {
                name: Some(self.config.name.clone()),
                namespace: Some(self.config.namespace.clone()),
                ..ObjectMeta::default()
            },
            spec: None,
        };
        record.apply_to(&mut lease);
        lease
    }

    /// Gives the lease up if we hold it, so a standby can take over without waiting for expiry.
    async fn release<S: LeaseStore>(&mut self, store: &S) {
        let holding = self.observed.as_ref().is_some_and(|o| o.record.holder_identity == self.config.identity);
        if !holding {
            return;
        }
        let lease = format!("{}/{}", self.config.namespace, self.config.name);
        let result = tokio::time::timeout(self.config.renew_deadline, self.write_release(store)).await;
        match result {
            Ok(Ok(true)) => tracing::info!(%lease, "leader election: released the lease"),
            Ok(Ok(false)) => {
                tracing::info!(%lease, "leader election: lease already held by someone else, nothing to release")
            }
            Ok(Err(err)) => {
                tracing::warn!(%lease, error = %err, "leader election: could not release the lease; it expires on its own")
            }
            Err(_) => tracing::warn!(%lease, "leader election: releasing the lease timed out; it expires on its own"),
        }
    }

    /// Writes the released record if the lease is still ours; `Ok(false)` if it is not.
    async fn write_release<S: LeaseStore>(&self, store: &S) -> Result<bool, LeaseStoreError> {
        let Some(mut lease) = store.get().await? else { return Ok(false) };
        let record = LeaderElectionRecord::from_lease(&lease);
        if record.holder_identity != self.config.identity {
            return Ok(false);
        }
        released_record(&record, jiff::Timestamp::now()).apply_to(&mut lease);
        store.replace(&lease).await?;
        Ok(true)
    }
}

/// `period` stretched by a random 0..120 %, so standbys do not hit the API server in lockstep.
fn jittered(period: Duration) -> Duration {
    let fraction = (random_u64() >> 11) as f64 / (1u64 << 53) as f64;
    period.mul_f64(1.0 + JITTER_FACTOR * fraction)
}

#[cfg(test)]
#[path = "leader_tests.rs"]
mod tests;
