//! `prunelab trajectories`: how the gates' retention moved during training, read from runs'
//! traces and drawn side by side: per site kind, each run's mean and spread at every snapshot,
//! and how far each run drifted from the first, unit by unit. Made for two ways of running the
//! same training (`--ops fused` against `--ops reference`, two seeds, two machines).

use std::path::{Path, PathBuf};

use clap::Args;
use prunelab_engine::bounded_read::{limits, read_bounded};
use prunelab_engine::store::{Trace, decode_trace};
use serde_json::json;

use crate::atomic::write_atomically;
use crate::reports::plots::{ensure_font, svg_and_png};
use crate::reports::trajectory::{Divergence, KindCurve, SPREAD_PERCENTILES, divergence, kind_curves};
use crate::reports::trajectory_chart::{RetentionOverTraining, RunCurves};

#[derive(Args)]
pub struct TrajectoriesArgs {
    /// Run directories of gated methods written by `prunelab train` (trace.pltrace inside,
    /// recorded every --snapshot-every steps), or trace files. Later runs are measured against
    /// the first.
    #[arg(required = true)]
    runs: Vec<PathBuf>,
    /// Directory for report.md, report.json and retention_over_training.svg/.png (created;
    /// earlier files replaced).
    #[arg(long, default_value = "trajectories")]
    out: PathBuf,
    /// Print the report as JSON instead of Markdown.
    #[arg(long)]
    json: bool,
}

/// A trace opened, with the name the report gives it.
struct OpenedTrace {
    name: String,
    path: PathBuf,
    trace: Trace,
}

pub fn run(args: TrajectoriesArgs) -> Result<(), String> {
    let (markdown, report_json) = write_report(&args)?;
    if args.json {
        say!("{report_json}");
    } else {
        say!("{markdown}");
        tell!("report and chart in {}", args.out.display());
    }
    Ok(())
}

/// Reads the traces and writes the chart, report.md and report.json; returns the last two.
fn write_report(args: &TrajectoriesArgs) -> Result<(String, String), String> {
    let opened: Vec<OpenedTrace> = args.runs.iter().map(|p| open_trace(p)).collect::<Result<_, _>>()?;
    let curves: Vec<Vec<KindCurve>> = opened.iter().map(|o| kind_curves(&o.trace)).collect();
    let divergences: Vec<Option<Divergence>> = opened[1..]
        .iter()
        .map(|o| divergence(&opened[0].trace, &o.trace))
        .collect();

    std::fs::create_dir_all(&args.out).map_err(|e| format!("{}: cannot create: {e}", args.out.display()))?;
    let chart = RetentionOverTraining {
        runs: opened
            .iter()
            .zip(&curves)
            .map(|(o, c)| RunCurves {
                label: o.name.clone(),
                curves: c.clone(),
            })
            .collect(),
        divergences: divergences.clone(),
    };
    let plots = match ensure_font() {
        Ok(()) => svg_and_png(&args.out, "retention_over_training", &chart)?.to_vec(),
        Err(why) => {
            tell!("warning: no chart: {why}");
            Vec::new()
        }
    };
    let report = json!({
        "spread_percentiles": [SPREAD_PERCENTILES.0, SPREAD_PERCENTILES.1],
        "runs": opened.iter().zip(&curves).map(|(o, c)| run_json(o, c)).collect::<Vec<_>>(),
        "divergences": opened[1..].iter().zip(&divergences).map(|(o, d)| divergence_json(&opened[0], o, d.as_ref())).collect::<Vec<_>>(),
        "plots": plots,
    });
    let report_json = serde_json::to_string_pretty(&report).map_err(|e| e.to_string())?;
    write_atomically(&args.out.join("report.json"), report_json.as_bytes())?;
    let markdown = markdown(&opened, &curves, &divergences, &plots);
    write_atomically(&args.out.join("report.md"), markdown.as_bytes())?;
    Ok((markdown, report_json))
}

