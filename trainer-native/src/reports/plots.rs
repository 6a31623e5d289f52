//! Charts for `prunelab compare` (and the frame every chart is written in), drawn with plotters once as SVG and once as PNG: word error
//! rate against parameters, retention histograms, and loss and dev WER over training.
//!
//! Text needs a TrueType font (see [`ensure_font`]).

use std::path::{Path, PathBuf};

use plotters::coord::Shift;
use plotters::coord::types::RangedCoordf64;
use plotters::prelude::*;
use prunelab_engine::gates::Method;

use crate::atomic::drawn_through_temporary;

pub use super::chart_font::ensure_font;

/// Pixel size of a one-panel chart.
const SIZE: (u32, u32) = (960, 600);

/// A chart that can draw itself on any plotters backend.
pub trait Chart {
    fn draw<DB: DrawingBackend>(&self, root: &DrawingArea<DB, Shift>) -> Result<(), String>;

    /// Pixel size: most charts are one panel; a grid of panels asks for more.
    fn size(&self) -> (u32, u32) {
        SIZE
    }
}

/// Writes `chart` as `dir/name.svg` and `dir/name.png`, each drawn into a hidden temporary file
/// beside it and renamed into place: a full disk or a failed draw leaves the old chart or none,
/// never a truncated one.
pub fn svg_and_png<C: Chart>(dir: &Path, name: &str, chart: &C) -> Result<[PathBuf; 2], String> {
    ensure_font()?;
    let svg = drawn_through_temporary(&dir.join(format!("{name}.svg")), |path| {
        let root = SVGBackend::new(path, chart.size()).into_drawing_area();
        chart.draw(&root)?;
        root.present().map_err(|e| e.to_string())
    })?;
    let png = drawn_through_temporary(&dir.join(format!("{name}.png")), |path| {
        let root = BitMapBackend::new(path, chart.size()).into_drawing_area();
        chart.draw(&root)?;
        root.present().map_err(|e| e.to_string())
    })?;
    Ok([svg, png])
}

/// A method's colour, the same in every chart.
pub fn method_colour(method: &str) -> RGBColor {
    match method {
        "none" => RGBColor(40, 40, 40),
        "adaptive-dropout" => RGBColor(31, 119, 180),
        "l0" => RGBColor(214, 39, 40),
        "magnitude" => RGBColor(44, 160, 44),
        _ => RGBColor(148, 103, 189),
    }
}

/// A method as a reader knows it: the dense reference is "dense", not the method name "none".
pub fn display_method(method: &str) -> &str {
    if method == Method::None.name() { "dense" } else { method }
}

/// One run's line in a chart.
pub struct Series {
    pub label: String,
    pub method: String,
    /// 0 for the first seed of a method, 1 for the next…: the marker shape.
    pub seed_index: usize,
    pub points: Vec<(f64, f64)>,
}

/// A run as the table cuts it (its own rule, or `compare --budget`), with the 95 % interval of
/// its WER.
pub struct MarkedPoint {
    pub method: String,
    pub seed_index: usize,
    pub x: f64,
    pub y: f64,
    pub low: f64,
    pub high: f64,
}

/// Dev WER against parameters: each gated run's cuts at several thresholds as a line, every
/// run as the table cuts it as a marker with its interval.
pub struct WerAgainstParams {
    pub series: Vec<Series>,
    pub marks: Vec<MarkedPoint>,
}

impl Chart for WerAgainstParams {
    fn draw<DB: DrawingBackend>(&self, root: &DrawingArea<DB, Shift>) -> Result<(), String> {
        let err = |e: DrawingAreaErrorKind<DB::ErrorType>| e.to_string();
        root.fill(&WHITE).map_err(err)?;
        let xs = self
            .series
            .iter()
            .flat_map(|s| s.points.iter().map(|p| p.0))
            .chain(self.marks.iter().map(|m| m.x));
        let ys = self
            .series
            .iter()
            .flat_map(|s| s.points.iter().map(|p| p.1))
            .chain(self.marks.iter().map(|m| m.high));
        // Methods without a curve (dense, magnitude) appear only as marks: name them too.
        let mut unnamed: Vec<&str> = Vec::new();
        for mark in &self.marks {
            let named = self.series.iter().any(|s| s.method == mark.method);
            if !named && !unnamed.contains(&mark.method.as_str()) {
                unnamed.push(&mark.method);
            }
        }
        let legend_entries = self.series.len() + unnamed.len();
        let x_range = padded_range(xs, 0.05, false);
        let y_range = with_legend_headroom(padded_range(ys, 0.08, true), legend_entries);
        let mut chart = ChartBuilder::on(root)
            .caption(
                "Dev WER against parameters (bars: each run as the table cuts it, with its 95 % interval)",
                ("sans-serif", 20),
            )
            .margin(16)
            .x_label_area_size(44)
            .y_label_area_size(56)
            .build_cartesian_2d(x_range, y_range)
            .map_err(err)?;
        chart
            .configure_mesh()
            .x_desc("parameters (thousands)")
            .y_desc("dev WER (%)")
            .x_label_formatter(&|x| format!("{:.0}", x / 1e3))
            .draw()
            .map_err(err)?;
        draw_runs(&mut chart, &self.series, usize::MAX)?;
        for method in unnamed {
            let colour = method_colour(method);
            chart
                .draw_series(std::iter::empty::<Circle<(f64, f64), i32>>())
                .map_err(err)?
                .label(format!("{} (runs as cut)", display_method(method)))
                .legend(move |(x, y)| Circle::new((x + 10, y), 5, colour.filled()));
        }
        for mark in &self.marks {
            let colour = method_colour(&mark.method);
            chart
                .draw_series(std::iter::once(ErrorBar::new_vertical(
                    mark.x,
                    mark.low,
                    mark.y,
                    mark.high,
                    colour.stroke_width(2),
                    10,
                )))
                .map_err(err)?;
            chart
                .draw_series(std::iter::once(seed_marker((mark.x, mark.y), mark.seed_index, colour)))
                .map_err(err)?;
        }
        draw_legend(&mut chart, SeriesLabelPosition::UpperRight)
    }
}

