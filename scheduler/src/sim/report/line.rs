//! Line charts: values over time or against arrived demand, one colour per series, drawn as
//! steps where the value holds until the next event, with an optional band (mean ± std over
//! seeds) and an optional logarithmic x axis.

use std::collections::BTreeMap;

use plotters::coord::Shift;
use plotters::prelude::*;

use super::axis::{colour, count_labels, format_count_tick, format_log_tick, format_tick, legend, span, value_range};

/// One line.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Series {
    /// Legend label (the config name when several configs are compared).
    pub label: String,
    /// (x, y) points, x increasing.
    pub points: Vec<(f64, f64)>,
    /// The value holds from one point until the next: drawn as steps, not diagonals.
    pub step: bool,
    /// (x, low, high): a shaded band around the line (mean ± std over seeds).
    pub band: Band,
}

impl Series {
    /// A line through `points`.
    pub fn new(label: impl Into<String>, points: Vec<(f64, f64)>) -> Series {
        Series { label: label.into(), points, ..Series::default() }
    }

    /// A step line through `points`.
    pub fn steps(label: impl Into<String>, points: Vec<(f64, f64)>) -> Series {
        Series { step: true, ..Series::new(label, points) }
    }

    /// The points as drawn: for a step line, each value held until the next x.
    pub fn drawn(&self) -> Vec<(f64, f64)> {
        if self.step { step_points(&self.points) } else { self.points.clone() }
    }
}

/// How the y axis reads.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum YAxis {
    /// Any number (percentages).
    #[default]
    Value,
    /// Whole numbers (pods).
    Count,
}

/// A line chart.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct LineChart {
    /// X axis label.
    pub x_label: String,
    /// Y axis label.
    pub y_label: String,
    /// The lines, overlaid.
    pub series: Vec<Series>,
    /// The x axis is logarithmic (x must then be positive; see [`super::figures`]).
    pub x_log: bool,
    /// What the y axis counts.
    pub y_axis: YAxis,
}

/// `points` as a step function: each y held until the next x, then the jump.
pub fn step_points(points: &[(f64, f64)]) -> Vec<(f64, f64)> {
    let mut out = Vec::with_capacity(points.len() * 2);
    for (i, &(x, y)) in points.iter().enumerate() {
        if i > 0 {
            out.push((x, points[i - 1].1));
        }
        out.push((x, y));
    }
    out
}

/// (x, low, high) points of a band.
pub type Band = Vec<(f64, f64, f64)>;

/// (x, mean) and (x, mean − std, mean + std) over `curves` (one per seed), at every x all of
/// them have. Population std, as `summary.json` gives it.
pub fn mean_band(curves: &[BTreeMap<u32, f64>]) -> (Vec<(f64, f64)>, Band) {
    let Some(first) = curves.first() else { return (Vec::new(), Vec::new()) };
    let mut mean = Vec::new();
    let mut band = Vec::new();
    for k in first.keys() {
        let vals: Vec<f64> = curves.iter().filter_map(|c| c.get(k).copied()).collect();
        if vals.len() != curves.len() {
            continue;
        }
        let n = vals.len() as f64;
        let m = vals.iter().sum::<f64>() / n;
        let std = (vals.iter().map(|v| (v - m).powi(2)).sum::<f64>() / n).sqrt();
        let x = f64::from(*k);
        mean.push((x, m));
        band.push((x, m - std, m + std));
    }
    (mean, band)
}

/// The outline of a band: along the highs, back along the lows.
pub fn band_outline(band: &[(f64, f64, f64)]) -> Vec<(f64, f64)> {
    let highs = band.iter().map(|&(x, _, hi)| (x, hi));
    let lows = band.iter().rev().map(|&(x, lo, _)| (x, lo));
    highs.chain(lows).collect()
}

/// Draws `chart` on `area`, titled `title`.
pub fn draw(area: &DrawingArea<SVGBackend<'_>, Shift>, title: &str, chart: &LineChart) -> Result<(), String> {
    let drawn: Vec<Vec<(f64, f64)>> = chart.series.iter().map(Series::drawn).collect();
    let xs = drawn.iter().flatten().map(|p| p.0);
    let ys = drawn.iter().flatten().map(|p| p.1);
    let bands = chart.series.iter().flat_map(|s| s.band.iter());
    let (x0, x1) = span(xs.chain(bands.clone().map(|b| b.0)));
    let (y0, y1) = value_range(ys.chain(bands.flat_map(|b| [b.1, b.2])));
    if chart.x_log {
        // A hair below the first decade, so that plotters' rounding still labels it.
        let x0 = x0.max(f64::MIN_POSITIVE) * 0.999;
        let x1 = if x1 <= x0 { x0 * 10.0 } else { x1 };
        let cc = builder(area, title).build_cartesian_2d((x0..x1).log_scale(), y0..y1).map_err(|e| e.to_string())?;
        plot(cc, chart, &drawn, &format_log_tick, y1)
    } else {
        let cc = builder(area, title).build_cartesian_2d(x0..x1, y0..y1).map_err(|e| e.to_string())?;
        plot(cc, chart, &drawn, &format_tick, y1)
    }
}

fn builder<'a, 'b>(area: &'a DrawingArea<SVGBackend<'b>, Shift>, title: &str) -> ChartBuilder<'a, 'b, SVGBackend<'b>> {
    let mut b = ChartBuilder::on(area);
    b.caption(title, ("sans-serif", 18)).margin(12).x_label_area_size(36).y_label_area_size(56);
    b
}

