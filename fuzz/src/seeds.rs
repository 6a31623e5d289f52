//! Valid files to start from, made in memory by the engine's own writers: a fuzz run needs
//! nothing on disk, and the seeds follow the formats as they change.

use prunelab_engine::audio::FeatureStats;
use prunelab_engine::burn::prelude::Device;
use prunelab_engine::data::write_pack;
use prunelab_engine::gates::Method;
use prunelab_engine::model::Preset;
use prunelab_engine::prune::CutTarget;
use prunelab_engine::readback::block_on;
use prunelab_engine::store::{
    Trace, archive_export_files, decode_trace, encode_checkpoint, encode_trace, sample_export,
};
use prunelab_engine::train::{TrainConfig, Trainer, TrainerState};
use prunelab_lab_state::saved_run::SavedRun;
use prunelab_lab_state::session::KeptRun;
use prunelab_lab_state::settings::LabSettings;

/// A one-second 440 Hz tone, mono 16 kHz 16-bit FLAC.
pub const TONE_FLAC: &[u8] = include_bytes!("../../tests/data/tone.flac");

/// The tiny preset shrunk to one narrow block: every section of every format, in kilobytes.
fn small_config(method: Method) -> TrainConfig {
    let mut config = TrainConfig::for_preset(Preset::Tiny, 29);
    config.model.num_blocks = 1;
    config.model.d_model = 16;
    config.model.d_ff = 8;
    config.model.subsampling_channels = 2;
    config.prune.method = method;
    config
}

/// A fresh run of each gated kind, and a magnitude run after its cut (whose header holds the
/// cut's plan).
pub fn checkpoints() -> Vec<Vec<u8>> {
    let mut seeds: Vec<Vec<u8>> = [Method::None, Method::AdaptiveDropout, Method::L0]
        .into_iter()
        .map(|method| {
            let trainer = Trainer::new(small_config(method), FeatureStats::identity(80), &Device::flex());
            encode_checkpoint(&trainer.state().expect("a fresh trainer's state serialises"))
        })
        .collect();
    seeds.push(encode_checkpoint(&magnitude_cut_state()));
    seeds
}

fn magnitude_cut_state() -> TrainerState {
    let mut trainer = Trainer::new(
        small_config(Method::Magnitude),
        FeatureStats::identity(80),
        &Device::flex(),
    );
    let source = block_on(trainer.cut_source(false)).expect("a fresh model's norms read back");
    let selection = source
        .selection_for(CutTarget::Share(0.6))
        .expect("60 % of the seed model is a budget");
    block_on(trainer.replace_model(&source.cut(selection).expect("the seed model cuts")))
        .expect("the cut model replaces the dense one");
    trainer.state().expect("a cut trainer's state serialises")
}

/// A run as the page keeps it for a reload: adaptive dropout's fresh state and a trace.
pub fn saved_runs() -> Vec<Vec<u8>> {
    let trainer = Trainer::new(
        small_config(Method::AdaptiveDropout),
        FeatureStats::identity(80),
        &Device::flex(),
    );
    let state = trainer.state().expect("a fresh trainer's state serialises");
    let trace = decode_trace(&traces()[0], "seed.pltrace").expect("the seed trace reads back");
    let saved = SavedRun {
        kept: KeptRun::new(state, trace),
        settings: LabSettings::default(),
    };
    vec![saved.encode()]
}

/// An export as one input: the manifest's length (u32 LE), the manifest, the weights.
pub fn exports() -> Vec<Vec<u8>> {
    let (manifest, weights, _) = sample_export(&Device::flex());
    vec![join_export(manifest.as_bytes(), &weights)]
}

/// An export as the lab downloads it: both files in one tar archive.
pub fn export_archives() -> Vec<Vec<u8>> {
    let (manifest, weights, _) = sample_export(&Device::flex());
    vec![archive_export_files("cut", &manifest, &weights, 1_700_000_000).expect("the sample export archives")]
}

pub fn join_export(manifest: &[u8], weights: &[u8]) -> Vec<u8> {
    let mut input = (manifest.len() as u32).to_le_bytes().to_vec();
    input.extend_from_slice(manifest);
    input.extend_from_slice(weights);
    input
}

pub fn traces() -> Vec<Vec<u8>> {
    let scores = |step: usize| -> Vec<[Option<Vec<f32>>; 5]> {
        (0..2)
            .map(|block| {
                std::array::from_fn(|site| {
                    (site != 2).then(|| (0..4 + site).map(|u| ((step + block + u) % 10) as f32 / 10.0).collect())
                })
            })
            .collect()
    };
    let mut trace = Trace::shaped_like("seed run".into(), &scores(0));
    for step in [0, 50, 100] {
        trace.record(step, &scores(step));
    }
    vec![encode_trace(&trace), encode_trace(&Trace::new("empty".into(), &[]))]
}

pub fn packs() -> Vec<Vec<u8>> {
    let items = [
        ("train", "1-2-0001", "HELLO WORLD", TONE_FLAC),
        ("dev", "3-4-0001", "IT'S A TONE", TONE_FLAC),
    ];
    vec![write_pack("seed corpus", items)]
}

pub fn flacs() -> Vec<Vec<u8>> {
    vec![TONE_FLAC.to_vec()]
}

/// 16-bit, 8-bit and 32-bit float mono WAV files.
pub fn wavs() -> Vec<Vec<u8>> {
    let wav = |channels: u16, bits: u16, float: bool| -> Vec<u8> {
        let spec = hound::WavSpec {
            channels,
            sample_rate: 16_000,
            bits_per_sample: bits,
            sample_format: if float {
                hound::SampleFormat::Float
            } else {
                hound::SampleFormat::Int
            },
        };
        let mut bytes = std::io::Cursor::new(Vec::new());
        let mut writer = hound::WavWriter::new(&mut bytes, spec).expect("an in-memory WAV");
        for i in 0..400 * channels as i32 {
            match (float, bits) {
                (true, _) => writer.write_sample((i as f32 / 40.0).sin()),
                (false, 8) => writer.write_sample((i % 100) as i8),
                (false, _) => writer.write_sample((i * 37 % 20_000) as i16),
            }
            .expect("writing to memory");
        }
        writer.finalize().expect("finalising in memory");
        bytes.into_inner()
    };
    vec![wav(1, 16, false), wav(1, 8, false), wav(1, 32, true)]
}

pub fn librispeech_transcripts() -> Vec<Vec<u8>> {
    vec![
        b"1089-134686-0000 HE HOPED THERE WOULD BE STEW FOR DINNER\n1089-134686-0001 STUFF IT INTO YOU HIS BELLY COUNSELLED HIM\n"
            .to_vec(),
    ]
}

pub fn hypotheses() -> Vec<Vec<u8>> {
    vec![
        "utt-1 the cat sat on the mat\nutt-2 it's 10:30 in Zürich\nutt-3\n\nutt-4 co-op ÉTÉ 東京 !!\n"
            .as_bytes()
            .to_vec(),
    ]
}
