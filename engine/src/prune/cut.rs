//! The one pruning entry point: a model with its units' scores on the host, cut by any
//! selection or by its method's knob. `prunelab prune`, `prunelab sweep`, a run's evaluations
//! and its magnitude cut, and the lab's slider and sweep all cut through [`CutSource`].

use burn::module::Module;

use super::{
    Knob, KnobMeaning, PlanError, Pruned, ScoreKind, Selection, UnitScores, cut_to, flops_per_second, magnitude_scores,
    param_count, plan, planned_shapes, recut,
};
use crate::gates::{GateConfig, Gates, Method, SiteKind};
use crate::model::{BlockKeep, Conformer, ConformerConfig};
use crate::readback::ReadBackError;

/// A model ready to be cut: its scores read back once, so every cut after that is host work
/// plus the surgery.
pub struct CutSource {
    /// An inference copy of the model to cut.
    pub model: Conformer,
    /// The dense architecture the scores index (the model's own shapes may be narrower only
    /// for a run the magnitude method already cut: its scores then index those shapes, unless
    /// the earlier cut's plan is known, see [`CutSource::within_earlier_cut`]).
    pub config: ConformerConfig,
    /// The method whose scores decide: the run's gated method, or `Magnitude`.
    pub method: Method,
    /// Per unit: the score a threshold is compared with, and for learned gates the scale a
    /// kept unit carries.
    pub scores: UnitScores,
    /// Per unit: the order a budget removes units in (weakest first).
    pub rank: UnitScores,
    /// Weight norms per unit, where the gates have not learned yet (every gated site's units
    /// have the same retention): a budget then removes the weakest units by norm, not by
    /// position. For L0 each head's value dimensions carry the head's mean norm.
    pub tie_break: Option<UnitScores>,
    /// Whole-module gate values per block (L0; otherwise every module stays).
    pub modules: Vec<[f32; 4]>,
    /// Learned retention of every unit (gated runs), for the heatmaps.
    pub retention: Option<UnitScores>,
    /// Learned (retention: scales folded in) or weight norms (copied unscaled).
    pub kind: ScoreKind,
    /// Units scoring below this never survive a cut (L0's closed gates).
    keep_floor: f64,
    /// The keep-plan (over the dense model) that made an already cut model, when known: the
    /// scores then index the dense layout, and the model can be cut again within it.
    earlier_cut: Option<Vec<BlockKeep>>,
    /// The default threshold of the run (adaptive dropout's `threshold`).
    run_threshold: f64,
}

impl CutSource {
    /// Scores `model` by its learned `gates` under `prune` (when given, and not
    /// `force_magnitude`) or by weight norms. One read-back from the device.
    pub async fn new(
        model: Conformer,
        config: ConformerConfig,
        gates: Option<&Gates>,
        prune: &GateConfig,
        force_magnitude: bool,
    ) -> Result<Self, ReadBackError> {
        if let (Some(gates), Some(kind), false) = (gates, prune.gate_kind(), force_magnitude) {
            let snapshot = gates.snapshot().await?;
            let scores = snapshot.pruning_scores(prune);
            let retention = snapshot.retention(prune);
            // A second read-back only for gates that have not learned (the norms are ~30
            // dispatches, kept out of every other scoring). Ties are read from the retention,
            // not the rank: L0's own rule already zeroes the first `round(Σ P(z = 0))` entries
            // of a tied vector (by position), which ranks them apart. L0 gates whole heads, so
            // its heads are told apart by their mean norm: ranked dimension by dimension they
            // would be cut in pieces (a budget still splits at most the one head it ends in).
            let tie_break = if every_site_tied(&retention) {
                let norms = magnitude_scores(&model, &prune.sites).await?;
                Some(if kind.gates_heads_and_modules() {
                    whole_heads(norms, config.num_heads)
                } else {
                    norms
                })
            } else {
                None
            };
            return Ok(Self {
                model,
                config,
                method: prune.method,
                scores: scores.units,
                rank: scores.rank,
                tie_break,
                modules: scores.modules,
                retention: Some(retention),
                kind: ScoreKind::Retention,
                keep_floor: kind.keep_floor(),
                earlier_cut: None,
                run_threshold: prune.threshold,
            });
        }
        let scores = magnitude_scores(&model, &prune.sites).await?;
        Ok(Self {
            model,
            config,
            method: Method::Magnitude,
            rank: scores.clone(),
            scores,
            tie_break: None,
            modules: Vec::new(),
            retention: None,
            kind: ScoreKind::Magnitude,
            keep_floor: 0.0,
            earlier_cut: None,
            run_threshold: prune.threshold,
        })
    }

