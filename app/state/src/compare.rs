//! Methods side by side: one [`LabSession`] per method, all from the same start with the same
//! seed, so each trains on the same batches in the same order (the batch plan depends on the
//! seed and the training split only). They train interleaved, one step each in turn, so the page
//! shows them progress together; at the end each is cut to the same share of parameters, scored
//! and timed against the same dense model, and swept for its own trade-off curve. A method that
//! cuts its own model while training (magnitude, from the trained start) has no curve after
//! that cut; its curve is the start cut by weight norms before any training (one-shot pruning,
//! no fine-tuning), swept at the beginning.

use prunelab_engine::burn::prelude::Device;
use prunelab_engine::data::Utterance;
use prunelab_engine::decode::Decoder;
use prunelab_engine::gates::Method;
use prunelab_engine::infer::Clock;
use prunelab_engine::model::Conformer;
use prunelab_engine::prune::{CutSource, CutTarget};
use prunelab_engine::train::RunEvent;

use crate::session::{LabData, LabSession, PrunePoint, cut_as_asked};
use crate::settings::LabSettings;

/// A comparison in progress.
pub struct Comparison {
    sessions: Vec<LabSession>,
    /// Every method is cut to this share of its parameters at the end.
    budget: CutTarget,
    /// The start's dense model, each method's cut is timed against (read at the start, before
    /// magnitude cuts its own copy).
    reference: Option<Conformer>,
    /// Per session: the start swept before training, for a method that will cut its own model
    /// (its one-shot curve; empty for the others).
    one_shot: Vec<Vec<PrunePoint>>,
}

/// What one method of a finished comparison came to.
#[derive(Debug, Clone, PartialEq)]
pub struct MethodResult {
    pub method: Method,
    /// Cut to the comparison's budget (or as the method already cut itself), scored and timed.
    pub budget: PrunePoint,
    /// The method's trade-off curve: its knob swept over model sizes.
    pub sweep: Vec<PrunePoint>,
    /// The curve is the start's, swept before training: the method cut its own model while
    /// training, so the trained model has no curve of its own.
    pub one_shot: bool,
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
            one_shot: Vec::new(),
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
    /// scored once, by its weights alone (see [`LabSession::score_unscaled`]). The one-shot curve of a method
    /// that will cut its own model is swept here, before its first step; if that fails, the
    /// method has no curve and the failure is the third value.
    pub async fn begin(&mut self) -> Result<(Vec<(usize, Vec<RunEvent>)>, PrunePoint, Option<String>), String> {
        let mut first = Vec::with_capacity(self.sessions.len());
        for (i, session) in self.sessions.iter_mut().enumerate() {
            let name = session.method().name();
            let events = session.begin().await.map_err(|e| format!("{name}: {e}"))?;
            first.push((i, events));
        }
        // Every session starts from the same weights; the first's, unscaled, are the start.
        let start = self.sessions[0].score_unscaled().await?;
        self.reference = Some(self.sessions[0].inference_model());
        let mut one_shot = Vec::with_capacity(self.sessions.len());
        let mut problem = None;
        for (i, session) in self.sessions.iter().enumerate() {
            let curve = if session.cuts_itself() {
                let source = session.scores().await?;
                self.sweep_of(i, &source).await.unwrap_or_else(|e| {
                    problem = Some(format!("no one-shot curve: {e}"));
                    Vec::new()
                })
            } else {
                Vec::new()
            };
            one_shot.push(curve);
        }
        self.one_shot = one_shot;
        Ok((first, start, problem))
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

    /// Session `index` cut to the budget from `source` (its scores, read once), scored and
    /// timed against the start; a model its method already cut is taken as it is.
    async fn cut_to_budget(&self, index: usize, source: &CutSource, clock: &dyn Clock) -> Result<PrunePoint, String> {
        let session = &self.sessions[index];
        let mut point = if source.already_cut() {
            session.score(source, 0.0).await?
        } else {
            session.score_target(source, self.budget).await?
        };
        if let (Some(reference), Some(cut)) = (&self.reference, point.cut) {
            let (_, pruned) = cut_as_asked(source, cut).map_err(|e| format!("cannot cut to {}: {e}", self.budget))?;
            point.timing = Some(session.time_models(reference, &pruned.model, clock).await?);
        }
        Ok(point)
    }

    /// Session `index`'s knob swept over model sizes ([`CutSource::sweep_values`]) from
    /// `source`; empty for a model its method already cut.
    async fn sweep_of(&self, index: usize, source: &CutSource) -> Result<Vec<PrunePoint>, String> {
        if source.already_cut() {
            return Ok(Vec::new());
        }
        let mut points = Vec::new();
        for knob in source.sweep_values() {
            points.push(self.sessions[index].score(source, knob).await?);
        }
        Ok(points)
    }

    /// Session `index`'s budget cut and trade-off curve (for a model its method already cut,
    /// the one-shot curve of the start), from one read of its scores. Errors name the method.
    pub async fn result(&self, index: usize, clock: &dyn Clock) -> Result<MethodResult, String> {
        let session = &self.sessions[index];
        let method = session.method();
        let outcome = async {
            let source = session.scores().await?;
            let budget = self.cut_to_budget(index, &source, clock).await?;
            let one_shot = source.already_cut();
            let sweep = if one_shot {
                self.one_shot.get(index).cloned().unwrap_or_default()
            } else {
                self.sweep_of(index, &source).await?
            };
            Ok(MethodResult {
                method,
                budget,
                sweep,
                one_shot,
            })
        };
        outcome.await.map_err(|e: String| format!("{}: {e}", method.name()))
    }
}

#[cfg(test)]
mod tests {
    use prunelab_engine::readback::block_on;
    use prunelab_engine::train::TrainEvent;

