//! Retention heatmaps: one panel per site kind, a row per block, a column per unit, colour =
//! retention. A scrubber replays the history; hovering names the unit under the pointer.

use leptos::html::Canvas;
use leptos::prelude::*;
use prunelab_engine::gates::SiteKind;

use prunelab_engine::prune::UnitScores;
use web_sys::HtmlCanvasElement;

use crate::charts::{draw_heatmap, ramp};
use crate::lab::{TraceView, use_lab};

/// Panels in the order of a Conformer block.
const PANELS: [(SiteKind, &str); 5] = [
    (SiteKind::Ffn1Hidden, "FFN 1 hidden units"),
    (SiteKind::AttnQuery, "Attention query dimensions"),
    (SiteKind::AttnValue, "Attention value dimensions"),
    (SiteKind::ConvInput, "Convolution input channels"),
    (SiteKind::Ffn2Hidden, "FFN 2 hidden units"),
];

/// Draws `kind`'s units of `view` at snapshot `frame` on `canvas`, dimming the units whose
/// scale in `kept` (per unit of the dense model, see [`UnitScores`]) is 0: those a cut removes.
pub(super) fn draw_units(
    canvas: &HtmlCanvasElement,
    view: &TraceView,
    frame: usize,
    kind: SiteKind,
    kept: Option<&UnitScores>,
) {
    let removed = |b: usize, u: usize| -> bool {
        kept.and_then(|k| k.get(b)?[kind.index()].as_ref()?.get(u).copied())
            .is_some_and(|scale| scale == 0.0)
    };
    draw_heatmap(canvas, view.blocks(), view.units(kind), removed, |b, u| {
        view.scores(frame, b, kind).and_then(|s| s.get(u).copied())
    });
}

/// The snapshot index a view shows: the scrubber's, or the latest.
fn frame_of(view: &TraceView, scrubbed: Option<usize>) -> Option<usize> {
    let last = view.snapshots.len().checked_sub(1)?;
    Some(scrubbed.map_or(last, |f| f.min(last)))
}

#[component]
pub fn Heatmaps() -> impl IntoView {
    let lab = use_lab();
    let shown = lab.shown();
    let frame = Signal::derive(move || shown.with(|v| frame_of(v, lab.frame.get())));
    let step_label = move || {
        shown.with(|v| match frame_of(v, lab.frame.get()) {
            Some(f) => format!("step {} · snapshot {} of {}", v.steps[f], f + 1, v.snapshots.len()),
            None => "no snapshot yet".into(),
        })
    };
    view! {
        <section class="heatmaps" aria-label="retention heatmaps">
            <h2>"Retention of every unit"</h2>
            <p class="legend">
                <span class="ramp"></span>
                " 0 → 1 retention · dimmed: removed by the current cut · rows are blocks"
            </p>
            <div class="scrubber">
                <input id="scrubber" type="range" min="0" step="1"
                    prop:max=move || shown.with(|v| v.snapshots.len().saturating_sub(1).to_string())
                    prop:value=move || frame.get().unwrap_or(0).to_string()
                    on:input=move |ev| {
                        let picked: usize = event_target_value(&ev).parse().unwrap_or(0);
                        let last = shown.with_untracked(|v| v.snapshots.len().saturating_sub(1));
                        // The right end follows the run; anywhere else stays put.
                        lab.frame.set((picked < last).then_some(picked));
                    } />
                <span id="frame-label">{step_label}</span>
            </div>
            {PANELS.into_iter().map(|(kind, title)| view! { <Panel kind=kind title=title frame=frame /> }).collect_view()}
        </section>
    }
}

/// One site kind's heatmap with its kept/total count and hover read-out.
#[component]
fn Panel(kind: SiteKind, title: &'static str, frame: Signal<Option<usize>>) -> impl IntoView {
    let lab = use_lab();
    let shown = lab.shown();
    let canvas = NodeRef::<Canvas>::new();
    let hover = RwSignal::new(None::<(usize, usize, f32)>);
    // What the current cut keeps of this site, per block (the live run only: an opened trace
    // has no cut of its own).
    let kept_map = Memo::new(move |_| {
        if lab.opened.with(Option::is_some) {
            return None;
        }
        lab.trade_off.with(|t| {
            t.current.as_ref().map(|p| {
                p.kept_map
                    .iter()
                    .map(|sites| sites[kind.index()].clone())
                    .collect::<Vec<_>>()
            })
        })
    });
    Effect::new(move |_| {
        let f = frame.get();
        let live = lab.opened.with(Option::is_none);
        lab.trade_off.with(|t| {
            let kept = t.current.as_ref().filter(|_| live).map(|p| &p.kept_map);
            shown.with(|view| {
                let (Some(el), Some(f)) = (canvas.get(), f) else { return };
                draw_units(&el, view, f, kind, kept);
            });
        });
    });
    let kept = move || {
        kept_map.with(|kept| {
            let per_block = kept.as_ref()?;
            let all: Vec<f32> = per_block.iter().flatten().flatten().copied().collect();
            (!all.is_empty()).then(|| format!("{}/{} kept", all.iter().filter(|&&x| x != 0.0).count(), all.len()))
        })
    };
    let on_move = move |ev: web_sys::MouseEvent| {
        let Some(el) = canvas.get_untracked() else { return };
        let (w, h) = (f64::from(el.client_width()), f64::from(el.client_height()));
        shown.with_untracked(|view| {
            let (blocks, units) = (view.blocks(), view.units(kind));
            if w <= 0.0 || h <= 0.0 || blocks == 0 || units == 0 {
                return;
            }
            let u = ((f64::from(ev.offset_x()) / w * units as f64) as usize).min(units - 1);
            let b = ((f64::from(ev.offset_y()) / h * blocks as f64) as usize).min(blocks - 1);
            let f = frame_of(view, lab.frame.get_untracked());
            let value = f.and_then(|f| view.scores(f, b, kind)).and_then(|s| s.get(u).copied());
            hover.set(value.map(|v| (b, u, v)));
        });
    };
    let hidden = move || shown.with(|v| v.units(kind) == 0);
    view! {
        <figure class="panel" class:hidden=hidden data-site=kind.name()>
            <figcaption>
                <strong>{title}</strong>
                " "
                <span class="kept" data-kept=move || kept_map.with(|k| k.as_ref().map(|b| b.iter().flatten().flatten().filter(|&&x| x != 0.0).count().to_string()))>{kept}</span>
                <span class="hover">
                    {move || hover.get().map(|(b, u, v)| {
                        let [r, g, bl] = ramp(v);
                        view! {
                            <span class="swatch" style=format!("background: rgb({r},{g},{bl})")></span>
                            {format!(" block {b} · unit {u} · retention {v:.3}")}
                        }
                    })}
                </span>
            </figcaption>
            <canvas node_ref=canvas class="heatmap" id=format!("heatmap-{}", kind.name().replace('.', "-"))
                on:mousemove=on_move on:mouseleave=move |_| hover.set(None)></canvas>
        </figure>
    }
}