/// Reads a run's trace: `path/trace.pltrace` for a directory, else the file itself. Only a
/// regular file is read (a pipe would block), and one without snapshots is refused.
fn open_trace(path: &Path) -> Result<OpenedTrace, String> {
    let file = if path.is_dir() {
        path.join("trace.pltrace")
    } else {
        path.to_path_buf()
    };
    let metadata = std::fs::metadata(&file).map_err(|e| match e.kind() {
        std::io::ErrorKind::NotFound if path.is_dir() => format!(
            "{}: no trace.pltrace: the run's method gates nothing (none, magnitude) or it was \
             trained with --snapshot-every 0",
            path.display()
        ),
        _ => format!("{}: cannot open: {e}", file.display()),
    })?;
    if !metadata.is_file() {
        return Err(format!("{}: not a regular file", file.display()));
    }
    let bytes = read_bounded(&file, limits::TRACE, "trace").map_err(|e| e.to_string())?;
    let trace = decode_trace(&bytes, &file.display().to_string()).map_err(|e| e.to_string())?;
    if trace.steps.is_empty() || trace.sites.is_empty() {
        return Err(format!("{}: the trace holds no retention snapshots", file.display()));
    }
    let named = if path.is_dir() {
        path
    } else {
        path.parent().unwrap_or(path)
    };
    let name = named
        .file_name()
        .map_or_else(|| path.display().to_string(), |n| n.to_string_lossy().into_owned());
    Ok(OpenedTrace {
        name,
        path: file,
        trace,
    })
}

fn run_json(opened: &OpenedTrace, curves: &[KindCurve]) -> serde_json::Value {
    json!({
        "name": opened.name, "trace": opened.path, "description": opened.trace.description,
        "steps": opened.trace.steps,
        "kinds": curves.iter().map(|c| json!({
            "kind": c.kind.name(), "units": c.units,
            "mean": c.mean.iter().map(|p| p.1).collect::<Vec<_>>(),
            "low": c.low.iter().map(|p| p.1).collect::<Vec<_>>(),
            "high": c.high.iter().map(|p| p.1).collect::<Vec<_>>(),
        })).collect::<Vec<_>>(),
    })
}

fn divergence_json(first: &OpenedTrace, run: &OpenedTrace, divergence: Option<&Divergence>) -> serde_json::Value {
    let Some(d) = divergence else {
        return json!({"run": run.name, "from": first.name, "compared": false});
    };
    json!({
        "run": run.name, "from": first.name, "compared": true,
        "steps": d.per_step.iter().map(|p| p.0).collect::<Vec<_>>(),
        "largest_per_step": d.per_step.iter().map(|p| p.1).collect::<Vec<_>>(),
        "largest": d.largest.as_ref().map(|l| json!({
            "value": l.value, "step": l.step, "block": l.block, "kind": l.kind.name(), "unit": l.unit,
        })),
    })
}

/// The report a reader sees: each run's retention at its first and last snapshot per site
/// kind, then each later run's largest difference from the first.
fn markdown(
    opened: &[OpenedTrace],
    curves: &[Vec<KindCurve>],
    divergences: &[Option<Divergence>],
    plots: &[PathBuf],
) -> String {
    let mut out = format!(
        "Retention over training of {} run(s); spread: {:.0}th to {:.0}th percentile of the units.\n\n\
         | run | site kind | units | snapshots | mean at start | mean at end | spread at end |\n\
         |---|---|---:|---:|---:|---:|---|\n",
        opened.len(),
        SPREAD_PERCENTILES.0 * 100.0,
        SPREAD_PERCENTILES.1 * 100.0,
    );
    for (run, curves) in opened.iter().zip(curves) {
        for c in curves {
            let (first, last) = (c.mean[0], c.mean[c.mean.len() - 1]);
            out += &format!(
                "| {} | {} | {} | {} | {:.4} (step {}) | {:.4} (step {}) | {:.4} to {:.4} |\n",
                run.name,
                c.kind.name(),
                c.units,
                c.mean.len(),
                first.1,
                first.0,
                last.1,
                last.0,
                c.low[c.low.len() - 1].1,
                c.high[c.high.len() - 1].1,
            );
        }
    }
    out += "\n";
    for (run, divergence) in opened[1..].iter().zip(divergences) {
        let first = &opened[0].name;
        out += &match divergence.as_ref().map(|d| (d, d.largest.as_ref())) {
            None => format!(
                "- {}: other sites than {first} (another model or method): not compared\n",
                run.name
            ),
            Some((_, None)) => format!("- {}: no snapshot step in common with {first}\n", run.name),
            Some((d, Some(l))) => format!(
                "- {}: largest difference from {first} {:.2e} (step {}, block {}, {} unit {}) over {} shared snapshots of {} units\n",
                run.name,
                l.value,
                l.step,
                l.block,
                l.kind.name(),
                l.unit,
                d.per_step.len(),
                opened[0].trace.snapshots[0].len(),
            ),
        };
    }
    let images: String = plots
        .iter()
        .filter(|p| p.extension().is_some_and(|e| e == "png"))
        .filter_map(|p| p.file_name())
        .map(|f| format!("\n![{0}]({0})\n", f.to_string_lossy()))
        .collect();
    out + &images
}

