//! The page's reactive state: one struct of signal handles (all `Copy`), shared through
//! context. The driver writes it; widgets read the parts they draw and send commands.

use std::collections::VecDeque;
use std::sync::Arc;

use leptos::prelude::*;
use prunelab_engine::gates::{Method, SiteKind};
use prunelab_engine::prune::CutTarget;
use prunelab_engine::store::{Trace, TraceSite};
use prunelab_engine::train::{TrainEvent, TrainerState};

use prunelab_lab_state::compare::MethodResult;
use prunelab_lab_state::session::{Heard, PrunePoint};
use prunelab_lab_state::settings::LabSettings;

/// What the page is doing before it can train.
#[derive(Debug, Clone, PartialEq)]
pub enum Phase {
    Loading { fraction: f64, message: String },
    Ready,
    Failed(String),
}

/// A request from a widget to the driver, handled in order between training steps.
#[derive(Debug, Clone)]
pub enum Command {
    /// Start afresh with these settings: one run, or a comparison when they name methods to
    /// compare.
    Reset(LabSettings),
    /// One step, also while paused.
    Step,
    /// Cut the model at this slider value (the method's knob) and score it.
    Prune(f64),
    /// Cut to a typed target (parameters, a share kept, a speed-up) and score it.
    Target(CutTarget),
    /// Score a sweep of slider values for the trade-off curve.
    Sweep,
    /// Transcribe a recording with the dense and the current cut model.
    Hear { samples: Vec<f32>, sample_rate: u32 },
    /// Save the live run's trace (`.pltrace`) as a file, to open later in the lab.
    SaveTrace,
    /// Save the cut the page shows as `prunelab prune`'s export, in one `.tar`.
    DownloadModel,
    /// After the GPU was lost: carry the run on with the CPU backend from its copy in memory (or
    /// start again there, when there is none).
    ContinueOnCpu,
    /// Carry on the run an earlier visit kept in the browser's storage.
    ContinueSaved,
    /// Start from a `prunelab train` checkpoint (`name`, decoded) instead of the shipped trained
    /// model: a fresh run of the current settings from its weights, and every reset after it.
    StartFrom { name: String, state: Box<TrainerState> },
    /// Load a pruned model exported by `prunelab prune` and score it.
    OpenExport {
        name: String,
        manifest: String,
        weights: Vec<u8>,
    },
}

/// A retention history the heatmaps can show: the live run's, or one opened from a file.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct TraceView {
    /// Where it came from: "live" or the file name.
    pub source: String,
    pub description: String,
    pub sites: Vec<TraceSite>,
    pub steps: Vec<usize>,
    /// One `Arc` per snapshot so that appending does not copy the history.
    pub snapshots: Vec<Arc<Vec<f32>>>,
    /// `(step, loss)` of every training step.
    pub losses: Vec<(usize, f32)>,
    /// `(step, WER)` of every evaluation.
    pub wers: Vec<(usize, f64)>,
}

impl TraceView {
    /// A whole trace, e.g. one `prunelab train` wrote.
    pub fn from_trace(trace: Trace, source: String) -> Self {
        let mut view = Self {
            source,
            description: trace.description.clone(),
            sites: trace.sites.clone(),
            steps: trace.steps.clone(),
            snapshots: trace.snapshots.into_iter().map(Arc::new).collect(),
            ..Self::default()
        };
        for event in &trace.events {
            view.add_event(event);
        }
        view
    }

    /// Appends `trace`'s latest snapshot (the run has just recorded it), taking the trace's
    /// layout and description with it.
    pub fn add_latest_snapshot(&mut self, trace: &Trace) {
        let Some(latest) = trace.snapshots.last() else { return };
        self.description = trace.description.clone();
        self.sites = trace.sites.clone();
        self.steps = trace.steps.clone();
        self.snapshots.push(Arc::new(latest.clone()));
    }

