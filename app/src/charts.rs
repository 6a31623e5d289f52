//! Drawing on canvases: heatmaps filled per pixel and scaled by CSS (cheap at any size), and
//! small line/scatter charts with axes. Widgets call these; nothing here knows about training.

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

/// How a series is drawn.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Mark {
    Line,
    /// Dots of this radius in CSS pixels.
    Dots(f64),
    LineAndDots(f64),
}

/// One data series of a chart.
#[derive(Debug, Clone, PartialEq)]
pub struct Series {
    pub label: String,
    pub colour: &'static str,
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

/// Plot area margins in canvas pixels: left, right, top, bottom.
const MARGIN: (f64, f64, f64, f64) = (52.0, 12.0, 22.0, 36.0);

/// Draws `series` on `canvas` (its width/height attributes set the resolution) with axes,
/// five ticks per axis and a legend.
pub fn draw_chart(canvas: &HtmlCanvasElement, axes: &Axes, series: &[Series]) {
    let Some(ctx) = context(canvas) else { return };
    let (w, h) = (f64::from(canvas.width()), f64::from(canvas.height()));
    ctx.set_fill_style_str("#ffffff");
    ctx.fill_rect(0.0, 0.0, w, h);
    let all = || series.iter().flat_map(|s| s.points.iter().copied());
    let fit = |pick: fn((f64, f64)) -> f64| -> (f64, f64) {
        let (lo, hi) = all()
            .map(pick)
            .filter(|v| v.is_finite())
            .fold((f64::INFINITY, f64::NEG_INFINITY), |(lo, hi), v| (lo.min(v), hi.max(v)));
        if !lo.is_finite() {
            (0.0, 1.0)
        } else if hi - lo < 1e-9 {
            (lo - 0.5, hi + 0.5)
        } else {
            let pad = 0.05 * (hi - lo);
            (lo - pad, hi + pad)
        }
    };
    let (x0, x1) = axes.x_range.unwrap_or_else(|| fit(|p| p.0));
    let (y0, y1) = axes.y_range.unwrap_or_else(|| fit(|p| p.1));
    let (left, right, top, bottom) = MARGIN;
    let px = |x: f64| left + (x - x0) / (x1 - x0) * (w - left - right);
    let py = |y: f64| h - bottom - (y - y0) / (y1 - y0) * (h - top - bottom);

    ctx.set_stroke_style_str("#9aa5b1");
    ctx.set_fill_style_str("#52606d");
    ctx.set_line_width(1.0);
    ctx.set_font("11px system-ui, sans-serif");
    ctx.stroke_rect(left, top, w - left - right, h - top - bottom);
    for i in 0..=4 {
        let f = f64::from(i) / 4.0;
        let (x, y) = (x0 + f * (x1 - x0), y0 + f * (y1 - y0));
        let _ = ctx.fill_text(&tick(x), px(x) - 12.0, h - bottom + 14.0);
        let _ = ctx.fill_text(&tick(y), 4.0, py(y) + 4.0);
    }
    let _ = ctx.fill_text(&axes.x_label, left + (w - left - right) / 2.0 - 30.0, h - 6.0);
    let _ = ctx.fill_text(&axes.y_label, left, top - 8.0);

    for (i, s) in series.iter().enumerate() {
        ctx.set_stroke_style_str(s.colour);
        ctx.set_fill_style_str(s.colour);
        ctx.set_line_width(1.6);
        let visible: Vec<(f64, f64)> = s
            .points
            .iter()
            .copied()
            .filter(|(x, y)| x.is_finite() && y.is_finite())
            .collect();
        if matches!(s.mark, Mark::Line | Mark::LineAndDots(_)) && visible.len() > 1 {
            ctx.begin_path();
            for (j, &(x, y)) in visible.iter().enumerate() {
                if j == 0 {
                    ctx.move_to(px(x), py(y));
                } else {
                    ctx.line_to(px(x), py(y));
                }
            }
            ctx.stroke();
        }
        if let Mark::Dots(r) | Mark::LineAndDots(r) = s.mark {
            for &(x, y) in &visible {
                ctx.begin_path();
                let _ = ctx.arc(px(x), py(y), r, 0.0, std::f64::consts::TAU);
                ctx.fill();
            }
        }
        // Legend, top right, one line per series.
        let ly = top + 14.0 + 14.0 * i as f64;
        ctx.fill_rect(w - right - 120.0, ly - 8.0, 10.0, 10.0);
        ctx.set_fill_style_str("#1d2733");
        let _ = ctx.fill_text(&s.label, w - right - 106.0, ly + 1.0);
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
