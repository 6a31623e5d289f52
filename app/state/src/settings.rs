//! The whole experiment as one typed value that round-trips through the URL hash, so a copied
//! link reproduces it: `#preset=tiny&method=adaptive-dropout&lr=0.002&…&threshold=0.5`.

use prunelab_engine::audio::FbankConfig;
use prunelab_engine::data::ShapeBuckets;
use prunelab_engine::gates::{self, GateConfig, Method};
use prunelab_engine::kernels::OpsPath;
use prunelab_engine::limits::Limit;
use prunelab_engine::model::Preset;
use prunelab_engine::optim::OptimConfig;
use prunelab_engine::prune::{CutTarget, Knob, KnobMeaning};
use prunelab_engine::text::CharTokenizer;
use prunelab_engine::train::{self, DistillConfig, TrainConfig};

/// The trained start's file, served from `static/`.
pub const TRAINED_START: &str = "trained-tiny.plc";
/// Dev utterances a cut may be scored on: from one to the built-in dev split's 48 (the default).
pub const DEV_UTTERANCES: (usize, usize) = (1, 48);
/// Record the heatmaps every this many steps (a browser run is a few hundred steps).
const SNAPSHOT_EVERY: usize = 5;
/// Dense/cut pairs of passes a cut is timed in: fewest, default, most.
pub const TIMED_PAIRS: (usize, usize, usize) = (1, 3, 9);
/// Score the slider's cut on dev every this many steps while training.
const EVAL_EVERY: usize = 100;

/// Where a run's weights begin.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Start {
    /// The trained dense `tiny` model the lab ships (`static/trained-tiny.plc`): adaptive
    /// dropout continues training it with gates that keep nearly everything, L0 also distils
    /// from it as its teacher, magnitude cuts it after the first step and fine-tunes.
    Trained,
    /// Random weights: the model hears nothing for the first few thousand steps.
    Scratch,
}

impl Start {
    pub fn name(self) -> &'static str {
        match self {
            Start::Trained => "trained",
            Start::Scratch => "scratch",
        }
    }

    pub fn parse(text: &str) -> Option<Self> {
        [Start::Trained, Start::Scratch].into_iter().find(|s| s.name() == text)
    }

    /// Where a run starts from, in words ("… from the trained model").
    pub fn describe(self) -> &'static str {
        match self {
            Start::Trained => "the trained model",
            Start::Scratch => "scratch",
        }
    }

    /// Adaptive dropout's strength α for a browser run of 600 steps. From scratch, strong
    /// enough to prune within the run (the native default is 5e-6 over 4,000 steps); from the
    /// trained start ten times weaker: 2e-4 collapsed it (540 of 6,336 units, greedy dev WER
    /// 94 % at step 400), 2e-5 ends with a 42 % cut at +6.6 points (docs/results.md).
    pub fn default_strength(self) -> f64 {
        match self {
            Start::Trained => 2e-5,
            Start::Scratch => 2e-4,
        }
    }
}

/// Everything a person can set in the lab.
#[derive(Debug, Clone, PartialEq)]
pub struct LabSettings {
    /// The trained model, or random weights.
    pub start: Start,
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
    /// Where the slider cuts: a retention threshold or a share of parameters removed,
    /// as the method's [`Knob`] says.
    pub threshold: f64,
    /// Dev utterances a cut is scored on, from the first (at most the split's 48; the whole
    /// split has 377 words, so one word is 0.27 points of WER). Fewer score faster, coarser.
    pub dev_utterances: usize,
    /// Steps between snapshots of the gates (the heatmaps' frames). Fewer show a short run's
    /// gates sooner, at a copy of every gate per snapshot.
    pub snapshot_every: usize,
    /// Dense/cut pairs of passes each cut is timed in (the medians are reported). Fewer time a
    /// cut sooner, on a noisier median.
    pub timed_pairs: usize,
    /// Read-only page for teaching: no controls, only the views.
    pub embed: bool,
    /// Methods trained side by side from the same start on the same batches (empty: one run,
    /// the usual page). Each runs with these settings, its own method and the slider where
    /// that method's knob rests ([`LabSettings::for_method`]).
    pub compare: Vec<Method>,
    /// How the model's operations run on WebGPU: the fused kernels (the default) or burn's
    /// composed operations (`#ops=reference`), to compare the two paths in the page.
    pub ops: OpsPath,
}

