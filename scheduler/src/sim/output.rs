//! Writing a simulation's outputs: `summary.json`, `placements.csv`, `timeline.csv`,
//! `fill.csv` (fill mode), `podgroups.csv` (when there are gangs), `report.html` and one `.svg`
//! per chart.
//!
//! With one configuration everything lands in the output folder; with several, `summary.json`
//! holds `{"configs": [...]}` and each configuration's CSVs go to a sub-folder named after it,
//! while the report overlays them.

use std::fmt::Write as _;
use std::fs;
use std::path::{Path, PathBuf};

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use tessera_plugins::model::{PodGroupApi, PodKey};
use thiserror::Error;

use super::record::{ExplainedAttempt, RunResult, TimelinePoint};
use super::report::{self, Context, Page};
use super::summary::{Summary, round};
use crate::engine::gang::status as gang_status;

/// An output could not be written.
#[derive(Debug, Error)]
pub enum OutputError {
    /// The file system refused.
    #[error("{path}: {message}")]
    Io {
        /// The file.
        path: String,
        /// The OS error.
        message: String,
    },
    /// A chart could not be drawn.
    #[error("chart {chart}: {message}")]
    Chart {
        /// The chart.
        chart: String,
        /// What plotters said.
        message: String,
    },
}

fn write(path: &Path, text: &str) -> Result<(), OutputError> {
    if let Some(dir) = path.parent() {
        fs::create_dir_all(dir).map_err(|e| io(dir, &e))?;
    }
    fs::write(path, text).map_err(|e| io(path, &e))
}

fn io(path: &Path, e: &std::io::Error) -> OutputError {
    OutputError::Io { path: path.display().to_string(), message: e.to_string() }
}

/// The summary document: one summary, or `{"configs": [...]}` for several.
pub fn summary_json(summaries: &[Summary]) -> serde_json::Value {
    match summaries {
        [one] => serde_json::to_value(one).unwrap_or_default(),
        many => serde_json::json!({ "configs": many }),
    }
}

/// Writes every output into `out`. Returns the files written.
pub fn write_all(
    out: &Path,
    runs: &[Vec<RunResult>],
    summaries: &[Summary],
    context: &Context,
) -> Result<Vec<PathBuf>, OutputError> {
    let mut written = Vec::new();
    let doc = serde_json::to_string_pretty(&summary_json(summaries)).unwrap_or_default();
    written.push(out.join("summary.json"));
    write(&out.join("summary.json"), &(doc + "\n"))?;
    let several = runs.len() > 1;
    for config_runs in runs {
        let Some(first) = config_runs.first() else { continue };
        let dir = if several { out.join(sanitize(&first.config)) } else { out.to_path_buf() };
        for (name, text) in [("placements.csv", placements_csv(first)), ("timeline.csv", timeline_csv(&first.timeline))]
        {
            write(&dir.join(name), &text)?;
            written.push(dir.join(name));
        }
        if first.fill.is_some() {
            write(&dir.join("fill.csv"), &fill_csv(config_runs))?;
            written.push(dir.join("fill.csv"));
        }
        if !first.gangs.is_empty() {
            write(&dir.join("podgroups.csv"), &podgroups_csv(first))?;
            written.push(dir.join("podgroups.csv"));
        }
        for (key, attempts) in &first.explained {
            let path =
                dir.join("explain").join(format!("{}_{}.json", sanitize(key.namespace.as_str()), sanitize(&key.name)));
            let doc = serde_json::json!({"pod": key.to_string(), "config": first.config, "seed": first.seed,
                                         "attempts": attempts});
            write(&path, &(serde_json::to_string_pretty(&doc).unwrap_or_default() + "\n"))?;
            written.push(path);
        }
    }
    written.extend(write_report(out, runs, summaries, context)?);
    Ok(written)
}

fn sanitize(name: &str) -> String {
    name.chars().map(|c| if c.is_ascii_alphanumeric() || c == '-' || c == '_' { c } else { '_' }).collect()
}

fn csv_field(s: &str) -> String {
    if s.contains([',', '"', '\n']) { format!("\"{}\"", s.replace('"', "\"\"")) } else { s.to_string() }
}

fn opt(v: Option<f64>) -> String {
    v.map(|x| format!("{}", round(x))).unwrap_or_default()
}

/// `namespace,name,node,start_s,end_s,attempts,reason,gpus,devices,nominated_node`: `gpus` are
/// device indices, `devices` the DRA devices its claims hold (`driver/pool/device`),
/// `;`-separated; `nominated_node` the node preemption nominated a pod still pending to.
pub fn placements_csv(run: &RunResult) -> String {
    let mut s = String::from("namespace,name,node,start_s,end_s,attempts,reason,gpus,devices,nominated_node\n");
    for r in &run.records {
        let gpus: Vec<String> = (0..64).filter(|i| r.gpus & (1u64 << i) != 0).map(|i: u32| i.to_string()).collect();
        let _ = writeln!(
            s,
            "{},{},{},{},{},{},{},{},{},{}",
            csv_field(r.key.namespace.as_str()),
            csv_field(&r.key.name),
            r.node.map(|n| csv_field(n.as_str())).unwrap_or_default(),
            opt(r.start),
            opt(r.end),
            r.attempts,
            csv_field(&r.reason),
            gpus.join(";"),
            csv_field(&r.devices.iter().map(ToString::to_string).collect::<Vec<_>>().join(";")),
            r.nominated.map(|n| csv_field(n.as_str())).unwrap_or_default(),
        );
    }
    s
}