    /// This source of a model that `earlier` (a keep-plan over the dense architecture) made,
    /// ready to be cut again: its weight norms are put back at their dense positions (0 for
    /// every unit `earlier` removed), so that shares, budgets, maps and exports index the
    /// dense model as for any other cut. For a model scored by weight norms only (the
    /// magnitude method is the one that cuts during training); any other is returned as it is.
    pub fn within_earlier_cut(mut self, earlier: Vec<BlockKeep>) -> Self {
        let fits = earlier.len() == self.config.num_blocks && self.config.block_shapes.is_some();
        if self.kind != ScoreKind::Magnitude || !fits {
            return self;
        }
        let dense = self.config.clone().with_block_shapes(None);
        self.scores = recut::spread_onto_dense(&dense, &earlier, &self.scores);
        self.rank = self.scores.clone();
        self.config = dense;
        self.earlier_cut = Some(earlier);
        self
    }

    /// Whether a cut by `selection` chooses its units by weight norm because the learned gates
    /// have not learned yet (every gated site's units rank equal): a budget's cut does; a
    /// threshold keeps all of a site's tied units or none.
    pub fn chooses_by_norm(&self, selection: Selection) -> bool {
        self.tie_break.is_some() && matches!(selection, Selection::Budget(_))
    }

    /// Whether the method's own rule removes units even at threshold 0 (L0's closed gates and
    /// modules), so that there is no uncut reading of its scores.
    pub fn own_rule_cuts(&self) -> bool {
        self.keep_floor > 0.0
    }

    /// Parameters of the model before any cut (for a model cut earlier with a known plan, of
    /// the dense architecture it was cut from).
    pub fn dense_params(&self) -> usize {
        match self.earlier_cut {
            Some(_) => param_count(&self.config, &self.dense_shapes()).total(),
            None => self.model.num_params(),
        }
    }

    /// The block shapes of the model before any cut (see [`CutSource::dense_params`]).
    pub fn dense_shapes(&self) -> Vec<crate::model::BlockShape> {
        match self.earlier_cut {
            Some(_) => self.config.shapes(),
            None => self.model.block_shapes(),
        }
    }

    /// What this source's cut setting means.
    pub fn knob(&self) -> Knob {
        Knob::of(self.method)
    }

    /// The cut a run makes when nobody says otherwise: learned retention at the run's
    /// threshold, L0's own rule; `None` for weight norms, which have no natural threshold.
    pub fn default_selection(&self) -> Option<Selection> {
        match (self.kind, self.method) {
            (ScoreKind::Retention, Method::L0) => Some(Selection::Threshold(self.keep_floor)),
            (ScoreKind::Retention, _) => Some(Selection::Threshold(self.run_threshold)),
            (ScoreKind::Magnitude, _) => None,
        }
    }

    /// Whether the model is already smaller than its dense architecture (the magnitude method
    /// cuts it once during training): its dense self is gone.
    pub fn already_cut(&self) -> bool {
        self.config.block_shapes.is_some() || self.earlier_cut.is_some()
    }

    /// Whether plans can be made for this model: one never cut, or one cut by a known plan.
    pub fn can_plan(&self) -> bool {
        self.config.block_shapes.is_none()
    }

