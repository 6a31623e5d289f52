//! Where a pruned model's inference time goes: the forward time of each part (subsampling and,
//! summed over blocks, FFN 1, attention, conv module, FFN 2) of a gated checkpoint cut at each
//! threshold, on the CPU backend, for one batch of 8 × 5 s of random features.
//!
//! `cargo run --example inference_parts -- CHECKPOINT [THRESHOLD ...]` (default: 0 and 0.5).
//! Each figure is the median of 15 timed runs of that part alone at the model's real shapes.

use std::time::Instant;

use prunelab_engine::burn::prelude::*;
use prunelab_engine::burn::tensor::Distribution;
use prunelab_engine::model::{AttentionMasks, Conformer, Padding};
use prunelab_engine::prune::{CutSource, Selection};
use prunelab_engine::readback::block_on;
use prunelab_engine::store::{decode_checkpoint, load_gates, load_inference_model};

const BATCH: usize = 8;
const FRAMES: usize = 500;
const RUNS: usize = 15;

/// Median milliseconds of `part`, each run read back so the work is really done.
fn median_ms(mut part: impl FnMut() -> Tensor<3>) -> f64 {
    let mut times: Vec<f64> = (0..RUNS)
        .map(|_| {
            let started = Instant::now();
            let _: Vec<f32> = part().try_into_vec_as().unwrap_or_default();
            started.elapsed().as_secs_f64() * 1e3
        })
        .collect();
    times.sort_by(f64::total_cmp);
    times[RUNS / 2]
}

fn print_parts(label: &str, model: &Conformer, device: &Device) {
    let feats = Tensor::<3>::random([BATCH, FRAMES, 80], Distribution::Normal(0.0, 1.0), device);
    let subsampling = median_ms(|| model.subsampling.forward(feats.clone()));
    let x = model.subsampling.forward(feats.clone());
    let s = x.dims()[1];
    let padding = Padding::new(&[s; BATCH], s, device);
    let mut sums = [0.0f64; 4];
    for block in &model.blocks {
        if let Some(ffn) = &block.ffn1 {
            sums[0] += median_ms(|| ffn.forward(x.clone(), None));
        }
        if let Some(attention) = &block.attention {
            sums[1] += median_ms(|| attention.forward(x.clone(), &padding, AttentionMasks::default()));
        }
        if let Some(conv) = &block.conv {
            sums[2] += median_ms(|| conv.forward(x.clone(), &padding, None));
        }
        if let Some(ffn) = &block.ffn2 {
            sums[3] += median_ms(|| ffn.forward(x.clone(), None));
        }
    }
    let whole = median_ms(|| model.forward(feats.clone(), &[FRAMES; BATCH]).logits);
    println!(
        "{label:<14} whole {whole:6.1} ms | subsampling {subsampling:5.1} | ffn1 {:5.1} | attention {:5.1} | conv {:5.1} | ffn2 {:5.1}",
        sums[0], sums[1], sums[2], sums[3]
    );
}

fn main() -> Result<(), String> {
    let mut args = std::env::args().skip(1);
    let path = args.next().ok_or("usage: inference_parts CHECKPOINT [THRESHOLD ...]")?;
    let thresholds: Vec<f64> = args
        .map(|t| t.parse().map_err(|_| format!("bad threshold {t}")))
        .collect::<Result<_, _>>()?;
    let thresholds = if thresholds.is_empty() {
        vec![0.0, 0.5]
    } else {
        thresholds
    };
    let device = Device::flex();
    let bytes = std::fs::read(&path).map_err(|e| format!("{path}: {e}"))?;
    let state = decode_checkpoint(&bytes, &path).map_err(|e| e.to_string())?;
    let model = load_inference_model(&state, None, &device, &path).map_err(|e| e.to_string())?;
    print_parts("dense", &model, &device);
    let gates = load_gates(&state, &device, &path).map_err(|e| e.to_string())?;
    let Some(gates) = gates else {
        return Ok(()); // an ungated checkpoint has no thresholds to cut at
    };
    let source = block_on(CutSource::new(
        model,
        state.config.model.clone(),
        Some(&gates),
        &state.config.prune,
        false,
    ))
    .map_err(|e| e.to_string())?;
    for threshold in thresholds {
        let cut = source.cut(Selection::Threshold(threshold)).map_err(|e| e.to_string())?;
        print_parts(&format!("threshold {threshold}"), &cut.model, &device);
    }
    Ok(())
}
