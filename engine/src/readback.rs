//! Reading tensors back to the host, and running the engine's async calls to completion on
//! native front doors.
//!
//! Every read in the engine is asynchronous, because WebGPU cannot block (a synchronous read
//! panics there). The browser awaits them; native code calls [`block_on`], which on native
//! backends is exactly what burn's own synchronous reads do.

use std::collections::HashMap;
use std::future::Future;
use std::pin::Pin;

use burn::module::{Module, ModuleMapper, ModuleVisitor, Param, ParamId};
use burn::prelude::*;
use futures_util::future::join_all;

/// A read-back from the device failed. The step, snapshot or evaluation that needed it stops.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("cannot read {what} back from the device: {detail}")]
pub struct ReadBackError {
    /// What was being read ("the loss", "the gates").
    pub what: &'static str,
    pub detail: String,
}

/// The values of `tensor` as `f32`. `what` names the tensor in the error ("the loss").
pub async fn read_floats<const D: usize>(tensor: Tensor<D>, what: &'static str) -> Result<Vec<f32>, ReadBackError> {
    let data = tensor.into_data_async().await.map_err(|e| ReadBackError {
        what,
        detail: format!("{e:?}"),
    })?;
    Ok(data.iter::<f32>().collect())
}

/// Runs one of the engine's async calls to its end on the current thread (native only: the
/// browser cannot block, and awaits instead). Device reads inside complete as burn's
/// synchronous reads do.
#[cfg(not(target_family = "wasm"))]
pub fn block_on<F: std::future::Future>(future: F) -> F::Output {
    burn::tensor::read_sync(future)
}

/// A copy of `module` on the host's CPU backend, its parameters read back asynchronously.
///
/// Serialising a module reads its parameters synchronously, which panics on WebGPU, and
/// moving a module between backends does the same; so a module on the GPU goes through this
/// before it is saved, and what it returns outlives the GPU it came from (a lost device
/// takes its buffers with it). Every parameter's read is started before any is awaited, so the
/// device copies them all out in one round trip rather than one per tensor; nothing is
/// computed (joining them into one buffer first would cost a compute dispatch per tensor).
/// Modules with integer or boolean parameters are refused: the engine's modules hold floats
/// only, and a copy that silently left some on the device would fail later, far from here.
pub async fn host_copy<M: Module>(module: M, what: &'static str) -> Result<M, ReadBackError> {
    let mut reads = PendingReads::default();
    module.visit(&mut reads);
    if reads.other_kinds > 0 {
        return Err(ReadBackError {
            what,
            detail: format!("{} integer or boolean parameters cannot be copied", reads.other_kinds),
        });
    }
    let (ids, pending): (Vec<ParamId>, Vec<PendingRead>) = reads.pending.into_iter().unzip();
    let mut values = HashMap::with_capacity(ids.len());
    for (id, data) in ids.into_iter().zip(join_all(pending).await) {
        values.insert(id, data.map_err(|detail| ReadBackError { what, detail })?);
    }
    let mut placed = PlaceOnHost {
        values,
        host: Device::flex(),
        missing: 0,
    };
    let copy = module.map(&mut placed);
    if placed.missing > 0 {
        return Err(ReadBackError {
            what,
            // The module is owned, so only parameters sharing an id (tied weights) get here.
            detail: format!(
                "{} parameters share an id with another (tied weights are not supported)",
                placed.missing
            ),
        });
    }
    Ok(copy)
}

/// Waits until the device has computed `module`'s first parameter, and with it (the device
/// runs work in order) everything queued before that value. A training step returns once its
/// loss is read, with its backward pass and update still queued; this waits for them, so what
/// is timed after it is not the end of a step.
pub async fn settled<M: Module>(module: &M, what: &'static str) -> Result<(), ReadBackError> {
    let mut reads = PendingReads::default();
    module.visit(&mut reads);
    if let Some((_, first)) = reads.pending.into_iter().next() {
        first.await.map_err(|detail| ReadBackError { what, detail })?;
    }
    Ok(())
}

type PendingRead = Pin<Box<dyn Future<Output = Result<TensorData, String>> + Send>>;

/// A read of every float parameter, not yet started (visiting does not consume the module).
#[derive(Default)]
struct PendingReads {
    pending: Vec<(ParamId, PendingRead)>,
    other_kinds: usize,
}

impl ModuleVisitor for PendingReads {
    fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<D>>) {
        let read = param.val().into_data_async();
        self.pending.push((
            param.id,
            Box::pin(async move { read.await.map_err(|e| format!("{e:?}")) }),
        ));
    }

    fn visit_int<const D: usize>(&mut self, _: &Param<Tensor<D, Int>>) {
        self.other_kinds += 1;
    }

    fn visit_bool<const D: usize>(&mut self, _: &Param<Tensor<D, Bool>>) {
        self.other_kinds += 1;
    }
}

/// Puts each parameter's read-back values on the host device, under the same id.
struct PlaceOnHost {
    values: HashMap<ParamId, TensorData>,
    host: Device,
    missing: usize,
}

impl ModuleMapper for PlaceOnHost {
    fn map_float<const D: usize>(&mut self, param: Param<Tensor<D>>) -> Param<Tensor<D>> {
        let Some(data) = self.values.remove(&param.id) else {
            self.missing += 1;
            return param;
        };
        let host = &self.host;
        param.map(|_| Tensor::from_data(data, host))
    }
}

#[cfg(test)]
mod tests {
    use burn::nn::{BatchNorm, BatchNormConfig, Linear, LinearConfig};

    use super::*;

    #[derive(Module, Debug)]
    struct Parts {
        linear: Linear,
        norm: BatchNorm,
    }

    fn values<M: Module>(module: &M) -> Vec<(ParamId, Vec<usize>, Vec<f32>)> {
        struct Collect(Vec<(ParamId, Vec<usize>, Vec<f32>)>);
        impl ModuleVisitor for Collect {
            fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<D>>) {
                let value = param.val();
                let dims = value.dims().to_vec();
                self.0.push((param.id, dims, value.into_data().to_vec().unwrap()));
            }
        }
        let mut collect = Collect(Vec::new());
        module.visit(&mut collect);
        collect.0
    }

    /// Every parameter, running statistics included, comes back under its id with its shape
    /// and values.
    #[test]
    fn a_host_copy_holds_every_parameter_under_its_id() {
        let device = Device::flex();
        let parts = Parts {
            linear: LinearConfig::new(3, 5).init(&device),
            norm: BatchNormConfig::new(5).init(&device),
        };
        let before = values(&parts);
        assert_eq!(before.len(), 6, "weight, bias, gamma, beta and two running statistics");
        let copy = block_on(host_copy(parts, "test")).unwrap();
        assert_eq!(values(&copy), before);
    }
}
