//! The HTML page: what produced the report (inputs, cluster size, configurations, seed, mode,
//! Tessera's version), the summary table, each figure inline with the sentence that explains
//! it, and the sections after (explained pods). One self-contained file: inline SVG and CSS,
//! no scripts, fonts or other files.

use std::fmt::Write as _;

use tessera_plugins::model::PodKey;

use super::Figure;
use crate::sim::input::SimInput;
use crate::sim::record::ExplainedAttempt;
use crate::sim::{Mode, NamedConfig, SimOptions};

/// What produced a report.
#[derive(Clone, Debug, PartialEq)]
pub struct Provenance {
    /// The input files, as given.
    pub inputs: Vec<String>,
    /// Nodes in the cluster.
    pub nodes: usize,
    /// Pods to schedule.
    pub pods: usize,
    /// Pods already bound in the input.
    pub running: usize,
    /// The configurations compared.
    pub configs: Vec<String>,
    /// The (first) seed.
    pub seed: u64,
    /// Replay or fill.
    pub mode: Mode,
    /// Fill mode: seeds run.
    pub repeat: u32,
    /// Fill mode: the inflation target, times the GPU capacity.
    pub fill_to: f64,
    /// Tessera's version.
    pub version: &'static str,
}

impl Provenance {
    /// The provenance of a run of `input` under `configs` with `opts`.
    pub fn new(input: &SimInput, configs: &[NamedConfig], opts: &SimOptions) -> Provenance {
        Provenance {
            inputs: input.sources.clone(),
            nodes: input.nodes.len(),
            pods: input.pods.len(),
            running: input.running.len(),
            configs: configs.iter().map(|c| c.name.clone()).collect(),
            seed: opts.seed,
            mode: opts.mode,
            repeat: opts.repeat.max(1),
            fill_to: opts.fill_to,
            version: env!("CARGO_PKG_VERSION"),
        }
    }

    /// The rows of the provenance table: (what, value), unescaped.
    pub fn rows(&self) -> Vec<(&'static str, String)> {
        let inputs = if self.inputs.is_empty() { "synthetic".to_string() } else { self.inputs.join(", ") };
        let (mode, seeds) = match self.mode {
            Mode::Replay => ("replay: arrivals and departures in virtual time".to_string(), self.seed.to_string()),
            Mode::Fill => (
                format!("fill: pods never leave; inflated to {} x the GPU capacity", self.fill_to),
                match self.repeat {
                    1 => self.seed.to_string(),
                    n => format!("{} to {} ({n} seeds)", self.seed, self.seed.saturating_add(u64::from(n) - 1)),
                },
            ),
        };
        vec![
            ("inputs", inputs),
            ("cluster", format!("{} nodes", self.nodes)),
            ("input pods", format!("{} to schedule, {} already bound", self.pods, self.running)),
            ("configs", self.configs.join(", ")),
            ("mode", mode),
            ("seed", seeds),
            ("Tessera", format!("tessera simulate {}", self.version)),
        ]
    }
}

/// What goes on the page.
#[derive(Debug)]
pub struct Page<'a> {
    /// The page title.
    pub title: &'a str,
    /// What produced it.
    pub provenance: &'a Provenance,
    /// Key figures: per config, (figure, value) rows.
    pub table: &'a [(String, Vec<(String, String)>)],
    /// The figures with their SVG.
    pub figures: &'a [(Figure, String)],
    /// HTML already escaped, after the figures (such as [`explained_section`]).
    pub sections: &'a str,
}

const STYLE: &str = "body{font-family:sans-serif;margin:24px;color:#222;max-width:1100px}\
     table{border-collapse:collapse;margin:12px 0 24px}td,th{border:1px solid #ccc;padding:4px 10px;text-align:right}\
     th:first-child,td:first-child{text-align:left}figure{margin:0 0 28px}figcaption{color:#444;font-size:14px;\
     max-width:760px}#provenance td{text-align:left}#unschedulable_pods td{text-align:left}nav a{margin-right:12px}";

/// The page.
pub fn html(page: &Page) -> String {
    let mut h = String::new();
    let _ = write!(
        h,
        "<!doctype html>\n<html lang=\"en\"><head><meta charset=\"utf-8\"><title>{t}</title>\n<style>{STYLE}</style>\
         </head><body>\n<h1>{t}</h1>\n",
        t = escape(page.title)
    );
    h.push_str(&provenance(page.provenance));
    h.push_str(&contents(page.figures));
    h.push_str(&summary_table(page.table));
    for (figure, svg) in page.figures {
        let _ = writeln!(
            h,
            "<figure id=\"{}\">{}<figcaption><b>{}.</b> {}</figcaption></figure>",
            escape(&figure.name),
            strip_xml_header(svg),
            escape(&figure.title),
            escape(&figure.caption)
        );
        h.push_str(&figure.after);
    }
    h.push_str(page.sections);
    h.push_str("</body></html>\n");
    h
}

fn provenance(p: &Provenance) -> String {
    let mut h = String::from("<table id=\"provenance\">\n");
    for (what, value) in p.rows() {
        let _ = writeln!(h, "<tr><th>{}</th><td>{}</td></tr>", escape(what), escape(&value));
    }
    h.push_str("</table>\n");
    h
}

fn contents(figures: &[(Figure, String)]) -> String {
    let links: Vec<String> =
        figures.iter().map(|(f, _)| format!("<a href=\"#{}\">{}</a>", escape(&f.name), escape(&f.title))).collect();
    format!("<nav>{}</nav>\n", links.join(""))
}

