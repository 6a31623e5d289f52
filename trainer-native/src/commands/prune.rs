//! `prunelab prune`: cut a checkpoint down to a physically smaller model and export it.

use std::path::PathBuf;

use clap::Args;
use prunelab_engine::prune::{ScoreKind, Selection, kept_map, kept_per_site, prunable_sparsity};
use prunelab_engine::store::{ExportManifest, encode_weights};
use serde_json::json;

use crate::atomic::write_atomically;
use crate::models::prunable::{RetentionSpread, open_prunable, parse_budget};
use crate::options::device::{DeviceChoice, pick};
use crate::options::parse::finite;
use crate::progress;

#[derive(Args)]
pub struct PruneArgs {
    /// Checkpoint written by `prunelab train` (it is only read).
    #[arg(long)]
    checkpoint: PathBuf,
    /// Keep units whose retention is at least this (gated runs; default: the run's threshold).
    #[arg(long, value_parser = finite, conflicts_with = "budget")]
    threshold: Option<f64>,
    /// Keep the best units that fit this target: parameters (686000), a share kept (50% or
    /// 0.5) or a FLOPs speed-up (2x), the targets the lab's "Cut to" takes.
    #[arg(long)]
    budget: Option<String>,
    /// Rank units by weight norms even for a gated run (the magnitude baseline).
    #[arg(long)]
    magnitude: bool,
    /// Output directory for model.safetensors and manifest.json.
    #[arg(long)]
    out: PathBuf,
    #[arg(long, value_enum, default_value_t = DeviceChoice::Cpu)]
    device: DeviceChoice,
    /// Print the summary as JSON.
    #[arg(long)]
    json: bool,
}

pub fn run(args: PruneArgs) -> Result<(), String> {
    let (device, _) = pick(args.device)?;
    let bar = progress::counter(3, "reading the checkpoint");
    let opened = open_prunable(&args.checkpoint, &device, args.magnitude)?;
    bar.inc(1);
    bar.set_message("cutting");
    let source = &opened.source;
    let config = &opened.state.config.model;
    let selection = match (&args.budget, args.threshold) {
        (Some(budget), _) => Selection::Budget(opened.budget_for(parse_budget(budget)?)?),
        (None, Some(t)) => Selection::Threshold(t),
        (None, None) => source
            .default_selection()
            .ok_or("a magnitude-scored model needs --budget (norms have no natural threshold)")?,
    };
    let pruned = opened.cut(selection)?;
    bar.inc(1);
    bar.set_message("writing the export");

    let manifest = ExportManifest::of_cut(
        opened.name.clone(),
        source,
        selection,
        &pruned,
        &opened.state.config,
        &opened.state.stats,
    );
    let dense = manifest.dense_params;
    std::fs::create_dir_all(&args.out).map_err(|e| format!("{}: cannot create: {e}", args.out.display()))?;
    let weights = encode_weights(&pruned.model).map_err(|e| e.to_string())?;
    write_atomically(&args.out.join("model.safetensors"), &weights)?;
    let manifest_json = manifest.to_json().map_err(|e| e.to_string())?;
    write_atomically(&args.out.join("manifest.json"), manifest_json.as_bytes())?;
    bar.finish_and_clear();

    let sites = kept_per_site(config, &pruned.keep);
    let sparsity = prunable_sparsity(config, &pruned.keep);
    let spread = match (source.kind, selection) {
        (ScoreKind::Retention, Selection::Threshold(_)) => {
            RetentionSpread::of(&source.scores, &kept_map(config, &pruned.keep))
        }
        _ => None,
    };
    if args.json {
        let sites: Vec<_> = sites
            .iter()
            .map(|(k, kept, total)| json!({"site": k.name(), "kept": kept, "total": total}))
            .collect();
        say!(
            "{}",
            json!({
                "out": args.out.display().to_string(), "method": source.method.name(), "selection": selection,
                "params": pruned.params.total(), "encoder_params": pruned.params.encoder(),
                "dense_params": dense.total(), "dense_encoder_params": dense.encoder(),
                "flops_per_second": pruned.flops_per_second, "dense_flops_per_second": manifest.dense_flops_per_second,
                "prunable_sparsity": sparsity, "sites": sites,
                "kept_retention_median": spread.and_then(|s| s.kept_median),
                "undecided_units": spread.map(|s| s.undecided),
                "chosen_by_norm": source.chooses_by_norm(selection),
            })
        );
    } else {
        say!(
            "pruned {} ({}) → {}",
            opened.name,
            source.method.name(),
            args.out.display()
        );
        say!(
            "parameters {} → {} ({:.1}% fewer; encoder {} → {}, {:.1}% fewer)",
            dense.total(),
            pruned.params.total(),
            100.0 * (1.0 - pruned.params.total() as f64 / dense.total() as f64),
            dense.encoder(),
            pruned.params.encoder(),
            100.0 * (1.0 - pruned.params.encoder() as f64 / dense.encoder() as f64)
        );
        say!(
            "prunable parameters (the sites' units) removed: {:.1}%",
            100.0 * sparsity
        );
        if source.chooses_by_norm(selection) {
            say!(
                "the gates have not learned yet (every unit's retention is the same): this cut kept the units with the largest weight norms"
            );
        }
        say!(
            "GFLOPs per second of audio {:.3} → {:.3}",
            manifest.dense_flops_per_second / 1e9,
            pruned.flops_per_second / 1e9
        );
        if let Some(spread) = spread {
            let median = spread
                .kept_median
                .map_or_else(|| "none kept".to_string(), |m| format!("median {m:.3}"));
            say!(
                "retention of kept units: {median}; units undecided (0.1 < p < 0.9): {:.1}%",
                100.0 * spread.undecided
            );
        }
        for (kind, kept, total) in sites {
            say!("  {:<12} kept {kept:>5} / {total}", kind.name());
        }
    }
    Ok(())
}
