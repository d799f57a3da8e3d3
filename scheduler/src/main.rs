//! The `tessera` binary: parses the command line and wires library pieces together. All
//! behaviour lives in the `tessera_scheduler` library; this file only decides which runs.

use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{Context, Result};
use clap::{Parser, Subcommand};
use tessera_plugins::model::PodKey;
use tessera_plugins::registry::Registry;
use tessera_scheduler::bench::{self, BenchOptions, GangTopology, synth::Mix};
use tessera_scheduler::config::{self, SchedulerConfig};
use tessera_scheduler::ingest;
use tessera_scheduler::live;
use tessera_scheduler::ops::{self, loadtest::LoadtestOptions};
use tessera_scheduler::sim::input::OnInvalid;
use tessera_scheduler::sim::{self, Mode, NamedConfig, SimOptions};

// Every command allocates per object (watch events, trace rows, requests) from several threads,
// where mimalloc's per-thread heaps cost a fraction of glibc's locking malloc.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// `print!` through [`write_out`]: a closed stdout is an error, not a panic.
macro_rules! out {
    ($($arg:tt)*) => { write_out(format_args!($($arg)*)) };
}

/// `println!` through [`write_out`].
macro_rules! outln {
    ($($arg:tt)*) => { write_out(format_args!("{}\n", format_args!($($arg)*))) };
}

/// `eprintln!` through [`write_err`]: a closed stderr is ignored, not a panic.
macro_rules! note {
    ($($arg:tt)*) => { write_err(format_args!($($arg)*)) };
}

/// Tessera, a parallel batch pod scheduler for Kubernetes with gangs, GPU topology and DRA
/// devices: run it on a cluster (a secondary scheduler, or in place of kube-scheduler),
/// simulate a cluster and a workload offline on the same engine, or benchmark the engine.
#[derive(Debug, Parser)]
#[command(name = "tessera", version)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Replay a cluster and a workload on the engine with a virtual clock (the placement
    /// simulator). With no --cluster/--workload it runs the bundled sample.
    Simulate(SimulateArgs),
    /// Run the engine on a synthetic cluster and workload and print the numbers.
    Bench(BenchArgs),
    /// Work with scheduler configuration files.
    #[command(subcommand)]
    Config(ConfigCommand),
    /// Run the scheduler against an API server (a secondary scheduler, or kube-scheduler's
    /// replacement with a profile named default-scheduler).
    Run(RunArgs),
    /// Scale test against a live cluster: register fake nodes, create pods for a scheduler
    /// and measure how fast they get bound.
    Loadtest(LoadtestArgs),
    /// Write the live cluster's nodes, pods and scheduling objects to one YAML file that
    /// `simulate --cluster FILE` replays.
    Snapshot(SnapshotArgs),
}

#[derive(Debug, clap::Args)]
struct BenchArgs {
    /// Nodes in the synthetic cluster.
    #[arg(long, default_value_t = 5000)]
    nodes: usize,
    /// Pods in the workload.
    #[arg(long, default_value_t = 50000)]
    pods: usize,
    /// Scheduling workers (at least 1; at most one per core).
    #[arg(long, default_value_t = 2)]
    workers: usize,
    /// Constraints the workload carries.
    #[arg(long, value_enum, default_value_t = Mix::Basic)]
    mix: Mix,
    /// Seed for the cluster, the workload and tie-breaking.
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// Re-check the final assignment independently and report `violations`.
    #[arg(long)]
    verify: bool,
    /// Gang mix: none, the rack label as topology hierarchy (gangs prefer one rack), or
    /// every PodGroup requiring one rack.
    #[arg(long, value_enum, default_value_t = GangTopology::Hierarchy)]
    gang_topology: GangTopology,
    /// Print one JSON object and nothing else.
    #[arg(long)]
    json: bool,
    /// A KubeSchedulerConfiguration file (default: upstream's default profile).
    #[arg(long)]
    config: Option<PathBuf>,
}

