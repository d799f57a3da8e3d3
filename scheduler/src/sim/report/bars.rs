//! Horizontal bar charts: one row per category (an unschedulable reason), one bar per
//! configuration in its colour, longest category first.

use plotters::coord::Shift;
use plotters::prelude::*;

use super::axis::{colour, count_labels, format_count_tick, legend, row_name, value_range};

/// A horizontal bar chart.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct BarChart {
    /// The row labels, top to bottom.
    pub categories: Vec<String>,
    /// Per configuration: its name and one value per category.
    pub series: Vec<(String, Vec<f64>)>,
    /// The value axis' label.
    pub x_label: String,
}

/// Longest row label drawn; the table beside the chart gives the whole text.
const LABEL_CHARS: usize = 56;
/// Height of one category's row, pixels.
pub const ROW_PX: u32 = 34;

/// `s` cut to [`LABEL_CHARS`] characters, with an ellipsis when cut.
pub fn shorten(s: &str) -> String {
    if s.chars().count() <= LABEL_CHARS {
        return s.to_string();
    }
    let mut out: String = s.chars().take(LABEL_CHARS - 1).collect();
    out.push('…');
    out
}

/// The pixel height the chart needs.
pub fn height(chart: &BarChart) -> u32 {
    120 + ROW_PX * chart.categories.len().max(1) as u32
}

/// The bar of configuration `k` of `m` in row `row` of `rows` (row 0 at the top), as a y
/// interval: rows are centred on whole numbers, counted from the bottom.
pub fn bar_span(row: usize, rows: usize, k: usize, m: usize) -> (f64, f64) {
    let centre = (rows - 1 - row) as f64;
    let width = 0.8 / m.max(1) as f64;
    let top = centre + 0.4 - k as f64 * width;
    (top - width, top)
}

/// Draws `chart` on `area`, titled `title`.
pub fn draw(area: &DrawingArea<SVGBackend<'_>, Shift>, title: &str, chart: &BarChart) -> Result<(), String> {
    let rows = chart.categories.len().max(1);
    let (_, x1) = value_range(chart.series.iter().flat_map(|(_, v)| v.iter().copied()));
    let longest = chart.categories.iter().map(|c| shorten(c).chars().count()).max().unwrap_or(0);
    let label_px = (longest as u32 * 7 + 16).clamp(60, 420);
    let mut cc = ChartBuilder::on(area)
        .caption(title, ("sans-serif", 18))
        .margin(12)
        .x_label_area_size(36)
        .y_label_area_size(label_px)
        .build_cartesian_2d(0.0..x1, -0.5..rows as f64 - 0.5)
        .map_err(|e| e.to_string())?;
    let names: Vec<String> = chart.categories.iter().map(|c| shorten(c)).collect();
    let row_label = |v: &f64| row_name(*v, &names);
    cc.configure_mesh()
        .disable_y_mesh()
        .x_desc(chart.x_label.as_str())
        .x_labels(count_labels(x1))
        .x_label_formatter(&|v| format_count_tick(*v))
        .y_labels(rows)
        .y_label_formatter(&row_label)
        .light_line_style(RGBColor(235, 235, 235))
        .draw()
        .map_err(|e| e.to_string())?;
    let m = chart.series.len();
    for (k, (label, values)) in chart.series.iter().enumerate() {
        let c = colour(k);
        let bars = values.iter().enumerate().map(|(row, v)| {
            let (lo, hi) = bar_span(row, rows, k, m);
            Rectangle::new([(0.0, lo), (*v, hi)], c.filled())
        });
        cc.draw_series(bars)
            .map_err(|e| e.to_string())?
            .label(label.as_str())
            .legend(move |(x, y)| Rectangle::new([(x, y - 5), (x + 12, y + 5)], c.filled()));
    }
    if m > 1 {
        legend(&mut cc, SeriesLabelPosition::LowerRight)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sim::report::{render, svg_texts};

    fn chart() -> BarChart {
        BarChart {
            categories: vec!["Insufficient cpu".into(), "node(s) had untolerated taint <gpu>".into()],
            series: vec![("default".into(), vec![3.0, 1.0]), ("binpack".into(), vec![2.0, 0.0])],
            x_label: "pods".into(),
        }
    }

    #[test]
    fn bars_render_one_rect_per_config_and_category_with_escaped_labels() {
        let c = chart();
        let s = render(760, height(&c), |a| draw(a, "Unschedulable pods by reason", &c)).unwrap();
        assert!(s.contains("Insufficient cpu"));
        assert!(s.contains("untolerated taint &lt;gpu&gt;") || s.contains("untolerated taint &lt;gpu>"), "{s}");
        assert!(s.contains("binpack"), "legend");
        let texts = svg_texts(&s);
        assert!(texts.iter().any(|t| t == "3") && texts.iter().any(|t| t == "Insufficient cpu"), "{texts:?}");
        assert!(!texts.iter().any(|t| t.contains('.') && t.parse::<f64>().is_ok()), "whole counts only: {texts:?}");
    }

    #[test]
    fn each_config_gets_its_own_slice_of_the_row_top_down() {
        // Two rows, two configs: row 0 is at the top (centre 1), config 0 above config 1.
        let near = |(a, b): (f64, f64), (x, y): (f64, f64)| (a - x).abs() < 1e-9 && (b - y).abs() < 1e-9;
        assert!(near(bar_span(0, 2, 0, 2), (1.0, 1.4)));
        assert!(near(bar_span(0, 2, 1, 2), (0.6, 1.0)));
        assert!(near(bar_span(1, 2, 0, 1), (-0.4, 0.4)));
    }

    #[test]
    fn long_labels_are_cut() {
        let long = "x".repeat(100);
        assert_eq!(shorten(&long).chars().count(), LABEL_CHARS);
        assert!(shorten(&long).ends_with('…'));
        assert_eq!(shorten("short"), "short");
    }
}
