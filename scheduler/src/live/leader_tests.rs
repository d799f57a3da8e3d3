use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

use tokio::sync::watch;

use super::*;

fn record(holder: &str, secs: Option<i32>) -> LeaderElectionRecord {
    LeaderElectionRecord { holder_identity: holder.to_owned(), lease_duration_seconds: secs, ..Default::default() }
}

#[test]
fn decide_follows_client_go() {
    let t0 = Instant::now();
    let later = |s: u64| t0 + Duration::from_secs(s);
    assert_eq!(decide(None, t0, t0, "me"), Decision::Create);
    assert_eq!(decide(Some(&record("me", Some(15))), t0, later(1), "me"), Decision::Renew);
    assert_eq!(decide(Some(&record("", Some(15))), t0, t0, "me"), Decision::Acquire, "released lease is free");
    assert_eq!(
        decide(Some(&record("other", Some(15))), t0, later(5), "me"),
        Decision::Wait { holder: "other".to_owned(), expires_in: Duration::from_secs(10) }
    );
    assert_eq!(decide(Some(&record("other", Some(15))), t0, later(15), "me"), Decision::Acquire, "expired");
    assert_eq!(decide(Some(&record("other", None)), t0, t0, "me"), Decision::Acquire, "no duration: no wait");
    assert_eq!(decide(Some(&record("other", Some(-3))), t0, t0, "me"), Decision::Acquire);
}

#[test]
fn expiry_ignores_the_holders_clock() {
    // The holder's clock runs an hour ahead; only when we observed the record matters.
    let far_future = jiff::Timestamp::now() + jiff::SignedDuration::from_hours(1);
    let rec = LeaderElectionRecord { renew_time: Some(far_future), ..record("other", Some(15)) };
    let t0 = Instant::now();
    assert_eq!(decide(Some(&rec), t0, t0 + Duration::from_secs(16), "me"), Decision::Acquire);
    // And a renewTime in the far past does not make a freshly observed record expired.
    let stale = LeaderElectionRecord { renew_time: Some(jiff::Timestamp::UNIX_EPOCH), ..record("other", Some(15)) };
    assert!(matches!(decide(Some(&stale), t0, t0, "me"), Decision::Wait { .. }));
}

#[test]
fn observed_time_only_moves_when_the_record_changes() {
    let mut elector = LeaderElector::new(LeaderElectionConfig::default()).expect("valid");
    let t0 = Instant::now();
    let rec = record("other", Some(15));
    elector.observe(&rec, t0);
    elector.observe(&rec, t0 + Duration::from_secs(10));
    assert_eq!(elector.observed.as_ref().map(|o| o.at), Some(t0), "same record: still observed at t0");
    let renewed = LeaderElectionRecord { renew_time: Some(jiff::Timestamp::now()), ..rec };
    elector.observe(&renewed, t0 + Duration::from_secs(12));
    assert_eq!(elector.observed.as_ref().map(|o| o.at), Some(t0 + Duration::from_secs(12)));
}

#[test]
fn next_record_keeps_or_bumps_acquire_time_and_transitions() {
    let cfg = LeaderElectionConfig { identity: "me".to_owned(), ..LeaderElectionConfig::default() };
    let then = jiff::Timestamp::UNIX_EPOCH;
    let now = jiff::Timestamp::now();
    let created = next_record(None, &Decision::Create, &cfg, now);
    assert_eq!(
        created,
        LeaderElectionRecord {
            holder_identity: "me".to_owned(),
            lease_duration_seconds: Some(15),
            acquire_time: Some(now),
            renew_time: Some(now),
            lease_transitions: 0,
        }
    );
    let mine = LeaderElectionRecord { acquire_time: Some(then), lease_transitions: 4, ..record("me", Some(15)) };
    let renewed = next_record(Some(&mine), &Decision::Renew, &cfg, now);
    assert_eq!((renewed.acquire_time, renewed.renew_time, renewed.lease_transitions), (Some(then), Some(now), 4));
    let theirs = LeaderElectionRecord { acquire_time: Some(then), lease_transitions: 4, ..record("other", Some(15)) };
    let taken = next_record(Some(&theirs), &Decision::Acquire, &cfg, now);
    assert_eq!((taken.holder_identity.as_str(), taken.acquire_time, taken.lease_transitions), ("me", Some(now), 5));
    let released = released_record(&taken, now);
    assert_eq!((released.holder_identity.as_str(), released.lease_duration_seconds), ("", Some(1)));
    assert_eq!(released.lease_transitions, 5);
}

