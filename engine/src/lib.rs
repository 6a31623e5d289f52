//! Prunelab's engine: everything that is not a front door.
//!
//! Floors (a lower floor never imports a higher one):
//! `audio`, `text`, `decode`, `gates`, `rng`, `stats`, `container`, `readback`, `record`, `limits`, `cut_target`, `kernels` → `model`, `data`, `optim`
//! → `infer`, `prune`, `train` → `store`.

pub mod audio;
pub mod bounded_read;
pub mod container;
pub mod cut_target;
pub mod data;
pub mod decode;
pub mod gates;
pub mod infer;
pub mod kernels;
pub mod limits;
pub mod model;
pub mod optim;
pub mod prune;
pub mod readback;
pub mod record;
pub mod rng;
pub mod stats;
pub mod store;
pub mod text;
pub mod train;

/// The burn version the engine is built on, for front doors that need devices and tensors.
pub use burn;
