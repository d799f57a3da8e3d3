//! Finds devices on one node for a pod's claims, as upstream's structured-parameters
//! allocator does: claims in order, requests in order, `firstAvailable` sub-requests tried in
//! order, devices tried in the node's device order, backtracking when a later request or a
//! constraint cannot be met. The first allocation found wins.
//!
//! Where a node's devices are wired ([`crate::dra::wiring`]), [`Preference::Wiring`] tries
//! each request's devices wired best first: the GPUs of one NVLink clique, the NIC under the
//! GPUs' PCIe root. It only reorders the search, which still tries every set of devices, so
//! within the step budget it finds an allocation exactly where first fit does; Filter asks
//! first fit whether one exists; Score, on the nodes that passed (its results reused across
//! pods of one template), and Reserve, on the node chosen, ask for the best wired (and first
//! fit again, should the wired search run out of steps).
//!
//! Three things keep it cheap where a pod is tried on thousands of nodes: selector results are
//! cached per device inside each compiled [`Selector`](crate::dra::cel::Selector); a request
//! that cannot have enough candidates fails before any search; and claims with one spec (made
//! from one template) are interchangeable, so their first devices are tried in increasing
//! order only, which keeps a node that is one pair short from trying every permutation.

use std::collections::BTreeMap;
use std::sync::Arc;

use crate::dra::inventory::{DeviceSet, NodeDevices};
use crate::dra::model::{
    AllocatedDevice, AllocationMode, ClaimAllocation, ClaimKey, ClaimSpec, Constraint, Device, ExactRequest,
    RequestKind,
};
use crate::intern::Sym;

/// Search steps (devices tried) per node before giving up: far above what real claims need,
/// low enough that a pathological claim costs milliseconds, not minutes.
pub const STEP_BUDGET: u32 = 100_000;

/// The node a claim is allocated on: its devices and what is taken.
#[derive(Clone, Copy, Debug)]
pub struct NodeView<'a> {
    /// The node's name.
    pub name: Sym,
    /// Its devices.
    pub devices: &'a NodeDevices,
    /// Devices held by claims allocated there.
    pub used: &'a DeviceSet,
    /// What is drawn on each slot of the node's ledger (counters, shared capacity).
    pub drawn: &'a [i64],
}

/// One claim to allocate.
#[derive(Clone, Copy, Debug)]
pub struct ClaimToAllocate<'a> {
    /// The claim.
    pub key: ClaimKey,
    /// Its spec.
    pub spec: &'a Arc<ClaimSpec>,
}

/// Why the claims cannot be allocated on a node, naming the claim and request that could
/// not be met first.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Unsatisfiable {
    /// The claim.
    pub claim: ClaimKey,
    /// The request (`request` or `request/sub`).
    pub request: Arc<str>,
    /// A selector that failed to evaluate on some device, if one did (the device does not
    /// match, and the message says why).
    pub selector_error: Option<String>,
    /// The search gave up after [`STEP_BUDGET`] steps.
    pub gave_up: bool,
}

impl std::fmt::Display for Unsatisfiable {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "cannot allocate all claims: resourceclaim {} request {}", self.claim, self.request)?;
        if self.gave_up {
            write!(f, " (search gave up after {STEP_BUDGET} steps)")?;
        }
        if let Some(e) = &self.selector_error {
            write!(f, " ({e})")?;
        }
        Ok(())
    }
}

/// Which devices of a request the search tries first.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Preference {
    /// The node's device order, as upstream: the cheapest way to learn whether the claims fit.
    FirstFit,
    /// On a wired node, the free devices wired best together and with those the pod already
    /// got from earlier requests, leaving the rest best connected
    /// ([`GpuWiring::best_subset_beside`](crate::gpu_wiring::GpuWiring::best_subset_beside));
    /// first fit elsewhere.
    Wiring,
}

