//! A run's trace written as its events arrive: the one recorder both front doors use (the
//! command line writes the trace file as it grows, the lab keeps it in memory).

use super::Trace;
use crate::train::{RunEvent, TrainConfig};

/// What recording one event added to a trace.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Recorded {
    /// Nothing the trace keeps: a magnitude cut, a checkpoint falling due, or a snapshot at a
    /// step the trace already holds (a resumed run starts where its trace ends).
    Nothing,
    /// A training step or an evaluation, appended to the trace's events.
    Event,
    /// Every unit's score at one step: the trace's snapshot number `row`.
    Snapshot { row: usize },
}

/// A snapshot whose sites differ from the trace's: the trace belongs to another model.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("its sites do not match this run's model (a trace from another run?)")]
pub struct TraceMismatch;

impl Trace {
    /// An empty trace for a run of `config`, described for whoever opens it (method, preset,
    /// seed, steps, then `origin`: where and from what it trained). Its sites are laid out by
    /// the first snapshot, which knows what the method scores.
    pub fn for_run(config: &TrainConfig, origin: &str) -> Self {
        let description = format!(
            "{} · {} · seed {} · {} steps · {origin}",
            config.prune.method.name(),
            config.preset.name(),
            config.seed,
            config.steps
        );
        Self::new(description, &[])
    }

    /// Records what `event` says into the trace: training steps and evaluations as events,
    /// snapshots as rows of scores.
    pub fn record_event(&mut self, event: &RunEvent) -> Result<Recorded, TraceMismatch> {
        match event {
            RunEvent::Trained(trained) => {
                self.events.push(trained.clone());
                Ok(Recorded::Event)
            }
            RunEvent::Eval(eval) => {
                self.events.push(eval.train_event());
                Ok(Recorded::Event)
            }
            RunEvent::Snapshot { step, scores } => {
                if !self.fits(scores) {
                    return Err(TraceMismatch);
                }
                let row = self.steps.len();
                self.record(*step, scores);
                Ok(if self.steps.len() > row {
                    Recorded::Snapshot { row }
                } else {
                    Recorded::Nothing
                })
            }
            RunEvent::Cut { .. } | RunEvent::CheckpointDue { .. } => Ok(Recorded::Nothing),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::train::TrainEvent;

    #[test]
    fn steps_become_events_snapshots_rows_and_a_foreign_snapshot_is_refused() {
        let mut trace = Trace::new("test".into(), &[]);
        let scores = |x: f32| vec![[Some(vec![x; 3]), None, Some(vec![0.5; 2]), None, None]; 2];
        let snapshot = |step, x| RunEvent::Snapshot {
            step,
            scores: scores(x),
        };
        assert_eq!(trace.record_event(&snapshot(0, 0.9)), Ok(Recorded::Snapshot { row: 0 }));
        assert_eq!(
            trace.record_event(&snapshot(0, 0.1)),
            Ok(Recorded::Nothing),
            "a step already held"
        );
        let skipped = RunEvent::Trained(TrainEvent::SkippedStep { step: 0 });
        assert_eq!(trace.record_event(&skipped), Ok(Recorded::Event));
        let cut = RunEvent::Cut {
            step: 1,
            params_before: 10,
            params_after: 5,
        };
        assert_eq!(trace.record_event(&cut), Ok(Recorded::Nothing));
        assert_eq!(
            trace.record_event(&RunEvent::CheckpointDue { step: 1 }),
            Ok(Recorded::Nothing)
        );
        assert_eq!(trace.record_event(&snapshot(1, 0.2)), Ok(Recorded::Snapshot { row: 1 }));
        let before = trace.clone();
        let foreign = RunEvent::Snapshot {
            step: 2,
            scores: vec![[Some(vec![0.5; 4]), None, None, None, None]],
        };
        assert_eq!(trace.record_event(&foreign), Err(TraceMismatch));
        assert_eq!(trace, before, "a refused snapshot leaves the trace as it was");
        assert_eq!(
            (trace.steps, trace.events),
            (vec![0, 1], vec![TrainEvent::SkippedStep { step: 0 }])
        );
    }
}
