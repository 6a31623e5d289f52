//! Listen: play a dev utterance and read what the unpruned and the pruned model heard, with
//! word errors marked against the reference; or speak to both through the microphone.

use std::rc::Rc;

use leptos::prelude::*;
use prunelab_engine::text::{ErrorKind, align_words};
use wasm_bindgen::JsCast;

use crate::corpus::LabCorpus;
use crate::js_error::js_message;
use crate::lab::{Command, TradeOff, use_lab};
use crate::microphone::{Recording, record};
use prunelab_lab_state::session::PrunePoint;

/// The corpus, for playback (set once it has loaded).
pub type CorpusStore = StoredValue<Option<Rc<LabCorpus>>, LocalStorage>;

/// Seconds the microphone records.
const RECORD_SECONDS: u32 = 4;

thread_local! {
    /// One audio context for all playback: a page may hold only a few.
    static PLAYBACK: std::cell::RefCell<Option<web_sys::AudioContext>> = const { std::cell::RefCell::new(None) };
}

/// The page's playback context, made on first use.
fn playback_context() -> Result<web_sys::AudioContext, wasm_bindgen::JsValue> {
    PLAYBACK.with(|cell| {
        let mut held = cell.borrow_mut();
        if let Some(context) = held.as_ref() {
            return Ok(context.clone());
        }
        let context = web_sys::AudioContext::new()?;
        *held = Some(context.clone());
        Ok(context)
    })
}

/// Plays mono `samples` at `rate` through Web Audio; `ended` runs once the sound has played out.
fn play(samples: &[f32], rate: u32, ended: impl FnOnce() + 'static) -> Result<(), String> {
    let js = |e: wasm_bindgen::JsValue| js_message(&e);
    let context = playback_context().map_err(js)?;
    let buffer = context
        .create_buffer(1, samples.len().max(1) as u32, rate as f32)
        .map_err(js)?;
    buffer.copy_to_channel(samples, 0).map_err(js)?;
    let source = context.create_buffer_source().map_err(js)?;
    source.set_buffer(Some(&buffer));
    source.connect_with_audio_node(&context.destination()).map_err(js)?;
    let ended = wasm_bindgen::closure::Closure::once_into_js(ended);
    source
        .add_event_listener_with_callback("ended", ended.unchecked_ref())
        .map_err(js)?;
    source.start().map_err(js)
}

fn scored_ids(trade_off: &TradeOff) -> Vec<String> {
    trade_off
        .dense
        .as_ref()
        .map(|d| d.transcripts.iter().map(|(id, _, _)| id.clone()).collect())
        .unwrap_or_default()
}

/// The hypothesis of utterance `id` in a scored point.
fn hypothesis<'a>(point: Option<&'a PrunePoint>, id: &str) -> Option<&'a (String, String, String)> {
    point?.transcripts.iter().find(|(i, _, _)| i == id)
}

/// A hypothesis with each word marked by how it aligns to the reference.
#[component]
fn Marked(reference: String, hypothesis: String) -> impl IntoView {
    let alignment = align_words(&reference, &hypothesis);
    let errors = alignment.counts.errors();
    let words = alignment
        .tokens
        .into_iter()
        .map(|t| {
            let (class, text) = match t.kind {
                ErrorKind::Correct => ("ok", t.hypothesis.unwrap_or_default()),
                ErrorKind::Substitution => ("sub", t.hypothesis.unwrap_or_default()),
                ErrorKind::Insertion => ("ins", t.hypothesis.unwrap_or_default()),
                ErrorKind::Deletion => ("del", t.reference.unwrap_or_default()),
            };
            view! { <span class=format!("word {class}")>{text}</span> " " }
        })
        .collect_view();
    view! { <span class="transcript" data-errors=errors.to_string()>{words}</span> }
}

