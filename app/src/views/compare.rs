//! Methods side by side: their trade-off curves on one plot, a table of each cut to the same
//! budget (parameters, FLOPs, measured latency, WER), their losses, and each method's heatmaps
//! beside the others'.

use leptos::html::Canvas;
use leptos::prelude::*;
use plotters::style::RGBColor;
use prunelab_engine::gates::{Method, SiteKind};

use crate::charts::{Axes, Mark, Series, draw_chart, draw_note, palette};
use crate::lab::{Command, CompareView, Lab, use_lab};
use crate::views::curves::smoothed;
use crate::views::heatmaps::draw_units;
use prunelab_lab_state::intervals::change_from_start;
use prunelab_lab_state::session::PrunePoint;
use prunelab_lab_state::settings::COMPARED_METHODS;

/// Each method's colour, the same in every chart of the comparison.
fn colour(method: Method) -> RGBColor {
    match method {
        Method::AdaptiveDropout => palette::BLUE,
        Method::L0 => palette::ORANGE,
        Method::Magnitude => palette::GREEN,
        Method::None => palette::PURPLE,
    }
}

fn to_xy(p: &PrunePoint) -> (f64, f64) {
    (p.params as f64, p.wer)
}

/// Starts a comparison of the three pruning methods with the current settings, or returns to
/// one run.
fn switch(lab: Lab, compare: bool) {
    let mut settings = lab.settings.get_untracked();
    settings.compare = if compare { COMPARED_METHODS.to_vec() } else { Vec::new() };
    lab.settings.set(settings.clone());
    lab.send(Command::Reset(settings));
}

/// The button that opens the comparison (in the controls).
#[component]
pub fn CompareButton() -> impl IntoView {
    let lab = use_lab();
    view! {
        <button id="compare" title="Train adaptive dropout, L0 and magnitude from the same start on the same batches, one step each in turn"
            on:click=move |_| switch(lab, true)>"Compare methods"</button>
    }
}

#[component]
pub fn ComparePanel() -> impl IntoView {
    let lab = use_lab();
    let compare = lab.compare;
    let plot = NodeRef::<Canvas>::new();
    let losses = NodeRef::<Canvas>::new();
    Effect::new(move |_| {
        compare.with(|c| {
            let Some(c) = c else { return };
            if let Some(el) = plot.get() {
                draw_trade_offs(&el, c);
            }
            if let Some(el) = losses.get() {
                let series: Vec<Series> = c
                    .methods
                    .iter()
                    .map(|m| Series {
                        label: m.method.name().into(),
                        colour: colour(m.method),
                        mark: Mark::Line,
                        points: smoothed(&m.trace.losses, 0.9),
                    })
                    .collect();
                let axes = Axes {
                    x_label: "step".into(),
                    y_label: "CTC loss (smoothed)".into(),
                    ..Axes::default()
                };
                draw_chart(&el, &axes, &series);
            }
        })
    });
    let describe = move || {
        let settings = lab.settings.get();
        compare.with(|c| {
            c.as_ref().map(|c| {
                let names: Vec<&str> = c.methods.iter().map(|m| m.method.name()).collect();
                format!(
                    "{} from {}, seed {}: the same batches in the same order, {} steps each, one step of each in turn; at the end each is cut to {}.",
                    names.join(", "),
                    settings.start.describe(),
                    settings.seed,
                    c.steps,
                    c.budget
                )
            })
        })
    };
    let progress = move || {
        compare.with(|c| {
            c.as_ref().map(|c| {
                c.methods
                    .iter()
                    .map(|m| {
                        let loss = m
                            .trace
                            .losses
                            .last()
                            .map_or(String::new(), |(_, l)| format!(", loss {l:.3}"));
                        format!("{} step {}/{}{loss}", m.method.name(), m.step, c.steps)
                    })
                    .collect::<Vec<_>>()
                    .join(" · ")
            })
        })
    };
    let complete = move || compare.with(|c| c.as_ref().is_some_and(CompareView::is_complete));
    // Distinct model sizes on each method's curve, for the tests: "adaptive-dropout=9 l0=8 …".
    let curves = move || {
        compare.with(|c| {
            c.as_ref().map(|c| {
                c.methods
                    .iter()
                    .filter_map(|m| {
                        let result = m.result.as_ref()?.as_ref().ok()?;
                        let mut sizes: Vec<usize> = result.sweep.iter().map(|p| p.params).collect();
                        sizes.sort_unstable();
                        sizes.dedup();
                        Some(format!("{}={}", m.method.name(), sizes.len()))
                    })
                    .collect::<Vec<_>>()
                    .join(" ")
            })
        })
    };
    // A memo, so the per-method heatmaps are built once per comparison, not on every step.
    let methods = Memo::new(move |_| compare.with(|c| c.as_ref().map_or(0, |c| c.methods.len())));
    let any_one_shot = move || {
        compare.with(|c| {
            c.as_ref()
                .is_some_and(|c| c.methods.iter().any(|m| matches!(&m.result, Some(Ok(r)) if r.one_shot)))
        })
    };
    view! {
        <section class="compare" aria-label="methods side by side">
            <h2>"Methods side by side"</h2>
            <button id="end-compare" on:click=move |_| switch(lab, false)>"Back to one run"</button>
            <p class="hint" id="compare-description">{describe}</p>
            <p class="numbers" id="compare-progress" data-complete=move || complete().to_string()>{progress}</p>
            <CompareTable />
            <p class="legend">
                "Left: dev WER against parameters, each method's knob swept (a large dot: its cut to the budget; grey: the start). Right: training loss. Below: each method's units, rows top to bottom FFN 1, query, value, conv input, FFN 2, coloured by learned retention (ungated methods: weight norm); dimmed: removed by its budget cut."
                <Show when=any_one_shot>
                    " Magnitude cut its own model while training, so its curve is the start cut by weight norms with no training (one-shot), and the large dot is what fine-tuning made of its cut; its heatmaps show the weight norms it cut by."
                </Show>
            </p>
            <div class="pair">
                <canvas id="compare-plot" node_ref=plot width="460" height="280" data-curves=curves></canvas>
                <canvas id="compare-loss" node_ref=losses width="460" height="280"></canvas>
            </div>
            <div class="side-by-side">
                {move || (0..methods.get()).map(|index| view! { <MethodHeatmaps index=index /> }).collect_view()}
            </div>
        </section>
    }
}

