//! Reading tensors back to the host. Native backends may block; WebGPU must not (a synchronous
//! read panics there), so every caller that can run in the browser uses [`read_async`].

use burn::prelude::*;

/// The values of `tensor` as `f32`, read asynchronously (works on every backend). `what` names
/// the tensor in the error ("the loss").
pub async fn read_async<const D: usize>(tensor: Tensor<D>, what: &str) -> Result<Vec<f32>, String> {
    let data = tensor
        .into_data_async()
        .await
        .map_err(|e| format!("cannot read {what} back: {e:?}"))?;
    Ok(data.iter::<f32>().collect())
}