#[test]
fn records_round_trip_through_a_lease_and_keep_foreign_fields() {
    let mut lease = Lease {
        spec: Some(LeaseSpec { strategy: Some("OldestEmulationVersion".to_owned()), ..LeaseSpec::default() }),
        ..Lease::default()
    };
    let now = jiff::Timestamp::now();
    let rec = LeaderElectionRecord {
        holder_identity: "me".to_owned(),
        lease_duration_seconds: Some(15),
        acquire_time: Some(now),
        renew_time: Some(now),
        lease_transitions: 2,
    };
    rec.apply_to(&mut lease);
    assert_eq!(LeaderElectionRecord::from_lease(&lease), rec);
    assert_eq!(lease.spec.as_ref().and_then(|s| s.strategy.as_deref()), Some("OldestEmulationVersion"));
    record("", Some(1)).apply_to(&mut lease);
    assert_eq!(lease.spec.as_ref().and_then(|s| s.holder_identity.clone()), None, "released: no holder");
    assert_eq!(LeaderElectionRecord::from_lease(&Lease::default()), LeaderElectionRecord::default());
}

#[test]
fn config_validation_rejects_unsafe_timings() {
    assert_eq!(LeaderElectionConfig::default().validate(), Ok(()));
    let base = LeaderElectionConfig::default();
    let cases = [
        LeaderElectionConfig { renew_deadline: Duration::from_secs(15), ..base.clone() },
        LeaderElectionConfig { retry_period: Duration::from_secs(9), ..base.clone() },
        LeaderElectionConfig { retry_period: Duration::ZERO, ..base.clone() },
        LeaderElectionConfig {
            lease_duration: Duration::from_millis(900),
            renew_deadline: Duration::from_millis(500),
            ..base.clone()
        },
        LeaderElectionConfig { name: String::new(), ..base.clone() },
        LeaderElectionConfig { identity: String::new(), ..base.clone() },
    ];
    for cfg in cases {
        assert!(cfg.validate().is_err(), "{cfg:?}");
        assert!(LeaderElector::new(cfg).is_err());
    }
    let err = LeaderElectionConfig { name: String::new(), ..base }.validate().expect_err("empty name");
    assert!(err.to_string().contains("resourceName"), "{err}");
}

#[test]
fn lease_seconds_round_up() {
    assert_eq!(lease_seconds(Duration::from_secs(15)), Some(15));
    assert_eq!(lease_seconds(Duration::from_millis(1500)), Some(2));
    assert_eq!(lease_seconds(Duration::from_secs(u64::MAX / 2)), None);
}

#[test]
fn default_identity_is_hostname_underscore_uuid() {
    let a = default_identity();
    let b = default_identity();
    assert_ne!(a, b, "each process gets its own identity");
    let (host, suffix) = a.rsplit_once('_').expect("hostname_suffix");
    assert!(!host.is_empty());
    let groups: Vec<usize> = suffix.split('-').map(str::len).collect();
    assert_eq!(groups, [8, 4, 4, 4, 12], "{suffix}");
    assert!(suffix.chars().all(|c| c == '-' || c.is_ascii_hexdigit()), "{suffix}");
}

#[test]
fn jitter_stays_within_client_gos_factor() {
    let period = Duration::from_secs(2);
    let samples: Vec<Duration> = (0..200).map(|_| jittered(period)).collect();
    assert!(samples.iter().all(|d| *d >= period && *d <= period.mul_f64(2.2)), "{samples:?}");
    assert!(samples.iter().any(|d| *d != samples[0]), "jitter varies");
}

/// An in-memory Lease API with resourceVersion preconditions, shared by several electors.
#[derive(Debug, Default)]
struct FakeLeaseApi {
    lease: parking_lot::Mutex<Option<Lease>>,
    version: AtomicU64,
}

impl FakeLeaseApi {
    fn current(&self) -> Option<LeaderElectionRecord> {
        self.lease.lock().as_ref().map(LeaderElectionRecord::from_lease)
    }

