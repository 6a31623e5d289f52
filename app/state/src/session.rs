//! One experiment in the page: the engine's [`Run`] (trainer and schedule), the retention
//! history its snapshots have produced, and cuts scored for the views. Plain Rust, no UI: the
//! driver calls it and copies results into signals.
//!
//! Every read-back from the device is asynchronous (a synchronous read panics on WebGPU).

use prunelab_engine::audio::FeatureStats;
use prunelab_engine::burn::prelude::Device;
use prunelab_engine::data::Utterance;
use prunelab_engine::decode::Decoder;
use prunelab_engine::gates::{Method, SiteKind};
use prunelab_engine::infer::{Clock, DevTimer, PairedTiming};
use prunelab_engine::model::Conformer;
use prunelab_engine::prune::{CutSource, CutTarget, PlanError, Pruned, Selection, UnitScores};
use prunelab_engine::store::{ExportManifest, Trace, export_archive};
use prunelab_engine::train::{CutEval, Run, RunEvent, RunOptions, StepBatch, TrainConfig, Trainer, TrainerState};

use crate::settings::{LabSettings, Start};

/// One evaluated cut: the model cut at `knob` and scored on the dev subset.
#[derive(Debug, Clone, PartialEq)]
pub struct PrunePoint {
    pub step: usize,
    /// The slider value it was cut at (NaN for an opened export).
    pub knob: f64,
    pub params: usize,
    /// Parameters of the model before any cut (a share of the model is a share of these).
    pub dense_params: usize,
    /// Multiply-adds ×2 per second of audio.
    pub flops_per_second: f64,
    /// WER of the best decoder the run scores with (the lexicon search in the page).
    pub wer: f64,
    /// WER of greedy decoding, beside it.
    pub greedy_wer: f64,
    /// Words the WER rests on.
    pub words: usize,
    /// `(site, kept, total)` units per site kind.
    pub kept: Vec<(SiteKind, usize, usize)>,
    /// The share of the prunable parameters removed (what L0's target sparsity aims at), where
    /// the units count from the dense layout.
    pub prunable_sparsity: Option<f64>,
    /// Per unit of the dense model: its scale if kept, 0 if removed (what the heatmaps dim).
    pub kept_map: UnitScores,
    /// Measured inference time of the dense and this cut model, when timed.
    pub timing: Option<PairedTiming>,
    /// Per dev utterance: id, reference, hypothesis (of the best decoder).
    pub transcripts: Vec<(String, String, String)>,
    /// How the cut was asked for, so it can be made again (to time it, or to hear a recording
    /// through it); `None` for a model opened from an export.
    pub cut: Option<Cut>,
    /// The gates had not learned yet, so the cut kept the units with the largest weight norms.
    pub chosen_by_norm: bool,
}

/// What the dense and the cut model hear in a recording (decoded as cuts are scored).
#[derive(Debug, Clone, PartialEq)]
pub struct Heard {
    /// The dense model's words; `None` when the method already cut the model (its dense self
    /// is gone).
    pub dense: Option<String>,
    pub pruned: String,
    /// Length of the recording.
    pub seconds: f64,
}

impl From<CutEval> for PrunePoint {
    fn from(eval: CutEval) -> Self {
        let greedy_wer = eval.report.wer();
        let best = eval.decoded.unwrap_or(eval.report);
        Self {
            step: eval.step,
            knob: eval.knob,
            params: eval.params,
            dense_params: eval.dense_params,
            flops_per_second: eval.flops_per_second,
            wer: best.wer(),
            greedy_wer,
            words: best.words.reference_len,
            kept: eval.kept,
            prunable_sparsity: eval.prunable_sparsity,
            kept_map: eval.kept_map,
            timing: None,
            transcripts: best
                .utterances
                .into_iter()
                .map(|u| (u.id, u.reference, u.hypothesis))
                .collect(),
            cut: eval.knob.is_finite().then_some(Cut::Knob(eval.knob)),
            chosen_by_norm: eval.chosen_by_norm,
        }
    }
}

/// How a cut was asked for: the slider, or a typed target.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Cut {
    Knob(f64),
    Target(CutTarget),
}

/// Dev utterances each timing pass runs over (from the first): a few seconds of audio, so
/// timing a cut takes seconds on a CPU.
pub const TIMED_UTTERANCES: usize = 8;

/// What a session trains and scores on.
#[derive(Clone, Copy)]
pub struct LabData<'a> {
    pub train: &'a [Utterance],
    pub dev: &'a [Utterance],
    /// The trained start, when loaded.
    pub trained: Option<&'a TrainerState>,
    /// Alternating dense/pruned pairs each cut is timed in (the medians are reported).
    pub timed_pairs: usize,
}

