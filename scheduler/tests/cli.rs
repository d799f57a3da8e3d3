//! `tessera simulate` end to end: the binary on small inputs, the bundled sample and the openb
//! trace, with assertions on its exit status, messages and output files.

// Test code: a failed unwrap is a failed test (the workspace denies them in shipped code).
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::{BTreeMap, HashMap};
use std::ffi::{OsStr, OsString};
use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use serde_json::Value;

/// What one run of the binary did.
struct Run {
    code: Option<i32>,
    stdout: String,
    stderr: String,
}

impl Run {
    /// Asserts success and returns the run.
    fn ok(self) -> Run {
        assert_eq!(self.code, Some(0), "tessera failed:\nstdout:\n{}\nstderr:\n{}", self.stdout, self.stderr);
        self
    }

    /// Asserts a clean failure (exit 1, an `error:` line, no panic) and returns stderr.
    fn error(self) -> String {
        assert_eq!(self.code, Some(1), "expected exit 1:\nstdout:\n{}\nstderr:\n{}", self.stdout, self.stderr);
        assert!(!self.stderr.contains("panicked"), "a panic is not an error message:\n{}", self.stderr);
        assert!(self.stderr.starts_with("error: "), "stderr:\n{}", self.stderr);
        self.stderr
    }
}

/// `tessera simulate --cluster C --workload W --out O` and `extra` flags.
fn simulate(cluster: &Path, workload: &Path, out: &Path, extra: &[&str]) -> Run {
    let mut args: Vec<&OsStr> = vec![
        "simulate".as_ref(),
        "--cluster".as_ref(),
        cluster.as_os_str(),
        "--workload".as_ref(),
        workload.as_os_str(),
        "--out".as_ref(),
        out.as_os_str(),
    ];
    args.extend(extra.iter().map(OsStr::new));
    tessera(args)
}

fn tessera_in<S: AsRef<OsStr>>(dir: Option<&Path>, args: impl IntoIterator<Item = S>) -> Run {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_tessera"));
    cmd.args(args).env_remove("RUST_LOG").stdin(Stdio::null());
    if let Some(dir) = dir {
        cmd.current_dir(dir);
    }
    let out = cmd.output().expect("running tessera");
    Run {
        code: out.status.code(),
        stdout: String::from_utf8(out.stdout).expect("stdout is UTF-8"),
        stderr: String::from_utf8(out.stderr).expect("stderr is UTF-8"),
    }
}

fn tessera<S: AsRef<OsStr>>(args: impl IntoIterator<Item = S>) -> Run {
    tessera_in(None, args)
}

/// A fresh, empty folder for one test.
fn scratch(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("tessera-cli-{}-{name}", std::process::id()));
    let _ = fs::remove_dir_all(&dir);
    fs::create_dir_all(&dir).expect("creating a scratch folder");
    dir
}

fn write(dir: &Path, name: &str, text: &str) -> PathBuf {
    let path = dir.join(name);
    fs::write(&path, text).expect("writing a test input");
    path
}

