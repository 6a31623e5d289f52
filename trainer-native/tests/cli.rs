//! The `prunelab` binary end to end: bad input gives clear errors naming the file, training
//! over a corpus with bad files skips and counts them (or fails with `--strict`), and the corpus
//! generator is reproducible.

mod common;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use common::{scratch, stderr, write_wav};

fn prunelab(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_prunelab"))
        .args(args)
        .output()
        .expect("prunelab runs")
}

fn stdout(output: &Output) -> String {
    String::from_utf8_lossy(&output.stdout).into_owned()
}

/// Asserts that a command failed and said `message` on stderr.
fn assert_fails_with(output: &Output, message: &str) {
    assert!(!output.status.success(), "expected a failure mentioning {message:?}");
    assert!(stderr(output).contains(message), "{}", stderr(output));
}

/// What `prunelab ARGS --help` prints, checked to be a usage.
fn help_of(args: &[String]) -> String {
    let mut args: Vec<&str> = args.iter().map(String::as_str).collect();
    args.push("--help");
    let out = prunelab(&args);
    assert!(out.status.success(), "prunelab {} failed", args.join(" "));
    let help = stdout(&out);
    assert!(help.contains("Usage"), "prunelab {} printed no usage", args.join(" "));
    help
}

/// The subcommands a help text lists in its "Commands:" section (clap's own `help` left out).
fn subcommands_in(help: &str) -> Vec<String> {
    help.lines()
        .skip_while(|line| line.trim() != "Commands:")
        .skip(1)
        .take_while(|line| !line.trim().is_empty())
        .filter_map(|line| line.split_whitespace().next())
        .filter(|name| *name != "help")
        .map(str::to_string)
        .collect()
}

/// Every subcommand the binary has, nested ones included, answers `--help` with a usage. The
/// list comes from the binary itself, so a new subcommand cannot be left out.
#[test]
fn every_subcommand_has_help() {
    let top = subcommands_in(&help_of(&[]));
    // Had the help format changed, the list would come back empty or short and the walk below
    // would prove nothing.
    for known in [
        "train", "eval", "prune", "sweep", "slim", "wer", "fbank", "corpus", "bench", "compare", "logits", "data",
    ] {
        assert!(
            top.iter().any(|s| s == known),
            "`prunelab --help` does not list {known}: {top:?}"
        );
    }
    let mut pending: Vec<Vec<String>> = top.into_iter().map(|s| vec![s]).collect();
    let mut answered = 0;
    while let Some(path) = pending.pop() {
        let nested = subcommands_in(&help_of(&path));
        pending.extend(nested.into_iter().map(|s| [path.clone(), vec![s]].concat()));
        answered += 1;
    }
    // `corpus` and `data` have subcommands of their own.
    assert!(answered > 12, "only {answered} subcommands answered --help");
}

#[test]
fn out_of_range_shards_gate_and_language_model_settings_are_refused_by_name() {
    let out = prunelab(&["train", "--shards", "0", "--out", "/nonexistent/never-written"]);
    assert_fails_with(&out, "--shards");
    let out = prunelab(&[
        "train",
        "--method",
        "adaptive-dropout",
        "--target-end",
        "-50",
        "--out",
        "/nonexistent/never-written",
    ]);
    assert_fails_with(&out, "target end -50 must be in [-20, 20]");
    let out = prunelab(&[
        "train",
        "--method",
        "adaptive-dropout",
        "--strength-fade-from",
        "1.5",
        "--out",
        "/nonexistent/never-written",
    ]);
    assert_fails_with(&out, "strength fade start 1.5 must be in [0, 1]");
    let out = prunelab(&["train", "--train-share", "0", "--out", "/nonexistent/never-written"]);
    assert_fails_with(&out, "train_share 0 must be in (0, 1]");
    let unreachable = [
        "--method",
        "magnitude",
        "--budget",
        "1000x",
        "--out",
        "/nonexistent/never-written",
    ];
    let out = prunelab(&[&["train"], &unreachable[..]].concat());
    assert_fails_with(&out, "--budget: cannot cut to 1000× fewer FLOPs: no cut reaches");
    let out = prunelab(&["eval", "--checkpoint", "x.plc", "--lm-class-share", "1.5"]);
    assert_fails_with(&out, "not a share between 0 and 1");
    let out = prunelab(&["eval", "--checkpoint", "x.plc", "--lm-classes", "0"]);
    assert_fails_with(&out, "not a number of word classes between 1 and 1000");
}

