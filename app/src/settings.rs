//! The whole experiment as one typed value that round-trips through the URL hash, so a copied
//! link reproduces it: `#preset=tiny&method=adaptive-dropout&lr=0.002&…&threshold=0.5`.

use prunelab_engine::data::ShapeBuckets;
use prunelab_engine::gates::{GateConfig, Method};
use prunelab_engine::model::Preset;
use prunelab_engine::text::CharTokenizer;
use prunelab_engine::train::TrainConfig;

/// Everything a person can set in the lab.
#[derive(Debug, Clone, PartialEq)]
pub struct LabSettings {
    pub preset: Preset,
    pub method: Method,
    /// Peak learning rate of the model's AdamW.
    pub lr: f64,
    /// Adaptive dropout: strength `alpha` of the pull towards the falling target.
    pub strength: f64,
    /// Adaptive dropout: Gumbel-sigmoid temperature.
    pub temperature: f64,
    /// L0: expected sparsity the Lagrangian drives to.
    pub target_sparsity: f64,
    pub seed: u64,
    /// Length of the run (sets the schedules: learning rate, regulariser target, L0 ramp).
    pub steps: usize,
    /// Seconds of audio per training batch (padded), at most.
    pub batch_seconds: f64,
    /// Pruning threshold on retention (gated methods) or kept fraction (magnitude / none).
    pub threshold: f64,
    /// Read-only page for teaching: no controls, only the views.
    pub embed: bool,
}

impl Default for LabSettings {
    fn default() -> Self {
        Self {
            preset: Preset::Tiny,
            method: Method::AdaptiveDropout,
            lr: 2e-3,
            // Stronger than the native default: a browser run is a few hundred steps, not thousands.
            strength: 2e-4,
            temperature: 2.0 / 3.0,
            target_sparsity: 0.5,
            seed: 0,
            steps: 600,
            batch_seconds: 16.0,
            threshold: 0.5,
            embed: false,
        }
    }
}

impl LabSettings {
    /// Reads a URL hash (with or without the leading `#`). Unknown keys are ignored; a bad
    /// value keeps its default and is reported, so a mangled link still opens.
    pub fn from_hash(hash: &str) -> (Self, Vec<String>) {
        let mut settings = Self::default();
        let mut problems = Vec::new();
        for pair in hash.trim_start_matches('#').split('&').filter(|p| !p.is_empty()) {
            let (key, value) = pair.split_once('=').unwrap_or((pair, ""));
            if let Err(problem) = settings.set(key, value) {
                problems.push(format!("link setting {key}={value}: {problem}"));
            }
        }
        (settings, problems)
    }

    /// Sets one field from its URL form, checking its range.
    pub fn set(&mut self, key: &str, value: &str) -> Result<(), String> {
        let number = |lo: f64, hi: f64| -> Result<f64, String> {
            let x: f64 = value.parse().map_err(|_| "not a number".to_string())?;
            if (lo..=hi).contains(&x) {
                Ok(x)
            } else {
                Err(format!("must be between {lo} and {hi}"))
            }
        };
        match key {
            "preset" => self.preset = Preset::parse(value).ok_or("unknown preset")?,
            "method" => self.method = Method::parse(value).ok_or("unknown method")?,
            "lr" => self.lr = number(1e-5, 0.05)?,
            "strength" => self.strength = number(0.0, 0.1)?,
            "temperature" => self.temperature = number(0.05, 5.0)?,
            "target" => self.target_sparsity = number(0.0, 0.95)?,
            "seed" => self.seed = value.parse().map_err(|_| "not a whole number".to_string())?,
            "steps" => self.steps = number(10.0, 100_000.0)? as usize,
            "batch" => self.batch_seconds = number(2.0, 60.0)?,
            "threshold" => self.threshold = number(0.0, 1.0)?,
            "embed" => self.embed = matches!(value, "1" | "true" | ""),
            _ => {}
        }
        Ok(())
    }

    /// The URL hash (without `#`) that [`LabSettings::from_hash`] reads back to `self`.
    pub fn to_hash(&self) -> String {
        let mut hash = format!(
            "preset={}&method={}&lr={}&strength={}&temperature={}&target={}&seed={}&steps={}&batch={}&threshold={}",
            self.preset.name(),
            self.method.name(),
            self.lr,
            self.strength,
            self.temperature,
            self.target_sparsity,
            self.seed,
            self.steps,
            self.batch_seconds,
            self.threshold
        );
        if self.embed {
            hash.push_str("&embed=1");
        }
        hash
    }

    /// The engine's training configuration for these settings.
    pub fn train_config(&self) -> Result<TrainConfig, String> {
        let mut config = TrainConfig::for_preset(self.preset, CharTokenizer.vocab_size());
        config.seed = self.seed;
        config.steps = self.steps;
        config.optim.peak_lr = self.lr;
        config.optim.warmup_steps = (self.steps / 10).clamp(1, 200);
        // 100 frames per second of audio. The default 16 s keeps a step near a second on a laptop GPU.
        config.max_batch_frames = (self.batch_seconds * 100.0).round() as usize;
        // WebGPU compiles kernels per tensor shape: 2 s buckets give a few shapes, not one per step.
        config.shape_buckets = ShapeBuckets {
            frames: 200,
            tokens: 16,
        };
        // No periodic evaluation inside the engine: the lab evaluates when the threshold moves.
        config.eval_every = 0;
        config.prune = GateConfig {
            method: self.method,
            ..GateConfig::default()
        };
        config.prune.adaptive_dropout.strength = self.strength;
        config.prune.adaptive_dropout.temperature = self.temperature;
        config.prune.l0.target_sparsity = self.target_sparsity;
        config.prune.threshold = self.threshold;
        config.validate()?;
        Ok(config)
    }

    /// Whether the threshold slider means a retention threshold (learned gates) rather than
    /// the fraction of units to keep (ranked by weight norms).
    pub fn has_gates(&self) -> bool {
        self.method.is_gated()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hash_round_trips_every_field() {
        let settings = LabSettings {
            preset: Preset::Small,
            method: Method::L0,
            lr: 0.001,
            strength: 3e-5,
            temperature: 0.5,
            target_sparsity: 0.4,
            seed: 42,
            steps: 900,
            batch_seconds: 8.0,
            threshold: 0.25,
            embed: true,
        };
        let (back, problems) = LabSettings::from_hash(&format!("#{}", settings.to_hash()));
        assert!(problems.is_empty(), "{problems:?}");
        assert_eq!(back, settings);
    }

    #[test]
    fn bad_values_keep_defaults_and_are_reported() {
        let (settings, problems) = LabSettings::from_hash("threshold=1.7&method=dropout&seed=x&lr=0.01");
        assert_eq!(settings.threshold, LabSettings::default().threshold);
        assert_eq!(settings.method, LabSettings::default().method);
        assert_eq!(settings.lr, 0.01);
        assert_eq!(problems.len(), 3, "{problems:?}");
        assert!(problems[0].contains("threshold=1.7"), "{problems:?}");
    }

    #[test]
    fn default_settings_make_a_valid_training_config() {
        let config = LabSettings::default().train_config().unwrap();
        assert_eq!(config.max_batch_frames, 1600);
        assert_eq!(config.prune.method, Method::AdaptiveDropout);
    }
}
