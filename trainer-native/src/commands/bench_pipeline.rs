//! `prunelab bench --pipeline ROOT`: the LibriSpeech data path and its memory.
//!
//! 1. Indexing the subsets (time, entries/s, resident memory after).
//! 2. Feature extraction alone: utterances/s on one thread and on every core.
//! 3. Streaming: the batch stream a run would read, for a number of steps, with resident
//!    memory sampled as it goes (it must stay flat however large the corpus is).
//! 4. Training throughput of a preset on streamed batches (utterances/s, audio s/s).
//! 5. Peak resident memory of one training step on a batch of `--peak-batch-seconds` of audio.
//!
//! Memory is read from /proc/self/status (Linux): VmRSS now, VmHWM the high-water mark, which
//! writing "5" to /proc/self/clear_refs resets to the current size.

use std::sync::Arc;
use std::time::Instant;

use prunelab_engine::audio::{FbankConfig, FeatureStats};
use prunelab_engine::burn::prelude::*;
use prunelab_engine::data::{IndexEntry, StreamPlan, Utterance};
use prunelab_engine::model::Preset;
use prunelab_engine::readback::block_on;
use prunelab_engine::text::CharTokenizer;
use prunelab_engine::train::{StepBatch, TrainConfig, Trainer};
use serde_json::{Value, json};

use crate::data::corpus_source::CorpusSource;
use crate::data::stream::{BatchStream, default_workers, featurise_all};

/// What the pipeline benchmark measures.
pub struct PipelineBench {
    pub subsets: Vec<String>,
    pub featurise_utterances: usize,
    pub stream_steps: usize,
    pub stream_batch_seconds: f64,
    pub train_preset: Preset,
    pub train_steps: usize,
    pub train_batch_seconds: f64,
    pub peak_batch_seconds: f64,
}

pub fn run(corpus: &CorpusSource, bench: &PipelineBench, device: &Device) -> Result<Value, String> {
    let workers = default_workers();
    let fbank = FbankConfig::default();
    let rss_start = memory("VmRSS");

    tell!("indexing {} …", bench.subsets.join(","));
    let started = Instant::now();
    let index = corpus.index(&bench.subsets, false)?;
    let index_seconds = started.elapsed().as_secs_f64();
    let entries = Arc::new(index.entries);
    let audio_hours = entries.iter().map(|e| e.samples as f64).sum::<f64>() / 16_000.0 / 3600.0;
    let rss_indexed = memory("VmRSS");

    tell!("feature extraction …");
    let sample: Vec<IndexEntry> = entries.iter().take(bench.featurise_utterances).cloned().collect();
    let one = featurise_rate(&sample, &fbank, 1);
    let all = featurise_rate(&sample, &fbank, workers);

    tell!("streaming {} steps …", bench.stream_steps);
    let stream = stream_memory(&entries, &fbank, bench, workers);

    tell!("training {} on streamed batches …", bench.train_preset.name());
    let train = train_rate(&entries, bench, device, workers)?;

    tell!("peak memory of a {:.0} s batch …", bench.peak_batch_seconds);
    let peak = peak_step_memory(&entries, bench, device)?;

    Ok(json!({
        "workers": workers,
        "index": {
            "entries": entries.len(), "skipped": index.skipped.len(), "audio_hours": audio_hours,
            "seconds": index_seconds, "entries_per_second": entries.len() as f64 / index_seconds,
            "rss_mib_before": mib(rss_start), "rss_mib_after": mib(rss_indexed),
        },
        "features": { "utterances": sample.len(), "one_thread": one, "all_threads": all },
        "stream": stream,
        "train": train,
        "peak_step": peak,
    }))
}

/// Utterances and audio seconds featurised per second.
fn featurise_rate(sample: &[IndexEntry], fbank: &FbankConfig, workers: usize) -> Value {
    let started = Instant::now();
    let (utterances, _) = featurise_all(sample, fbank, workers);
    let seconds = started.elapsed().as_secs_f64();
    let audio: f64 = utterances.iter().map(|u| u.duration_seconds).sum();
    json!({
        "threads": workers, "utterances_per_second": utterances.len() as f64 / seconds,
        "audio_seconds_per_second": audio / seconds,
    })
}

