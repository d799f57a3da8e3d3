//! The report's figures, built from the runs: allocation over time, allocation per node group
//! (heatmaps), pending pods, queue wait, unschedulable pods by reason, GPU fragmentation, DRA
//! devices held and fill mode's curve. Each configuration has one colour on every chart.

use std::collections::BTreeMap;

use super::groups::{NodeShape, Resource, group_rows};
use super::heatmap::{HeatRow, Heatmap, Panel};
use super::line::{LineChart, Series, YAxis, mean_band};
use super::page::Provenance;
use super::reasons::{self, FIRST_PODS};
use super::{Figure, Kind};
use crate::sim::input::SimInput;
use crate::sim::record::{RunResult, TimelinePoint};
use crate::sim::{Mode, NamedConfig, SimOptions};

/// What the figures need besides the runs.
#[derive(Clone, Debug, PartialEq)]
pub struct Context {
    /// What produced the runs.
    pub provenance: Provenance,
    /// The cluster's nodes, grouped.
    pub nodes: Vec<NodeShape>,
}

impl Context {
    /// The context of a run of `input` under `configs` with `opts`.
    pub fn new(input: &SimInput, configs: &[NamedConfig], opts: &SimOptions) -> Context {
        Context {
            provenance: Provenance::new(input, configs, opts),
            nodes: input.nodes.iter().map(NodeShape::of).collect(),
        }
    }
}

/// Most points of a line (charts do not need every event).
const MAX_POINTS: usize = 1500;
/// Time buckets of a heatmap.
const BUCKETS: usize = 48;

/// The x axis of charts over time: a divisor and its label.
#[derive(Clone, Copy, Debug)]
struct TimeAxis {
    scale: f64,
    label: &'static str,
}

/// Every figure of the report, in page order.
pub fn figures(runs: &[Vec<RunResult>], ctx: &Context) -> Vec<Figure> {
    let firsts: Vec<&RunResult> = runs.iter().filter_map(|r| r.first()).collect();
    let mode = ctx.provenance.mode;
    let axis = time_axis(&firsts, mode);
    let gpus = firsts.iter().any(|r| r.cluster_gpus > 0.0);
    let mut out = vec![allocation(&firsts, axis, gpus, mode)];
    out.extend(heatmap(&firsts, ctx, axis, Resource::Cpu));
    if gpus {
        out.extend(heatmap(&firsts, ctx, axis, Resource::Gpu));
    }
    if mode == Mode::Replay {
        out.push(pending(&firsts, axis));
        out.push(queue_wait(&firsts));
    }
    out.extend(unschedulable(&firsts));
    if gpus {
        out.push(fragmentation(runs, axis, mode));
    }
    out.extend(devices(&firsts, axis, mode));
    out.extend(fill_curve(runs));
    out
}

fn time_axis(firsts: &[&RunResult], mode: Mode) -> TimeAxis {
    if mode == Mode::Fill {
        return TimeAxis { scale: 1.0, label: "pods submitted" };
    }
    let span = firsts.iter().filter_map(|r| r.timeline.last()).map(|p| p.t).fold(0.0, f64::max);
    if span > 7200.0 {
        TimeAxis { scale: 3600.0, label: "virtual time (h)" }
    } else {
        TimeAxis { scale: 1.0, label: "virtual time (s)" }
    }
}

/// At most `max` evenly spaced points, and the last.
pub fn downsample(points: Vec<(f64, f64)>, max: usize) -> Vec<(f64, f64)> {
    if points.len() <= max {
        return points;
    }
    let step = points.len() as f64 / max as f64;
    (0..max).map(|i| points[(i as f64 * step) as usize]).chain(points.last().copied()).collect()
}

fn over_time(r: &RunResult, axis: TimeAxis, f: impl Fn(&TimelinePoint) -> f64) -> Vec<(f64, f64)> {
    downsample(r.timeline.iter().map(|p| (p.t / axis.scale, f(p))).collect(), MAX_POINTS)
}

