//! Everything a `prunelab train` run needs before its first step, checked before the run
//! directory is touched: the device, the corpus and decoder, the data, the trainer (fresh,
//! warm-started or resumed) with its teacher, and a rehearsal of the largest batch. Then the
//! run directory is claimed and its records opened.

use std::fs::File;
use std::io::LineWriter;
use std::path::{Path, PathBuf};
use std::time::Instant;

use prunelab_engine::bounded_read::{limits, read_bounded};
use prunelab_engine::burn::module::Module;
use prunelab_engine::burn::prelude::Device;
use prunelab_engine::data::{LoadOptions, Utterance};
use prunelab_engine::decode::Decoder;
use prunelab_engine::store::{Trace, decode_checkpoint};
use prunelab_engine::train::{TrainConfig, Trainer, TrainerState};

use super::options::{TrainArgs, config_from};
use crate::atomic::refuse_overwriting_inputs;
use crate::data::corpus_source::{CorpusSource, report_skipped};
use crate::data::stream::{default_workers, featurise_all};
use crate::data::train_data::{TrainData, evenly_spaced};
use crate::options::device::pick;
use crate::run::dir::RunDir;
use crate::run::driver::{RunRecords, new_trace};
use crate::run::tensorboard::Scalars;

/// A run ready to train; nothing in its directory has been created or deleted yet.
pub(super) struct Setup {
    pub context: RunContext,
    pub data: TrainData,
    /// The dev utterances scored at each periodic evaluation.
    pub dev: Vec<Utterance>,
    pub trainer: Trainer,
    resuming: bool,
    /// `--overwrite` replaces the run in `--out`.
    replacing: bool,
    /// `--out` holds a run (or what a run killed before its first checkpoint left).
    earlier_run_here: bool,
}

/// Where a run writes and what it reads besides its training data, from setup to the end.
pub(super) struct RunContext {
    pub run: RunDir,
    pub device_label: String,
    pub corpus: CorpusSource,
    pub decoder: Decoder,
    /// Feature extraction threads.
    pub workers: usize,
}

/// What a run appends to as it trains.
pub(super) struct Records {
    pub trace: Trace,
    pub metrics: LineWriter<File>,
    pub scalars: Scalars,
}

impl Setup {
    /// Checks and loads everything for `args` (`resuming`: from the run's latest checkpoint).
    pub fn check(args: &TrainArgs, resuming: bool) -> Result<Self, String> {
        if let Some(weights_out) = &args.weights_out {
            let inputs: Vec<&Path> = [&args.init_from, &args.prune.teacher]
                .into_iter()
                .flatten()
                .map(PathBuf::as_path)
                .collect();
            refuse_overwriting_inputs("--weights-out", weights_out, &inputs)?;
        }
        // Held before the directory is looked at, so a run being written is not taken for an
        // earlier one (and replaced) by a second `train` on it.
        let run = RunDir::at(&args.out);
        run.hold()?;
        let replacing = !resuming && RunDir::holds_run(&args.out);
        // A run killed before its first checkpoint left only run.json (and perhaps a temporary):
        // the directory is a run's all the same, and its leftovers are cleared like a resumed one's.
        let earlier_run_here = resuming || replacing || RunDir::has_invocation(&args.out);
        if replacing {
            check_replaceable(args)?;
        }
        let (device, device_label) = pick(args.device)?;
        let corpus = args.corpus.open()?;
        let decoder = args.decode.build(&corpus)?;
        let workers = args.workers.unwrap_or_else(default_workers).max(1);
        tell!("corpus {} · device {device_label}", corpus.describe());

        let restored = if resuming {
            Some(latest_state(&run, args)?)
        } else {
            None
        };
        let config = match &restored {
            Some(state) => state.config.clone(),
            None => config_from(args, device == Device::flex())?,
        };
        let teacher = read_teacher(&config)?;
        let data = TrainData::open(&corpus, &config, args.strict, workers)?;
        let dev = dev_probe(&corpus, &config, args.strict, args.dev_utterances)?;
        let mut trainer = match restored {
            Some(state) => Trainer::restore(state, &device).map_err(|e| e.to_string())?,
            None => fresh_trainer(args, config, &data, teacher.as_ref(), &device)?,
        };
        if let Some(teacher) = &teacher {
            let name = trainer
                .config
                .distill
                .as_ref()
                .map_or("", |d| d.teacher.as_str())
                .to_string();
            trainer.attach_teacher(teacher).map_err(|e| format!("{name}: {e}"))?;
        }
        tell!(
            "train {} · dev probe {} utts · preset {} · {} parameters · {} steps · batches split over {} thread(s)",
            data.describe(),
            dev.len(),
            trainer.config.preset.name(),
            trainer.inference_model().num_params(),
            trainer.config.steps,
            trainer.config.shards
        );
        rehearse_largest_batch(&mut trainer, &data);
        Ok(Self {
            context: RunContext {
                run,
                device_label,
                corpus,
                decoder,
                workers,
            },
            data,
            dev,
            trainer,
            resuming,
            replacing,
            earlier_run_here,
        })
    }

