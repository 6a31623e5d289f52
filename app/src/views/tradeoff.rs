//! The pruning slider and what it does: the physically pruned model's size, cost and WER,
//! and the WER-against-parameters plot (unpruned model, current cut, sweep curve).

use leptos::html::Canvas;
use leptos::prelude::*;
use prunelab_engine::prune::CutTarget;

use crate::charts::{Axes, Mark, Series, draw_chart, palette};
use crate::lab::{Command, use_lab};
use prunelab_lab_state::session::PrunePoint;
use prunelab_lab_state::settings::Start;

fn to_xy(p: &PrunePoint) -> (f64, f64) {
    (p.params as f64, p.wer)
}

#[component]
pub fn TradeOffPanel() -> impl IntoView {
    let lab = use_lab();
    let canvas = NodeRef::<Canvas>::new();
    // Memoised: another knob's change must not move the slider under a dragging pointer.
    let threshold = Memo::new(move |_| lab.settings.with(|s| s.threshold));
    Effect::new(move |_| {
        let Some(el) = canvas.get() else { return };
        lab.trade_off.with(|t| {
            let series = [
                Series {
                    label: "sweep".into(),
                    colour: palette::BLUE,
                    mark: Mark::LineAndDots(3),
                    points: t.sweep.iter().map(to_xy).collect(),
                },
                Series {
                    label: "slider at 0".into(),
                    colour: palette::GREY,
                    mark: Mark::Dots(5),
                    points: t.dense.iter().map(to_xy).collect(),
                },
                Series {
                    label: "opened export".into(),
                    colour: palette::GREEN,
                    mark: Mark::Dots(6),
                    points: t.opened.iter().map(to_xy).collect(),
                },
                Series {
                    label: "current cut".into(),
                    colour: palette::RED,
                    mark: Mark::Dots(6),
                    points: t.current.iter().map(to_xy).collect(),
                },
            ];
            let max_params = t.dense.as_ref().map_or(1.0, |d| d.params as f64 * 1.05);
            let axes = Axes {
                x_label: "parameters".into(),
                y_label: "dev WER %".into(),
                x_range: Some((0.0, max_params)),
                y_range: Some((0.0, 100.0)),
            };
            draw_chart(&el, &axes, &series);
        });
    });
    let summary = move || {
        lab.trade_off.with(|t| {
            let current = t.current.as_ref()?;
            let dense = t.dense.as_ref();
            // A share of the model before any cut (for L0 the slider at 0 is already its own cut).
            // The share of the prunable units' parameters is what a target sparsity aims at.
            let prunable = current
                .prunable_sparsity
                .map_or(String::new(), |s| format!("; {:.1}% of the prunable removed", 100.0 * s));
            let share = format!(
                " ({:.1}% of {}{prunable})",
                100.0 * current.params as f64 / current.dense_params as f64,
                current.dense_params
            );
            Some(format!(
                "{} parameters{share} · {:.2} GFLOPs per second of audio · dev WER {:.1}% (greedy {:.1}%; slider at 0: {})",
                current.params,
                current.flops_per_second / 1e9,
                current.wer,
                current.greedy_wer,
                dense.map_or("–".to_string(), |d| format!("{:.1}%", d.wer)),
            ))
        })
    };
    // What the run started from, before any training: the trained model hears, random
    // weights do not. WER of the lexicon search (the CLI's default decoder).
    let start_score = move || {
        let from = lab.settings.with(|s| match s.start {
            Start::Trained => lab
                .own_start
                .get()
                .map_or_else(|| "the trained model".to_string(), |name| format!("your {name}")),
            Start::Scratch => "random weights".to_string(),
        });
        lab.trade_off.with(|t| {
            t.start.as_ref().map(|p| {
                format!(
                    "Before training, {from} scores dev WER {:.1}% (lexicon search; greedy {:.1}%) on {} dev utterances, {} words",
                    p.wer,
                    p.greedy_wer,
                    p.transcripts.len(),
                    p.words
                )
            })
        })
    };
    let latency = move || {
        lab.trade_off.with(|t| {
            let timing = t.current.as_ref()?.timing?;
            Some(format!(
                "Inference on {} dev utterances ({:.1} s of audio), median of {} pairs: dense {:.0} ms, this cut {:.0} ms ({:.2}× the speed)",
                timing.utterances,
                timing.audio_seconds,
                timing.pairs,
                1000.0 * timing.dense_seconds,
                1000.0 * timing.pruned_seconds,
                timing.speedup
            ))
        })
    };
    let kept = move || {
        lab.trade_off.with(|t| {
            t.current.as_ref().map(|p| {
                p.kept
                    .iter()
                    .map(|(kind, kept, total)| format!("{} {kept}/{total}", kind.name()))
                    .collect::<Vec<_>>()
                    .join(" · ")
            })
        })
    };
    view! {
        <section class="tradeoff" aria-label="pruning slider">
            <h2>"Prune"</h2>
            <label class="threshold">
                <span id="knob-label">{move || lab.settings.with(|s| capitalised(s.knob().label))}</span>
                " "
                <input id="threshold" type="range" min="0" max="1" step="0.01"
                    prop:value=move || threshold.get().to_string()
                    on:input=move |ev| {
                        let t: f64 = event_target_value(&ev).parse().unwrap_or(0.5);
                        lab.settings.update(|s| s.threshold = t);
                    }
                    on:change=move |ev| {
                        let t: f64 = event_target_value(&ev).parse().unwrap_or(0.5);
                        lab.send(Command::Prune(t));
                    } />
                <output id="threshold-value">{move || format!("{:.2}", threshold.get())}</output>
            </label>
            <button id="sweep" on:click=move |_| lab.send(Command::Sweep)>"Sweep"</button>
            <label class="target" title="The largest cut within a parameter count (686000), a share of the model kept (50%) or a speed-up in FLOPs (2x)">
                "Cut to "
                <input id="cut-target" type="text" size="8" placeholder="50%, 686000, 2x"
                    on:change=move |ev| match CutTarget::parse(&event_target_value(&ev)) {
                        Ok(target) => lab.send(Command::Target(target)),
                        Err(problem) => lab.notify(problem.to_string()),
                    } />
            </label>
            <button id="download-model"
                title="Download the model cut as shown: prunelab prune's export (manifest.json and model.safetensors) in one .tar, for prunelab eval and python/prunelab_torch"
                on:click=move |_| lab.send(Command::DownloadModel)>"Download model"</button>
            <p id="params" class="numbers"
                data-wer=move || lab.trade_off.with(|t| t.current.as_ref().map(|p| format!("{:.4}", p.wer)))
                data-params=move || lab.trade_off.with(|t| t.current.as_ref().map(|p| p.params.to_string()))
                data-knob=move || lab.trade_off.with(|t| t.current.as_ref().map(|p| format!("{:.2}", p.knob)))
                data-step=move || lab.trade_off.with(|t| t.current.as_ref().map(|p| p.step.to_string()))
                data-dense-params=move || lab.trade_off.with(|t| t.current.as_ref().map(|p| p.dense_params.to_string()))
                data-prunable-sparsity=move || lab.trade_off.with(|t| t.current.as_ref().and_then(|p| p.prunable_sparsity).map(|s| format!("{s:.4}")))>{move || summary().unwrap_or_else(|| "not scored yet".into())}</p>
            <p id="kept" class="numbers">{kept}</p>
            <p id="chosen-by-norm" class="hint">
                {move || lab.trade_off.with(|t| t.current.as_ref().filter(|p| p.chosen_by_norm).map(|_| {
                    "The gates have not learned yet (every unit's retention is the same), so this cut kept \
                     the units with the largest weight norms. Train a few steps for the gates to choose."
                }))}
            </p>
            <p id="latency" class="numbers"
                data-dense-ms=move || lab.trade_off.with(|t| t.current.as_ref().and_then(|p| p.timing).map(|x| format!("{:.1}", 1000.0 * x.dense_seconds)))
                data-pruned-ms=move || lab.trade_off.with(|t| t.current.as_ref().and_then(|p| p.timing).map(|x| format!("{:.1}", 1000.0 * x.pruned_seconds)))>
                {latency}
            </p>
            <p id="start-score" class="numbers"
                data-wer=move || lab.trade_off.with(|t| t.start.as_ref().map(|p| format!("{:.4}", p.wer)))>{start_score}</p>
            <p id="opened-export" class="numbers">
                {move || lab.trade_off.with(|t| t.opened.as_ref().map(|p| format!(
                    "opened export: {} parameters · {:.2} GFLOPs/s · dev WER {:.1}%", p.params, p.flops_per_second / 1e9, p.wer
                )))}
            </p>
            <p id="sweep-points" class="numbers" data-points=move || lab.trade_off.with(|t| t.sweep.len().to_string())
                data-distinct=move || lab.trade_off.with(|t| {
                    let mut sizes: Vec<usize> = t.sweep.iter().map(|p| p.params).collect();
                    sizes.sort_unstable();
                    sizes.dedup();
                    sizes.len().to_string()
                })>
                {move || lab.trade_off.with(|t| (!t.sweep.is_empty()).then(|| format!("sweep: {} points", t.sweep.len())))}
            </p>
            <canvas id="tradeoff-plot" node_ref=canvas width="460" height="260"></canvas>
        </section>
    }
}

/// "Retention threshold" from "retention threshold".
fn capitalised(label: &str) -> String {
    let mut chars = label.chars();
    chars
        .next()
        .map_or_else(String::new, |first| first.to_uppercase().chain(chars).collect())
}