impl Default for LabSettings {
    fn default() -> Self {
        let gates = GateConfig::default();
        Self {
            start: Start::Trained,
            preset: Preset::Tiny,
            method: Method::AdaptiveDropout,
            lr: OptimConfig::default().peak_lr,
            strength: Start::Trained.default_strength(),
            temperature: gates.adaptive_dropout.temperature,
            target_sparsity: gates.l0.target_sparsity,
            seed: 0,
            steps: 600,
            batch_seconds: 16.0,
            threshold: gates.threshold,
            dev_utterances: DEV_UTTERANCES.1,
            snapshot_every: SNAPSHOT_EVERY,
            timed_pairs: TIMED_PAIRS.1,
            embed: false,
            compare: Vec::new(),
            ops: OpsPath::default(),
        }
    }
}

/// The methods the lab's Compare button trains: the three pruning methods.
pub const COMPARED_METHODS: [Method; 3] = [Method::AdaptiveDropout, Method::L0, Method::Magnitude];

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

    /// Sets one field from its URL form, checking it against the engine's range for it.
    pub fn set(&mut self, key: &str, value: &str) -> Result<(), String> {
        let number = |limit: Limit| -> Result<f64, String> {
            let x: f64 = value.parse().map_err(|_| "not a number".to_string())?;
            limit.check(x).map_err(|e| e.to_string())
        };
        let whole = || -> Result<usize, String> { value.parse().map_err(|_| "not a whole number".to_string()) };
        match key {
            "start" => {
                let start = Start::parse(value).ok_or("unknown start (trained or scratch)")?;
                // A strength left at the other start's default follows the start.
                if self.strength == self.start.default_strength() {
                    self.strength = start.default_strength();
                }
                self.start = start;
            }
            "preset" => self.preset = Preset::parse(value).ok_or("unknown preset")?,
            "method" => {
                let method = Method::parse(value).ok_or("unknown method")?;
                // A slider left where the old method's knob rests moves to where the new one's
                // does: a share removed of 0.5 from a retention threshold of 0.5 would halve an
                // L0 model before it has learned anything.
                let run_threshold = GateConfig::default().threshold;
                if self.threshold == Knob::of(self.method).default_value(run_threshold) {
                    self.threshold = Knob::of(method).default_value(run_threshold);
                }
                self.method = method;
            }
            "lr" => self.lr = number(train::limit::PEAK_LR)?,
            "strength" => self.strength = number(gates::limit::STRENGTH)?,
            "temperature" => self.temperature = number(gates::limit::TEMPERATURE)?,
            "target" => self.target_sparsity = number(gates::limit::TARGET_SPARSITY)?,
            "seed" => self.seed = value.parse().map_err(|_| "not a whole number".to_string())?,
            "steps" => self.steps = train::limit::STEPS.check_count(whole()?).map_err(|e| e.to_string())?,
            "batch" => {
                let seconds: f64 = value.parse().map_err(|_| "not a number".to_string())?;
                // The engine's limit is on padded frames.
                train::limit::MAX_BATCH_FRAMES
                    .check(FbankConfig::default().frames_in(seconds).round())
                    .map_err(|e| e.to_string())?;
                self.batch_seconds = seconds;
            }
            "threshold" => self.threshold = number(gates::limit::THRESHOLD)?,
            "dev" => {
                let (low, high) = DEV_UTTERANCES;
                self.dev_utterances = Some(whole()?)
                    .filter(|n| (low..=high).contains(n))
                    .ok_or(format!("dev utterances must be from {low} to {high}"))?;
            }
            "snapshot" => {
                self.snapshot_every = Some(whole()?)
                    .filter(|&n| n >= 1)
                    .ok_or("snapshots must be at least 1 step apart")?;
            }
            "pairs" => {
                let (low, high) = (TIMED_PAIRS.0, TIMED_PAIRS.2);
                self.timed_pairs = Some(whole()?)
                    .filter(|n| (low..=high).contains(n))
                    .ok_or(format!("timed pairs must be from {low} to {high}"))?;
            }
            "embed" => self.embed = matches!(value, "1" | "true" | ""),
            "compare" => self.compare = parse_methods(value)?,
            "ops" => self.ops = value.parse()?,
            _ => {}
        }
        Ok(())
    }

    /// The URL hash (without `#`) that [`LabSettings::from_hash`] reads back to `self`.
    pub fn to_hash(&self) -> String {
        let mut hash = format!(
            "start={}&preset={}&method={}&lr={}&strength={}&temperature={}&target={}&seed={}&steps={}&batch={}&threshold={}",
            self.start.name(),
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
        if self.dev_utterances != DEV_UTTERANCES.1 {
            hash.push_str(&format!("&dev={}", self.dev_utterances));
        }
        if self.snapshot_every != SNAPSHOT_EVERY {
            hash.push_str(&format!("&snapshot={}", self.snapshot_every));
        }
        if self.timed_pairs != TIMED_PAIRS.1 {
            hash.push_str(&format!("&pairs={}", self.timed_pairs));
        }
        if self.embed {
            hash.push_str("&embed=1");
        }
        if !self.compare.is_empty() {
            let names: Vec<&str> = self.compare.iter().map(|m| m.name()).collect();
            hash.push_str(&format!("&compare={}", names.join(",")));
        }
        if self.ops != OpsPath::default() {
            hash.push_str(&format!("&ops={}", self.ops));
        }
        hash
    }

    /// The engine's training configuration for these settings.
    pub fn train_config(&self) -> Result<TrainConfig, String> {
        let mut config = TrainConfig::for_preset(self.preset, CharTokenizer.vocab_size());
        config.seed = self.seed;
        config.steps = self.steps;
        config.optim.peak_lr = self.lr;
        config.optim.warmup_steps = OptimConfig::default_warmup(self.steps);
        // The default 16 s keeps a step near a second on a laptop GPU.
        config.max_batch_frames = config.fbank.frames_in(self.batch_seconds).round() as usize;
        // WebGPU compiles kernels per tensor shape: 2 s buckets give a few shapes, not one per step.
        config.shape_buckets = ShapeBuckets {
            frames: 200,
            tokens: 16,
        };
        config.eval_every = EVAL_EVERY;
        config.prune = GateConfig {
            method: self.method,
            snapshot_every: self.snapshot_every,
            ..GateConfig::default()
        };
        config.prune.adaptive_dropout.strength = self.strength;
        config.prune.adaptive_dropout.temperature = self.temperature;
        config.prune.l0.target_sparsity = self.target_sparsity;
        config.prune.threshold = self.threshold;
        if self.start == Start::Trained {
            // Magnitude prunes the trained model at once (after the first step) to the same
            // share L0 targets, and fine-tunes the rest of the run (a 0 % target: no cut).
            config.prune.magnitude_budget =
                (self.target_sparsity > 0.0).then(|| CutTarget::Share(1.0 - self.target_sparsity));
            config.prune.magnitude_prune_at = 0.0;
            if self.method == Method::L0 {
                config.distill = Some(DistillConfig {
                    teacher: TRAINED_START.into(),
                    ..DistillConfig::default()
                });
            }
        }
        config.validate().map_err(|e| e.to_string())?;
        Ok(config)
    }

    /// These settings for one method of a comparison: its own method, the slider where that
    /// method's knob rests, no comparison of its own.
    pub fn for_method(&self, method: Method) -> Self {
        let run_threshold = GateConfig::default().threshold;
        Self {
            method,
            threshold: Knob::of(method).default_value(run_threshold),
            compare: Vec::new(),
            ..self.clone()
        }
    }

    /// What the slider means for the chosen method.
    pub fn knob(&self) -> Knob {
        Knob::of(self.method)
    }

    /// Whether the slider is a retention threshold (rather than a share of parameters removed).
    pub fn knob_is_threshold(&self) -> bool {
        self.knob().meaning == KnobMeaning::RetentionThreshold
    }
}