    /// Claims the run directory (clearing the run `--overwrite` replaces, saving the options
    /// of a new run for `--resume`) and opens the records: the trace and metrics up to the
    /// trainer's step, and the TensorBoard scalars.
    pub fn claim(&self, args: &TrainArgs, invocation: &[String]) -> Result<Records, String> {
        let run = &self.context.run;
        if self.replacing {
            let replaced = run.clear_earlier_run()?;
            tell!(
                "replacing the earlier run in {} ({replaced} step checkpoint(s) deleted)",
                args.out.display()
            );
        }
        run.prepare(self.earlier_run_here)?;
        if !self.resuming {
            run.save_invocation(invocation)?;
        }
        let first_step = self.trainer.step();
        run.truncate_metrics(first_step)?;
        let trace = match self.resuming {
            true => run.load_trace(first_step)?.unwrap_or_else(|| new_trace(&self.trainer)),
            false => new_trace(&self.trainer),
        };
        let metrics = open_metrics(&run.path("metrics.jsonl"), self.resuming)?;
        let gated = self.trainer.config.prune.gate_kind().is_some();
        let scalars = Scalars::start(&run.path("tensorboard"), &trace, gated)?;
        Ok(Records {
            trace,
            metrics,
            scalars,
        })
    }
}

impl Records {
    /// The loop's view of the records.
    pub fn as_run_records(&mut self) -> RunRecords<'_, LineWriter<File>> {
        RunRecords {
            metrics: &mut self.metrics,
            trace: &mut self.trace,
            scalars: &mut self.scalars,
        }
    }
}

/// The state in the run's latest checkpoint, which must be able to go on.
fn latest_state(run: &RunDir, args: &TrainArgs) -> Result<TrainerState, String> {
    let (path, state) = run.latest_checkpoint()?;
    // A slim checkpoint's optimiser moments are gone: going on would restart them, and the
    // run would no longer be the one its options describe.
    if state.optimizer.is_empty() && state.step < state.config.steps {
        return Err(format!(
            "{}: holds no optimiser state (a slim or weights-only checkpoint), so the run cannot go on from step {}",
            path.display(),
            state.step
        ));
    }
    tell!(
        "resuming {} from {} (step {})",
        args.out.display(),
        path.display(),
        state.step
    );
    Ok(state)
}

/// A fresh run may replace the one in --out only when asked to, and only if what it reads
/// does not live in what it would delete.
fn check_replaceable(args: &TrainArgs) -> Result<(), String> {
    if !args.overwrite {
        return Err(format!(
            "{} holds an earlier run; continue it with --resume {0}, or pass --overwrite to replace it",
            args.out.display()
        ));
    }
    let out = std::fs::canonicalize(&args.out).map_err(|e| format!("{}: {e}", args.out.display()))?;
    for (flag, path) in [("--init-from", &args.init_from), ("--teacher", &args.prune.teacher)] {
        if let Some(path) = path
            && std::fs::canonicalize(path).is_ok_and(|p| p.starts_with(&out))
        {
            return Err(format!(
                "{flag} {} is inside the run --overwrite would delete; copy it elsewhere first",
                path.display()
            ));
        }
    }
    let scalars = args.out.join("tensorboard");
    if scalars.exists() && !scalars.is_dir() {
        return Err(format!(
            "{}: is not a directory; a run writes its scalars there",
            scalars.display()
        ));
    }
    Ok(())
}