    /// The physically smaller model for `selection`, under the method's keep rule: a threshold
    /// never goes below the keep floor, and a budget larger than what the rule keeps gives the
    /// rule's own cut. An already cut model is returned as it is for a selection that keeps
    /// everything (threshold 0 on weight norms, or a budget it already meets); one cut by a
    /// known plan is cut again within that plan, and one cut by an unknown plan refused.
    pub fn cut(&self, selection: Selection) -> Result<Pruned, PlanError> {
        let Some(earlier) = &self.earlier_cut else {
            if self.already_cut() {
                return match (self.kind, selection) {
                    (ScoreKind::Magnitude, Selection::Threshold(t)) if t <= 0.0 => Ok(self.as_it_is()),
                    _ => Err(PlanError::AlreadyCut),
                };
            }
            return Ok(cut_to(&self.model, &self.config, self.plan(selection)?));
        };
        let keeps_all = match selection {
            Selection::Threshold(t) => t <= 0.0,
            Selection::Budget(budget) => budget >= self.model.num_params(),
        };
        if keeps_all {
            return Ok(self.as_it_is());
        }
        let plan = self.plan(selection)?;
        let shapes = planned_shapes(&plan);
        Ok(Pruned {
            model: self.model.pruned(&recut::onto_cut_model(earlier, &plan)),
            params: param_count(&self.config, &shapes),
            flops_per_second: flops_per_second(&self.config, &shapes),
            keep: plan,
        })
    }

    /// The keep-plan of [`CutSource::cut`] without the surgery (host work only): whether a
    /// cut can be made, and what it would keep. The model must be one plans index
    /// ([`CutSource::can_plan`]); for one cut earlier, units it removed score 0 and go first.
    pub fn plan(&self, selection: Selection) -> Result<Vec<BlockKeep>, PlanError> {
        let plan = match selection {
            Selection::Threshold(t) => self.plan_from_scores(Selection::Threshold(t.max(self.keep_floor)))?,
            Selection::Budget(budget) => match self.own_plan_within(budget)? {
                Some(own) => own,
                None => self.plan_from_scores(Selection::Budget(budget))?,
            },
        };
        // What an earlier cut removed stays removed, whatever the plan's arithmetic.
        Ok(match &self.earlier_cut {
            Some(earlier) => recut::within(earlier, plan),
            None => plan,
        })
    }

    /// `selection` planned from the scores as they stand, before the keep rule.
    fn plan_from_scores(&self, selection: Selection) -> Result<Vec<BlockKeep>, PlanError> {
        plan(
            &self.config,
            &self.scores,
            &self.rank,
            self.tie_break.as_ref(),
            &self.modules,
            self.kind,
            selection,
        )
    }

    /// Whether a cut to `budget` parameters is the method's own cut (L0's closed gates): a
    /// budget never reopens what the own rule removes, so when that rule keeps no more than
    /// the budget, its cut is the budget's.
    pub fn own_rule_within(&self, budget: usize) -> Result<bool, PlanError> {
        Ok(self.own_plan_within(budget)?.is_some())
    }

    /// The own rule's keep-plan when the method has one that cuts and it fits `budget`.
    fn own_plan_within(&self, budget: usize) -> Result<Option<Vec<BlockKeep>>, PlanError> {
        if !self.own_rule_cuts() {
            return Ok(None);
        }
        let own = self.plan_from_scores(Selection::Threshold(self.keep_floor))?;
        Ok((super::planned_params(&self.config, &own).total() <= budget).then_some(own))
    }

    /// An already cut model as a `Pruned` with its earlier plan, if known (none otherwise: its
    /// units index its own shapes).
    fn as_it_is(&self) -> Pruned {
        let shapes = self.model.block_shapes();
        Pruned {
            model: self.model.clone(),
            keep: self.earlier_cut.clone().unwrap_or_default(),
            params: param_count(&self.config, &shapes),
            flops_per_second: flops_per_second(&self.config, &shapes),
        }
    }

    /// The selection the knob at `value` stands for (see [`KnobMeaning`]). A share removed is
    /// held inside what a plan can reach: at least one parameter goes, and never more than
    /// every gated unit.
    pub fn selection_at(&self, value: f64) -> Selection {
        match self.knob().meaning {
            KnobMeaning::RetentionThreshold => Selection::Threshold(value),
            KnobMeaning::RemovedFraction if value <= 0.0 => Selection::Threshold(0.0),
            KnobMeaning::RemovedFraction => {
                let dense = self.dense_params();
                let floor = param_count(&self.config, &[]).total();
                let budget = (dense as f64 * (1.0 - value)).round() as usize;
                Selection::Budget(budget.clamp(floor + 1, dense.saturating_sub(1).max(floor + 1)))
            }
        }
    }