/// `namespace,name,api,min_count,members,bound,admitted_s,timeouts,status,reason,message`: each
/// PodGroup's status at the end as its API would show it. For Kubernetes' PodGroup, `status`
/// and `reason` are its `PodGroupInitiallyScheduled` condition's; for scheduler-plugins' and
/// Volcano's, `status` is the phase.
pub fn podgroups_csv(run: &RunResult) -> String {
    let mut s = String::from("namespace,name,api,min_count,members,bound,admitted_s,timeouts,status,reason,message\n");
    for (key, g) in &run.gangs {
        let (namespace, name) = key.split_once('/').unwrap_or(("", key));
        let (api, status, reason, message) = match g.api {
            Some(PodGroupApi::Coscheduling) => {
                let why =
                    if g.admitted_at.is_none() { g.last_failure.clone().unwrap_or_default() } else { String::new() };
                ("scheduling.x-k8s.io", gang_status::coscheduling_phase(g).to_string(), String::new(), why)
            }
            Some(PodGroupApi::Volcano) => {
                let why =
                    if g.admitted_at.is_none() { g.last_failure.clone().unwrap_or_default() } else { String::new() };
                ("scheduling.volcano.sh", gang_status::volcano_phase(g).to_string(), String::new(), why)
            }
            _ => {
                let c = gang_status::initially_scheduled(g, None, Time(Default::default()));
                let (status, reason, message) = c.map(|c| (c.status, c.reason, c.message)).unwrap_or_default();
                ("scheduling.k8s.io", status, reason, message)
            }
        };
        let _ = writeln!(
            s,
            "{},{},{api},{},{},{},{},{},{},{},{}",
            csv_field(namespace),
            csv_field(name),
            g.min_count,
            g.members,
            g.bound,
            opt(g.admitted_at),
            g.timeouts,
            csv_field(&status),
            csv_field(&reason),
            csv_field(&message),
        );
    }
    s
}

/// `t_s,pending,running,cpu_pct,memory_pct,gpu_pct`.
pub fn timeline_csv(timeline: &[TimelinePoint]) -> String {
    let mut s = String::from("t_s,pending,running,cpu_pct,memory_pct,gpu_pct\n");
    for p in timeline {
        let _ = writeln!(
            s,
            "{},{},{},{},{},{}",
            round(p.t),
            p.pending,
            p.running,
            round(p.cpu),
            round(p.memory),
            round(p.gpu)
        );
    }
    s
}

/// `seed,arrived_pct,gpu_alloc_pct`: the fill curve of every seed.
fn fill_csv(runs: &[RunResult]) -> String {
    let mut s = String::from("seed,arrived_pct,gpu_alloc_pct\n");
    for r in runs {
        for (k, v) in r.fill.as_ref().map(|f| f.curve()).unwrap_or_default() {
            let _ = writeln!(s, "{},{k},{}", r.seed, round(v));
        }
    }
    s
}

fn table(summaries: &[Summary]) -> Vec<(String, Vec<(String, String)>)> {
    summaries
        .iter()
        .map(|s| {
            let alloc = |k: &str| {
                s.allocation
                    .get(k)
                    .map_or(String::new(), |a| format!("{:.1}% (mean {:.1}%)", a.final_pct, a.time_weighted_mean_pct))
            };
            let mut rows = vec![
                ("pods".to_string(), s.pods_total.to_string()),
                (
                    "scheduled".to_string(),
                    format!("{} ({} already bound, {} placed)", s.scheduled, s.already_bound, s.placed),
                ),
                ("unschedulable".to_string(), s.unschedulable.to_string()),
                ("gated".to_string(), s.gated.to_string()),
                ("cpu allocated".to_string(), alloc("cpu")),
                ("memory allocated".to_string(), alloc("memory")),
                ("gpu allocated".to_string(), alloc("gpu")),
                (
                    "gpu fragmentation".to_string(),
                    format!(
                        "{:.2}% of GPUs ({:.1}% of idle)",
                        s.gpu_fragmentation.amount_pct, s.gpu_fragmentation.ratio_pct
                    ),
                ),
                (
                    "queue wait p50 / p99".to_string(),
                    format!("{:.1} s / {:.1} s", s.queue_wait_s.p50, s.queue_wait_s.p99),
                ),
                ("makespan".to_string(), format!("{:.0} s", s.makespan_s)),
            ];
            if let Some(f) = &s.fill {
                rows.push((
                    "unallocated GPU at 100% arrived".to_string(),
                    format!("{:.2}% ± {:.2}", f.unallocated_gpu_pct.mean, f.unallocated_gpu_pct.std),
                ));
            }
            (s.config.clone(), rows)
        })
        .collect()
}

fn write_report(
    out: &Path,
    runs: &[Vec<RunResult>],
    summaries: &[Summary],
    context: &Context,
) -> Result<Vec<PathBuf>, OutputError> {
    let mut written = Vec::new();
    let mut rendered = Vec::new();
    for f in report::figures(runs, context) {
        let svg = f.svg().map_err(|message| OutputError::Chart { chart: f.name.clone(), message })?;
        let path = out.join(format!("{}.svg", f.name));
        write(&path, &svg)?;
        written.push(path);
        rendered.push((f, svg));
    }
    let explained: Vec<(String, &PodKey, &[ExplainedAttempt])> = runs
        .iter()
        .filter_map(|r| r.first())
        .flat_map(|r| r.explained.iter().map(|(k, a)| (r.config.clone(), k, a.as_slice())))
        .collect();
    let sections = report::explained_section(&explained);
    let table = table(summaries);
    let page = report::html(&Page {
        title: "Tessera simulation report",
        provenance: &context.provenance,
        table: &table,
        figures: &rendered,
        sections: &sections,
    });
    write(&out.join("report.html"), &page)?;
    written.push(out.join("report.html"));
    Ok(written)
}
