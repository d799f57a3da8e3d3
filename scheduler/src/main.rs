//! The `tessera` binary: parses the command line and wires library pieces together. All
//! behaviour lives in the `tessera_scheduler` library; this file only decides which runs.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{Context, Result};
use clap::{Parser, Subcommand};
use tessera_plugins::registry::Registry;
use tessera_scheduler::bench::{self, BenchOptions, GangTopology, synth::Mix};
use tessera_scheduler::config::{self, SchedulerConfig};
use tessera_scheduler::ingest;
use tessera_scheduler::sim::input::OnInvalid;
use tessera_scheduler::sim::{self, Mode, NamedConfig, SimOptions};

/// Tessera: a parallel batch pod scheduler for Kubernetes, and its placement simulator.
#[derive(Debug, Parser)]
#[command(name = "tessera", version, about)]
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
}

#[derive(Debug, clap::Args)]
struct BenchArgs {
    /// Nodes in the synthetic cluster.
    #[arg(long, default_value_t = 5000)]
    nodes: usize,
    /// Pods in the workload.
    #[arg(long, default_value_t = 50000)]
    pods: usize,
    /// Scheduling workers.
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
    #[arg(long)]
    workload: Vec<PathBuf>,
    /// KubeSchedulerConfiguration files; several run the same workload side by side.
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
    /// when each pod filters thousands of nodes (clusters of tens of thousands of nodes).
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
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn")),
        )
        .init();
    match run(Cli::parse()) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn run(cli: Cli) -> Result<()> {
    match cli.command {
        Command::Simulate(args) => run_simulate(args),
        Command::Bench(args) => run_bench(args),
        Command::Config(ConfigCommand::Check { file }) => {
            let cfg = config::load_config(&file, &Registry::builtin())?;
            for w in &cfg.warnings {
                eprintln!("warning: {w}");
            }
            println!("{}", serde_json::to_string_pretty(&config::describe(&cfg))?);
            Ok(())
        }
    }
}

fn load(path: Option<&PathBuf>) -> Result<SchedulerConfig> {
    let registry = Registry::builtin();
    Ok(match path {
        Some(p) => config::load_config(p, &registry)?,
        None => config::default_config(&registry).context("building the default profile")?,
    })
}

fn run_bench(args: BenchArgs) -> Result<()> {
    let cfg = load(args.config.as_ref())?;
    let opts = BenchOptions {
        nodes: args.nodes,
        pods: args.pods,
        workers: args.workers,
        mix: args.mix,
        seed: args.seed,
        verify: args.verify,
        gang_topology: args.gang_topology,
    };
    let report = bench::run(&opts, cfg.profiles);
    if args.json {
        println!("{}", serde_json::to_string(&report)?);
    } else {
        println!("{}", serde_json::to_string_pretty(&report)?);
    }
    Ok(())
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
    if !(args.fill_to.is_finite() && args.fill_to > 0.0) {
        anyhow::bail!("--fill-to must be a positive number, not {}", args.fill_to);
    }
    let input = sim_input(&args)?;
    for why in &input.skipped {
        eprintln!("skipped: {why}");
    }
    for (kind, n) in &input.unknown_kinds {
        eprintln!("note: skipped {n} object(s) of kind {kind}, which the simulator does not use");
    }
    let configs = sim_configs(&args.config)?;
    for c in &configs {
        let first = c.profiles.first().map_or("", |p| p.scheduler_name.as_str());
        for (name, n) in sim::stray_scheduler_names(&input, &c.profiles) {
            eprintln!(
                "note: config {}: no profile is named {name:?}; its {n} pod(s) are scheduled by the first profile, {first:?}",
                c.name
            );
        }
    }
    let opts = SimOptions {
        mode: args.mode,
        seed: args.seed,
        threads: args.workers,
        fill_to: args.fill_to,
        repeat: args.repeat,
        out: args.out.clone(),
        progress: !args.json && std::io::IsTerminal::is_terminal(&std::io::stderr()),
    };
    let runs = sim::run(&input, &configs, &opts);
    let summaries: Vec<_> = runs.iter().filter_map(|r| sim::summary::summarize(r, opts.mode, opts.fill_to)).collect();
    let written = sim::output::write_all(&opts.out, &runs, &summaries)?;
    if args.json {
        println!("{}", serde_json::to_string_pretty(&sim::output::summary_json(&summaries))?);
        return Ok(());
    }
    for s in &summaries {
        let gpu = s.allocation.get("gpu").map_or(0.0, |a| a.final_pct);
        println!(
            "{}: {} pods, {} scheduled, {} unschedulable; GPU allocated {:.1}%, fragmentation {:.2}%; {:.0} pods/s",
            s.config, s.pods_total, s.scheduled, s.unschedulable, gpu, s.gpu_fragmentation.amount_pct, s.pods_per_sec
        );
        if let Some(f) = &s.fill {
            println!(
                "  unallocated GPU at 100% arrived: {:.2}% ± {:.2} over {} seed(s)",
                f.unallocated_gpu_pct.mean, f.unallocated_gpu_pct.std, f.repeat
            );
        }
    }
    println!("wrote {} files to {} (open report.html)", written.len(), opts.out.display());
    Ok(())
}
