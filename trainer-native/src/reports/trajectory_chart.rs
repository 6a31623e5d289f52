//! The chart of retention over training: one panel per site kind with each run's mean and
//! spread, and a last panel with how far each run drifted from the first, unit by unit.

use plotters::coord::Shift;
use plotters::prelude::*;
use prunelab_engine::gates::SiteKind;

use super::plots::{Chart, Plane, draw_legend, padded_range, with_legend_headroom};
use super::trajectory::{Divergence, KindCurve};

/// One run's curves, as the chart labels it.
pub struct RunCurves {
    pub label: String,
    pub curves: Vec<KindCurve>,
}

/// Retention over training for runs drawn side by side.
pub struct RetentionOverTraining {
    pub runs: Vec<RunCurves>,
    /// The divergence from the first run of each later run (`None`: another model's sites).
    pub divergences: Vec<Option<Divergence>>,
}

/// Runs told apart by colour (they may all be one method) and by dash: the first is solid and
/// wide, the others dashed on top of it, so curves that coincide still show both.
const RUN_COLOURS: [RGBColor; 5] = [
    RGBColor(31, 119, 180),
    RGBColor(255, 127, 14),
    RGBColor(44, 160, 44),
    RGBColor(214, 39, 40),
    RGBColor(148, 103, 189),
];

fn run_colour(index: usize) -> RGBColor {
    RUN_COLOURS[index % RUN_COLOURS.len()]
}

/// Draws `points` in run `index`'s style; `spread` lines are thin and pale.
fn draw_line<DB: DrawingBackend>(
    chart: &mut Plane<'_, DB>,
    points: &[(f64, f64)],
    index: usize,
    spread: bool,
) -> Result<(), String> {
    let colour = run_colour(index);
    let style = match (spread, index) {
        (false, 0) => colour.stroke_width(3),
        (false, _) => colour.stroke_width(2),
        (true, _) => colour.mix(0.55).stroke_width(1),
    };
    let err = |e: DrawingAreaErrorKind<DB::ErrorType>| e.to_string();
    if index == 0 {
        chart
            .draw_series(LineSeries::new(points.iter().copied(), style))
            .map_err(err)?;
    } else {
        chart
            .draw_series(DashedLineSeries::new(points.iter().copied(), 8, 6, style))
            .map_err(err)?;
    }
    Ok(())
}

impl RetentionOverTraining {
    /// The site kinds any run gates, in forward order.
    fn kinds(&self) -> Vec<SiteKind> {
        SiteKind::ALL
            .into_iter()
            .filter(|k| self.runs.iter().any(|r| r.curves.iter().any(|c| c.kind == *k)))
            .collect()
    }

    fn draw_kind<DB: DrawingBackend>(&self, panel: &DrawingArea<DB, Shift>, kind: SiteKind) -> Result<(), String> {
        let err = |e: DrawingAreaErrorKind<DB::ErrorType>| e.to_string();
        let curves: Vec<(usize, &KindCurve)> = self
            .runs
            .iter()
            .enumerate()
            .filter_map(|(i, r)| r.curves.iter().find(|c| c.kind == kind).map(|c| (i, c)))
            .collect();
        let all = || {
            curves
                .iter()
                .flat_map(|(_, c)| c.low.iter().chain(&c.high).chain(&c.mean))
        };
        let units = curves.first().map_or(0, |(_, c)| c.units);
        let mut chart = ChartBuilder::on(panel)
            .caption(format!("{} ({units} units)", kind.name()), ("sans-serif", 17))
            .margin(10)
            .x_label_area_size(36)
            .y_label_area_size(50)
            .build_cartesian_2d(
                padded_range(all().map(|p| p.0), 0.02, false),
                padded_range(all().map(|p| p.1), 0.05, false),
            )
            .map_err(err)?;
        chart
            .configure_mesh()
            .x_desc("step")
            .x_label_formatter(&|v| format!("{v:.0}"))
            .y_desc("retention P(keep)")
            .draw()
            .map_err(err)?;
        for (index, curve) in curves {
            draw_line(&mut chart, &curve.low, index, true)?;
            draw_line(&mut chart, &curve.high, index, true)?;
            draw_line(&mut chart, &curve.mean, index, false)?;
        }
        Ok(())
    }

    /// The last panel: each later run's largest difference from the first, and the legend.
    fn draw_divergence<DB: DrawingBackend>(&self, panel: &DrawingArea<DB, Shift>) -> Result<(), String> {
        let err = |e: DrawingAreaErrorKind<DB::ErrorType>| e.to_string();
        let first = self.runs.first().map_or("", |r| r.label.as_str());
        let points = || self.divergences.iter().flatten().flat_map(|d| d.per_step.iter());
        let y = padded_range(points().map(|p| p.1), 0.05, true);
        let mut chart = ChartBuilder::on(panel)
            .caption(
                format!("Largest |difference| from {first}, any unit"),
                ("sans-serif", 17),
            )
            .margin(10)
            .x_label_area_size(36)
            .y_label_area_size(60)
            .build_cartesian_2d(
                padded_range(points().map(|p| p.0), 0.02, false),
                with_legend_headroom(y, self.runs.len()),
            )
            .map_err(err)?;
        chart
            .configure_mesh()
            .x_desc("step")
            .x_label_formatter(&|v| format!("{v:.0}"))
            .y_desc("retention difference")
            .y_label_formatter(&|v| format!("{v:.1e}"))
            .draw()
            .map_err(err)?;
        for (index, run) in self.runs.iter().enumerate() {
            let divergence = index
                .checked_sub(1)
                .and_then(|i| self.divergences.get(i))
                .and_then(Option::as_ref);
            let points = divergence.map_or(&[][..], |d| d.per_step.as_slice());
            draw_line(&mut chart, points, index, false)?;
            let colour = run_colour(index);
            let note = match (index, divergence) {
                (0, _) => " (first: the others are measured from it)",
                (_, None) => " (other sites: not compared)",
                _ => "",
            };
            // The legend entry is drawn here, for every run, on an empty series of its colour.
            chart
                .draw_series(LineSeries::new(std::iter::empty(), colour.stroke_width(2)))
                .map_err(err)?
                .label(format!("{}{note}", run.label))
                .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], colour.stroke_width(2)));
        }
        draw_legend(&mut chart, SeriesLabelPosition::UpperLeft)
    }
}

impl Chart for RetentionOverTraining {
    /// Six panels, each about as large as a one-panel chart's half.
    fn size(&self) -> (u32, u32) {
        (1440, 880)
    }

    fn draw<DB: DrawingBackend>(&self, root: &DrawingArea<DB, Shift>) -> Result<(), String> {
        let err = |e: DrawingAreaErrorKind<DB::ErrorType>| e.to_string();
        root.fill(&WHITE).map_err(err)?;
        let body = root
            .titled(
                "Retention over training: mean (thick) and 10th to 90th percentile (thin) of the units",
                ("sans-serif", 20),
            )
            .map_err(err)?;
        let panels = body.split_evenly((2, 3));
        for (panel, kind) in panels.iter().zip(self.kinds()) {
            self.draw_kind(panel, kind)?;
        }
        self.draw_divergence(&panels[panels.len() - 1])
    }
}