/// Draws the mesh, bands, lines and legend on a built chart.
fn plot<'a, X>(
    mut cc: ChartContext<'a, SVGBackend<'a>, Cartesian2d<X, plotters::coord::types::RangedCoordf64>>,
    chart: &LineChart,
    drawn: &[Vec<(f64, f64)>],
    x_format: &dyn Fn(f64) -> String,
    y_high: f64,
) -> Result<(), String>
where
    X: Ranged<ValueType = f64> + plotters::coord::ranged1d::ValueFormatter<f64>,
{
    let y_format: &dyn Fn(f64) -> String = match chart.y_axis {
        YAxis::Value => &format_tick,
        YAxis::Count => &format_count_tick,
    };
    let x_label = |v: &f64| x_format(*v);
    let y_label = |v: &f64| y_format(*v);
    let y_labels = match chart.y_axis {
        YAxis::Value => 10,
        YAxis::Count => count_labels(y_high),
    };
    cc.configure_mesh()
        .x_desc(chart.x_label.as_str())
        .y_desc(chart.y_label.as_str())
        .x_label_formatter(&x_label)
        .y_label_formatter(&y_label)
        .y_labels(y_labels)
        .light_line_style(RGBColor(235, 235, 235))
        .draw()
        .map_err(|e| e.to_string())?;
    for (i, s) in chart.series.iter().enumerate() {
        if !s.band.is_empty() {
            let fill = colour(i).mix(0.2).filled();
            cc.draw_series(std::iter::once(Polygon::new(band_outline(&s.band), fill))).map_err(|e| e.to_string())?;
        }
    }
    for (i, (s, points)) in chart.series.iter().zip(drawn).enumerate() {
        let c = colour(i);
        cc.draw_series(LineSeries::new(points.iter().copied(), c.stroke_width(2)))
            .map_err(|e| e.to_string())?
            .label(s.label.as_str())
            .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 16, y)], c.stroke_width(2)));
    }
    if chart.series.len() > 1 || chart.series.iter().any(|s| !s.label.is_empty()) {
        legend(&mut cc, SeriesLabelPosition::UpperLeft)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sim::report::{render, svg_texts};

    fn chart() -> LineChart {
        LineChart {
            x_label: "time (s)".into(),
            y_label: "%".into(),
            series: vec![
                Series::new("default", vec![(0.0, 0.0), (10.0, 50.0), (20.0, 80.0)]),
                Series::new("binpack", vec![(0.0, 0.0), (10.0, 60.0), (20.0, 90.0)]),
            ],
            ..LineChart::default()
        }
    }

    fn svg(c: &LineChart) -> String {
        render(760, 360, |area| draw(area, "GPU allocation", c)).unwrap()
    }

    #[test]
    fn charts_render_to_svg_with_both_series_and_whole_ticks() {
        let s = svg(&chart());
        assert!(s.contains("<svg") && s.contains("GPU allocation") && s.contains("binpack"));
        assert!(s.matches("<polyline").count() >= 2, "one line per series");
        let texts = svg_texts(&s);
        assert!(texts.iter().any(|t| t == "20"), "whole ticks: {texts:?}");
        assert!(!texts.iter().any(|t| t.contains(".0")), "no spurious decimals: {texts:?}");
    }

    #[test]
    fn empty_charts_still_render() {
        let c = LineChart { series: vec![], ..chart() };
        assert!(svg(&c).contains("<svg"));
        let log = LineChart { series: vec![], x_log: true, ..chart() };
        assert!(svg(&log).contains("<svg"));
    }

    #[test]
    fn steps_hold_each_value_until_the_next_point() {
        let s = Series::steps("", vec![(0.0, 1.0), (2.0, 3.0), (5.0, 0.0)]);
        assert_eq!(s.drawn(), vec![(0.0, 1.0), (2.0, 1.0), (2.0, 3.0), (5.0, 3.0), (5.0, 0.0)]);
        assert_eq!(Series::new("", vec![(0.0, 1.0), (2.0, 3.0)]).drawn().len(), 2);
    }

    #[test]
    fn bands_are_mean_plus_minus_population_std_where_every_seed_has_a_point() {
        let a = BTreeMap::from([(0, 10.0), (1, 20.0), (2, 30.0)]);
        let b = BTreeMap::from([(0, 20.0), (1, 20.0)]);
        let (mean, band) = mean_band(&[a, b]);
        assert_eq!(mean, vec![(0.0, 15.0), (1.0, 20.0)]);
        assert_eq!(band, vec![(0.0, 10.0, 20.0), (1.0, 20.0, 20.0)]);
        assert_eq!(band_outline(&band), vec![(0.0, 20.0), (1.0, 20.0), (1.0, 20.0), (0.0, 10.0)]);
    }

    #[test]
    fn bands_and_log_axes_render() {
        let mut c = chart();
        c.series[0].band = vec![(0.0, 0.0, 5.0), (10.0, 40.0, 60.0), (20.0, 70.0, 90.0)];
        assert!(svg(&c).contains("<polygon"), "the band is a filled polygon");
        let log = LineChart {
            x_log: true,
            series: vec![Series::new("w", vec![(0.01, 10.0), (1.0, 50.0), (100.0, 100.0)])],
            ..chart()
        };
        let s = svg(&log);
        let texts = svg_texts(&s);
        assert!(texts.iter().any(|t| t == "0.01") && texts.iter().any(|t| t == "100"), "decades: {texts:?}");
        assert!(!texts.iter().any(|t| t == "30"), "only 1, 2, 5 between decades: {texts:?}");
    }
}