fn read(path: &Path) -> String {
    fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

fn json(path: &Path) -> Value {
    serde_json::from_str(&read(path)).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// `summary.json` without the two wall-time fields, which vary run to run. Panics if they
/// are missing, so that a renamed field cannot make the comparison vacuous.
fn without_wall_time(text: &str) -> String {
    let kept: Vec<&str> = text
        .lines()
        .filter(|l| !l.trim_start().starts_with("\"engine_wall_s\"") && !l.trim_start().starts_with("\"pods_per_sec\""))
        .collect();
    assert_eq!(text.lines().count() - kept.len(), 2 * text.matches("\"config\"").count(), "{text}");
    kept.join("\n")
}

/// Rows of a CSV file as maps from column to value.
fn csv_rows(path: &Path) -> Vec<HashMap<String, String>> {
    let mut reader = csv::Reader::from_path(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let headers = reader.headers().expect("a header").clone();
    reader
        .records()
        .map(|r| {
            let r = r.expect("a well-formed row");
            headers.iter().zip(r.iter()).map(|(h, v)| (h.to_string(), v.to_string())).collect()
        })
        .collect()
}

const PLACEMENTS_HEADER: &str = "namespace,name,node,start_s,end_s,attempts,reason,gpus,devices,nominated_node";

// ---- small inputs ----

/// One node with 4 CPUs and 8Gi.
const ONE_NODE: &str = "\
apiVersion: v1
kind: Node
metadata: {name: n1, labels: {kubernetes.io/hostname: n1}}
status:
  allocatable: {cpu: \"4\", memory: 8Gi, pods: \"110\"}
";

fn pod(name: &str, cpu: &str) -> String {
    format!(
        "apiVersion: v1\nkind: Pod\nmetadata: {{name: {name}, namespace: default}}\nspec:\n  containers:\n  \
         - {{name: c, image: x, resources: {{requests: {{cpu: \"{cpu}\"}}}}}}\n"
    )
}

// ---- the bundled sample ----

/// The number of Nodes in the bundled sample, which its unschedulable messages count.
fn sample_nodes() -> usize {
    include_str!("../src/sim/sample/cluster.yaml").lines().filter(|l| *l == "kind: Node").count()
}

/// The bundled sample, run once as a user would: `tessera simulate` with no argument in an
/// empty folder. Returns the output folder.
fn sample_run() -> &'static Path {
    static OUT: OnceLock<PathBuf> = OnceLock::new();
    OUT.get_or_init(|| {
        let dir = scratch("sample");
        let run = tessera_in(Some(&dir), ["simulate"]).ok();
        assert!(run.stdout.contains("tessera-sim"), "stdout names the output folder:\n{}", run.stdout);
        dir.join("tessera-sim")
    })
}

/// The charts of a replay of the bundled sample (GPUs, DRA devices), in page order.
const REPLAY_CHARTS: [&str; 8] = [
    "allocation",
    "heatmap_cpu",
    "heatmap_gpu",
    "pending",
    "queue_wait",
    "unschedulable",
    "gpu_fragmentation",
    "dra_devices",
];

#[test]
fn the_bundled_sample_runs_and_writes_every_output() {
    let out = sample_run();
    for f in [
        "summary.json",
        "placements.csv",
        "timeline.csv",
        "report.html",
        "allocation.svg",
        "pending.svg",
        "queue_wait.svg",
    ] {
        assert!(out.join(f).is_file(), "{f} was not written");
    }
    let s = json(&out.join("summary.json"));
    assert_eq!(s["config"], "default");
    assert_eq!(s["mode"], "replay");
    assert_eq!(s["seeds"], serde_json::json!([42]));
    let total = s["pods_total"].as_u64().unwrap();
    let scheduled = s["scheduled"].as_u64().unwrap();
    let unschedulable = s["unschedulable"].as_u64().unwrap();
    assert!(total > 1000, "the sample is a real workload: {total} pods");
    assert_eq!(scheduled + unschedulable, total);
    assert!(scheduled > total * 9 / 10, "{scheduled} of {total} scheduled");
    for resource in ["cpu", "memory", "gpu"] {
        let mean = s["allocation"][resource]["time_weighted_mean_pct"].as_f64().unwrap();
        assert!(mean > 0.0 && mean <= 100.0, "{resource}: {mean}");
    }

    let text = read(&out.join("placements.csv"));
    assert_eq!(text.lines().next(), Some(PLACEMENTS_HEADER));
    let rows = csv_rows(&out.join("placements.csv"));
    assert_eq!(rows.len() as u64, total, "one placements row per pod");
    // Every pod that never ran says why, with the message its PodScheduled condition shows,
    // and the summary's tally agrees with those messages.
    let waiting: Vec<&HashMap<String, String>> = rows.iter().filter(|r| r["node"].is_empty()).collect();
    assert_eq!(waiting.len() as u64, unschedulable);
    let none_of_all = format!("0/{} nodes are available: ", sample_nodes());
    for r in &waiting {
        assert!(r["reason"].starts_with(&none_of_all), "{r:?}");
    }
    let by_reason = s["unschedulable_by_reason"].as_object().unwrap();
    assert_eq!(by_reason.is_empty(), waiting.is_empty());
    for (reason, n) in by_reason {
        let in_csv = waiting.iter().filter(|r| r["reason"].contains(reason.as_str())).count();
        assert_eq!(n.as_u64(), Some(in_csv as u64), "{reason}");
    }
    for r in rows.iter().filter(|r| !r["node"].is_empty()) {
        assert!(r["reason"].is_empty() && !r["start_s"].is_empty(), "{r:?}");
    }

    let timeline = read(&out.join("timeline.csv"));
    assert_eq!(timeline.lines().next(), Some("t_s,pending,running,cpu_pct,memory_pct,gpu_pct"));
    assert!(timeline.lines().count() > 10);

    let report = read(&out.join("report.html"));
    assert!(report.starts_with("<!doctype html>"));
    assert!(!report.contains("src=\"http"), "the page must stand alone");
    assert_eq!(report.matches("<svg").count(), REPLAY_CHARTS.len(), "every chart inline");
    for chart in REPLAY_CHARTS {
        assert!(report.contains(&format!("<figure id=\"{chart}\">")), "{chart} is not in the page");
    }
    for chart in ["allocation", "pending", "queue_wait", "dra_devices"] {
        let svg = read(&out.join(format!("{chart}.svg")));
        assert!(svg.contains("<svg") && svg.contains("<polyline"), "{chart}.svg has no line");
        assert!(report.contains(&format!("<figure id=\"{chart}\">")), "{chart} is not in the page");
    }
}

/// A placement's `start_s..end_s` in seconds; an empty `end_s` (still running) is endless.
fn running_span(row: &HashMap<String, String>) -> (f64, f64) {
    let start: f64 = row["start_s"].parse().unwrap_or_else(|e| panic!("start_s: {e}: {row:?}"));
    let end = match row["end_s"].as_str() {
        "" => f64::INFINITY,
        v => v.parse().unwrap_or_else(|e| panic!("end_s: {e}: {row:?}")),
    };
    (start, end)
}

#[test]
fn the_bundled_sample_places_dra_pods_on_their_own_devices() {
    let rows = csv_rows(&sample_run().join("placements.csv"));
    let with_devices: Vec<&HashMap<String, String>> = rows.iter().filter(|r| !r["devices"].is_empty()).collect();
    assert!(with_devices.len() >= 30, "{} pods hold DRA devices", with_devices.len());
    // Each device is `driver/pool/device`, from a pool local to the pod's node.
    let mut holders: BTreeMap<&str, Vec<&HashMap<String, String>>> = BTreeMap::new();
    for r in &with_devices {
        assert!(!r["node"].is_empty(), "a pod with no node holds no device: {r:?}");
        for device in r["devices"].split(';') {
            let parts: Vec<&str> = device.split('/').collect();
            assert_eq!(parts.len(), 3, "{device} is not driver/pool/device: {r:?}");
            assert!(parts.iter().all(|p| !p.is_empty()), "{device}: {r:?}");
            assert_eq!(parts[1], r["node"], "{device} is not on the pod's node: {r:?}");
            holders.entry(device).or_default().push(r);
        }
    }
    // No device is held by two pods at once.
    for (device, rows) in &holders {
        for (i, a) in rows.iter().enumerate() {
            for b in &rows[i + 1..] {
                let ((a0, a1), (b0, b1)) = (running_span(a), running_span(b));
                assert!(a1 <= b0 || b1 <= a0, "{device} is held by two pods at once:\n{a:?}\n{b:?}");
            }
        }
    }
}

#[test]
fn same_seed_gives_identical_outputs_whatever_the_worker_count() {
    let dir = scratch("determinism");
    let run = |workers: &str| {
        let out = dir.join(format!("w{workers}"));
        tessera([OsStr::new("simulate"), "--workers".as_ref(), workers.as_ref(), "--out".as_ref(), out.as_os_str()])
            .ok();
        out
    };
    let (one, four) = (run("1"), run("4"));
    for f in ["placements.csv", "timeline.csv"] {
        assert!(read(&one.join(f)) == read(&four.join(f)), "{f} differs between --workers 1 and --workers 4");
    }
    assert_eq!(
        without_wall_time(&read(&one.join("summary.json"))),
        without_wall_time(&read(&four.join("summary.json")))
    );
    let _ = fs::remove_dir_all(&dir);
}

/// A GPU trace in openb's format: `nodes` nodes of mixed models and GPU counts, `pods` pods
/// mixing CPU-only, shared-GPU and multi-GPU requests, some restricted to models. Many nodes
/// are alike, so tie-breaking is exercised.
fn synthetic_trace(dir: &Path, nodes: usize, pods: usize) -> (PathBuf, PathBuf) {
    let mut x: u64 = 0x2545_f491_4f6c_dd1d;
    let mut next = move |n: u64| {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        x % n
    };
    let models = ["V100M16", "V100M32", "T4", "A10"];
    let mut n = String::from("sn,cpu_milli,memory_mib,gpu,model\n");
    for i in 0..nodes {
        let gpus = [2, 4, 8][next(3) as usize];
        n.push_str(&format!("node-{i:04},{},{},{gpus},{}\n", 64_000, 262_144, models[next(4) as usize]));
    }
    let mut p = String::from(
        "name,cpu_milli,memory_mib,num_gpu,gpu_milli,gpu_spec,qos,pod_phase,creation_time,deletion_time,scheduled_time\n",
    );
    for i in 0..pods {
        let (num, milli) = match next(10) {
            0 => (0, 0),
            1..=5 => (1, [100, 250, 300, 500, 700][next(5) as usize]),
            6..=7 => (1, 1000),
            _ => ([2, 4, 8][next(3) as usize], 1000),
        };
        let spec = if next(5) == 0 { models[next(4) as usize] } else { "" };
        p.push_str(&format!("pod-{i:05},{},{},{num},{milli},{spec},LS,Running,{i},,\n", 1000 + next(8) * 1000, 4096));
    }
    (write(dir, "nodes.csv", &n), write(dir, "pods.csv", &p))
}

#[test]
fn fill_mode_is_deterministic_whatever_the_worker_count() {
    let dir = scratch("fill-determinism");
    // More than 256 nodes: parallel Filter splits the cluster into several chunks.
    let (nodes, pods) = synthetic_trace(&dir, 300, 1500);
    let run = |workers: &str| {
        let out = dir.join(format!("w{workers}"));
        let args = [OsStr::new("simulate"), "--mode".as_ref(), "fill".as_ref(), "--repeat".as_ref(), "2".as_ref()];
        let more = ["--cluster".as_ref(), nodes.as_os_str(), "--workload".as_ref(), pods.as_os_str()];
        let last = ["--workers".as_ref(), workers.as_ref(), "--out".as_ref(), out.as_os_str()];
        tessera(args.into_iter().chain(more).chain(last)).ok();
        out
    };
    let (one, four) = (run("1"), run("4"));
    for f in ["placements.csv", "timeline.csv", "fill.csv"] {
        assert!(read(&one.join(f)) == read(&four.join(f)), "{f} differs between --workers 1 and --workers 4");
    }
    let summary = read(&one.join("summary.json"));
    assert_eq!(without_wall_time(&summary), without_wall_time(&read(&four.join("summary.json"))));
    // The run did real work: GPU pods were placed and some were turned away.
    let s: Value = serde_json::from_str(&summary).unwrap();
    assert_eq!(s["seeds"], serde_json::json!([42, 43]));
    assert!(s["scheduled"].as_u64().unwrap() > 500 && s["unschedulable"].as_u64().unwrap() > 0, "{s}");
    let rows = csv_rows(&one.join("placements.csv"));
    let with_gpus = rows.iter().filter(|r| !r["node"].is_empty() && !r["gpus"].is_empty()).count();
    assert!(with_gpus > 100, "placed GPU pods name their GPUs in fill mode too: {with_gpus}");
    let _ = fs::remove_dir_all(&dir);
}

#[test]
fn several_configs_give_one_entry_and_one_sub_folder_each() {
    let dir = scratch("configs");
    let manifests = Path::new(env!("CARGO_MANIFEST_DIR")).join("../manifests/config");
    let out = dir.join("out");
    let run = tessera([
        OsStr::new("simulate"),
        "--config".as_ref(),
        manifests.join("default.yaml").as_os_str(),
        "--config".as_ref(),
        manifests.join("binpack.yaml").as_os_str(),
        "--out".as_ref(),
        out.as_os_str(),
    ])
    .ok();
    // binpack.yaml's only profile is named `tessera`; the sample's pods ask for
    // default-scheduler. The simulator gives them to the profile and says so.
    assert!(
        run.stderr.contains("config binpack: no profile is named \"default-scheduler\"")
            && run.stderr.contains("first profile, \"tessera\""),
        "stderr:\n{}",
        run.stderr
    );
    assert!(!run.stderr.contains("config default:"), "default.yaml has default-scheduler:\n{}", run.stderr);

    let s = json(&out.join("summary.json"));
    let configs = s["configs"].as_array().expect("{\"configs\": [...]}");
    let names: Vec<&str> = configs.iter().map(|c| c["config"].as_str().unwrap()).collect();
    assert_eq!(names, ["default", "binpack"]);
    for c in configs {
        assert_eq!(c["pods_total"], configs[0]["pods_total"], "the same workload under each config");
        assert!(c["scheduled"].as_u64().unwrap() > 1000, "{} scheduled {}", c["config"], c["scheduled"]);
    }
    for f in ["report.html", "allocation.svg", "pending.svg", "queue_wait.svg"] {
        assert!(out.join(f).is_file(), "{f} is shared by the configs");
    }
    assert!(!out.join("placements.csv").exists(), "per-config files go to sub-folders");
    let mut nodes = Vec::new();
    for name in names {
        for f in ["placements.csv", "timeline.csv"] {
            assert!(out.join(name).join(f).is_file(), "{name}/{f}");
        }
        let rows = csv_rows(&out.join(name).join("placements.csv"));
        assert_eq!(Some(rows.len() as u64), configs[0]["pods_total"].as_u64());
        nodes.push(rows.into_iter().map(|r| r["node"].clone()).collect::<Vec<_>>());
    }
    // LeastAllocated spreads and MostAllocated packs: the configs really differ.
    let differ = nodes[0].iter().zip(&nodes[1]).filter(|(a, b)| a != b).count();
    assert!(differ > nodes[0].len() / 4, "only {differ} placements differ between default and binpack");
    let report = read(&out.join("report.html"));
    assert!(report.contains("<th>default</th>") && report.contains("<th>binpack</th>"));
    let _ = fs::remove_dir_all(&dir);
}

#[test]
fn configs_with_the_same_file_name_keep_their_own_outputs() {
    let dir = scratch("same-stem");
    let cluster = write(&dir, "cluster.yaml", ONE_NODE);
    let workload = write(&dir, "workload.yaml", &pod("p", "1"));
    let default = Path::new(env!("CARGO_MANIFEST_DIR")).join("../manifests/config/default.yaml");
    fs::create_dir_all(dir.join("other")).unwrap();
    let copy = dir.join("other/default.yaml");
    fs::copy(&default, &copy).unwrap();
    let out = dir.join("out");
    let run = tessera([
        OsStr::new("simulate"),
        "--cluster".as_ref(),
        cluster.as_os_str(),
        "--workload".as_ref(),
        workload.as_os_str(),
        "--config".as_ref(),
        default.as_os_str(),
        "--config".as_ref(),
        copy.as_os_str(),
        "--out".as_ref(),
        out.as_os_str(),
        "--json".as_ref(),
    ])
    .ok();
    let s: Value = serde_json::from_str(&run.stdout).unwrap();
    let names: Vec<&str> = s["configs"].as_array().unwrap().iter().map(|c| c["config"].as_str().unwrap()).collect();
    assert_eq!(names, ["default", "default-2"]);
    assert!(out.join("default/placements.csv").is_file() && out.join("default-2/placements.csv").is_file());
    let _ = fs::remove_dir_all(&dir);
}

#[test]
fn json_prints_the_summary_and_nothing_else() {
    let dir = scratch("json");
    let cluster = write(&dir, "cluster.yaml", ONE_NODE);
    let workload = write(&dir, "workload.yaml", &format!("{}---\n{}", pod("a", "1"), pod("b", "2")));
    let out = dir.join("out");
    let run = simulate(&cluster, &workload, &out, &["--json"]).ok();
    // The whole of stdout is one JSON document (serde_json rejects trailing text).
    let printed: Value = serde_json::from_str(&run.stdout).unwrap_or_else(|e| panic!("{e}:\n{}", run.stdout));
    assert_eq!(printed["pods_total"], 2);
    assert_eq!(printed["scheduled"], 2);
    // ... and it is summary.json.
    assert_eq!(without_wall_time(&run.stdout), without_wall_time(&read(&out.join("summary.json"))));
    assert!(out.join("placements.csv").is_file(), "--json still writes the outputs");
    let _ = fs::remove_dir_all(&dir);
}

// ---- bad input ----

#[test]
fn a_malformed_csv_row_names_the_file_line_and_column() {
    let dir = scratch("bad-csv");
    let nodes =
        write(&dir, "nodes.csv", "sn,cpu_milli,memory_mib,gpu,model\nn0,64000,262144,2,P100\nn1,64000,lots,2,P100\n");
    let pods = write(&dir, "pods.csv", "name,cpu_milli,memory_mib,num_gpu,gpu_milli\np0,1000,1024,1,500\n");
    let args = |n: &Path, p: &Path| {
        let out = dir.join("out");
        tessera(
            [OsStr::new("simulate"), "--cluster".as_ref(), n.as_os_str(), "--workload".as_ref(), p.as_os_str()]
                .into_iter()
                .chain(["--out".as_ref(), out.as_os_str()]),
        )
    };
    let e = args(&nodes, &pods).error();
    assert!(e.contains(&format!("{}: line 3, column \"memory_mib\"", nodes.display())), "{e}");
    assert!(e.contains("\"lots\""), "{e}");

    let bad_pods = write(
        &dir,
        "bad-pods.csv",
        "name,cpu_milli,memory_mib,num_gpu,gpu_milli\np0,1000,1024,1,500\np1,1000,1024,x,0\n",
    );
    let good_nodes = write(&dir, "good-nodes.csv", "sn,cpu_milli,memory_mib,gpu,model\nn0,64000,262144,2,P100\n");
    let e = args(&good_nodes, &bad_pods).error();
    assert!(e.contains(&format!("{}: line 3, column \"num_gpu\"", bad_pods.display())), "{e}");

    // A row with the wrong number of fields has no column to blame; it names the line.
    let short = write(&dir, "short.csv", "sn,cpu_milli,memory_mib,gpu,model\nn0,64000,262144,2,P100\nn1,64000\n");
    let e = args(&short, &pods).error();
    assert!(e.contains(&format!("{}: line 3", short.display())), "{e}");
    assert!(!dir.join("out").exists(), "nothing is written from bad input");
    let _ = fs::remove_dir_all(&dir);
}

#[test]
fn an_invalid_yaml_document_names_the_file_and_document() {
    let dir = scratch("bad-yaml");
    let file =
        write(&dir, "cluster.yaml", &format!("{ONE_NODE}---\n{}---\nkind: Pod\nmetadata: {{name: [x\n", pod("a", "1")));
    let out = dir.join("out");
    let e =
        tessera([OsStr::new("simulate"), "--cluster".as_ref(), file.as_os_str(), "--out".as_ref(), out.as_os_str()])
            .error();
    assert!(e.contains(&format!("{}: document 3: not valid YAML", file.display())), "{e}");

    // Valid YAML that is not a valid object of its kind names the document and the object.
    let file = write(
        &dir,
        "typed.yaml",
        &format!("{ONE_NODE}---\napiVersion: v1\nkind: Pod\nmetadata: {{name: p}}\nspec: 7\n"),
    );
    let e =
        tessera([OsStr::new("simulate"), "--cluster".as_ref(), file.as_os_str(), "--out".as_ref(), out.as_os_str()])
            .error();
    assert!(e.contains(&format!("{}: document 2 (Pod p)", file.display())), "{e}");
    let _ = fs::remove_dir_all(&dir);
}

#[test]
fn deeply_nested_yaml_is_refused_before_parsing() {
    let dir = scratch("deep-yaml");
    let deep = format!("{ONE_NODE}---\nkind: Pod\nspec: {}1{}\n", "{a: ".repeat(50_000), "}".repeat(50_000));
    let file = write(&dir, "deep.yaml", &deep);
    let out = dir.join("out");
    let e =
        tessera([OsStr::new("simulate"), "--cluster".as_ref(), file.as_os_str(), "--out".as_ref(), out.as_os_str()])
            .error();
    let place = format!("{}: document 2: nested more than 200 levels deep at line 8, column ", file.display());
    assert!(e.contains(&place), "{e}");
    let _ = fs::remove_dir_all(&dir);
}

#[test]
fn an_invalid_quantity_names_the_object_and_field() {
    let dir = scratch("bad-quantity");
    let cluster = write(&dir, "cluster.yaml", ONE_NODE);
    let workload = write(&dir, "workload.yaml", &format!("{}---\n{}", pod("fine", "1"), pod("typo", "12q")));
    let out = dir.join("out");
    let e = simulate(&cluster, &workload, &out, &[]).error();
    assert!(e.contains("Pod default/typo: spec.containers[0].resources.requests.cpu: "), "{e}");
    assert!(e.contains("\"12q\""), "{e}");

    // --skip-invalid reports the bad pod and schedules the rest.
    let run = simulate(&cluster, &workload, &out, &["--skip-invalid"]).ok();
    assert!(
        run.stderr.contains("skipped: Pod default/typo: spec.containers[0].resources.requests.cpu: "),
        "{}",
        run.stderr
    );
    let rows = csv_rows(&out.join("placements.csv"));
    assert_eq!(rows.iter().map(|r| r["name"].as_str()).collect::<Vec<_>>(), ["fine"], "{rows:?}");

    let node = ONE_NODE.replace("cpu: \"4\"", "cpu: four");
    let cluster = write(&dir, "cluster.yaml", &node);
    let e =
        tessera([OsStr::new("simulate"), "--cluster".as_ref(), cluster.as_os_str(), "--out".as_ref(), out.as_os_str()])
            .error();
    assert!(e.contains("Node n1: status.allocatable.cpu: "), "{e}");
    let _ = fs::remove_dir_all(&dir);
}

#[test]
fn unknown_kinds_are_reported_once_and_skipped() {
    let dir = scratch("unknown-kinds");
    let extra = "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: a}\n---\napiVersion: v1\nkind: ConfigMap\nmetadata: {name: b}\n\
                 ---\napiVersion: v1\nkind: Secret\nmetadata: {name: s}\n";
    let cluster = write(&dir, "cluster.yaml", &format!("{ONE_NODE}---\n{extra}"));
    let workload = write(&dir, "workload.yaml", &format!("{}---\n{extra}", pod("p", "1")));
    let out = dir.join("out");
    let run = simulate(&cluster, &workload, &out, &[]).ok();
    // One note per kind, counting across files.
    assert_eq!(run.stderr.matches("kind ConfigMap").count(), 1, "{}", run.stderr);
    assert!(run.stderr.contains("note: skipped 4 object(s) of kind ConfigMap"), "{}", run.stderr);
    assert!(run.stderr.contains("note: skipped 2 object(s) of kind Secret"), "{}", run.stderr);
    assert!(!run.stderr.contains("kind Service"), "Services are read (default spreading): {}", run.stderr);
    assert!(!run.stderr.contains("error"), "{}", run.stderr);
    let s = json(&out.join("summary.json"));
    assert_eq!((s["pods_total"].as_u64(), s["scheduled"].as_u64()), (Some(1), Some(1)));
    let _ = fs::remove_dir_all(&dir);
}

/// n1 (as ONE_NODE) and n2, tainted; pods `small` (1 CPU) and `huge` (64, more than a node has).
fn small_and_huge_on_two_nodes(dir: &Path) -> (PathBuf, PathBuf) {
    let tainted = ONE_NODE
        .replace("n1", "n2")
        .replace("status:", "spec:\n  taints: [{key: k, value: v, effect: NoSchedule}]\nstatus:");
    let cluster = write(dir, "cluster.yaml", &format!("{ONE_NODE}---\n{tainted}"));
    let workload = write(dir, "workload.yaml", &format!("{}---\n{}", pod("small", "1"), pod("huge", "64")));
    (cluster, workload)
}

#[test]
fn a_pod_that_never_fits_is_unschedulable_not_an_error() {
    let dir = scratch("never-fits");
    let (cluster, workload) = small_and_huge_on_two_nodes(&dir);
    let out = dir.join("out");
    simulate(&cluster, &workload, &out, &[]).ok();
    let s = json(&out.join("summary.json"));
    assert_eq!((s["scheduled"].as_u64(), s["unschedulable"].as_u64()), (Some(1), Some(1)));
    let by_reason: BTreeMap<String, u64> = serde_json::from_value(s["unschedulable_by_reason"].clone()).unwrap();
    assert_eq!(
        by_reason,
        BTreeMap::from([("Insufficient cpu".to_string(), 1), ("node(s) had untolerated taint(s)".to_string(), 1)])
    );
    let rows = csv_rows(&out.join("placements.csv"));
    let huge = rows.iter().find(|r| r["name"] == "huge").unwrap();
    assert_eq!(huge["node"], "");
    assert_eq!(huge["start_s"], "");
    // Upstream's message, with what preemption made of it: no node is worth evicting from.
    assert_eq!(
        huge["reason"],
        "0/2 nodes are available: 1 Insufficient cpu, 1 node(s) had untolerated taint(s). \
         preemption: 0/2 nodes are available: 2 Preemption is not helpful for scheduling.."
    );
    let small = rows.iter().find(|r| r["name"] == "small").unwrap();
    assert_eq!((small["node"].as_str(), small["reason"].as_str()), ("n1", ""));
    let _ = fs::remove_dir_all(&dir);
}

#[test]
fn a_pod_given_twice_is_an_error_naming_both_copies() {
    let dir = scratch("duplicate-pod");
    let cluster = write(&dir, "cluster.yaml", ONE_NODE);
    let workload = write(&dir, "workload.yaml", &format!("{}---\n{}", pod("web", "1"), pod("db", "1")));
    let trace = write(&dir, "pods.csv", "name,cpu_milli,memory_mib,num_gpu,gpu_milli\nweb,1000,1024,0,0\n");
    let out = dir.join("out");
    let args = [OsStr::new("simulate"), "--cluster".as_ref(), cluster.as_os_str(), "--workload".as_ref()];
    let more = [workload.as_os_str(), "--workload".as_ref(), trace.as_os_str(), "--out".as_ref(), out.as_os_str()];
    let e = tessera(args.into_iter().chain(more)).error();
    let places = format!("at {}: document 1 (Pod default/web) and at {}: line 2", workload.display(), trace.display());
    assert!(e.contains(&format!("Pod default/web is given more than once: {places}")), "{e}");
    assert!(!out.exists(), "nothing is written from bad input");
    let _ = fs::remove_dir_all(&dir);
}

#[test]
fn fill_mode_refuses_a_workload_it_would_clone_without_end() {
    // 13 nodes of 64 GPUs, filled to the default 1.3 with pods of one milli-GPU each: over a
    // million clones, which used to be made until memory ran out.
    let dir = scratch("fill-bound");
    let mut nodes = String::from("sn,cpu_milli,memory_mib,gpu,model\n");
    for i in 0..13 {
        nodes.push_str(&format!("n{i},96000,786432,64,G\n"));
    }
    let nodes = write(&dir, "nodes.csv", &nodes);
    let pods = write(&dir, "pods.csv", "name,cpu_milli,memory_mib,num_gpu,gpu_milli\ntiny,100,128,1,1\n");
    let out = dir.join("out");
    let e = simulate(&nodes, &pods, &out, &["--mode", "fill"]).error();
    assert!(e.contains("would take more than 1000000 clones of its pods (seed 42;"), "{e}");
    assert!(e.contains("lower --fill-to"), "{e}");
    assert!(!out.exists(), "nothing is written for a refused run");
    let _ = fs::remove_dir_all(&dir);
}

#[test]
fn workers_must_be_at_least_one_and_are_capped_at_the_cores() {
    let dir = scratch("workers");
    let cluster = write(&dir, "cluster.yaml", ONE_NODE);
    let workload = write(&dir, "workload.yaml", &pod("a", "1"));
    let out = dir.join("out");
    let e = simulate(&cluster, &workload, &out, &["--workers", "0"]).error();
    assert!(e.contains("--workers must be at least 1"), "{e}");
    let e = tessera(["bench", "--nodes", "10", "--pods", "10", "--workers", "0"]).error();
    assert!(e.contains("--workers must be at least 1"), "{e}");

    let cores = std::thread::available_parallelism().unwrap().get();
    let note = format!("note: --workers 100000 is more than the {cores} core(s) here; using {cores}");
    let run = simulate(&cluster, &workload, &out, &["--workers", "100000", "--json"]).ok();
    assert!(run.stderr.contains(&note), "{}", run.stderr);
    assert_eq!(json(&out.join("summary.json"))["scheduled"], 1);
    let run = tessera(["bench", "--nodes", "10", "--pods", "10", "--workers", "100000", "--json"]).ok();
    assert!(run.stderr.contains(&note), "{}", run.stderr);
    let report: Value = serde_json::from_str(&run.stdout).unwrap();
    assert_eq!(report["workers"], cores, "{report}");
    let _ = fs::remove_dir_all(&dir);
}

#[test]
fn a_missing_file_or_bad_flag_is_a_clear_error() {
    let dir = scratch("missing");
    let missing = dir.join("nope.yaml");
    let out = dir.join("out");
    let e =
        tessera([OsStr::new("simulate"), "--cluster".as_ref(), missing.as_os_str(), "--out".as_ref(), out.as_os_str()])
            .error();
    assert!(e.contains(&missing.display().to_string()), "{e}");
    for bad in ["0", "-1", "NaN", "inf", "10.5", "1e308"] {
        let e = tessera(["simulate".to_string(), "--mode=fill".to_string(), format!("--fill-to={bad}")]).error();
        assert!(
            e.contains("--fill-to must be more than 0 and at most 10 (times the cluster's GPU capacity)"),
            "{bad}: {e}"
        );
        assert!(e.lines().count() == 1 && e.len() < 120, "a short line, not 309 digits: {e}");
    }
    let e = tessera(["simulate", "--mode=fill", "--seed=18446744073709551615", "--repeat=2"]).error();
    assert!(e.contains("--seed 18446744073709551615 with --repeat 2: the last seed would pass"), "{e}");
    let _ = fs::remove_dir_all(&dir);
}

// ---- closed pipes ----

/// Runs tessera with stdout, and with `stderr_too` stderr as well, on a pipe whose reader is
/// already gone, as in `tessera ... | head -1` once head has exited: every write there fails
/// with EPIPE. Returns the exit code and what stderr said (nothing when it was closed).
fn with_closed_pipe<S: AsRef<OsStr>>(args: impl IntoIterator<Item = S>, stderr_too: bool) -> (Option<i32>, String) {
    let (reader, writer) = std::io::pipe().unwrap();
    drop(reader);
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_tessera"));
    cmd.args(args).env_remove("RUST_LOG").stdin(Stdio::null());
    if stderr_too {
        cmd.stderr(Stdio::from(writer.try_clone().unwrap()));
    } else {
        cmd.stderr(Stdio::piped());
    }
    let out = cmd.stdout(Stdio::from(writer)).output().unwrap();
    (out.status.code(), String::from_utf8_lossy(&out.stderr).into_owned())
}

#[test]
fn a_closed_stdout_ends_every_command_quietly() {
    let dir = scratch("closed-pipe");
    let cluster = write(&dir, "cluster.yaml", ONE_NODE);
    let workload = write(&dir, "workload.yaml", &pod("a", "1"));
    let out = dir.join("out");
    let simulate = |extra: &[&str]| -> Vec<OsString> {
        let args = [OsStr::new("simulate"), "--cluster".as_ref(), cluster.as_os_str(), "--workload".as_ref()];
        let more = [workload.as_os_str(), "--out".as_ref(), out.as_os_str()];
        args.into_iter().chain(more).chain(extra.iter().map(OsStr::new)).map(OsStr::to_os_string).collect()
    };
    let config = Path::new(env!("CARGO_MANIFEST_DIR")).join("../manifests/config/default.yaml");
    let words = |w: &[&str]| -> Vec<OsString> { w.iter().map(OsString::from).collect() };
    let commands = [
        simulate(&["--json"]),
        simulate(&[]),
        words(&["bench", "--nodes", "20", "--pods", "20", "--json"]),
        words(&["bench", "--nodes", "20", "--pods", "20"]),
        vec!["config".into(), "check".into(), config.into_os_string()],
        words(&["--help"]),
        words(&["--version"]),
    ];
    for args in commands {
        let (code, stderr) = with_closed_pipe(&args, false);
        assert_eq!(code, Some(0), "{args:?}:\n{stderr}");
        assert!(stderr.is_empty(), "{args:?} said something on stderr:\n{stderr}");
    }
    assert!(out.join("summary.json").is_file(), "the run's files are written whoever reads stdout");

    // With stderr closed too, notes are lost but the run still ends as it should.
    assert_eq!(with_closed_pipe(simulate(&["--workers", "100000"]), true).0, Some(0));
    assert_eq!(with_closed_pipe(simulate(&["--fill-to", "0"]), true).0, Some(1));
    let _ = fs::remove_dir_all(&dir);
}

// ---- the openb trace ----

/// The two openb files the replay test needs, committed with their source (see the README there).
fn openb_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/openb")
}

fn num(row: &HashMap<String, String>, column: &str) -> f64 {
    row[column].parse().unwrap_or_else(|e| panic!("{column} {:?}: {e}", row[column]))
}

#[test]
fn the_openb_default_trace_replays_end_to_end() {
    let data = openb_dir();
    let (nodes_csv, pods_csv) = (data.join("openb_node_list_gpu_node.csv"), data.join("openb_pod_list_default.csv"));
    let dir = scratch("openb");
    let out = dir.join("out");
    tessera([
        OsStr::new("simulate"),
        "--cluster".as_ref(),
        nodes_csv.as_os_str(),
        "--workload".as_ref(),
        pods_csv.as_os_str(),
        "--out".as_ref(),
        out.as_os_str(),
        "--workers".as_ref(),
        "1".as_ref(),
    ])
    .ok();
    let s = json(&out.join("summary.json"));
    assert_eq!(s["pods_total"], 8152);
    assert_eq!(s["scheduled"].as_u64().unwrap() + s["unschedulable"].as_u64().unwrap(), 8152);
    assert!(s["scheduled"].as_u64().unwrap() > 8000, "{s}");

    let nodes: HashMap<String, HashMap<String, String>> =
        csv_rows(&nodes_csv).into_iter().map(|r| (r["sn"].clone(), r)).collect();
    let pods: HashMap<String, HashMap<String, String>> =
        csv_rows(&pods_csv).into_iter().map(|r| (r["name"].clone(), r)).collect();
    let rows = csv_rows(&out.join("placements.csv"));
    assert_eq!(rows.len(), 8152);

    // Every placement is checked against the trace, independently of the engine: the pod ran
    // on a node of the cluster, no earlier than it was created, for as long as it lived, on as
    // many GPUs as it asked for, of a model it accepts; and no node or GPU was ever
    // over-committed.
    struct Interval<'a> {
        node: &'a str,
        start: f64,
        end: f64,
        cpu: f64,
        mem: f64,
        gpus: Vec<usize>,
        milli: f64,
    }
    let mut intervals = Vec::new();
    for r in &rows {
        let p = &pods[&r["name"]];
        if r["node"].is_empty() {
            assert!(r["reason"].starts_with("0/1213 nodes are available: "), "{r:?}");
            continue;
        }
        let node = &nodes.get(&r["node"]).unwrap_or_else(|| panic!("{r:?}: not a node of the cluster"));
        let (start, created) = (num(r, "start_s"), num(p, "creation_time"));
        assert!(start >= created, "{r:?} started before it was created at {created}");
        let end = if p["deletion_time"].is_empty() {
            assert_eq!(r["end_s"], "", "{r:?}");
            f64::INFINITY
        } else {
            let end = num(r, "end_s");
            let lived = num(p, "deletion_time") - created;
            assert!((end - start - lived).abs() < 1e-3, "{r:?} ran {} s, the trace says {lived} s", end - start);
            end
        };
        let gpus: Vec<usize> = r["gpus"].split(';').filter(|g| !g.is_empty()).map(|g| g.parse().unwrap()).collect();
        assert_eq!(gpus.len() as f64, num(p, "num_gpu"), "{r:?} {p:?}");
        assert!(gpus.iter().all(|g| (*g as f64) < num(node, "gpu")), "{r:?} on a GPU its node lacks");
        if !gpus.is_empty() && !p["gpu_spec"].is_empty() {
            assert!(p["gpu_spec"].split('|').any(|m| m == node["model"]), "{r:?} on a {} node", node["model"]);
        }
        let milli = if num(p, "gpu_milli") == 0.0 { 1000.0 } else { num(p, "gpu_milli").min(1000.0) };
        intervals.push(Interval {
            node: r["node"].as_str(),
            start,
            end,
            cpu: num(p, "cpu_milli"),
            mem: num(p, "memory_mib"),
            gpus,
            milli,
        });
    }
    // Sweep over time; departures before arrivals at one instant (the simulator's order).
    // Pods bound and gone at one instant hold nothing over time and are left out.
    let mut events: Vec<(f64, bool, usize)> = Vec::new();
    for (i, iv) in intervals.iter().enumerate().filter(|(_, iv)| iv.end > iv.start) {
        events.push((iv.start, true, i));
        if iv.end.is_finite() {
            events.push((iv.end, false, i));
        }
    }
    events.sort_by(|a, b| a.0.total_cmp(&b.0).then(a.1.cmp(&b.1)));
    let mut used: HashMap<&str, (f64, f64, usize)> = HashMap::new();
    let mut gpu_used: HashMap<(&str, usize), f64> = HashMap::new();
    for (t, arrive, i) in events {
        let iv = &intervals[i];
        let sign = if arrive { 1.0 } else { -1.0 };
        let u = used.entry(iv.node).or_default();
        u.0 += sign * iv.cpu;
        u.1 += sign * iv.mem;
        u.2 = if arrive { u.2 + 1 } else { u.2 - 1 };
        let node = &nodes[iv.node];
        assert!(u.0 <= num(node, "cpu_milli") && u.1 <= num(node, "memory_mib"), "{} over-committed at {t}", iv.node);
        assert!(u.2 <= 110, "{} holds more than 110 pods at {t}", iv.node);
        for g in &iv.gpus {
            let m = gpu_used.entry((iv.node, *g)).or_default();
            *m += sign * iv.milli;
            assert!(*m <= 1000.0, "GPU {g} of {} over-committed at {t}: {m} milli", iv.node);
        }
    }
    let _ = fs::remove_dir_all(&dir);
}

// ---- the report in a browser ----

fn find_chromium() -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    ["chromium", "chromium-browser"]
        .iter()
        .flat_map(|name| std::env::split_paths(&path).map(move |d| d.join(name)))
        .find(|p| p.is_file())
}

