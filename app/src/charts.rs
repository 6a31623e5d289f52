//! Drawing on canvases: heatmaps filled per pixel and scaled by CSS (cheap at any size), and
//! line/scatter charts drawn with plotters on the canvas. Widgets call these; nothing here knows
//! about training.

use plotters::coord::Shift;
use plotters::prelude::*;
use plotters_canvas::CanvasBackend;
use prunelab_lab_state::legend::{Corner, Drawn, legend_corner};
use wasm_bindgen::{Clamped, JsCast};
use web_sys::{CanvasRenderingContext2d, HtmlCanvasElement, ImageData};

/// Colour of a value in [0, 1] on a perceptually ordered ramp (dark purple → teal → yellow,
/// anchors taken from the viridis map), so "low retention" reads as dark at a glance.
pub fn ramp(value: f32) -> [u8; 3] {
    const ANCHORS: [[f32; 3]; 5] = [
        [68.0, 1.0, 84.0],
        [59.0, 82.0, 139.0],
        [33.0, 145.0, 140.0],
        [94.0, 201.0, 98.0],
        [253.0, 231.0, 37.0],
    ];
    let x = if value.is_finite() { value.clamp(0.0, 1.0) } else { 0.0 } * (ANCHORS.len() - 1) as f32;
    let i = (x.floor() as usize).min(ANCHORS.len() - 2);
    let t = x - i as f32;
    std::array::from_fn(|c| (ANCHORS[i][c] + (ANCHORS[i + 1][c] - ANCHORS[i][c]) * t).round() as u8)
}

fn context(canvas: &HtmlCanvasElement) -> Option<CanvasRenderingContext2d> {
    canvas.get_context("2d").ok().flatten()?.dyn_into().ok()
}

/// Fills `canvas` with one pixel per cell (`rows × cols`); `value(row, col)` in [0, 1], `None`
/// for an empty cell (drawn light grey). Cells where `dimmed(row, col)` are drawn at a third
/// of their brightness: the units the current cut removes.
pub fn draw_heatmap(
    canvas: &HtmlCanvasElement,
    rows: usize,
    cols: usize,
    dimmed: impl Fn(usize, usize) -> bool,
    value: impl Fn(usize, usize) -> Option<f32>,
) {
    if rows == 0 || cols == 0 {
        return;
    }
    canvas.set_width(cols as u32);
    canvas.set_height(rows as u32);
    let Some(ctx) = context(canvas) else { return };
    let mut pixels = vec![0u8; rows * cols * 4];
    for r in 0..rows {
        for c in 0..cols {
            let [red, green, blue] = match value(r, c) {
                Some(v) => {
                    let [red, green, blue] = ramp(v);
                    if dimmed(r, c) {
                        // Removed by the current cut: a third of the brightness.
                        [red / 3, green / 3, blue / 3]
                    } else {
                        [red, green, blue]
                    }
                }
                None => [230, 230, 230],
            };
            let at = (r * cols + c) * 4;
            pixels[at..at + 4].copy_from_slice(&[red, green, blue, 255]);
        }
    }
    if let Ok(image) = ImageData::new_with_u8_clamped_array_and_sh(Clamped(&pixels), cols as u32, rows as u32) {
        let _ = ctx.put_image_data(&image, 0.0, 0.0);
    }
}

/// A canvas holding one short line of grey text instead of a picture, at the canvas's size on
/// the page (so CSS does not stretch the text).
pub fn draw_note(canvas: &HtmlCanvasElement, text: &str) {
    let (width, height) = (canvas.client_width().max(1), canvas.client_height().max(1));
    canvas.set_width(width as u32);
    canvas.set_height(height as u32);
    let Some(ctx) = context(canvas) else { return };
    ctx.set_fill_style_str("#f3f5f7");
    ctx.fill_rect(0.0, 0.0, f64::from(width), f64::from(height));
    ctx.set_fill_style_str("#52606d");
    ctx.set_font("12px system-ui, sans-serif");
    let _ = ctx.fill_text(text, 8.0, f64::from(height) / 2.0 + 4.0);
}

