//! Methods side by side: one [`LabSession`] per method, all from the same start with the same
//! seed, so each trains on the same batches in the same order (the batch plan depends on the
//! seed and the training split only). They train interleaved, one step each in turn, so the page
//! shows them progress together; at the end each is cut to the same share of parameters, scored
//! and timed against the same dense model, and swept for its own trade-off curve.

use prunelab_engine::burn::prelude::Device;
use prunelab_engine::data::Utterance;
use prunelab_engine::decode::Decoder;
use prunelab_engine::gates::Method;
use prunelab_engine::model::Conformer;
use prunelab_engine::prune::{CutSource, CutTarget};
use prunelab_engine::train::{Clock, RunEvent};

use crate::session::{LabData, LabSession, PrunePoint};
use crate::settings::LabSettings;

/// A comparison in progress.
pub struct Comparison {
    sessions: Vec<LabSession>,
    /// Every method is cut to this share of its parameters at the end.
    budget: CutTarget,
    /// The start's dense model, each method's cut is timed against (read at the start, before
    /// magnitude cuts its own copy).
    reference: Option<Conformer>,
}

/// What one method of a finished comparison came to.
#[derive(Debug, Clone, PartialEq)]
pub struct MethodResult {
    pub method: Method,
    /// Cut to the comparison's budget (or as the method already cut itself), scored and timed.
    pub budget: PrunePoint,
    /// The method's trade-off curve: its knob swept over model sizes. A model the method
    /// already cut (magnitude) has only its own point.
    pub sweep: Vec<PrunePoint>,
}

impl Comparison {
    /// One session per method of `settings.compare`, each with [`LabSettings::for_method`].
    pub fn new(
        settings: &LabSettings,
        data: LabData<'_>,
        decoder: Option<Decoder>,
        device: &Device,
    ) -> Result<Self, String> {
        if settings.compare.len() < 2 {
            return Err("a comparison needs at least two methods".into());
        }
        let sessions = settings
            .compare
            .iter()
            .map(|&method| {
                LabSession::new(&settings.for_method(method), data, decoder.clone(), device)
                    .map_err(|e| format!("{}: {e}", method.name()))
            })
            .collect::<Result<Vec<_>, _>>()?;
        Ok(Self {
            sessions,
            budget: CutTarget::Share(1.0 - settings.target_sparsity),
            reference: None,
        })
    }

    pub fn sessions(&self) -> &[LabSession] {
        &self.sessions
    }

    /// The share every method is cut to at the end.
    pub fn budget(&self) -> CutTarget {
        self.budget
    }

    /// Every session's first events (its snapshot at step 0), by session index, and the start
    /// scored once: by an ungated session when there is one (its weights are the start's
    /// exactly; a gated one folds its initial retention in).
    pub async fn begin(&mut self) -> Result<(Vec<(usize, Vec<RunEvent>)>, PrunePoint), String> {
        let mut first = Vec::with_capacity(self.sessions.len());
        for (i, session) in self.sessions.iter_mut().enumerate() {
            first.push((i, session.begin().await?));
        }
        let plain = self
            .sessions
            .iter()
            .position(|s| matches!(s.method(), Method::None | Method::Magnitude))
            .unwrap_or(0);
        let source = self.sessions[plain].scores().await?;
        let start = self.sessions[plain].score(&source, 0.0).await?;
        self.reference = Some(source.model);
        Ok((first, start))
    }

    /// The session to train next: the one furthest behind (the first of equals), so the
    /// methods advance together; `None` once all have finished.
    pub fn next(&self) -> Option<usize> {
        self.sessions
            .iter()
            .enumerate()
            .filter(|(_, s)| !s.is_finished())
            .min_by_key(|(_, s)| s.step())
            .map(|(i, _)| i)
    }

    pub fn is_finished(&self) -> bool {
        self.next().is_none()
    }

    /// One step of the session [`Comparison::next`] names: its index and events.
    pub async fn step(&mut self, train: &[Utterance]) -> Result<Option<(usize, Vec<RunEvent>)>, String> {
        let Some(i) = self.next() else { return Ok(None) };
        let method = self.sessions[i].method();
        let events = self.sessions[i]
            .train_step(train)
            .await
            .map_err(|e| format!("{}: {e}", method.name()))?;
        Ok(Some((i, events)))
    }

    /// Session `index` cut to the budget, scored and timed against the start (a model its
    /// method already cut is taken as it is).
    pub async fn cut_to_budget(&self, index: usize, clock: &dyn Clock) -> Result<PrunePoint, String> {
        let session = &self.sessions[index];
        let name = session.method().name();
        let source = session.scores().await?;
        let (mut point, pruned) = if source.already_cut() {
            let point = session.score(&source, 0.0).await?;
            (point, source.model.clone())
        } else {
            let point = session.score_target(&source, self.budget).await?;
            let pruned = source
                .selection_for(self.budget)
                .and_then(|s| source.cut(s))
                .map_err(|e| format!("{name}: cannot cut to {}: {e}", self.budget))?;
            (point, pruned.model)
        };
        if let Some(reference) = &self.reference {
            point.timing = Some(session.time_models(reference, &pruned, clock).await?);
        }
        Ok(point)
    }

