//! The loop that owns the experiment: it takes widgets' commands, trains while playing, and
//! copies what changed into the page's signals. One loop, so a session is never used by two
//! tasks at once; it yields to the browser after every piece of work. `single` drives one run
//! and its cuts, `comparing` methods side by side.

mod comparing;
mod keeping;
mod single;

use std::rc::Rc;

use leptos::prelude::*;
use prunelab_engine::burn::prelude::Device;
use prunelab_engine::prune::CutSource;
use prunelab_engine::train::{TrainerState, largest_step_tensor, most_batch_frames};

use crate::backend::gpu_lost_reason;
use crate::corpus::LabCorpus;
use crate::lab::{BackendInfo, Command, Lab, SavedOffer, TraceView};
use crate::timing::{now_ms, sleep, yield_to_browser};
use keeping::{Keeper, SAVED_RUN_KEY, SAVED_RUNS};
use prunelab_lab_state::compare::Comparison;
use prunelab_lab_state::saved_run::SavedRun;
use prunelab_lab_state::session::{KeptRun, LabData, LabSession};
use prunelab_lab_state::settings::{LabSettings, Start};

/// Runs until the page closes.
pub async fn drive(
    lab: Lab,
    mut device: Device,
    mut largest_buffer: u64,
    corpus: Rc<LabCorpus>,
    // The shipped trained start, until the user starts from a checkpoint of their own.
    mut trained: Option<Rc<TrainerState>>,
) {
    // A run an earlier visit kept: offered beside the fresh run the page starts as always.
    let mut saved_run = load_saved_run(&lab).await;
    // `None` until a start succeeds: a failed one leaves the page waiting for other settings.
    let mut running: Option<(Experiment, LabSettings)> = None;
    let mut keeper = Keeper::default();
    let first = lab.settings.get_untracked();
    let assets = Assets {
        corpus: &corpus,
        trained: trained.as_deref(),
        largest_buffer,
    };
    match start(&lab, &device, assets, first.clone()).await {
        Ok(experiment) => {
            keeper.forget(&lab, kept_across_reloads(&lab, &first));
            running = Some((experiment, first));
        }
        Err(e) => lab.notify(format!("cannot start training: {e}")),
    }
    let mut rate = StepRate::default();
    loop {
        let assets = Assets {
            corpus: &corpus,
            trained: trained.as_deref(),
            largest_buffer,
        };
        if gpu_gone(&lab) {
            // Nothing more may run on the lost device: the trace (host memory) can be saved,
            // and the page carries the run on from its copy in memory on the CPU backend (or
            // starts again there, when there is no copy).
            match lab.next_command() {
                Some(Command::SaveTrace) => match &running {
                    Some((Experiment::Single(session), _)) => single::save_trace(&lab, session),
                    _ => lab.notify("return to one run to save its trace".into()),
                },
                Some(Command::ContinueOnCpu) => {
                    device = Device::flex();
                    largest_buffer = crate::backend::CPU_LARGEST_BUFFER;
                    let assets = Assets {
                        largest_buffer,
                        ..assets
                    };
                    let single = match &running {
                        Some((Experiment::Single(_), settings)) => Some(settings.clone()),
                        _ => None,
                    };
                    match continue_on_cpu(&lab, &device, assets, keeper.kept(), single.as_ref()).await {
                        Ok(experiment) => running = Some((experiment, lab.settings.get_untracked())),
                        Err(e) => lab.notify(format!("cannot start on the CPU: {e}")),
                    }
                    let saving = running.as_ref().and_then(|(_, s)| kept_across_reloads(&lab, s));
                    keeper.forget(&lab, saving);
                    rate = StepRate::default();
                }
                Some(_) => lab.notify("the GPU was lost: save the trace, or continue on the CPU".into()),
                None => sleep(50).await,
            }
            yield_to_browser().await;
            continue;
        }
        let experiment = running.as_mut().map(|(experiment, _)| experiment);
        match (lab.next_command(), experiment) {
            (Some(Command::Reset(settings)), _) => {
                lab.playing.set(false);
                match start(&lab, &device, assets, settings.clone()).await {
                    Ok(fresh) => {
                        keeper.forget(&lab, kept_across_reloads(&lab, &settings));
                        running = Some((fresh, settings));
                    }
                    Err(e) => {
                        lab.notify(format!("cannot reset: {e}"));
                        // The widgets showed the new settings at once; show the running ones.
                        if let Some((_, current)) = &running {
                            show_settings(&lab, current);
                        }
                    }
                }
                rate = StepRate::default();
            }
            (Some(Command::Step), Some(experiment)) => {
                lab.playing.set(false);
                advance(&lab, experiment, &mut rate, &mut keeper, &corpus).await;
            }
            (Some(Command::Prune(knob)), Some(Experiment::Single(session))) => {
                session.set_knob(knob);
                single::prune(&lab, session, knob).await;
            }
            (Some(Command::Sweep), Some(Experiment::Single(session))) => single::sweep(&lab, session).await,
            (Some(Command::Target(target)), Some(Experiment::Single(session))) => {
                single::cut_to_target(&lab, session, target).await
            }
            (Some(Command::Hear { samples, sample_rate }), Some(Experiment::Single(session))) => {
                single::hear(&lab, session, &samples, sample_rate).await
            }
            (Some(Command::Hear { .. }), _) => lab.notify("return to one run to speak to the model".into()),
            (Some(Command::SaveTrace), Some(Experiment::Single(session))) => single::save_trace(&lab, session),
            (Some(Command::SaveTrace), _) => lab.notify("return to one run to save its trace".into()),
            (Some(Command::DownloadModel), Some(Experiment::Single(session))) => {
                single::download_model(&lab, session).await
            }
            (Some(Command::DownloadModel), _) => lab.notify("return to one run to download its model".into()),
            // Only offered while the GPU is lost, which the branch above handles.
            (Some(Command::ContinueOnCpu), _) => {}
            (Some(Command::ContinueSaved), _) => {
                let Some(saved) = saved_run.take() else { continue };
                lab.playing.set(false);
                lab.saved.set(None);
                let settings = saved.settings.clone();
                lab.settings.set(settings.clone());
                match resume(&lab, &device, assets, &saved.kept, &settings).await {
                    Ok(experiment) => {
                        keeper.forget(&lab, kept_across_reloads(&lab, &settings));
                        running = Some((experiment, settings));
                    }
                    Err(e) => {
                        lab.notify(format!("cannot continue the kept run: {e}"));
                        if let Some((_, current)) = &running {
                            show_settings(&lab, current);
                        }
                    }
                }
                rate = StepRate::default();
            }
            (Some(Command::StartFrom { name, state }), _) => {
                lab.playing.set(false);
                let settings = LabSettings {
                    start: Start::Trained,
                    ..lab.settings.get_untracked()
                };
                let own = Assets {
                    trained: Some(&state),
                    ..assets
                };
                match start(&lab, &device, own, settings.clone()).await {
                    Ok(fresh) => {
                        lab.settings.set(settings.clone());
                        running = Some((fresh, settings));
                        // A reload could not find this start again: the run is not stored.
                        keeper.forget(&lab, None);
                        trained = Some(Rc::new(*state));
                        lab.notify(format!("starting from {name}: every reset now starts from it"));
                        lab.own_start.set(Some(name));
                        // A kept run continued now would find this start as its teacher, not
                        // the one it trained with: the offer waits for the next visit.
                        saved_run = None;
                        lab.saved.set(None);
                    }
                    Err(e) => lab.notify(format!("{name}: cannot start from it: {e}")),
                }
                rate = StepRate::default();
            }
            (
                Some(Command::OpenExport {
                    name,
                    manifest,
                    weights,
                }),
                _,
            ) => {
                single::open_export(&lab, &device, &corpus, &name, &manifest, &weights).await;
            }
            // The slider, sweep and targets belong to one run; a comparison has no slider.
            (Some(Command::Step | Command::Prune(_) | Command::Sweep | Command::Target(_)), _) => {}
            (None, Some(experiment)) if lab.playing.get_untracked() => {
                if experiment.is_finished() {
                    // Nothing left to train: Play springs back rather than pretend.
                    lab.playing.set(false);
                } else {
                    advance(&lab, experiment, &mut rate, &mut keeper, &corpus).await;
                }
            }
            (None, _) => {
                rate.pause();
                // Idle: check for commands a few times a second without keeping a core busy.
                sleep(50).await;
            }
        }
        yield_to_browser().await;
    }
}

