//! The `tessera` binary: parses the command line and wires library pieces together. All
//! behaviour lives in the `tessera_scheduler` library; this file only decides which runs.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{Context, Result};
use clap::{Parser, Subcommand};
use tessera_plugins::registry::Registry;
use tessera_scheduler::bench::{self, BenchOptions, synth::Mix};
use tessera_scheduler::config::{self, SchedulerConfig};

/// Tessera: a parallel batch pod scheduler for Kubernetes, and its placement simulator.
#[derive(Debug, Parser)]
#[command(name = "tessera", version, about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
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
    /// Print one JSON object and nothing else.
    #[arg(long)]
    json: bool,
    /// A KubeSchedulerConfiguration file (default: upstream's default profile).
    #[arg(long)]
    config: Option<PathBuf>,
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
    };
    let report = bench::run(&opts, cfg.profiles);
    if args.json {
        println!("{}", serde_json::to_string(&report)?);
    } else {
        println!("{}", serde_json::to_string_pretty(&report)?);
    }
    Ok(())
}
