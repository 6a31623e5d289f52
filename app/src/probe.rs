//! Measurements the page takes when its address asks for one (`?probe=recorded-pass`), before
//! the lab starts: the figures go to `window.__prunelabProbe` for
//! `tests/browser/measure_rate.py --probe`, or its `error` says why there are none.
//!
//! `recorded-pass`: the trained start's training pass (forward, CTC loss, backward) on the
//! first batch the trainer would make, eager against recorded once and replayed
//! (`train::bench_recorded_pass`): what recording saves the page's thread, in the browser.

use std::cell::RefCell;

use js_sys::{Array, Function, Object, Reflect};
use prunelab_engine::burn::prelude::Device;
use prunelab_engine::data::make_batches;
use prunelab_engine::kernels::runs_fused;
use prunelab_engine::model::Conformer;
use prunelab_engine::rng::SplitMix64;
use prunelab_engine::train::{RecordedPassBench, TimedPass, TrainerState, bench_recorded_pass, load_model};
use wasm_bindgen::{JsCast, JsValue};

use crate::corpus::LabCorpus;
use crate::timing::BrowserClock;

/// Passes of each kind timed by the `recorded-pass` probe.
const REPEATS: usize = 5;

/// Runs the probe the address names, if any.
pub async fn run_requested_probe(device: &Device, corpus: &LabCorpus, trained: Option<&TrainerState>) {
    let search = web_sys::window()
        .and_then(|w| w.location().search().ok())
        .unwrap_or_default();
    let value = |key: &str| {
        search
            .trim_start_matches('?')
            .split('&')
            .find_map(|pair| pair.strip_prefix(key)?.strip_prefix('='))
    };
    let Some(name) = value("probe") else { return };
    let counts = WebGpuCounts::default();
    let result = match name {
        "recorded-pass" => recorded_pass(device, corpus, trained, &counts).await,
        other => Err(format!("no probe is called {other:?} (there is: recorded-pass)")),
    };
    let report = Object::new();
    let set = |key: &str, value: JsValue| {
        let _ = Reflect::set(&report, &key.into(), &value);
    };
    set("probe", name.into());
    match result {
        Ok(b) => {
            // What one pass asked of WebGPU, eager and replayed (where the page counts it).
            let passes = b.repeats as f64;
            for (kind, sums) in [("eager", counts.eager.borrow()), ("replay", counts.replay.borrow())] {
                for (key, sum) in sums.iter() {
                    set(&format!("{kind}_{key}"), (sum / passes).into());
                }
            }
            for (key, value) in [
                ("utterances", b.utterances as f64),
                ("frames", b.frames as f64),
                ("repeats", b.repeats as f64),
                ("eager_queue_ms", b.eager_queue_ms),
                ("eager_ms", b.eager_ms),
                ("replay_queue_ms", b.replay_queue_ms),
                ("replay_ms", b.replay_ms),
                ("largest_difference", f64::from(b.largest_difference)),
            ] {
                set(key, value.into());
            }
        }
        Err(e) => set("error", e.into()),
    }
    if let Some(window) = web_sys::window() {
        let _ = Reflect::set(&window, &"__prunelabProbe".into(), &report);
    }
}

/// Sums over the timed passes of what each asked of WebGPU, from the page's counter
/// (`tests/browser/webgpu_counter.js`, installed by the measuring script; nothing without it).
#[derive(Default)]
struct WebGpuCounts {
    before: RefCell<Vec<(String, f64)>>,
    eager: RefCell<Vec<(String, f64)>>,
    replay: RefCell<Vec<(String, f64)>>,
}

impl WebGpuCounts {
    fn observe(&self, pass: TimedPass) {
        mark_progress();
        let now = counter_totals();
        match pass {
            TimedPass::Starting { .. } => *self.before.borrow_mut() = now,
            TimedPass::Queued { replayed } => {
                let mut sums = if replayed {
                    self.replay.borrow_mut()
                } else {
                    self.eager.borrow_mut()
                };
                for (key, after) in now {
                    let before = self
                        .before
                        .borrow()
                        .iter()
                        .find(|(k, _)| *k == key)
                        .map_or(after, |(_, v)| *v);
                    match sums.iter_mut().find(|(k, _)| *k == key) {
                        Some((_, sum)) => *sum += after - before,
                        None => sums.push((key, after - before)),
                    }
                }
            }
        }
    }
}

/// One more step of the probe's work done (`window.__prunelabProbeProgress`), which the
/// measuring script watches so that its patience follows the page's pace, not the clock's.
fn mark_progress() {
    let Some(window) = web_sys::window() else { return };
    let key = JsValue::from_str("__prunelabProbeProgress");
    let done = Reflect::get(&window, &key).ok().and_then(|v| v.as_f64()).unwrap_or(0.0);
    let _ = Reflect::set(&window, &key, &(done + 1.0).into());
}

/// The counter's running totals (`window.__webgpuCounter.snapshot()`), empty without it.
fn counter_totals() -> Vec<(String, f64)> {
    let Some(window) = web_sys::window() else {
        return Vec::new();
    };
    let snapshot = Reflect::get(&window, &"__webgpuCounter".into())
        .ok()
        .filter(|c| c.is_object())
        .and_then(|counter| {
            let function = Reflect::get(&counter, &"snapshot".into()).ok()?;
            function.dyn_into::<Function>().ok()?.call0(&counter).ok()
        });
    let Some(snapshot) = snapshot else { return Vec::new() };
    Object::entries(&Object::from(snapshot))
        .iter()
        .filter_map(|entry| {
            let pair = Array::from(&entry);
            Some((pair.get(0).as_string()?, pair.get(1).as_f64()?))
        })
        .collect()
}

async fn recorded_pass(
    device: &Device,
    corpus: &LabCorpus,
    trained: Option<&TrainerState>,
    counts: &WebGpuCounts,
) -> Result<RecordedPassBench, String> {
    if !runs_fused(device) {
        return Err("the page runs on a device that records nothing (not WebGPU)".into());
    }
    let trained = trained.ok_or("the trained start did not load")?;
    let autodiff = device.clone().autodiff();
    let model: Conformer = load_model(trained.config.model.init(&autodiff), trained.model.clone())
        .map_err(|e| format!("the trained start's weights: {e}"))?;
    let config = &trained.config;
    let mut rng = SplitMix64::derive(config.seed, "probe");
    let plan = make_batches(&corpus.train, config.max_batch_frames, config.shape_buckets, &mut rng);
    let first = plan.batches.first().ok_or("the corpus has no training batch")?;
    let batch: Vec<_> = first.iter().map(|&i| &corpus.train[i]).collect();
    bench_recorded_pass(
        &model,
        &batch,
        &trained.stats,
        &autodiff,
        REPEATS,
        &BrowserClock,
        &|pass| counts.observe(pass),
    )
    .await
    .map_err(|e| e.to_string())
}