/// The claims' allocation on a node, with what DynamicResources' Score weighs of it.
#[derive(Clone, Debug)]
pub struct Allocated {
    /// One per claim, in the order asked.
    pub claims: Vec<ClaimAllocation>,
    /// The devices taken for them (inventory indices): the node's devices in use grow by
    /// these. Devices taken with admin access, or allowing multiple allocations, are not.
    pub taken: DeviceSet,
    /// Over every `firstAvailable` request, the sub-requests passed over before the one
    /// chosen: 0 when each got its first choice.
    pub passed_over: u32,
}

/// Allocates every claim of `claims` on `node` together (their devices distinct), or says
/// which could not be. Deterministic for a given node state and preference.
pub fn allocate(
    node: NodeView<'_>,
    claims: &[ClaimToAllocate<'_>],
    preference: Preference,
) -> Result<Allocated, Unsatisfiable> {
    let mut search = Search::new(node, claims, preference == Preference::Wiring);
    search.precheck()?;
    if !search.claim(0) {
        return Err(search.failure());
    }
    let passed_over =
        search.chosen.iter().flatten().map(|(o, _)| u32::try_from(*o).unwrap_or(u32::MAX)).fold(0, u32::saturating_add);
    Ok(Allocated { claims: search.results(), taken: search.taken, passed_over })
}

/// One request option (a request, or one sub-request of `firstAvailable`) with the devices it
/// may take on this node.
#[derive(Clone, Debug)]
struct Option_<'a> {
    /// `request` or `request/sub`.
    name: Arc<str>,
    /// The name constraints refer to: the request's own name.
    parent: &'a Arc<str>,
    exact: &'a ExactRequest,
    /// Devices that match the class and selectors and tolerate the taints, free or not.
    matching: Vec<usize>,
}

/// A request: its options in order.
#[derive(Clone, Debug)]
struct Slot<'a> {
    options: Vec<Option_<'a>>,
}

/// The search state. Devices are picked per slot; constraints are checked as devices are
/// added.
struct Search<'a> {
    node: NodeView<'a>,
    claims: &'a [ClaimToAllocate<'a>],
    /// Per claim, per request.
    slots: Vec<Vec<Slot<'a>>>,
    /// Devices taken by this allocation (non-admin).
    taken: DeviceSet,
    /// The node's ledger as drawn on, with this allocation's draws so far.
    drawn: Vec<i64>,
    /// Per claim, per request: the option chosen and its devices.
    chosen: Vec<Vec<(usize, Vec<usize>)>>,
    /// Per claim: the first device of its first request, for interchangeable claims.
    first_device: Vec<Option<usize>>,
    /// Whether requests try their best-wired devices first ([`Preference::Wiring`]).
    wired: bool,
    steps: u32,
    /// The deepest (claim, request) reached without success.
    deepest: (usize, usize),
    selector_error: Option<String>,
}