/// A comparison's methods from their URL form, `adaptive-dropout,l0,magnitude`: at least two,
/// each once.
/// What a number field shows for `value`: six significant digits (2/3 shows as 0.666667),
/// in exponent form outside 1e-4 to 1e9, so that 1e308 and 2e-8 show as themselves, not as an
/// empty field (the former rounding made 1e308 infinite) or 0.
pub fn field_text(value: f64) -> String {
    let rounded: f64 = format!("{value:.5e}").parse().unwrap_or(value);
    if rounded == 0.0 || (1e-4..1e9).contains(&rounded.abs()) {
        format!("{rounded}")
    } else {
        format!("{rounded:e}")
    }
}

fn parse_methods(value: &str) -> Result<Vec<Method>, String> {
    let mut methods = Vec::new();
    for name in value.split(',').map(str::trim) {
        let method = Method::parse(name).ok_or(format!("unknown method {name:?}"))?;
        if methods.contains(&method) {
            return Err(format!("{name} is named twice"));
        }
        methods.push(method);
    }
    if methods.len() < 2 {
        return Err("a comparison needs at least two methods".into());
    }
    Ok(methods)
}

#[cfg(test)]
mod tests {
    #[test]
    fn a_number_field_shows_what_it_holds_at_every_magnitude() {
        for (value, shown) in [
            (2.0 / 3.0, "0.666667"),
            (16.0, "16"),
            (0.002, "0.002"),
            (2e-8, "2e-8"),
            (1e308, "1e308"),
            (123456789012.0, "1.23457e11"),
            (0.0, "0"),
        ] {
            assert_eq!(field_text(value), shown);
        }
        // What the field shows reads back as what the settings hold, to six digits.
        let mut settings = LabSettings::default();
        settings.set("temperature", "1e308").unwrap();
        assert_eq!(field_text(settings.temperature).parse::<f64>().unwrap(), 1e308);
    }