#[cfg(test)]
mod tests {
    use super::*;
    use prunelab_engine::gates::PerSite;
    use prunelab_engine::store::encode_trace;

    /// A run directory holding a trace of one block gating 3 FFN1 units, whose retention is
    /// `scores(step)` at steps 0, 10 and 20.
    fn run_dir(root: &Path, name: &str, scores: impl Fn(usize) -> [f32; 3]) -> PathBuf {
        let dir = root.join(name);
        std::fs::create_dir_all(&dir).unwrap();
        let mut trace = Trace::new(name.into(), &[[Some(3), None, None, None, None]]);
        for step in [0, 10, 20] {
            let block: PerSite<Vec<f32>> = [Some(scores(step).to_vec()), None, None, None, None];
            trace.record(step, &[block]);
        }
        std::fs::write(dir.join("trace.pltrace"), encode_trace(&trace)).unwrap();
        dir
    }

    #[test]
    fn two_runs_are_reported_and_drawn_with_their_divergence() {
        let root = std::env::temp_dir().join(format!("prunelab-trajectories-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&root);
        let a = run_dir(&root, "fused", |s| [0.9, 0.8 - s as f32 * 0.01, 0.5]);
        let b = run_dir(&root, "reference", |s| {
            [0.9, 0.8 - s as f32 * 0.01, 0.5 + s as f32 * 0.001]
        });
        let out = root.join("out");
        let args = |runs: Vec<PathBuf>| TrajectoriesArgs {
            runs,
            out: out.clone(),
            json: true,
        };
        write_report(&args(vec![a.clone(), b])).unwrap();
        let report: serde_json::Value =
            serde_json::from_slice(&std::fs::read(out.join("report.json")).unwrap()).unwrap();
        let largest = &report["divergences"][0]["largest"];
        assert_eq!(
            (largest["step"].as_u64(), largest["unit"].as_u64()),
            (Some(20), Some(2))
        );
        assert!((largest["value"].as_f64().unwrap() - 0.02).abs() < 1e-6, "{largest}");
        let mean = &report["runs"][0]["kinds"][0]["mean"];
        assert!(
            (mean[2].as_f64().unwrap() - (0.9 + 0.6 + 0.5) / 3.0).abs() < 1e-6,
            "{mean}"
        );
        // CI installs the chart font (.ci/setup): the chart must be there and name every panel.
        let svg = std::fs::read_to_string(out.join("retention_over_training.svg")).unwrap();
        assert!(svg.contains("ffn1.hidden (3 units)") && svg.contains("from fused"));

        // A run without a trace is refused by name, and so is a pipe given as a trace.
        let bare = root.join("bare");
        std::fs::create_dir_all(&bare).unwrap();
        let err = write_report(&args(vec![a.clone(), bare])).unwrap_err();
        assert!(err.contains("bare: no trace.pltrace"), "{err}");
        let err = write_report(&args(vec![root.clone()])).unwrap_err();
        assert!(err.contains("no trace.pltrace"), "{err}");
        std::fs::remove_dir_all(&root).unwrap();
    }
}