/// Streams batches without training; resident memory sampled every few steps.
fn stream_memory(entries: &Arc<Vec<IndexEntry>>, fbank: &FbankConfig, bench: &PipelineBench, workers: usize) -> Value {
    let plan = plan(entries, bench.stream_batch_seconds);
    let mut stream = BatchStream::start(
        entries.clone(),
        Arc::new(plan),
        fbank,
        0..bench.stream_steps,
        workers,
        2,
    );
    let before = memory("VmRSS");
    let started = Instant::now();
    let (mut utterances, mut audio, mut rss_max) = (0usize, 0.0f64, before);
    let mut samples = Vec::new();
    let mut step = 0;
    while let Some(batch) = stream.next_batch() {
        utterances += batch.utterances.len();
        audio += batch.utterances.iter().map(|u| u.duration_seconds).sum::<f64>();
        let rss = memory("VmRSS");
        rss_max = rss_max.max(rss);
        if step % (bench.stream_steps / 10).max(1) == 0 {
            samples.push(json!({ "step": step, "utterances": utterances, "rss_mib": mib(rss) }));
        }
        step += 1;
    }
    let seconds = started.elapsed().as_secs_f64();
    json!({
        "steps": step, "batch_seconds": bench.stream_batch_seconds, "utterances": utterances,
        "utterances_per_second": utterances as f64 / seconds, "audio_seconds_per_second": audio / seconds,
        "rss_mib_before": mib(before), "rss_mib_max": mib(rss_max), "samples": samples,
    })
}

fn plan(entries: &[IndexEntry], batch_seconds: f64) -> StreamPlan {
    StreamPlan::new(
        entries.iter().map(|e| e.samples).collect(),
        &[0.9, 1.0, 1.1],
        &FbankConfig::default(),
        FbankConfig::default().frames_in(batch_seconds) as usize,
        Default::default(),
        0,
    )
}

fn config(preset: Preset, batch_seconds: f64, steps: usize) -> TrainConfig {
    let mut config = TrainConfig::for_preset(preset, CharTokenizer.vocab_size());
    config.max_batch_frames = config.fbank.frames_in(batch_seconds) as usize;
    config.steps = steps.max(1);
    config
}

/// Training steps of the preset on streamed batches: the first is a warm-up, not timed.
fn train_rate(
    entries: &Arc<Vec<IndexEntry>>,
    bench: &PipelineBench,
    device: &Device,
    workers: usize,
) -> Result<Value, String> {
    let steps = bench.train_steps.max(2);
    let config = config(bench.train_preset, bench.train_batch_seconds, steps);
    let mut stream = BatchStream::start(
        entries.clone(),
        Arc::new(plan(entries, bench.train_batch_seconds)),
        &config.fbank,
        0..steps,
        workers,
        2,
    );
    let mut trainer = Trainer::new(config, FeatureStats::identity(80), device);
    let (mut utterances, mut audio) = (0usize, 0.0f64);
    let mut started = Instant::now();
    for step in 0..steps {
        let batch = stream.next_batch().ok_or("the stream ended early")?;
        let refs: Vec<&Utterance> = batch.utterances.iter().collect();
        block_on(trainer.train_step(StepBatch::Given(&refs))).map_err(|e| e.to_string())?;
        if step == 0 {
            started = Instant::now();
        } else {
            utterances += refs.len();
            audio += refs.iter().map(|u| u.duration_seconds).sum::<f64>();
        }
    }
    let seconds = started.elapsed().as_secs_f64();
    Ok(json!({
        "preset": bench.train_preset.name(), "parameters": trainer.inference_model().num_params(),
        "timed_steps": steps - 1, "batch_seconds": bench.train_batch_seconds,
        "seconds_per_step": seconds / (steps - 1) as f64,
        "utterances_per_second": utterances as f64 / seconds, "audio_seconds_per_second": audio / seconds,
    }))
}

