//! Prunelab's engine: everything that is not a front door.
//!
//! Floors (a lower floor never imports a higher one):
//! `audio`, `text`, `decode`, `rng`, `container` → `model`, `data` → `train` → `store`.

pub mod audio;
pub mod container;
pub mod data;
pub mod decode;
pub mod model;
pub mod rng;
pub mod store;
pub mod text;
pub mod train;

/// The burn version the engine is built on, for front doors that need devices and tensors.
pub use burn;