    fn stamp(&self, lease: &Lease) -> Lease {
        let mut stored = lease.clone();
        stored.metadata.resource_version = Some((self.version.fetch_add(1, Ordering::SeqCst) + 1).to_string());
        stored
    }
}

/// One elector's connection to the fake API; `broken` makes every call fail like a network error.
#[derive(Debug, Clone)]
struct FakeConn {
    api: Arc<FakeLeaseApi>,
    broken: Arc<AtomicBool>,
}

impl FakeConn {
    fn new(api: &Arc<FakeLeaseApi>) -> Self {
        FakeConn { api: api.clone(), broken: Arc::new(AtomicBool::new(false)) }
    }

    fn check(&self) -> Result<(), LeaseStoreError> {
        if self.broken.load(Ordering::SeqCst) {
            return Err(LeaseStoreError::Other("connection refused".to_owned()));
        }
        Ok(())
    }
}

impl LeaseStore for FakeConn {
    async fn get(&self) -> Result<Option<Lease>, LeaseStoreError> {
        self.check()?;
        Ok(self.api.lease.lock().clone())
    }

    async fn create(&self, lease: &Lease) -> Result<Lease, LeaseStoreError> {
        self.check()?;
        let mut slot = self.api.lease.lock();
        if slot.is_some() {
            return Err(LeaseStoreError::Conflict);
        }
        let stored = self.api.stamp(lease);
        *slot = Some(stored.clone());
        Ok(stored)
    }

    async fn replace(&self, lease: &Lease) -> Result<Lease, LeaseStoreError> {
        self.check()?;
        let mut slot = self.api.lease.lock();
        let current_version = slot.as_ref().and_then(|l| l.metadata.resource_version.clone());
        if current_version.is_none() || current_version != lease.metadata.resource_version {
            return Err(LeaseStoreError::Conflict);
        }
        let stored = self.api.stamp(lease);
        *slot = Some(stored.clone());
        Ok(stored)
    }
}

fn fast_config(identity: &str, lease_secs: u64) -> LeaderElectionConfig {
    LeaderElectionConfig {
        lease_duration: Duration::from_secs(lease_secs),
        renew_deadline: Duration::from_millis(1500),
        retry_period: Duration::from_millis(300),
        namespace: "kube-system".to_owned(),
        name: "tessera".to_owned(),
        identity: identity.to_owned(),
    }
}

const WAIT: Duration = Duration::from_secs(20);

/// A running elector: its leadership feed, its shutdown trigger and its task.
struct Running {
    leading: watch::Receiver<bool>,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    task: tokio::task::JoinHandle<()>,
    conn: FakeConn,
}

fn spawn_elector(api: &Arc<FakeLeaseApi>, cfg: LeaderElectionConfig) -> Running {
    let conn = FakeConn::new(api);
    let (tx, rx) = watch::channel(false);
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let elector = LeaderElector::new(cfg).expect("valid config");
    let store = conn.clone();
    let task = tokio::spawn(async move {
        elector
            .run_with_store(&store, tx, async move {
                let _ = stopped.await;
            })
            .await;
    });
    Running { leading: rx, stop: Some(stop), task, conn }
}