/// Screenshots `page` with headless Chromium into `png`, waiting at most two minutes.
fn screenshot(chromium: &Path, page: &Path, png: &Path, profile: &Path) {
    let mut child = Command::new(chromium)
        .args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-quic",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--window-size=1200,2400",
        ])
        .arg(format!("--user-data-dir={}", profile.display()))
        .arg(format!("--screenshot={}", png.display()))
        .arg(format!("file://{}", page.display()))
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("starting chromium");
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        if let Some(status) = child.try_wait().expect("waiting for chromium") {
            assert!(status.success(), "chromium exited with {status} rendering {}", page.display());
            break;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!("chromium did not finish rendering {} in two minutes", page.display());
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    assert!(png.is_file(), "chromium wrote no screenshot of {}", page.display());
}

/// Decodes a PNG to (width, height, RGB rows).
fn decode_png(path: &Path) -> (usize, usize, Vec<[u8; 3]>) {
    let file = std::io::BufReader::new(fs::File::open(path).unwrap());
    let mut decoder = png::Decoder::new(file);
    decoder.set_transformations(png::Transformations::EXPAND | png::Transformations::STRIP_16);
    let mut reader = decoder.read_info().unwrap();
    let mut buf = vec![0; reader.output_buffer_size().unwrap()];
    let info = reader.next_frame(&mut buf).unwrap();
    let channels = info.color_type.samples();
    let (w, h) = (info.width as usize, info.height as usize);
    let mut pixels = Vec::with_capacity(w * h);
    for y in 0..h {
        let row = &buf[y * info.line_size..y * info.line_size + w * channels];
        for px in row.chunks_exact(channels) {
            pixels.push(match channels {
                1 | 2 => [px[0]; 3],
                _ => [px[0], px[1], px[2]],
            });
        }
    }
    (w, h, pixels)
}