    use super::*;

    #[test]
    fn hash_round_trips_every_field() {
        let settings = LabSettings {
            start: Start::Scratch,
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
            dev_utterances: 12,
            snapshot_every: 2,
            timed_pairs: 1,
            embed: true,
            compare: vec![Method::Magnitude, Method::None],
            ops: OpsPath::Reference,
        };
        let (back, problems) = LabSettings::from_hash(&format!("#{}", settings.to_hash()));
        assert!(problems.is_empty(), "{problems:?}");
        assert_eq!(back, settings);
    }

    #[test]
    fn bad_values_keep_defaults_and_are_reported() {
        let (settings, problems) = LabSettings::from_hash(
            "threshold=1.7&method=dropout&seed=x&lr=0.01&start=pretrained&dev=49&snapshot=0&pairs=10&ops=fast",
        );
        assert_eq!(settings.threshold, LabSettings::default().threshold);
        assert_eq!(settings.method, LabSettings::default().method);
        assert_eq!(settings.lr, 0.01);
        assert_eq!(settings.start, Start::Trained);
        assert_eq!(settings.dev_utterances, 48);
        assert_eq!(settings.snapshot_every, SNAPSHOT_EVERY);
        assert_eq!(settings.timed_pairs, TIMED_PAIRS.1);
        assert_eq!(settings.ops, OpsPath::Fused);
        assert_eq!(problems.len(), 8, "{problems:?}");
        assert!(problems[3].contains("start=pretrained"), "{problems:?}");
        assert!(
            problems[4].contains("dev=49: dev utterances must be from 1 to 48"),
            "{problems:?}"
        );
        assert!(
            problems[5].contains("snapshot=0: snapshots must be at least 1 step apart"),
            "{problems:?}"
        );
        assert!(
            problems[6].contains("pairs=10: timed pairs must be from 1 to 9"),
            "{problems:?}"
        );
        assert!(problems[0].contains("threshold=1.7"), "{problems:?}");
    }

    #[test]
    fn default_settings_make_a_valid_training_config() {
        let config = LabSettings::default().train_config().unwrap();
        assert_eq!(config.max_batch_frames, 1600);
        assert_eq!(config.prune.method, Method::AdaptiveDropout);
        // The run's own schedule: the engine's `Run` snapshots and evaluates at these steps.
        assert_eq!(
            (config.prune.snapshot_every, config.eval_every),
            (SNAPSHOT_EVERY, EVAL_EVERY)
        );
    }

    #[test]
    fn link_values_are_checked_against_the_engines_ranges_and_named_like_its_errors() {
        let mut settings = LabSettings::default();
        let lr = settings.set("lr", "1.5").unwrap_err();
        assert_eq!(lr, train::limit::PEAK_LR.check(1.5).unwrap_err().to_string());
        assert!(
            settings
                .set("target", "1")
                .unwrap_err()
                .contains("target sparsity 1 must be in [0, 1)")
        );
        assert!(settings.set("steps", "0").is_err() && settings.set("steps", "2.5").is_err());
        assert!(settings.set("batch", "0.5").is_err(), "below the engine's 1 s");
        settings.set("batch", "4").unwrap();
        assert_eq!(settings.train_config().unwrap().max_batch_frames, 400);
        // Defaults are the engine's where the lab has no reason to differ.
        let defaults = LabSettings::default();
        assert_eq!(defaults.lr, OptimConfig::default().peak_lr);
        assert_eq!(defaults.threshold, GateConfig::default().threshold);
    }