/// Share of units per retention bin, one line per gated run.
pub struct RetentionHistograms {
    pub series: Vec<Series>,
}

impl RetentionHistograms {
    /// Bins every unit's retention into `bins` equal bins over [0, 1]; the points are the bin
    /// centres and each bin's share of the units.
    pub fn bin(retention: &[f32], bins: usize) -> Vec<(f64, f64)> {
        let mut counts = vec![0usize; bins];
        for &r in retention {
            let bin = ((f64::from(r) * bins as f64) as usize).min(bins - 1);
            counts[bin] += 1;
        }
        let total = retention.len().max(1) as f64;
        counts
            .iter()
            .enumerate()
            .map(|(i, &c)| ((i as f64 + 0.5) / bins as f64, c as f64 / total))
            .collect()
    }
}

impl Chart for RetentionHistograms {
    fn draw<DB: DrawingBackend>(&self, root: &DrawingArea<DB, Shift>) -> Result<(), String> {
        let err = |e: DrawingAreaErrorKind<DB::ErrorType>| e.to_string();
        root.fill(&WHITE).map_err(err)?;
        let top = self
            .series
            .iter()
            .flat_map(|s| s.points.iter().map(|p| p.1))
            .fold(0.05, f64::max);
        let mut chart = ChartBuilder::on(root)
            .caption(
                "Learned retention of every gated unit at the end of training",
                ("sans-serif", 22),
            )
            .margin(16)
            .x_label_area_size(44)
            .y_label_area_size(56)
            .build_cartesian_2d(0.0..1.0, 0.0..top * 1.1)
            .map_err(err)?;
        chart
            .configure_mesh()
            .x_desc("retention P(keep)")
            .y_desc("share of units")
            .draw()
            .map_err(err)?;
        draw_runs(&mut chart, &self.series, usize::MAX)?;
        draw_legend(&mut chart, SeriesLabelPosition::UpperMiddle)
    }
}

/// Training loss (left) and dev WER (right) against steps, one line per run.
pub struct TrainingCurves {
    pub loss: Vec<Series>,
    pub dev_wer: Vec<Series>,
}

impl Chart for TrainingCurves {
    fn draw<DB: DrawingBackend>(&self, root: &DrawingArea<DB, Shift>) -> Result<(), String> {
        let err = |e: DrawingAreaErrorKind<DB::ErrorType>| e.to_string();
        root.fill(&WHITE).map_err(err)?;
        let panels = root.split_evenly((1, 2));
        // The last field marks the loss panel. Loss falls to near 0, so its axis starts there;
        // dev WER of an overfitted model stays high, and from 0 its runs would sit on top of
        // each other.
        let titled = [
            (&self.loss, "Training loss (CTC, windowed mean)", "loss", true),
            (&self.dev_wer, "Dev WER during training", "dev WER (%)", false),
        ];
        for (panel, (series, title, y_desc, loss_panel)) in panels.iter().zip(titled) {
            let xs = series.iter().flat_map(|s| s.points.iter().map(|p| p.0));
            let ys = series.iter().flat_map(|s| s.points.iter().map(|p| p.1));
            let mut chart = ChartBuilder::on(panel)
                .caption(title, ("sans-serif", 18))
                .margin(12)
                .x_label_area_size(40)
                .y_label_area_size(50)
                .build_cartesian_2d(padded_range(xs, 0.02, true), padded_range(ys, 0.05, loss_panel))
                .map_err(err)?;
            chart
                .configure_mesh()
                .x_desc("step")
                .y_desc(y_desc)
                .draw()
                .map_err(err)?;
            // Evaluations are few: mark each, so a run evaluated once still shows.
            draw_runs(&mut chart, series, 40)?;
            // Both panels draw the same runs in the same colours and markers: one legend, where
            // the falling loss leaves room, keeps the dev WER lines visible.
            if loss_panel {
                draw_legend(&mut chart, SeriesLabelPosition::UpperRight)?;
            }
        }
        Ok(())
    }
}