async fn wait_until(rx: &mut watch::Receiver<bool>, want: bool) {
    tokio::time::timeout(WAIT, rx.wait_for(|v| *v == want))
        .await
        .unwrap_or_else(|_| panic!("leading never became {want}"))
        .expect("elector alive");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lone_elector_creates_the_lease_and_renews_it() {
    let api = Arc::new(FakeLeaseApi::default());
    let mut me = spawn_elector(&api, fast_config("me", 2));
    wait_until(&mut me.leading, true).await;
    let first = api.current().expect("lease created");
    assert_eq!(
        (first.holder_identity.as_str(), first.lease_duration_seconds, first.lease_transitions),
        ("me", Some(2), 0)
    );
    // Renewals move renewTime but keep acquireTime.
    let renewed = tokio::time::timeout(WAIT, async {
        loop {
            tokio::time::sleep(Duration::from_millis(100)).await;
            let now = api.current().expect("lease");
            if now.renew_time != first.renew_time {
                return now;
            }
        }
    })
    .await
    .expect("renewed");
    assert_eq!(renewed.acquire_time, first.acquire_time);
    assert_eq!(renewed.lease_transitions, 0);
    assert!(*me.leading.borrow());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn exactly_one_leads_and_a_killed_leader_is_replaced_after_expiry() {
    let api = Arc::new(FakeLeaseApi::default());
    let mut a = spawn_elector(&api, fast_config("a", 2));
    let mut b = spawn_elector(&api, fast_config("b", 2));
    let winner = tokio::time::timeout(WAIT, async {
        tokio::select! {
            _ = a.leading.wait_for(|v| *v) => "a",
            _ = b.leading.wait_for(|v| *v) => "b",
        }
    })
    .await
    .expect("someone leads");
    let (mut leader, mut standby) = if winner == "a" { (a, b) } else { (b, a) };
    // Over several renew periods the standby never leads while the leader is alive.
    for _ in 0..10 {
        tokio::time::sleep(Duration::from_millis(150)).await;
        assert!(*leader.leading.borrow() && !*standby.leading.borrow(), "exactly one leader");
    }
    assert_eq!(api.current().map(|r| r.holder_identity), Some(winner.to_owned()));

    // Kill the leader without releasing: the standby must wait for expiry, then take over.
    leader.task.abort();
    let _ = (&mut leader.task).await;
    wait_until(&mut standby.leading, true).await;
    let rec = api.current().expect("lease");
    assert_ne!(rec.holder_identity, winner);
    assert_eq!(rec.lease_transitions, 1, "one hand-over");
    drop(leader.stop.take());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shutdown_releases_the_lease_for_an_immediate_takeover() {
    let api = Arc::new(FakeLeaseApi::default());
    // A 60 s lease: the standby can only lead within the 20 s wait if the lease was released.
    let mut first = spawn_elector(&api, fast_config("first", 60));
    wait_until(&mut first.leading, true).await;
    let mut second = spawn_elector(&api, fast_config("second", 60));
    tokio::time::sleep(Duration::from_millis(700)).await;
    assert!(!*second.leading.borrow(), "the lease is held");

    if let Some(stop) = first.stop.take() {
        let _ = stop.send(());
    }
    tokio::time::timeout(WAIT, &mut first.task).await.expect("stops in time").expect("no panic");
    assert!(!*first.leading.borrow(), "ends at false");
    wait_until(&mut second.leading, true).await;
    assert_eq!(api.current().map(|r| r.holder_identity), Some("second".to_owned()));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_leader_that_cannot_renew_steps_down_before_anyone_takes_over() {
    let api = Arc::new(FakeLeaseApi::default());
    let mut old = spawn_elector(&api, fast_config("old", 2));
    wait_until(&mut old.leading, true).await;
    let mut new = spawn_elector(&api, fast_config("new", 2));

    old.conn.broken.store(true, Ordering::SeqCst);
    let old_stepped_down = async {
        wait_until(&mut old.leading, false).await;
        Instant::now()
    };
    let new_took_over = async {
        wait_until(&mut new.leading, true).await;
        Instant::now()
    };
    let (down_at, up_at) = tokio::join!(old_stepped_down, new_took_over);
    assert!(down_at <= up_at, "the old leader stopped binding before the new one started");

    // Back online, the old leader sees the new holder and stays on standby.
    old.conn.broken.store(false, Ordering::SeqCst);
    tokio::time::sleep(Duration::from_millis(1200)).await;
    assert!(!*old.leading.borrow() && *new.leading.borrow());
    assert_eq!(api.current().map(|r| r.holder_identity), Some("new".to_owned()));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stale_write_loses_the_race() {
    let api = Arc::new(FakeLeaseApi::default());
    let conn = FakeConn::new(&api);
    let mut elector = LeaderElector::new(fast_config("me", 2)).expect("valid");
    assert_eq!(elector.try_acquire_or_renew(&conn).await, Ok(Attempt::Holding));
    let stale = api.lease.lock().clone().expect("lease");
    // Someone else writes in between: our copy's resourceVersion is now stale.
    let mut theirs = stale.clone();
    record("other", Some(2)).apply_to(&mut theirs);
    conn.replace(&theirs).await.expect("their write");
    assert_eq!(conn.replace(&stale).await, Err(LeaseStoreError::Conflict));
    assert_eq!(elector.try_acquire_or_renew(&conn).await, Ok(Attempt::HeldBy("other".to_owned())));
}
