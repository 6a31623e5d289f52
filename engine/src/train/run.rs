//! One training run with its whole schedule: the step, the magnitude method's cut at its step,
//! retention snapshots, evaluations and checkpoint moments, reported as [`RunEvent`]s.
//!
//! Both front doors drive a [`Run`] and react to its events; neither computes when anything is
//! due. The CLI adds progress bars, logs, the run directory, atomic writes and signals (and
//! blocks on each call with [`crate::readback::block_on`]); the lab copies events into signals
//! and yields to the browser between calls.

use super::{StepBatch, TrainError, TrainEvent, Trainer};
use crate::data::Utterance;
use crate::decode::Decoder;
use crate::gates::SiteKind;
use crate::infer::EvalReport;
use crate::prune::{CutSource, Knob, Selection, UnitScores, kept_map, prunable_sparsity};
use crate::readback::ReadBackError;

/// What a run needs besides its trainer.
#[derive(Debug, Clone, Default)]
pub struct RunOptions {
    /// Utterances scored (greedily) at each periodic evaluation.
    pub dev: Vec<Utterance>,
    /// A checkpoint is due every this many steps and at the end (`None`: never).
    pub checkpoint_every: Option<usize>,
    /// A decoder to score each evaluation with beside greedy (the lab: the CLI's default
    /// lexicon search, so the page's WER is the one `prunelab eval` reports). Greedy alone
    /// when `None`: the CLI's periodic evaluations are progress signals and stay cheap.
    pub decoder: Option<Decoder>,
}

/// Something that happened in a run, in the order it happened.
#[derive(Debug, Clone)]
pub enum RunEvent {
    /// An optimiser step finished, or was skipped (the weights untouched).
    Trained(TrainEvent),
    /// The magnitude method cut the model to its budget; training goes on with the smaller one.
    Cut {
        step: usize,
        params_before: usize,
        params_after: usize,
    },
    /// Every unit's score at `step`: learned retention, or for runs without gates each unit's
    /// weight norm relative to the strongest of its site. (None after a magnitude cut: the
    /// smaller model's units no longer line up with the dense layout.)
    Snapshot { step: usize, scores: UnitScores },
    /// The model cut at the run's knob, scored on the dev utterances.
    Eval(Box<CutEval>),
    /// Save a checkpoint now (every `checkpoint_every` steps, and at the end).
    CheckpointDue { step: usize },
}

/// A cut of the run's model, scored.
#[derive(Debug, Clone)]
pub struct CutEval {
    pub step: usize,
    /// The knob value the cut was made at (see [`crate::prune::Knob`]).
    pub knob: f64,
    pub selection: Selection,
    pub params: usize,
    pub dense_params: usize,
    /// Multiply-adds ×2 per second of audio.
    pub flops_per_second: f64,
    /// `(site, kept, total)` units per site kind.
    pub kept: Vec<(SiteKind, usize, usize)>,
    /// The share of the prunable parameters the cut removed ([`crate::prune::prunable_sparsity`],
    /// what L0's target sparsity aims at); `None` for a model the magnitude method already cut,
    /// whose units no longer count from the dense layout.
    pub prunable_sparsity: Option<f64>,
    /// Per unit of the dense model: the scale a kept unit carries, 0 for a removed one.
    pub kept_map: UnitScores,
    /// Greedy decoding of the dev utterances.
    pub report: EvalReport,
    /// The same logits decoded by [`RunOptions::decoder`], when the run has one.
    pub decoded: Option<EvalReport>,
    /// The cut chose its units by weight norm: the gates have not learned yet
    /// ([`CutSource::chooses_by_norm`]).
    pub chosen_by_norm: bool,
}

impl CutEval {
    /// The event the metrics log and the trace keep.
    pub fn train_event(&self) -> TrainEvent {
        TrainEvent::Eval {
            step: self.step,
            split: "dev".into(),
            wer: self.report.wer(),
            cer: self.report.cer(),
            utterances: self.report.utterances.len(),
        }
    }