    use super::*;
    use crate::settings::{COMPARED_METHODS, Start};
    use crate::test_support::{TestClock, device_rng_turn, trained_start, utterances};

    #[test]
    fn three_methods_train_in_turn_on_the_same_batches_and_end_cut_to_one_budget() {
        let _turn = device_rng_turn();
        let trained = trained_start();
        let (train, dev) = (utterances(8, 1), utterances(2, 2));
        let data = LabData::for_tests(&train, &dev, &trained);
        let settings = LabSettings {
            start: Start::Trained,
            compare: COMPARED_METHODS.to_vec(),
            steps: 3,
            batch_seconds: 3.0,
            ..LabSettings::default()
        };
        let mut comparison = Comparison::new(&settings, data, None, &Device::flex()).unwrap();
        let (first, start, problem) = block_on(comparison.begin()).unwrap();
        assert_eq!(problem, None);
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

        let clock = TestClock::start();
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
        assert_eq!(
            results.iter().map(|r| r.one_shot).collect::<Vec<_>>(),
            [false, false, true],
            "magnitude cut itself: its curve is the start's, swept before training"
        );
        for result in &results {
            let mut sizes: Vec<usize> = result.sweep.iter().map(|p| p.params).collect();
            sizes.sort_unstable();
            sizes.dedup();
            assert!(sizes.len() >= 5, "{:?} sweep sizes {sizes:?}", result.method);
        }
        let one_shot_sizes: Vec<usize> = results[2].sweep.iter().map(|p| p.params).collect();
        assert!(
            one_shot_sizes.iter().all(|&p| p < start.dense_params) && one_shot_sizes[0] > results[2].budget.params,
            "from the dense start down, past the trained cut: {one_shot_sizes:?}"
        );
    }

    #[test]
    fn a_method_in_a_comparison_trains_exactly_as_it_would_alone() {
        let _turn = device_rng_turn();
        use prunelab_engine::model::weights_fingerprint;
        let trained = trained_start();
        let (train, dev) = (utterances(8, 1), utterances(2, 2));
        let data = LabData::for_tests(&train, &dev, &trained);
        let settings = LabSettings {
            compare: COMPARED_METHODS.to_vec(),
            steps: 4,
            batch_seconds: 3.0,
            ..LabSettings::default()
        };
        let mut comparison = Comparison::new(&settings, data, None, &Device::flex()).unwrap();
        block_on(comparison.begin()).unwrap();
        while block_on(comparison.step(&train)).unwrap().is_some() {}
        for (i, &method) in COMPARED_METHODS.iter().enumerate() {
            let mut alone = LabSession::new(&settings.for_method(method), data, None, &Device::flex()).unwrap();
            block_on(alone.begin()).unwrap();
            while !alone.is_finished() {
                block_on(alone.train_step(&train)).unwrap();
            }
            let weights = |session: &LabSession| weights_fingerprint(&session.inference_model()).unwrap();
            assert_eq!(
                weights(&comparison.sessions()[i]),
                weights(&alone),
                "{method:?}: no randomness is shared between the compared runs"
            );
        }
    }
}