fn summary_table(table: &[(String, Vec<(String, String)>)]) -> String {
    let Some((_, first)) = table.first() else { return String::new() };
    let mut h = String::from("<table id=\"summary\"><tr><th>figure</th>");
    for (config, _) in table {
        let _ = write!(h, "<th>{}</th>", escape(config));
    }
    h.push_str("</tr>\n");
    for (row, (key, _)) in first.iter().enumerate() {
        let _ = write!(h, "<tr><td>{}</td>", escape(key));
        for (_, values) in table {
            let v = values.get(row).map_or("", |(_, v)| v.as_str());
            let _ = write!(h, "<td>{}</td>", escape(v));
        }
        h.push_str("</tr>\n");
    }
    h.push_str("</table>\n");
    h
}

/// Nodes shown per explained attempt: the best-scored, then the rejected.
const EXPLAINED_NODES: usize = 15;

/// The section on the pods asked about with `--explain`: for each (pod, config), its last
/// attempt, with the nodes' verdicts and scores.
pub fn explained_section(pods: &[(String, &PodKey, &[ExplainedAttempt])]) -> String {
    if pods.is_empty() {
        return String::new();
    }
    let mut h = String::from(
        "<h2 id=\"explained\">Explained pods</h2>\n<p>Each pod's last scheduling attempt: every node's Filter \
         verdict (the first plugin that rejected the pod there) and, for the nodes that fit, each Score plugin's \
         weighted score and their total, which the scheduler ranks by. All attempts are in \
         <code>explain/NAMESPACE_NAME.json</code>.</p>\n",
    );
    for (config, key, attempts) in pods {
        let Some(last) = attempts.last() else { continue };
        let _ = writeln!(
            h,
            "<h3>{} ({})</h3>\n<p>{} attempt(s); the last at t={}s: {}</p>",
            escape(&key.to_string()),
            escape(config),
            attempts.len(),
            last.at,
            escape(&last.result)
        );
        if let Some(m) = &last.explanation.pre_filter {
            let _ = writeln!(h, "<p>PreFilter rejected the pod: {}</p>", escape(m));
            continue;
        }
        h.push_str("<table><tr><th>node</th><th>verdict</th><th>scores</th><th>total</th></tr>\n");
        for n in last.explanation.nodes.iter().take(EXPLAINED_NODES) {
            let verdict = n
                .filter
                .as_ref()
                .map_or_else(|| "fits".to_string(), |f| format!("{}: {}", f.plugin, f.reasons.join(", ")));
            let scores: Vec<String> = n.scores.iter().map(|s| format!("{} {}", s.plugin, s.weighted)).collect();
            let total = n.total.map(|t| t.to_string()).unwrap_or_default();
            let _ = writeln!(
                h,
                "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
                escape(&n.node),
                escape(&verdict),
                escape(&scores.join(", ")),
                total
            );
        }
        h.push_str("</table>\n");
    }
    h
}

fn strip_xml_header(svg: &str) -> &str {
    match svg.find("<svg") {
        Some(i) => &svg[i..],
        None => svg,
    }
}

/// `s` safe in HTML text and attribute values.
pub fn escape(s: &str) -> String {
    s.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;").replace('"', "&quot;")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sim::report::line::{LineChart, Series};
    use crate::sim::report::{Figure, Kind};

    fn provenance() -> Provenance {
        Provenance {
            inputs: vec!["cluster.yaml".into(), "pods<1>.csv".into()],
            nodes: 3,
            pods: 10,
            running: 2,
            configs: vec!["default".into(), "binpack".into()],
            seed: 42,
            mode: Mode::Fill,
            repeat: 2,
            fill_to: 1.3,
            version: "9.9.9",
        }
    }

    #[test]
    fn page_is_self_contained_escaped_and_says_what_produced_it() {
        let chart = LineChart { series: vec![Series::new("a", vec![(0.0, 1.0), (1.0, 2.0)])], ..LineChart::default() };
        let figure = Figure {
            name: "alloc".into(),
            title: "Allocation & more".into(),
            caption: "What it shows.".into(),
            kind: Kind::Line(chart),
            after: "<p id=\"after\">after</p>".into(),
        };
        let svg = figure.svg().unwrap();
        let table = vec![("a<b".to_string(), vec![("pods".to_string(), "3".to_string())])];
        let p = provenance();
        let page = html(&Page {
            title: "Tessera & co",
            provenance: &p,
            table: &table,
            figures: &[(figure, svg)],
            sections: "",
        });
        assert!(page.contains("Tessera &amp; co") && page.contains("a&lt;b"));
        assert!(page.contains("<figure id=\"alloc\">") && page.contains("<a href=\"#alloc\">"));
        assert!(page.contains("Allocation &amp; more.</b> What it shows."));
        assert!(page.contains("<p id=\"after\">after</p>"));
        assert!(page.contains("pods&lt;1&gt;.csv") && page.contains("3 nodes") && page.contains("10 to schedule"));
        assert!(page.contains("default, binpack") && page.contains("42 to 43 (2 seeds)"));
        assert!(page.contains("tessera simulate 9.9.9") && page.contains("fill: pods never leave"));
        assert!(!page.contains("<?xml"));
        assert!(!page.contains("src=") && !page.contains("<script") && !page.contains("<link"), "self-contained");
    }
}
