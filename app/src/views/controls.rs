//! The experiment's knobs and the transport buttons. Changing a knob starts a fresh run (as
//! in TensorFlow Playground): a run's schedules depend on every one of them.

use leptos::prelude::*;
use prunelab_engine::gates::Method;
use prunelab_engine::model::Preset;

use crate::lab::{Command, Lab, use_lab};
use crate::views::CompareButton;
use prunelab_lab_state::settings::{Start, field_text};

/// Applies `key=value` to a copy of the settings and restarts with it; a bad value is reported.
fn change(lab: Lab, key: &'static str, value: String) {
    let mut settings = lab.settings.get_untracked();
    match settings.set(key, &value) {
        Ok(()) => {
            // Shown (and written to the URL) at once; the run restarts when the driver gets to it.
            lab.settings.set(settings.clone());
            lab.send(Command::Reset(settings));
        }
        Err(problem) => lab.notify(format!("{key} = {value:?}: {problem}")),
    }
}

#[component]
pub fn Controls() -> impl IntoView {
    let lab = use_lab();
    let settings = lab.settings;
    let help = move || settings.with(|s| s.knob().help);
    let comparing = move || settings.with(|s| !s.compare.is_empty());
    // A method's own fields show when it runs: alone, or as one of the compared methods.
    let is =
        move |m: Method| move || settings.with(|s| (s.method == m && s.compare.is_empty()) || s.compare.contains(&m));
    view! {
        <section class="controls" aria-label="experiment controls">
            <div class="transport">
                <button id="play" on:click=move |_| lab.playing.update(|p| *p = !*p)>
                    {move || if lab.playing.get() { "⏸ Pause" } else { "▶ Train" }}
                </button>
                <button id="step" on:click=move |_| lab.send(Command::Step)>"Step"</button>
                <button id="reset" on:click=move |_| lab.send(Command::Reset(settings.get_untracked()))>"Reset"</button>
                <button id="save-trace" title="Download this run's trace (.pltrace); open it later to replay the heatmaps"
                    on:click=move |_| lab.send(Command::SaveTrace)>"Save trace"</button>
                <CompareButton />
            </div>
            <label>
                "Start from "
                <select id="start" prop:value=move || settings.with(|s| s.start.name()) on:change=move |ev| change(lab, "start", event_target_value(&ev))>
                    <option id="start-trained" value="trained">
                        {move || lab.own_start.get().map_or_else(|| "trained model".to_string(), |name| format!("your {name}"))}
                    </option>
                    <option value="scratch">"scratch"</option>
                </select>
            </label>
            <label>
                "Model "
                <select id="preset" prop:value=move || settings.with(|s| s.preset.name()) on:change=move |ev| change(lab, "preset", event_target_value(&ev))>
                    {Preset::ALL.into_iter().map(|p| view! { <option value=p.name()>{p.name()}</option> }).collect_view()}
                </select>
            </label>
            <label class:hidden=comparing>
                "Method "
                <select id="method" prop:value=move || settings.with(|s| s.method.name()) on:change=move |ev| change(lab, "method", event_target_value(&ev))>
                    {Method::ALL.into_iter().map(|m| view! { <option value=m.name()>{m.name()}</option> }).collect_view()}
                </select>
            </label>
            <NumberField id="lr" label="Learning rate" step="0.0005" key="lr" value=Signal::derive(move || settings.with(|s| s.lr)) />
            <Show when=is(Method::AdaptiveDropout)>
                <NumberField id="strength" label="Regulariser strength α" step="0.0001" key="strength" value=Signal::derive(move || settings.with(|s| s.strength)) />
                <NumberField id="temperature" label="Temperature τ" step="0.05" key="temperature" value=Signal::derive(move || settings.with(|s| s.temperature)) />
            </Show>
            // Magnitude from the trained start cuts to the same share at once.
            // In a comparison the target is every method's budget.
            <Show when=move || settings.with(|s| !s.compare.is_empty() || s.method == Method::L0 || (s.method == Method::Magnitude && s.start == Start::Trained))>
                <NumberField id="target" label="Target sparsity" step="0.05" key="target" value=Signal::derive(move || settings.with(|s| s.target_sparsity)) />
            </Show>
            <NumberField id="steps" label="Steps" step="50" key="steps" value=Signal::derive(move || settings.with(|s| s.steps as f64)) />
            <NumberField id="batch" label="Batch (seconds of audio)" step="2" key="batch" value=Signal::derive(move || settings.with(|s| s.batch_seconds)) />
            <NumberField id="seed" label="Seed" step="1" key="seed" value=Signal::derive(move || settings.with(|s| s.seed as f64)) />
            <p class="hint">{help}</p>
        </section>
    }
}

/// The embed page's one control: play or pause the run the link describes (from the trained
/// start by default), so a teaching page can show pruning happen without any other knobs.
#[component]
pub fn EmbedPlay() -> impl IntoView {
    let lab = use_lab();
    let settings = lab.settings;
    let describe = move || {
        settings.with(|s| {
            let methods = if s.compare.is_empty() {
                s.method.name().to_string()
            } else {
                let names: Vec<&str> = s.compare.iter().map(|m| m.name()).collect();
                format!("{} side by side", names.join(", "))
            };
            format!("{methods} from {}, {} steps", s.start.describe(), s.steps)
        })
    };
    view! {
        <section class="transport embed-play" aria-label="play the run">
            <button id="play" on:click=move |_| lab.playing.update(|p| *p = !*p)>
                {move || if lab.playing.get() { "⏸ Pause" } else { "▶ Play" }}
            </button>
            <span class="hint">{describe}</span>
        </section>
    }
}

/// A numeric input bound to one settings key; committing a value restarts the run.
#[component]
fn NumberField(
    id: &'static str,
    label: &'static str,
    step: &'static str,
    key: &'static str,
    value: Signal<f64>,
) -> impl IntoView {
    let lab = use_lab();
    // Redrawn only when this field's own value changes: a change elsewhere in the settings (the
    // threshold slider, a run starting) must not overwrite what is being typed here.
    let value = Memo::new(move |_| value.get());
    view! {
        <label>
            {label} " "
            <input id=id type="number" step=step prop:value=move || field_text(value.get()) on:change=move |ev| change(lab, key, event_target_value(&ev)) />
        </label>
    }
}
