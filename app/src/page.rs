//! The lab page: starts the backend and the corpus, hands both to the driver, keeps the URL in
//! step with the settings, and lays out the widgets.

use std::rc::Rc;

use leptos::prelude::*;

use crate::backend::init_backend;
use crate::corpus::{load_corpus, load_trained_start};
use crate::driver::drive;
use crate::lab::{BackendInfo, Lab, Phase};
use crate::views::{
    ComparePanel, Controls, CorpusStore, Curves, EmbedPlay, Heatmaps, Listen, OpenRun, Status, TradeOffPanel,
    open_first,
};
use prunelab_engine::kernels::{OpsPath, set_ops_path};
use prunelab_lab_state::settings::{LabSettings, TRAINED_START};

fn location_hash() -> String {
    web_sys::window()
        .and_then(|w| w.location().hash().ok())
        .unwrap_or_default()
}

/// Writes the settings into the URL without adding a history entry per slider move.
fn write_hash(settings: &LabSettings) {
    let Some(window) = web_sys::window() else { return };
    let hash = format!("#{}", settings.to_hash());
    if location_hash() != hash
        && let Ok(history) = window.history()
    {
        let _ = history.replace_state_with_url(&wasm_bindgen::JsValue::NULL, "", Some(&hash));
    }
}

#[component]
pub fn Page() -> impl IntoView {
    let (settings, problems) = LabSettings::from_hash(&location_hash());
    let lab = Lab::new(settings);
    provide_context(lab);
    for problem in problems {
        lab.notify(problem);
    }
    let corpus: CorpusStore = StoredValue::new_local(None);
    Effect::new(move |_| lab.settings.with(write_hash));
    // The page runs on one thread: the engine's per-thread choice of path is the page's.
    Effect::new(move |_| {
        set_ops_path(lab.settings.with(|s| s.ops));
    });
    leptos::task::spawn_local(async move {
        let backend = init_backend().await;
        let forced_reference = backend.is_webgpu && lab.settings.with_untracked(|s| s.ops) == OpsPath::Reference;
        lab.backend.set(Some(BackendInfo {
            label: if forced_reference {
                format!("{} · burn's composed operations (#ops=reference)", backend.label)
            } else {
                backend.label.clone()
            },
            is_webgpu: backend.is_webgpu,
        }));
        let loaded = load_corpus(move |fraction, message| lab.phase.set(Phase::Loading { fraction, message })).await;
        match loaded {
            Ok(loaded) => {
                let loaded = Rc::new(loaded);
                for skipped in &loaded.skipped {
                    lab.notify(format!("skipped corpus item {skipped}"));
                }
                let origin = if loaded.from_cache { "browser cache" } else { "network" };
                web_sys::console::info_1(&format!("corpus loaded from the {origin}").into());
                lab.corpus_origin.set(Some(origin));
                corpus.set_value(Some(loaded.clone()));
                let trained = load_trained_start(TRAINED_START, move |fraction, message| {
                    lab.phase.set(Phase::Loading {
                        fraction: 0.95 + 0.05 * fraction,
                        message,
                    })
                })
                .await
                .map_err(|e| {
                    lab.notify(format!(
                        "cannot load the trained model ({e}); Start from: scratch still works"
                    ))
                })
                .ok()
                .map(Rc::new);
                crate::probe::run_requested_probe(&backend.device, &loaded, trained.as_deref()).await;
                lab.phase.set(Phase::Ready);
                drive(lab, backend.device, backend.largest_buffer, loaded, trained).await;
            }
            Err(e) => lab.phase.set(Phase::Failed(format!("cannot load the corpus: {e}"))),
        }
    });
    let embed = move || lab.settings.with(|s| s.embed);
    let comparing = move || lab.settings.with(|s| !s.compare.is_empty());
    let on_drop = move |ev: web_sys::DragEvent| {
        ev.prevent_default();
        open_first(lab, ev.data_transfer().and_then(|d| d.files()));
    };
    view! {
        <main class:embed=embed on:dragover=|ev: web_sys::DragEvent| ev.prevent_default() on:drop=on_drop>
            <Status />
            <div class="layout">
                <Show when=move || !embed()>
                    <aside>
                        <Controls />
                        <OpenRun />
                    </aside>
                </Show>
                <div class="views">
                    <Show when=embed>
                        <EmbedPlay />
                    </Show>
                    <Show when=comparing fallback=move || view! {
                        <TradeOffPanel />
                        <Curves />
                        <Heatmaps />
                        <Listen corpus=corpus />
                    }>
                        <ComparePanel />
                    </Show>
                </div>
            </div>
        </main>
    }
}