#[derive(Debug, clap::Args)]
struct SimulateArgs {
    /// Cluster files: Kubernetes YAML (Nodes, ...) or an openb node list CSV. Repeatable.
    #[arg(long)]
    cluster: Vec<PathBuf>,
    /// Workload files: Kubernetes YAML (Pods, Deployments, Jobs, ...) or an openb pod list CSV.
    /// Repeatable.
    #[arg(long)]
    workload: Vec<PathBuf>,
    /// KubeSchedulerConfiguration files; several run the same workload side by side.
    /// Repeatable.
    #[arg(long)]
    config: Vec<PathBuf>,
    /// replay: arrivals and departures in virtual time; fill: the FGD method.
    #[arg(long, value_enum, default_value_t = Mode::Replay)]
    mode: Mode,
    /// Fill mode: inflate the GPU request to this multiple of cluster GPU capacity.
    #[arg(long, default_value_t = 1.3)]
    fill_to: f64,
    /// Leave out a Node or Pod that cannot be understood (reported on stderr) instead of
    /// stopping, as a live scheduler goes on past one bad object.
    #[arg(long)]
    skip_invalid: bool,
    /// Fill mode: run seeds S..S+N-1 and report mean and standard deviation.
    #[arg(long, default_value_t = 1)]
    repeat: u32,
    /// Seed for ordering and tie-breaking.
    #[arg(long, default_value_t = 42)]
    seed: u64,
    /// Threads evaluating Filter within one pod; results do not depend on it. It pays only
    /// when each pod filters thousands of nodes (clusters of tens of thousands of nodes). At
    /// least 1; at most one per core.
    #[arg(long, default_value_t = 1)]
    workers: usize,
    /// Instead of files, a synthetic cluster and day-long workload with departures, as
    /// NODES:PODS (a benchmark input, e.g. 10000:200000).
    #[arg(long, value_parser = parse_synthetic, conflicts_with_all = ["cluster", "workload"])]
    synthetic: Option<(usize, usize)>,
    /// Output folder.
    #[arg(long, default_value = "tessera-sim")]
    out: PathBuf,
    /// Print summary.json to stdout and nothing else.
    #[arg(long)]
    json: bool,
    /// Explain every scheduling attempt of pod NAMESPACE/NAME (a bare NAME is in `default`):
    /// each node's Filter verdict and each plugin's score, in explain/NAMESPACE_NAME.json and
    /// the report. Repeatable.
    #[arg(long, value_name = "NAMESPACE/NAME", value_parser = parse_pod_key)]
    explain: Vec<PodKey>,
}

#[derive(Debug, clap::Args)]
struct RunArgs {
    /// A KubeSchedulerConfiguration file (default: upstream's default profile).
    #[arg(long)]
    config: Option<PathBuf>,
    /// Kubeconfig file (default: clientConnection.kubeconfig, KUBECONFIG, ~/.kube/config, then
    /// the in-cluster service account).
    #[arg(long)]
    kubeconfig: Option<PathBuf>,
    /// Elect a leader on a Lease before scheduling (default: leaderElection.leaderElect, true).
    #[arg(long, num_args = 0..=1, default_missing_value = "true", require_equals = true)]
    leader_elect: Option<bool>,
    /// The port serving /healthz, /livez, /readyz and /metrics over HTTPS.
    #[arg(long, default_value_t = tessera_scheduler::live::serve::DEFAULT_SECURE_PORT)]
    secure_port: u16,
    /// The address to serve on.
    #[arg(long, default_value = "0.0.0.0")]
    bind_address: std::net::IpAddr,
    /// PEM certificate for the secure port (default: a self-signed one made at start).
    #[arg(long, requires = "tls_private_key_file")]
    tls_cert_file: Option<PathBuf>,
    /// PEM private key matching --tls-cert-file.
    #[arg(long, requires = "tls_cert_file")]
    tls_private_key_file: Option<PathBuf>,
    /// Serve plain HTTP instead of HTTPS (local testing only).
    #[arg(long)]
    insecure_http: bool,
    /// Scheduling workers (default: parallelism, at most one per core).
    #[arg(long, default_value_t = 0)]
    workers: usize,
    /// Bindings in flight at most.
    #[arg(long, default_value_t = 256)]
    bind_concurrency: usize,
    /// Log lines as text or as JSON objects.
    #[arg(long, value_enum, default_value_t = LogFormat::Text)]
    log_format: LogFormat,
}

