//! `leaderElection` and `clientConnection`: how the live scheduler talks to its API server.
//! The simulator and the bench read neither; `tessera run` honours both.

use std::time::Duration;

use serde::Deserialize;

use super::context::Ctx;
use super::error::ConfigError;
use crate::ingest::go_duration;

/// `leaderElection` as written.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase", rename = "LeaderElectionConfiguration")]
pub(crate) struct RawLeaderElection {
    pub leader_elect: Option<bool>,
    pub lease_duration: Option<String>,
    pub renew_deadline: Option<String>,
    pub retry_period: Option<String>,
    pub resource_lock: Option<String>,
    pub resource_name: Option<String>,
    pub resource_namespace: Option<String>,
}

/// `clientConnection` as written.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase", rename = "ClientConnectionConfiguration")]
pub(crate) struct RawClientConnection {
    pub kubeconfig: Option<String>,
    pub accept_content_types: Option<String>,
    pub content_type: Option<String>,
    pub qps: Option<f64>,
    pub burst: Option<i64>,
}

/// Leader election on a `coordination.k8s.io/v1` Lease, with kube-scheduler's defaults.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LeaderElection {
    /// `leaderElect` (default true, as upstream).
    pub leader_elect: bool,
    /// `leaseDuration` (15 s): how long a lease is valid after its last renewal.
    pub lease_duration: Duration,
    /// `renewDeadline` (10 s): a leader that cannot renew for this long stops binding.
    pub renew_deadline: Duration,
    /// `retryPeriod` (2 s): how often candidates try and leaders renew.
    pub retry_period: Duration,
    /// `resourceNamespace` of the Lease (default `kube-system`).
    pub resource_namespace: String,
    /// `resourceName` of the Lease (default `tessera`; a replacement of kube-scheduler uses
    /// `kube-scheduler`, so the two never lead at once).
    pub resource_name: String,
}

impl Default for LeaderElection {
    fn default() -> Self {
        LeaderElection {
            leader_elect: true,
            lease_duration: Duration::from_secs(15),
            renew_deadline: Duration::from_secs(10),
            retry_period: Duration::from_secs(2),
            resource_namespace: "kube-system".into(),
            resource_name: "tessera".into(),
        }
    }
}

/// The client's limits.
#[derive(Clone, Debug, PartialEq)]
pub struct ClientConnection {
    /// `kubeconfig`: a file to read credentials from when the command line names none.
    pub kubeconfig: Option<String>,
    /// `qps` of each client-side rate limiter (bindings; reports have their own).
    pub qps: f64,
    /// `burst` of each limiter.
    pub burst: u32,
    /// `contentType` of requests; only JSON is spoken.
    pub content_type: String,
}

/// Tessera's limits when the file sets none. Upstream's 50 qps would cap binding at 50 pods a
/// second, a twentieth of what the engine places; API Priority and Fairness on the server is
/// what protects it, as for any client.
pub const DEFAULT_QPS: f64 = 1000.0;
/// See [`DEFAULT_QPS`].
pub const DEFAULT_BURST: u32 = 2000;

impl Default for ClientConnection {
    fn default() -> Self {
        ClientConnection {
            kubeconfig: None,
            qps: DEFAULT_QPS,
            burst: DEFAULT_BURST,
            content_type: "application/json".into(),
        }
    }
}

fn duration(ctx: &Ctx<'_>, field: &str, value: Option<&str>, default: Duration) -> Result<Duration, ConfigError> {
    let Some(v) = value else { return Ok(default) };
    let secs = go_duration(v).map_err(|e| ctx.invalid(format!("leaderElection.{field}"), e))?;
    if secs <= 0.0 {
        return Err(ctx.invalid(format!("leaderElection.{field}"), format!("must be greater than zero, got {v:?}")));
    }
    Ok(Duration::from_secs_f64(secs))
}

/// Validates `leaderElection` as upstream does (lease > renew deadline > retry period).
pub(crate) fn leader_election(ctx: &Ctx<'_>, raw: Option<&RawLeaderElection>) -> Result<LeaderElection, ConfigError> {
    let d = LeaderElection::default();
    let Some(raw) = raw else { return Ok(d) };
    let le = LeaderElection {
        leader_elect: raw.leader_elect.unwrap_or(d.leader_elect),
        lease_duration: duration(ctx, "leaseDuration", raw.lease_duration.as_deref(), d.lease_duration)?,
        renew_deadline: duration(ctx, "renewDeadline", raw.renew_deadline.as_deref(), d.renew_deadline)?,
        retry_period: duration(ctx, "retryPeriod", raw.retry_period.as_deref(), d.retry_period)?,
        resource_namespace: raw.resource_namespace.clone().unwrap_or(d.resource_namespace),
        resource_name: raw.resource_name.clone().unwrap_or(d.resource_name),
    };
    if le.lease_duration <= le.renew_deadline {
        return Err(ctx.invalid("leaderElection.leaseDuration", "must be greater than renewDeadline"));
    }
    if le.renew_deadline <= le.retry_period {
        return Err(ctx.invalid("leaderElection.renewDeadline", "must be greater than retryPeriod"));
    }
    if let Some(lock) = raw.resource_lock.as_deref().filter(|l| *l != "leases") {
        return Err(ctx.invalid("leaderElection.resourceLock", format!("only \"leases\" is supported, got {lock:?}")));
    }
    Ok(le)
}

/// Validates `clientConnection`.
pub(crate) fn client_connection(
    ctx: &Ctx<'_>,
    raw: Option<&RawClientConnection>,
) -> Result<ClientConnection, ConfigError> {
    let d = ClientConnection::default();
    let Some(raw) = raw else { return Ok(d) };
    let burst = match raw.burst {
        None => d.burst,
        Some(b) => u32::try_from(b)
            .ok()
            .filter(|b| *b > 0)
            .ok_or_else(|| ctx.invalid("clientConnection.burst", format!("must be a positive integer, got {b}")))?,
    };
    let qps = raw.qps.unwrap_or(d.qps);
    if !qps.is_finite() {
        return Err(ctx.invalid("clientConnection.qps", format!("must be a number, got {qps}")));
    }
    let content_type = raw.content_type.clone().unwrap_or(d.content_type);
    for (field, value) in
        [("contentType", Some(&content_type)), ("acceptContentTypes", raw.accept_content_types.as_ref())]
    {
        if let Some(v) = value.filter(|v| !v.contains("json")) {
            let msg = format!("Tessera speaks application/json only, got {v:?}");
            return Err(ctx.invalid(format!("clientConnection.{field}"), msg));
        }
    }
    Ok(ClientConnection { kubeconfig: raw.kubeconfig.clone(), qps, burst, content_type })
}
