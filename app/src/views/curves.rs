//! Loss and word error rate over training.

use leptos::html::Canvas;
use leptos::prelude::*;

use crate::charts::{Axes, Mark, Series, draw_chart, palette};
use crate::lab::use_lab;

/// Exponential moving average, so a noisy per-batch loss still shows its trend.
pub(crate) fn smoothed(points: &[(usize, f32)], keep: f64) -> Vec<(f64, f64)> {
    let mut average: Option<f64> = None;
    points
        .iter()
        .map(|&(step, loss)| {
            let a = average.map_or(f64::from(loss), |a| keep * a + (1.0 - keep) * f64::from(loss));
            average = Some(a);
            (step as f64, a)
        })
        .collect()
}

#[component]
pub fn Curves() -> impl IntoView {
    let lab = use_lab();
    let shown = lab.shown();
    let loss_canvas = NodeRef::<Canvas>::new();
    let wer_canvas = NodeRef::<Canvas>::new();
    Effect::new(move |_| {
        shown.with(|view| {
            if let Some(el) = loss_canvas.get() {
                let raw: Vec<(f64, f64)> = view.losses.iter().map(|&(s, l)| (s as f64, f64::from(l))).collect();
                let axes = Axes {
                    x_label: "step".into(),
                    y_label: "CTC loss".into(),
                    ..Axes::default()
                };
                let series = [
                    Series {
                        label: "per batch".into(),
                        colour: palette::PALE,
                        mark: Mark::Line,
                        points: raw,
                    },
                    Series {
                        label: "smoothed".into(),
                        colour: palette::BLUE,
                        mark: Mark::Line,
                        points: smoothed(&view.losses, 0.9),
                    },
                ];
                draw_chart(&el, &axes, &series);
            }
            if let Some(el) = wer_canvas.get() {
                let points: Vec<(f64, f64)> = view.wers.iter().map(|&(s, w)| (s as f64, w)).collect();
                let axes = Axes {
                    x_label: "step".into(),
                    y_label: "dev WER % (the slider's cut)".into(),
                    y_range: Some((0.0, 100.0)),
                    ..Axes::default()
                };
                draw_chart(
                    &el,
                    &axes,
                    &[Series {
                        label: "dev WER".into(),
                        colour: palette::RED,
                        mark: Mark::LineAndDots(3),
                        points,
                    }],
                );
            }
        });
    });
    view! {
        <section class="curves" aria-label="training curves">
            <h2>"Training"</h2>
            <div class="pair">
                <canvas id="loss-curve" node_ref=loss_canvas width="460" height="220"></canvas>
                <canvas id="wer-curve" node_ref=wer_canvas width="460" height="220"></canvas>
            </div>
        </section>
    }
}