    #[test]
    fn from_the_trained_start_l0_distils_from_it_and_magnitude_cuts_at_once_to_the_target() {
        let config = |start, method| {
            LabSettings {
                start,
                method,
                target_sparsity: 0.4,
                ..LabSettings::default()
            }
            .train_config()
            .unwrap()
        };
        let l0 = config(Start::Trained, Method::L0);
        assert_eq!(l0.distill.map(|d| d.teacher), Some(TRAINED_START.to_string()));
        let magnitude = config(Start::Trained, Method::Magnitude);
        assert_eq!(
            magnitude.prune.magnitude_cut(magnitude.steps),
            Some((1, CutTarget::Share(0.6)))
        );
        assert!(config(Start::Trained, Method::AdaptiveDropout).distill.is_none());
        // From scratch there is nothing to distil from, and magnitude only scores by weight norms.
        assert!(config(Start::Scratch, Method::L0).distill.is_none());
        let scratch = config(Start::Scratch, Method::Magnitude);
        assert_eq!(scratch.prune.magnitude_cut(scratch.steps), None);
    }

    #[test]
    fn a_comparison_names_two_or_more_methods_once_each_and_each_gets_its_own_knob() {
        let (settings, problems) = LabSettings::from_hash("compare=adaptive-dropout,l0,magnitude&threshold=0.7");
        assert!(problems.is_empty(), "{problems:?}");
        assert_eq!(settings.compare, COMPARED_METHODS);
        for bad in ["l0", "l0,l0", "l0,dropout", ""] {
            let (refused, problems) = LabSettings::from_hash(&format!("compare={bad}"));
            assert!(refused.compare.is_empty() && problems.len() == 1, "{bad}: {problems:?}");
        }
        let l0 = settings.for_method(Method::L0);
        assert_eq!((l0.method, l0.threshold, l0.compare.len()), (Method::L0, 0.0, 0));
        let dropout = settings.for_method(Method::AdaptiveDropout);
        assert_eq!(
            dropout.threshold,
            GateConfig::default().threshold,
            "not the moved slider"
        );
        assert_eq!((dropout.seed, dropout.steps), (settings.seed, settings.steps));
    }

    #[test]
    fn a_resting_slider_follows_the_method_and_a_moved_one_stays() {
        let (l0, _) = LabSettings::from_hash("method=l0");
        assert_eq!(l0.threshold, 0.0, "L0's knob rests at its own cut");
        let (moved, _) = LabSettings::from_hash("threshold=0.3&method=l0");
        assert_eq!(moved.threshold, 0.3);
        let mut back = l0.clone();
        back.set("method", "adaptive-dropout").unwrap();
        assert_eq!(back.threshold, GateConfig::default().threshold);
        assert_eq!(LabSettings::from_hash(&l0.to_hash()).0, l0);
    }

    #[test]
    fn a_default_strength_follows_the_start_and_a_chosen_one_stays() {
        let (scratch, _) = LabSettings::from_hash("start=scratch");
        assert_eq!(scratch.strength, Start::Scratch.default_strength());
        let (chosen, _) = LabSettings::from_hash("start=scratch&strength=0.0003");
        assert_eq!(chosen.strength, 3e-4);
        let mut settings = chosen.clone();
        settings.set("start", "trained").unwrap();
        assert_eq!(settings.strength, 3e-4, "a strength someone chose is theirs");
        let (back, _) = LabSettings::from_hash(&scratch.to_hash());
        assert_eq!(back, scratch);
    }

    #[test]
    fn the_slider_means_what_the_methods_knob_says() {
        let for_method = |method| LabSettings {
            method,
            ..LabSettings::default()
        };
        assert!(for_method(Method::AdaptiveDropout).knob_is_threshold());
        for method in [Method::L0, Method::Magnitude, Method::None] {
            assert!(!for_method(method).knob_is_threshold(), "{}", method.name());
        }
    }
}
