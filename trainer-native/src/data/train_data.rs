//! What a training run reads: the whole training split in memory (the built-in corpus and small
//! trees), or a LibriSpeech index streamed from disk batch by batch.

use std::sync::Arc;

use prunelab_engine::audio::FeatureStats;
use prunelab_engine::data::{IndexEntry, LoadOptions, LoadedSplit, StreamPlan, Utterance, keep_share, load_indexed};
use prunelab_engine::model::ConvSubsampling;
use prunelab_engine::train::{TrainConfig, ctc_min_frames};

use crate::data::corpus_source::CorpusSource;
use crate::data::stream::{BatchStream, featurise_all};

/// The training split of a run.
pub enum TrainData {
    InMemory {
        utterances: Vec<Utterance>,
        /// Items skipped while loading.
        skipped: usize,
    },
    Streamed(StreamedCorpus),
}

/// A LibriSpeech training split: its indexed entries, and the stream once training starts.
pub struct StreamedCorpus {
    pub entries: Arc<Vec<IndexEntry>>,
    /// Items the index skipped.
    pub skipped: usize,
    pub workers: usize,
    stream: Option<BatchStream>,
}

impl TrainData {
    /// Loads (or indexes) the training split. `strict` fails on the first bad item.
    pub fn open(corpus: &CorpusSource, config: &TrainConfig, strict: bool, workers: usize) -> Result<Self, String> {
        if let CorpusSource::LibriSpeech { .. } = corpus {
            if config.train_share < 1.0 {
                return Err("--train-share applies to the built-in corpus and train/dev/test trees, not to a streamed LibriSpeech".into());
            }
            tell!("indexing {}", corpus.subsets("train").join(","));
            let index = corpus.index(&corpus.subsets("train"), strict)?;
            for (subset, count) in &index.per_subset {
                tell!("  {subset}: {count} utterances");
            }
            return Ok(Self::Streamed(StreamedCorpus {
                skipped: index.skipped.len(),
                entries: Arc::new(index.entries),
                workers,
                stream: None,
            }));
        }
        let perturbed = LoadOptions {
            speeds: config.speed_perturbation.clone(),
            ..LoadOptions::plain(&config.fbank, strict)
        };
        let mut train = corpus.load("train", &perturbed)?;
        train.utterances = keep_share(train.utterances, config.train_share);
        drop_infeasible(&mut train, strict)?;
        Ok(Self::InMemory {
            skipped: train.skipped.len(),
            utterances: train.utterances,
        })
    }

    /// Items left out before training started (unreadable, mislabelled, missing).
    pub fn skipped_at_load(&self) -> usize {
        match self {
            Self::InMemory { skipped, .. } => *skipped,
            Self::Streamed(s) => s.skipped,
        }
    }

    /// "1503 utts (3918 s)" for the log.
    pub fn describe(&self) -> String {
        match self {
            Self::InMemory { utterances: u, .. } => format!(
                "{} utts ({:.0} s)",
                u.len(),
                u.iter().map(|u| u.duration_seconds).sum::<f64>()
            ),
            Self::Streamed(s) => format!(
                "{} utts ({:.1} h, streamed)",
                s.entries.len(),
                s.entries.iter().map(|e| e.samples as f64).sum::<f64>() / 16_000.0 / 3600.0
            ),
        }
    }

    /// Normalisation statistics: over every training utterance in memory, or over
    /// `sample` evenly spaced utterances of a streamed corpus.
    pub fn feature_stats(&self, config: &TrainConfig, sample: usize) -> Result<FeatureStats, String> {
        let bins = config.fbank.num_bins;
        match self {
            Self::InMemory { utterances: u, .. } => {
                Ok(FeatureStats::from_features(u.iter().map(|u| u.feats.as_slice()), bins))
            }
            Self::Streamed(s) => {
                let picked = evenly_spaced(&s.entries, sample.max(1));
                tell!("feature statistics from {} training utterances", picked.len());
                let (utterances, _) = featurise_all(&picked, &config.fbank, s.workers);
                if utterances.is_empty() {
                    return Err("no training utterance could be read for the feature statistics".into());
                }
                Ok(FeatureStats::from_features(
                    utterances.iter().map(|u| u.feats.as_slice()),
                    bins,
                ))
            }
        }
    }