#[test]
fn garbage_and_missing_checkpoints_are_named_in_the_error() {
    let dir = scratch("ckpt");
    let junk = dir.join("junk.plc");
    std::fs::write(&junk, b"this is not a checkpoint at all").unwrap();
    let out = prunelab(&["eval", "--checkpoint", junk.to_str().unwrap(), "--device", "cpu"]);
    assert!(!out.status.success());
    assert!(
        stderr(&out).contains("junk.plc: not a Prunelab checkpoint"),
        "{}",
        stderr(&out)
    );

    let out = prunelab(&["eval", "--checkpoint", dir.join("absent.plc").to_str().unwrap()]);
    assert!(!out.status.success());
    assert!(stderr(&out).contains("absent.plc: cannot read"), "{}", stderr(&out));
}

#[test]
fn fbank_rejects_truncated_flac_and_stereo_wav_by_name() {
    let dir = scratch("fbank");
    let stereo = dir.join("stereo.wav");
    write_wav(&stereo, 16_000, 2, 0.5);
    let out = prunelab(&[
        "fbank",
        stereo.to_str().unwrap(),
        "--out",
        dir.join("s.npy").to_str().unwrap(),
    ]);
    assert!(!out.status.success());
    assert!(
        stderr(&out).contains("stereo.wav: 2 channels; only mono"),
        "{}",
        stderr(&out)
    );

    let flac = Path::new(env!("CARGO_MANIFEST_DIR")).join("../tests/data/tone.flac");
    let bytes = std::fs::read(&flac).unwrap();
    let truncated = dir.join("truncated.flac");
    std::fs::write(&truncated, &bytes[..bytes.len() * 2 / 3]).unwrap();
    let out = prunelab(&[
        "fbank",
        truncated.to_str().unwrap(),
        "--out",
        dir.join("t.npy").to_str().unwrap(),
    ]);
    assert!(!out.status.success());
    assert!(
        stderr(&out).contains("truncated.flac: truncated FLAC"),
        "{}",
        stderr(&out)
    );

    let ok = prunelab(&[
        "fbank",
        flac.to_str().unwrap(),
        "--out",
        dir.join("ok.npy").to_str().unwrap(),
    ]);
    assert!(ok.status.success(), "{}", stderr(&ok));
}

