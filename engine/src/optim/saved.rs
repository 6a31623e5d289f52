//! Flat Adam's saved state, in the container every Prunelab format uses (`container.rs`).
//!
//! Version 2: the JSON header lists the trained tensors in visit order (parameter id, size and
//! update count); the body is the first moment then the second, each tensor's values in that
//! order without the layout's padding, as little-endian `f32`. Version 1 (checkpoints written
//! before the container was used here) shares the magic and is still read: after the version
//! it holds the tensor count, then (id, size, updates) as three `u64` per tensor, then the
//! moments as in version 2.

use std::borrow::Cow;

use burn::module::Module;
use burn::prelude::*;
use serde::{Deserialize, Serialize};

use super::flat_adam::{FlatAdam, FlatAdamConfig, State};
use super::layout::{Gathered, Layout};
use crate::container::{ContainerError, Format};
use crate::readback::{ReadBackError, read_floats};

const FORMAT: Format = Format {
    magic: b"PLFLADAM",
    version: 2,
    noun: "optimiser state",
};
const VERSION_1: u32 = 1;

/// Why saved optimiser state does not load.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum FlatStateError {
    /// Not this format: burn's per-tensor burnpack, written by Prunelab before the flat optimiser.
    #[error("not flat Adam state")]
    OtherFormat,
    /// This format, but damaged or for another module.
    #[error("{0}")]
    Invalid(String),
}

/// One trained tensor as the header lists it.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
struct SavedTensor {
    id: u64,
    numel: usize,
    updates: u64,
}

#[derive(Serialize, Deserialize)]
struct Header {
    tensors: Vec<SavedTensor>,
}

impl FlatAdam {
    /// The state as bytes (see the module's header). Reads the moments back asynchronously
    /// (what WebGPU needs).
    pub async fn read_bytes(&self) -> Result<Vec<u8>, ReadBackError> {
        let Some(state) = &self.state else {
            return Ok(FORMAT.encode(&Header { tensors: Vec::new() }, &[]));
        };
        let layout = &state.layout;
        let tensors = (0..layout.ids.len())
            .map(|i| SavedTensor {
                id: layout.ids[i].val(),
                numel: layout.numels[i],
                updates: u64::from(state.steps[i]),
            })
            .collect();
        let mut body = Vec::new();
        for moment in [&state.moment_1, &state.moment_2] {
            let values = read_floats(moment.clone(), "the optimiser's moments").await?;
            for i in 0..layout.ids.len() {
                body.extend(values[layout.range(i)].iter().flat_map(|v| v.to_le_bytes()));
            }
        }
        Ok(FORMAT.encode(&Header { tensors }, &[&body]))
    }

