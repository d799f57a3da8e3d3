//! `report.html`: one self-contained page of SVG charts (plotters) and the summary numbers,
//! readable in a browser without a server. Each chart is also written as its own `.svg`.

use std::fmt::Write as _;

use plotters::prelude::*;
use tessera_plugins::model::PodKey;

use super::record::ExplainedAttempt;

/// One line on a chart.
#[derive(Clone, Debug, PartialEq)]
pub struct Series {
    /// Legend label (the config name when several configs are compared).
    pub label: String,
    /// (x, y) points, x increasing.
    pub points: Vec<(f64, f64)>,
}

/// A line chart.
#[derive(Clone, Debug, PartialEq)]
pub struct Chart {
    /// File stem of the chart's own `.svg` and its anchor in the page.
    pub name: String,
    /// Title above the chart.
    pub title: String,
    /// X axis label.
    pub x_label: String,
    /// Y axis label.
    pub y_label: String,
    /// The lines, overlaid.
    pub series: Vec<Series>,
}

const PALETTE: [RGBColor; 6] = [
    RGBColor(31, 119, 180),
    RGBColor(255, 127, 14),
    RGBColor(44, 160, 44),
    RGBColor(214, 39, 40),
    RGBColor(148, 103, 189),
    RGBColor(140, 86, 75),
];

/// Renders `chart` as an SVG document.
pub fn svg(chart: &Chart) -> Result<String, String> {
    let mut out = String::new();
    {
        let root = SVGBackend::with_string(&mut out, (760, 360)).into_drawing_area();
        root.fill(&WHITE).map_err(|e| e.to_string())?;
        let (x0, x1, y0, y1) = bounds(&chart.series);
        let mut cc = ChartBuilder::on(&root)
            .caption(&chart.title, ("sans-serif", 18))
            .margin(12)
            .x_label_area_size(36)
            .y_label_area_size(56)
            .build_cartesian_2d(x0..x1, y0..y1)
            .map_err(|e| e.to_string())?;
        cc.configure_mesh()
            .x_desc(chart.x_label.as_str())
            .y_desc(chart.y_label.as_str())
            .light_line_style(RGBColor(235, 235, 235))
            .draw()
            .map_err(|e| e.to_string())?;
        for (i, s) in chart.series.iter().enumerate() {
            let color = PALETTE[i % PALETTE.len()];
            cc.draw_series(LineSeries::new(s.points.iter().copied(), color.stroke_width(2)))
                .map_err(|e| e.to_string())?
                .label(s.label.as_str())
                .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 16, y)], color.stroke_width(2)));
        }
        if chart.series.len() > 1 || chart.series.iter().any(|s| !s.label.is_empty()) {
            cc.configure_series_labels()
                .background_style(WHITE.mix(0.85))
                .border_style(RGBColor(200, 200, 200))
                .position(SeriesLabelPosition::UpperLeft)
                .draw()
                .map_err(|e| e.to_string())?;
        }
        root.present().map_err(|e| e.to_string())?;
    }
    Ok(out)
}

/// Axis ranges covering every point, never empty.
fn bounds(series: &[Series]) -> (f64, f64, f64, f64) {
    let pts = series.iter().flat_map(|s| s.points.iter());
    let (mut x0, mut x1, mut y0, mut y1) = (f64::MAX, f64::MIN, 0.0f64, f64::MIN);
    for &(x, y) in pts {
        x0 = x0.min(x);
        x1 = x1.max(x);
        y0 = y0.min(y);
        y1 = y1.max(y);
    }
    if x0 > x1 {
        return (0.0, 1.0, 0.0, 1.0);
    }
    if x1 <= x0 {
        x1 = x0 + 1.0;
    }
    if y1 <= y0 {
        y1 = y0 + 1.0;
    }
    (x0, x1, y0, y1 * 1.05)
}

/// The page: a title, a table of key figures per config, the charts inline, then `sections`
/// (HTML already escaped, such as [`explained_section`]).
pub fn html(
    title: &str,
    table: &[(String, Vec<(String, String)>)],
    charts: &[(Chart, String)],
    sections: &str,
) -> String {
    let mut h = String::new();
    let _ = write!(
        h,
        "<!doctype html>\n<html lang=\"en\"><head><meta charset=\"utf-8\"><title>{t}</title>\n<style>\
         body{{font-family:sans-serif;margin:24px;color:#222;max-width:1100px}}\
         table{{border-collapse:collapse;margin:12px 0 24px}}td,th{{border:1px solid #ccc;padding:4px 10px;text-align:right}}\
         th:first-child,td:first-child{{text-align:left}}figure{{margin:0 0 28px}}figcaption{{color:#555;font-size:13px}}\
         </style></head><body>\n<h1>{t}</h1>\n",
        t = escape(title)
    );
    if let Some((_, first)) = table.first() {
        h.push_str("<table><tr><th>figure</th>");
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
    }
    for (chart, svg) in charts {
        let _ = writeln!(
            h,
            "<figure id=\"{}\">{}<figcaption>{}</figcaption></figure>",
            escape(&chart.name),
            strip_xml_header(svg),
            escape(&chart.title)
        );
    }
    h.push_str(sections);
    h.push_str("</body></html>\n");
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

fn escape(s: &str) -> String {
    s.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;").replace('"', "&quot;")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn chart() -> Chart {
        Chart {
            name: "alloc".into(),
            title: "GPU allocation".into(),
            x_label: "time (s)".into(),
            y_label: "%".into(),
            series: vec![
                Series { label: "default".into(), points: vec![(0.0, 0.0), (10.0, 50.0), (20.0, 80.0)] },
                Series { label: "binpack".into(), points: vec![(0.0, 0.0), (10.0, 60.0), (20.0, 90.0)] },
            ],
        }
    }

    #[test]
    fn charts_render_to_svg_with_both_series() {
        let s = svg(&chart()).unwrap();
        assert!(s.contains("<svg"));
        assert!(s.contains("GPU allocation"));
        assert!(s.contains("binpack"));
        assert!(s.matches("<polyline").count() >= 2, "one line per series");
    }

    #[test]
    fn empty_charts_still_render() {
        let c = Chart { series: vec![], ..chart() };
        assert!(svg(&c).unwrap().contains("<svg"));
    }

    #[test]
    fn page_is_self_contained_and_escaped() {
        let c = chart();
        let s = svg(&c).unwrap();
        let table = vec![("a<b".to_string(), vec![("pods".to_string(), "3".to_string())])];
        let page = html("Tessera & co", &table, &[(c, s)], "");
        assert!(page.contains("Tessera &amp; co"));
        assert!(page.contains("a&lt;b"));
        assert!(!page.contains("<?xml"));
        assert!(!page.contains("src=\"http"), "no external resources");
    }
}