#[cfg(test)]
impl<'a> LabData<'a> {
    /// What a session trains and scores on in a test: `train`, `dev`, a stand-in trained start
    /// (`test_support::trained_start`), the default number of timed pairs.
    pub(crate) fn for_tests(train: &'a [Utterance], dev: &'a [Utterance], trained: &'a TrainerState) -> Self {
        Self {
            train,
            dev,
            trained: Some(trained),
            timed_pairs: crate::settings::TIMED_PAIRS.1,
        }
    }
}

/// A run as it was at one step, held in host memory: its trainer's whole state and its trace.
/// It survives the device the run trained on.
#[derive(Clone)]
pub struct KeptRun {
    pub(crate) state: TrainerState,
    pub(crate) trace: Trace,
}

impl KeptRun {
    /// A run's state and trace as one copy (the fuzzer's seeds make them from parts).
    pub fn new(state: TrainerState, trace: Trace) -> Self {
        Self { state, trace }
    }

    /// The trainer's state and the trace, as continuing the run reads them.
    pub fn into_parts(self) -> (TrainerState, Trace) {
        (self.state, self.trace)
    }

    /// The step it was kept at.
    pub fn step(&self) -> usize {
        self.state.step
    }
}

/// The training run behind the page.
pub struct LabSession {
    run: Run,
    /// The decoder cuts are scored with beside greedy (greedy when there is none): recordings
    /// are decoded with it too.
    decoder: Decoder,
    /// Every unit's score over training (retention, or relative weight norm for ungated runs),
    /// and the run's events.
    pub trace: Trace,
    /// Dense/pruned pairs each cut is timed in.
    timed_pairs: usize,
}

impl LabSession {
    /// A fresh run of `settings` on `train`, evaluated on `dev` with greedy decoding and
    /// `decoder` (the CLI's default lexicon search). From scratch, feature statistics come from
    /// `train`; from the trained start, `trained` is that model (and L0's teacher), with its own.
    pub fn new(
        settings: &LabSettings,
        data: LabData<'_>,
        decoder: Option<Decoder>,
        device: &Device,
    ) -> Result<Self, String> {
        let LabData {
            train,
            dev,
            trained,
            timed_pairs,
        } = data;
        if train.is_empty() {
            return Err("the corpus has no training utterances".into());
        }
        let config: TrainConfig = settings.train_config()?;
        let trace = Trace::for_run(&config, &format!("from {} · in the browser", settings.start.describe()));
        let trainer = match (settings.start, trained) {
            (Start::Scratch, _) => {
                let stats =
                    FeatureStats::from_features(train.iter().map(|u| u.feats.as_slice()), config.fbank.num_bins);
                Trainer::new(config, stats, device)
            }
            (Start::Trained, None) => return Err("the trained model is not loaded".into()),
            (Start::Trained, Some(trained)) => {
                let distils = config.distill.is_some();
                let mut trainer = Trainer::warm_start(config, trained, device)
                    .map_err(|e| format!("{e}; choose Start from: scratch for this preset"))?;
                if distils {
                    trainer.attach_teacher(trained).map_err(|e| e.to_string())?;
                }
                trainer
            }
        };
        Ok(Self::around(
            trainer,
            dev,
            decoder,
            settings.threshold,
            trace,
            timed_pairs,
        ))
    }

    /// The run carried on from `kept` on `device` (after the GPU it trained on was lost): its
    /// step, weights, optimiser and trace as they were when kept, evaluated on `data.dev` with
    /// `decoder`, cutting at `knob`. A run that distils needs `data.trained` again as its
    /// teacher (a teacher is not part of a run's state).
    pub fn resume(
        kept: &KeptRun,
        knob: f64,
        data: LabData<'_>,
        decoder: Option<Decoder>,
        device: &Device,
    ) -> Result<Self, String> {
        let distils = kept.state.config.distill.is_some();
        let mut trainer = Trainer::restore(kept.state.clone(), device).map_err(|e| e.to_string())?;
        if distils {
            let teacher = data
                .trained
                .ok_or("the trained model (the run's teacher) is not loaded")?;
            trainer.attach_teacher(teacher).map_err(|e| e.to_string())?;
        }
        Ok(Self::around(
            trainer,
            data.dev,
            decoder,
            knob,
            kept.trace.clone(),
            data.timed_pairs,
        ))
    }

    fn around(
        trainer: Trainer,
        dev: &[Utterance],
        decoder: Option<Decoder>,
        knob: f64,
        trace: Trace,
        timed_pairs: usize,
    ) -> Self {
        let hearing = decoder.clone().unwrap_or(Decoder::Greedy);
        let mut run = Run::new(
            trainer,
            RunOptions {
                dev: dev.to_vec(),
                checkpoint_every: None,
                decoder,
            },
        );
        run.set_knob(knob);
        Self {
            run,
            decoder: hearing,
            trace,
            timed_pairs,
        }
    }