/// Every method's sweep as a curve, its budget cut as a large dot, and the start.
fn draw_trade_offs(canvas: &web_sys::HtmlCanvasElement, c: &CompareView) {
    let mut series = Vec::new();
    for m in &c.methods {
        let Some(Ok(result)) = &m.result else { continue };
        let swept = !result.sweep.is_empty();
        if swept {
            let label = if result.one_shot {
                format!("{}, one-shot from the start", m.method.name())
            } else {
                m.method.name().into()
            };
            series.push(Series {
                label,
                colour: colour(m.method),
                mark: Mark::LineAndDots(3),
                points: result.sweep.iter().map(to_xy).collect(),
            });
        }
        // The budget cut: its method's colour names it (the legend has it once, by the curve).
        series.push(Series {
            label: if swept { String::new() } else { m.method.name().into() },
            colour: colour(m.method),
            mark: Mark::Dots(7),
            points: vec![to_xy(&result.budget)],
        });
    }
    if let Some(start) = &c.start {
        series.push(Series {
            label: "start".into(),
            colour: palette::GREY,
            mark: Mark::Dots(5),
            points: vec![to_xy(start)],
        });
    }
    let worst = series
        .iter()
        .flat_map(|s| s.points.iter().map(|p| p.1))
        .filter(|w| w.is_finite())
        .fold(10.0_f64, f64::max);
    let dense = c.start.as_ref().map_or(1.0, |s| s.dense_params as f64);
    let axes = Axes {
        x_label: "parameters".into(),
        y_label: "dev WER %".into(),
        x_range: Some((0.0, dense * 1.05)),
        y_range: Some((0.0, (worst * 1.15).min(105.0))),
    };
    draw_chart(canvas, &axes, &series);
}

