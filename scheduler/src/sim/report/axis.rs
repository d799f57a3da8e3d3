//! Axes shared by every chart: tick labels without spurious decimals, the ranges that cover
//! the data, and the palette that gives each configuration its colour.

use plotters::coord::CoordTranslate;
use plotters::prelude::*;

/// One colour per configuration (or per line when one configuration draws several).
pub const PALETTE: [RGBColor; 6] = [
    RGBColor(31, 119, 180),
    RGBColor(255, 127, 14),
    RGBColor(44, 160, 44),
    RGBColor(214, 39, 40),
    RGBColor(148, 103, 189),
    RGBColor(140, 86, 75),
];

/// The colour of line, bar set or panel `i`.
pub fn colour(i: usize) -> RGBColor {
    PALETTE[i % PALETTE.len()]
}

/// Draws the legend of the series drawn on `cc` at `position`, on a light box.
pub fn legend<'a, DB, CT>(cc: &mut ChartContext<'a, DB, CT>, position: SeriesLabelPosition) -> Result<(), String>
where
    DB: DrawingBackend + 'a,
    CT: CoordTranslate,
{
    cc.configure_series_labels()
        .background_style(WHITE.mix(0.85))
        .border_style(RGBColor(200, 200, 200))
        .position(position)
        .draw()
        .map_err(|e| e.to_string())
}

/// A tick label as people write it: `25` rather than `25.000`, `0.5` rather than `0.500`.
pub fn format_tick(v: f64) -> String {
    if !v.is_finite() {
        return String::new();
    }
    let rounded = v.round();
    if (v - rounded).abs() <= 1e-9 * v.abs().max(1.0) {
        // `+ 0.0` turns -0 into 0.
        return format!("{}", rounded + 0.0);
    }
    // Enough decimals to show two significant digits, trailing zeros dropped.
    let decimals = (2 - v.abs().log10().floor() as i32).clamp(1, 9) as usize;
    let s = format!("{v:.decimals$}");
    s.trim_end_matches('0').trim_end_matches('.').to_string()
}

/// A tick of an axis that counts (pods): whole numbers only, nothing between them.
pub fn format_count_tick(v: f64) -> String {
    if (v - v.round()).abs() > 1e-9 { String::new() } else { format_tick(v) }
}

/// A tick of a logarithmic axis: only 1, 2 and 5 times a power of ten are labelled, so the
/// labels between two decades do not crowd.
pub fn format_log_tick(v: f64) -> String {
    if v.is_nan() || v <= 0.0 {
        return String::new();
    }
    let mantissa = v / 10f64.powf(v.log10().floor());
    let labelled = [1.0, 2.0, 5.0, 10.0].iter().any(|m| (mantissa - m).abs() < 1e-6);
    if labelled { format_tick(v) } else { String::new() }
}

/// A range `(low, high)` covering `values`, never empty: starting at 0 unless values are
/// negative, with 5% room at the top.
pub fn value_range(values: impl Iterator<Item = f64>) -> (f64, f64) {
    let (mut low, mut high) = (0.0f64, f64::MIN);
    for v in values.filter(|v| v.is_finite()) {
        low = low.min(v);
        high = high.max(v);
    }
    if high <= low {
        return (low, low + 1.0);
    }
    (low, high + 0.05 * (high - low))
}

/// A range `(low, high)` spanning `values` exactly, never empty.
pub fn span(values: impl Iterator<Item = f64>) -> (f64, f64) {
    let (mut low, mut high) = (f64::MAX, f64::MIN);
    for v in values.filter(|v| v.is_finite()) {
        low = low.min(v);
        high = high.max(v);
    }
    if low > high {
        return (0.0, 1.0);
    }
    if high <= low { (low, low + 1.0) } else { (low, high) }
}

/// How many labels a counting axis up to `high` gets: one per whole number while they fit,
/// so plotters picks whole steps.
pub fn count_labels(high: f64) -> usize {
    (high.floor() as usize + 1).clamp(2, 10)
}

/// The label of a categorical row axis at tick `v`: rows are centred on whole numbers counted
/// from the bottom, and `names` lists them top to bottom.
pub fn row_name(v: f64, names: &[String]) -> String {
    let i = v.round();
    if (v - i).abs() > 1e-6 || i < 0.0 || i as usize >= names.len() {
        return String::new();
    }
    names[names.len() - 1 - i as usize].clone()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ticks_have_no_spurious_decimals() {
        assert_eq!(format_tick(25.0), "25");
        assert_eq!(format_tick(0.0), "0");
        assert_eq!(format_tick(-0.0), "0");
        assert_eq!(format_tick(100.0), "100");
        assert_eq!(format_tick(2.5), "2.5");
        assert_eq!(format_tick(0.25), "0.25");
        assert_eq!(format_tick(0.001), "0.001");
        assert_eq!(format_tick(12.5), "12.5");
        assert_eq!(format_tick(1e6), "1000000");
        assert_eq!(format_tick(f64::NAN), "");
    }

    #[test]
    fn counting_axes_label_whole_numbers_only() {
        assert_eq!(format_count_tick(3.0), "3");
        assert_eq!(format_count_tick(2.5), "");
        assert_eq!(count_labels(3.2), 4);
        assert_eq!(count_labels(500.0), 10);
    }

    #[test]
    fn log_axes_label_one_two_five() {
        assert_eq!(format_log_tick(0.1), "0.1");
        assert_eq!(format_log_tick(20.0), "20");
        assert_eq!(format_log_tick(500.0), "500");
        assert_eq!(format_log_tick(30.0), "");
        assert_eq!(format_log_tick(0.0), "");
    }

    #[test]
    fn rows_are_named_top_down_at_whole_ticks() {
        let names = vec!["top".to_string(), "bottom".to_string()];
        assert_eq!(row_name(1.0, &names), "top");
        assert_eq!(row_name(0.0, &names), "bottom");
        assert_eq!(row_name(0.5, &names), "");
        assert_eq!(row_name(2.0, &names), "");
    }

    #[test]
    fn ranges_are_never_empty() {
        assert_eq!(value_range([3.0, 5.0].into_iter()), (0.0, 5.25));
        assert_eq!(value_range(std::iter::empty()), (0.0, 1.0));
        assert_eq!(span([2.0, 2.0].into_iter()), (2.0, 3.0));
        assert_eq!(span(std::iter::empty()), (0.0, 1.0));
    }
}