/// Resident memory at the peak of one training step on a batch of about `peak_batch_seconds`.
fn peak_step_memory(entries: &[IndexEntry], bench: &PipelineBench, device: &Device) -> Result<Value, String> {
    // Longest utterances first, until the padded batch reaches the budget.
    let mut by_length: Vec<&IndexEntry> = entries.iter().collect();
    by_length.sort_by_key(|e| std::cmp::Reverse(e.samples));
    let budget = bench.peak_batch_seconds * 16_000.0;
    let longest = by_length.first().map_or(0, |e| e.samples) as f64;
    let count = ((budget / longest.max(1.0)) as usize).max(1);
    let picked: Vec<IndexEntry> = by_length.iter().cycle().take(count).map(|e| (*e).clone()).collect();
    let (utterances, _) = featurise_all(&picked, &FbankConfig::default(), default_workers());
    let refs: Vec<&Utterance> = utterances.iter().collect();
    let padded_seconds = refs.len() as f64 * longest / 16_000.0;
    let mut trainer = Trainer::new(
        config(bench.train_preset, padded_seconds + 1.0, 2),
        FeatureStats::identity(80),
        device,
    );
    let before = memory("VmRSS");
    reset_peak();
    let started = Instant::now();
    block_on(trainer.train_step(StepBatch::Given(&refs))).map_err(|e| e.to_string())?;
    let seconds = started.elapsed().as_secs_f64();
    let peak = memory("VmHWM");
    Ok(json!({
        "preset": bench.train_preset.name(), "utterances": refs.len(), "padded_audio_seconds": padded_seconds,
        "step_seconds": seconds, "rss_mib_before": mib(before), "peak_rss_mib": mib(peak),
        "peak_over_before_mib": mib(peak.saturating_sub(before)),
    }))
}

/// A /proc/self/status field in bytes (0 where there is none).
fn memory(field: &str) -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|status| {
            status.lines().find_map(|line| {
                let rest = line.strip_prefix(field)?.strip_prefix(':')?;
                rest.trim().trim_end_matches("kB").trim().parse::<u64>().ok()
            })
        })
        .map_or(0, |kib| kib * 1024)
}

/// Resets VmHWM to the current resident size.
fn reset_peak() {
    let _ = std::fs::write("/proc/self/clear_refs", "5");
}

fn mib(bytes: u64) -> f64 {
    bytes as f64 / 1_048_576.0
}

/// The figures as a few lines of text.
pub fn print(report: &Value) -> Result<(), String> {
    let i = &report["index"];
    say!(
        "index     {} entries ({:.1} h) in {:.1} s = {:.0} entries/s; RSS {:.0} → {:.0} MiB",
        i["entries"],
        i["audio_hours"].as_f64().unwrap_or(0.0),
        i["seconds"].as_f64().unwrap_or(0.0),
        i["entries_per_second"].as_f64().unwrap_or(0.0),
        i["rss_mib_before"].as_f64().unwrap_or(0.0),
        i["rss_mib_after"].as_f64().unwrap_or(0.0)
    );
    let f = &report["features"];
    for key in ["one_thread", "all_threads"] {
        say!(
            "features  {} thread(s): {:.1} utt/s, {:.1} s of audio per s",
            f[key]["threads"],
            f[key]["utterances_per_second"].as_f64().unwrap_or(0.0),
            f[key]["audio_seconds_per_second"].as_f64().unwrap_or(0.0)
        );
    }
    let s = &report["stream"];
    say!(
        "stream    {} steps, {} utts: {:.1} utt/s; RSS {:.0} MiB before, {:.0} MiB max",
        s["steps"],
        s["utterances"],
        s["utterances_per_second"].as_f64().unwrap_or(0.0),
        s["rss_mib_before"].as_f64().unwrap_or(0.0),
        s["rss_mib_max"].as_f64().unwrap_or(0.0)
    );
    let t = &report["train"];
    say!(
        "train     {} ({} params), {:.0} s batches: {:.2} s/step, {:.2} utt/s, {:.2} s of audio per s",
        t["preset"].as_str().unwrap_or(""),
        t["parameters"],
        t["batch_seconds"].as_f64().unwrap_or(0.0),
        t["seconds_per_step"].as_f64().unwrap_or(0.0),
        t["utterances_per_second"].as_f64().unwrap_or(0.0),
        t["audio_seconds_per_second"].as_f64().unwrap_or(0.0)
    );
    let p = &report["peak_step"];
    say!(
        "peak      one {} step on {:.0} s of padded audio ({} utts): peak RSS {:.0} MiB ({:.0} MiB over the {:.0} MiB before), {:.1} s",
        p["preset"].as_str().unwrap_or(""),
        p["padded_audio_seconds"].as_f64().unwrap_or(0.0),
        p["utterances"],
        p["peak_rss_mib"].as_f64().unwrap_or(0.0),
        p["peak_over_before_mib"].as_f64().unwrap_or(0.0),
        p["rss_mib_before"].as_f64().unwrap_or(0.0),
        p["step_seconds"].as_f64().unwrap_or(0.0)
    );
    Ok(())
}
