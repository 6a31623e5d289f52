//! `prunelab`: train, evaluate, score and inspect Conformer-CTC models from the command line.

#[macro_use]
mod output;

mod atomic;
mod commands;
mod data;
mod models;
mod options;
mod progress;
mod reports;
mod run;

use clap::{Parser, Subcommand};
use prunelab_engine::kernels::{OpsPath, set_ops_path};

use commands::{bench, compare, corpus, download, eval, fbank, logits, prune, slim, sweep, train, trajectories, wer};

#[derive(Parser)]
#[command(
    name = "prunelab",
    version,
    about = "Structured pruning lab for Conformer-CTC speech recognisers"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
    /// No progress bars (they are drawn only on a terminal in any case).
    #[arg(long, global = true)]
    quiet: bool,
    /// How the model's operations run on wgpu: `fused` (kernels with hand-written backward
    /// passes) or `reference` (burn's composed operations, differentiated by burn). The CPU
    /// backend always runs the reference.
    #[arg(long, global = true, default_value_t = OpsPath::Fused)]
    ops: OpsPath,
}

#[derive(Subcommand)]
enum Command {
    /// Train a Conformer-CTC model (with no arguments: the tiny preset on the built-in corpus).
    Train(train::TrainArgs),
    /// Evaluate a checkpoint on a split: WER, CER, S/D/I and sentence error rate.
    Eval(eval::EvalArgs),
    /// Cut a checkpoint down to a physically smaller model: safetensors plus a JSON manifest.
    Prune(prune::PruneArgs),
    /// Prune a checkpoint at a grid of thresholds or budgets: params, FLOPs, RTF, dev/test WER.
    Sweep(sweep::SweepArgs),
    /// Write a finished run's checkpoint without its optimiser moments and distillation maps:
    /// a third of the size, and it still cuts, scores and teaches like the full one.
    Slim(slim::SlimArgs),
    /// Score runs of several methods and seeds side by side: size, speed, dev/test WER with
    /// paired-bootstrap 95 % intervals; Markdown, JSON and plots (SVG, PNG).
    Compare(compare::CompareArgs),
    /// Draw how the gates' retention moved during training, from runs' traces, side by side:
    /// per site kind, and each run's largest difference from the first (SVG, PNG, Markdown, JSON).
    Trajectories(trajectories::TrajectoriesArgs),
    /// Score a hypothesis transcript file against a reference file (`<utt-id> WORDS…` lines),
    /// with a bootstrap interval, optionally against a baseline's hypotheses.
    Wer(wer::WerArgs),
    /// Write the log-mel features the model sees (before normalisation) as a .npy [frames, 80].
    Fbank(fbank::FbankArgs),
    /// The model's unnormalised output for `fbank` features, as .npy files: for checking another
    /// implementation (python/prunelab_torch, ONNX Runtime) against Prunelab's own.
    Logits(logits::LogitsArgs),
    /// Regenerate the built-in corpus (`synth` speaks it with espeak-ng, `pack` bundles it),
    /// speak a larger held-out evaluation set for it (`eval-set`), or write it as a
    /// LibriSpeech tree (`fixture`).
    Corpus(corpus::CorpusArgs),
    /// Time training steps and inference per preset, with the share of time per model part.
    Bench(bench::BenchArgs),
    /// Fetch a corpus: `data download librispeech --subsets … --to ROOT` downloads, verifies
    /// and unpacks LibriSpeech for `train --librispeech ROOT`.
    Data(download::DataArgs),
}

fn main() {
    let cli = Cli::parse();
    progress::set_quiet(cli.quiet);
    set_ops_path(cli.ops);
    let result = match cli.command {
        Command::Train(args) => train::run(args, train_arguments()),
        Command::Eval(args) => eval::run(args),
        Command::Prune(args) => prune::run(args),
        Command::Sweep(args) => sweep::run(args),
        Command::Slim(args) => slim::run(args),
        Command::Compare(args) => compare::run(args),
        Command::Trajectories(args) => trajectories::run(args),
        Command::Wer(args) => wer::run(args),
        Command::Fbank(args) => fbank::run(args),
        Command::Logits(args) => logits::run(args),
        Command::Corpus(args) => corpus::run(args),
        Command::Bench(args) => bench::run(args),
        Command::Data(args) => download::run(args),
    };
    if let Err(message) = result {
        tell!("error: {message}");
        std::process::exit(1);
    }
}

/// The arguments after `train`, as the run records them: `--quiet` (global, so it may stand
/// anywhere) is a matter of display, not of the run, and is left out.
fn train_arguments() -> Vec<String> {
    std::env::args().skip(1).filter(|a| a != "--quiet").skip(1).collect()
}