/// Screenshots `report` and checks that it is not blank and that its charts are drawn in colour.
fn assert_renders(chromium: &Path, report: &Path, dir: &Path, name: &str) {
    let blank =
        write(dir, "blank.html", "<!doctype html><html><head><meta charset=\"utf-8\"></head><body></body></html>\n");
    let (shot, blank_shot) = (dir.join(format!("{name}.png")), dir.join("blank.png"));
    screenshot(chromium, report, &shot, &dir.join(format!("profile-{name}")));
    screenshot(chromium, &blank, &blank_shot, &dir.join(format!("profile-blank-{name}")));

    let size = |p: &Path| fs::metadata(p).unwrap().len();
    assert!(
        size(&shot) > 2 * size(&blank_shot),
        "the {name} report screenshot ({} bytes) is no bigger than a blank page ({} bytes)",
        size(&shot),
        size(&blank_shot)
    );
    let (w, h, pixels) = decode_png(&shot);
    assert!(w >= 1000 && h >= 2000, "screenshot is {w}x{h}");
    // The charts sit below the provenance, the contents and the summary table: from about 1/6
    // of the page down to about 2/3. There the page must not be white, and the series must be
    // drawn in colour (axes, grid and text are grey).
    let area = &pixels[h / 6 * w..h * 2 / 3 * w];
    let non_white = area.iter().filter(|p| p.iter().any(|c| *c < 235)).count();
    let coloured = area.iter().filter(|p| p.iter().max().unwrap() - p.iter().min().unwrap() > 80).count();
    assert!(
        non_white * 50 > area.len(),
        "{name}: the chart area is nearly white: {non_white} of {} pixels",
        area.len()
    );
    assert!(coloured > 2000, "{name}: no chart lines in the chart area: {coloured} coloured pixels");
    // The blank page really is blank, so the thresholds above measure the report.
    let (_, _, blank_pixels) = decode_png(&blank_shot);
    assert!(blank_pixels.iter().all(|p| p.iter().all(|c| *c >= 235)), "the blank page is not blank");
}

