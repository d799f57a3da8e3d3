//! Heatmaps: rows are node groups, columns time buckets, and each cell's colour the share of
//! the group's capacity allocated in that bucket (white 0%, dark blue 100%). One panel per
//! configuration, stacked, on one shared time axis.

use plotters::coord::Shift;
use plotters::prelude::*;

use super::axis::{format_tick, row_name};

/// One row of cells.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct HeatRow {
    /// The group.
    pub label: String,
    /// Allocated share per bucket, % of capacity.
    pub shares: Vec<f64>,
}

/// One configuration's rows.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Panel {
    /// The configuration (shown when there are several panels).
    pub title: String,
    /// Its rows, top to bottom.
    pub rows: Vec<HeatRow>,
}

/// A heatmap over time.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Heatmap {
    /// X axis label.
    pub x_label: String,
    /// Where the time axis ends (it starts at 0); the buckets divide it evenly.
    pub x_end: f64,
    /// The panels, top to bottom.
    pub panels: Vec<Panel>,
}

/// Height of one row of cells, pixels.
const ROW_PX: u32 = 18;

/// The pixel height of one panel of `rows` rows.
fn panel_height(rows: usize) -> u32 {
    90 + ROW_PX * rows.max(1) as u32
}

/// The pixel height the heatmap needs, below its title.
pub fn height(map: &Heatmap) -> u32 {
    40 + map.panels.iter().map(|p| panel_height(p.rows.len())).sum::<u32>()
}

/// The colour of a share: white at 0%, dark blue at 100% and above.
pub fn shade(share: f64) -> RGBColor {
    let t = (share / 100.0).clamp(0.0, 1.0);
    let mix = |from: u8, to: u8| (f64::from(from) + t * (f64::from(to) - f64::from(from))).round() as u8;
    RGBColor(mix(247, 8), mix(251, 48), mix(255, 107))
}

/// Draws `map` on `area`, titled `title`.
pub fn draw(area: &DrawingArea<SVGBackend<'_>, Shift>, title: &str, map: &Heatmap) -> Result<(), String> {
    let body = area.titled(title, ("sans-serif", 18)).map_err(|e| e.to_string())?;
    let mut rest = body;
    let several = map.panels.len() > 1;
    for panel in &map.panels {
        let (top, bottom) = rest.split_vertically(panel_height(panel.rows.len()));
        draw_panel(&top, map, panel, several)?;
        rest = bottom;
    }
    Ok(())
}

fn draw_panel(
    area: &DrawingArea<SVGBackend<'_>, Shift>,
    map: &Heatmap,
    panel: &Panel,
    titled: bool,
) -> Result<(), String> {
    let rows = panel.rows.len().max(1);
    let names: Vec<String> = panel.rows.iter().map(|r| r.label.clone()).collect();
    let label_px = (names.iter().map(|n| n.chars().count()).max().unwrap_or(0) as u32 * 7 + 16).clamp(60, 260);
    let x_end = if map.x_end > 0.0 { map.x_end } else { 1.0 };
    let mut b = ChartBuilder::on(area);
    b.margin(8).margin_right(90).x_label_area_size(36).y_label_area_size(label_px);
    if titled {
        b.caption(&panel.title, ("sans-serif", 14));
    }
    let mut cc = b.build_cartesian_2d(0.0..x_end, -0.5..rows as f64 - 0.5).map_err(|e| e.to_string())?;
    cc.configure_mesh()
        .disable_mesh()
        .x_desc(map.x_label.as_str())
        .x_label_formatter(&|v| format_tick(*v))
        .y_labels(rows)
        .y_label_formatter(&|v| row_name(*v, &names))
        .draw()
        .map_err(|e| e.to_string())?;
    for (i, row) in panel.rows.iter().enumerate() {
        let centre = (rows - 1 - i) as f64;
        let width = x_end / row.shares.len().max(1) as f64;
        let cells = row.shares.iter().enumerate().map(|(b, s)| {
            let x = b as f64 * width;
            Rectangle::new([(x, centre - 0.5), (x + width, centre + 0.5)], shade(*s).filled())
        });
        cc.draw_series(cells).map_err(|e| e.to_string())?;
    }
    draw_scale(area)
}

/// The colour scale at the right edge: 0% at the bottom, 100% at the top.
fn draw_scale(area: &DrawingArea<SVGBackend<'_>, Shift>) -> Result<(), String> {
    let (w, h) = area.dim_in_pixel();
    let (x, top, bottom) = (w as i32 - 70, 14, (h as i32 - 44).max(30));
    let steps = 10;
    let step_px = (bottom - top) as f64 / f64::from(steps);
    for k in 0..steps {
        let y0 = bottom - (f64::from(k + 1) * step_px).round() as i32;
        let y1 = bottom - (f64::from(k) * step_px).round() as i32;
        let colour = shade(100.0 * (f64::from(k) + 0.5) / f64::from(steps));
        area.draw(&Rectangle::new([(x, y0), (x + 14, y1)], colour.filled())).map_err(|e| e.to_string())?;
    }
    let text = |s: &str, y: i32| Text::new(s.to_string(), (x + 18, y - 6), ("sans-serif", 12));
    area.draw(&text("100%", top)).map_err(|e| e.to_string())?;
    area.draw(&text("0%", bottom)).map_err(|e| e.to_string())?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sim::report::render;

    fn map(panels: usize) -> Heatmap {
        let panel = |t: &str| Panel {
            title: t.into(),
            rows: vec![
                HeatRow { label: "zone a".into(), shares: vec![0.0, 50.0, 100.0] },
                HeatRow { label: "rack: 3 others".into(), shares: vec![10.0, 20.0, 30.0] },
            ],
        };
        Heatmap {
            x_label: "virtual time (s)".into(),
            x_end: 30.0,
            panels: (0..panels).map(|i| panel(&format!("c{i}"))).collect(),
        }
    }

    #[test]
    fn heatmaps_draw_a_cell_per_row_and_bucket_and_label_rows() {
        let m = map(2);
        let s = render(760, height(&m), |a| draw(a, "CPU allocation per node group", &m)).unwrap();
        assert!(s.contains("zone a") && s.contains("rack: 3 others") && s.contains("c1"));
        // 2 panels x 2 rows x 3 buckets, plus the two 10-step scales.
        assert!(s.matches("<rect").count() >= 12 + 20, "{s}");
        assert!(s.contains("100%"));
    }

    #[test]
    fn shades_go_from_white_to_dark_blue_and_stop_there() {
        assert_eq!(shade(0.0), RGBColor(247, 251, 255));
        assert_eq!(shade(100.0), RGBColor(8, 48, 107));
        assert_eq!(shade(250.0), shade(100.0));
        assert_eq!(shade(-5.0), shade(0.0));
    }
}
