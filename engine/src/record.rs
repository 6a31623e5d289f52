//! Recording a pass once and replaying it, on native backends and in the browser alike.
//!
//! burn 0.22.1's `burn::tensor::capture` runs a closure three times to warm it up, records the
//! fourth run and replays it. Between warm-ups it waits for the device with a blocking sync,
//! which a browser cannot do (the wait never ends: the page's one thread is the one that would
//! deliver WebGPU's answer). [`record`] is the same sequence with the waits awaited, so the lab
//! and the command line record the same way.
//!
//! What a recording is, on wgpu: cubecl resolves each dispatch's pipeline, bindings and bind
//! group once while recording, and a replay re-encodes the dispatches from them (WebGPU cannot
//! resubmit a command buffer). So a replay runs on the buffers the recording used: inputs are
//! refreshed in place (`kernels::overwrite`) and outputs are overwritten; and an upload inside
//! the recording fails it (cubecl's wgpu graph records dispatches only).
//!
//! Natively (lavapipe) the training pass records and a replay computes what the eager pass does,
//! to the bit, and so it does in Chromium on SwiftShader (issue 32's notebook, session 43).

use burn::backend::{Backend, BackendGraph, Dispatch};
use burn::prelude::*;

use crate::readback::{ReadBackError, read_floats};

/// Runs of the pass before the recorded one: the first builds and tunes fusion's kernels, and
/// the next ones take the steady-state path whose buffers the recording must reuse (burn's
/// `capture` warms up three times for the same reason).
const WARM_UPS: usize = 3;

/// Warm-ups at most: past [`WARM_UPS`], the pass is run again while a run still grows the
/// memory the device holds, since the recorded run may add no page to it ("no page may be added
/// … while recording").
const MOST_WARM_UPS: usize = 8;

/// Why a pass could not be recorded.
#[derive(Debug, thiserror::Error)]
pub enum RecordError {
    /// The backend records nothing (burn's CPU backend), or refused this pass: the reason is
    /// the backend's (an upload inside the pass, a read-back, an allocation it could not pin).
    #[error("the pass cannot be recorded on this device: {0}")]
    Unsupported(String),
    /// Waiting for a warm-up run failed.
    #[error(transparent)]
    ReadBack(#[from] ReadBackError),
}

/// A pass recorded once. [`Recording::replay`] runs it again on the buffers it was recorded
/// with; [`Recording::output`] is what the recorded run returned, whose buffers each replay
/// overwrites.
pub struct Recording<T> {
    device: Device,
    output: T,
    graph: BackendGraph<Dispatch>,
}

/// Records `pass` on `device` (the inner device of an autodiff one: burn's autodiff refuses
/// capture, but a pass that differentiates on the autodiff device records on the device it
/// wraps). `pass` runs `WARM_UPS` times or more, each run waited for, then once recorded. It
/// must read its inputs from tensors that outlive the recording, must not upload anything (make
/// padding, plans and constants before, refresh inputs with `kernels::overwrite`), and must
/// start every run from the same state: a pass that reads what its last run wrote (BatchNorm's
/// running statistics) allocates differently each run, and in Chromium on SwiftShader the
/// recorded run then asked for a buffer the warmed-up pool could not give (session 43).
pub async fn record<T>(device: &Device, mut pass: impl FnMut() -> T) -> Result<Recording<T>, RecordError> {
    let device = device.clone().without_autodiff();
    let backend = device.as_dispatch();
    let unsupported = |e| RecordError::Unsupported(format!("{e:?}"));
    Dispatch::graph_prepare(backend).map_err(unsupported)?;
    let mut held = vec![held_bytes(&device)];
    for run in 0..MOST_WARM_UPS {
        // Held until the device has run it: fusion skips work whose results are dropped
        // before they are computed, and the recording must find every buffer already made.
        let output = pass();
        wait_for_device(&device).await?;
        drop(output);
        held.push(held_bytes(&device));
        if run + 1 >= WARM_UPS && held[held.len() - 1] == held[held.len() - 2] {
            break;
        }
    }
    Dispatch::graph_start_capture(backend).map_err(unsupported)?;
    let output = pass();
    // A failed recording leaves the device out of recording, its recorded run never executed.
    let graph = Dispatch::graph_stop_capture(backend)
        .map_err(|e| RecordError::Unsupported(format!("{e:?} (bytes held after each warm-up: {held:?})")))?;
    Ok(Recording { device, output, graph })
}

/// The bytes `device`'s allocator holds (`None` where the backend does not say).
fn held_bytes(device: &Device) -> Option<u64> {
    device.memory_pool_usage().map(|usage| usage.bytes_reserved)
}

/// Waits until `device` has run everything queued on this thread before the call: a read of
/// a new tensor waits for the work queued ahead of it.
pub async fn wait_for_device(device: &Device) -> Result<(), ReadBackError> {
    read_floats(Tensor::<1>::zeros([1], device), "a marker after the queued work")
        .await
        .map(drop)
}

impl<T> Recording<T> {
    /// What the recorded run returned; after a replay (once the device has run it) the same
    /// tensors hold the replay's values.
    pub fn output(&self) -> &T {
        &self.output
    }

    /// Runs the recorded pass again: queues its dispatches after the work already queued, on
    /// the buffers of the recording, and returns the output, whose values are the replay's once
    /// the device has run it.
    ///
    /// # Safety
    /// Every tensor the recorded pass read or wrote must still be alive (a dropped one's buffer
    /// may hold something else by now), and nothing on another thread may use them while the
    /// replay runs. Refresh inputs with `kernels::overwrite` on this thread, before the call.
    pub unsafe fn replay(&self) -> Result<&T, RecordError> {
        // Safety: the caller's, as documented above.
        unsafe { Dispatch::graph_replay(self.device.as_dispatch(), &self.graph) }
            .map_err(|e| RecordError::Unsupported(format!("{e:?}")))?;
        Ok(&self.output)
    }
}