/// The chart type every chart here draws on: `f64` against `f64`.
pub(crate) type Plane<'a, DB> = ChartContext<'a, DB, Cartesian2d<RangedCoordf64, RangedCoordf64>>;

/// One line per run in its method's colour, with a legend entry; its points also get the
/// run's seed marker when it has fewer than `markers_below` of them.
fn draw_runs<DB: DrawingBackend>(
    chart: &mut Plane<'_, DB>,
    series: &[Series],
    markers_below: usize,
) -> Result<(), String> {
    let err = |e: DrawingAreaErrorKind<DB::ErrorType>| e.to_string();
    for s in series {
        let colour = method_colour(&s.method);
        chart
            .draw_series(LineSeries::new(s.points.iter().copied(), colour.stroke_width(2)))
            .map_err(err)?
            .label(s.label.clone())
            .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], colour.stroke_width(2)));
        if s.points.len() < markers_below {
            let marker = s.seed_index;
            chart
                .draw_series(s.points.iter().map(|&p| seed_marker(p, marker, colour)))
                .map_err(err)?;
        }
    }
    Ok(())
}

/// The legend of the lines drawn so far, on a light box.
pub(crate) fn draw_legend<'a, DB: DrawingBackend + 'a>(
    chart: &mut Plane<'a, DB>,
    position: SeriesLabelPosition,
) -> Result<(), String> {
    chart
        .configure_series_labels()
        .position(position)
        .background_style(WHITE.mix(0.85))
        .border_style(BLACK)
        .draw()
        .map_err(|e| e.to_string())
}

/// Circle for a method's first seed, triangle for the second, cross for any further one.
fn seed_marker<DB: DrawingBackend>(
    at: (f64, f64),
    seed_index: usize,
    colour: RGBColor,
) -> DynElement<'static, DB, (f64, f64)> {
    match seed_index {
        0 => Circle::new(at, 5, colour.filled()).into_dyn(),
        1 => TriangleMarker::new(at, 6, colour.filled()).into_dyn(),
        _ => Cross::new(at, 5, colour.stroke_width(2)).into_dyn(),
    }
}

/// `range` with its top raised so that a legend of `entries` lines in the upper corner sits above
/// the data: the dense runs (the rightmost marks) may be anywhere in height, and a legend drawn
/// over them hides them.
pub(crate) fn with_legend_headroom(range: std::ops::Range<f64>, entries: usize) -> std::ops::Range<f64> {
    // Share of the plot's height one legend line takes at SIZE, plus the box's margins.
    let share = (0.045 * entries as f64 + 0.03).min(0.6);
    range.start..range.start + (range.end - range.start) / (1.0 - share)
}

/// The span of `values` widened by `pad` of itself on each side (from 0 when `from_zero` and
/// every value is positive); a usable range even for no values or a single one.
pub(crate) fn padded_range(values: impl Iterator<Item = f64>, pad: f64, from_zero: bool) -> std::ops::Range<f64> {
    let (mut low, mut high) = values
        .filter(|v| v.is_finite())
        .fold((f64::INFINITY, f64::NEG_INFINITY), |(l, h), v| (l.min(v), h.max(v)));
    if !low.is_finite() {
        return 0.0..1.0;
    }
    if from_zero && low > 0.0 {
        low = 0.0;
    }
    if high - low < 1e-9 {
        high = low + 1.0;
    }
    let margin = (high - low) * pad;
    (if from_zero && low == 0.0 { 0.0 } else { low - margin })..high + margin
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bins_cover_zero_to_one_and_shares_sum_to_one() {
        let points = RetentionHistograms::bin(&[0.0, 0.04, 0.5, 0.99, 1.0], 10);
        assert_eq!(points.len(), 10);
        assert!((points[0].0 - 0.05).abs() < 1e-12);
        assert_eq!(points[0].1, 0.4);
        assert_eq!(points[9].1, 0.4, "1.0 falls in the last bin");
        assert!((points.iter().map(|p| p.1).sum::<f64>() - 1.0).abs() < 1e-12);
    }

    #[test]
    fn legend_headroom_keeps_the_data_below_the_legend() {
        let range = with_legend_headroom(0.0..50.0, 6);
        assert_eq!(range.start, 0.0);
        // Six lines take 0.30 of the height: the data's top, 50, is at 70 % of it.
        assert!((50.0 / range.end - 0.70).abs() < 1e-9, "{range:?}");
        assert!((with_legend_headroom(0.0..50.0, 0).end - 50.0 / 0.97).abs() < 1e-9);
    }

    #[test]
    fn ranges_are_padded_and_never_empty() {
        let r = padded_range([10.0, 20.0].into_iter(), 0.1, false);
        assert!((r.start - 9.0).abs() < 1e-12 && (r.end - 21.0).abs() < 1e-12);
        assert_eq!(padded_range([5.0, 7.0].into_iter(), 0.0, true), 0.0..7.0);
        assert_eq!(padded_range(std::iter::empty(), 0.1, true), 0.0..1.0);
        let single = padded_range([3.0].into_iter(), 0.0, false);
        assert!(single.end > single.start);
    }
}
