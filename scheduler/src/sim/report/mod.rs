//! `report.html`: one self-contained page a capacity planner reads, with each chart also
//! written as its own `.svg` (plotters' SVG backend; no scripts, no fonts, no other files).
//!
//! - [`figures`] turns runs into figures, each with a title and a sentence saying what it shows;
//! - [`line`], [`bars`] and [`heatmap`] draw the three kinds of chart;
//! - [`axis`] gives ticks without spurious decimals, ranges and colours (one per configuration);
//! - [`groups`] groups nodes by zone, rack and GPU model and buckets their allocation in time;
//! - [`reasons`] groups unschedulable pods by reason;
//! - [`page`] writes the HTML: provenance, summary table, figures, explained pods.

pub mod axis;
pub mod bars;
pub mod figures;
pub mod groups;
pub mod heatmap;
pub mod line;
pub mod page;
pub mod reasons;

use plotters::coord::Shift;
use plotters::prelude::*;

pub use self::figures::{Context, figures};
pub use self::page::{Page, Provenance, explained_section, html};

/// Width of every chart, pixels.
pub const WIDTH: u32 = 760;
/// Height of a line chart, pixels.
pub const LINE_HEIGHT: u32 = 360;

/// What a figure draws.
#[derive(Clone, Debug, PartialEq)]
pub enum Kind {
    /// Lines over x.
    Line(line::LineChart),
    /// Horizontal bars.
    Bars(bars::BarChart),
    /// A heatmap over time.
    Heatmap(heatmap::Heatmap),
}

/// One figure of the report.
#[derive(Clone, Debug, PartialEq)]
pub struct Figure {
    /// File stem of its own `.svg` and its anchor in the page.
    pub name: String,
    /// Its title.
    pub title: String,
    /// One sentence saying what it shows.
    pub caption: String,
    /// The chart.
    pub kind: Kind,
    /// HTML (escaped) placed right after it, such as the table of unschedulable pods.
    pub after: String,
}

impl Figure {
    /// The figure as an SVG document.
    pub fn svg(&self) -> Result<String, String> {
        match &self.kind {
            Kind::Line(c) => render(WIDTH, LINE_HEIGHT, |a| line::draw(a, &self.title, c)),
            Kind::Bars(c) => render(WIDTH, bars::height(c), |a| bars::draw(a, &self.title, c)),
            Kind::Heatmap(m) => render(WIDTH, heatmap::height(m), |a| heatmap::draw(a, &self.title, m)),
        }
    }
}

/// An SVG document `width` x `height` on white, drawn by `draw`.
pub fn render(
    width: u32,
    height: u32,
    draw: impl FnOnce(&DrawingArea<SVGBackend<'_>, Shift>) -> Result<(), String>,
) -> Result<String, String> {
    let mut out = String::new();
    {
        let root = SVGBackend::with_string(&mut out, (width, height)).into_drawing_area();
        root.fill(&WHITE).map_err(|e| e.to_string())?;
        draw(&root)?;
        root.present().map_err(|e| e.to_string())?;
    }
    Ok(out)
}

/// The texts of an SVG document's `<text>` elements (tests).
#[cfg(test)]
pub(crate) fn svg_texts(svg: &str) -> Vec<String> {
    svg.split("<text")
        .skip(1)
        .filter_map(|t| Some(t.split_once('>')?.1.split_once("</text>")?.0.trim().to_string()))
        .collect()
}