    /// The report of the run's best decoder: [`CutEval::decoded`] when there is one, else greedy.
    pub fn best_report(&self) -> &EvalReport {
        self.decoded.as_ref().unwrap_or(&self.report)
    }

    /// Units kept and in total, over every site.
    pub fn kept_units(&self) -> (usize, usize) {
        self.kept
            .iter()
            .fold((0, 0), |(k, t), (_, kept, total)| (k + kept, t + total))
    }
}

/// A training run and its schedule.
pub struct Run {
    trainer: Trainer,
    options: RunOptions,
    /// Where evaluations cut (the method's knob; see [`Run::set_knob`]).
    knob: f64,
    /// The step of the last snapshot taken, so none is taken twice.
    last_snapshot: Option<usize>,
}

impl Run {
    /// Drives `trainer` (fresh or restored, teacher attached) with `options`. Evaluations cut
    /// at the method's own default: its run threshold for learned retention, nothing beyond
    /// the method's own rule for a share removed.
    pub fn new(trainer: Trainer, options: RunOptions) -> Self {
        let knob = Knob::of(trainer.config.prune.method).default_value(trainer.config.prune.threshold);
        Self {
            trainer,
            options,
            knob,
            last_snapshot: None,
        }
    }

    pub fn trainer(&self) -> &Trainer {
        &self.trainer
    }

    /// The trainer, for the few native jobs outside the schedule (rehearsing the largest batch).
    pub fn trainer_mut(&mut self) -> &mut Trainer {
        &mut self.trainer
    }

    pub fn into_trainer(self) -> Trainer {
        self.trainer
    }

    /// The utterances evaluations score.
    pub fn dev(&self) -> &[Utterance] {
        &self.options.dev
    }

    /// Optimiser steps taken.
    pub fn steps_done(&self) -> usize {
        self.trainer.step()
    }

    pub fn is_finished(&self) -> bool {
        self.trainer.is_finished()
    }

    pub fn knob(&self) -> f64 {
        self.knob
    }

    /// Where periodic evaluations cut from now on (the lab's slider).
    pub fn set_knob(&mut self, value: f64) {
        self.knob = value;
    }

    /// The events of the run's first moment: the snapshot of where it starts (step 0, or the
    /// step a resumed run continues from).
    pub async fn begin(&mut self) -> Result<Vec<RunEvent>, TrainError> {
        let step = self.steps_done();
        if !self.snapshot_wanted(step) {
            return Ok(Vec::new());
        }
        let source = self.cut_source().await?;
        Ok(vec![self.snapshot_of(step, &source)])
    }

    /// One step on `batch`, then whatever the schedule makes due after it, in this order: the
    /// magnitude cut, a snapshot, an evaluation, a checkpoint.
    pub async fn step(&mut self, batch: StepBatch<'_>) -> Result<Vec<RunEvent>, TrainError> {
        let trained = self.trainer.train_step(batch).await?;
        let mut events = vec![RunEvent::Trained(trained)];
        events.extend(self.magnitude_cut().await?);
        let (step, finished) = (self.steps_done(), self.is_finished());
        let config = &self.trainer.config;
        let snapshot_due = (step % config.prune.snapshot_every.max(1) == 0 || finished) && self.snapshot_wanted(step);
        let eval_due = config.eval_every > 0 && step % config.eval_every == 0 && !finished;
        if snapshot_due || eval_due {
            // One read of the scores serves both.
            let source = self.cut_source().await?;
            if snapshot_due {
                events.push(self.snapshot_of(step, &source));
            }
            if eval_due {
                events.push(RunEvent::Eval(Box::new(self.score_cut(&source, self.knob).await?)));
            }
        }
        if let Some(every) = self.options.checkpoint_every
            && (step % every.max(1) == 0 || finished)
        {
            events.push(RunEvent::CheckpointDue { step });
        }
        Ok(events)
    }

