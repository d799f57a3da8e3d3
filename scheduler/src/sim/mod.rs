//! `tessera simulate`: the engine with a virtual clock and an in-memory API that applies
//! bindings at once. Not a second implementation: [`replay`] and [`fill`] drive the same
//! [`Engine`] the live scheduler runs, step by step.
//!
//! Runs are deterministic for a seed whatever the thread count: the engine's step drive makes
//! the same choices however many threads evaluate Filter ([`crate::engine::algorithm`]).

pub mod devices;
pub mod fill;
pub mod frag;
pub mod input;
pub mod openb;
pub mod output;
pub mod record;
pub mod replay;
pub mod report;
pub mod summary;

use std::borrow::Cow;
use std::collections::{BTreeMap, HashSet};
use std::path::PathBuf;
use std::sync::Arc;

use indicatif::{ProgressBar, ProgressStyle};
use tessera_plugins::framework::{Profile, TieBreak};
use tessera_plugins::intern::Sym;
use tessera_plugins::model::{Pod, PodKey};

use self::input::SimInput;
use self::record::RunResult;
use crate::config::SchedulerConfig;
use crate::engine::gang::GangOptions;
use crate::engine::queue::BackoffPolicy;
use crate::engine::{Engine, EngineOptions, Eviction};

/// The nodes of `engine`'s cluster as they are now.
fn cluster_nodes(engine: &Engine) -> impl Iterator<Item = &tessera_plugins::nodeinfo::NodeInfo> {
    engine.state().snapshot().nodes().map(|n| n.as_ref())
}

/// The bundled cluster, used when no `--cluster`/`--workload` is given.
pub const SAMPLE_CLUSTER: &str = include_str!("sample/cluster.yaml");
/// The bundled workload.
pub const SAMPLE_WORKLOAD: &str = include_str!("sample/workload.yaml");

/// How the workload is played.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Mode {
    /// Arrivals and departures in virtual time.
    Replay,
    /// FGD's method: pods never leave; inflate to `--fill-to`; one attempt each.
    Fill,
}

/// One named configuration to run the workload under.
#[derive(Clone, Debug)]
pub struct NamedConfig {
    /// Its name (the config file's stem, or `default`).
    pub name: String,
    /// Its profiles.
    pub profiles: Vec<Profile>,
    /// Its `parallelism`: at most this many threads filter nodes for one pod, as upstream's
    /// goroutines do (`--workers` is the other cap).
    pub parallelism: u32,
    /// Its queue backoff.
    pub backoff: BackoffPolicy,
    /// Its gang settings.
    pub gang: GangOptions,
}

impl NamedConfig {
    /// `profiles` under `name` with every other setting at its default.
    pub fn new(name: &str, profiles: Vec<Profile>) -> NamedConfig {
        NamedConfig {
            name: name.to_string(),
            profiles,
            parallelism: crate::config::DEFAULT_PARALLELISM,
            backoff: BackoffPolicy::default(),
            gang: GangOptions::default(),
        }
    }

    /// A loaded configuration under `name`.
    pub fn from_config(name: &str, config: SchedulerConfig) -> NamedConfig {
        let backoff = BackoffPolicy {
            initial_s: config.pod_initial_backoff.as_secs_f64(),
            max_s: config.pod_max_backoff.as_secs_f64(),
        };
        NamedConfig {
            name: name.to_string(),
            profiles: config.profiles,
            parallelism: config.parallelism,
            backoff,
            gang: config.gang,
        }
    }
}

/// What to simulate.
#[derive(Clone, Debug)]
pub struct SimOptions {
    /// Replay or fill.
    pub mode: Mode,
    /// First seed.
    pub seed: u64,
    /// Threads evaluating Filter (does not change results).
    pub threads: usize,
    /// Fill mode: inflate the GPU request to this multiple of capacity.
    pub fill_to: f64,
    /// Fill mode: seeds `seed..seed+repeat`.
    pub repeat: u32,
    /// Where outputs go.
    pub out: PathBuf,
    /// Show a progress bar.
    pub progress: bool,
    /// Pods whose scheduling attempts are explained (`--explain`).
    pub explain: HashSet<PodKey>,
}

/// The most `--fill-to` accepts, in multiples of the cluster's GPU capacity: past 1 the extra
/// pods only meet a full cluster (the FGD paper stops at 1.3), and each costs a Filter pass.
pub const MAX_FILL_TO: f64 = 10.0;