#[test]
fn wer_reports_utterances_missing_on_either_side() {
    let dir = scratch("wer");
    let (reference, hypothesis) = (dir.join("ref.txt"), dir.join("hyp.txt"));
    std::fs::write(&reference, "a THE CAT SAT\nb HELLO WORLD\nc ONLY IN REF\n").unwrap();
    std::fs::write(&hypothesis, "a THE BAT SAT\nb HELLO WORLD\nz ONLY IN HYP\n").unwrap();
    let files = [reference.to_str().unwrap(), hypothesis.to_str().unwrap()];
    // Files of different utterances are refused unless the reader says to go on.
    let refused = prunelab(&["wer", files[0], files[1]]);
    assert!(!refused.status.success());
    assert!(
        stderr(&refused).contains("hyp.txt: 1 of the 3 utterances in") && stderr(&refused).contains("(first: c)"),
        "{}",
        stderr(&refused)
    );
    let out = prunelab(&["wer", files[0], files[1], "--allow-missing", "--json"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let json: serde_json::Value = serde_json::from_str(&stdout(&out)).unwrap();
    assert_eq!(json["missing_from_hypothesis"], serde_json::json!(["c"]));
    assert_eq!(json["missing_from_reference"], serde_json::json!(["z"]));
    // 1 substitution + 3 deletions (utterance c) over 8 reference words.
    assert_eq!(json["report"]["words"]["substitutions"], 1);
    assert_eq!(json["report"]["words"]["deletions"], 3);
    assert!((json["wer"].as_f64().unwrap() - 50.0).abs() < 1e-9);
}

/// A LibriSpeech-layout corpus with one good utterance per split and every kind of bad item in train.
/// `tag` keeps the directory apart from other tests' (tests run in parallel in one process, and
/// `scratch` clears its directory first).
fn corpus_with_bad_files(tag: &str) -> common::Scratch {
    let root = scratch(&format!("badcorpus-{tag}"));
    for (split, speaker) in [("train", "1"), ("dev", "2"), ("test", "3")] {
        let chapter = root.join(split).join(speaker).join("1");
        std::fs::create_dir_all(&chapter).unwrap();
        let id = |n: u32| format!("{speaker}-1-{n:04}");
        write_wav(&chapter.join(format!("{}.wav", id(0))), 16_000, 1, 1.5);
        let mut transcript = format!("{} HELLO THERE\n", id(0));
        if split == "train" {
            write_wav(&chapter.join(format!("{}.wav", id(1))), 8_000, 1, 1.5); // wrong rate
            write_wav(&chapter.join(format!("{}.wav", id(2))), 16_000, 2, 1.5); // stereo
            let flac = std::fs::read(Path::new(env!("CARGO_MANIFEST_DIR")).join("../tests/data/tone.flac")).unwrap();
            std::fs::write(chapter.join(format!("{}.flac", id(3))), &flac[..flac.len() / 2]).unwrap(); // truncated
            write_wav(&chapter.join(format!("{}.wav", id(4))), 16_000, 1, 1.5); // empty transcript
            write_wav(&chapter.join(format!("{}.wav", id(5))), 16_000, 1, 1.5); // no transcript line
            for n in 1..=3 {
                transcript.push_str(&format!("{} SOME WORDS\n", id(n)));
            }
            transcript.push_str(&format!("{}\n", id(4)));
            transcript.push_str(&format!("{} LINE WITHOUT AUDIO\n", id(6)));
        }
        std::fs::write(chapter.join(format!("{speaker}-1.trans.txt")), transcript).unwrap();
    }
    root
}

#[test]
fn training_skips_and_counts_bad_files_or_fails_when_strict() {
    let corpus = corpus_with_bad_files("skips");
    let out_dir = corpus.join("run");
    let args = [
        "train",
        "--corpus",
        corpus.to_str().unwrap(),
        "--out",
        out_dir.to_str().unwrap(),
        "--steps",
        "2",
    ];
    let run = prunelab(&[&args[..], &["--device", "cpu", "--eval-every", "0", "--json"]].concat());
    let err = stderr(&run);
    assert!(run.status.success(), "{err}");
    assert!(err.contains("skipped 6 bad item(s) in split train"), "{err}");
    for expected in [
        "1-1-0001.wav: sample rate 8000 Hz; expected 16000 Hz",
        "1-1-0002.wav: 2 channels; only mono audio is supported",
        "1-1-0003.flac: truncated FLAC",
        "1-1-0004.wav: empty transcript",
        "1-1-0005.wav: audio file has no transcript line",
        "1-1.trans.txt: transcript line 1-1-0006 has no audio file",
    ] {
        assert!(err.contains(expected), "missing {expected:?} in:\n{err}");
    }
    let summary: serde_json::Value = serde_json::from_str(&stdout(&run)).unwrap();
    assert_eq!(summary["skipped_items"], 6);
    assert!(out_dir.join("checkpoint.plc").exists() && out_dir.join("metrics.jsonl").exists());

    let strict = prunelab(&[&args[..], &["--device", "cpu", "--strict", "--overwrite"]].concat());
    assert!(!strict.status.success());
    assert!(
        stderr(&strict).contains("1-1-0005.wav: audio file has no transcript line"),
        "{}",
        stderr(&strict)
    );
}

#[test]
fn the_corpus_generator_is_reproducible() {
    if Command::new("espeak-ng").arg("--version").output().is_err() {
        panic!("espeak-ng is required for this test (apt-get install espeak-ng flac)");
    }
    let dir = scratch("synth");
    let pack = |name: &str| -> Vec<u8> {
        let root = dir.join(name);
        let counts = [
            "--train-per-voice",
            "1",
            "--dev-per-voice",
            "1",
            "--test-per-voice",
            "1",
            "--seed",
            "9",
        ];
        let out = prunelab(&[&["corpus", "synth", "--out", root.to_str().unwrap()][..], &counts[..]].concat());
        assert!(out.status.success(), "{}", stderr(&out));
        let file = dir.join(format!("{name}.plc"));
        let out = prunelab(&[
            "corpus",
            "pack",
            "--dir",
            root.to_str().unwrap(),
            "--out",
            file.to_str().unwrap(),
        ]);
        assert!(out.status.success(), "{}", stderr(&out));
        std::fs::read(file).unwrap()
    };
    let (a, b) = (pack("a"), pack("b"));
    assert_eq!(a, b, "same seed must give a byte-identical corpus");
    let parsed = prunelab_engine::data::CorpusPack::parse(&a, "a.plc").unwrap();
    let count = |split: &str| parsed.split(split).count();
    assert_eq!((count("train"), count("dev"), count("test")), (12, 12, 4));
}

/// `prunelab train` for two steps of `corpus` on the CPU into `out`, with `extra` options.
fn train_two_steps(corpus: &Path, out: &Path, extra: &[&str]) -> Output {
    let (corpus, out) = (corpus.to_str().unwrap(), out.to_str().unwrap());
    let common = [
        "train",
        "--corpus",
        corpus,
        "--out",
        out,
        "--steps",
        "2",
        "--device",
        "cpu",
        "--eval-every",
        "0",
    ];
    prunelab(&[&common[..], extra].concat())
}

/// A two-step adaptive-dropout run on the small corpus, for the pruning commands to work on.
fn gated_checkpoint() -> (common::Scratch, PathBuf) {
    let corpus = corpus_with_bad_files("gated");
    let run_dir = corpus.join("gated");
    let run = train_two_steps(
        &corpus,
        &run_dir,
        &["--method", "adaptive-dropout", "--snapshot-every", "1"],
    );
    assert!(run.status.success(), "{}", stderr(&run));
    (corpus, run_dir)
}

#[test]
fn pruning_commands_refuse_bad_input_and_never_touch_the_checkpoint() {
    let (corpus, run_dir) = gated_checkpoint();
    let checkpoint = run_dir.join("checkpoint.plc");
    let ckpt = checkpoint.to_str().unwrap();
    assert!(run_dir.join("trace.pltrace").exists(), "a gated run writes its trace");
    let export = run_dir.join("export");
    let export_arg = export.to_str().unwrap();

    let prune = |extra: &[&str]| prunelab(&[&["prune", "--checkpoint", ckpt, "--out", export_arg], extra].concat());
    assert_fails_with(&prune(&["--threshold", "1.5"]), "threshold 1.5 is outside [0, 1]");
    assert_fails_with(
        &prune(&["--budget", "99000000"]),
        "budget of 99000000 parameters is not below the model's",
    );

    // A real cut, loaded back by eval.
    let out = prunelab(&[
        "prune",
        "--checkpoint",
        ckpt,
        "--budget",
        "0.6",
        "--out",
        export_arg,
        "--json",
    ]);
    assert!(out.status.success(), "{}", stderr(&out));
    let summary: serde_json::Value = serde_json::from_str(&stdout(&out)).unwrap();
    assert!(summary["params"].as_u64().unwrap() <= (0.6 * summary["dense_params"].as_f64().unwrap()) as u64);
    let corpus_arg = corpus.to_str().unwrap();
    let eval = prunelab(&["eval", "--checkpoint", export_arg, "--corpus", corpus_arg, "--json"]);
    assert!(eval.status.success(), "{}", stderr(&eval));
    let report: serde_json::Value = serde_json::from_str(&stdout(&eval)).unwrap();
    assert_eq!(report["parameters"], summary["params"]);

    // `--budget` reads the grammar of the lab's "Cut to": a count, a share (50% or 0.5), a
    // FLOPs speed-up (2x).
    let cut_to = |budget: &str| -> serde_json::Value {
        let out = prune(&["--budget", budget, "--json"]);
        assert!(out.status.success(), "--budget {budget}: {}", stderr(&out));
        serde_json::from_str(&stdout(&out)).unwrap()
    };
    let half = cut_to("50%");
    let dense_params = half["dense_params"].as_u64().unwrap();
    assert!(half["params"].as_u64().unwrap() <= dense_params / 2, "{half}");
    assert_eq!(cut_to("0.5")["params"], half["params"], "0.5 and 50% are one share");
    let count = dense_params * 2 / 3;
    assert!(cut_to(&count.to_string())["params"].as_u64().unwrap() <= count);
    let twice = cut_to("2x");
    let dense_flops = twice["dense_flops_per_second"].as_f64().unwrap();
    let speedup = dense_flops / twice["flops_per_second"].as_f64().unwrap();
    assert!(speedup >= 2.0, "2x cut to {speedup:.3}x fewer FLOPs");
    assert_fails_with(&prune(&["--budget", "half"]), "--budget \"half\" is not a target");

    // `train --budget 2x`: the magnitude method's cut during training meets the same speed-up.
    let magnitude = run_dir.with_file_name("magnitude-2x");
    let method = ["--method", "magnitude", "--budget", "2x", "--prune-at", "0.5"];
    let run = train_two_steps(&corpus, &magnitude, &method);
    assert!(run.status.success(), "{}", stderr(&run));
    let cut_in_training = magnitude.join("checkpoint.plc");
    let as_it_is = prunelab(&[
        "prune",
        "--checkpoint",
        cut_in_training.to_str().unwrap(),
        "--threshold",
        "0",
        "--out",
        magnitude.join("export").to_str().unwrap(),
        "--json",
    ]);
    assert!(as_it_is.status.success(), "{}", stderr(&as_it_is));
    let as_it_is: serde_json::Value = serde_json::from_str(&stdout(&as_it_is)).unwrap();
    let speedup = dense_flops / as_it_is["flops_per_second"].as_f64().unwrap();
    assert!(speedup >= 2.0, "train --budget 2x cut to {speedup:.3}x fewer FLOPs");

    // A manifest edited to disagree with its weights is refused, by name.
    let manifest_path = export.join("manifest.json");
    let mut manifest: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&manifest_path).unwrap()).unwrap();
    // Claim one FFN unit fewer than the weights hold, consistently everywhere but the weights.
    let ffn1 = &mut manifest["keep"][0]["ffn1"];
    ffn1["index"].as_array_mut().unwrap().pop();
    ffn1["scale"].as_array_mut().unwrap().pop();
    let shape = &mut manifest["config"]["model"]["block_shapes"][0]["ffn1_hidden"];
    *shape = serde_json::json!(shape.as_u64().unwrap() - 1);
    let d_model = manifest["config"]["model"]["d_model"].as_u64().unwrap();
    let blocks = &mut manifest["params"]["blocks"];
    *blocks = serde_json::json!(blocks.as_u64().unwrap() - (2 * d_model + 1));
    std::fs::write(&manifest_path, manifest.to_string()).unwrap();
    let eval = prunelab(&["eval", "--checkpoint", export_arg, "--corpus", corpus_arg]);
    assert_fails_with(&eval, "manifest.json: weights do not");

    // A sweep reads the checkpoint and leaves it byte for byte as it was.
    let before = std::fs::read(&checkpoint).unwrap();
    let refused = prunelab(&["sweep", "--checkpoint", ckpt, "--corpus", corpus_arg, "--out", ckpt]);
    assert_fails_with(&refused, "is also this command's input");
    let sweep = prunelab(&[
        "sweep",
        "--checkpoint",
        ckpt,
        "--corpus",
        corpus_arg,
        "--thresholds",
        "0.5,0.96",
        "--repeats",
        "1",
        "--json",
    ]);
    assert!(sweep.status.success(), "{}", stderr(&sweep));
    let points: serde_json::Value = serde_json::from_str(&stdout(&sweep)).unwrap();
    assert_eq!(
        points["points"].as_array().unwrap().len(),
        3,
        "unpruned + two thresholds"
    );
    assert_eq!(std::fs::read(&checkpoint).unwrap(), before);
}