    pub fn add_event(&mut self, event: &TrainEvent) {
        match event {
            TrainEvent::Step { step, loss, .. } => self.losses.push((*step, *loss)),
            TrainEvent::Eval { step, wer, .. } => self.wers.push((*step, *wer)),
            TrainEvent::SkippedStep { .. } => {}
        }
    }

    /// Blocks in the trace (rows of every heatmap).
    pub fn blocks(&self) -> usize {
        self.sites.iter().map(|s| s.block + 1).max().unwrap_or(0)
    }

    /// The scores of `kind` in `block` at snapshot `frame`.
    pub fn scores(&self, frame: usize, block: usize, kind: SiteKind) -> Option<&[f32]> {
        let snapshot = self.snapshots.get(frame)?;
        let mut offset = 0;
        for site in &self.sites {
            if site.block == block && site.kind == kind {
                return snapshot.get(offset..offset + site.units);
            }
            offset += site.units;
        }
        None
    }

    /// Units per block of `kind` (0 when the trace does not hold that site).
    pub fn units(&self, kind: SiteKind) -> usize {
        self.sites.iter().find(|s| s.kind == kind).map_or(0, |s| s.units)
    }
}

/// The three kinds of point on the trade-off plot.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct TradeOff {
    /// The slider at 0: nothing cut beyond the method's own rule.
    pub dense: Option<PrunePoint>,
    /// The slider's cut.
    pub current: Option<PrunePoint>,
    /// The sweep's cuts, in the order of their slider values.
    pub sweep: Vec<PrunePoint>,
    /// A pruned model opened from an export.
    pub opened: Option<PrunePoint>,
    /// The model the run started from, scored before any training by its weights alone.
    pub start: Option<PrunePoint>,
}

/// The copy of a run the page holds in memory: what a lost GPU does not take with it.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Kept {
    /// The step it was copied at.
    pub step: usize,
    /// How long the copy took (every parameter and optimiser moment read back).
    pub millis: f64,
    /// Whether it is also in the browser's storage, for a reload to carry on from.
    pub stored: bool,
}

/// A run an earlier visit kept in the browser's storage, offered to carry on.
#[derive(Debug, Clone, PartialEq)]
pub struct SavedOffer {
    pub step: usize,
    /// What it is, for the offer ("adaptive-dropout from the trained model, 600 steps").
    pub describe: String,
}

/// One method of a comparison as the page shows it.
#[derive(Debug, Clone, PartialEq)]
pub struct MethodView {
    pub method: Method,
    pub step: usize,
    /// Its retention history (the heatmaps) and losses.
    pub trace: TraceView,
    /// Its budget cut and sweep (or why they failed), once the comparison has finished training.
    pub result: Option<Result<MethodResult, String>>,
}

/// A comparison of methods as the page shows it.
#[derive(Debug, Clone, PartialEq)]
pub struct CompareView {
    pub methods: Vec<MethodView>,
    /// Steps each method trains.
    pub steps: usize,
    /// Every method is cut to this at the end.
    pub budget: CutTarget,
    /// The model they all start from, scored before training.
    pub start: Option<PrunePoint>,
}

impl CompareView {
    /// Every method trained and its results in (or failed).
    pub fn is_complete(&self) -> bool {
        self.methods.iter().all(|m| m.result.is_some())
    }
}

/// Where the backend came from, for the badge.
#[derive(Debug, Clone, PartialEq)]
pub struct BackendInfo {
    pub label: String,
    pub is_webgpu: bool,
}