    /// Waits until the last step's work on the device is done (its update runs after
    /// [`LabSession::train_step`] returns), so that what is timed next is not that work.
    pub async fn settle(&self) -> Result<(), String> {
        self.run.trainer().settle().await.map_err(|e| e.to_string())
    }

    /// A copy of the run in host memory (every parameter and optimiser moment read back): what
    /// [`LabSession::resume`] carries on from if the device is lost.
    pub async fn keep(&self) -> Result<KeptRun, String> {
        let state = self
            .run
            .trainer()
            .read_state()
            .await
            .map_err(|e| format!("cannot copy the run into memory: {e}"))?;
        Ok(KeptRun {
            state,
            trace: self.trace.clone(),
        })
    }

    pub fn step(&self) -> usize {
        self.run.steps_done()
    }

    pub fn is_finished(&self) -> bool {
        self.run.is_finished()
    }

    /// Where the run's own periodic evaluations cut (the slider's position).
    pub fn set_knob(&mut self, value: f64) {
        self.run.set_knob(value);
    }

    /// The run's first events (the snapshot at step 0), recorded in the trace.
    pub async fn begin(&mut self) -> Result<Vec<RunEvent>, String> {
        let events = self.run.begin().await.map_err(|e| e.to_string())?;
        self.record(&events)?;
        Ok(events)
    }

    /// One optimiser step and whatever the run's schedule makes due after it (snapshot,
    /// evaluation), recorded in the trace.
    pub async fn train_step(&mut self, train: &[Utterance]) -> Result<Vec<RunEvent>, String> {
        let events = self
            .run
            .step(StepBatch::Planned(train))
            .await
            .map_err(|e| e.to_string())?;
        self.record(&events)?;
        Ok(events)
    }

    /// Records `events` in the trace. Its sites were laid out by this run's own first
    /// snapshot, so every later one fits.
    fn record(&mut self, events: &[RunEvent]) -> Result<(), String> {
        for event in events {
            self.trace
                .record_event(event)
                .map_err(|e| format!("the run's trace: {e}"))?;
        }
        Ok(())
    }

    /// The current model with its units' scores, read once (one read-back) for any number of
    /// cuts.
    pub async fn scores(&self) -> Result<CutSource, String> {
        self.run
            .cut_source()
            .await
            .map_err(|e| format!("cannot read the model's scores: {e}"))
    }

    /// The model's weights alone (no gate's retention folded in, nothing cut), scored on the
    /// dev subset: before training, what the start itself scores.
    pub async fn score_unscaled(&self) -> Result<PrunePoint, String> {
        let source = self
            .run
            .trainer()
            .cut_source(true)
            .await
            .map_err(|e| format!("cannot read the model's weights: {e}"))?;
        self.score(&source, 0.0).await
    }

    /// `source` cut to meet `target` (the largest model within it), scored on the dev subset.
    pub async fn score_target(&self, source: &CutSource, target: CutTarget) -> Result<PrunePoint, String> {
        let selection = source
            .selection_for(target)
            .map_err(|e| format!("cannot cut to {target}: {e}"))?;
        let eval = self
            .run
            .score_selection(source, selection)
            .await
            .map_err(|e| format!("cannot cut to {target}: {e}"))?;
        Ok(PrunePoint {
            cut: Some(Cut::Target(target)),
            ..eval.into()
        })
    }

    /// Inference time of the dense model (the run's own architecture, gates off) against
    /// `source` cut as `cut` asks: passes over the first [`TIMED_UTTERANCES`] dev utterances in
    /// [`LabData::timed_pairs`] alternating pairs after a warm-up pass of each (medians; see
    /// [`DevTimer::paired`]). `None` for a model the magnitude method already cut: its dense
    /// self is gone.
    pub async fn time_cut(
        &self,
        source: &CutSource,
        cut: Cut,
        clock: &dyn Clock,
    ) -> Result<Option<PairedTiming>, String> {
        if source.already_cut() {
            return Ok(None);
        }
        let (_, pruned) = cut_as_asked(source, cut).map_err(|e| format!("cannot time the cut: {e}"))?;
        self.time_models(&source.model, &pruned.model, clock).await.map(Some)
    }

    /// What the dense model and `source` cut as `cut` asks hear in `samples` (mono, at
    /// `sample_rate`), through the run's front end and decoder. For a model its method already
    /// cut there is no dense model: `Heard::dense` is `None`.
    pub async fn hear(&self, source: &CutSource, cut: Cut, samples: &[f32], sample_rate: u32) -> Result<Heard, String> {
        let trainer = self.run.trainer();
        let recording = prunelab_engine::infer::recording(samples, sample_rate, &trainer.config.fbank)
            .map_err(|e| e.to_string())?;
        let (stats, decoder) = (&trainer.stats, &self.decoder);
        let (_, pruned) = cut_as_asked(source, cut).map_err(|e| format!("cannot cut the model: {e}"))?;
        let heard = if source.already_cut() {
            let heard = prunelab_engine::infer::transcribe([&pruned.model], &recording, stats, decoder).await;
            heard.map(|[pruned]| (None, pruned))
        } else {
            let heard =
                prunelab_engine::infer::transcribe([&source.model, &pruned.model], &recording, stats, decoder).await;
            heard.map(|[dense, pruned]| (Some(dense), pruned))
        };
        let (dense, pruned) = heard.map_err(|e| e.to_string())?;
        Ok(Heard {
            dense,
            pruned,
            seconds: recording.duration_seconds,
        })
    }