/// Why the options cannot run.
#[derive(Clone, Debug, PartialEq, thiserror::Error)]
pub enum OptionsError {
    /// `fill_to` is not in `(0, MAX_FILL_TO]` (shown as `{:?}`, which writes 1e308, not 309 digits).
    #[error("--fill-to must be more than 0 and at most {MAX_FILL_TO} (times the cluster's GPU capacity), not {0:?}")]
    FillTo(f64),
    /// The last seed of a fill run would pass `u64::MAX`.
    #[error("--seed {seed} with --repeat {repeat}: the last seed would pass {}", u64::MAX)]
    Seeds {
        /// The first seed.
        seed: u64,
        /// How many seeds.
        repeat: u32,
    },
    /// Fill mode would clone too many pods.
    #[error(transparent)]
    Fill(#[from] fill::FillError),
    /// `--explain` names a pod the input does not have.
    #[error("--explain {0}: the input has no pod of that namespace/name")]
    ExplainUnknown(PodKey),
}

impl SimOptions {
    /// Checks what the options say alone, before any input is read.
    pub fn check(&self) -> Result<(), OptionsError> {
        // NaN fails both comparisons, so it is refused too.
        if !(self.fill_to > 0.0 && self.fill_to <= MAX_FILL_TO) {
            return Err(OptionsError::FillTo(self.fill_to));
        }
        if self.mode == Mode::Fill && self.seed.checked_add(u64::from(self.repeat.max(1) - 1)).is_none() {
            return Err(OptionsError::Seeds { seed: self.seed, repeat: self.repeat });
        }
        Ok(())
    }

    /// Checks the options against `input` (after [`SimOptions::check`]): in fill mode, no
    /// seed may inflate the workload past [`fill::MAX_FILL_CLONES`].
    pub fn check_input(&self, input: &SimInput) -> Result<(), OptionsError> {
        for key in &self.explain {
            let known = |p: &Pod| p.namespace == key.namespace && p.name == key.name;
            if !input.pods.iter().any(|p| known(&p.pod)) && !input.running.iter().any(|p| known(p)) {
                return Err(OptionsError::ExplainUnknown(key.clone()));
            }
        }
        if self.mode == Mode::Fill {
            // The seeds run_config plays; check() has ruled out their overflow.
            let seeds = (0..self.repeat.max(1)).map(|i| self.seed.saturating_add(u64::from(i)));
            fill::check(input, self.fill_to, seeds)?;
        }
        Ok(())
    }
}

/// A progress bar that is silent when off.
#[derive(Debug)]
pub struct Progress(Option<ProgressBar>);

impl Progress {
    /// A bar on stderr titled `label`, or a silent one.
    pub fn new(on: bool, label: &str) -> Progress {
        Progress(on.then(|| {
            let bar = ProgressBar::new(0);
            if let Ok(style) = ProgressStyle::with_template("{msg:>24} [{bar:40}] {pos}/{len} pods ({eta})") {
                bar.set_style(style.progress_chars("=> "));
            }
            bar.set_message(label.to_string());
            bar
        }))
    }

    /// Sets the total.
    pub fn set_length(&self, n: u64) {
        if let Some(b) = &self.0 {
            b.set_length(n);
        }
    }

    /// Advances.
    pub fn inc(&self, n: u64) {
        if let Some(b) = &self.0 {
            b.inc(n);
        }
    }

    /// Clears the bar.
    pub fn finish(&self) {
        if let Some(b) = &self.0 {
            b.finish_and_clear();
        }
    }
}

/// Whether a simulation preempts.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Preemption {
    /// As the profiles say (replay).
    AsConfigured,
    /// Never: fill mode follows the FGD paper's method, where a pod gets one attempt and
    /// placed pods never leave.
    Off,
}