/// The charts' colours.
pub mod palette {
    use plotters::style::RGBColor;
    pub const BLUE: RGBColor = RGBColor(0x1f, 0x6f, 0xeb);
    pub const RED: RGBColor = RGBColor(0xd1, 0x24, 0x2f);
    pub const GREEN: RGBColor = RGBColor(0x1a, 0x7f, 0x37);
    pub const ORANGE: RGBColor = RGBColor(0xbc, 0x4c, 0x00);
    pub const GREY: RGBColor = RGBColor(0x57, 0x60, 0x6a);
    pub const PURPLE: RGBColor = RGBColor(0x82, 0x50, 0xdf);
    pub const PALE: RGBColor = RGBColor(0xc3, 0xcc, 0xd6);
}

/// How a series is drawn.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Mark {
    Line,
    /// Dots of this radius in canvas pixels.
    Dots(u32),
    LineAndDots(u32),
}

/// One data series of a chart.
#[derive(Debug, Clone, PartialEq)]
pub struct Series {
    pub label: String,
    pub colour: RGBColor,
    pub mark: Mark,
    pub points: Vec<(f64, f64)>,
}

/// A chart's axes: labels and, optionally, fixed ranges (otherwise fitted to the data).
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Axes {
    pub x_label: String,
    pub y_label: String,
    pub x_range: Option<(f64, f64)>,
    pub y_range: Option<(f64, f64)>,
}

/// Draws `series` on `canvas` (its width/height attributes set the resolution) with axes, five
/// labelled ticks per axis and a legend of the labelled series that have points. A failure to draw is
/// logged, not shown: the numbers beside every chart say the same.
pub fn draw_chart(canvas: &HtmlCanvasElement, axes: &Axes, series: &[Series]) {
    let Some(backend) = CanvasBackend::with_canvas_object(canvas.clone()) else {
        return;
    };
    let area = backend.into_drawing_area();
    if let Err(e) = draw_on(&area, axes, series) {
        web_sys::console::warn_1(&format!("cannot draw the chart: {e}").into());
    }
}

type DrawResult = Result<(), DrawingAreaErrorKind<<CanvasBackend as DrawingBackend>::ErrorType>>;

fn draw_on(area: &DrawingArea<CanvasBackend, Shift>, axes: &Axes, series: &[Series]) -> DrawResult {
    area.fill(&WHITE)?;
    let finite = |s: &Series| -> Vec<(f64, f64)> {
        s.points
            .iter()
            .copied()
            .filter(|(x, y)| x.is_finite() && y.is_finite())
            .collect()
    };
    let visible: Vec<Vec<(f64, f64)>> = series.iter().map(finite).collect();
    let all = || visible.iter().flatten().copied();
    let x_range = axes.x_range.unwrap_or_else(|| fitted(all().map(|p| p.0)));
    let y_range = axes.y_range.unwrap_or_else(|| fitted(all().map(|p| p.1)));
    let text = ("system-ui, sans-serif", 11)
        .into_font()
        .color(&RGBColor(0x52, 0x60, 0x6d));
    let mut chart = ChartBuilder::on(area)
        .margin(8)
        .x_label_area_size(34)
        .y_label_area_size(46)
        .build_cartesian_2d(x_range.0..x_range.1, y_range.0..y_range.1)?;
    chart
        .configure_mesh()
        .x_labels(5)
        .y_labels(5)
        .light_line_style(RGBColor(0xee, 0xf1, 0xf4))
        .bold_line_style(RGBColor(0xd8, 0xde, 0xe4))
        .axis_style(RGBColor(0x9a, 0xa5, 0xb1))
        .x_label_formatter(&|v| tick(*v))
        .y_label_formatter(&|v| tick(*v))
        .x_desc(axes.x_label.as_str())
        .y_desc(axes.y_label.as_str())
        .label_style(text.clone())
        .axis_desc_style(text.clone())
        .draw()?;
    for (s, points) in series.iter().zip(&visible) {
        let colour = s.colour;
        let legend = move |(x, y): (i32, i32)| Rectangle::new([(x, y - 4), (x + 10, y + 4)], colour.filled());
        // One legend entry per labelled series (an unlabelled one is explained by its caption).
        let mut labelled = s.label.is_empty();
        if let Mark::Line | Mark::LineAndDots(_) = s.mark {
            let line = chart.draw_series(LineSeries::new(points.iter().copied(), colour.stroke_width(2)))?;
            if !labelled {
                line.label(s.label.as_str()).legend(legend);
                labelled = true;
            }
        }
        if let Mark::Dots(radius) | Mark::LineAndDots(radius) = s.mark {
            let dots = chart.draw_series(points.iter().map(|&p| Circle::new(p, radius, colour.filled())))?;
            if !labelled {
                dots.label(s.label.as_str()).legend(legend);
            }
        }
    }
    let entries: Vec<&str> = series
        .iter()
        .zip(&visible)
        .filter(|(s, points)| !s.label.is_empty() && !points.is_empty())
        .map(|(s, _)| s.label.as_str())
        .collect();
    if !entries.is_empty() {
        chart
            .configure_series_labels()
            .position(legend_position(area, series, &visible, &entries, x_range, y_range))
            .label_font(text.color(&RGBColor(0x1d, 0x27, 0x33)))
            .background_style(WHITE.mix(0.85))
            .border_style(RGBColor(0xd8, 0xde, 0xe4))
            .draw()?;
    }
    area.present()
}