    /// Inference time of `dense` against `pruned` on this session's timed dev utterances,
    /// with its feature statistics (see [`LabSession::time_cut`]).
    pub async fn time_models(
        &self,
        dense: &Conformer,
        pruned: &Conformer,
        clock: &dyn Clock,
    ) -> Result<PairedTiming, String> {
        let trainer = self.run.trainer();
        let dev = &self.run.dev()[..TIMED_UTTERANCES.min(self.run.dev().len())];
        let timer = DevTimer::new(dev, &trainer.stats, trainer.config.max_batch_frames);
        timer
            .paired(dense, pruned, self.timed_pairs, clock)
            .await
            .map_err(|e| format!("cannot time the cut: {e}"))
    }

    /// `source` cut as `cut` asks, as the export `prunelab prune` writes (`manifest.json` and
    /// `model.safetensors`) in one tar archive: its file name and bytes. The files lie in a
    /// folder named like the archive; `modified` (seconds since 1970) dates them.
    pub fn export(&self, source: &CutSource, cut: Cut, modified: u64) -> Result<(String, Vec<u8>), String> {
        let (selection, pruned) = cut_as_asked(source, cut).map_err(|e| format!("cannot cut the model: {e}"))?;
        let trainer = self.run.trainer();
        if pruned.keep.len() != trainer.config.model.num_blocks {
            // The magnitude method's own cut replaced the model during training, and its plan
            // is not known (a run from a checkpoint written before the plan was kept in it):
            // an export's manifest must say which units of the dense model it keeps.
            return Err(
                "the magnitude method cut this model during training and which units of the \
                        dense model it kept is not known here, so it cannot be exported"
                    .into(),
            );
        }
        let step = self.step();
        let method = self.method().name();
        let manifest = ExportManifest::of_cut(
            format!("the lab's {method} run at step {step}"),
            source,
            selection,
            &pruned,
            &trainer.config,
            &trainer.stats,
        );
        let folder = format!("prunelab-{method}-step{step}-{}", pruned.params.total());
        let archive = export_archive(&folder, &manifest, &pruned.model, modified).map_err(|e| e.to_string())?;
        Ok((format!("{folder}.tar"), archive))
    }

    /// An inference copy of the model as it is now.
    pub fn inference_model(&self) -> Conformer {
        self.run.trainer().inference_model()
    }

    /// The method this session trains.
    pub fn method(&self) -> Method {
        self.run.trainer().config.prune.method
    }

    /// Whether the method cuts the model itself during the run (magnitude with a budget).
    pub fn cuts_itself(&self) -> bool {
        let config = &self.run.trainer().config;
        config.prune.magnitude_cut(config.steps).is_some()
    }

    /// `source` cut at slider value `knob`, scored on the dev subset.
    pub async fn score(&self, source: &CutSource, knob: f64) -> Result<PrunePoint, String> {
        let eval = self
            .run
            .score_cut(source, knob)
            .await
            .map_err(|e| format!("cannot prune at {knob:.2}: {e}"))?;
        Ok(eval.into())
    }
}

/// `source` cut as `cut` asks (at a slider value, or to a target), with the selection it was
/// cut by.
pub(crate) fn cut_as_asked(source: &CutSource, cut: Cut) -> Result<(Selection, Pruned), PlanError> {
    match cut {
        Cut::Knob(knob) => source.cut_and_selection_at(knob),
        Cut::Target(target) => {
            let selection = source.selection_for(target)?;
            Ok((selection, source.cut(selection)?))
        }
    }
}

#[cfg(test)]
mod tests {
    use prunelab_engine::readback::block_on;

    use super::*;
    use crate::settings::TIMED_PAIRS;
    use crate::test_support::{TestClock, device_rng_turn, trained_start, utterances};
    use prunelab_engine::train::TrainEvent;

    /// A lesson of `steps` steps of `method` on 3 s batches, from the trained start.
    fn short_run(method: Method, steps: usize) -> LabSettings {
        LabSettings {
            method,
            steps,
            batch_seconds: 3.0,
            ..LabSettings::default()
        }
    }

    /// The loss of the step in `events`.
    fn step_loss(events: &[RunEvent]) -> f32 {
        events
            .iter()
            .find_map(|e| match e {
                RunEvent::Trained(TrainEvent::Step { loss, .. }) => Some(*loss),
                _ => None,
            })
            .expect("a step")
    }