/// The settings of a run to keep in the browser's storage, for a reload to carry on: a single
/// run, unless it starts from the user's own checkpoint (a reload could not find that again).
fn kept_across_reloads(lab: &Lab, settings: &LabSettings) -> Option<LabSettings> {
    let own_start = settings.start == Start::Trained && lab.own_start.get_untracked().is_some();
    (settings.compare.is_empty() && !own_start).then(|| settings.clone())
}

/// The run an earlier visit kept in the browser's storage, offered on the page; one that does
/// not read back is reported and forgotten.
async fn load_saved_run(lab: &Lab) -> Option<SavedRun> {
    let bytes = SAVED_RUNS.get(SAVED_RUN_KEY).await?;
    match SavedRun::decode(&bytes, "the run kept in this browser") {
        Ok(saved) => {
            let settings = &saved.settings;
            lab.saved.set(Some(SavedOffer {
                step: saved.kept.step(),
                describe: format!(
                    "{} from {}, {} steps",
                    settings.method.name(),
                    settings.start.describe(),
                    settings.steps
                ),
            }));
            Some(saved)
        }
        Err(e) => {
            lab.notify(format!("{e}; it was discarded"));
            SAVED_RUNS.delete(SAVED_RUN_KEY).await;
            None
        }
    }
}