impl<'a> Search<'a> {
    fn new(node: NodeView<'a>, claims: &'a [ClaimToAllocate<'a>], wired: bool) -> Search<'a> {
        let mut selector_error = None;
        let mut slots: Vec<Vec<Slot<'a>>> = Vec::with_capacity(claims.len());
        for (c, claim) in claims.iter().enumerate() {
            // Claims of one template share their requests' candidates: selectors run once.
            let twin = claims[..c].iter().position(|o| Arc::ptr_eq(o.spec, claim.spec));
            let requests = match twin {
                Some(t) => slots[t].clone(),
                None => claim.spec.requests.iter().map(|r| slot(node.devices, r, &mut selector_error)).collect(),
            };
            slots.push(requests);
        }
        Search {
            node,
            claims,
            slots,
            taken: DeviceSet::new(),
            drawn: node.drawn.to_vec(),
            chosen: claims.iter().map(|c| Vec::with_capacity(c.spec.requests.len())).collect(),
            first_device: vec![None; claims.len()],
            wired: wired && node.devices.wiring.is_some(),
            steps: 0,
            deepest: (0, 0),
            selector_error,
        }
    }

    /// Fails at once when some request cannot have enough free candidates even alone, summing
    /// the demand of claims that share a spec.
    fn precheck(&mut self) -> Result<(), Unsatisfiable> {
        let mut demand: BTreeMap<(usize, usize), (usize, u32)> = BTreeMap::new();
        for (c, claim) in self.claims.iter().enumerate() {
            let spec = Arc::as_ptr(claim.spec) as usize;
            for r in 0..self.slots[c].len() {
                demand.entry((spec, r)).or_insert((c, 0)).1 += 1;
            }
        }
        for (&(_, r), &(c, times)) in &demand {
            let slot = &self.slots[c][r];
            let feasible = slot.options.iter().any(|o| match o.exact.mode {
                AllocationMode::ExactCount(n) => {
                    let free = o.matching.iter().filter(|&&d| o.exact.admin_access || self.free(d)).count();
                    // A device that allows multiple allocations may serve every claim.
                    let shared = o.matching.iter().any(|&d| self.node.devices.devices[d].allow_multiple_allocations);
                    free as u64 >= u64::from(n) * u64::from(if shared { 1 } else { times })
                }
                AllocationMode::All => !o.matching.is_empty(),
            });
            if !feasible {
                self.deepest = (c, r);
                return Err(self.failure());
            }
        }
        Ok(())
    }

    fn free(&self, d: usize) -> bool {
        let device = &self.node.devices.devices[d];
        device.allow_multiple_allocations || !(self.node.used.contains(d) || self.taken.contains(d))
    }

    /// Allocates claims `c..`.
    fn claim(&mut self, c: usize) -> bool {
        if c == self.claims.len() {
            return true;
        }
        self.request(c, 0)
    }

    /// Allocates request `r..` of claim `c`, then the claims after it.
    fn request(&mut self, c: usize, r: usize) -> bool {
        if r == self.slots[c].len() {
            return self.claim(c + 1);
        }
        self.deepest = self.deepest.max((c, r));
        for o in 0..self.slots[c][r].options.len() {
            let exact = self.slots[c][r].options[o].exact;
            let found = match exact.mode {
                AllocationMode::ExactCount(n) => {
                    if self.wired {
                        self.best_wired_first(c, r, o, n);
                    }
                    self.pick(c, r, o, n as usize, 0, Vec::new())
                }
                AllocationMode::All => self.take_all(c, r, o),
            };
            if found {
                return true;
            }
        }
        false
    }

    /// Reorders option `o`'s matching devices so that the `n` free ones wired best (beside
    /// the devices this allocation holds so far) come first, then the rest in device order.
    /// [`Search::pick`] takes positions as a set, so any order still tries every set.
    /// The choice costs steps of the budget as [`Search::pick`] does, one per free candidate,
    /// so that a search that keeps coming back to a request still ends.
    fn best_wired_first(&mut self, c: usize, r: usize, o: usize, n: u32) {
        let Some(wiring) = &self.node.devices.wiring else { return };
        let opt = &self.slots[c][r].options[o];
        let admin = opt.exact.admin_access;
        let free = wiring.mask(opt.matching.iter().copied().filter(|&d| admin || self.free(d)));
        let beside = wiring.mask(self.chosen.iter().flatten().flat_map(|(_, picked)| picked.iter().copied()));
        self.steps += free.count_ones();
        let best = wiring.graph.best_subset_beside(free, n, beside);
        let matching = &mut self.slots[c][r].options[o].matching;
        match best {
            Some(best) => matching.sort_unstable_by_key(|&d| (!wiring.contains(best, d), d)),
            // Nothing wired to prefer: device order, whatever an earlier entry left.
            None => matching.sort_unstable(),
        }
    }

    /// Picks `left` more devices for option `o` of request `r` of claim `c`, from position
    /// `from` of its matching devices on (increasing positions: a set, not a sequence).
    fn pick(&mut self, c: usize, r: usize, o: usize, left: usize, from: usize, picked: Vec<usize>) -> bool {
        if left == 0 {
            return self.commit(c, r, o, picked);
        }
        let matching_len = self.slots[c][r].options[o].matching.len();
        for i in from..matching_len {
            if matching_len - i < left {
                break;
            }
            self.steps += 1;
            if self.steps > STEP_BUDGET {
                return false;
            }
            let d = self.slots[c][r].options[o].matching[i];
            let admin = self.slots[c][r].options[o].exact.admin_access;
            if !(admin || self.free(d)) || picked.contains(&d) || !self.order_ok(c, r, picked.is_empty(), d) {
                continue;
            }
            if !self.fits_constraints(c, r, o, &picked, d) {
                continue;
            }
            let Some(draws) = self.draws(d, self.slots[c][r].options[o].exact) else { continue };
            if !self.node.devices.ledger.fits(&self.drawn, &draws) {
                continue;
            }
            self.node.devices.ledger.apply(&mut self.drawn, &draws, 1);
            let mut next = picked.clone();
            next.push(d);
            if self.pick(c, r, o, left - 1, i + 1, next) {
                return true;
            }
            self.node.devices.ledger.apply(&mut self.drawn, &draws, -1);
        }
        false
    }

    /// What device `d` draws on the node's ledger when picked for `exact`: its counters and,
    /// on a device allowing multiple allocations, the capacity the request consumes; `None`
    /// when the device's request policy cannot grant the request.
    fn draws(&self, d: usize, exact: &ExactRequest) -> Option<Vec<(u32, i64)>> {
        let ledger = &self.node.devices.ledger;
        if ledger.is_empty() || exact.admin_access {
            return Some(Vec::new());
        }
        let mut out = ledger.counters.get(d).cloned().unwrap_or_default();
        for (name, amount) in consumed(&self.node.devices.devices[d], exact)? {
            out.extend(ledger.capacity_slot(d, &name).map(|slot| (slot, amount)));
        }
        Some(out)
    }

    /// `All`: every matching device, each free.
    fn take_all(&mut self, c: usize, r: usize, o: usize) -> bool {
        let opt = &self.slots[c][r].options[o];
        let admin = opt.exact.admin_access;
        if opt.matching.is_empty() || !opt.matching.iter().all(|&d| admin || self.free(d)) {
            return false;
        }
        let all = opt.matching.clone();
        let exact = opt.exact;
        let mut picked = Vec::with_capacity(all.len());
        let mut draws = Vec::new();
        for d in all {
            if !self.fits_constraints(c, r, o, &picked, d) {
                return false;
            }
            let Some(more) = self.draws(d, exact) else { return false };
            draws.extend(more);
            picked.push(d);
        }
        let ledger = &self.node.devices.ledger;
        if !ledger.fits(&self.drawn, &draws) {
            return false;
        }
        ledger.apply(&mut self.drawn, &draws, 1);
        if self.commit(c, r, o, picked) {
            return true;
        }
        self.node.devices.ledger.apply(&mut self.drawn, &draws, -1);
        false
    }

    /// Records the devices of request `r` and goes on; undoes them if what follows fails.
    fn commit(&mut self, c: usize, r: usize, o: usize, picked: Vec<usize>) -> bool {
        let admin = self.slots[c][r].options[o].exact.admin_access;
        for &d in &picked {
            if !admin && !self.node.devices.devices[d].allow_multiple_allocations {
                self.taken.insert(d);
            }
        }
        let first = r == 0 && self.first_device[c].is_none();
        if first {
            self.first_device[c] = picked.first().copied();
        }
        self.chosen[c].push((o, picked));
        if self.request(c, r + 1) {
            return true;
        }
        if let Some((_, undone)) = self.chosen[c].pop() {
            for d in undone {
                self.taken.remove(d);
            }
        }
        if first {
            self.first_device[c] = None;
        }
        false
    }

    /// Under first fit, interchangeable claims (one spec, consecutive) take their first
    /// devices in increasing order: any allocation can be relabelled so, and the other orders
    /// need not be tried. Not under [`Preference::Wiring`]: each claim's devices are chosen
    /// beside the earlier claims', so a later claim may do best on lower devices. That search
    /// runs only on nodes where first fit found room; should it run out of steps, Score and
    /// Reserve take first fit's allocation.
    fn order_ok(&self, c: usize, r: usize, first_pick: bool, d: usize) -> bool {
        if self.wired || r != 0 || !first_pick || c == 0 || !Arc::ptr_eq(self.claims[c].spec, self.claims[c - 1].spec) {
            return true;
        }
        self.first_device[c - 1].is_none_or(|prev| d >= prev)
    }

    /// Whether adding device `d` to request `r` (option `o`) of claim `c`, beside `picked`,
    /// keeps every constraint that can already be judged.
    fn fits_constraints(&self, c: usize, r: usize, o: usize, picked: &[usize], d: usize) -> bool {
        let device = &self.node.devices.devices[d];
        let opt = &self.slots[c][r].options[o];
        for constraint in &self.claims[c].spec.constraints {
            let (requests, attribute, distinct) = match constraint {
                Constraint::MatchAttribute { requests, attribute } => (requests, attribute, false),
                Constraint::DistinctAttribute { requests, attribute } => (requests, attribute, true),
            };
            if !applies(requests, opt.parent, &opt.name) {
                continue;
            }
            let Some(value) = device.attribute(attribute) else { return false };
            let mut others = self.devices_under(c, requests).chain(picked.iter().copied());
            let ok = if distinct {
                others.all(|e| self.node.devices.devices[e].attribute(attribute) != Some(value))
            } else {
                others.all(|e| self.node.devices.devices[e].attribute(attribute) == Some(value))
            };
            if !ok {
                return false;
            }
        }
        true
    }

    /// Devices already chosen for claim `c`'s requests that a constraint over `requests`
    /// covers.
    fn devices_under<'s>(&'s self, c: usize, requests: &'s [Arc<str>]) -> impl Iterator<Item = usize> + 's {
        self.chosen[c].iter().enumerate().flat_map(move |(r, (o, picked))| {
            let opt = &self.slots[c][r].options[*o];
            let covered = applies(requests, opt.parent, &opt.name);
            picked.iter().copied().filter(move |_| covered)
        })
    }

    fn results(&self) -> Vec<ClaimAllocation> {
        self.claims
            .iter()
            .enumerate()
            .map(|(c, claim)| {
                let mut devices = Vec::new();
                let mut config = Vec::new();
                let mut local = false;
                for (r, (o, picked)) in self.chosen[c].iter().enumerate() {
                    local |= picked.iter().any(|&d| !self.node.devices.remote.contains(d));
                    let opt = &self.slots[c][r].options[*o];
                    config.extend(opt.exact.class.config.iter().cloned());
                    devices.extend(picked.iter().map(|&d| {
                        let device = &self.node.devices.devices[d];
                        let admin = opt.exact.admin_access;
                        AllocatedDevice {
                            request: opt.name.clone(),
                            device: device.id(),
                            admin_access: admin,
                            consumed: if admin {
                                BTreeMap::new()
                            } else {
                                consumed(device, opt.exact).unwrap_or_default()
                            },
                        }
                    }));
                }
                config.extend(claim.spec.config.iter().cloned());
                // As upstream: one node-local device ties the claim to the node; devices all
                // published for other nodes too leave it usable wherever they are reachable.
                let node = local.then_some(self.node.name);
                ClaimAllocation { claim: claim.key, devices, node, config }
            })
            .collect()
    }

    fn failure(&self) -> Unsatisfiable {
        let (c, r) = self.deepest;
        let claim = self.claims.get(c).map_or(ClaimKey::new("", ""), |cl| cl.key);
        let request =
            self.claims.get(c).and_then(|cl| cl.spec.requests.get(r)).map_or_else(|| Arc::from(""), |q| q.name.clone());
        Unsatisfiable { claim, request, selector_error: self.selector_error.clone(), gave_up: self.steps > STEP_BUDGET }
    }
}

/// Whether a constraint over `requests` covers the option `name` of request `parent`: an
/// empty list covers every request; naming the request covers each of its sub-requests.
fn applies(requests: &[Arc<str>], parent: &Arc<str>, name: &Arc<str>) -> bool {
    requests.is_empty() || requests.iter().any(|r| r == parent || r == name)
}

/// A request's options with their matching devices on this node.
fn slot<'a>(
    devices: &NodeDevices,
    request: &'a crate::dra::model::DeviceRequest,
    error: &mut Option<String>,
) -> Slot<'a> {
    let options = match &request.kind {
        RequestKind::Exactly(exact) => vec![option(devices, request.name.clone(), &request.name, exact, error)],
        RequestKind::FirstAvailable(subs) => subs
            .iter()
            .map(|(sub, exact)| {
                let name: Arc<str> = Arc::from(format!("{}/{sub}", request.name));
                option(devices, name, &request.name, exact, error)
            })
            .collect(),
    };
    Slot { options }
}

