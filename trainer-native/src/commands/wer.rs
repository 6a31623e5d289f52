//! `prunelab wer`: sclite-style scoring of Kaldi-style transcript files, with a bootstrap
//! confidence interval, and a paired comparison against a baseline's hypotheses.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use clap::Args;
use prunelab_engine::bounded_read::{limits, read_bounded};
use prunelab_engine::infer::{EvalReport, UtteranceResult, summarise};
use prunelab_engine::stats::{BootstrapConfig, PairedDifference, UtteranceErrors, WerEstimate};
use prunelab_engine::text::{ScoringRules, parse_transcript_lines, score_chars, score_words};
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
    /// Lower-case both sides before scoring (by default case counts, as sclite scores).
    #[arg(long)]
    fold_case: bool,
    /// Remove punctuation (Unicode's P* categories: . , ? ' - « and the like) before scoring;
    /// letters and digits of every script always count.
    #[arg(long)]
    strip_punctuation: bool,
    /// Score even when the files do not hold the same utterances: one missing from the
    /// hypothesis (or the baseline) counts as an empty hypothesis, all deletions; one that only
    /// the hypothesis has is left out. Without it such files are refused, naming the ids.
    #[arg(long)]
    allow_missing: bool,
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
    /// What was done to the text before scoring.
    rules: ScoringRules,
    cer: f64,
    ser: f64,
    report: &'a EvalReport,
    /// In the reference but not the hypothesis (with --allow-missing): scored as empty
    /// hypotheses (all deletions).
    missing_from_hypothesis: &'a [String],
    /// In the hypothesis but not the reference (with --allow-missing): not scored.
    missing_from_reference: &'a [String],
}

pub fn run(args: WerArgs) -> Result<(), String> {
    let rules = ScoringRules {
        fold_case: args.fold_case,
        strip_punctuation: args.strip_punctuation,
    };
    let reference = read_transcripts(&args.reference, &rules)?;
    let hypothesis = read_transcripts(&args.hypothesis, &rules)?;
    let (missing_from_hypothesis, missing_from_reference) = check_same_utterances(
        &reference,
        (&args.reference, &hypothesis, &args.hypothesis),
        args.allow_missing,
    )?;
    let report = score(&reference, &hypothesis);
    let baseline = match &args.baseline {
        Some(path) => {
            let baseline = read_transcripts(path, &rules)?;
            check_same_utterances(&reference, (&args.reference, &baseline, path), args.allow_missing)?;
            Some(score(&reference, &baseline))
        }
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
    if args.json {
        let out = WerOutput {
            wer: report.wer(),
            estimate,
            baseline: baseline_estimate,
            difference,
            bootstrap: *bootstrap.config(),
            rules,
            cer: report.cer(),
            ser: report.ser(),
            report: &report,
            missing_from_hypothesis: &missing_from_hypothesis,
            missing_from_reference: &missing_from_reference,
        };
        say!("{}", serde_json::to_string_pretty(&out).map_err(|e| e.to_string())?);
    } else {
        say!("scored    {}", rules.describe());
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

/// The ids in `reference` missing from `other` and those only `other` has. Unless `allow` is
/// set, either kind refuses the files: scoring them would score another set of utterances.
fn check_same_utterances(
    reference: &BTreeMap<String, String>,
    (reference_path, other, other_path): (&Path, &BTreeMap<String, String>, &Path),
    allow: bool,
) -> Result<(Vec<String>, Vec<String>), String> {
    let only_in = |a: &BTreeMap<String, String>, b: &BTreeMap<String, String>| -> Vec<String> {
        a.keys().filter(|id| !b.contains_key(*id)).cloned().collect()
    };
    let (missing, extra) = (only_in(reference, other), only_in(other, reference));
    let first_few = |ids: &[String]| ids.iter().take(5).cloned().collect::<Vec<_>>().join(", ");
    if !allow && !missing.is_empty() {
        return Err(format!(
            "{}: {} of the {} utterances in {} are missing (first: {}); pass --allow-missing to score them as empty hypotheses (all deletions)",
            other_path.display(),
            missing.len(),
            reference.len(),
            reference_path.display(),
            first_few(&missing)
        ));
    }
    if !allow && !extra.is_empty() {
        return Err(format!(
            "{}: {} utterance(s) are not in {} (first: {}); pass --allow-missing to leave them out",
            other_path.display(),
            extra.len(),
            reference_path.display(),
            first_few(&extra)
        ));
    }
    Ok((missing, extra))
}

/// Reads `<utt-id> WORDS…` lines (see `parse_transcript_lines`: byte-order mark dropped,
/// composed Unicode, every bad line refused by number) and prepares each text by `rules`.
fn read_transcripts(path: &Path, rules: &ScoringRules) -> Result<BTreeMap<String, String>, String> {
    let content = read_bounded(path, limits::TRANSCRIPTS, "transcript file").map_err(|e| e.to_string())?;
    // Scoring a file with a bad line would score another set of utterances: refused.
    let parsed = parse_transcript_lines(&content);
    if let Some(problem) = parsed.problems.first() {
        return Err(format!("{}: {problem}", path.display()));
    }
    Ok(parsed
        .lines
        .into_iter()
        .map(|line| (line.id, rules.apply(&line.text)))
        .collect())
}