/// Whether the WebGPU device has been lost; the first time, stops training and says so.
fn gpu_gone(lab: &Lab) -> bool {
    if lab.gpu_lost.get_untracked().is_some() {
        return true;
    }
    if !lab.backend.get_untracked().is_some_and(|b| b.is_webgpu) {
        return false;
    }
    let Some(reason) = gpu_lost_reason() else {
        return false;
    };
    lab.playing.set(false);
    let kept = match lab.kept.get_untracked() {
        Some(kept) => format!(", and a copy of the run from step {}", kept.step),
        None => String::new(),
    };
    lab.notify(format!(
        "the GPU was lost ({reason}) at step {}; the run's trace is kept{kept}",
        lab.step.get_untracked()
    ));
    lab.gpu_lost.set(Some(reason));
    true
}

/// What the page runs: one run, or methods side by side.
enum Experiment {
    Single(LabSession),
    Compare(Comparison),
}

impl Experiment {
    fn is_finished(&self) -> bool {
        match self {
            Experiment::Single(session) => session.is_finished(),
            Experiment::Compare(comparison) => comparison.is_finished(),
        }
    }
}

/// One training step (of the method furthest behind, in a comparison), with a copy of a
/// single run kept in memory when one is due; when that was the last step, stops playing and
/// scores the result.
async fn advance(lab: &Lab, experiment: &mut Experiment, rate: &mut StepRate, keeper: &mut Keeper, corpus: &LabCorpus) {
    if experiment.is_finished() {
        return;
    }
    match experiment {
        Experiment::Single(session) => {
            // A failed step may mean a lost device: copying would read from it again.
            if single::step(lab, session, rate, corpus).await && gpu_lost_reason().is_none() {
                keeper.after_step(lab, session).await;
            }
        }
        Experiment::Compare(comparison) => comparing::step(lab, comparison, rate, corpus).await,
    }
    if experiment.is_finished() {
        lab.playing.set(false);
        match experiment {
            Experiment::Single(session) => single::prune(lab, session, lab.settings.get_untracked().threshold).await,
            Experiment::Compare(comparison) => comparing::finish(lab, comparison).await,
        }
    }
}

/// What sessions are made from.
#[derive(Clone, Copy)]
struct Assets<'a> {
    corpus: &'a LabCorpus,
    /// The trained start, if it loaded.
    trained: Option<&'a TrainerState>,
    /// The backend's largest buffer in bytes ([`crate::backend::Backend::largest_buffer`]).
    largest_buffer: u64,
}

impl<'a> Assets<'a> {
    /// The data a session of `settings` trains and scores on.
    fn data(&self, settings: &LabSettings) -> LabData<'a> {
        let dev = &self.corpus.dev;
        LabData {
            train: &self.corpus.train,
            dev: &dev[..settings.dev_utterances.min(dev.len())],
            trained: self.trained,
            timed_pairs: settings.timed_pairs,
        }
    }

    /// Refuses settings whose batch would need a tensor larger than the backend's largest
    /// buffer, with the largest batch that fits: a step that asks the device for more panics,
    /// and a panic ends the page.
    fn check_batch(&self, settings: &LabSettings) -> Result<(), String> {
        let config = settings.train_config()?;
        let bins = config.fbank.num_bins;
        let longest = self
            .corpus
            .train
            .iter()
            .map(|u| u.feats.len() / bins)
            .max()
            .unwrap_or(1);
        let needs = largest_step_tensor(&config.model, config.max_batch_frames, longest);
        if needs.bytes <= self.largest_buffer {
            return Ok(());
        }
        let most = most_batch_frames(&config.model, longest, self.largest_buffer);
        let mib = |bytes: u64| bytes as f64 / (1u64 << 20) as f64;
        Err(format!(
            "a batch of {} s needs {:.0} MiB for {}, and this backend's largest buffer is {:.0} MiB: \
             choose a batch of at most {:.0} s",
            settings.batch_seconds,
            mib(needs.bytes),
            needs.what,
            mib(self.largest_buffer),
            (most as f64 / config.fbank.frames_per_second()).floor()
        ))
    }

    /// What cuts are scored with beside greedy: the CLI's default lexicon search.
    fn decoder(&self) -> Option<prunelab_engine::decode::Decoder> {
        Some(self.corpus.lexicon.clone())
    }
}