    /// Session `index`'s trade-off curve: its knob swept over model sizes
    /// ([`CutSource::sweep_values`]); empty for a model its method already cut.
    pub async fn sweep(&self, index: usize) -> Result<Vec<PrunePoint>, String> {
        let session = &self.sessions[index];
        let source: CutSource = session.scores().await?;
        if source.already_cut() {
            return Ok(Vec::new());
        }
        let mut points = Vec::new();
        for knob in source.sweep_values() {
            points.push(session.score(&source, knob).await?);
        }
        Ok(points)
    }

    /// Session `index`'s budget cut and sweep.
    pub async fn result(&self, index: usize, clock: &dyn Clock) -> Result<MethodResult, String> {
        Ok(MethodResult {
            method: self.sessions[index].method(),
            budget: self.cut_to_budget(index, clock).await?,
            sweep: self.sweep(index).await?,
        })
    }
}

#[cfg(test)]
mod tests {
    use prunelab_engine::audio::FeatureStats;
    use prunelab_engine::readback::block_on;
    use prunelab_engine::rng::SplitMix64;
    use prunelab_engine::train::{TrainEvent, Trainer};

    use super::*;
    use crate::settings::{COMPARED_METHODS, Start};

    fn utterances(count: usize, seed: u64) -> Vec<Utterance> {
        let mut rng = SplitMix64::new(seed);
        (0..count)
            .map(|i| Utterance::random(format!("u{i}"), 120, 8, &mut rng))
            .collect()
    }

    struct TestClock(std::time::Instant);

    impl Clock for TestClock {
        fn seconds(&self) -> f64 {
            self.0.elapsed().as_secs_f64()
        }
    }

    #[test]
    fn three_methods_train_in_turn_on_the_same_batches_and_end_cut_to_one_budget() {
        let base = LabSettings {
            method: Method::None,
            ..LabSettings::default()
        };
        let config = base.train_config().unwrap();
        let stats = FeatureStats::identity(config.fbank.num_bins);
        let trained = Trainer::new(config, stats, &Device::flex())
            .state()
            .unwrap()
            .weights_only();
        let (train, dev) = (utterances(8, 1), utterances(2, 2));
        let data = LabData {
            train: &train,
            dev: &dev,
            trained: Some(&trained),
        };
        let settings = LabSettings {
            start: Start::Trained,
            compare: COMPARED_METHODS.to_vec(),
            steps: 3,
            batch_seconds: 3.0,
            ..LabSettings::default()
        };
        let mut comparison = Comparison::new(&settings, data, None, &Device::flex()).unwrap();
        let (first, start) = block_on(comparison.begin()).unwrap();
        assert_eq!(first.len(), 3);
        assert_eq!(start.params, start.dense_params, "the start is scored uncut");

        let mut order = Vec::new();
        let mut batches: Vec<Vec<(usize, f64)>> = vec![Vec::new(); 3];
        while let Some((i, events)) = block_on(comparison.step(&train)).unwrap() {
            order.push(i);
            for event in events {
                if let RunEvent::Trained(TrainEvent::Step {
                    utterances,
                    audio_seconds,
                    ..
                }) = event
                {
                    batches[i].push((utterances, audio_seconds));
                }
            }
        }
        assert_eq!(order, [0, 1, 2, 0, 1, 2, 0, 1, 2], "one step each in turn");
        assert!(comparison.is_finished());
        assert!(
            batches.iter().all(|b| b == &batches[0]),
            "the same batches: {batches:?}"
        );

        let clock = TestClock(std::time::Instant::now());
        let results: Vec<MethodResult> = (0..3)
            .map(|i| block_on(comparison.result(i, &clock)).unwrap())
            .collect();
        let half = start.dense_params as f64 * (1.0 - settings.target_sparsity);
        for result in &results {
            let share = result.budget.params as f64 / half;
            assert!(
                (0.97..=1.0).contains(&share),
                "{:?}: {} of {half}",
                result.method,
                result.budget.params
            );
            let timing = result.budget.timing.expect("timed against the start");
            assert!(timing.dense_seconds > 0.0 && timing.pruned_seconds > 0.0);
        }
        assert_eq!(results[2].method, Method::Magnitude);
        assert!(results[2].sweep.is_empty(), "magnitude already cut itself");
        for result in &results[..2] {
            let mut sizes: Vec<usize> = result.sweep.iter().map(|p| p.params).collect();
            sizes.dedup();
            assert!(sizes.len() >= 3, "{:?} sweep sizes {sizes:?}", result.method);
        }
    }
}
