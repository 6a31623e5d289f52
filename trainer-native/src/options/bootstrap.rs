//! `--resamples` and `--bootstrap-seed`: the paired bootstrap behind every interval the CLI
//! prints (`wer`, `compare`).

use clap::Args;
use prunelab_engine::stats::{Bootstrap, BootstrapConfig, Interval};

#[derive(Args, Clone, Debug)]
pub struct BootstrapArgs {
    /// Bootstrap resamples over utterances for the 95 % intervals.
    #[arg(long, default_value_t = BootstrapConfig::default().resamples)]
    resamples: usize,
    /// Seed of the resampling: the same seed draws the same utterances for every system.
    #[arg(long, default_value_t = BootstrapConfig::default().seed)]
    bootstrap_seed: u64,
}

/// The most resamples accepted: 100,000 already pins a 95 % interval's ends to about ±0.02
/// of a standard error; more only costs time and memory (`resamples × utterances` indices).
const MAX_RESAMPLES: usize = 100_000;

impl BootstrapArgs {
    /// The draws over `utterances` utterances.
    pub fn draw(&self, utterances: usize) -> Result<Bootstrap, String> {
        if !(1..=MAX_RESAMPLES).contains(&self.resamples) {
            return Err(format!(
                "--resamples {} is outside [1, {MAX_RESAMPLES}]",
                self.resamples
            ));
        }
        let config = BootstrapConfig {
            resamples: self.resamples,
            seed: self.bootstrap_seed,
            ..BootstrapConfig::default()
        };
        Bootstrap::new(config, utterances).map_err(|e| e.to_string())
    }
}

/// `low–high` in percent with two decimals.
pub fn format_interval(interval: &Interval) -> String {
    format!("{:.2}–{:.2}", interval.low, interval.high)
}
