//! Data-parallel steps on a native backend: the batch is split into `TrainConfig::shards`
//! parts, each run forward and backward on its own thread and its own copy of the modules,
//! and the shards' gradients add up to the whole batch's.
//!
//! On the CPU backend one step of a small model keeps barely more than one core busy (its
//! operations are too small to spread), so a second thread with half the batch is the way to
//! use a second core. Reproducibility is kept shard by shard: every shard draws its
//! augmentation, gate samples and dropout masks from streams named by (seed, step, shard), and
//! results are combined in shard order. The same seed and shard count give the same weights.
//!
//! Each copy has its own autodiff graph and its own BatchNorm running statistics; a shard
//! normalises with its own share's batch statistics (as data-parallel training without
//! synchronised BatchNorm does), and the copies' updated running statistics are averaged.

use burn::module::{ModuleVisitor, Param};
use burn::optim::GradientsParams;
use burn::prelude::*;

use super::LayerMaps;
use super::TrainConfig;
use super::forward::{Readout, StepGradients, StepModules, StepPosition, forward_pass};
use crate::audio::FeatureStats;
use crate::data::Utterance;
use crate::gates::Gates;
use crate::kernels;
use crate::model::{Conformer, RunningStats, with_dropout_stream};
use crate::readback::ReadBackError;
use crate::rng::SplitMix64;

/// A sharded step's result.
pub(super) enum ShardedStep {
    /// Some shard's loss was not finite: nothing is updated (the copies are simply dropped).
    Skipped,
    Done {
        readout: Readout,
        gradients: StepGradients,
        /// The average of the shards' updated BatchNorm statistics.
        running_stats: RunningStats,
    },
}

/// One shard's copy of the trained modules (the teacher is shared: it is only read).
struct Replica<'a> {
    model: Conformer,
    gates: Option<Gates>,
    distillation: Option<(&'a Conformer, LayerMaps)>,
}

/// What a shard hands back.
struct ShardOutcome {
    readout: Result<Readout, ReadBackError>,
    weight: f64,
    gradients: Option<StepGradients>,
    running_stats: RunningStats,
}

/// A copy with its own autodiff graph and BatchNorm state, and the same parameter ids (so
/// its gradients are keyed like the original's).
fn detached_copy<M: Module>(module: &M, device: &Device) -> M {
    module.valid().train().fork(device)
}

impl<'a> Replica<'a> {
    fn of(modules: StepModules<'a>, device: &Device) -> Self {
        Self {
            model: detached_copy(modules.model, device),
            gates: modules.gates.map(|g| detached_copy(g, device)),
            distillation: modules
                .distillation
                .map(|(teacher, maps)| (teacher, detached_copy(maps, device))),
        }
    }

    fn modules(&self) -> StepModules<'_> {
        StepModules {
            model: &self.model,
            gates: self.gates.as_ref(),
            distillation: self.distillation.as_ref().map(|(teacher, maps)| (*teacher, maps)),
        }
    }

    /// Forward and backward of `part` on this thread, with dropout masks from the shard's stream.
    fn run(
        self,
        config: &TrainConfig,
        stats: &FeatureStats,
        device: &Device,
        position: StepPosition,
        part: &[&Utterance],
        weight: f64,
    ) -> ShardOutcome {
        let dropout_seed = SplitMix64::derive(config.seed, &position.stream("dropout")).next_u64();
        with_dropout_stream(dropout_seed, || {
            let modules = self.modules();
            let pass = forward_pass(modules, config, stats, device, position, part, weight);
            // Sync point. Shards only run natively, on their own threads, so the read may block.
            let readout = pass
                .readout
                .clone()
                .try_into_vec_as::<f32>()
                .map(|values| Readout::from_values(&values))
                .map_err(|e| ReadBackError {
                    what: "a shard's loss",
                    detail: format!("{e:?}"),
                });
            let gradients = readout.as_ref().is_ok_and(Readout::is_finite).then(|| {
                let mut grads = pass.objective.backward();
                StepGradients::collect(&mut grads, modules)
            });
            ShardOutcome {
                readout,
                weight,
                gradients,
                // Read on this thread, which flushes the copy's own BatchNorm update.
                running_stats: self.model.running_stats(),
            }
        })
    }
}