    /// State saved by `read_bytes` (either version) for `module` (on `device`), checked
    /// against the module's parameters.
    pub fn from_bytes<M: Module>(
        config: FlatAdamConfig,
        bytes: &[u8],
        module: &M,
        device: &Device,
    ) -> Result<Self, FlatStateError> {
        let (saved, moments) = match FORMAT.decode::<Header>(bytes, "optimiser state") {
            Ok((header, body)) => (header.tensors, body),
            Err(ContainerError::BadMagic { .. }) => return Err(FlatStateError::OtherFormat),
            Err(ContainerError::UnsupportedVersion { found: VERSION_1, .. }) => version_1(bytes)?,
            Err(e) => return Err(FlatStateError::Invalid(e.to_string())),
        };
        if saved.is_empty() {
            return match moments.len() {
                0 => Ok(Self::new(config)),
                n => Err(FlatStateError::Invalid(format!("{n} bytes after the optimiser state"))),
            };
        }
        let (saved, moments) = without_untrained(saved, moments, module);
        let mut found = Gathered::default();
        module.visit(&mut found);
        let expected: Vec<(u64, usize)> = found
            .ids
            .iter()
            .map(|id| id.val())
            .zip(found.numels.iter().copied())
            .collect();
        let stored: Vec<(u64, usize)> = saved.iter().map(|t| (t.id, t.numel)).collect();
        if stored != expected {
            let first = stored
                .iter()
                .zip(&expected)
                .position(|(a, b)| a != b)
                .unwrap_or(stored.len().min(expected.len()));
            return Err(FlatStateError::Invalid(format!(
                "optimiser state is for {} parameter tensors that do not match the model's {} (first difference: tensor {first}, {:?} against {:?})",
                stored.len(),
                expected.len(),
                stored.get(first),
                expected.get(first),
            )));
        }
        let total: usize = expected.iter().map(|&(_, n)| n).sum();
        if moments.len() != 2 * 4 * total {
            return Err(FlatStateError::Invalid(format!(
                "optimiser state holds {} bytes of moments, not the {} its {total} parameters need",
                moments.len(),
                8 * total
            )));
        }
        let layout = Layout::new(found.ids, found.numels);
        let (first, second) = moments.split_at(4 * total);
        let moment = |bytes: &[u8]| {
            let mut values = vec![0.0f32; layout.len];
            let mut stored = bytes
                .chunks_exact(4)
                .map(|b| f32::from_le_bytes(b.try_into().expect("4 bytes")));
            for i in 0..layout.ids.len() {
                for (slot, value) in values[layout.range(i)].iter_mut().zip(&mut stored) {
                    *slot = value;
                }
            }
            Tensor::<1>::from_data(TensorData::new(values, [layout.len]), device)
        };
        let (moment_1, moment_2) = (moment(first), moment(second));
        let steps = saved
            .iter()
            // Adam's bias correction takes the count as an i32 power.
            .map(|t| {
                u32::try_from(t.updates)
                    .ok()
                    .filter(|&s| s <= i32::MAX as u32)
                    .ok_or_else(|| FlatStateError::Invalid(format!("{} updates is not a count", t.updates)))
            })
            .collect::<Result<_, _>>()?;
        Ok(Self {
            config,
            state: Some(State {
                layout,
                steps,
                moment_1,
                moment_2,
                params: None,
                tensors: None,
            }),
        })
    }
}

/// `saved` and its `moments` without the tensors that `module` holds but no longer trains.
///
/// A parameter can stop being trained by the optimiser while checkpoints that trained it
/// remain: L0's Lagrange multipliers were stepped by this Adam until session 39 and are now
/// updated by the trainer (`gates::hard_concrete`). Their moments mean nothing to
/// the run any more; dropping them lets such a checkpoint resume. A tensor the module does not
/// hold at all is still a mismatch, refused below.
fn without_untrained<'a, M: Module>(
    saved: Vec<SavedTensor>,
    moments: &'a [u8],
    module: &M,
) -> (Vec<SavedTensor>, Cow<'a, [u8]>) {
    let mut untrained = UntrainedIds::default();
    module.visit(&mut untrained);
    let keep: Vec<bool> = saved.iter().map(|t| !untrained.0.contains(&t.id)).collect();
    let moment_bytes = saved
        .iter()
        .try_fold(0usize, |sum, t| sum.checked_add(t.numel))
        .and_then(|total| total.checked_mul(4))
        .filter(|&bytes| bytes > 0 && moments.len() == 2 * bytes);
    // Nothing to drop, or a damaged state: left whole for the checks that name the problem.
    let Some(moment_bytes) = moment_bytes.filter(|_| keep.contains(&false)) else {
        return (saved, Cow::Borrowed(moments));
    };
    let mut kept_moments = Vec::with_capacity(moments.len());
    for moment in moments.chunks_exact(moment_bytes) {
        let mut at = 0;
        for (tensor, &k) in saved.iter().zip(&keep) {
            let bytes = &moment[at..at + 4 * tensor.numel];
            if k {
                kept_moments.extend_from_slice(bytes);
            }
            at += bytes.len();
        }
    }
    let kept = saved
        .into_iter()
        .zip(keep)
        .filter(|&(_, k)| k)
        .map(|(t, _)| t)
        .collect();
    (kept, Cow::Owned(kept_moments))
}

