//! What the page is running on and doing: the backend badge, loading progress, the step
//! counter with steps per second, and notices (errors are shown, never swallowed).

use leptos::prelude::*;

use crate::lab::{Command, Phase, use_lab};

#[component]
pub fn Status() -> impl IntoView {
    let lab = use_lab();
    let badge = move || {
        lab.backend.get().map(|b| {
            let class = if b.is_webgpu { "badge webgpu" } else { "badge cpu" };
            view! { <span id="backend" class=class data-webgpu=b.is_webgpu.to_string()>{b.label}</span> }
        })
    };
    let phase = move || {
        match lab.phase.get() {
        Phase::Loading { fraction, message } => view! {
            <div id="loading">
                <progress max="1" value=fraction.to_string()></progress>
                <span>{message}</span>
            </div>
        }
        .into_any(),
        Phase::Failed(e) => view! { <p id="load-error" class="error">{e}</p> }.into_any(),
        Phase::Ready => view! {
            <p id="progress" class="numbers">
                <span id="step-count" data-step=move || lab.step.get().to_string() data-stepping=move || lab.stepping.get().to_string()>
                    {move || format!("step {} of {}", lab.step.get(), lab.settings.with(|s| s.steps))}
                </span>
                " · "
                <span id="rate">{move || format!("{:.2} steps/s", lab.steps_per_second.get())}</span>
                <span id="last-loss" data-loss=move || lab.live.with(|v| v.losses.last().map(|(_, l)| l.to_string()))>
                    // A comparison shows each method's loss in its own panel.
                    {move || lab.compare.with(Option::is_none).then(|| {
                        lab.live.with(|v| v.losses.last().map_or(" · no loss yet".into(), |(_, l)| format!(" · loss {l:.3}")))
                    })}
                </span>
                <span id="corpus-origin">{move || lab.corpus_origin.get().map(|o| format!(" · corpus from the {o}"))}</span>
                <span id="kept-copy">
                    // What a lost GPU or a reload would leave (see driver/keeping.rs).
                    {move || lab.kept.get().map(|k| view! {
                        <span data-step=k.step.to_string() data-ms=format!("{:.0}", k.millis) data-stored=k.stored.to_string()
                            title=format!("copied to memory in {:.0} ms, in case the GPU is lost{}", k.millis,
                                if k.stored { ", and kept in this browser for a reload" } else { "" })>
                            {format!(" · copy of step {} kept{}", k.step, if k.stored { " (survives a reload)" } else { "" })}
                        </span>
                    })}
                </span>
                <span id="busy">{move || lab.busy.get().map(|b| format!(" · {b}"))}</span>
            </p>
        }
        .into_any(),
    }
    };
    view! {
        <header class="status">
            <h1>"Prunelab"</h1>
            <p class="tagline">"Structured pruning of a Conformer speech recogniser, trained live in your browser."</p>
            {badge}
            {phase}
            {move || lab.gpu_lost.get().map(|reason| {
                let kept = lab.kept.get_untracked();
                let (kept_text, button, title) = match kept {
                    Some(k) => (
                        format!("a copy of the run from step {} is in memory. ", k.step),
                        format!("Continue on the CPU from step {}", k.step),
                        "Carry this run on with the CPU backend, from its copy in memory",
                    ),
                    None => (
                        "no copy of the model was kept. ".to_string(),
                        "Start again on the CPU".to_string(),
                        "Start this lesson again on the CPU backend, from the same settings",
                    ),
                };
                view! {
                    <div id="gpu-lost" class="gpu-lost" role="alert">
                        {format!("The GPU was lost ({reason}). Training stopped; the run's trace is kept, and {kept_text}")}
                        <button id="gpu-lost-save" on:click=move |_| lab.send(Command::SaveTrace)>"Save trace"</button>
                        <button id="continue-on-cpu" title=title
                            on:click=move |_| lab.send(Command::ContinueOnCpu)>{button}</button>
                    </div>
                }
            })}
            {move || lab.saved.get().map(|offer| view! {
                <p id="saved-run" class="saved-run">
                    {format!("This browser kept a run from an earlier visit: {}, at step {}. ", offer.describe, offer.step)}
                    <button id="continue-saved" on:click=move |_| lab.send(Command::ContinueSaved)>
                        {format!("Continue from step {}", offer.step)}
                    </button>
                    " (training the new run replaces it)"
                </p>
            })}
            <ul id="notices" class="notices">
                {move || lab.notices.get().into_iter().rev().take(5).map(|n| view! { <li class="error">{n}</li> }).collect_view()}
            </ul>
        </header>
    }
}