/// `utterances` in up to `shards` contiguous parts of near-equal size (batches are grouped by
/// length, so neighbours have similar lengths and each part pads little).
fn split_batch<'u, 'a>(utterances: &'a [&'u Utterance], shards: usize) -> Vec<&'a [&'u Utterance]> {
    let n = utterances.len();
    let shards = shards.clamp(1, n.max(1));
    (0..shards)
        .map(|i| &utterances[i * n / shards..(i + 1) * n / shards])
        .filter(|part| !part.is_empty())
        .collect()
}

/// One step of `modules` on `utterances`, split over `config.shards` threads.
pub(super) fn sharded_step(
    modules: StepModules<'_>,
    config: &TrainConfig,
    stats: &FeatureStats,
    device: &Device,
    step: usize,
    utterances: &[&Utterance],
) -> Result<ShardedStep, ReadBackError> {
    let parts = split_batch(utterances, config.shards);
    let total = utterances.len() as f64;
    let replicas: Vec<Replica<'_>> = parts.iter().map(|_| Replica::of(modules, device)).collect();
    // Each shard's thread runs the operations the way this one does.
    let ops = kernels::ops_path();
    let outcomes: Vec<ShardOutcome> = std::thread::scope(|scope| {
        let running: Vec<_> = replicas
            .into_iter()
            .zip(&parts)
            .enumerate()
            .map(|(i, (replica, part))| {
                let position = StepPosition { step, shard: Some(i) };
                let weight = part.len() as f64 / total;
                scope.spawn(move || {
                    kernels::with_ops_path(ops, || replica.run(config, stats, device, position, part, weight))
                })
            })
            .collect();
        running
            .into_iter()
            .map(|shard| shard.join().unwrap_or_else(|panic| std::panic::resume_unwind(panic)))
            .collect()
    });
    combine(modules, outcomes)
}

/// Adds the shards' gradients and weighted losses, in shard order. A failed read-back fails the
/// step; one shard's non-finite loss skips it (that shard then took no backward pass).
fn combine(modules: StepModules<'_>, outcomes: Vec<ShardOutcome>) -> Result<ShardedStep, ReadBackError> {
    let readouts: Vec<Readout> = outcomes.iter().map(|o| o.readout.clone()).collect::<Result<_, _>>()?;
    let Some(first) = readouts.first() else {
        return Ok(ShardedStep::Skipped);
    };
    if outcomes.iter().any(|o| o.gradients.is_none()) {
        return Ok(ShardedStep::Skipped);
    }
    let readout = Readout {
        loss: outcomes
            .iter()
            .zip(&readouts)
            .map(|(o, r)| o.weight as f32 * r.loss)
            .sum(),
        // Penalty and expected sparsity do not depend on the batch: shard 0 computed them.
        penalty: first.penalty,
        expected_sparsity: first.expected_sparsity,
        distill: outcomes
            .iter()
            .zip(&readouts)
            .map(|(o, r)| o.weight as f32 * r.distill)
            .sum(),
    };
    let running_stats = average_running_stats(outcomes.iter().map(|o| &o.running_stats).collect());
    let (mut model, mut maps, mut gates) = (Vec::new(), Vec::new(), Vec::new());
    for part in outcomes.into_iter().filter_map(|o| o.gradients) {
        model.push(part.model);
        maps.extend(part.maps);
        gates.extend(part.gates);
    }
    let gradients = StepGradients {
        model: sum_gradients(modules.model, model),
        maps: modules.distillation.map(|(_, m)| sum_gradients(m, maps)),
        gates: modules.gates.map(|g| sum_gradients(g, gates)),
    };
    Ok(ShardedStep::Done {
        readout,
        gradients,
        running_stats,
    })
}

/// The element-wise mean of several models' BatchNorm statistics, summed in the given order.
fn average_running_stats(shards: Vec<&RunningStats>) -> RunningStats {
    let count = shards.len().max(1) as f64;
    let blocks = shards.first().map_or(0, |s| s.len());
    (0..blocks)
        .map(|b| {
            let present: Vec<&[Tensor<1>; 2]> = shards.iter().filter_map(|s| s[b].as_ref()).collect();
            let first = present.first()?;
            let mut sum = [first[0].clone(), first[1].clone()];
            for stats in &present[1..] {
                sum = [sum[0].clone() + stats[0].clone(), sum[1].clone() + stats[1].clone()];
            }
            Some(sum.map(|t| t.div_scalar(count)))
        })
        .collect()
}

