//! `prunelab wer`: sclite-style scoring of Kaldi-style transcript files, with a bootstrap
//! confidence interval, and a paired comparison against a baseline's hypotheses.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use clap::Args;
use prunelab_engine::infer::{EvalReport, UtteranceResult, summarise};
use prunelab_engine::stats::{BootstrapConfig, PairedDifference, UtteranceErrors, WerEstimate};
use prunelab_engine::text::{
    normalize_transcript, parse_transcript_lines, score_chars, score_words, tokens_lost_in_normalisation,
};
use serde::Serialize;

use crate::options::bootstrap::{BootstrapArgs, format_interval};
use crate::reports::wer_table::print_summary;

#[derive(Args)]
pub struct WerArgs {
    /// Reference transcripts, one `<utt-id> WORDS…` per line.
    reference: PathBuf,
    /// Hypothesis transcripts in the same format.
    hypothesis: PathBuf,
    /// Another system's hypotheses for the same references: report the difference
    /// (hypothesis − baseline) with its paired-bootstrap interval.
    #[arg(long)]
    baseline: Option<PathBuf>,
    #[command(flatten)]
    bootstrap: BootstrapArgs,
    /// Print the result as JSON.
    #[arg(long)]
    json: bool,
}

#[derive(Serialize)]
struct WerOutput<'a> {
    wer: f64,
    /// The WER's bootstrap interval (utterances in the order of their ids).
    estimate: WerEstimate,
    /// With --baseline: the baseline's WER and the paired difference.
    #[serde(skip_serializing_if = "Option::is_none")]
    baseline: Option<WerEstimate>,
    #[serde(skip_serializing_if = "Option::is_none")]
    difference: Option<PairedDifference>,
    bootstrap: BootstrapConfig,
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
    let report = score(&reference, &hypothesis);
    let baseline = match &args.baseline {
        Some(path) => Some(score(&reference, &read_transcripts(path)?)),
        None => None,
    };
    let bootstrap = args
        .bootstrap
        .draw(report.utterances.len())
        .map_err(|e| format!("{}: {e}", args.reference.display()))?;
    let errors = |r: &EvalReport| -> Vec<UtteranceErrors> { r.utterances.iter().map(|u| (&u.words).into()).collect() };
    let system = errors(&report);
    let estimate = bootstrap.estimate(&system).map_err(|e| e.to_string())?;
    let (baseline_estimate, difference) = match baseline.as_ref().map(errors) {
        Some(base) => (
            Some(bootstrap.estimate(&base).map_err(|e| e.to_string())?),
            Some(bootstrap.paired_difference(&base, &system).map_err(|e| e.to_string())?),
        ),
        None => (None, None),
    };
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
    if args.json {
        let out = WerOutput {
            wer: report.wer(),
            estimate,
            baseline: baseline_estimate,
            difference,
            bootstrap: *bootstrap.config(),
            cer: report.cer(),
            ser: report.ser(),
            report: &report,
            missing_from_hypothesis: &missing_from_hypothesis,
            missing_from_reference: &missing_from_reference,
        };
        say!("{}", serde_json::to_string_pretty(&out).map_err(|e| e.to_string())?);
    } else {
        print_summary(&report)?;
        let config = bootstrap.config();
        say!(
            "{:.0} % interval: {} ({} resamples of {} utterances, seed {})",
            100.0 * config.confidence,
            format_interval(&estimate.interval),
            config.resamples,
            estimate.utterances,
            config.seed
        );
        if let (Some(b), Some(d)) = (baseline_estimate, difference) {
            say!(
                "baseline: WER {:.2}% [{}]; difference {:+.2} points [{:+.2}, {:+.2}], worse in {:.1} % of resamples",
                b.wer,
                format_interval(&b.interval),
                d.difference,
                d.interval.low,
                d.interval.high,
                100.0 * d.worse_fraction
            );
        }
        for id in &missing_from_hypothesis {
            say!("missing from hypothesis (scored as all deletions): {id}");
        }
        for id in &missing_from_reference {
            say!("missing from reference (not scored): {id}");
        }
    }
    Ok(())
}

/// Scores every reference utterance, in id order; one missing from `hypothesis` is scored as
/// an empty hypothesis.
fn score(reference: &BTreeMap<String, String>, hypothesis: &BTreeMap<String, String>) -> EvalReport {
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
    summarise(results)
}

/// Reads `<utt-id> WORDS…` lines; text is normalised like training transcripts, and tokens
/// that normalisation deletes (numbers, symbols, other scripts) are counted in a warning.
fn read_transcripts(path: &Path) -> Result<BTreeMap<String, String>, String> {
    let content = std::fs::read(path).map_err(|e| format!("{}: cannot read: {e}", path.display()))?;
    // Scoring a file with a bad line would score another set of utterances: refused.
    let parsed = parse_transcript_lines(&content);
    if let Some(problem) = parsed.problems.first() {
        return Err(format!("{}: {problem}", path.display()));
    }
    let lines = parsed.lines;
    let mut out = BTreeMap::new();
    let mut lost: Vec<(String, String)> = Vec::new();
    for line in lines {
        lost.extend(tokens_lost_in_normalisation(&line.text).map(|token| (line.id.clone(), token.to_string())));
        out.insert(line.id, normalize_transcript(&line.text));
    }
    if let Some((id, token)) = lost.first() {
        tell!(
            "warning: {}: {} token(s) with no letter A–Z were removed by normalisation and are not scored (first: {token:?} in {id})",
            path.display(),
            lost.len()
        );
    }
    Ok(out)
}