    /// What the lab does when the GPU is lost: the copy kept in memory carries the run on from
    /// where it was kept, exactly as the run itself would have gone on (weights, optimiser,
    /// gates, the magnitude method's cut, the distillation maps, the trace).
    #[test]
    fn a_kept_copy_carries_the_run_on_exactly_from_where_it_was_kept() {
        let _turn = device_rng_turn();
        use prunelab_engine::model::weights_fingerprint;
        let trained = trained_start();
        let (train, dev) = (utterances(6, 1), utterances(2, 2));
        let data = LabData::for_tests(&train, &dev, &trained);
        for method in [Method::AdaptiveDropout, Method::L0, Method::Magnitude] {
            let settings = short_run(method, 6);
            let mut session = LabSession::new(&settings, data, None, &Device::flex()).unwrap();
            block_on(session.begin()).unwrap();
            for _ in 0..2 {
                block_on(session.train_step(&train)).unwrap();
            }
            let kept = block_on(session.keep()).unwrap();
            assert_eq!(kept.step(), 2, "{method:?}");
            let trace_at_copy = session.trace.clone();
            let went_on = step_loss(&block_on(session.train_step(&train)).unwrap());
            let weights_after = weights_fingerprint(&session.inference_model()).unwrap();

            let mut resumed = LabSession::resume(&kept, settings.threshold, data, None, &Device::flex()).unwrap();
            assert_eq!(resumed.step(), 2, "{method:?}");
            assert_eq!(resumed.trace, trace_at_copy, "{method:?}");
            assert_ne!(
                session.trace, trace_at_copy,
                "{method:?}: the step after the copy is not in it"
            );
            let again = step_loss(&block_on(resumed.train_step(&train)).unwrap());
            assert_eq!(again, went_on, "{method:?}: the step after the copy");
            assert_eq!(
                weights_fingerprint(&resumed.inference_model()).unwrap(),
                weights_after,
                "{method:?}"
            );
            if method == Method::L0 {
                let orphan = LabData { trained: None, ..data };
                let refused = LabSession::resume(&kept, settings.threshold, orphan, None, &Device::flex());
                assert!(refused.map(drop).unwrap_err().contains("teacher"));
            }
        }
    }