/// The corner whose legend box covers the fewest data points (`prunelab_lab_state::legend`),
/// the box's size estimated from the entries: ~17 px a row, ~6.5 px a character of 11 px text,
/// over the plotting area (the canvas less the axis label areas and margins).
fn legend_position(
    area: &DrawingArea<CanvasBackend, Shift>,
    series: &[Series],
    visible: &[Vec<(f64, f64)>],
    entries: &[&str],
    x_range: (f64, f64),
    y_range: (f64, f64),
) -> SeriesLabelPosition {
    let (width, height) = area.dim_in_pixel();
    let plot_width = f64::from(width).max(100.0) - 46.0 - 16.0;
    let plot_height = f64::from(height).max(100.0) - 34.0 - 16.0;
    let longest = entries.iter().map(|e| e.chars().count()).max().unwrap_or(0) as f64;
    let box_width = ((30.0 + 6.5 * longest) / plot_width).min(1.0);
    let box_height = ((10.0 + 17.0 * entries.len() as f64) / plot_height).min(1.0);
    let drawn: Vec<Drawn> = series
        .iter()
        .zip(visible)
        .map(|(s, points)| Drawn {
            points,
            joined: matches!(s.mark, Mark::Line | Mark::LineAndDots(_)),
        })
        .collect();
    match legend_corner(&drawn, x_range, y_range, box_width, box_height) {
        Corner::UpperRight => SeriesLabelPosition::UpperRight,
        Corner::UpperLeft => SeriesLabelPosition::UpperLeft,
        Corner::LowerRight => SeriesLabelPosition::LowerRight,
        Corner::LowerLeft => SeriesLabelPosition::LowerLeft,
    }
}

/// A range around `values` with 5 % padding; (0, 1) for no values, ±0.5 around a single one.
fn fitted(values: impl Iterator<Item = f64>) -> (f64, f64) {
    let (lo, hi) = values.fold((f64::INFINITY, f64::NEG_INFINITY), |(lo, hi), v| (lo.min(v), hi.max(v)));
    if !lo.is_finite() {
        (0.0, 1.0)
    } else if hi - lo < 1e-9 {
        (lo - 0.5, hi + 0.5)
    } else {
        let pad = 0.05 * (hi - lo);
        (lo - pad, hi + pad)
    }
}

/// A short tick label: 3 significant digits, k/M suffixes for large numbers.
fn tick(v: f64) -> String {
    let a = v.abs();
    if a >= 1e6 {
        format!("{:.2}M", v / 1e6)
    } else if a >= 1e4 {
        format!("{:.0}k", v / 1e3)
    } else if a >= 100.0 {
        format!("{v:.0}")
    } else if a >= 1.0 {
        format!("{v:.1}")
    } else {
        format!("{v:.2}")
    }
}
