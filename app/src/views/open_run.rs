//! Opening a run that `prunelab train` wrote: pick or drop its `trace.pltrace`, and every view
//! shows it instead of the live run. A bad file is reported and changes nothing.

use leptos::prelude::*;
use prunelab_engine::store::decode_trace;
use wasm_bindgen_futures::JsFuture;
use web_sys::js_sys::Uint8Array;

use crate::corpus::js_message;
use crate::lab::{Lab, TraceView, use_lab};

/// Reads `file` and shows it if it is a valid trace; otherwise a notice names the file and why.
pub async fn open_file(lab: Lab, file: web_sys::File) {
    let name = file.name();
    let bytes = match JsFuture::from(file.array_buffer()).await {
        Ok(buffer) => Uint8Array::new(&buffer).to_vec(),
        Err(e) => {
            lab.notify(format!("{name}: cannot read: {}", js_message(&e)));
            return;
        }
    };
    match decode_trace(&bytes, &name) {
        Ok(trace) => {
            lab.frame.set(None);
            lab.opened.set(Some(TraceView::from_trace(trace, name)));
        }
        Err(e) => lab.notify(e.to_string()),
    }
}

/// Opens the first file of a picker or a drop.
pub fn open_first(lab: Lab, files: Option<web_sys::FileList>) {
    if let Some(file) = files.and_then(|f| f.get(0)) {
        leptos::task::spawn_local(open_file(lab, file));
    }
}

#[component]
pub fn OpenRun() -> impl IntoView {
    let lab = use_lab();
    let on_pick = move |ev: leptos::ev::Event| {
        let input: web_sys::HtmlInputElement = event_target(&ev);
        open_first(lab, input.files());
    };
    view! {
        <section class="open-run" aria-label="open a native run">
            <label class="file">
                "Open a run (trace.pltrace from prunelab train), or drop it on the page: "
                <input id="open-trace" type="file" accept=".pltrace" on:change=on_pick />
            </label>
            <Show when=move || lab.opened.with(Option::is_some)>
                <p id="viewing" class="viewing">
                    {move || lab.opened.with(|o| o.as_ref().map(|v| format!("Viewing {} — {}", v.source, v.description)))}
                    " "
                    <button id="back-to-live" on:click=move |_| lab.opened.set(None)>"Back to the live run"</button>
                </p>
            </Show>
        </section>
    }
}
