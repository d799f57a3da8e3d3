//! Leader election end to end: `LeaderElector`s on one `coordination.k8s.io/v1` Lease of the
//! in-process API server, through the real kube-rs client. Durations are shortened (lease 2 s,
//! renew deadline 1.5 s, retry 0.3 s) so hand-overs take seconds; every wait is bounded.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::Duration;

use k8s_openapi::api::coordination::v1::Lease;
use kube::Api;
use tessera_scheduler::live::leader::{LeaderElectionConfig, LeaderElectionRecord, LeaderElector};
use tessera_tests::apiserver::TestApiServer;
use tokio::sync::{oneshot, watch};
use tokio::task::JoinHandle;

const WAIT: Duration = Duration::from_secs(20);

fn config(identity: &str, lease_secs: u64) -> LeaderElectionConfig {
    LeaderElectionConfig {
        lease_duration: Duration::from_secs(lease_secs),
        renew_deadline: Duration::from_millis(1500),
        retry_period: Duration::from_millis(300),
        namespace: "kube-system".to_owned(),
        name: "tessera".to_owned(),
        identity: identity.to_owned(),
    }
}

/// One replica's elector running against the server.
struct Replica {
    identity: String,
    leading: watch::Receiver<bool>,
    stop: Option<oneshot::Sender<()>>,
    task: JoinHandle<()>,
}

fn start(server: &TestApiServer, identity: &str, lease_secs: u64) -> Replica {
    let (tx, rx) = watch::channel(false);
    let (stop, stopped) = oneshot::channel::<()>();
    let elector = LeaderElector::new(config(identity, lease_secs)).expect("valid config");
    let client = server.client();
    let task = tokio::spawn(elector.run(client, tx, async move {
        let _ = stopped.await;
    }));
    Replica { identity: identity.to_owned(), leading: rx, stop: Some(stop), task }
}

async fn lease_record(server: &TestApiServer) -> Option<LeaderElectionRecord> {
    let api: Api<Lease> = Api::namespaced(server.client(), "kube-system");
    let lease = tokio::time::timeout(WAIT, api.get_opt("tessera")).await.expect("GET in time").expect("GET lease");
    lease.as_ref().map(LeaderElectionRecord::from_lease)
}

async fn wait_leading(replica: &mut Replica, want: bool) {
    tokio::time::timeout(WAIT, replica.leading.wait_for(|v| *v == want))
        .await
        .unwrap_or_else(|_| panic!("{} never reported leading={want}", replica.identity))
        .expect("elector alive");
}

/// Waits until one of the two leads; returns (leader, standby).
async fn first_leader(mut a: Replica, mut b: Replica) -> (Replica, Replica) {
    let a_won = tokio::time::timeout(WAIT, async {
        tokio::select! {
            _ = a.leading.wait_for(|v| *v) => true,
            _ = b.leading.wait_for(|v| *v) => false,
        }
    })
    .await
    .expect("someone leads");
    if a_won { (a, b) } else { (b, a) }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_of_two_leads_and_a_killed_leader_is_replaced() {
    let server = TestApiServer::start().await;
    let (mut leader, mut standby) = first_leader(start(&server, "a", 2), start(&server, "b", 2)).await;

    let record = lease_record(&server).await.expect("lease created");
    assert_eq!(record.holder_identity, leader.identity);
    assert_eq!((record.lease_duration_seconds, record.lease_transitions), (Some(2), 0));
    // Several renew periods pass with exactly one leader.
    for _ in 0..8 {
        tokio::time::sleep(Duration::from_millis(200)).await;
        assert!(*leader.leading.borrow() && !*standby.leading.borrow(), "exactly one leader");
    }
    assert_eq!(lease_record(&server).await.expect("lease").holder_identity, leader.identity);

    // Kill the leader without releasing: the standby takes over once the lease expires.
    leader.task.abort();
    let _ = (&mut leader.task).await;
    wait_leading(&mut standby, true).await;
    let record = lease_record(&server).await.expect("lease");
    assert_eq!(record.holder_identity, standby.identity);
    assert_eq!(record.lease_transitions, 1);
    drop(leader.stop.take());
    server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shutdown_releases_the_lease() {
    let server = TestApiServer::start().await;
    // A 60 s lease: the standby can only lead within the bounded wait if the lease was released.
    let mut first = start(&server, "first", 60);
    wait_leading(&mut first, true).await;
    let mut second = start(&server, "second", 60);
    tokio::time::sleep(Duration::from_millis(900)).await;
    assert!(!*second.leading.borrow(), "the lease is held");

    let _ = first.stop.take().expect("stop handle").send(());
    tokio::time::timeout(WAIT, &mut first.task).await.expect("stops in time").expect("no panic");
    assert!(!*first.leading.borrow(), "ends at false");
    wait_leading(&mut second, true).await;
    let record = lease_record(&server).await.expect("lease");
    assert_eq!((record.holder_identity.as_str(), record.lease_transitions), ("second", 1));
    server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failing_renewals_end_leadership_and_it_comes_back() {
    let server = TestApiServer::start().await;
    let mut only = start(&server, "only", 2);
    wait_leading(&mut only, true).await;

    // Every lease update fails with 500 for a while: the leader must stop after the renew deadline.
    server.faults().fail("update", "leases", "", 500, usize::MAX, None);
    wait_leading(&mut only, false).await;
    // Once the API server recovers, the lease (still recorded as ours) is renewed and we lead again.
    server.faults().clear();
    wait_leading(&mut only, true).await;
    assert_eq!(lease_record(&server).await.expect("lease").holder_identity, "only");
    server.shutdown().await;
}