    /// The model cut at the knob's `value`. A share removed beyond what the gated units hold
    /// is cut to the smallest model a plan can make.
    pub fn cut_at(&self, value: f64) -> Result<Pruned, PlanError> {
        self.cut_and_selection_at(value).map(|(_, pruned)| pruned)
    }

    /// [`CutSource::cut_at`] with the selection it cut by: the knob's, or the smallest model's
    /// budget where the knob asks for less than a plan can make.
    pub fn cut_and_selection_at(&self, value: f64) -> Result<(Selection, Pruned), PlanError> {
        let selection = self.selection_at(value);
        match self.cut(selection) {
            Err(PlanError::BudgetTooSmall { floor, .. }) => {
                let smallest = Selection::Budget(floor);
                Ok((smallest, self.cut(smallest)?))
            }
            other => other.map(|pruned| (selection, pruned)),
        }
    }

    /// Knob values for a sweep whose points span model sizes at any moment of training:
    /// deciles of the current retention for a threshold (a fixed grid gives nine identical
    /// points early on, when every retention is near its start); nine shares from the
    /// method's own cut (0 but for L0) to 0.9 for a share removed.
    pub fn sweep_values(&self) -> Vec<f64> {
        match self.knob().meaning {
            KnobMeaning::RetentionThreshold => {
                let mut all: Vec<f32> = self.scores.iter().flatten().flatten().flatten().copied().collect();
                all.sort_by(f32::total_cmp);
                let mut values: Vec<f64> = (1..10)
                    .filter_map(|i| all.get(i * all.len() / 10).map(|&s| f64::from(s)))
                    .collect();
                values.dedup();
                values
            }
            KnobMeaning::RemovedFraction => {
                let own = self.own_cut_share().unwrap_or(0.0).min(0.85);
                (1..10).map(|i| own + (0.9 - own) * f64::from(i) / 9.0).collect()
            }
        }
    }

    /// The share of parameters the method's own rule removes (L0), if it has one.
    fn own_cut_share(&self) -> Option<f64> {
        if self.keep_floor <= 0.0 {
            return None;
        }
        let own = self.cut(Selection::Threshold(self.keep_floor)).ok()?;
        Some(1.0 - own.params.total() as f64 / self.dense_params().max(1) as f64)
    }

    /// What heatmaps show for each unit: learned retention, or for weight norms each unit's
    /// norm over the largest of its site, so the colours still say "weak" and "strong".
    pub fn display_scores(&self) -> UnitScores {
        if let Some(retention) = &self.retention {
            return retention.clone();
        }
        let mut scores = self.scores.clone();
        for site in scores.iter_mut().flatten().flatten() {
            let max = site.iter().copied().fold(f32::MIN_POSITIVE, f32::max);
            site.iter_mut().for_each(|x| *x /= max);
        }
        scores
    }
}

/// `norms` with each head's value dimensions given the head's mean norm, so that a ranking
/// by them keeps or removes a head as one.
fn whole_heads(mut norms: UnitScores, num_heads: usize) -> UnitScores {
    for sites in &mut norms {
        if let Some(value) = &mut sites[SiteKind::AttnValue.index()] {
            let per_head = (value.len() / num_heads.max(1)).max(1);
            for head in value.chunks_mut(per_head) {
                let mean = head.iter().sum::<f32>() / head.len() as f32;
                head.fill(mean);
            }
        }
    }
    norms
}

/// Whether every gated site's units all have the same value (and there is at least one):
/// gates that have not learned yet, as at the start of a run.
fn every_site_tied(values: &UnitScores) -> bool {
    let mut sites = values.iter().flatten().flatten().peekable();
    sites.peek().is_some() && sites.all(|site| site.windows(2).all(|pair| pair[0].to_bits() == pair[1].to_bits()))
}