/// After the GPU was lost, on the CPU backend `device`: a single run (`single`: the settings it
/// runs with) carries on from its copy in memory, with those settings even if the widgets were
/// changed meanwhile (a change queues a reset, which the lost device dropped). Without a copy,
/// for a comparison, or when the copy does not restore, the widgets' settings start afresh.
async fn continue_on_cpu(
    lab: &Lab,
    device: &Device,
    assets: Assets<'_>,
    kept: Option<&KeptRun>,
    single: Option<&LabSettings>,
) -> Result<Experiment, String> {
    lab.backend.set(Some(BackendInfo {
        label: "CPU (wasm) · continued after the GPU was lost".into(),
        is_webgpu: false,
    }));
    lab.gpu_lost.set(None);
    if let Some(settings) = single {
        let carried = match kept {
            Some(kept) => {
                lab.settings.set(settings.clone());
                resume(lab, device, assets, kept, settings).await
            }
            None => Err("no copy of the run was kept".into()),
        };
        match carried {
            Ok(experiment) => return Ok(experiment),
            Err(why) => lab.notify(format!("{why}; starting again on the CPU")),
        }
    }
    start(lab, device, assets, lab.settings.get_untracked()).await
}

/// Shows `settings` in the widgets, unless they are ahead of it (a reset with newer settings
/// is queued) or already show it (a write would still wake everything that reads them).
fn show_settings(lab: &Lab, settings: &LabSettings) {
    if !lab.reset_pending() && lab.settings.with_untracked(|shown| shown != settings) {
        lab.settings.set(settings.clone());
    }
}

/// The single run carried on from `kept` (its copy in memory) on `device`, shown as it was at
/// that step.
async fn resume(
    lab: &Lab,
    device: &Device,
    assets: Assets<'_>,
    kept: &KeptRun,
    settings: &LabSettings,
) -> Result<Experiment, String> {
    lab.busy
        .set(Some(format!("carrying the run on from step {}…", kept.step())));
    yield_to_browser().await;
    let resumed = LabSession::resume(
        kept,
        settings.threshold,
        assets.data(settings),
        assets.decoder(),
        device,
    );
    let mut session = resumed.inspect_err(|_| lab.busy.set(None))?;
    single::resume(lab, &mut session).await;
    lab.busy.set(None);
    Ok(Experiment::Single(session))
}

/// A fresh experiment: builds one run or a comparison as `settings` say, then clears the views
/// and begins it.
async fn start(lab: &Lab, device: &Device, assets: Assets<'_>, settings: LabSettings) -> Result<Experiment, String> {
    assets.check_batch(&settings)?;
    lab.busy.set(Some("building the model…".into()));
    yield_to_browser().await;
    let (data, decoder) = (assets.data(&settings), assets.decoder());
    let built = if settings.compare.is_empty() {
        LabSession::new(&settings, data, decoder, device).map(Experiment::Single)
    } else {
        Comparison::new(&settings, data, decoder, device).map(Experiment::Compare)
    };
    let mut experiment = built.inspect_err(|_| lab.busy.set(None))?;
    // The widgets already show `settings` (every start is asked for with what they show), and
    // may be ahead of it by now: they are not written here (writing them back undid knob changes
    // and text being typed while the model was built).
    lab.step.set(0);
    lab.steps_per_second.set(0.0);
    lab.frame.set(None);
    lab.trade_off.set(Default::default());
    lab.compare.set(None);
    lab.heard.set(None);
    lab.live.set(TraceView {
        source: "live".into(),
        ..TraceView::default()
    });
    match &mut experiment {
        Experiment::Single(session) => single::begin(lab, session, &settings).await?,
        Experiment::Compare(comparison) => comparing::begin(lab, comparison, &settings).await?,
    }
    Ok(experiment)
}

/// The current model's unit scores (one read-back), or `None` with a notice.
async fn read_scores(lab: &Lab, session: &LabSession) -> Option<CutSource> {
    session.scores().await.map_err(|e| lab.notify(e)).ok()
}

/// Steps per second over the last few steps of uninterrupted training.
#[derive(Default)]
struct StepRate {
    last_ms: Option<f64>,
    recent: Vec<f64>,
}

impl StepRate {
    fn tick(&mut self) -> f64 {
        let now = now_ms();
        if let Some(last) = self.last_ms {
            self.recent.push(now - last);
            if self.recent.len() > 10 {
                self.recent.remove(0);
            }
        }
        self.last_ms = Some(now);
        let mean = self.recent.iter().sum::<f64>() / self.recent.len().max(1) as f64;
        if mean > 0.0 { 1000.0 / mean } else { 0.0 }
    }

    /// Training stopped: the next step must not count the pause.
    fn pause(&mut self) {
        self.last_ms = None;
    }
}
