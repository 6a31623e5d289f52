//! One experiment in the page: the engine's trainer, the retention history it has produced,
//! and the pruning evaluations the views draw. Plain Rust, no UI: the driver calls it and
//! copies results into signals.
//!
//! Every read-back from the device is asynchronous (a synchronous read panics on WebGPU).

use prunelab_engine::audio::FeatureStats;
use prunelab_engine::burn::prelude::Device;
use prunelab_engine::data::Utterance;
use prunelab_engine::decode::Decoder;
use prunelab_engine::gates::{Method, PerSite, SiteKind};
use prunelab_engine::model::Conformer;
use prunelab_engine::prune::{ScoreKind, Selection, kept_per_site, magnitude_scores_async, prune_model};
use prunelab_engine::store::Trace;
use prunelab_engine::train::{EvalReport, TrainConfig, TrainEvent, Trainer, evaluate_decoders_async};

use crate::settings::LabSettings;

/// Record the heatmaps every this many steps.
pub const SNAPSHOT_EVERY: usize = 5;

/// One evaluated pruning point: the model cut at `threshold` and scored on the dev subset.
#[derive(Debug, Clone, PartialEq)]
pub struct PrunePoint {
    pub step: usize,
    pub threshold: f64,
    pub params: usize,
    /// Multiply-adds ×2 per second of audio.
    pub flops_per_second: f64,
    pub wer: f64,
    /// `(site, kept, total)` units per site kind.
    pub kept: Vec<(SiteKind, usize, usize)>,
    /// Per dev utterance: id, reference, hypothesis.
    pub transcripts: Vec<(String, String, String)>,
}

/// The training run behind the page.
pub struct LabSession {
    trainer: Trainer,
    /// Retention (or, for ungated runs, relative weight norm) of every unit over training.
    pub trace: Trace,
}

impl LabSession {
    /// A fresh run of `settings` on `train` (feature statistics come from it).
    pub fn new(settings: &LabSettings, train: &[Utterance], device: &Device) -> Result<Self, String> {
        if train.is_empty() {
            return Err("the corpus has no training utterances".into());
        }
        let config: TrainConfig = settings.train_config()?;
        let stats = FeatureStats::from_features(train.iter().map(|u| u.feats.as_slice()), config.fbank.num_bins);
        let description = format!(
            "{} · {} · seed {} · in the browser",
            config.prune.method.name(),
            config.preset.name(),
            config.seed
        );
        let trainer = Trainer::new(config, stats, device);
        // Sites are filled in by the first snapshot, which knows what the method scores.
        let trace = Trace::new(description, &[]);
        Ok(Self { trainer, trace })
    }

    pub fn step(&self) -> usize {
        self.trainer.step()
    }

    pub fn is_finished(&self) -> bool {
        self.trainer.is_finished()
    }

    /// One optimiser step; the event is also appended to the trace.
    pub async fn train_step(&mut self, train: &[Utterance]) -> Result<TrainEvent, String> {
        let event = self.trainer.train_step_async(train).await?;
        self.trace.events.push(event.clone());
        Ok(event)
    }

    /// Records every unit's score at the current step (once per step).
    pub async fn snapshot(&mut self) -> Result<(), String> {
        if self.trace.steps.last() == Some(&self.step()) {
            return Ok(());
        }
        let scores = self.unit_scores().await?;
        if self.trace.steps.is_empty() {
            let events = std::mem::take(&mut self.trace.events);
            self.trace = Trace::shaped_like(std::mem::take(&mut self.trace.description), &scores);
            self.trace.events = events;
        }
        self.trace.record(self.step(), &scores);
        Ok(())
    }

    /// What the heatmaps show: retention for gated runs; for ungated runs each unit's weight
    /// norm divided by the largest in its site, so the colours still say "weak" and "strong".
    async fn unit_scores(&self) -> Result<Vec<PerSite<Vec<f32>>>, String> {
        let config = &self.trainer.config;
        if let Some(gates) = self.trainer.inference_gates() {
            return Ok(gates.snapshot_async().await?.retention(&config.prune));
        }
        let mut scores = magnitude_scores_async(&self.trainer.inference_model(), &config.prune.sites).await?;
        for site in scores.iter_mut().flatten().flatten() {
            let max = site.iter().copied().fold(f32::MIN_POSITIVE, f32::max);
            site.iter_mut().for_each(|x| *x /= max);
        }
        Ok(scores)
    }

