//! Chooses the decoder's language model on training text alone: 5-fold cross-validated
//! perplexity of the train transcripts for the word bigram and for its interpolation with class
//! bigrams of several sizes and shares. Dev and test transcripts are never read.
//!
//! `cargo run --example lm_heldout [-- CORPUS.plc]` (default: the built-in corpus).

use std::collections::HashMap;

use prunelab_engine::data::CorpusPack;
use prunelab_engine::decode::{LanguageModel, LmConfig, WordId};
use prunelab_engine::text::normalize_transcript;

const FOLDS: usize = 5;

fn main() -> Result<(), String> {
    let path = std::env::args()
        .nth(1)
        .unwrap_or_else(|| concat!(env!("CARGO_MANIFEST_DIR"), "/../static/corpus.plc").to_string());
    let bytes = std::fs::read(&path).map_err(|e| format!("{path}: {e}"))?;
    let pack = CorpusPack::parse(&bytes, &path).map_err(|e| e.to_string())?;
    let mut ids = HashMap::<String, WordId>::new();
    let sentences: Vec<Vec<WordId>> = pack
        .split("train")
        .map(|entry| {
            normalize_transcript(&entry.text)
                .split_whitespace()
                .map(|w| {
                    let next = ids.len() as WordId;
                    *ids.entry(w.to_string()).or_insert(next)
                })
                .collect()
        })
        .collect();
    let vocabulary = ids.len();
    println!(
        "{} train sentences, {vocabulary} words; {FOLDS}-fold held-out perplexity",
        sentences.len()
    );

    let perplexity = |config: LmConfig| -> f64 {
        let mut total = 0.0;
        for fold in 0..FOLDS {
            let (held_out, training): (Vec<_>, Vec<_>) =
                sentences.iter().enumerate().partition(|(i, _)| i % FOLDS == fold);
            let training: Vec<Vec<WordId>> = training.into_iter().map(|(_, s)| s.clone()).collect();
            let held_out: Vec<Vec<WordId>> = held_out.into_iter().map(|(_, s)| s.clone()).collect();
            total += LanguageModel::train(vocabulary, &training, config).cross_entropy(&held_out);
        }
        (total / FOLDS as f64).exp()
    };
    let word_only = perplexity(LmConfig {
        classes: 1,
        class_share: 0.0,
    });
    println!("word bigram alone: {word_only:.1}");
    let shares = [0.3, 0.5, 0.7, 0.8, 0.9, 0.95, 0.99];
    println!(
        "{:>8} {}",
        "classes",
        shares.map(|s| format!("{:>8}", format!("λ {s}"))).join("")
    );
    for classes in [4, 8, 12, 16, 20, 24, 32] {
        let row: Vec<String> = shares
            .iter()
            .map(|&class_share| format!("{:>8.1}", perplexity(LmConfig { classes, class_share })))
            .collect();
        println!("{classes:>8} {}", row.join(""));
    }
    Ok(())
}
