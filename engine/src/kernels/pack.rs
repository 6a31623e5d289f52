//! What one packing dispatch of the flat optimiser writes (`flat_pack.rs` on a cube backend):
//! plain data, so that code which plans the groups builds without the `wgpu` feature too.

/// Tensors one packing dispatch reads: with the flat buffer, 7 storage bindings (the limit every
/// kernel here keeps; WebGPU guarantees 8 and wgpu on Metal keeps one).
pub const PACK_PARTS: usize = 6;

/// Where one packing dispatch writes: `flat[start..start + len]`, every element of it, and where
/// in that range each part goes (`(start, len)` relative to the range; the rest is zeros, and a
/// part with `len` 0 is not read).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PackGroup {
    pub start: u32,
    pub len: u32,
    pub parts: [(u32, u32); PACK_PARTS],
}