/// One gradient per parameter of `module`: the sum over `parts`, in their order.
fn sum_gradients<M: Module>(module: &M, parts: Vec<GradientsParams>) -> GradientsParams {
    struct Summer {
        parts: Vec<GradientsParams>,
        sum: GradientsParams,
    }
    impl ModuleVisitor for Summer {
        fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<D>>) {
            let total = self
                .parts
                .iter_mut()
                .filter_map(|g| g.remove::<D>(param.id))
                .reduce(|a, b| a + b);
            if let Some(total) = total {
                self.sum.register(param.id, total);
            }
        }
    }
    let mut summer = Summer {
        parts,
        sum: GradientsParams::new(),
    };
    module.visit(&mut summer);
    summer.sum
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::audio::SpecAugmentConfig;
    use crate::model::Preset;
    use crate::train::forward::StepPosition;

    /// Largest |a − b| over every parameter of `model`, and the largest |a|.
    fn compare(model: &Conformer, a: &GradientsParams, b: &GradientsParams) -> (f32, f32) {
        struct Compare<'g>(&'g GradientsParams, &'g GradientsParams, f32, f32, usize);
        impl ModuleVisitor for Compare<'_> {
            fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<D>>) {
                if let (Some(a), Some(b)) = (self.0.get::<D>(param.id), self.1.get::<D>(param.id)) {
                    let a: Vec<f32> = a.try_into_vec_as().unwrap();
                    let b: Vec<f32> = b.try_into_vec_as().unwrap();
                    for (x, y) in a.iter().zip(&b) {
                        self.2 = self.2.max((x - y).abs());
                        self.3 = self.3.max(x.abs());
                    }
                    self.4 += 1;
                }
            }
        }
        let mut compare = Compare(a, b, 0.0, 0.0, 0);
        model.visit(&mut compare);
        assert!(
            compare.4 > 10,
            "only {} parameters had gradients on both sides",
            compare.4
        );
        (compare.2, compare.3)
    }

    #[test]
    fn the_shards_gradients_add_up_to_the_whole_batch_gradient() {
        // Two copies of the same four utterances, no dropout or SpecAugment: each shard then sees
        // exactly the whole batch's statistics (BatchNorm included), and the shards' weighted
        // gradients must add up to the whole batch's.
        let mut config = TrainConfig::for_preset(Preset::Tiny, 29);
        config.model.d_model = 32;
        config.model.num_blocks = 2;
        config.model.d_ff = 64;
        config.model.subsampling_channels = 8;
        config.model.dropout = 0.0;
        config.spec_augment = SpecAugmentConfig {
            freq_masks: 0,
            time_masks: 0,
            ..SpecAugmentConfig::default()
        };
        let stats = FeatureStats::identity(80);
        let device = Device::flex().autodiff();
        let model = config.model.init(&device);
        let modules = StepModules {
            model: &model,
            gates: None,
            distillation: None,
        };
        let data: Vec<Utterance> = (0..4)
            .map(|i| Utterance::random(format!("u{i}"), 160, 7, &mut SplitMix64::new(i)))
            .collect();
        let batch: Vec<&Utterance> = data.iter().chain(&data).collect();
        let whole_position = StepPosition { step: 0, shard: None };
        let pass = forward_pass(modules, &config, &stats, &device, whole_position, &batch, 1.0);
        let whole_loss: f32 = pass.readout.clone().try_into_vec_as::<f32>().unwrap()[0];
        let whole = StepGradients::collect(&mut pass.objective.backward(), modules);

        config.shards = 2;
        let ShardedStep::Done { readout, gradients, .. } =
            sharded_step(modules, &config, &stats, &device, 0, &batch).unwrap()
        else {
            panic!("the sharded step was skipped");
        };
        assert!(
            (readout.loss - whole_loss).abs() <= 1e-5 * whole_loss.abs(),
            "{} vs {whole_loss}",
            readout.loss
        );
        let (difference, largest) = compare(&model, &whole.model, &gradients.model);
        assert!(
            difference <= 1e-4 * largest,
            "gradients differ by {difference:e} (largest gradient {largest:e})"
        );
    }

    #[test]
    fn a_batch_splits_into_contiguous_near_equal_parts() {
        let utterance = Utterance::random("u".into(), 0, 0, &mut SplitMix64::new(0));
        let batch: Vec<&Utterance> = vec![&utterance; 5];
        let sizes = |shards| split_batch(&batch, shards).iter().map(|p| p.len()).collect::<Vec<_>>();
        assert_eq!(sizes(1), vec![5]);
        assert_eq!(sizes(2), vec![2, 3]);
        assert_eq!(sizes(8), vec![1, 1, 1, 1, 1]);
    }
}