    #[test]
    fn from_the_trained_start_every_method_begins_with_its_weights_and_magnitude_cuts_at_once() {
        let _turn = device_rng_turn();
        use prunelab_engine::burn::module::Module;
        use prunelab_engine::model::weights_fingerprint;
        let trained = trained_start();
        let start_model = Trainer::restore(trained.clone(), &Device::flex())
            .unwrap()
            .inference_model();
        let (start_weights, start_params) = (weights_fingerprint(&start_model).unwrap(), start_model.num_params());
        let (train, dev) = (utterances(6, 1), utterances(2, 2));
        let data = LabData::for_tests(&train, &dev, &trained);
        for method in [Method::AdaptiveDropout, Method::L0, Method::Magnitude] {
            let settings = short_run(method, 4);
            assert_eq!(settings.start, Start::Trained, "the lab starts trained by default");
            let mut session = LabSession::new(&settings, data, None, &Device::flex()).unwrap();
            let weights = weights_fingerprint(&session.run.trainer().inference_model()).unwrap();
            assert_eq!(weights, start_weights, "{method:?}");
            assert_eq!(session.run.trainer().config.distill.is_some(), method == Method::L0);
            block_on(session.begin()).unwrap();
            let first = block_on(session.train_step(&train)).unwrap();
            let cut = first.iter().any(|e| matches!(e, RunEvent::Cut { step: 1, .. }));
            assert_eq!(cut, method == Method::Magnitude, "{method:?}: {first:?}");
            let source = block_on(session.scores()).unwrap();
            let uncut = block_on(session.score(&source, 0.0)).unwrap();
            let further = block_on(session.score(&source, 0.6));
            if method == Method::Magnitude {
                // Its cut is the run's: the slider at 0 shows it, a share it already meets
                // too, and a larger share cuts it further, never bringing back a unit its cut
                // removed (shares are of the dense model, as before the cut).
                assert!(
                    uncut.params < start_params * 6 / 10,
                    "{} of {start_params}",
                    uncut.params
                );
                assert_eq!(uncut.dense_params, start_params);
                assert_eq!(block_on(session.score(&source, 0.3)).unwrap().params, uncut.params);
                let further = further.unwrap();
                let wanted = 0.4 * start_params as f64;
                assert!(
                    further.params as f64 <= wanted && further.params as f64 > 0.98 * wanted,
                    "0.6 removed: {} of {start_params}",
                    further.params
                );
                let units = |point: &PrunePoint| -> Vec<f32> {
                    point.kept_map.iter().flatten().flatten().flatten().copied().collect()
                };
                let (before, after) = (units(&uncut), units(&further));
                assert_eq!(before.len(), after.len());
                assert!(
                    before.iter().zip(&after).all(|(b, a)| *b != 0.0 || *a == 0.0),
                    "a removed unit came back"
                );
                assert!(after.iter().filter(|&&a| a == 0.0).count() > before.iter().filter(|&&b| b == 0.0).count());
                let typed = block_on(session.score_target(&source, CutTarget::Share(0.3))).unwrap();
                assert!(
                    typed.params as f64 <= 0.3 * start_params as f64,
                    "Cut to 30%: {}",
                    typed.params
                );
                let tone = vec![0.1_f32; 16_000];
                let heard = block_on(session.hear(&source, Cut::Knob(0.6), &tone, 16_000)).unwrap();
                assert_eq!(heard.dense, None, "the dense model is gone");
                let clock = TestClock::start();
                assert_eq!(
                    block_on(session.time_cut(&source, Cut::Knob(0.0), &clock)),
                    Ok(None),
                    "no dense self to time against"
                );
            } else if method == Method::L0 {
                assert!(further.unwrap().params < uncut.params, "0.6 of the parameters removed");
                let timing = block_on(session.time_cut(&source, Cut::Knob(0.6), &TestClock::start()));
                let timing = timing
                    .unwrap()
                    .expect("a gated run's cut is timed against its dense self");
                assert!(timing.dense_seconds > 0.0 && timing.pruned_seconds > 0.0 && timing.speedup > 0.0);
                assert_eq!(
                    timing.utterances,
                    dev.len().min(TIMED_UTTERANCES),
                    "the first dev utterances"
                );
                // What "Cut to" reads, the grammar of the command line's --budget: a count, a
                // share (50% or 0.5) and a FLOPs speed-up.
                let dense = source.dense_params();
                let dense_flops =
                    prunelab_engine::prune::flops_per_second(&source.config, &source.model.block_shapes());
                for typed in ["50%", "0.5", &(dense / 3).to_string(), "1.5x"] {
                    let target = CutTarget::parse(typed).unwrap();
                    let cut = block_on(session.score_target(&source, target)).unwrap();
                    let met = match target {
                        CutTarget::Share(share) => {
                            let wanted = share * dense as f64;
                            (cut.params as f64 - wanted).abs() < 0.02 * wanted && cut.params as f64 <= wanted
                        }
                        CutTarget::Parameters(count) => cut.params <= count && cut.params as f64 > 0.98 * count as f64,
                        CutTarget::Speedup(times) => dense_flops / cut.flops_per_second >= times,
                    };
                    assert!(met, "{typed}: {} parameters of {dense}", cut.params);
                }
            } else {
                // Fresh adaptive-dropout gates keep every unit (retention ≈ 0.95 > 0.6).
                assert_eq!(further.unwrap().params, uncut.params);
            }
        }
        let mismatched = LabSettings {
            preset: prunelab_engine::model::Preset::Small,
            ..LabSettings::default()
        };
        let refused = LabSession::new(&mismatched, data, None, &Device::flex()).err().unwrap();
        assert!(refused.contains("scratch"), "{refused}");
    }

    /// "Cut to 50%" before any training, the first thing a newcomer tries: the fresh gates all
    /// rank equal, so the cut keeps the units with the largest weight norms (the magnitude
    /// method's choice at that budget), and says so; once the gates have trained a step they
    /// choose again.
    /// The files of a tar archive (regular files only, as `export_archive` writes them).
    fn untar(mut archive: &[u8]) -> Vec<(String, Vec<u8>)> {
        let mut files = Vec::new();
        while archive.len() >= 512 && archive[0] != 0 {
            let field = |range: std::ops::Range<usize>| {
                String::from_utf8(archive[range].iter().take_while(|&&b| b != 0).copied().collect()).unwrap()
            };
            let size = usize::from_str_radix(&field(124..135), 8).unwrap();
            files.push((field(0..100), archive[512..512 + size].to_vec()));
            archive = &archive[512 + size.next_multiple_of(512)..];
        }
        files
    }

