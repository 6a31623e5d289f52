//! The comparison `prunelab compare` reports: every run's size, speed and WER with paired
//! bootstrap intervals against its dense reference, and each method summarised across seeds.

use prunelab_engine::stats::{Bootstrap, MeanSd, PairedDifference, UtteranceErrors, WerEstimate, mean_sd};
use serde::Serialize;

/// Which run was scored, at which cut, and what that model costs.
#[derive(Debug, Clone, Serialize)]
pub struct RunFacts {
    pub name: String,
    /// `none`, `adaptive-dropout`, `l0` or `magnitude`.
    pub method: String,
    pub seed: u64,
    pub steps: usize,
    /// The cut that was scored ("uncut", "threshold 0.5", "own rule", "cut during training").
    pub cut: String,
    pub params: usize,
    pub encoder_params: usize,
    pub gflops_per_second: f64,
    /// Median ratio of paired timed passes, dense reference over this run (1 for a dense run).
    pub speedup: f64,
}

/// What was measured for one run before any statistics.
#[derive(Debug)]
pub struct RunScores {
    pub run: RunFacts,
    /// Per utterance, in the same order for every run.
    pub dev: Vec<UtteranceErrors>,
    pub test: Vec<UtteranceErrors>,
}

/// One run's row of the report.
#[derive(Debug, Serialize)]
pub struct RunRow {
    #[serde(flatten)]
    pub run: RunFacts,
    /// Share of the reference dense run's encoder parameters this run does without.
    pub fewer_encoder_params: f64,
    /// The dense run the differences and the speed-up are measured against.
    pub reference: String,
    pub dev: WerEstimate,
    pub test: WerEstimate,
    /// This run minus its reference (absent for the reference itself).
    pub dev_difference: Option<PairedDifference>,
    pub test_difference: Option<PairedDifference>,
}

/// A method across its seeds: mean ± sample standard deviation of each figure.
#[derive(Debug, Serialize)]
pub struct MethodSummary {
    pub method: String,
    pub seeds: usize,
    pub params: MeanSd,
    pub fewer_encoder_params: MeanSd,
    pub speedup: MeanSd,
    pub dev_wer: MeanSd,
    pub test_wer: MeanSd,
    pub dev_difference: Option<MeanSd>,
    pub test_difference: Option<MeanSd>,
}

/// Rows and summaries; the context (corpus, decoder, bootstrap) is the caller's to add.
#[derive(Debug, Serialize)]
pub struct Comparison {
    pub runs: Vec<RunRow>,
    pub methods: Vec<MethodSummary>,
}

/// The index of the dense run that `runs[i]` is compared with: the dense run of the same seed,
/// else the first dense run.
pub fn reference_index(runs: &[&RunFacts], i: usize) -> Option<usize> {
    let dense = || (0..runs.len()).filter(|&j| runs[j].method == "none");
    dense()
        .find(|&j| runs[j].seed == runs[i].seed)
        .or_else(|| dense().next())
}

impl Comparison {
    /// `dev` and `test` are the bootstrap draws over the dev and test utterances.
    pub fn build(runs: &[&RunScores], dev: &Bootstrap, test: &Bootstrap) -> Result<Self, String> {
        let facts: Vec<&RunFacts> = runs.iter().map(|s| &s.run).collect();
        let mut rows = Vec::new();
        for (i, scores) in runs.iter().enumerate() {
            let run = &scores.run;
            let r = reference_index(&facts, i)
                .ok_or("compare needs a dense run (trained with --method none) to measure differences against")?;
            let (reference, is_reference) = (runs[r], r == i);
            let named = |e: prunelab_engine::stats::BootstrapError| format!("{}: {e}", run.name);
            let difference = |b: &Bootstrap, base: &[UtteranceErrors], sys: &[UtteranceErrors]| {
                (!is_reference).then(|| b.paired_difference(base, sys)).transpose()
            };
            rows.push(RunRow {
                run: run.clone(),
                fewer_encoder_params: 1.0 - run.encoder_params as f64 / reference.run.encoder_params.max(1) as f64,
                reference: reference.run.name.clone(),
                dev: dev.estimate(&scores.dev).map_err(named)?,
                test: test.estimate(&scores.test).map_err(named)?,
                dev_difference: difference(dev, &reference.dev, &scores.dev).map_err(named)?,
                test_difference: difference(test, &reference.test, &scores.test).map_err(named)?,
            });
        }
        let methods = summarise_methods(&rows);
        Ok(Self { runs: rows, methods })
    }