/// Runs the bundled sample (GPUs of two models, two zones, racks, pods that fit nowhere) under
/// default.yaml and `other`, with `extra` options, into `out`.
fn sample_under_two_configs(other: &str, out: &Path, extra: &[&str]) {
    let manifests = Path::new(env!("CARGO_MANIFEST_DIR")).join("../manifests/config");
    let (default, other) = (manifests.join("default.yaml"), manifests.join(other));
    let mut args: Vec<&OsStr> = vec![
        "simulate".as_ref(),
        "--config".as_ref(),
        default.as_os_str(),
        "--config".as_ref(),
        other.as_os_str(),
        "--out".as_ref(),
        out.as_os_str(),
    ];
    args.extend(extra.iter().map(OsStr::new));
    tessera(args).ok();
}

/// Checks that `page` has each view of `views` (by anchor) and says what produced it.
fn assert_views(page: &str, views: &[&str], provenance: &[&str]) {
    for view in views {
        assert!(page.contains(&format!("id=\"{view}\"")), "the report has no {view} view");
    }
    let version = format!("tessera simulate {}", env!("CARGO_PKG_VERSION"));
    for said in provenance.iter().copied().chain(["id=\"provenance\"", "bundled sample", &version]) {
        assert!(page.contains(said), "the report does not say {said:?}");
    }
    assert!(!page.contains("<script") && !page.contains("src=") && !page.contains("<link"), "self-contained");
    assert_eq!(page.matches("<figcaption>").count(), page.matches("<figure").count(), "every figure explained");
}