/// The ids of a module's float tensors that the optimiser does not train (buffers, and
/// parameters marked as not requiring a gradient).
#[derive(Default)]
struct UntrainedIds(Vec<u64>);

impl burn::module::ModuleVisitor for UntrainedIds {
    fn visit_float<const D: usize>(&mut self, param: &burn::module::Param<Tensor<D>>) {
        if !param.val().is_require_grad() {
            self.0.push(param.id.val());
        }
    }
}

/// The tensors and the moments' bytes of a version 1 state.
fn version_1(bytes: &[u8]) -> Result<(Vec<SavedTensor>, &[u8]), FlatStateError> {
    let ends_early = || FlatStateError::Invalid("optimiser state ends early".into());
    let u64_at = |at: usize| -> Result<u64, FlatStateError> {
        let field = bytes.get(at..at + 8).ok_or_else(ends_early)?;
        Ok(u64::from_le_bytes(field.try_into().expect("8 bytes")))
    };
    let size = |value: u64| {
        usize::try_from(value).map_err(|_| FlatStateError::Invalid(format!("{value} is too large a size")))
    };
    // magic (8) and version (4), then the count.
    let count = size(u64_at(12)?)?;
    let layout_start = 20;
    // Each tensor takes 24 bytes of layout: a count beyond what the bytes hold is damage.
    if count > bytes.len().saturating_sub(layout_start) / 24 {
        return Err(FlatStateError::Invalid(format!(
            "flat Adam state claims {count} tensors in {} bytes",
            bytes.len()
        )));
    }
    let tensors = (0..count)
        .map(|i| {
            let at = layout_start + 24 * i;
            Ok(SavedTensor {
                id: u64_at(at)?,
                numel: size(u64_at(at + 8)?)?,
                updates: u64_at(at + 16)?,
            })
        })
        .collect::<Result<_, FlatStateError>>()?;
    Ok((tensors, &bytes[layout_start + 24 * count..]))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::optim::flat_adam::tests::{CONFIG, Small, device, grads, small, values};

    /// A run three steps in (one of them without a gradient for `scale`): its optimiser, its
    /// model, and the optimiser's state as saved.
    fn three_steps_in(device: &Device) -> (FlatAdam, Small, Vec<u8>) {
        let mut flat = FlatAdam::new(CONFIG);
        let mut model = small(device);
        for step in 0..3 {
            let g = grads(&model, step, step != 1);
            model = flat.step(1e-2, model, g);
        }
        let bytes = crate::readback::block_on(flat.read_bytes()).unwrap();
        (flat, model, bytes)
    }

    /// Saving and restoring the state mid-run continues exactly as the uninterrupted run.
    #[test]
    fn a_restored_state_continues_as_the_run_would_have() {
        let device = device();
        let (mut flat, mut model, bytes) = three_steps_in(&device);
        let mut restored = FlatAdam::from_bytes(CONFIG, &bytes, &model, &device.clone().inner()).unwrap();
        let mut copy = model.clone();
        for step in 3..5 {
            let (g, g_copy) = (grads(&model, step, true), grads(&copy, step, true));
            model = flat.step(1e-2, model, g);
            copy = restored.step(1e-2, copy, g_copy);
        }
        assert_eq!(values(&model), values(&copy));
    }

    #[test]
    fn damaged_or_foreign_state_is_refused_by_name() {
        let device = device();
        let mut flat = FlatAdam::new(CONFIG);
        let model = small(&device);
        let g = grads(&model, 0, true);
        let model = flat.step(1e-2, model, g);
        let bytes = crate::readback::block_on(flat.read_bytes()).unwrap();
        let plain = device.clone().inner();
        let load = |b: &[u8], m: &Small| FlatAdam::from_bytes(CONFIG, b, m, &plain).err();
        assert_eq!(load(b"\x00burnpack", &model), Some(FlatStateError::OtherFormat));
        let truncated = load(&bytes[..bytes.len() - 3], &model).unwrap().to_string();
        assert!(truncated.contains("bytes of moments"), "{truncated}");
        let mut huge = bytes.clone();
        huge[12..20].copy_from_slice(&u64::MAX.to_le_bytes());
        let header = load(&huge, &model).unwrap().to_string();
        assert!(header.contains("optimiser state is truncated"), "{header}");
        let other = load(&bytes, &small(&device)).unwrap().to_string();
        assert!(other.contains("do not match"), "{other}");
        let mut v1 = version_1(&bytes);
        v1[12..20].copy_from_slice(&u64::MAX.to_le_bytes());
        let claim = load(&v1, &model).unwrap().to_string();
        assert!(claim.contains("claims"), "{claim}");
    }

    /// State saved while a parameter was trained restores onto a module that no longer trains
    /// it (L0's multipliers since session 39): that tensor's moments are dropped and the others
    /// continue as the run would have.
    #[test]
    fn a_state_that_trained_a_now_fixed_parameter_restores_without_it() {
        let device = device();
        let (mut flat, model, bytes) = three_steps_in(&device);
        let mut fixed = model.clone();
        fixed.scale = fixed.scale.set_require_grad(false);
        let plain = device.clone().inner();
        let mut restored = FlatAdam::from_bytes(CONFIG, &bytes, &fixed, &plain).unwrap();
        let (mut a, mut b) = (model, fixed);
        for step in 3..5 {
            let (g_a, g_b) = (grads(&a, step, false), grads(&b, step, false));
            a = flat.step(1e-2, a, g_a);
            b = restored.step(1e-2, b, g_b);
        }
        assert_eq!(values(&a), values(&b));
        // The fixed parameter's moments are gone from what the restored optimiser saves.
        let saved = crate::readback::block_on(restored.read_bytes()).unwrap();
        let (header, _) = FORMAT.decode::<Header>(&saved, "optimiser state").unwrap();
        assert_eq!(header.tensors.len(), 2, "linear weight and bias only");
    }

    /// `bytes` (version 2) rewritten in version 1, the layout checkpoints held before the
    /// state went into the container: magic, version, count, (id, size, updates) as `u64`s,
    /// then the moments as they are.
    fn version_1(bytes: &[u8]) -> Vec<u8> {
        let header_len = u64::from_le_bytes(bytes[12..20].try_into().unwrap()) as usize;
        let header: serde_json::Value = serde_json::from_slice(&bytes[20..20 + header_len]).unwrap();
        let tensors = header["tensors"].as_array().unwrap();
        let mut out = b"PLFLADAM".to_vec();
        out.extend_from_slice(&1u32.to_le_bytes());
        out.extend_from_slice(&(tensors.len() as u64).to_le_bytes());
        for t in tensors {
            for field in ["id", "numel", "updates"] {
                out.extend_from_slice(&t[field].as_u64().unwrap().to_le_bytes());
            }
        }
        out.extend_from_slice(&bytes[20 + header_len..]);
        out
    }

    /// State saved before the container was used (version 1) restores to the same run.
    #[test]
    fn a_version_1_state_still_restores() {
        let device = device();
        let (_, model, bytes) = three_steps_in(&device);
        let plain = device.clone().inner();
        let mut from_1 = FlatAdam::from_bytes(CONFIG, &version_1(&bytes), &model, &plain).unwrap();
        let mut from_2 = FlatAdam::from_bytes(CONFIG, &bytes, &model, &plain).unwrap();
        let (mut a, mut b) = (model.clone(), model);
        for step in 3..5 {
            let (g_a, g_b) = (grads(&a, step, true), grads(&b, step, true));
            a = from_1.step(1e-2, a, g_a);
            b = from_2.step(1e-2, b, g_b);
        }
        assert_eq!(values(&a), values(&b));
        let empty = crate::readback::block_on(FlatAdam::new(CONFIG).read_bytes()).unwrap();
        assert!(FlatAdam::from_bytes(CONFIG, &version_1(&empty), &a, &plain).is_ok());
    }
}