    /// The model as it stands, ready to cut (one read-back).
    pub async fn cut_source(&self) -> Result<CutSource, ReadBackError> {
        self.trainer.cut_source(false).await
    }

    /// `source` (see [`Run::cut_source`]) cut at knob `value` and scored on the dev utterances.
    /// One read of the scores serves any number of cuts (a sweep, the uncut reference).
    pub async fn score_cut(&self, source: &CutSource, value: f64) -> Result<CutEval, TrainError> {
        let cut = source.cut_and_selection_at(value);
        let selection = cut
            .as_ref()
            .map_or(source.selection_at(value), |(selection, _)| *selection);
        self.score_pruned(source, value, selection, cut.map(|(_, pruned)| pruned))
            .await
    }

    /// `source` cut by `selection` (a target's budget, see [`crate::prune::CutTarget`]) and
    /// scored on the dev utterances; `knob` is NaN, as no knob value stands for it.
    pub async fn score_selection(&self, source: &CutSource, selection: Selection) -> Result<CutEval, TrainError> {
        self.score_pruned(source, f64::NAN, selection, source.cut(selection))
            .await
    }

    async fn score_pruned(
        &self,
        source: &CutSource,
        value: f64,
        selection: Selection,
        pruned: Result<crate::prune::Pruned, crate::prune::PlanError>,
    ) -> Result<CutEval, TrainError> {
        let pruned = pruned.map_err(|e| TrainError::Cut {
            step: self.steps_done(),
            source: e,
        })?;
        let config = &self.trainer.config;
        let mut decoders = vec![&Decoder::Greedy];
        decoders.extend(&self.options.decoder);
        let scorer = config.scorer(&self.trainer.stats);
        // One forward pass per batch; every decoder reads the same logits.
        let mut scored = scorer.score_cut(&pruned, &self.options.dev, &decoders).await?;
        let decoded = (scored.reports.len() > 1).then(|| scored.reports.remove(1));
        Ok(CutEval {
            step: self.steps_done(),
            knob: value,
            selection,
            params: scored.params.total(),
            dense_params: source.dense_params(),
            flops_per_second: scored.flops_per_second,
            prunable_sparsity: (!source.already_cut()).then(|| prunable_sparsity(&config.model, &pruned.keep)),
            kept: scored.kept,
            kept_map: kept_map(&config.model, &pruned.keep),
            report: scored.reports.remove(0),
            decoded,
            chosen_by_norm: source.chooses_by_norm(selection),
        })
    }

    /// Whether a snapshot at `step` is wanted: one per step, and none once the magnitude
    /// method has cut the model (its units no longer line up with the dense layout the trace
    /// records).
    fn snapshot_wanted(&self, step: usize) -> bool {
        self.last_snapshot != Some(step) && self.trainer.config.model.block_shapes.is_none()
    }

    /// Every unit's score at `step`, from `source`.
    fn snapshot_of(&mut self, step: usize, source: &CutSource) -> RunEvent {
        self.last_snapshot = Some(step);
        RunEvent::Snapshot {
            step,
            scores: source.display_scores(),
        }
    }

    /// The magnitude method's one cut: at its step, the dense model goes down to the budget by
    /// weight norms, and training carries on with the smaller model.
    async fn magnitude_cut(&mut self) -> Result<Option<RunEvent>, TrainError> {
        let config = &self.trainer.config;
        let Some((cut_step, target)) = config.prune.magnitude_cut(config.steps) else {
            return Ok(None);
        };
        if self.steps_done() != cut_step || config.model.block_shapes.is_some() {
            return Ok(None);
        }
        let source = self.trainer.cut_source(true).await?;
        let params_before = source.dense_params();
        let pruned = source
            .selection_for(target)
            .and_then(|selection| source.cut(selection))
            .map_err(|e| TrainError::Cut {
                step: cut_step,
                source: e,
            })?;
        self.trainer.replace_model(&pruned).await?;
        Ok(Some(RunEvent::Cut {
            step: cut_step,
            params_before,
            params_after: pruned.params.total(),
        }))
    }
}
