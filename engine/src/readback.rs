//! Reading tensors back to the host, and running the engine's async calls to completion on
//! native front doors.
//!
//! Every read in the engine is asynchronous, because WebGPU cannot block (a synchronous read
//! panics there). The browser awaits them; native code calls [`block_on`], which on native
//! backends is exactly what burn's own synchronous reads do.

use burn::prelude::*;

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
