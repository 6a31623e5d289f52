//! A fingerprint of a module's parameter values, for checking that two runs produced the same
//! weights bit for bit. Checkpoint files cannot be compared byte for byte: burn stores each
//! parameter's id, which is drawn afresh in every process.

use burn::module::{Module, ModuleVisitor, Param};
use burn::prelude::*;

use crate::readback::ReadBackError;

/// FNV-1a over every float parameter's bits, in module order, with each parameter's path.
/// Reads every parameter back (a sync point; native only); a failed read is an error, never a
/// fingerprint of nothing.
pub fn weights_fingerprint<M: Module>(module: &M) -> Result<u64, ReadBackError> {
    let mut visitor = Fingerprint {
        hash: 0xcbf2_9ce4_8422_2325,
        path: Vec::new(),
        failed: None,
    };
    module.visit(&mut visitor);
    visitor.failed.map_or(Ok(visitor.hash), Err)
}

struct Fingerprint {
    hash: u64,
    path: Vec<String>,
    failed: Option<ReadBackError>,
}

impl Fingerprint {
    fn mix(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.hash ^= u64::from(b);
            self.hash = self.hash.wrapping_mul(0x0100_0000_01b3);
        }
    }
}

impl ModuleVisitor for Fingerprint {
    fn enter_module(&mut self, name: &str, _container_type: &str) {
        self.path.push(name.to_string());
    }

    fn exit_module(&mut self, _name: &str, _container_type: &str) {
        self.path.pop();
    }

    fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<D>>) {
        let path = self.path.join(".");
        self.mix(path.as_bytes());
        match param.val().try_into_vec_as::<f32>() {
            Ok(values) => values.iter().for_each(|v| self.mix(&v.to_bits().to_le_bytes())),
            Err(e) => {
                self.failed.get_or_insert(ReadBackError {
                    what: "a parameter",
                    detail: format!("{path}: {e:?}"),
                });
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::Preset;

    #[test]
    fn equal_weights_match_and_one_changed_bit_does_not() {
        let device = Device::flex();
        let config = Preset::Tiny.config(80, 30);
        let a = config.init(&device);
        // Two models from separate inits have different ids; a copy through bytes has equal values.
        let bytes = a.clone().into_record().into_bytes().unwrap().to_vec();
        let record = burn::store::ModuleRecord::from_bytes(burn::tensor::Bytes::from_bytes_vec(bytes)).unwrap();
        let b = config.init(&device).try_load_record(record).unwrap();
        assert_eq!(weights_fingerprint(&a).unwrap(), weights_fingerprint(&b).unwrap());
        let other = config.init(&device);
        assert_ne!(weights_fingerprint(&a).unwrap(), weights_fingerprint(&other).unwrap());
    }
}