    /// The report as Markdown tables: runs first, then methods across seeds.
    pub fn markdown(&self) -> String {
        let mut out = String::from(
            "| run | method | seed | cut | parameters | fewer encoder params | GFLOP/s | speed-up | dev WER [95 % CI] | Δ dev [95 % CI] | P(worse) | test WER [95 % CI] | Δ test [95 % CI] | P(worse) |\n\
             |---|---|---|---|---|---|---|---|---|---|---|---|---|---|\n",
        );
        for row in &self.runs {
            let r = &row.run;
            out += &format!(
                "| {} | {} | {} | {} | {} | {:.1} % | {:.3} | {:.2}× | {} | {} | {} | {} | {} | {} |\n",
                r.name,
                r.method,
                r.seed,
                r.cut,
                thousands(r.params),
                100.0 * row.fewer_encoder_params,
                r.gflops_per_second,
                r.speedup,
                estimate_cell(&row.dev),
                difference_cell(row.dev_difference.as_ref()),
                worse_cell(row.dev_difference.as_ref()),
                estimate_cell(&row.test),
                difference_cell(row.test_difference.as_ref()),
                worse_cell(row.test_difference.as_ref()),
            );
        }
        out += "\n| method | seeds | parameters | fewer encoder params | speed-up | dev WER | Δ dev | test WER | Δ test |\n\
                |---|---|---|---|---|---|---|---|---|\n";
        for m in &self.methods {
            out += &format!(
                "| {} | {} | {} | {} | {} | {} | {} | {} | {} |\n",
                m.method,
                m.seeds,
                thousands(m.params.mean.round() as usize),
                mean_sd_cell(&m.fewer_encoder_params, 100.0, " %"),
                mean_sd_cell(&m.speedup, 1.0, "×"),
                mean_sd_cell(&m.dev_wer, 1.0, " %"),
                m.dev_difference.map_or("—".into(), |d| signed_mean_sd_cell(&d)),
                mean_sd_cell(&m.test_wer, 1.0, " %"),
                m.test_difference.map_or("—".into(), |d| signed_mean_sd_cell(&d)),
            );
        }
        out
    }
}

/// Each method's rows (in order of first appearance) summarised across seeds.
fn summarise_methods(rows: &[RunRow]) -> Vec<MethodSummary> {
    let mut methods: Vec<&str> = Vec::new();
    for row in rows {
        if !methods.contains(&row.run.method.as_str()) {
            methods.push(&row.run.method);
        }
    }
    methods
        .into_iter()
        .map(|method| {
            let of: Vec<&RunRow> = rows.iter().filter(|r| r.run.method == method).collect();
            let figure = |f: &dyn Fn(&RunRow) -> f64| {
                let values: Vec<f64> = of.iter().map(|r| f(r)).collect();
                mean_sd(&values).unwrap_or_else(|| unreachable!("every method has a row"))
            };
            let difference = |f: &dyn Fn(&RunRow) -> Option<f64>| {
                let values: Option<Vec<f64>> = of.iter().map(|r| f(r)).collect();
                values.and_then(|v| mean_sd(&v))
            };
            MethodSummary {
                method: method.to_string(),
                seeds: of.len(),
                params: figure(&|r| r.run.params as f64),
                fewer_encoder_params: figure(&|r| r.fewer_encoder_params),
                speedup: figure(&|r| r.run.speedup),
                dev_wer: figure(&|r| r.dev.wer),
                test_wer: figure(&|r| r.test.wer),
                dev_difference: difference(&|r| r.dev_difference.map(|d| d.difference)),
                test_difference: difference(&|r| r.test_difference.map(|d| d.difference)),
            }
        })
        .collect()
}

fn estimate_cell(e: &WerEstimate) -> String {
    format!("{:.2} % [{:.2}, {:.2}]", e.wer, e.interval.low, e.interval.high)
}

fn difference_cell(d: Option<&PairedDifference>) -> String {
    d.map_or("—".into(), |d| {
        format!("{:+.2} [{:+.2}, {:+.2}]", d.difference, d.interval.low, d.interval.high)
    })
}