#[derive(Debug, Clone, Copy, clap::ValueEnum)]
enum LogFormat {
    Text,
    Json,
}

#[derive(Debug, Subcommand)]
enum ConfigCommand {
    /// Validate a configuration file and print the effective profiles.
    Check {
        /// The file.
        file: PathBuf,
    },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    // The live scheduler logs what it does (info); the other commands print their results and
    // log only what went wrong (warn). RUST_LOG overrides both.
    let (level, json) = match &cli.command {
        Command::Run(args) => ("info", matches!(args.log_format, LogFormat::Json)),
        _ => ("warn", false),
    };
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(level));
    let logs = tracing_subscriber::fmt().with_writer(std::io::stderr).with_env_filter(filter);
    if json {
        logs.json().init();
    } else {
        logs.init();
    }
    match run(cli) {
        Ok(()) => ExitCode::SUCCESS,
        // Whoever read stdout has stopped (`tessera simulate --json | head -1`): they have what
        // they wanted, so the command ends as if it had printed everything.
        Err(e) if e.is::<StdoutClosed>() => ExitCode::SUCCESS,
        Err(e) => {
            note!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

/// Stdout's reader has gone away: writing more is pointless, but nothing went wrong.
#[derive(Debug)]
struct StdoutClosed;

impl std::fmt::Display for StdoutClosed {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("stdout was closed")
    }
}

impl std::error::Error for StdoutClosed {}

/// Writes to stdout and flushes, so that a reader that has gone away is found here, as
/// [`StdoutClosed`], rather than by `println!`'s panic.
fn write_out(args: std::fmt::Arguments) -> Result<()> {
    let mut stdout = std::io::stdout().lock();
    match stdout.write_fmt(args).and_then(|()| stdout.flush()) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => Err(StdoutClosed.into()),
        Err(e) => Err(anyhow::Error::new(e).context("writing to stdout")),
    }
}

/// Writes a line to stderr. A failure is ignored: with stderr gone there is no one left to
/// tell, and the command's work (its files, its exit status) is still worth finishing.
fn write_err(args: std::fmt::Arguments) {
    let _ = writeln!(std::io::stderr().lock(), "{args}");
}

fn run(cli: Cli) -> Result<()> {
    match cli.command {
        Command::Simulate(args) => run_simulate(args),
        Command::Bench(args) => run_bench(args),
        Command::Config(ConfigCommand::Check { file }) => {
            let cfg = config::load_config(&file, &Registry::builtin())?;
            for w in &cfg.warnings {
                note!("warning: {w}");
            }
            outln!("{}", serde_json::to_string_pretty(&config::describe(&cfg))?)?;
            Ok(())
        }
        Command::Run(args) => run_live(args),
        Command::Loadtest(args) => run_loadtest(args),
        Command::Snapshot(args) => run_snapshot(args),
    }
}

fn load(path: Option<&PathBuf>) -> Result<SchedulerConfig> {
    let registry = Registry::builtin();
    Ok(match path {
        Some(p) => config::load_config(p, &registry)?,
        None => config::default_config(&registry).context("building the default profile")?,
    })
}

/// `--workers` as given, but at most one per core: threads beyond the cores only take turns
/// and pay for switching (200 made a small simulation take 15 s), so the surplus is dropped,
/// with a note. 0 would do no work at all.
fn workers(requested: usize) -> Result<usize> {
    if requested == 0 {
        anyhow::bail!("--workers must be at least 1");
    }
    let cores = std::thread::available_parallelism().map_or(1, std::num::NonZero::get);
    if requested > cores {
        note!("note: --workers {requested} is more than the {cores} core(s) here; using {cores}");
        return Ok(cores);
    }
    Ok(requested)
}