/// An engine with `config`'s settings, loaded with the input's cluster (nodes, namespaces,
/// storage objects, PodGroups and PodDisruptionBudgets).
pub fn build_engine(
    input: &SimInput,
    config: &NamedConfig,
    seed: u64,
    threads: usize,
    preemption: Preemption,
) -> Engine {
    let profiles = &config.profiles;
    // Plugins that learn from pods (FGD's workload model) start afresh: seeds must not leak.
    // A stable tie-break draws its node order from the run's seed, as the FGD paper's runs do.
    let profiles = profiles
        .iter()
        .map(|p| {
            let mut p = p.fresh();
            if let TieBreak::Stable(_) = p.tie_break {
                p.tie_break = TieBreak::Stable(seed);
            }
            if preemption == Preemption::Off {
                p.post_filter.clear();
            }
            p
        })
        .collect();
    let opts = EngineOptions {
        workers: 1,
        seed,
        parallel_filter: threads > 1,
        backoff: config.backoff,
        gang: config.gang.clone(),
        eviction: Eviction::AtOnce,
    };
    let mut engine = Engine::new(profiles, opts);
    engine.set_namespaces(input.namespaces.clone());
    for change in &input.selector_sources {
        engine.apply_selector_source(change.clone());
    }
    for n in &input.nodes {
        engine.upsert_node(n.clone(), 0.0);
    }
    if !input.volumes.is_empty() {
        engine.set_volume_objects(input.volumes.clone(), 0.0);
    }
    for g in &input.pod_groups {
        engine.upsert_pod_group(g.clone(), 0.0);
    }
    engine.set_budgets(input.budgets.clone());
    engine
}

/// Runs `input` under every configuration (and, in fill mode, every seed).
pub fn run(input: &SimInput, configs: &[NamedConfig], opts: &SimOptions) -> Vec<Vec<RunResult>> {
    let pool = rayon::ThreadPoolBuilder::new().num_threads(opts.threads.max(1)).build();
    let body = || configs.iter().map(|c| run_config(input, c, opts)).collect();
    match pool {
        Ok(pool) => pool.install(body),
        Err(_) => body(),
    }
}

/// Pods to schedule whose `schedulerName` names no profile of `profiles`, counted by that
/// name. The live scheduler leaves such pods to another scheduler; the simulator has none, so
/// [`run`] gives them to the first profile (a config written for a secondary scheduler, whose
/// profile is named `tessera`, then still compares on a workload written for
/// `default-scheduler`). The caller reports them.
pub fn stray_scheduler_names(input: &SimInput, profiles: &[Profile]) -> BTreeMap<String, usize> {
    let mut out = BTreeMap::new();
    if profiles.is_empty() {
        return out;
    }
    for p in &input.pods {
        let name = p.pod.scheduler_name.as_str();
        if !profiles.iter().any(|pr| pr.scheduler_name == name) {
            *out.entry(name.to_string()).or_insert(0) += 1;
        }
    }
    out
}

/// `input` with the pods of [`stray_scheduler_names`] given to the first profile.
fn adopt_strays<'a>(input: &'a SimInput, profiles: &[Profile]) -> Cow<'a, SimInput> {
    let Some(first) = profiles.first() else { return Cow::Borrowed(input) };
    if stray_scheduler_names(input, profiles).is_empty() {
        return Cow::Borrowed(input);
    }
    let mut owned = input.clone();
    let target = Sym::new(&first.scheduler_name);
    for p in &mut owned.pods {
        if !profiles.iter().any(|pr| pr.scheduler_name == p.pod.scheduler_name.as_str()) {
            let mut pod = Pod::clone(&p.pod);
            pod.scheduler_name = target;
            p.pod = Arc::new(pod);
        }
    }
    Cow::Owned(owned)
}

fn run_config(input: &SimInput, config: &NamedConfig, opts: &SimOptions) -> Vec<RunResult> {
    let threads = opts.threads.min(usize::try_from(config.parallelism).unwrap_or(usize::MAX)).max(1);
    let input = adopt_strays(input, &config.profiles);
    let input = input.as_ref();
    let seeds: Vec<u64> = match opts.mode {
        Mode::Replay => vec![opts.seed],
        Mode::Fill => (0..opts.repeat.max(1)).map(|i| opts.seed + u64::from(i)).collect(),
    };
    seeds
        .into_iter()
        .map(|seed| {
            let progress = Progress::new(opts.progress, &format!("{} seed {seed}", config.name));
            let r = match opts.mode {
                Mode::Replay => replay::replay_explaining(input, config, seed, threads, &progress, &opts.explain),
                Mode::Fill => {
                    fill::fill_explaining(input, config, seed, opts.fill_to, threads, &progress, &opts.explain)
                }
            };
            progress.finish();
            r
        })
        .collect()
}
