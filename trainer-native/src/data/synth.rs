//! Synthesis of the built-in corpus with espeak-ng, written in the LibriSpeech layout.
//!
//! Each voice is an espeak-ng accent plus a voice variant at its own base rate and pitch;
//! every utterance jitters rate and pitch a little more. Audio is trimmed, resampled to
//! 16 kHz, quantised to 10 bits and encoded with the `flac` tool. FLAC stores the unused low
//! bits for free, which is what keeps the packed corpus under 20 MiB; the quantisation noise
//! sits about 40 dB below espeak-ng's speech level (62 dB below full scale), cleaner than
//! most LibriSpeech recordings.

use std::collections::BTreeSet;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use prunelab_engine::audio::{SAMPLE_RATE, decode_audio, resample};
use prunelab_engine::data::{SentenceGenerator, write_transcript_file};
use prunelab_engine::rng::SplitMix64;

/// A synthetic speaker.
#[derive(Debug, Clone, Copy)]
pub struct Voice {
    pub accent: &'static str,
    pub variant: &'static str,
    pub rate_wpm: u32,
    pub pitch: u32,
}

/// Training voices: they speak `train` and `dev`.
pub const SEEN_VOICES: [Voice; 12] = [
    Voice {
        accent: "en-us",
        variant: "m1",
        rate_wpm: 180,
        pitch: 45,
    },
    Voice {
        accent: "en-us",
        variant: "f2",
        rate_wpm: 190,
        pitch: 60,
    },
    Voice {
        accent: "en-gb",
        variant: "m3",
        rate_wpm: 175,
        pitch: 40,
    },
    Voice {
        accent: "en-gb",
        variant: "f1",
        rate_wpm: 185,
        pitch: 65,
    },
    Voice {
        accent: "en-gb-scotland",
        variant: "m2",
        rate_wpm: 170,
        pitch: 50,
    },
    Voice {
        accent: "en-gb-x-rp",
        variant: "f3",
        rate_wpm: 195,
        pitch: 55,
    },
    Voice {
        accent: "en-gb-x-gbclan",
        variant: "m4",
        rate_wpm: 185,
        pitch: 35,
    },
    Voice {
        accent: "en-gb-x-gbcwmd",
        variant: "f4",
        rate_wpm: 175,
        pitch: 70,
    },
    Voice {
        accent: "en-029",
        variant: "m5",
        rate_wpm: 190,
        pitch: 50,
    },
    Voice {
        accent: "en-us-nyc",
        variant: "f5",
        rate_wpm: 200,
        pitch: 60,
    },
    Voice {
        accent: "en-us",
        variant: "m7",
        rate_wpm: 165,
        pitch: 30,
    },
    Voice {
        accent: "en-gb-x-rp",
        variant: "m6",
        rate_wpm: 180,
        pitch: 55,
    },
];

/// Held-out voices: they speak only `test`.
pub const HELD_OUT_VOICES: [Voice; 4] = [
    Voice {
        accent: "en-gb",
        variant: "m2",
        rate_wpm: 185,
        pitch: 48,
    },
    Voice {
        accent: "en-us",
        variant: "f1",
        rate_wpm: 175,
        pitch: 62,
    },
    Voice {
        accent: "en-gb-scotland",
        variant: "f5",
        rate_wpm: 190,
        pitch: 58,
    },
    Voice {
        accent: "en-029",
        variant: "m3",
        rate_wpm: 180,
        pitch: 42,
    },
];

/// How many utterances to make.
#[derive(Debug, Clone)]
pub struct SynthPlan {
    pub seed: u64,
    pub train_per_voice: usize,
    pub dev_per_voice: usize,
    pub test_per_voice: usize,
}

impl SynthPlan {
    /// The plan that made `static/corpus.plc` (the defaults of `prunelab corpus synth`).
    pub const BUILT_IN: SynthPlan = SynthPlan {
        seed: 2024,
        train_per_voice: 42,
        dev_per_voice: 4,
        test_per_voice: 12,
    };
}

/// A larger held-out evaluation set drawn after a corpus: `dev` from the training voices and
/// `test` from the held-out voices, every sentence new to the whole corpus.
#[derive(Debug, Clone)]
pub struct EvalSetPlan {
    /// The corpus it is held out from: its sentences are drawn first and never reused.
    pub corpus: SynthPlan,
    pub dev_per_voice: usize,
    pub test_per_voice: usize,
}

/// One utterance to synthesise.
pub struct Job {
    split: &'static str,
    speaker: u32,
    chapter: u32,
    index: usize,
    text: String,
    voice: Voice,
    rate_wpm: u32,
    pitch: u32,
}

