//! `prunelab wer`: sclite-style scoring of two Kaldi-style transcript files.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use clap::Args;
use prunelab_engine::text::{normalize_transcript, score_chars, score_words};
use prunelab_engine::train::{EvalReport, UtteranceResult, summarise};
use serde::Serialize;

use crate::reports::wer_table::print_summary;

#[derive(Args)]
pub struct WerArgs {
    /// Reference transcripts, one `<utt-id> WORDS…` per line.
    reference: PathBuf,
    /// Hypothesis transcripts in the same format.
    hypothesis: PathBuf,
    /// Print the result as JSON.
    #[arg(long)]
    json: bool,
}

#[derive(Serialize)]
struct WerOutput<'a> {
    wer: f64,
    cer: f64,
    ser: f64,
    report: &'a EvalReport,
    /// In the reference but not the hypothesis: scored as empty hypotheses (all deletions).
    missing_from_hypothesis: &'a [String],
    /// In the hypothesis but not the reference: not scored.
    missing_from_reference: &'a [String],
}

pub fn run(args: WerArgs) -> Result<(), String> {
    let reference = read_transcripts(&args.reference)?;
    let hypothesis = read_transcripts(&args.hypothesis)?;
    let missing_from_hypothesis: Vec<String> = reference
        .keys()
        .filter(|id| !hypothesis.contains_key(*id))
        .cloned()
        .collect();
    let missing_from_reference: Vec<String> = hypothesis
        .keys()
        .filter(|id| !reference.contains_key(*id))
        .cloned()
        .collect();
    let results = reference
        .iter()
        .map(|(id, r)| {
            let h = hypothesis.get(id).cloned().unwrap_or_default();
            UtteranceResult {
                id: id.clone(),
                words: score_words(r, &h),
                chars: score_chars(r, &h),
                reference: r.clone(),
                hypothesis: h,
            }
        })
        .collect();
    let report = summarise(results);
    if args.json {
        let out = WerOutput {
            wer: report.wer(),
            cer: report.cer(),
            ser: report.ser(),
            report: &report,
            missing_from_hypothesis: &missing_from_hypothesis,
            missing_from_reference: &missing_from_reference,
        };
        println!("{}", serde_json::to_string_pretty(&out).map_err(|e| e.to_string())?);
    } else {
        print_summary(&report);
        for id in &missing_from_hypothesis {
            println!("missing from hypothesis (scored as all deletions): {id}");
        }
        for id in &missing_from_reference {
            println!("missing from reference (not scored): {id}");
        }
    }
    Ok(())
}

/// Reads `<utt-id> WORDS…` lines; text is normalised like training transcripts.
fn read_transcripts(path: &Path) -> Result<BTreeMap<String, String>, String> {
    let content = std::fs::read_to_string(path).map_err(|e| format!("{}: cannot read: {e}", path.display()))?;
    let mut out = BTreeMap::new();
    for (number, line) in content.lines().enumerate() {
        if line.trim().is_empty() {
            continue;
        }
        let (id, text) = line.trim().split_once(char::is_whitespace).unwrap_or((line.trim(), ""));
        if out.insert(id.to_string(), normalize_transcript(text)).is_some() {
            return Err(format!(
                "{}:{}: utterance id {id} appears twice",
                path.display(),
                number + 1
            ));
        }
    }
    Ok(out)
}
