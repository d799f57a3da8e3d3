//! Why pods were left unschedulable: the count per main reason (the reason that kept the pod
//! off the most nodes, as `summary.json`'s `unschedulable_by_main_reason`), drawn as bars, and
//! a table naming the first pods of each reason.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use super::bars::BarChart;
use super::page::escape;
use crate::sim::record::PodRecord;

/// Pods named per reason in the table.
pub const FIRST_PODS: usize = 5;

/// The pods one reason held back.
#[derive(Clone, Debug, PartialEq)]
pub struct ReasonGroup {
    /// The reason.
    pub reason: String,
    /// How many pods had it as their main reason.
    pub count: usize,
    /// The first [`FIRST_PODS`] of them, in arrival order (`namespace/name`).
    pub first: Vec<String>,
}

/// The pods that never got a node (and were not gated), grouped by main reason, most
/// frequent first.
pub fn by_main_reason(records: &[PodRecord]) -> Vec<ReasonGroup> {
    let mut groups: BTreeMap<&str, ReasonGroup> = BTreeMap::new();
    for r in records.iter().filter(|r| r.start.is_none() && !r.gated) {
        let main = r.reasons.first().unwrap_or(&r.reason);
        let g = groups.entry(main.as_str()).or_insert_with(|| ReasonGroup {
            reason: main.clone(),
            count: 0,
            first: Vec::new(),
        });
        g.count += 1;
        if g.first.len() < FIRST_PODS {
            g.first.push(r.key.to_string());
        }
    }
    let mut out: Vec<ReasonGroup> = groups.into_values().collect();
    out.sort_by(|a, b| b.count.cmp(&a.count).then_with(|| a.reason.cmp(&b.reason)));
    out
}

/// Every reason any configuration has, by the most pods over configurations.
fn categories(per_config: &[(String, Vec<ReasonGroup>)]) -> Vec<String> {
    let mut totals: BTreeMap<&str, usize> = BTreeMap::new();
    for g in per_config.iter().flat_map(|(_, gs)| gs) {
        *totals.entry(g.reason.as_str()).or_insert(0) += g.count;
    }
    let mut order: Vec<(&str, usize)> = totals.into_iter().collect();
    order.sort_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.cmp(b.0)));
    order.into_iter().map(|(r, _)| r.to_string()).collect()
}

/// The bar chart: one row per reason, one bar per configuration.
pub fn bar_chart(per_config: &[(String, Vec<ReasonGroup>)]) -> BarChart {
    let categories = categories(per_config);
    let series = per_config
        .iter()
        .map(|(config, groups)| {
            let count = |c: &String| groups.iter().find(|g| &g.reason == c).map_or(0.0, |g| g.count as f64);
            (config.clone(), categories.iter().map(count).collect())
        })
        .collect();
    BarChart { categories, series, x_label: "pods (each under its main reason)".into() }
}

/// The table of the first pods of each reason (HTML, escaped), one row per (reason,
/// configuration) with pods.
pub fn table(per_config: &[(String, Vec<ReasonGroup>)]) -> String {
    let several = per_config.len() > 1;
    let mut h = String::from("<table id=\"unschedulable_pods\"><tr><th>reason</th>");
    if several {
        h.push_str("<th>config</th>");
    }
    let _ = writeln!(h, "<th>pods</th><th>first {FIRST_PODS} pods</th></tr>");
    for reason in categories(per_config) {
        for (config, groups) in per_config {
            let Some(g) = groups.iter().find(|g| g.reason == reason) else { continue };
            let _ = write!(h, "<tr><td>{}</td>", escape(&g.reason));
            if several {
                let _ = write!(h, "<td>{}</td>", escape(config));
            }
            let pods: Vec<String> = g.first.iter().map(|p| format!("<code>{}</code>", escape(p))).collect();
            let _ = writeln!(h, "<td>{}</td><td>{}</td></tr>", g.count, pods.join(" "));
        }
    }
    h.push_str("</table>\n");
    h
}

#[cfg(test)]
mod tests {
    use tessera_plugins::model::Pod;
    use tessera_plugins::resources::ResourceVec;

    use super::*;

    fn pending(name: &str, reasons: &[&str]) -> PodRecord {
        let mut r = PodRecord::arrived(&Pod::new("ns", name, ResourceVec::cpu_mem(1, 0)), 0.0);
        r.reasons = reasons.iter().map(|s| s.to_string()).collect();
        r.reason = reasons.join(", ");
        r
    }

    #[test]
    fn pods_are_grouped_by_main_reason_with_the_first_five_named() {
        let mut records: Vec<PodRecord> = (0..7).map(|i| pending(&format!("p{i}"), &["Insufficient cpu"])).collect();
        records.push(pending("t", &["untolerated taint", "Insufficient cpu"]));
        let mut gated = pending("g", &["gated"]);
        gated.gated = true;
        records.push(gated);
        let groups = by_main_reason(&records);
        assert_eq!(groups.len(), 2, "gated pods are not unschedulable");
        assert_eq!((groups[0].reason.as_str(), groups[0].count), ("Insufficient cpu", 7));
        assert_eq!(groups[0].first, ["ns/p0", "ns/p1", "ns/p2", "ns/p3", "ns/p4"]);
        assert_eq!((groups[1].reason.as_str(), groups[1].first.len()), ("untolerated taint", 1));
    }

    #[test]
    fn bars_and_table_cover_every_config_and_escape() {
        let a = by_main_reason(&[pending("x", &["Insufficient <cpu>"]), pending("y", &["Insufficient <cpu>"])]);
        let b = by_main_reason(&[pending("z", &["taint"])]);
        let per = vec![("a".to_string(), a), ("b&c".to_string(), b)];
        let chart = bar_chart(&per);
        assert_eq!(chart.categories, ["Insufficient <cpu>", "taint"]);
        assert_eq!(chart.series[0].1, vec![2.0, 0.0]);
        assert_eq!(chart.series[1].1, vec![0.0, 1.0]);
        let t = table(&per);
        assert!(t.contains("Insufficient &lt;cpu&gt;") && t.contains("b&amp;c") && t.contains("<code>ns/z</code>"));
        assert!(!t.contains("<cpu>"));
    }
}