/// The teacher checkpoint named in the config (distillation runs only).
fn read_teacher(config: &TrainConfig) -> Result<Option<TrainerState>, String> {
    let Some(distill) = &config.distill else {
        return Ok(None);
    };
    read_state(Path::new(&distill.teacher), "teacher").map(Some)
}

/// A checkpoint (full or weights only) read for `role` ("teacher", "start").
fn read_state(path: &Path, role: &str) -> Result<TrainerState, String> {
    let name = path.display().to_string();
    let bytes = read_bounded(path, limits::CHECKPOINT, "checkpoint").map_err(|e| format!("{e} (the {role})"))?;
    decode_checkpoint(&bytes, &name).map_err(|e| e.to_string())
}

/// A new run's trainer: from random weights, or from the trained model of `--init-from`.
fn fresh_trainer(
    args: &TrainArgs,
    config: TrainConfig,
    data: &TrainData,
    teacher: Option<&TrainerState>,
    device: &Device,
) -> Result<Trainer, String> {
    let trainer = match &args.init_from {
        Some(path) => {
            let start = read_state(path, "start")?;
            Trainer::warm_start(config, &start, device).map_err(|e| format!("{}: {e}", path.display()))?
        }
        None => {
            let stats = data.feature_stats(&config, args.stats_utterances)?;
            Trainer::new(config, stats, device)
        }
    };
    if teacher.is_some_and(|t| t.stats != trainer.stats) {
        return Err("the teacher was trained with other feature statistics (another corpus?)".into());
    }
    Ok(trainer)
}

/// One forward and backward pass on the largest batch before the first step, so a batch budget
/// too large for the device fails now, not hours into the run.
fn rehearse_largest_batch(trainer: &mut Trainer, data: &TrainData) {
    let largest = data.largest_batch(&trainer.config);
    let refs: Vec<&Utterance> = largest.iter().collect();
    let padded = refs.len() * refs.iter().map(|u| u.frames).max().unwrap_or(0);
    let started = Instant::now();
    trainer.rehearse(&refs);
    tell!(
        "rehearsed the largest batch ({} utts, {:.0} s padded) in {:.1} s",
        refs.len(),
        padded as f64 / trainer.config.fbank.frames_per_second(),
        started.elapsed().as_secs_f64()
    );
}

/// The dev utterances scored at each periodic evaluation: the whole dev split of a small corpus,
/// `count` evenly spaced ones of LibriSpeech's.
fn dev_probe(
    corpus: &CorpusSource,
    config: &TrainConfig,
    strict: bool,
    count: usize,
) -> Result<Vec<Utterance>, String> {
    let plain = LoadOptions::plain(&config.fbank, strict);
    if !matches!(corpus, CorpusSource::LibriSpeech { .. }) {
        return Ok(corpus.load("dev", &plain)?.utterances);
    }
    let index = corpus.index(&corpus.subsets("dev"), strict)?;
    let picked = evenly_spaced(&index.entries, count.max(1));
    let (utterances, skipped) = featurise_all(&picked, &config.fbank, default_workers());
    report_skipped(&skipped, "the dev probe");
    if utterances.is_empty() {
        return Err("no dev utterance could be read".into());
    }
    Ok(utterances)
}

fn open_metrics(path: &Path, append: bool) -> Result<std::io::LineWriter<std::fs::File>, String> {
    let file = std::fs::OpenOptions::new()
        .create(true)
        .append(append)
        .write(true)
        .truncate(!append)
        .open(path)
        .map_err(|e| format!("{}: cannot open: {e}", path.display()))?;
    Ok(std::io::LineWriter::new(file))
}