/// Synthesises `jobs` under `root` (`root/<split>/<speaker>/<chapter>/…`).
/// Returns the number of utterances written.
pub fn synthesise(root: &Path, jobs: &[Job], progress: impl Fn(usize, usize) + Sync) -> Result<usize, String> {
    check_tool("espeak-ng", "--version")?;
    check_tool("flac", "--version")?;
    write_transcripts(root, jobs)?;
    let done = std::sync::atomic::AtomicUsize::new(0);
    let workers = std::thread::available_parallelism().map_or(2, |n| n.get());
    std::thread::scope(|scope| {
        let handles: Vec<_> = (0..workers)
            .map(|w| {
                let (done, progress) = (&done, &progress);
                scope.spawn(move || -> Result<(), String> {
                    for job in jobs.iter().skip(w).step_by(workers) {
                        let flac = synthesise_one(job)?;
                        let path = audio_path(root, job);
                        std::fs::write(&path, flac).map_err(|e| format!("{}: cannot write: {e}", path.display()))?;
                        let n = done.fetch_add(1, std::sync::atomic::Ordering::Relaxed) + 1;
                        progress(n, jobs.len());
                    }
                    Ok(())
                })
            })
            .collect();
        handles
            .into_iter()
            .try_for_each(|h| h.join().map_err(|_| "a synthesis worker panicked".to_string())?)
    })?;
    Ok(jobs.len())
}

fn check_tool(tool: &str, flag: &str) -> Result<(), String> {
    match Command::new(tool)
        .arg(flag)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
    {
        Ok(s) if s.success() => Ok(()),
        _ => Err(format!(
            "`{tool}` is needed to synthesise the corpus (Debian: apt-get install {tool})"
        )),
    }
}

/// The corpus's utterances: `dev` and `test` sentences never occur in `train`.
pub fn plan_jobs(plan: &SynthPlan) -> Vec<Job> {
    let mut draw = JobDraw::new(plan.seed);
    [
        draw.split("train", &SEEN_VOICES, plan.train_per_voice, 100, 1),
        draw.split("dev", &SEEN_VOICES, plan.dev_per_voice, 100, 2),
        draw.split("test", &HELD_OUT_VOICES, plan.test_per_voice, 200, 3),
    ]
    .into_iter()
    .flatten()
    .collect()
}

/// The evaluation set's utterances. The corpus is planned first with the same generator, so
/// its sentences are known and none of them is drawn again; the evaluation chapters (4 and 5)
/// give ids that cannot collide with the corpus's.
pub fn plan_eval_jobs(plan: &EvalSetPlan) -> Vec<Job> {
    let corpus = &plan.corpus;
    let mut draw = JobDraw::new(corpus.seed);
    draw.split("train", &SEEN_VOICES, corpus.train_per_voice, 100, 1);
    draw.split("dev", &SEEN_VOICES, corpus.dev_per_voice, 100, 2);
    draw.split("test", &HELD_OUT_VOICES, corpus.test_per_voice, 200, 3);
    [
        draw.split("dev", &SEEN_VOICES, plan.dev_per_voice, 100, 4),
        draw.split("test", &HELD_OUT_VOICES, plan.test_per_voice, 200, 5),
    ]
    .into_iter()
    .flatten()
    .collect()
}

/// Draws sentences (each used once) and per-utterance voice jitter, in a fixed order.
struct JobDraw {
    sentences: SentenceGenerator,
    jitter: SplitMix64,
    used: BTreeSet<String>,
}

impl JobDraw {
    fn new(seed: u64) -> Self {
        Self {
            sentences: SentenceGenerator::new(seed),
            jitter: SplitMix64::derive(seed, "voice-jitter"),
            used: BTreeSet::new(),
        }
    }

    fn fresh_sentence(&mut self) -> String {
        loop {
            let s = self.sentences.sentence();
            if self.used.insert(s.clone()) {
                return s;
            }
        }
    }

    /// `per_voice` utterances for each voice, speakers numbered from `speaker_base`.
    fn split(
        &mut self,
        split: &'static str,
        voices: &[Voice],
        per_voice: usize,
        speaker_base: u32,
        chapter: u32,
    ) -> Vec<Job> {
        let mut jobs = Vec::new();
        for (v, voice) in voices.iter().enumerate() {
            for index in 0..per_voice {
                let rate_wpm = voice.rate_wpm - 10 + self.jitter.below(21) as u32;
                let pitch = voice.pitch - 5 + self.jitter.below(11) as u32;
                jobs.push(Job {
                    split,
                    speaker: speaker_base + v as u32,
                    chapter,
                    index,
                    text: self.fresh_sentence(),
                    voice: *voice,
                    rate_wpm,
                    pitch,
                });
            }
        }
        jobs
    }
}

fn chapter_dir(root: &Path, job: &Job) -> PathBuf {
    root.join(job.split)
        .join(job.speaker.to_string())
        .join(job.chapter.to_string())
}

fn utterance_id(job: &Job) -> String {
    format!("{}-{}-{:04}", job.speaker, job.chapter, job.index)
}

fn audio_path(root: &Path, job: &Job) -> PathBuf {
    chapter_dir(root, job).join(format!("{}.flac", utterance_id(job)))
}

