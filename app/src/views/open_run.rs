//! Opening a run that `prunelab train` wrote: pick or drop its `trace.pltrace`, and every view
//! shows it instead of the live run; its `checkpoint.plc`, and the lab trains from it. A bad
//! file is reported and changes nothing.

use leptos::prelude::*;
use prunelab_engine::store::{decode_checkpoint, decode_trace, read_export_archive};

use crate::lab::{Command, Lab, TraceView, use_lab};

/// Reads `file` and shows it if it is a valid trace; otherwise a notice names the file and why.
pub async fn open_file(lab: Lab, file: web_sys::File) {
    let name = file.name();
    let Some(bytes) = read_bytes(lab, &file).await else {
        return;
    };
    match decode_trace(&bytes, &name) {
        Ok(trace) => {
            lab.frame.set(None);
            lab.opened.set(Some(TraceView::from_trace(trace, name)));
        }
        Err(e) => lab.notify(e.to_string()),
    }
}

/// Reads a whole file's bytes; a notice names the file when it cannot.
async fn read_bytes(lab: Lab, file: &web_sys::File) -> Option<Vec<u8>> {
    let blob = gloo_file::Blob::from(file.clone());
    match gloo_file::futures::read_as_bytes(&blob).await {
        Ok(bytes) => Some(bytes),
        Err(e) => {
            lab.notify(format!("{}: cannot read: {e}", file.name()));
            None
        }
    }
}

/// An export as the lab downloads it: both files in one `.tar`.
async fn open_export_archive(lab: Lab, archive: web_sys::File) {
    let name = archive.name();
    let Some(bytes) = read_bytes(lab, &archive).await else {
        return;
    };
    match read_export_archive(&bytes, &name) {
        Ok((manifest, weights)) => lab.send(Command::OpenExport {
            name,
            manifest,
            weights,
        }),
        Err(e) => lab.notify(e.to_string()),
    }
}

/// An export is two files, picked or dropped together: the manifest and the weights.
async fn open_export(lab: Lab, manifest: web_sys::File, weights: web_sys::File) {
    let (Some(text), Some(weights)) = (read_bytes(lab, &manifest).await, read_bytes(lab, &weights).await) else {
        return;
    };
    let Ok(text) = String::from_utf8(text) else {
        return lab.notify(format!("{}: not a text file", manifest.name()));
    };
    lab.send(Command::OpenExport {
        name: manifest.name(),
        manifest: text,
        weights,
    });
}

/// Reads a `prunelab train` checkpoint and asks the driver to start from it; a file that is
/// not one (damaged, truncated, another format) is named in a notice and changes nothing.
async fn start_from_checkpoint(lab: Lab, file: web_sys::File) {
    let name = file.name();
    let Some(bytes) = read_bytes(lab, &file).await else {
        return;
    };
    match decode_checkpoint(&bytes, &name) {
        Ok(state) => lab.send(Command::StartFrom {
            name,
            state: Box::new(state),
        }),
        Err(e) => lab.notify(e.to_string()),
    }
}

/// Opens what a picker or a drop holds: a checkpoint to start from, a trace, or an export's
/// manifest and weights.
pub fn open_first(lab: Lab, files: Option<web_sys::FileList>) {
    let files: Vec<web_sys::File> = files
        .map(|list| (0..list.length()).filter_map(|i| list.get(i)).collect())
        .unwrap_or_default();
    let ending = |suffix: &str| files.iter().find(|f| f.name().ends_with(suffix)).cloned();
    if let Some(checkpoint) = ending(".plc") {
        return leptos::task::spawn_local(start_from_checkpoint(lab, checkpoint));
    }
    if let Some(archive) = ending(".tar") {
        return leptos::task::spawn_local(open_export_archive(lab, archive));
    }
    match (ending(".json"), ending(".safetensors")) {
        (Some(manifest), Some(weights)) => leptos::task::spawn_local(open_export(lab, manifest, weights)),
        (Some(manifest), None) => lab.notify(format!(
            "{}: an export needs its model.safetensors too; pick both files together",
            manifest.name()
        )),
        _ => {
            if let Some(file) = files.into_iter().next() {
                leptos::task::spawn_local(open_file(lab, file));
            }
        }
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
                "Open a run (trace.pltrace from prunelab train; an export: a downloaded .tar, or manifest.json and model.safetensors from prunelab prune picked together), start from your own checkpoint.plc, or drop it on the page: "
                <input id="open-trace" type="file" multiple accept=".pltrace,.json,.safetensors,.tar,.plc" on:change=on_pick />
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