#[test]
fn a_run_can_start_from_a_trained_models_weights_and_a_bad_start_destroys_nothing() {
    let corpus = corpus_with_bad_files("warm");
    let corpus_arg = corpus.to_str().unwrap();
    let weights = corpus.join("models").join("dense.plc");
    let dense = corpus.join("dense");
    let common = ["--corpus", corpus_arg, "--device", "cpu", "--eval-every", "0"];
    let mut args = vec!["train", "--steps", "2", "--out", dense.to_str().unwrap()];
    args.extend(["--weights-out", weights.to_str().unwrap()]);
    args.extend(common);
    let run = prunelab(&args);
    assert!(run.status.success(), "{}", stderr(&run));
    let size = |p: &Path| std::fs::metadata(p).unwrap().len();
    assert!(
        size(&weights) * 2 < size(&dense.join("checkpoint.plc")),
        "the weights alone ({} bytes) should be about a third of the checkpoint ({} bytes)",
        size(&weights),
        size(&dense.join("checkpoint.plc"))
    );

    // L0 from the trained weights, distilling from them.
    let student = corpus.join("student");
    let w = weights.to_str().unwrap();
    let mut args = vec![
        "train",
        "--steps",
        "1",
        "--method",
        "l0",
        "--out",
        student.to_str().unwrap(),
    ];
    args.extend(["--init-from", w, "--teacher", w]);
    args.extend(common);
    let run = prunelab(&args);
    assert!(run.status.success(), "{}", stderr(&run));

    // A fresh run over it is refused unless asked to replace it, and even then a start that
    // does not fit is refused by name before the earlier run in --out is touched.
    let checkpoints = || std::fs::read_dir(student.join("checkpoints")).unwrap().count();
    let before = checkpoints();
    assert!(before > 0);
    let mut args = vec!["train", "--steps", "1", "--out", student.to_str().unwrap()];
    args.extend(common);
    assert_fails_with(&prunelab(&args), "holds an earlier run; continue it with --resume");
    let bad = corpus.join("garbage.plc");
    std::fs::write(&bad, b"not a checkpoint").unwrap();
    for (start, preset, message) in [
        (bad.to_str().unwrap(), "tiny", "garbage.plc"),
        (
            w,
            "small",
            "cannot start from this model: it is a tiny model and this run is a small",
        ),
    ] {
        let mut args = vec![
            "train",
            "--steps",
            "1",
            "--preset",
            preset,
            "--out",
            student.to_str().unwrap(),
            "--overwrite",
        ];
        args.extend(["--init-from", start]);
        args.extend(common);
        assert_fails_with(&prunelab(&args), message);
        assert_eq!(
            checkpoints(),
            before,
            "a refused start deleted the earlier run's checkpoints"
        );
    }
}
