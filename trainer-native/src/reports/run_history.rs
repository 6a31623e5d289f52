//! A run's `metrics.jsonl` read back: its events (for a resumed run's records) and the loss and
//! dev WER over its steps (for plots).

use std::path::Path;

use prunelab_engine::bounded_read::{limits, read_text_bounded};
use prunelab_engine::train::TrainEvent;

/// The curves of one run.
#[derive(Debug, Default, Clone, PartialEq)]
pub struct RunHistory {
    /// `(step, mean loss over the window ending there)`.
    pub loss: Vec<(f64, f64)>,
    /// `(step, dev WER %)` at each evaluation.
    pub dev_wer: Vec<(f64, f64)>,
}

/// Most steps averaged into one loss point: single-step losses swing with the batch. Short
/// runs use shorter windows, so that their curve still has about 80 points.
pub const LOSS_WINDOW: usize = 50;
const LOSS_POINTS: usize = 80;

/// Reads the curves from a run's `metrics.jsonl` (see [`read_events`]); a missing file is an
/// empty history (a run may have been copied without it).
pub fn read_history(path: &Path) -> Result<RunHistory, String> {
    if !path.exists() {
        return Ok(RunHistory::default());
    }
    Ok(history_of(&read_events(path)?))
}

/// The events of a `metrics.jsonl`. A malformed line is an error naming the file and line,
/// except a last line cut short by an interrupted write, which is left out.
fn read_events(path: &Path) -> Result<Vec<TrainEvent>, String> {
    let text = read_text_bounded(path, limits::METRICS, "metrics file").map_err(|e| e.to_string())?;
    let lines: Vec<&str> = text.lines().collect();
    let complete = text.ends_with('\n');
    let mut events = Vec::new();
    for (number, line) in lines.iter().enumerate() {
        if line.trim().is_empty() {
            continue;
        }
        match serde_json::from_str::<TrainEvent>(line) {
            Ok(event) => events.push(event),
            Err(_) if !complete && number + 1 == lines.len() => {
                tell!(
                    "warning: {}: last line is cut short (an interrupted write); left out",
                    path.display()
                );
            }
            Err(e) => return Err(format!("{}:{}: not a metrics line: {e}", path.display(), number + 1)),
        }
    }
    Ok(events)
}

/// Windowed loss means and dev evaluations from `events`.
pub fn history_of(events: &[TrainEvent]) -> RunHistory {
    let steps = events.iter().filter(|e| matches!(e, TrainEvent::Step { .. })).count();
    let window = (steps / LOSS_POINTS).clamp(1, LOSS_WINDOW);
    let mut history = RunHistory::default();
    let (mut sum, mut count) = (0.0, 0usize);
    for event in events {
        match event {
            TrainEvent::Step { step, loss, .. } => {
                sum += f64::from(*loss);
                count += 1;
                if (step + 1) % window == 0 {
                    history.loss.push(((step + 1) as f64, sum / count as f64));
                    (sum, count) = (0.0, 0);
                }
            }
            TrainEvent::Eval { step, split, wer, .. } if split == "dev" => {
                history.dev_wer.push((*step as f64, *wer));
            }
            _ => {}
        }
    }
    history
}

#[cfg(test)]
mod tests {
    use super::*;

    fn step(step: usize, loss: f32) -> TrainEvent {
        TrainEvent::Step {
            step,
            loss,
            penalty: 0.0,
            expected_sparsity: None,
            distill: None,
            lr: 1e-3,
            utterances: 4,
            audio_seconds: 10.0,
        }
    }

    #[test]
    fn loss_is_averaged_per_window_and_dev_evaluations_kept() {
        let mut events: Vec<TrainEvent> = (0..4020).map(|s| step(s, if s < 50 { 2.0 } else { 1.0 })).collect();
        events.push(TrainEvent::Eval {
            step: 100,
            split: "dev".into(),
            wer: 30.0,
            cer: 10.0,
            utterances: 48,
        });
        events.push(TrainEvent::Eval {
            step: 100,
            split: "test".into(),
            wer: 40.0,
            cer: 12.0,
            utterances: 48,
        });
        let h = history_of(&events);
        assert_eq!(h.loss.len(), 80, "the last 20 steps make no full window");
        assert_eq!(&h.loss[..2], [(50.0, 2.0), (100.0, 1.0)]);
        assert_eq!(h.dev_wer, vec![(100.0, 30.0)]);
        // A short run averages fewer steps per point.
        let short: Vec<TrainEvent> = (0..160).map(|s| step(s, 1.0)).collect();
        assert_eq!(history_of(&short).loss.len(), 80);
    }

    #[test]
    fn a_cut_short_last_line_is_left_out_and_a_bad_line_named() {
        let dir = std::env::temp_dir().join(format!("prunelab-history-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let good = serde_json::to_string(&step(0, 1.5)).unwrap();
        let path = dir.join("metrics.jsonl");
        std::fs::write(&path, format!("{good}\n{{\"event\":\"st")).unwrap();
        assert!(read_history(&path).is_ok());
        std::fs::write(&path, format!("{good}\nnot json\n{good}\n")).unwrap();
        let err = read_history(&path).unwrap_err();
        assert!(err.contains("metrics.jsonl:2: not a metrics line"), "{err}");
        assert_eq!(read_history(&dir.join("absent.jsonl")).unwrap(), RunHistory::default());
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