fn run_bench(args: BenchArgs) -> Result<()> {
    let workers = workers(args.workers)?;
    let cfg = load(args.config.as_ref())?;
    let opts = BenchOptions {
        nodes: args.nodes,
        pods: args.pods,
        workers,
        mix: args.mix,
        seed: args.seed,
        verify: args.verify,
        gang_topology: args.gang_topology,
    };
    let report = bench::run(&opts, cfg.profiles).context("building the DRA mix's device classes")?;
    if args.json {
        outln!("{}", serde_json::to_string(&report)?)?;
    } else {
        out!("{}", bench::table::table(&serde_json::to_value(&report)?))?;
    }
    Ok(())
}

fn parse_pod_key(s: &str) -> Result<PodKey, String> {
    let (ns, name) = s.split_once('/').unwrap_or(("default", s));
    if ns.is_empty() || name.is_empty() || name.contains('/') {
        return Err(format!("{s:?}: expected NAMESPACE/NAME"));
    }
    Ok(PodKey::new(ns, name))
}

fn parse_synthetic(s: &str) -> Result<(usize, usize), String> {
    let (n, p) = s.split_once(':').ok_or("expected NODES:PODS, e.g. 10000:200000")?;
    let num = |v: &str| v.trim().parse::<usize>().map_err(|e| format!("{v:?}: {e}"));
    Ok((num(n)?, num(p)?))
}

fn sim_input(args: &SimulateArgs) -> Result<sim::input::SimInput> {
    if let Some((nodes, pods)) = args.synthetic {
        return Ok(sim::input::synthetic(nodes, pods, args.seed));
    }
    if args.cluster.is_empty() && args.workload.is_empty() {
        let mut objects = ingest::read_objects("bundled cluster.yaml", sim::SAMPLE_CLUSTER)?;
        objects.extend(ingest::read_objects("bundled workload.yaml", sim::SAMPLE_WORKLOAD)?);
        let mut input = sim::input::from_objects(&objects, OnInvalid::Stop)?;
        input.sources = vec!["bundled sample".to_string()];
        return Ok(input);
    }
    let paths: Vec<PathBuf> = args.cluster.iter().chain(&args.workload).cloned().collect();
    let on_invalid = if args.skip_invalid { OnInvalid::Skip } else { OnInvalid::Stop };
    Ok(sim::input::load(&paths, on_invalid)?)
}

fn sim_configs(paths: &[PathBuf]) -> Result<Vec<NamedConfig>> {
    if paths.is_empty() {
        return Ok(vec![NamedConfig::from_config("default", load(None)?)]);
    }
    let mut configs: Vec<NamedConfig> = Vec::with_capacity(paths.len());
    for p in paths {
        let stem = p.file_stem().map_or_else(|| p.display().to_string(), |s| s.to_string_lossy().into_owned());
        // Two files with one stem (old/binpack.yaml, new/binpack.yaml) must not share a
        // summary entry and an output sub-folder: the second would overwrite the first.
        let mut name = stem.clone();
        let mut n = 2;
        while configs.iter().any(|c| c.name == name) {
            name = format!("{stem}-{n}");
            n += 1;
        }
        configs.push(NamedConfig::from_config(&name, load(Some(p))?));
    }
    Ok(configs)
}