    /// Cuts the current model at `threshold` (a retention threshold for gated runs; for ungated
    /// runs the fraction of parameters to remove, lowest weight norms first) and scores it on `dev`.
    pub async fn prune_and_score(&self, threshold: f64, dev: &[Utterance]) -> Result<PrunePoint, String> {
        let config = &self.trainer.config;
        let model = self.trainer.inference_model();
        let (scores, modules, kind, selection) = match self.trainer.inference_gates() {
            Some(gates) => {
                let scores = gates.snapshot_async().await?.pruning_scores(&config.prune);
                let selection = if config.prune.method == Method::L0 {
                    // L0's deterministic gates already say what goes; the slider does not apply.
                    Selection::Threshold(0.0)
                } else {
                    Selection::Threshold(threshold)
                };
                (scores.units, scores.modules, ScoreKind::Retention, selection)
            }
            None => {
                let scores = magnitude_scores_async(&model, &config.prune.sites).await?;
                (
                    scores,
                    Vec::new(),
                    ScoreKind::Magnitude,
                    magnitude_selection(&model, config, threshold),
                )
            }
        };
        let pruned = prune_model(&model, &config.model, &scores, &modules, kind, selection)
            .map_err(|e| format!("cannot prune at {threshold:.2}: {e}"))?;
        let report = self.score(&pruned.model, dev).await?;
        Ok(PrunePoint {
            step: self.step(),
            threshold,
            params: pruned.params.total(),
            flops_per_second: pruned.flops_per_second,
            wer: report.wer(),
            kept: kept_per_site(&config.model, &pruned.keep),
            transcripts: report
                .utterances
                .into_iter()
                .map(|u| (u.id, u.reference, u.hypothesis))
                .collect(),
        })
    }

    /// Thresholds for a sweep: for gated runs the deciles of the current retention scores, so
    /// the points span small to large models however far training has moved the gates (a fixed
    /// grid gives nine identical points early on, when every retention is near 0.95); for
    /// ungated runs the fractions 0.1 … 0.9.
    pub async fn sweep_thresholds(&self) -> Result<Vec<f64>, String> {
        let deciles = (1..10).map(|i| f64::from(i) / 10.0);
        let Some(gates) = self.trainer.inference_gates() else {
            return Ok(deciles.collect());
        };
        let scores = gates.snapshot_async().await?.pruning_scores(&self.trainer.config.prune);
        let mut all: Vec<f32> = scores.units.into_iter().flatten().flatten().flatten().collect();
        all.sort_by(f32::total_cmp);
        let mut thresholds: Vec<f64> = deciles
            .filter_map(|q| all.get((q * all.len() as f64) as usize).map(|&s| f64::from(s)))
            .collect();
        thresholds.dedup();
        Ok(thresholds)
    }

    /// Greedy-decodes `dev` with `model` (asynchronous read-backs).
    async fn score(&self, model: &Conformer, dev: &[Utterance]) -> Result<EvalReport, String> {
        let frames = self.trainer.config.max_batch_frames;
        let mut reports =
            evaluate_decoders_async(model, &[], dev, &self.trainer.stats, frames, &[&Decoder::Greedy]).await?;
        reports.pop().ok_or_else(|| "evaluation returned nothing".to_string())
    }
}

/// For ungated runs, `fraction` of the parameters goes (lowest weight norms first), never so
/// much that a plan cannot be made: the budget stays above what the model keeps unprunable.
fn magnitude_selection(model: &Conformer, config: &TrainConfig, fraction: f64) -> Selection {
    use prunelab_engine::burn::module::Module;
    let dense = model.num_params();
    if fraction <= 0.0 {
        return Selection::Threshold(0.0);
    }
    let floor = prunelab_engine::prune::param_count(&config.model, &[]).total();
    let budget = ((dense as f64) * (1.0 - fraction)).round() as usize;
    Selection::Budget(budget.clamp(floor + 1, dense - 1))
}