    /// "Download model": the cut the page shows, in the folder `prunelab prune` writes, loads
    /// as the CLI loads an export and scores what the page showed on the same utterances.
    #[test]
    fn a_downloaded_cut_loads_as_an_export_and_scores_what_the_page_showed() {
        let _turn = device_rng_turn();
        use prunelab_engine::decode::Decoder;
        use prunelab_engine::infer::evaluate;
        use prunelab_engine::store::load_export;
        let trained = trained_start();
        let (train, dev) = (utterances(4, 1), utterances(3, 2));
        let data = LabData::for_tests(&train, &dev, &trained);
        let mut session = LabSession::new(&short_run(Method::AdaptiveDropout, 2), data, None, &Device::flex()).unwrap();
        block_on(session.begin()).unwrap();
        block_on(session.train_step(&train)).unwrap();
        let source = block_on(session.scores()).unwrap();
        let point = block_on(session.score_target(&source, CutTarget::Share(0.5))).unwrap();
        let (name, archive) = session.export(&source, point.cut.unwrap(), 1_700_000_000).unwrap();
        let folder = format!("prunelab-adaptive-dropout-step1-{}", point.params);
        assert_eq!(name, format!("{folder}.tar"));
        let files = untar(&archive);
        let names: Vec<&str> = files.iter().map(|(n, _)| n.as_str()).collect();
        assert_eq!(
            names,
            [format!("{folder}/manifest.json"), format!("{folder}/model.safetensors")]
        );
        let manifest = std::str::from_utf8(&files[0].1).unwrap();
        let (manifest, model) = load_export(manifest, &files[1].1, &Device::flex(), &name).unwrap();
        assert_eq!(manifest.params.total(), point.params);
        assert_eq!(manifest.dense_params.total(), point.dense_params);
        assert_eq!(manifest.method, Method::AdaptiveDropout);
        let config = &session.run.trainer().config;
        let reports = block_on(evaluate(
            &model,
            &[],
            &dev,
            &manifest.stats,
            config.max_batch_frames,
            &[&Decoder::Greedy],
        ))
        .unwrap();
        let hypotheses: Vec<&str> = reports[0].utterances.iter().map(|u| u.hypothesis.as_str()).collect();
        let shown: Vec<&str> = point.transcripts.iter().map(|(_, _, h)| h.as_str()).collect();
        assert_eq!(hypotheses, shown, "the export hears what the page showed");
        assert_eq!(reports[0].wer(), point.greedy_wer);

        // The magnitude method's cut during training: the session that made it knows its plan,
        // so the smaller model exports; so does a run carried on from its copy (the plan travels
        // in the kept state), to the same files.
        let mut magnitude = LabSession::new(&short_run(Method::Magnitude, 2), data, None, &Device::flex()).unwrap();
        block_on(magnitude.train_step(&train)).unwrap();
        let cut = block_on(magnitude.scores()).unwrap();
        assert!(cut.already_cut());
        let (_, archive) = magnitude.export(&cut, Cut::Knob(0.0), 0).unwrap();
        let files = untar(&archive);
        let manifest = std::str::from_utf8(&files[0].1).unwrap();
        let (manifest, model) = load_export(manifest, &files[1].1, &Device::flex(), "magnitude").unwrap();
        assert_eq!(model.block_shapes(), cut.model.block_shapes());
        assert_eq!(manifest.dense_params.total(), point.dense_params);
        let kept = block_on(magnitude.keep()).unwrap();
        let carried = LabSession::resume(&kept, 0.0, data, None, &Device::flex()).unwrap();
        let copy = block_on(carried.scores()).unwrap();
        let (_, again) = carried.export(&copy, Cut::Knob(0.0), 0).unwrap();
        assert!(
            untar(&again) == untar(&archive),
            "the carried-on run exports another model"
        );
    }

    #[test]
    fn a_budget_cut_before_the_gates_learn_keeps_the_strongest_units_by_norm() {
        let _turn = device_rng_turn();
        use prunelab_engine::prune::Selection;
        let trained = trained_start();
        let (train, dev) = (utterances(4, 1), utterances(2, 2));
        let data = LabData::for_tests(&train, &dev, &trained);
        let mut session = LabSession::new(&short_run(Method::AdaptiveDropout, 2), data, None, &Device::flex()).unwrap();
        block_on(session.begin()).unwrap();
        let source = block_on(session.scores()).unwrap();
        let half = Selection::Budget(source.dense_params() / 2);
        assert!(source.chooses_by_norm(half) && !source.chooses_by_norm(Selection::Threshold(0.5)));
        let norms = block_on(session.run.trainer().cut_source(true)).unwrap();
        let indices = |plan: Vec<prunelab_engine::model::BlockKeep>| -> Vec<Vec<usize>> {
            plan.iter()
                .flat_map(|k| {
                    let heads = k.query.iter().chain(&k.value).map(|h| h.index.clone());
                    [k.ffn1.index.clone(), k.conv.index.clone(), k.ffn2.index.clone()]
                        .into_iter()
                        .chain(heads)
                })
                .collect()
        };
        assert_eq!(
            indices(source.plan(half).unwrap()),
            indices(norms.plan(half).unwrap()),
            "tied gates cut as weight norms would"
        );
        let point = block_on(session.score_target(&source, CutTarget::Share(0.5))).unwrap();
        assert!(point.chosen_by_norm, "the page is told why");
        block_on(session.train_step(&train)).unwrap();
        let learned = block_on(session.scores()).unwrap();
        assert!(
            !learned.chooses_by_norm(half),
            "one step apart, the gates rank the units themselves"
        );
    }

