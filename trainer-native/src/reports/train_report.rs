//! The end of a training run: every dev and test subset scored with the chosen decoder (and
//! greedily), per-utterance hypotheses written, and the numbers for `summary.json`.

use prunelab_engine::data::LoadOptions;
use prunelab_engine::decode::Decoder;
use prunelab_engine::infer::{EvalReport, evaluate, summarise};
use prunelab_engine::readback::block_on;
use prunelab_engine::train::Trainer;
use serde_json::{Value, json};

use crate::data::corpus_source::{CorpusSource, report_skipped};
use crate::data::eval_stream::{Scorer, write_hypotheses};
use crate::reports::wer_table::print_subset_table;
use crate::run::dir::RunDir;

/// One scored subset.
pub struct SubsetScore {
    /// `dev`/`test` for small corpora, the subset's directory name for LibriSpeech.
    pub name: String,
    /// Which split it belongs to.
    pub split: &'static str,
    pub report: EvalReport,
    pub greedy: EvalReport,
    pub skipped_items: usize,
}

pub struct FinalScores {
    pub subsets: Vec<SubsetScore>,
}

impl FinalScores {
    /// Scores dev and test: in memory for small corpora, streamed subset by subset for
    /// LibriSpeech.
    pub fn compute(
        trainer: &Trainer,
        corpus: &CorpusSource,
        decoder: &Decoder,
        strict: bool,
        workers: usize,
    ) -> Result<Self, String> {
        let model = trainer.inference_model();
        let masks = block_on(trainer.inference_masks(trainer.config.prune.threshold)).map_err(|e| e.to_string())?;
        let config = &trainer.config;
        let decoders = [decoder, &Decoder::Greedy];
        let mut subsets = Vec::new();
        for split in ["dev", "test"] {
            if !matches!(corpus, CorpusSource::LibriSpeech { .. }) {
                let loaded = corpus.load(split, &LoadOptions::plain(&config.fbank, strict))?;
                let [report, greedy] = two(block_on(evaluate(
                    &model,
                    &masks,
                    &loaded.utterances,
                    &trainer.stats,
                    config.max_batch_frames,
                    &decoders,
                ))
                .map_err(|e| e.to_string())?);
                subsets.push(SubsetScore {
                    name: split.to_string(),
                    split,
                    report,
                    greedy,
                    skipped_items: loaded.skipped.len(),
                });
                continue;
            }
            for subset in corpus.subsets(split) {
                let index = corpus.index(std::slice::from_ref(&subset), strict)?;
                tell!("scoring {subset} ({} utterances)", index.entries.len());
                let scorer = Scorer {
                    model: &model,
                    masks: &masks,
                    stats: &trainer.stats,
                    fbank: &config.fbank,
                    max_batch_frames: config.max_batch_frames,
                    workers,
                };
                let (reports, skipped) = scorer.score(&index.entries, &decoders, strict, |_| {})?;
                report_skipped(&skipped, &subset);
                let [report, greedy] = two(reports);
                subsets.push(SubsetScore {
                    name: subset,
                    split,
                    report,
                    greedy,
                    skipped_items: index.skipped.len() + skipped.len(),
                });
            }
        }
        Ok(Self { subsets })
    }

    /// The subsets of `split` pooled into one report.
    fn pooled(&self, split: &str, greedy: bool) -> EvalReport {
        summarise(
            self.subsets
                .iter()
                .filter(|s| s.split == split)
                .flat_map(|s| if greedy { &s.greedy } else { &s.report }.utterances.clone())
                .collect(),
        )
    }

    pub fn skipped_items(&self) -> usize {
        self.subsets.iter().map(|s| s.skipped_items).sum()
    }

    /// `hyp-<subset>.txt`: `<utt-id> HYPOTHESIS` per line, as `prunelab wer` reads.
    pub fn write_hypotheses(&self, run: &RunDir) -> Result<(), String> {
        for subset in &self.subsets {
            write_hypotheses(&run.path(&format!("hyp-{}.txt", subset.name)), &subset.report)?;
        }
        Ok(())
    }

    /// `base` plus dev/test (pooled), greedy scores, and one entry per subset.
    pub fn summary(&self, mut base: Value) -> Value {
        let score = |r: &EvalReport| json!({ "wer": r.wer(), "cer": r.cer(), "ser": r.ser(), "words": r.words });
        let (dev, test) = (self.pooled("dev", false), self.pooled("test", false));
        base["dev"] = score(&dev);
        base["test"] = score(&test);
        base["greedy"] = json!({
            "dev": score(&self.pooled("dev", true)),
            "test": score(&self.pooled("test", true)),
        });
        base["subsets"] = self
            .subsets
            .iter()
            .map(|s| (s.name.clone(), score(&s.report)))
            .collect::<serde_json::Map<_, _>>()
            .into();
        base
    }

    pub fn print(&self) -> Result<(), String> {
        let rows: Vec<(&str, &EvalReport)> = self.subsets.iter().map(|s| (s.name.as_str(), &s.report)).collect();
        print_subset_table(&rows)?;
        let greedy: Vec<String> = self
            .subsets
            .iter()
            .map(|s| format!("{} {:.2}%", s.name, s.greedy.wer()))
            .collect();
        say!("greedy WER: {}", greedy.join(", "));
        Ok(())
    }
}

fn two(reports: Vec<EvalReport>) -> [EvalReport; 2] {
    reports
        .try_into()
        .unwrap_or_else(|_| unreachable!("one report per decoder"))
}
