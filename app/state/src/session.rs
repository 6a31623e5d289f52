//! One experiment in the page: the engine's [`Run`] (trainer and schedule), the retention
//! history its snapshots have produced, and cuts scored for the views. Plain Rust, no UI: the
//! driver calls it and copies results into signals.
//!
//! Every read-back from the device is asynchronous (a synchronous read panics on WebGPU).

use prunelab_engine::audio::FeatureStats;
use prunelab_engine::burn::prelude::Device;
use prunelab_engine::data::Utterance;
use prunelab_engine::gates::SiteKind;
use prunelab_engine::prune::{CutSource, UnitScores};
use prunelab_engine::store::Trace;
use prunelab_engine::train::{CutEval, Run, RunEvent, RunOptions, StepBatch, TrainConfig, Trainer};

use crate::settings::LabSettings;

/// One evaluated cut: the model cut at `knob` and scored on the dev subset.
#[derive(Debug, Clone, PartialEq)]
pub struct PrunePoint {
    pub step: usize,
    /// The slider value it was cut at (NaN for an opened export).
    pub knob: f64,
    pub params: usize,
    /// Multiply-adds ×2 per second of audio.
    pub flops_per_second: f64,
    pub wer: f64,
    /// `(site, kept, total)` units per site kind.
    pub kept: Vec<(SiteKind, usize, usize)>,
    /// Per unit of the dense model: its scale if kept, 0 if removed (what the heatmaps dim).
    pub kept_map: UnitScores,
    /// Per dev utterance: id, reference, hypothesis.
    pub transcripts: Vec<(String, String, String)>,
}

impl From<CutEval> for PrunePoint {
    fn from(eval: CutEval) -> Self {
        Self {
            step: eval.step,
            knob: eval.knob,
            params: eval.params,
            flops_per_second: eval.flops_per_second,
            wer: eval.report.wer(),
            kept: eval.kept,
            kept_map: eval.kept_map,
            transcripts: eval
                .report
                .utterances
                .into_iter()
                .map(|u| (u.id, u.reference, u.hypothesis))
                .collect(),
        }
    }
}

/// The training run behind the page.
pub struct LabSession {
    run: Run,
    /// Every unit's score over training (retention, or relative weight norm for ungated runs),
    /// and the run's events.
    pub trace: Trace,
}

impl LabSession {
    /// A fresh run of `settings` on `train` (feature statistics come from it), evaluated on `dev`.
    pub fn new(
        settings: &LabSettings,
        train: &[Utterance],
        dev: &[Utterance],
        device: &Device,
    ) -> Result<Self, String> {
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
        let mut run = Run::new(
            trainer,
            RunOptions {
                dev: dev.to_vec(),
                checkpoint_every: None,
            },
        );
        run.set_knob(settings.threshold);
        // Sites are laid out by the first snapshot, which knows what the method scores.
        let trace = Trace::new(description, &[]);
        Ok(Self { run, trace })
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
        self.record(&events);
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
        self.record(&events);
        Ok(events)
    }

    fn record(&mut self, events: &[RunEvent]) {
        for event in events {
            match event {
                RunEvent::Trained(trained) => self.trace.events.push(trained.clone()),
                RunEvent::Eval(eval) => self.trace.events.push(eval.train_event()),
                RunEvent::Snapshot { step, scores } => self.trace.record(*step, scores),
                RunEvent::Cut { .. } | RunEvent::CheckpointDue { .. } => {}
            }
        }
    }

    /// The current model with its units' scores, read once (one read-back) for any number of
    /// cuts.
    pub async fn scores(&self) -> Result<CutSource, String> {
        self.run
            .cut_source()
            .await
            .map_err(|e| format!("cannot read the model's scores: {e}"))
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

#[cfg(test)]
mod tests {
    use prunelab_engine::gates::Method;
    use prunelab_engine::readback::block_on;
    use prunelab_engine::rng::SplitMix64;

    use super::*;

    fn utterances(count: usize, seed: u64) -> Vec<Utterance> {
        let mut rng = SplitMix64::new(seed);
        (0..count)
            .map(|i| Utterance::random(format!("u{i}"), 150, 8, &mut rng))
            .collect()
    }

    #[test]
    fn an_l0_session_cuts_where_the_slider_says_and_its_sweep_spans_model_sizes() {
        let settings = LabSettings {
            method: Method::L0,
            steps: 20,
            batch_seconds: 4.0,
            ..LabSettings::default()
        };
        let (train, dev) = (utterances(8, 1), utterances(3, 2));
        let mut session = LabSession::new(&settings, &train, &dev, &Device::flex()).unwrap();
        let first = block_on(session.begin()).unwrap();
        assert!(matches!(first[..], [RunEvent::Snapshot { step: 0, .. }]), "{first:?}");
        let stepped = block_on(session.train_step(&train)).unwrap();
        assert!(
            matches!(stepped[..], [RunEvent::Trained(_)]),
            "no snapshot or evaluation is due at step 1"
        );
        assert_eq!((session.step(), session.trace.steps.clone()), (1, vec![0]));

        let source = block_on(session.scores()).unwrap();
        let params = |knob: f64| block_on(session.score(&source, knob)).unwrap().params;
        let sizes = [params(0.0), params(0.3), params(0.6)];
        assert!(sizes[0] > sizes[1] && sizes[1] > sizes[2], "{sizes:?}");
        let mut swept: Vec<usize> = source.sweep_values().into_iter().map(params).collect();
        swept.dedup();
        assert!(swept.len() >= 5, "sweep sizes {swept:?}");
    }
}