    /// L0's fresh gates tie too (and its own rule zeroes a few entries of each vector by
    /// position). A budget keeps the strongest units by norm, and heads whole.
    #[test]
    fn an_l0_budget_cut_before_the_gates_learn_keeps_the_strongest_units_and_whole_heads() {
        let _turn = device_rng_turn();
        use prunelab_engine::gates::SiteKind;
        use prunelab_engine::prune::Selection;
        let trained = trained_start();
        let (train, dev) = (utterances(4, 1), utterances(2, 2));
        let data = LabData::for_tests(&train, &dev, &trained);
        let mut session = LabSession::new(&short_run(Method::L0, 2), data, None, &Device::flex()).unwrap();
        block_on(session.begin()).unwrap();
        let source = block_on(session.scores()).unwrap();
        let half = Selection::Budget(source.dense_params() / 2);
        assert!(source.chooses_by_norm(half), "fresh L0 gates are ties");
        let plan = source.plan(half).unwrap();
        let per_head = source.config.d_model / source.config.num_heads;
        let split_heads = plan
            .iter()
            .flat_map(|k| &k.value)
            .filter(|head| !head.is_empty() && head.len() < per_head)
            .count();
        assert!(split_heads <= 1, "{split_heads} heads cut in pieces");
        // Over the unit sites, every unit the budget removed (not L0's own rule) is weaker,
        // by its norm over its site's mean, than every unit it kept.
        let norms = block_on(session.run.trainer().cut_source(true)).unwrap().scores;
        let (mut weakest_kept, mut strongest_removed) = (f32::INFINITY, f32::NEG_INFINITY);
        for (b, keep) in plan.iter().enumerate() {
            for (site, kept) in [
                (SiteKind::Ffn1Hidden, &keep.ffn1),
                (SiteKind::ConvInput, &keep.conv),
                (SiteKind::Ffn2Hidden, &keep.ffn2),
            ] {
                let norm = norms[b][site.index()].as_ref().unwrap();
                let own_rule = source.scores[b][site.index()].as_ref().unwrap();
                let mean = norm.iter().sum::<f32>() / norm.len() as f32;
                for u in (0..norm.len()).filter(|&u| own_rule[u] != 0.0) {
                    let relative = norm[u] / mean;
                    if kept.index.contains(&u) {
                        weakest_kept = weakest_kept.min(relative);
                    } else {
                        strongest_removed = strongest_removed.max(relative);
                    }
                }
            }
        }
        assert!(
            strongest_removed.is_finite() && strongest_removed <= weakest_kept,
            "removed up to {strongest_removed}, kept from {weakest_kept}"
        );
    }

    #[test]
    fn an_l0_session_cuts_where_the_slider_says_and_its_sweep_spans_model_sizes() {
        let _turn = device_rng_turn();
        let settings = LabSettings {
            method: Method::L0,
            steps: 20,
            batch_seconds: 4.0,
            ..LabSettings::default()
        };
        let (train, dev) = (utterances(8, 1), utterances(3, 2));
        let data = LabData {
            train: &train,
            dev: &dev,
            trained: None,
            timed_pairs: TIMED_PAIRS.1,
        };
        let settings = LabSettings {
            start: Start::Scratch,
            ..settings
        };
        let mut session = LabSession::new(&settings, data, None, &Device::flex()).unwrap();
        let first = block_on(session.begin()).unwrap();
        assert!(matches!(first[..], [RunEvent::Snapshot { step: 0, .. }]), "{first:?}");
        let stepped = block_on(session.train_step(&train)).unwrap();
        assert!(
            matches!(stepped[..], [RunEvent::Trained(_)]),
            "no snapshot or evaluation is due at step 1"
        );
        assert_eq!((session.step(), session.trace.steps.clone()), (1, vec![0]));

        let source = block_on(session.scores()).unwrap();
        // A recording at 48 kHz is heard by the dense and the cut model; a bad one is named.
        let tone: Vec<f32> = (0..48_000)
            .map(|i| 0.3 * (std::f32::consts::TAU * 300.0 * i as f32 / 48_000.0).sin())
            .collect();
        let heard = block_on(session.hear(&source, Cut::Knob(0.6), &tone, 48_000)).unwrap();
        assert!(heard.dense.is_some() && (heard.seconds - 1.0).abs() < 1e-9, "{heard:?}");
        let short = block_on(session.hear(&source, Cut::Knob(0.6), &tone[..2_000], 48_000)).unwrap_err();
        assert!(short.contains("at least 0.25 s"), "{short}");
        let params = |knob: f64| block_on(session.score(&source, knob)).unwrap().params;
        let sizes = [params(0.0), params(0.3), params(0.6)];
        assert!(sizes[0] > sizes[1] && sizes[1] > sizes[2], "{sizes:?}");
        let mut swept: Vec<usize> = source.sweep_values().into_iter().map(params).collect();
        swept.dedup();
        assert!(swept.len() >= 5, "sweep sizes {swept:?}");
    }
}
