//! The threaded drives: K worker threads race over their own snapshots while one binder thread
//! commits their proposals, Gödel-style.
//!
//! [`Engine::run_parallel`] runs until every unit that was active at the start is placed or
//! found unschedulable (`tessera bench`). [`Engine::run_continuous`] runs until its [`Feed`]
//! says stop (the live scheduler): between batches of commits, the binder thread lets the feed
//! apply the world's changes (watch events, failed bindings) to the engine, and hands it the
//! outcomes to write back. Workers pick the changes up on their next refresh, so a node that
//! changed under a proposal is re-checked by the binder, never trusted.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::Duration;

use crossbeam_channel::{Receiver, Sender};
use parking_lot::{Mutex, RwLock};
use tessera_plugins::framework::Profile;

use super::core::Core;
use super::queue::SchedulingQueue;
use super::state::ClusterState;
use super::worker::{Attempt, Worker};
use super::{Engine, Outcome};

/// The outside world of the continuous drive, seen from the binder thread.
pub trait Feed {
    /// Whether [`Feed::apply`] has something to do; asked without any lock held, so that a
    /// quiet feed costs the workers nothing.
    fn has_events(&self) -> bool;
    /// Applies pending changes to the engine. Workers cannot refresh meanwhile.
    fn apply(&mut self, core: &mut Core<'_>, now: f64);
    /// Takes the outcomes of one batch of commits (placements to bind, pods that fit nowhere).
    fn outcomes(&mut self, outcomes: Vec<Outcome>);
    /// Whether the drive should end (shutdown, or the lease was lost).
    fn stop(&self) -> bool;
}

/// Proposals answered per write-lock hold: enough to amortise the lock, few enough that
/// workers refreshing do not wait long.
const BIND_BATCH: usize = 64;

/// The longest an idle thread of the continuous drive sleeps before looking again: the bound
/// on how late a quiet scheduler notices new work.
const MAX_IDLE: Duration = Duration::from_millis(2);

/// How often the continuous drive lets time pass (backoffs ending, holds lapsing) when nothing
/// else happens.
const TICK_S: f64 = 0.05;

struct Shared {
    state: ClusterState,
    answered: Vec<u64>,
}

#[derive(Clone, Copy)]
struct Lanes<'a> {
    shared: &'a RwLock<Shared>,
    queue: &'a Mutex<SchedulingQueue>,
    /// Units handed out or queued and not yet final (the batch drive's end condition).
    outstanding: &'a AtomicUsize,
    running: &'a AtomicBool,
}

impl Engine {
    /// Parallel drive: K worker threads race over their own snapshots while this thread
    /// binds, until every unit active at the start is placed or found unschedulable.
    /// `clock` gives the time for latencies.
    pub fn run_parallel(&mut self, clock: &(dyn Fn() -> f64 + Sync)) -> Vec<Outcome> {
        self.core().expire_reservation(clock());
        let outstanding = self.queue.active_len();
        self.drive(clock, outstanding, None)
    }

    /// Continuous drive: workers and binder run until `feed` says stop; see the module docs.
    pub fn run_continuous(&mut self, clock: &(dyn Fn() -> f64 + Sync), feed: &mut dyn Feed) {
        self.drive(clock, 0, Some(feed));
    }

    fn drive(
        &mut self,
        clock: &(dyn Fn() -> f64 + Sync),
        outstanding: usize,
        feed: Option<&mut dyn Feed>,
    ) -> Vec<Outcome> {
        let k = self.workers.len();
        let continuous = feed.is_some();
        let shared = RwLock::new(Shared { state: std::mem::take(&mut self.state), answered: self.answered.clone() });
        let queue = Mutex::new(std::mem::take(&mut self.queue));
        let outstanding = AtomicUsize::new(outstanding);
        let running = AtomicBool::new(true);
        let (tx, rx) = crossbeam_channel::bounded::<Timed>(k * 64);
        let profiles = &self.profiles;
        let mut outcomes = Vec::new();
        std::thread::scope(|s| {
            let lanes = Lanes { shared: &shared, queue: &queue, outstanding: &outstanding, running: &running };
            for w in self.workers.iter_mut() {
                let tx = tx.clone();
                s.spawn(move || worker_loop(w, profiles, lanes, tx, continuous));
            }
            drop(tx);
            let mut binder = BinderThread {
                parts: Parts {
                    binder: &mut self.binder,
                    profiles,
                    by_scheduler: &self.by_scheduler,
                    reservation: &mut self.reservation,
                    gang: &self.gang,
                    eviction: self.eviction,
                },
                clock,
                lanes,
                attempts: &mut self.attempts,
                last_tick: f64::NEG_INFINITY,
            };
            outcomes = binder.run(rx, feed);
            running.store(false, Ordering::Release);
        });
        let shared = shared.into_inner();
        self.state = shared.state;
        self.answered = shared.answered;
        self.queue = queue.into_inner();
        outcomes
    }
}

/// An attempt, the seconds its scheduling cycle took, and when the worker handed it over.
type Timed = (Attempt, f64, std::time::Instant);

fn worker_loop(w: &mut Worker, profiles: &[Arc<Profile>], lanes: Lanes<'_>, tx: Sender<Timed>, continuous: bool) {
    let mut idle = Idle::default();
    while lanes.running.load(Ordering::Acquire) {
        let Some(unit) = lanes.queue.lock().pop_active() else {
            if continuous {
                idle.wait();
            } else {
                std::thread::yield_now();
            }
            continue;
        };
        idle.reset();
        {
            let sh = lanes.shared.read();
            w.refresh(&sh.state, sh.answered[w.id()]);
        }
        let started = std::time::Instant::now();
        let attempt = w.schedule(&profiles[unit.profile], unit);
        if tx.send((attempt, started.elapsed().as_secs_f64(), std::time::Instant::now())).is_err() {
            return;
        }
    }
}