    /// The largest batch the run can meet: the longest utterances, played at the slowest
    /// speed, as many as fit in one batch (for
    /// [`prunelab_engine::train::Trainer::rehearse`]).
    pub fn largest_batch(&self, config: &TrainConfig) -> Vec<Utterance> {
        let slowest = config.speed_perturbation.iter().copied().fold(1.0, f64::min);
        let fits = |longest_frames: usize| (config.max_batch_frames / longest_frames.max(1)).max(1);
        match self {
            Self::InMemory { utterances, .. } => {
                let mut by_length: Vec<&Utterance> = utterances.iter().collect();
                by_length.sort_by_key(|u| std::cmp::Reverse(u.frames));
                let count = fits(by_length.first().map_or(1, |u| u.frames));
                by_length.into_iter().take(count).cloned().collect()
            }
            Self::Streamed(s) => {
                let mut by_length: Vec<&IndexEntry> = s.entries.iter().collect();
                by_length.sort_by_key(|e| std::cmp::Reverse(e.samples));
                let frames = |e: &IndexEntry| config.fbank.num_frames((e.samples as f64 / slowest).round() as usize);
                let count = fits(by_length.first().map_or(1, |e| frames(e)));
                by_length
                    .into_iter()
                    .take(count)
                    .filter_map(|e| load_indexed(e, slowest, &config.fbank).ok())
                    .collect()
            }
        }
    }

    /// Starts streaming at `first_step` (a resumed run starts where it stopped).
    pub fn start(&mut self, config: &TrainConfig, first_step: usize) {
        if let Self::Streamed(s) = self {
            let samples = s.entries.iter().map(|e| e.samples).collect();
            let plan = StreamPlan::new(
                samples,
                &config.speed_perturbation,
                &config.fbank,
                config.max_batch_frames,
                config.shape_buckets,
                config.seed,
            );
            s.stream = Some(BatchStream::start(
                s.entries.clone(),
                Arc::new(plan),
                &config.fbank,
                first_step..config.steps,
                s.workers,
                2,
            ));
        }
    }

    /// The next streamed batch, owned (in-memory runs return `None`: the trainer picks).
    pub fn next_streamed(&mut self) -> Result<Option<(usize, Vec<Utterance>, Vec<String>)>, String> {
        let Self::Streamed(s) = self else {
            return Ok(None);
        };
        let stream = s.stream.as_mut().ok_or("the stream was not started")?;
        let batch = stream
            .next_batch()
            .ok_or("the feature workers stopped before the run ended")?;
        let mut skipped: Vec<String> = batch.skipped.iter().map(ToString::to_string).collect();
        let mut utterances = batch.utterances;
        utterances.retain(|u| {
            let ok = feasible(u);
            if !ok {
                skipped.push(format!("{}: audio too short for its transcript", u.id));
            }
            ok
        });
        Ok(Some((batch.epoch, utterances, skipped)))
    }
}

/// Utterances long enough for their transcript under 4× subsampling (else CTC is infinite).
fn feasible(u: &Utterance) -> bool {
    ConvSubsampling::output_len(u.frames) >= ctc_min_frames(&u.tokens)
}

/// Every `len / count`-th item, `count` at most.
pub fn evenly_spaced<T: Clone>(items: &[T], count: usize) -> Vec<T> {
    if items.len() <= count {
        return items.to_vec();
    }
    (0..count).map(|i| items[i * items.len() / count].clone()).collect()
}

/// Drops utterances too short for their transcript under 4× subsampling (CTC would be infinite).
pub fn drop_infeasible(split: &mut LoadedSplit, strict: bool) -> Result<(), String> {
    let before = split.utterances.len();
    if strict && let Some(u) = split.utterances.iter().find(|u| !feasible(u)) {
        return Err(format!("{}: audio too short for its transcript", u.id));
    }
    split.utterances.retain(feasible);
    let dropped = before - split.utterances.len();
    if dropped > 0 {
        tell!("warning: dropped {dropped} training utterance(s) too short for their transcripts");
    }
    Ok(())
}
