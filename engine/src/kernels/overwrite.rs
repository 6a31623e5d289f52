//! Writing new values into a tensor's own buffer: how the inputs of a recorded graph (burn's
//! `capture`) are refreshed between replays. A replay runs the recorded dispatches on the
//! buffers they were recorded with, so a new batch has to arrive in those buffers; any other
//! tensor would be a new buffer the graph never reads.

use burn::backend::TensorMetadata;
use burn_cubecl::tensor::CubeTensor;
use cubecl::bytes::Bytes;

/// `target` with its elements replaced by `values` (row-major), in place: one buffer write on
/// the target's stream, ordered before whatever is queued after it (a replay).
pub(super) fn overwrite(target: CubeTensor, values: Vec<f32>) -> CubeTensor {
    assert_eq!(
        target.shape().num_elements(),
        values.len(),
        "overwriting a tensor of shape {:?} with {} values",
        target.shape(),
        values.len()
    );
    assert!(
        target.dtype == burn::tensor::DType::F32 && target.is_contiguous() && target.is_contiguous_buffer(),
        "only an f32 tensor laid out contiguously in its whole buffer can be overwritten in place"
    );
    target.client.write(&target.handle, Bytes::from_elems(values));
    target
}