/// Sleeps that grow while a thread finds nothing to do, so an idle scheduler costs next to no
/// CPU and a busy one never sleeps long.
#[derive(Default)]
struct Idle {
    misses: u32,
}

impl Idle {
    fn wait(&mut self) {
        self.misses = self.misses.saturating_add(1);
        if self.misses < 16 {
            std::thread::yield_now();
        } else {
            let us = (50u64 << (self.misses - 16).min(6)).min(MAX_IDLE.as_micros() as u64);
            std::thread::sleep(Duration::from_micros(us));
        }
    }

    fn reset(&mut self) {
        self.misses = 0;
    }
}

/// The engine's fields the binder thread borrows for the whole drive.
struct Parts<'a> {
    binder: &'a mut super::binder::Binder,
    profiles: &'a [Arc<Profile>],
    by_scheduler: &'a std::collections::HashMap<tessera_plugins::intern::Sym, usize>,
    reservation: &'a mut Option<super::gang::reservation::Reservation>,
    gang: &'a super::gang::GangOptions,
    eviction: super::Eviction,
}

struct BinderThread<'a, 'b> {
    parts: Parts<'b>,
    clock: &'a (dyn Fn() -> f64 + Sync),
    lanes: Lanes<'a>,
    attempts: &'b mut u64,
    last_tick: f64,
}

impl BinderThread<'_, '_> {
    fn run(&mut self, rx: Receiver<Timed>, mut feed: Option<&mut dyn Feed>) -> Vec<Outcome> {
        let mut outcomes = Vec::new();
        let mut batch = Vec::with_capacity(BIND_BATCH);
        let mut idle = Idle::default();
        loop {
            let done = match &feed {
                Some(f) => f.stop(),
                None => self.lanes.outstanding.load(Ordering::Acquire) == 0,
            };
            if done {
                return outcomes;
            }
            while batch.len() < BIND_BATCH {
                match rx.try_recv() {
                    Ok(a) => batch.push(a),
                    Err(crossbeam_channel::TryRecvError::Empty) => break,
                    Err(crossbeam_channel::TryRecvError::Disconnected) => return outcomes,
                }
            }
            let now = (self.clock)();
            if let Some(f) = feed.as_deref_mut() {
                self.feed_events(f, now);
            }
            if batch.is_empty() {
                // Polling rather than blocking: a binder blocked in `recv` is woken (a futex call
                // and a context switch) by every single proposal, which on few cores costs more
                // than scheduling the pod; a short nap lets proposals gather into one batch.
                match feed {
                    Some(_) => idle.wait(),
                    None => std::thread::sleep(Duration::from_micros(200)),
                }
                continue;
            }
            idle.reset();
            let resolved = self.commit(&mut batch, now);
            match feed.as_deref_mut() {
                Some(f) => f.outcomes(resolved),
                None => outcomes.extend(resolved),
            }
        }
    }

    /// Lets the feed apply its events, and time pass, under the locks.
    fn feed_events(&mut self, feed: &mut dyn Feed, now: f64) {
        let due = now - self.last_tick >= TICK_S;
        if !feed.has_events() && !due {
            return;
        }
        let mut sh = self.lanes.shared.write();
        let mut queue = self.lanes.queue.lock();
        if due {
            self.last_tick = now;
        }
        let mut core = self.core(&mut sh.state, &mut queue);
        if due {
            core.tick(now);
        }
        feed.apply(&mut core, now);
        core.take_released();
    }

    fn commit(&mut self, batch: &mut Vec<Timed>, now: f64) -> Vec<Outcome> {
        let lanes = self.lanes;
        let mut sh = lanes.shared.write();
        let sh = &mut *sh;
        let mut queue = lanes.queue.lock();
        let mut outcomes = Vec::new();
        for (attempt, cycle_s, sent) in batch.drain(..) {
            *self.attempts += 1;
            if let Attempt::Proposed(p) = &attempt {
                sh.answered[p.worker] = p.seq;
            }
            let mut core = self.core(&mut sh.state, &mut queue);
            let mut resolved = core.resolve(attempt, now, cycle_s);
            let waited = sent.elapsed().as_secs_f64();
            for o in &mut resolved.outcomes {
                if let Outcome::Bound { attempt_s, .. } = o {
                    *attempt_s = cycle_s + waited;
                }
            }
            resolved.spawned += core.take_released();
            // New units (a gang's other members) count before finished ones leave, so the
            // count never touches zero while work remains. (The continuous drive never ends
            // on it; saturating keeps its count meaningless rather than wrapped.)
            lanes.outstanding.fetch_add(resolved.spawned, Ordering::AcqRel);
            let _ = lanes
                .outstanding
                .fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| Some(n.saturating_sub(resolved.finished)));
            outcomes.extend(resolved.outcomes);
        }
        outcomes
    }

    fn core<'c>(&'c mut self, state: &'c mut ClusterState, queue: &'c mut SchedulingQueue) -> Core<'c> {
        let Parts { binder, profiles, by_scheduler, reservation, gang, eviction } = &mut self.parts;
        Core { binder, state, profiles, by_scheduler, queue, reservation, gang, eviction: *eviction, released: 0 }
    }
}