fn run_simulate(args: SimulateArgs) -> Result<()> {
    let opts = SimOptions {
        mode: args.mode,
        seed: args.seed,
        threads: workers(args.workers)?,
        fill_to: args.fill_to,
        repeat: args.repeat,
        out: args.out.clone(),
        progress: !args.json && std::io::IsTerminal::is_terminal(&std::io::stderr()),
        explain: args.explain.iter().cloned().collect(),
    };
    opts.check()?;
    let input = sim_input(&args)?;
    opts.check_input(&input)?;
    for why in &input.skipped {
        note!("skipped: {why}");
    }
    for (kind, n) in &input.unknown_kinds {
        note!("note: skipped {n} object(s) of kind {kind}, which the simulator does not use");
    }
    if input.finished > 0 {
        note!(
            "note: left out {} pod(s) that already finished (Succeeded or Failed): they hold nothing",
            input.finished
        );
    }
    let configs = sim_configs(&args.config)?;
    for c in &configs {
        let first = c.profiles.first().map_or("", |p| p.scheduler_name.as_str());
        for (name, n) in sim::stray_scheduler_names(&input, &c.profiles) {
            note!(
                "note: config {}: no profile is named {name:?}; its {n} pod(s) are scheduled by the first profile, {first:?}",
                c.name
            );
        }
    }
    let runs = sim::run(&input, &configs, &opts);
    let summaries: Vec<_> = runs.iter().filter_map(|r| sim::summary::summarize(r, opts.mode, opts.fill_to)).collect();
    let context = sim::report::Context::new(&input, &configs, &opts);
    let written = sim::output::write_all(&opts.out, &runs, &summaries, &context)?;
    if args.json {
        outln!("{}", serde_json::to_string_pretty(&sim::output::summary_json(&summaries))?)?;
        return Ok(());
    }
    for s in &summaries {
        outln!(
            "{}: {} pods, {} scheduled, {} unschedulable; {}; {:.0} pods/s",
            s.config,
            s.pods_total,
            s.scheduled,
            s.unschedulable,
            headline_allocation(s),
            s.pods_per_sec
        )?;
        if let Some(f) = &s.fill {
            outln!(
                "  unallocated GPU at 100% arrived: {:.2}% ± {:.2} over {} seed(s)",
                f.unallocated_gpu_pct.mean,
                f.unallocated_gpu_pct.std,
                f.repeat
            )?;
        }
    }
    outln!("wrote {} files to {} (open report.html)", written.len(), opts.out.display())?;
    Ok(())
}

#[derive(Debug, clap::Args)]
struct LoadtestArgs {
    /// Kubeconfig file (default: KUBECONFIG, ~/.kube/config, then the in-cluster account).
    #[arg(long)]
    kubeconfig: Option<PathBuf>,
    /// Fake nodes to register (tessera-fake-node-0..); existing fake nodes are reused.
    #[arg(long)]
    nodes: usize,
    /// Pods to create (loadtest-0..).
    #[arg(long)]
    pods: usize,
    /// spec.schedulerName of the pods; `default-scheduler` measures kube-scheduler.
    #[arg(long, default_value = "tessera")]
    scheduler_name: String,
    /// Namespace for the pods, created when missing.
    #[arg(long, default_value = "tessera-loadtest")]
    namespace: String,
    /// CPU request of each pod.
    #[arg(long, default_value = "100m")]
    pod_cpu: String,
    /// Memory request of each pod.
    #[arg(long, default_value = "128Mi")]
    pod_memory: String,
    /// The scheduler's /metrics URL (http, or https with any certificate): reports
    /// scheduler_cpu_ms_per_pod from process_cpu_seconds_total.
    #[arg(long)]
    metrics_url: Option<String>,
    /// File holding a bearer token for --metrics-url (kube-scheduler's /metrics wants one).
    #[arg(long, requires = "metrics_url")]
    metrics_token_file: Option<PathBuf>,
    /// Seconds to wait, from the first create, for every pod to be bound.
    #[arg(long, default_value_t = 600)]
    timeout: u64,
    /// Requests in flight at once.
    #[arg(long, default_value_t = 64)]
    concurrency: usize,
    /// Delete the pods, the nodes this run registered and the namespace if this run made it.
    #[arg(long)]
    cleanup: bool,
    /// Print one JSON object and nothing else.
    #[arg(long)]
    json: bool,
}

#[derive(Debug, clap::Args)]
struct SnapshotArgs {
    /// Kubeconfig file (default: KUBECONFIG, ~/.kube/config, then the in-cluster account).
    #[arg(long)]
    kubeconfig: Option<PathBuf>,
    /// The YAML file to write.
    #[arg(long)]
    out: PathBuf,
}

/// Runs one async operator command on a fresh runtime.
fn block_on<T>(future: impl std::future::Future<Output = Result<T, ops::OpsError>>) -> Result<T> {
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build()?;
    Ok(runtime.block_on(future)?)
}

