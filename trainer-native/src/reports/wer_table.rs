//! Word error rates as the field prints them: sclite's summary block and a table of subsets.

use prunelab_engine::infer::EvalReport;

/// The sclite-like block shared by `wer` and `eval`.
pub fn print_summary(report: &EvalReport) -> Result<(), String> {
    let w = &report.words;
    say!("utterances  {:>8}", report.utterances.len());
    say!("words       {:>8}", w.reference_len);
    say!(
        "WER         {:>7.2}%  (S {} D {} I {}; {} errors)",
        report.wer(),
        w.substitutions,
        w.deletions,
        w.insertions,
        w.errors()
    );
    say!("CER         {:>7.2}%", report.cer());
    say!(
        "SER         {:>7.2}%  ({} of {} sentences with errors)",
        report.ser(),
        report.sentence_errors,
        report.utterances.len()
    );
    Ok(())
}

/// An sclite-style table with one row per subset and a pooled row when there are several.
pub fn print_subset_table(rows: &[(&str, &EvalReport)]) -> Result<(), String> {
    say!(
        "{:<18} {:>6} {:>8} {:>7} {:>7} {:>6} {:>6} {:>6} {:>7}",
        "subset",
        "utts",
        "words",
        "WER %",
        "CER %",
        "S",
        "D",
        "I",
        "SER %"
    );
    let line = |name: &str, r: &EvalReport| -> Result<(), String> {
        let w = &r.words;
        say!(
            "{name:<18} {:>6} {:>8} {:>7.2} {:>7.2} {:>6} {:>6} {:>6} {:>7.2}",
            r.utterances.len(),
            w.reference_len,
            r.wer(),
            r.cer(),
            w.substitutions,
            w.deletions,
            w.insertions,
            r.ser()
        );
        Ok(())
    };
    for (name, report) in rows {
        line(name, report)?;
    }
    Ok(())
}