fn write_transcripts(root: &Path, jobs: &[Job]) -> Result<(), String> {
    let mut chapters: std::collections::BTreeMap<PathBuf, Vec<(String, String)>> = Default::default();
    for job in jobs {
        chapters
            .entry(chapter_dir(root, job))
            .or_default()
            .push((utterance_id(job), job.text.clone()));
    }
    for (dir, lines) in chapters {
        std::fs::create_dir_all(&dir).map_err(|e| format!("{}: cannot create: {e}", dir.display()))?;
        let name = format!(
            "{}-{}.trans.txt",
            lines[0].0.split('-').next().unwrap_or(""),
            dir.file_name().unwrap_or_default().to_string_lossy()
        );
        let path = dir.join(name);
        write_transcript_file(&path, &lines).map_err(|e| format!("{}: cannot write: {e}", path.display()))?;
    }
    Ok(())
}

fn synthesise_one(job: &Job) -> Result<Vec<u8>, String> {
    let voice = format!("{}+{}", job.voice.accent, job.voice.variant);
    let output = Command::new("espeak-ng")
        .args([
            "-v",
            &voice,
            "-s",
            &job.rate_wpm.to_string(),
            "-p",
            &job.pitch.to_string(),
            "--stdout",
        ])
        .arg(job.text.to_lowercase())
        .output()
        .map_err(|e| format!("espeak-ng failed to start: {e}"))?;
    if !output.status.success() {
        return Err(format!(
            "espeak-ng failed for voice {voice}: {}",
            String::from_utf8_lossy(&output.stderr)
        ));
    }
    // espeak-ng's WAV header on stdout has unknown (0xFFFFFFFF) sizes; fix them before decoding.
    let wav = fix_streamed_wav_sizes(output.stdout);
    let audio =
        decode_audio(&wav, &format!("espeak-ng output for {}", utterance_id(job))).map_err(|e| e.to_string())?;
    let trimmed = trim_silence(&audio.samples, audio.sample_rate);
    let samples = resample(trimmed, audio.sample_rate, SAMPLE_RATE);
    encode_flac(&quantise_to_pcm16(&samples, 10))
}

fn fix_streamed_wav_sizes(mut wav: Vec<u8>) -> Vec<u8> {
    let len = wav.len() as u32;
    if wav.len() >= 44 && &wav[36..40] == b"data" {
        wav[4..8].copy_from_slice(&(len - 8).to_le_bytes());
        wav[40..44].copy_from_slice(&(len - 44).to_le_bytes());
    }
    wav
}

/// Cuts leading and trailing silence, keeping 100 ms of it on each side.
fn trim_silence(samples: &[f32], rate: u32) -> &[f32] {
    let threshold = 1e-3;
    let pad = rate as usize / 10;
    let first = samples.iter().position(|s| s.abs() > threshold).unwrap_or(0);
    let last = samples
        .iter()
        .rposition(|s| s.abs() > threshold)
        .unwrap_or(samples.len().saturating_sub(1));
    &samples[first.saturating_sub(pad)..(last + pad + 1).min(samples.len())]
}

/// Rounds to `bits` of precision, stored as 16-bit PCM.
fn quantise_to_pcm16(samples: &[f32], bits: u32) -> Vec<i16> {
    let step = f32::from(1u16 << (16 - bits));
    samples
        .iter()
        .map(|&s| ((s * 32768.0 / step).round() * step).clamp(-32768.0, 32767.0 - step) as i16)
        .collect()
}

fn encode_flac(pcm: &[i16]) -> Result<Vec<u8>, String> {
    let spec = hound::WavSpec {
        channels: 1,
        sample_rate: SAMPLE_RATE,
        bits_per_sample: 16,
        sample_format: hound::SampleFormat::Int,
    };
    let mut wav = std::io::Cursor::new(Vec::new());
    {
        let mut writer = hound::WavWriter::new(&mut wav, spec).map_err(|e| e.to_string())?;
        pcm.iter()
            .try_for_each(|&s| writer.write_sample(s))
            .map_err(|e| e.to_string())?;
        writer.finalize().map_err(|e| e.to_string())?;
    }
    let mut child = Command::new("flac")
        .args(["-8", "--silent", "--stdout", "-"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| format!("flac failed to start: {e}"))?;
    let mut stdin = child.stdin.take().ok_or("flac has no stdin")?;
    let wav = wav.into_inner();
    // Feed stdin from a thread so a full stdout pipe cannot deadlock us.
    let feeder = std::thread::spawn(move || stdin.write_all(&wav));
    let output = child.wait_with_output().map_err(|e| format!("flac failed: {e}"))?;
    feeder
        .join()
        .map_err(|_| "flac feeder panicked")?
        .map_err(|e| format!("writing to flac: {e}"))?;
    if !output.status.success() {
        return Err(format!("flac failed: {}", String::from_utf8_lossy(&output.stderr)));
    }
    Ok(output.stdout)
}