fn option<'a>(
    devices: &NodeDevices,
    name: Arc<str>,
    parent: &'a Arc<str>,
    exact: &'a ExactRequest,
    error: &mut Option<String>,
) -> Option_<'a> {
    let matching = (0..devices.len()).filter(|&d| matches(&devices.devices[d], exact, error)).collect();
    Option_ { name, parent, exact, matching }
}

/// Whether `device` is of the request's class, satisfies its selectors, tolerates its taints
/// and has the capacity it asks. A selector that fails to evaluate does not match; its
/// message is kept (the first one) for the reason.
fn matches(device: &Device, exact: &ExactRequest, error: &mut Option<String>) -> bool {
    let selectors = exact.class.selectors.iter().chain(&exact.selectors);
    for s in selectors {
        match s.matches(device) {
            Ok(true) => {}
            Ok(false) => return false,
            Err(e) => {
                // The error names the expression and the device.
                error.get_or_insert_with(|| e.to_string());
                return false;
            }
        }
    }
    let tolerated = device.taints.iter().all(|t| {
        let taint = crate::model::Taint { key: t.key, value: t.value, effect: t.effect };
        exact.tolerations.iter().any(|tol| tol.tolerates(&taint))
    });
    let capacity = exact
        .capacity
        .iter()
        .all(|(name, want)| device.capacity.get(&*qualified(device, name)).is_some_and(|have| have.milli >= *want));
    tolerated && capacity
}