fn figure(name: &str, title: &str, caption: String, kind: Kind) -> Figure {
    Figure { name: name.into(), title: title.into(), caption, kind, after: String::new() }
}

fn line(x_label: &str, y_label: &str, series: Vec<Series>) -> LineChart {
    LineChart { x_label: x_label.into(), y_label: y_label.into(), series, ..LineChart::default() }
}

/// Metrics of a timeline point, by name.
type Metric = (&'static str, fn(&TimelinePoint) -> f64);
const RESOURCES: [Metric; 3] = [("cpu", |p| p.cpu), ("memory", |p| p.memory), ("gpu", |p| p.gpu)];

fn allocation(firsts: &[&RunResult], axis: TimeAxis, gpus: bool, mode: Mode) -> Figure {
    let several = firsts.len() > 1;
    let shown = if gpus { "gpu" } else { "cpu" };
    let mut series = Vec::new();
    for r in firsts {
        for (name, f) in RESOURCES {
            if (several && name != shown) || (name == "gpu" && !gpus) {
                continue;
            }
            let label = if several { r.config.clone() } else { name.to_string() };
            series.push(Series::steps(label, over_time(r, axis, f)));
        }
    }
    let when = match mode {
        Mode::Replay => "at every instant; it changes only when a pod is bound or leaves, hence the steps",
        Mode::Fill => "after each pod submitted (pods never leave in fill mode)",
    };
    let what = if several {
        format!(
            "Share of the cluster's {} that placed pods request under each configuration, {when}.",
            shown.to_uppercase()
        )
    } else {
        format!(
            "Share of the cluster's allocatable CPU, memory{} that placed pods request, {when}.",
            if gpus { " and GPU" } else { "" }
        )
    };
    let y =
        if several { format!("{} allocated (% of capacity)", shown.to_uppercase()) } else { "% of capacity".into() };
    figure("allocation", "Allocation over time", what, Kind::Line(line(axis.label, &y, series)))
}

fn heatmap(firsts: &[&RunResult], ctx: &Context, axis: TimeAxis, resource: Resource) -> Option<Figure> {
    let horizon = horizon(firsts, ctx.provenance.mode);
    let width = horizon / BUCKETS as f64;
    let panels: Vec<Panel> = firsts
        .iter()
        .map(|r| {
            let rows = group_rows(&ctx.nodes, &r.records, resource, horizon, BUCKETS);
            let rows = rows.iter().map(|g| HeatRow { label: g.label.clone(), shares: g.shares(width) }).collect();
            Panel { title: r.config.clone(), rows }
        })
        .collect();
    if panels.iter().all(|p| p.rows.is_empty()) {
        return None;
    }
    let (name, title, what) = match resource {
        Resource::Cpu => ("heatmap_cpu", "CPU allocation per node group", "CPU"),
        Resource::Gpu => ("heatmap_gpu", "GPU allocation per node group", "GPU"),
    };
    let caption = format!(
        "Each row is a group of nodes (zone, rack or GPU model) and each cell the share of that group's {what} \
         requested by its pods, averaged over one of {BUCKETS} time buckets (white 0%, dark blue 100%); past {} \
         rows of a kind, the smaller groups share one \"others\" row{}.",
        super::groups::MAX_ROWS_PER_KIND,
        if firsts.len() > 1 { "; one panel per configuration" } else { "" }
    );
    let map = Heatmap { x_label: axis.label.into(), x_end: horizon / axis.scale, panels };
    Some(figure(name, title, caption, Kind::Heatmap(map)))
}

/// Where the time axis ends: the last instant any run saw (fill mode: the pod count).
fn horizon(firsts: &[&RunResult], mode: Mode) -> f64 {
    let last = firsts.iter().filter_map(|r| r.timeline.last()).map(|p| p.t).fold(0.0, f64::max);
    let end = if mode == Mode::Fill { last + 1.0 } else { last };
    if end > 0.0 { end } else { 1.0 }
}

fn pending(firsts: &[&RunResult], axis: TimeAxis) -> Figure {
    let series =
        firsts.iter().map(|r| Series::steps(r.config.clone(), over_time(r, axis, |p| p.pending as f64))).collect();
    let chart = LineChart { y_axis: YAxis::Count, ..line(axis.label, "pods", series) };
    let caption = "Pods waiting for a node at every instant (in the queue, backing off, held for their gang or \
                   their scheduling gates), as steps."
        .to_string();
    figure("pending", "Pending pods over time", caption, Kind::Line(chart))
}

/// The shortest wait a logarithmic axis shows: the power of ten at or below the shortest
/// positive wait, within [0.001 s, 1 s].
pub fn wait_floor(waits: impl Iterator<Item = f64>) -> f64 {
    let least = waits.filter(|w| *w > 0.0).fold(f64::MAX, f64::min);
    if least == f64::MAX { 1.0 } else { 10f64.powf(least.log10().floor()).clamp(0.001, 1.0) }
}

/// The cumulative share of scheduled pods by wait, waits under `floor` drawn at `floor`.
pub fn wait_cdf(r: &RunResult, floor: f64) -> Vec<(f64, f64)> {
    let mut waits: Vec<f64> = r.records.iter().filter_map(|x| x.start.map(|s| s - x.arrival)).collect();
    waits.sort_by(f64::total_cmp);
    let n = waits.len().max(1) as f64;
    let points = waits.iter().enumerate().map(|(i, w)| (w.max(floor), 100.0 * (i + 1) as f64 / n)).collect();
    downsample(points, 1000)
}

fn queue_wait(firsts: &[&RunResult]) -> Figure {
    let waits = firsts.iter().flat_map(|r| r.records.iter().filter_map(|x| x.start.map(|s| s - x.arrival)));
    let floor = wait_floor(waits);
    let series = firsts.iter().map(|r| Series::steps(r.config.clone(), wait_cdf(r, floor))).collect();
    let chart = LineChart { x_log: true, ..line("wait (virtual s, log scale)", "% of scheduled pods", series) };
    let caption = format!(
        "Share of scheduled pods bound within a given wait after arriving (cumulative), on a logarithmic time \
         axis; pods that waited less than {} s (most are bound the instant they arrive) sit at its left edge.",
        super::axis::format_tick(floor)
    );
    figure("queue_wait", "Queue wait (CDF of scheduled pods)", caption, Kind::Line(chart))
}

fn unschedulable(firsts: &[&RunResult]) -> Option<Figure> {
    let per: Vec<(String, Vec<reasons::ReasonGroup>)> =
        firsts.iter().map(|r| (r.config.clone(), reasons::by_main_reason(&r.records))).collect();
    if per.iter().all(|(_, g)| g.is_empty()) {
        return None;
    }
    let caption = format!(
        "Pods that never got a node, each counted once under its main reason (the one that ruled out the most \
         nodes); the table below names the first {FIRST_PODS} pods of each reason."
    );
    let bars = Kind::Bars(reasons::bar_chart(&per));
    let mut f = figure("unschedulable", "Unschedulable pods by reason", caption, bars);
    f.after = reasons::table(&per);
    Some(f)
}

/// A seed's curve keyed by whole x (fill mode's arrived %).
fn keyed(points: &[(f64, f64)]) -> BTreeMap<u32, f64> {
    points.iter().map(|&(x, y)| (x.round().max(0.0) as u32, y)).collect()
}

/// A line per configuration: the mean over its seeds, with a band of ± std when there are
/// several.
fn over_seeds(runs: &[Vec<RunResult>], curve: impl Fn(&RunResult) -> Option<BTreeMap<u32, f64>>) -> Vec<Series> {
    runs.iter()
        .filter_map(|seeds| {
            let first = seeds.first()?;
            let curves: Vec<BTreeMap<u32, f64>> = seeds.iter().filter_map(&curve).collect();
            if curves.is_empty() {
                return None;
            }
            let (mean, band) = mean_band(&curves);
            let band = if curves.len() > 1 { band } else { Vec::new() };
            Some(Series { label: first.config.clone(), points: mean, step: false, band })
        })
        .collect()
}

fn seeds_note(runs: &[Vec<RunResult>]) -> String {
    match runs.iter().map(Vec::len).max().unwrap_or(1) {
        1 => "one seed".to_string(),
        n => format!("mean over {n} seeds, shaded ± one standard deviation"),
    }
}

fn fragmentation(runs: &[Vec<RunResult>], axis: TimeAxis, mode: Mode) -> Figure {
    let y = "fragmented GPU (% of all GPU)";
    let (chart, when) = match mode {
        Mode::Replay => {
            let series = runs
                .iter()
                .filter_map(|seeds| seeds.first())
                .map(|r| {
                    Series::new(r.config.clone(), r.frag_curve.iter().map(|&(t, v)| (t / axis.scale, v)).collect())
                })
                .collect();
            (line(axis.label, y, series), "sampled over the run".to_string())
        }
        Mode::Fill => {
            let series = over_seeds(runs, |r| Some(keyed(&r.frag_curve)));
            let x = "arrived GPU request (% of capacity)";
            (line(x, y, series), format!("against the GPU demand arrived so far ({})", seeds_note(runs)))
        }
    };
    let caption = format!(
        "FGD's fragmentation: the share of the cluster's GPU capacity that sits idle on nodes where the workload's \
         typical pods could not use it, {when}."
    );
    figure("gpu_fragmentation", "GPU fragmentation", caption, Kind::Line(chart))
}

/// DRA devices held per driver: every driver's line for one config, or one line per config
/// for the driver with the most devices (as the allocation chart shows one resource).
fn devices(firsts: &[&RunResult], axis: TimeAxis, mode: Mode) -> Option<Figure> {
    let sizes = firsts.iter().find_map(|r| r.device_curve.last())?;
    let largest = sizes.1.iter().max_by_key(|(driver, c)| (c[0], std::cmp::Reverse(**driver)))?.0;
    let several = firsts.len() > 1;
    let mut series = Vec::new();
    for r in firsts {
        for driver in sizes.1.keys().filter(|d| !several || *d == largest) {
            let points = r
                .device_curve
                .iter()
                .filter_map(|(x, used)| {
                    used.get(driver).map(|c| (x / axis.scale, 100.0 * c[1] as f64 / c[0].max(1) as f64))
                })
                .collect();
            let label = if several { r.config.clone() } else { (*driver).to_string() };
            series.push(Series::new(label, points));
        }
    }
    let when = match mode {
        Mode::Replay => "sampled over the run",
        Mode::Fill => "as pods are submitted",
    };
    let what = if several {
        format!("Share of the {largest} driver's DRA devices that claims hold under each configuration, {when}.")
    } else {
        format!("Share of each DRA driver's devices that claims hold, {when}.")
    };
    let caption = format!(
        "{what} A device that many nodes reach counts once; GPUs published only through DRA show here, not in the GPU views."
    );
    let chart = line(axis.label, "devices held (% of the driver's devices)", series);
    Some(figure("dra_devices", "DRA devices held by claims", caption, Kind::Line(chart)))
}

fn fill_curve(runs: &[Vec<RunResult>]) -> Option<Figure> {
    let series = over_seeds(runs, |r| r.fill.as_ref().map(|f| f.curve()));
    if series.is_empty() {
        return None;
    }
    let caption = format!(
        "GPU allocated against the GPU requested by the pods submitted so far, both as % of the cluster's GPU \
         capacity (the FGD paper's figure); {}.",
        seeds_note(runs)
    );
    let chart = line("arrived GPU request (% of capacity)", "GPU allocated (%)", series);
    Some(figure("fill", "GPU allocation against arrived GPU demand", caption, Kind::Line(chart)))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sim::record::{FillTrace, PodRecord};
    use tessera_plugins::model::Pod;
    use tessera_plugins::resources::ResourceVec;

    #[test]
    fn waits_under_the_floor_sit_at_the_floor() {
        assert_eq!(wait_floor([0.0, 0.5, 3.0].into_iter()), 0.1);
        assert_eq!(wait_floor([0.0].into_iter()), 1.0);
        assert_eq!(wait_floor([1e-9].into_iter()), 0.001);
        let mut r = RunResult::default();
        for (arrival, start) in [(0.0, 0.0), (0.0, 2.0)] {
            let mut rec = PodRecord::arrived(&Pod::new("d", "p", ResourceVec::cpu_mem(1, 0)), arrival);
            rec.start = Some(start);
            r.records.push(rec);
        }
        assert_eq!(wait_cdf(&r, 0.1), vec![(0.1, 50.0), (2.0, 100.0)]);
    }

    #[test]
    fn fill_curves_get_a_band_only_over_several_seeds() {
        let run = |seed, alloc| RunResult {
            config: "c".into(),
            seed,
            fill: Some(FillTrace { points: vec![(0.0, 0.0), (1.0, alloc)], fragmentation: vec![] }),
            ..RunResult::default()
        };
        let one = over_seeds(&[vec![run(1, 10.0)]], |r| r.fill.as_ref().map(|f| f.curve()));
        assert!(one[0].band.is_empty());
        let two = over_seeds(&[vec![run(1, 10.0), run(2, 20.0)]], |r| r.fill.as_ref().map(|f| f.curve()));
        assert_eq!(two[0].points, vec![(0.0, 0.0), (1.0, 15.0)]);
        assert_eq!(two[0].band, vec![(0.0, 0.0, 0.0), (1.0, 10.0, 20.0)]);
    }

    fn context(mode: Mode, gpus: usize) -> Context {
        let node = super::super::groups::tests::node_with("n1", &[(super::super::groups::ZONE_LABEL, "a")], gpus, "T4");
        let provenance = Provenance {
            inputs: vec![],
            nodes: 1,
            pods: 2,
            running: 0,
            configs: vec!["a".into(), "b".into()],
            seed: 1,
            mode,
            repeat: 1,
            fill_to: 1.3,
            version: "0",
        };
        Context { provenance, nodes: vec![NodeShape::of(&node)] }
    }

    fn run(config: &str, gpus: f64) -> RunResult {
        let pod = Pod::new("d", "p", ResourceVec::cpu_mem(1000, 0));
        let mut placed = PodRecord::arrived(&pod, 0.0);
        (placed.node, placed.start) = (Some(tessera_plugins::intern::Sym::new("n1")), Some(0.0));
        let mut pending = PodRecord::arrived(&Pod::new("d", "q", ResourceVec::cpu_mem(9000, 0)), 1.0);
        pending.reasons = vec!["Insufficient cpu".into()];
        let point = |t| TimelinePoint { t, pending: 1, running: 1, cpu: 25.0, memory: 0.0, gpu: 0.0 };
        RunResult {
            config: config.into(),
            records: vec![placed, pending],
            timeline: vec![point(0.0), point(10.0)],
            cluster_gpus: gpus,
            frag_curve: if gpus > 0.0 { vec![(0.0, 0.0), (10.0, 5.0)] } else { vec![] },
            ..RunResult::default()
        }
    }

    fn names(figures: &[Figure]) -> Vec<&str> {
        figures.iter().map(|f| f.name.as_str()).collect()
    }

    #[test]
    fn gpu_views_only_where_there_are_gpus_and_every_view_renders() {
        let runs = vec![vec![run("a", 0.0)], vec![run("b", 0.0)]];
        let fs = figures(&runs, &context(Mode::Replay, 0));
        assert_eq!(names(&fs), ["allocation", "heatmap_cpu", "pending", "queue_wait", "unschedulable"]);
        let runs = vec![vec![run("a", 2.0)], vec![run("b", 2.0)]];
        let fs = figures(&runs, &context(Mode::Replay, 2));
        assert_eq!(
            names(&fs),
            ["allocation", "heatmap_cpu", "heatmap_gpu", "pending", "queue_wait", "unschedulable", "gpu_fragmentation"]
        );
        for f in &fs {
            assert!(f.svg().unwrap().contains("<svg"), "{} renders", f.name);
            assert!(!f.caption.is_empty() && f.caption.ends_with('.'), "{} explains itself", f.name);
        }
        let Kind::Line(alloc) = &fs[0].kind else { panic!("allocation is a line chart") };
        assert!(alloc.series.iter().all(|s| s.step), "allocation changes in steps");
        assert_eq!(alloc.series.len(), 2, "one line per config");
        let Kind::Heatmap(map) = &fs[1].kind else { panic!("a heatmap") };
        assert_eq!(map.panels.len(), 2, "one panel per config");
        assert_eq!(map.panels[0].rows[0].label, "zone a");
        assert!(map.panels[0].rows[0].shares.iter().all(|s| (s - 25.0).abs() < 1e-9), "1 of 4 CPUs throughout");
        let Some(Kind::Line(wait)) = fs.iter().find(|f| f.name == "queue_wait").map(|f| &f.kind) else {
            panic!("queue wait is a line chart")
        };
        assert!(wait.x_log);
    }

    #[test]
    fn dra_devices_show_every_driver_for_one_config_and_the_largest_for_several() {
        let with_devices = |config: &str, held: usize| {
            let at = |x: f64, held: usize| (x, [("gpu.example.com", [8, held]), ("rdma.example.com", [4, 1])].into());
            RunResult { device_curve: vec![at(0.0, 0), at(10.0, held)], ..run(config, 0.0) }
        };
        let one = figures(&[vec![with_devices("a", 2)]], &context(Mode::Replay, 0));
        let Some(Kind::Line(chart)) = one.iter().find(|f| f.name == "dra_devices").map(|f| &f.kind) else {
            panic!("no dra_devices line chart: {:?}", names(&one))
        };
        let lines: Vec<(&str, Vec<(f64, f64)>)> =
            chart.series.iter().map(|s| (s.label.as_str(), s.points.clone())).collect();
        assert_eq!(
            lines,
            [
                ("gpu.example.com", vec![(0.0, 0.0), (10.0, 25.0)]),
                ("rdma.example.com", vec![(0.0, 25.0), (10.0, 25.0)])
            ]
        );
        let two = figures(&[vec![with_devices("a", 2)], vec![with_devices("b", 4)]], &context(Mode::Replay, 0));
        let Some(f) = two.iter().find(|f| f.name == "dra_devices") else { panic!("no dra_devices") };
        let Kind::Line(chart) = &f.kind else { panic!("a line chart") };
        let last: Vec<(&str, f64)> = chart.series.iter().map(|s| (s.label.as_str(), s.points[1].1)).collect();
        assert_eq!(last, [("a", 25.0), ("b", 50.0)], "one line per config, for the driver with most devices");
        assert!(f.caption.contains("gpu.example.com"), "{}", f.caption);
        assert!(!names(&figures(&[vec![run("a", 0.0)]], &context(Mode::Replay, 0))).contains(&"dra_devices"));
    }

    #[test]
    fn downsampling_keeps_the_last_point() {
        let pts: Vec<(f64, f64)> = (0..10).map(|i| (f64::from(i), 0.0)).collect();
        let d = downsample(pts, 3);
        assert_eq!(d.len(), 4);
        assert_eq!(d.last(), Some(&(9.0, 0.0)));
    }
}