/// Tick labels in an SVG with decimals that say nothing (`25.000`).
fn spurious_ticks(svg: &str) -> Vec<String> {
    svg.lines()
        .map(str::trim)
        .filter(|l| l.parse::<f64>().is_ok() && l.contains('.') && l.ends_with('0'))
        .map(String::from)
        .collect()
}

#[test]
fn the_report_renders_in_headless_chromium() {
    let Some(chromium) = find_chromium() else {
        if std::env::var("TESSERA_SKIP_BROWSER").as_deref() == Ok("1") {
            eprintln!("skipping the report screenshot: chromium is not installed and TESSERA_SKIP_BROWSER=1");
            return;
        }
        panic!(
            "chromium is not on PATH: this test renders report.html with headless Chromium. \
             Install it (./test.sh does, with apt-get install chromium) or set TESSERA_SKIP_BROWSER=1 to skip."
        );
    };
    let dir = scratch("browser");
    // Replay, two configs side by side.
    let replay = dir.join("replay");
    sample_under_two_configs("binpack.yaml", &replay, &["--seed", "7"]);
    let page = read(&replay.join("report.html"));
    let views: Vec<&str> = REPLAY_CHARTS.into_iter().chain(["unschedulable_pods"]).collect();
    assert_views(&page, &views, &["default, binpack", "replay:", "nodes", "to schedule"]);
    assert!(page.contains("zone zone-a") && page.contains("gpu H100") && page.contains("others"), "heatmap rows");
    assert!(page.contains("Insufficient"), "the reasons are named");
    for view in REPLAY_CHARTS {
        let svg = read(&replay.join(format!("{view}.svg")));
        assert!(svg.contains("default") && svg.contains("binpack"), "{view}.svg does not show both configs");
        assert_eq!(spurious_ticks(&svg), Vec::<String>::new(), "{view}.svg");
    }
    assert!(read(&replay.join("queue_wait.svg")).contains("log scale"));
    assert_renders(&chromium, &replay.join("report.html"), &dir, "replay");

    // Fill mode over two seeds: the mean with a band of ± std.
    let fill = dir.join("fill");
    sample_under_two_configs("fgd.yaml", &fill, &["--mode", "fill", "--repeat", "2", "--seed", "7"]);
    let page = read(&fill.join("report.html"));
    let views = ["allocation", "heatmap_gpu", "unschedulable", "gpu_fragmentation", "dra_devices", "fill"];
    assert_views(&page, &views, &["default, fgd", "fill: pods never leave", "7 to 8 (2 seeds)"]);
    for view in ["fill", "gpu_fragmentation"] {
        let svg = read(&fill.join(format!("{view}.svg")));
        assert_eq!(svg.matches("<polygon").count(), 2, "{view}.svg: one band per config");
        assert_eq!(spurious_ticks(&svg), Vec::<String>::new(), "{view}.svg");
    }
    assert_renders(&chromium, &fill.join("report.html"), &dir, "fill");
    let _ = fs::remove_dir_all(&dir);
}