fn worse_cell(d: Option<&PairedDifference>) -> String {
    d.map_or("—".into(), |d| format!("{:.1} %", 100.0 * d.worse_fraction))
}

fn mean_sd_cell(m: &MeanSd, scale: f64, unit: &str) -> String {
    if m.n < 2 {
        format!("{:.2}{unit}", m.mean * scale)
    } else {
        format!("{:.2} ± {:.2}{unit}", m.mean * scale, m.sd * scale)
    }
}

fn signed_mean_sd_cell(m: &MeanSd) -> String {
    if m.n < 2 {
        format!("{:+.2}", m.mean)
    } else {
        format!("{:+.2} ± {:.2}", m.mean, m.sd)
    }
}

/// 1372821 → "1,372,821".
fn thousands(n: usize) -> String {
    let digits = n.to_string();
    let mut out = String::new();
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i) % 3 == 0 {
            out.push(',');
        }
        out.push(c);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use prunelab_engine::stats::BootstrapConfig;

    fn run(name: &str, method: &str, seed: u64, extra_errors: usize) -> RunScores {
        let utterances = |n: usize| -> Vec<UtteranceErrors> {
            (0..n)
                .map(|i| UtteranceErrors {
                    errors: i % 3 + extra_errors,
                    words: 8,
                })
                .collect()
        };
        RunScores {
            run: RunFacts {
                name: name.into(),
                method: method.into(),
                seed,
                steps: 100,
                cut: "test".into(),
                params: 1000 - 100 * extra_errors,
                encoder_params: 800 - 100 * extra_errors,
                gflops_per_second: 0.1,
                speedup: 1.0 + extra_errors as f64,
            },
            dev: utterances(30),
            test: utterances(20),
        }
    }

    #[test]
    fn runs_are_compared_with_the_dense_run_of_their_seed() {
        let runs = [
            run("dense-0", "none", 0, 0),
            run("dense-1", "none", 1, 1),
            run("l0-0", "l0", 0, 2),
            run("l0-1", "l0", 1, 2),
            run("l0-2", "l0", 2, 2),
        ];
        let config = BootstrapConfig {
            resamples: 200,
            ..BootstrapConfig::default()
        };
        let (dev, test) = (Bootstrap::new(config, 30).unwrap(), Bootstrap::new(config, 20).unwrap());
        let c = Comparison::build(&runs.iter().collect::<Vec<_>>(), &dev, &test).unwrap();
        let refs: Vec<&str> = c.runs.iter().map(|r| r.reference.as_str()).collect();
        // Seed 2 has no dense run of its own: the first dense run stands in.
        assert_eq!(refs, ["dense-0", "dense-1", "dense-0", "dense-1", "dense-0"]);
        assert!(c.runs[0].dev_difference.is_none() && c.runs[1].dev_difference.is_none());
        // Two more errors per 8-word utterance: +25 points, worse in every resample.
        let d = c.runs[2].dev_difference.unwrap();
        assert!((d.difference - 25.0).abs() < 1e-9 && d.worse_fraction == 1.0);
        // Against dense-1 (one extra error) the gap is half as large.
        assert!((c.runs[3].dev_difference.unwrap().difference - 12.5).abs() < 1e-9);
        assert!((c.runs[2].fewer_encoder_params - 0.25).abs() < 1e-12);
        let l0 = &c.methods[1];
        assert_eq!((l0.method.as_str(), l0.seeds), ("l0", 3));
        assert!(l0.dev_difference.unwrap().sd > 0.0, "25, 12.5, 25 points differ");
        assert!(
            c.methods[0].dev_difference.is_none(),
            "dense has no difference to itself"
        );
        let md = c.markdown();
        assert!(md.contains("| l0-0 | l0 | 0 |") && md.contains("+25.00"), "{md}");
        assert_eq!(thousands(1372821), "1,372,821");
        assert_eq!(thousands(999), "999");
    }

    #[test]
    fn without_a_dense_run_the_comparison_says_what_it_needs() {
        let config = BootstrapConfig {
            resamples: 10,
            ..BootstrapConfig::default()
        };
        let (dev, test) = (Bootstrap::new(config, 30).unwrap(), Bootstrap::new(config, 20).unwrap());
        let err = Comparison::build(&[&run("l0", "l0", 0, 1)], &dev, &test).unwrap_err();
        assert!(err.contains("needs a dense run"), "{err}");
    }
}