/// Every signal of the page.
#[derive(Clone, Copy)]
pub struct Lab {
    pub settings: RwSignal<LabSettings>,
    pub phase: RwSignal<Phase>,
    pub backend: RwSignal<Option<BackendInfo>>,
    /// Where the corpus came from: "network" or "browser cache".
    pub corpus_origin: RwSignal<Option<&'static str>>,
    /// The file the trained start came from, when the user chose their own checkpoint.
    pub own_start: RwSignal<Option<String>>,
    pub playing: RwSignal<bool>,
    /// What the driver is busy with besides training ("pruning at 0.50…").
    pub busy: RwSignal<Option<String>>,
    pub step: RwSignal<usize>,
    /// A training step is in flight (pausing lets it finish).
    pub stepping: RwSignal<bool>,
    pub steps_per_second: RwSignal<f64>,
    /// The live run.
    pub live: RwSignal<TraceView>,
    /// A trace opened from a file, shown instead of the live one while set.
    pub opened: RwSignal<Option<TraceView>>,
    /// Scrubber position: a snapshot index, or `None` for the latest.
    pub frame: RwSignal<Option<usize>>,
    pub trade_off: RwSignal<TradeOff>,
    /// What the models heard in the last recording.
    pub heard: RwSignal<Option<Heard>>,
    /// The comparison, while the page compares methods.
    pub compare: RwSignal<Option<CompareView>>,
    /// Problems to show (a bad file, a failed step), newest last.
    pub notices: RwSignal<Vec<String>>,
    /// Why the WebGPU device was lost, while the page waits to continue on the CPU.
    pub gpu_lost: RwSignal<Option<String>>,
    /// The latest copy of the run held in memory (in case the GPU is lost) and stored.
    pub kept: RwSignal<Option<Kept>>,
    /// A run kept by an earlier visit, until it is continued or replaced.
    pub saved: RwSignal<Option<SavedOffer>>,
    /// The dev utterance the Listen panel shows.
    pub utterance: RwSignal<usize>,
    commands: StoredValue<VecDeque<Command>>,
}

impl Lab {
    pub fn new(settings: LabSettings) -> Self {
        Self {
            settings: RwSignal::new(settings),
            phase: RwSignal::new(Phase::Loading {
                fraction: 0.0,
                message: "starting…".into(),
            }),
            backend: RwSignal::new(None),
            corpus_origin: RwSignal::new(None),
            own_start: RwSignal::new(None),
            playing: RwSignal::new(false),
            busy: RwSignal::new(None),
            step: RwSignal::new(0),
            stepping: RwSignal::new(false),
            steps_per_second: RwSignal::new(0.0),
            live: RwSignal::new(TraceView::default()),
            opened: RwSignal::new(None),
            frame: RwSignal::new(None),
            trade_off: RwSignal::new(TradeOff::default()),
            heard: RwSignal::new(None),
            compare: RwSignal::new(None),
            notices: RwSignal::new(Vec::new()),
            gpu_lost: RwSignal::new(None),
            kept: RwSignal::new(None),
            saved: RwSignal::new(None),
            utterance: RwSignal::new(0),
            commands: StoredValue::new(VecDeque::new()),
        }
    }

    pub fn send(&self, command: Command) {
        self.commands.update_value(|q| {
            // A newer threshold supersedes one still waiting: only the last position matters.
            if matches!(command, Command::Prune(_)) {
                q.retain(|c| !matches!(c, Command::Prune(_)));
            }
            q.push_back(command);
        });
    }

    /// Whether a reset waits in the queue (long work stops early for it).
    pub fn reset_pending(&self) -> bool {
        self.commands
            .with_value(|q| q.iter().any(|c| matches!(c, Command::Reset(_))))
    }

    pub fn next_command(&self) -> Option<Command> {
        self.commands.try_update_value(|q| q.pop_front()).flatten()
    }

    pub fn notify(&self, message: String) {
        web_sys::console::warn_1(&message.clone().into());
        self.notices.update(|n| n.push(message));
    }

    /// The trace the views show: an opened file, else the live run.
    pub fn shown(&self) -> Signal<TraceView> {
        let (opened, live) = (self.opened, self.live);
        Signal::derive(move || opened.get().unwrap_or_else(|| live.get()))
    }
}

/// The page's `Lab`, provided by the page at the root.
pub fn use_lab() -> Lab {
    use_context::<Lab>().expect("Lab is provided by the page at the root (page::Page)")
}