#[test]
fn explain_writes_every_nodes_verdict_and_scores_for_the_pods_asked_about() {
    let dir = scratch("explain");
    let (cluster, workload) = small_and_huge_on_two_nodes(&dir);
    let out = dir.join("out");
    simulate(&cluster, &workload, &out, &["--explain", "default/small", "--explain", "huge"]).ok();
    let small = json(&out.join("explain/default_small.json"));
    assert_eq!(small["pod"], "default/small");
    let attempt = &small["attempts"][0];
    assert_eq!(attempt["result"], "bound to n1");
    let nodes = attempt["nodes"].as_array().unwrap();
    assert_eq!(nodes.len(), 2, "every node: {attempt}");
    assert_eq!(nodes[0]["node"], "n1");
    assert!(nodes[0]["scores"].as_array().is_some_and(|s| !s.is_empty()), "{attempt}");
    let total: i64 = nodes[0]["scores"].as_array().unwrap().iter().map(|s| s["weighted"].as_i64().unwrap()).sum();
    assert_eq!(nodes[0]["total"].as_i64(), Some(total));
    assert_eq!(nodes[1]["filter"]["plugin"], "TaintToleration");
    let huge = json(&out.join("explain/default_huge.json"));
    let result = huge["attempts"][0]["result"].as_str().unwrap();
    assert!(result.starts_with("0/2 nodes are available"), "{result}");
    assert_eq!(huge["attempts"][0]["nodes"][0]["filter"]["reasons"][0], "Insufficient cpu");
    let report = read(&out.join("report.html"));
    assert!(report.contains("Explained pods") && report.contains("default/huge"), "the report has the section");
    // A pod the input does not have is an error naming it.
    let e = tessera([
        OsStr::new("simulate"),
        "--cluster".as_ref(),
        cluster.as_os_str(),
        "--workload".as_ref(),
        workload.as_os_str(),
        "--explain".as_ref(),
        "ns/ghost".as_ref(),
        "--out".as_ref(),
        out.as_os_str(),
    ])
    .error();
    assert!(e.contains("--explain ns/ghost: the input has no pod"), "{e}");
    let _ = fs::remove_dir_all(&dir);
}