#[component]
pub fn Listen(corpus: CorpusStore) -> impl IntoView {
    let lab = use_lab();
    // The utterances the unpruned model was scored on (the ones with transcripts to show).
    let ids = move || lab.trade_off.with(scored_ids);
    let selected_id = move || ids().get(lab.utterance.get()).cloned();
    let ids_now = move || lab.trade_off.with_untracked(scored_ids);
    let on_play = move |_| {
        let Some(id) = ids_now().get(lab.utterance.get_untracked()).cloned() else {
            return;
        };
        let result = corpus.with_value(|c| match c {
            Some(c) => c.dev_samples(&id).and_then(|a| play(&a.samples, a.sample_rate, || {})),
            None => Err("the corpus is still loading".into()),
        });
        if let Err(e) = result {
            lab.notify(format!("cannot play: {e}"));
        }
    };
    let rows = move || {
        let id = selected_id()?;
        lab.trade_off.with(|t| {
            let reference = hypothesis(t.dense.as_ref(), &id).map(|(_, r, _)| r.clone())?;
            let row = |label: &'static str, cell: &'static str, point: Option<&PrunePoint>| {
                hypothesis(point, &id).map(|(_, r, h)| {
                    view! { <tr><th>{label}</th><td id=cell><Marked reference=r.clone() hypothesis=h.clone() /></td></tr> }
                })
            };
            Some(
                view! {
                    <table class="transcripts">
                        <tr><th>"reference"</th><td id="reference">{reference.clone()}</td></tr>
                        {row("unpruned model", "listen-unpruned", t.dense.as_ref())}
                        {row("pruned model", "listen-pruned", t.current.as_ref())}
                    </table>
                }
                .into_any(),
            )
        })
    };
    view! {
        <section class="listen" aria-label="listen">
            <h2>"Listen"</h2>
            <select id="utterance" on:change=move |ev| lab.utterance.set(event_target_value(&ev).parse().unwrap_or(0))>
                {move || ids().into_iter().enumerate().map(|(i, id)| view! { <option value=i.to_string()>{id}</option> }).collect_view()}
            </select>
            <button id="play-audio" on:click=on_play>"▶ Play audio"</button>
            {move || rows().unwrap_or_else(|| view! { <p class="hint">"Transcripts appear once the model has been scored (move the slider)."</p> }.into_any())}
            <Speak />
        </section>
    }
}

/// Speak to the models: record a few seconds, hear the recording back, and read what the dense
/// and the current pruned model made of it, words where they differ marked.
#[component]
fn Speak() -> impl IntoView {
    let lab = use_lab();
    let recording = RwSignal::new(None::<Recording>);
    let listening = RwSignal::new(false);
    let on_record = move |_| {
        if listening.get_untracked() {
            return;
        }
        listening.set(true);
        lab.heard.set(None);
        leptos::task::spawn_local(async move {
            let recorded = record(RECORD_SECONDS).await;
            listening.set(false);
            match recorded {
                Ok(r) => {
                    lab.send(Command::Hear {
                        samples: r.samples.clone(),
                        sample_rate: r.sample_rate,
                    });
                    recording.set(Some(r));
                }
                Err(e) => lab.notify(format!("cannot record: {e}")),
            }
        });
    };
    // While the recording plays back (until Web Audio says it has ended).
    let playing = RwSignal::new(false);
    let on_play = move |_| {
        recording.with_untracked(|r| {
            let Some(r) = r else { return };
            playing.set(true);
            if let Err(e) = play(&r.samples, r.sample_rate, move || playing.set(false)) {
                playing.set(false);
                lab.notify(format!("cannot play the recording: {e}"));
            }
        })
    };
    let heard = move || {
        lab.heard.get().map(|h| {
            let dense = h.dense.clone();
            view! {
                <table class="transcripts" id="heard" data-seconds=format!("{:.2}", h.seconds)>
                    <tr><th>"dense model"</th><td id="heard-dense">{dense.clone().unwrap_or_else(|| "– (this method cut the model itself; its dense self is gone)".into())}</td></tr>
                    <tr><th>"pruned model"</th><td id="heard-pruned">{match dense {
                        // Marked against the dense model: what pruning changed.
                        Some(dense) => view! { <Marked reference=dense hypothesis=h.pruned.clone() /> }.into_any(),
                        None => h.pruned.clone().into_any(),
                    }}</td></tr>
                </table>
            }
        })
    };
    view! {
        <div class="speak">
            <button id="record" on:click=on_record prop:disabled=move || listening.get()>
                {move || if listening.get() { format!("recording {RECORD_SECONDS} s…") } else { format!("🎤 Speak ({RECORD_SECONDS} s)") }}
            </button>
            <button id="play-recording" on:click=on_play data-playing=move || playing.get().to_string()
                prop:disabled=move || recording.with(Option::is_none) || playing.get()>
                {move || if playing.get() { "playing…" } else { "▶ Play recording" }}
            </button>
            {heard}
        </div>
    }
}