fn run_loadtest(args: LoadtestArgs) -> Result<()> {
    let metrics_token = match &args.metrics_token_file {
        Some(p) => Some(std::fs::read_to_string(p).with_context(|| format!("reading {}", p.display()))?),
        None => None,
    };
    let opts = LoadtestOptions {
        nodes: args.nodes,
        pods: args.pods,
        scheduler_name: args.scheduler_name,
        namespace: args.namespace,
        pod_cpu: args.pod_cpu,
        pod_memory: args.pod_memory,
        metrics_url: args.metrics_url,
        metrics_token,
        timeout: std::time::Duration::from_secs(args.timeout),
        cleanup: args.cleanup,
        concurrency: args.concurrency,
    };
    let kubeconfig = args.kubeconfig;
    let report = block_on(async { ops::loadtest::run(ops::connect(kubeconfig.as_deref()).await?, &opts).await })?;
    if args.json {
        outln!("{}", serde_json::to_string(&report)?)?;
    } else {
        out!("{}", report.table())?;
    }
    if report.timed_out {
        anyhow::bail!("timed out after {}s with {} of {} pods bound", args.timeout, report.bound, report.created);
    }
    Ok(())
}

fn run_snapshot(args: SnapshotArgs) -> Result<()> {
    let kubeconfig = args.kubeconfig;
    let snap = block_on(async { ops::snapshot::snapshot(ops::connect(kubeconfig.as_deref()).await?).await })?;
    for why in &snap.skipped {
        note!("note: skipped {why}");
    }
    std::fs::write(&args.out, &snap.yaml).with_context(|| format!("writing {}", args.out.display()))?;
    note!("wrote {} to {}", snap.summary(), args.out.display());
    Ok(())
}

fn run_live(args: RunArgs) -> Result<()> {
    let config = load(args.config.as_ref())?;
    for w in &config.warnings {
        tracing::warn!("{w}");
    }
    let kubeconfig = args.kubeconfig.or_else(|| config.client_connection.kubeconfig.clone().map(PathBuf::from));
    let serve = tessera_scheduler::live::serve::ServeOptions {
        bind_address: args.bind_address,
        port: args.secure_port,
        tls_cert_file: args.tls_cert_file,
        tls_private_key_file: args.tls_private_key_file,
        insecure_http: args.insecure_http,
    };
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build()?;
    runtime.block_on(async {
        let client = ops::connect(kubeconfig.as_deref()).await?;
        let opts = live::RunOptions {
            config,
            client,
            leader_elect: args.leader_elect,
            serve: Some(serve),
            workers: args.workers,
            bind_concurrency: args.bind_concurrency,
        };
        live::run(opts, shutdown_signal(), None).await?;
        Ok(())
    })
}

/// Completes on SIGTERM (what the kubelet sends) or Ctrl-C.
async fn shutdown_signal() {
    #[cfg(unix)]
    {
        let term = async {
            match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
                Ok(mut s) => {
                    s.recv().await;
                }
                Err(_) => std::future::pending::<()>().await,
            }
        };
        tokio::select! {
            _ = tokio::signal::ctrl_c() => {}
            _ = term => {}
        }
    }
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
    }
}

/// The allocation a run is summed up by: GPUs on a cluster that has them (with FGD's
/// fragmentation), else CPU; each as its mean over the run and its peak, since the value at
/// the end is low once the workload has left.
fn headline_allocation(s: &sim::summary::Summary) -> String {
    let (name, a) =
        if s.cluster_gpus > 0.0 { ("GPU", s.allocation.get("gpu")) } else { ("CPU", s.allocation.get("cpu")) };
    let Some(a) = a else { return String::new() };
    let mut out = format!("{name} allocated {:.1}% mean, {:.1}% peak", a.time_weighted_mean_pct, a.peak_pct);
    if s.cluster_gpus > 0.0 {
        out.push_str(&format!(", fragmentation {:.2}%", s.gpu_fragmentation.amount_pct));
    }
    out
}