/// One row per method cut to the budget, and the start: what each costs and scores.
#[component]
fn CompareTable() -> impl IntoView {
    let lab = use_lab();
    let rows = move || {
        lab.compare.with(|c| {
            let c = c.as_ref()?;
            let start_point = c.start.as_ref()?;
            let dense = start_point.dense_params as f64;
            let row = |label: String, method: &'static str, p: &PrunePoint| {
                let latency = p.timing.map_or("–".to_string(), |t| {
                    format!("{:.0} ms ({:.2}×)", 1000.0 * t.pruned_seconds, t.speedup)
                });
                // The start's own row has no change; a change that cannot be computed says why.
                let change = (method != "start").then(|| change_from_start(&start_point.transcripts, &p.transcripts));
                let change_text = match &change {
                    None => "–".to_string(),
                    Some(Ok(d)) => format!("{:+.1} ({:+.1} to {:+.1})", d.difference, d.interval.low, d.interval.high),
                    Some(Err(problem)) => problem.clone(),
                };
                let interval = change.and_then(Result::ok);
                view! {
                    <tr data-method=method data-params=p.params.to_string() data-wer=format!("{:.2}", p.wer)
                        data-speedup=p.timing.map(|t| format!("{:.3}", t.speedup))
                        data-change=interval.map(|d| format!("{:.4}", d.difference))
                        data-change-low=interval.map(|d| format!("{:.4}", d.interval.low))
                        data-change-high=interval.map(|d| format!("{:.4}", d.interval.high))>
                        <th>{label}</th>
                        <td>{p.params}</td>
                        <td>{format!("{:.1}%", 100.0 * p.params as f64 / dense)}</td>
                        <td>{format!("{:.3}", p.flops_per_second / 1e9)}</td>
                        <td>{latency}</td>
                        <td>{format!("{:.1}% ({:.1}%)", p.wer, p.greedy_wer)}</td>
                        <td>{change_text}</td>
                    </tr>
                }
            };
            let start = c.start.as_ref().map(|p| row("start (before training)".into(), "start", p));
            let methods = c
                .methods
                .iter()
                .filter_map(|m| match m.result.as_ref()? {
                    Ok(r) => Some(row(m.method.name().into(), m.method.name(), &r.budget).into_any()),
                    Err(problem) => Some(
                        view! {
                            <tr data-method=m.method.name() data-failed="true">
                                <th>{m.method.name()}</th>
                                <td colspan="6" class="error">{problem.clone()}</td>
                            </tr>
                        }
                        .into_any(),
                    ),
                })
                .collect_view();
            let words = c.start.as_ref().map_or(0, |p| p.words);
            Some(view! {
                <table id="compare-table" class="numbers">
                    <caption>{format!("Each method cut to {}. Dev WER on {words} words (lexicon search; greedy in brackets); its change against the start in points, with the paired-bootstrap 95 % interval over the dev utterances (1,000 resamples, as prunelab compare); latency: median of timed passes over the first dev utterances, speed-up against the start.", c.budget)}</caption>
                    <tr><th>"method"</th><th>"parameters"</th><th>"share"</th><th>"GFLOPs per s of audio"</th><th>"latency"</th><th>"dev WER"</th><th>"Δ WER vs start (95 %)"</th></tr>
                    {start}
                    {methods}
                </table>
            })
        })
    };
    view! { <div class="compare-table">{rows}</div> }
}

/// One method's heatmaps (latest snapshot), units its budget cut removes dimmed.
#[component]
fn MethodHeatmaps(index: usize) -> impl IntoView {
    let lab = use_lab();
    let canvases: Vec<(SiteKind, NodeRef<Canvas>)> = SiteKind::ALL.into_iter().map(|k| (k, NodeRef::new())).collect();
    let drawn = canvases.clone();
    Effect::new(move |_| {
        lab.compare.with(|c| {
            let Some(m) = c.as_ref().and_then(|c| c.methods.get(index)) else {
                return;
            };
            let Some(frame) = m.trace.snapshots.len().checked_sub(1) else {
                return;
            };
            let kept = match &m.result {
                Some(Ok(r)) => Some(&r.budget.kept_map),
                _ => None,
            };
            for (kind, canvas) in &drawn {
                let Some(el) = canvas.get() else { continue };
                if m.trace.units(*kind) == 0 {
                    draw_note(&el, "not gated by this method");
                    continue;
                }
                draw_units(&el, &m.trace, frame, *kind, kept);
            }
        })
    });
    let title = move || {
        lab.compare.with(|c| {
            c.as_ref().and_then(|c| c.methods.get(index)).map(|m| {
                let kept = match &m.result {
                    Some(Ok(r)) => {
                        let (kept, total) = r
                            .budget
                            .kept
                            .iter()
                            .fold((0, 0), |(k, t), (_, kept, total)| (k + kept, t + total));
                        // A model its method already cut counts no units against a dense layout.
                        if total == 0 {
                            String::new()
                        } else {
                            format!(" · {kept}/{total} units kept")
                        }
                    }
                    _ => String::new(),
                };
                // The heatmaps show the latest snapshot, which for a method that cut its own
                // model is the last one before the cut.
                let snapshot = m
                    .trace
                    .steps
                    .last()
                    .map_or(String::new(), |s| format!(" · units at step {s}"));
                format!("{} · step {}{snapshot}{kept}", m.method.name(), m.step)
            })
        })
    };
    let method = move || {
        lab.compare
            .with(|c| c.as_ref().and_then(|c| c.methods.get(index)).map(|m| m.method.name()))
    };
    view! {
        <figure class="method-heatmaps" data-method=method>
            <figcaption>{title}</figcaption>
            {canvases.into_iter().map(|(kind, canvas)| view! {
                <canvas node_ref=canvas class="heatmap small" title=kind.name() data-site=kind.name()></canvas>
            }).collect_view()}
        </figure>
    }
}