/// What one allocation for `exact` consumes of `device`'s capacities when the device allows
/// multiple allocations (nothing otherwise), by qualified name; `None` when a capacity's
/// request policy cannot grant what the request asks.
fn consumed(device: &Device, exact: &ExactRequest) -> Option<BTreeMap<Arc<str>, i64>> {
    if !device.allow_multiple_allocations {
        return Some(BTreeMap::new());
    }
    let mut out = BTreeMap::new();
    for (name, capacity) in &device.capacity {
        let asked = exact.capacity.iter().find(|(n, _)| qualified(device, n) == **name).map(|(_, &v)| v);
        out.insert(name.clone(), capacity.consumption(asked)?);
    }
    Some(out)
}

/// A request's capacity name as the device's capacities are keyed: a name without a domain
/// means the device driver's.
fn qualified<'n>(device: &Device, name: &'n str) -> std::borrow::Cow<'n, str> {
    if name.contains('/') {
        std::borrow::Cow::Borrowed(name)
    } else {
        std::borrow::Cow::Owned(format!("{}/{name}", device.driver))
    }
}

/// Devices that match `exact` on a node regardless of use: what `All` takes, and what the
/// tests compare against.
pub fn matching_devices(devices: &NodeDevices, exact: &ExactRequest) -> Vec<usize> {
    let mut ignored = None;
    (0..devices.len()).filter(|&d| matches(&devices.devices[d], exact, &mut ignored)).collect()
}

#[cfg(test)]
#[path = "allocator_tests.rs"]
mod tests;
