//! A run kept in the browser's storage so that a reload can carry it on: its copy in memory
//! ([`KeptRun`]: the trainer's whole state and the trace) and the settings it runs with, in one
//! file of the engine's container format. The checkpoint inside is the CLI's own format (with
//! its checksum), so a damaged or foreign file is refused by name, never half-loaded.

use prunelab_engine::container::Format;
use prunelab_engine::store::{decode_checkpoint, decode_trace, encode_checkpoint, encode_trace};

use crate::session::KeptRun;
use crate::settings::LabSettings;

const FORMAT: Format = Format {
    magic: b"PLSAVED1",
    version: 1,
    noun: "saved run",
};

/// What the container's header says: the settings as the page's link writes them, and where
/// the checkpoint ends in the body (the trace follows it).
type Header = (String, u64);

/// A run as the page keeps it across reloads.
#[derive(Clone)]
pub struct SavedRun {
    pub kept: KeptRun,
    pub settings: LabSettings,
}

impl SavedRun {
    pub fn encode(&self) -> Vec<u8> {
        let checkpoint = encode_checkpoint(&self.kept.state);
        let header: Header = (self.settings.to_hash(), checkpoint.len() as u64);
        FORMAT.encode(&header, &[&checkpoint, &encode_trace(&self.kept.trace)])
    }

    /// Reads a saved run; `name` appears in every error.
    pub fn decode(bytes: &[u8], name: &str) -> Result<Self, String> {
        let ((hash, checkpoint_bytes), body): (Header, &[u8]) =
            FORMAT.decode(bytes, name).map_err(|e| e.to_string())?;
        let split = usize::try_from(checkpoint_bytes)
            .ok()
            .filter(|&n| n <= body.len())
            .ok_or_else(|| FORMAT.truncated(name, "its checkpoint runs past the end").to_string())?;
        let state = decode_checkpoint(&body[..split], name).map_err(|e| e.to_string())?;
        let trace = decode_trace(&body[split..], name).map_err(|e| e.to_string())?;
        let (settings, problems) = LabSettings::from_hash(&hash);
        if let Some(problem) = problems.first() {
            return Err(format!("{name}: its settings do not read back: {problem}"));
        }
        Ok(Self {
            kept: KeptRun { state, trace },
            settings,
        })
    }
}

#[cfg(test)]
mod tests {
    use prunelab_engine::burn::prelude::Device;
    use prunelab_engine::gates::Method;
    use prunelab_engine::model::weights_fingerprint;
    use prunelab_engine::readback::block_on;

    use super::*;
    use crate::session::{LabData, LabSession};
    use crate::test_support::{device_rng_turn, trained_start, utterances};

    /// Through its bytes, a saved run carries on exactly as the run itself goes on (the same
    /// losses and weights), with its settings and trace; damage anywhere is refused by name.
    #[test]
    fn a_saved_run_read_back_carries_on_exactly_and_damage_is_refused() {
        let _turn = device_rng_turn();
        let trained = trained_start();
        let (train, dev) = (utterances(6, 1), utterances(2, 2));
        let data = LabData::for_tests(&train, &dev, &trained);
        let settings = LabSettings {
            method: Method::AdaptiveDropout,
            steps: 6,
            batch_seconds: 3.0,
            seed: 7,
            ..LabSettings::default()
        };
        let mut session = LabSession::new(&settings, data, None, &Device::flex()).unwrap();
        block_on(session.begin()).unwrap();
        block_on(session.train_step(&train)).unwrap();
        let saved = SavedRun {
            kept: block_on(session.keep()).unwrap(),
            settings: settings.clone(),
        };
        let bytes = saved.encode();
        block_on(session.train_step(&train)).unwrap();
        let went_on = weights_fingerprint(&session.inference_model()).unwrap();

        let read = SavedRun::decode(&bytes, "saved").unwrap();
        assert_eq!(read.settings, settings);
        assert_eq!(read.kept.step(), 1);
        assert_eq!(read.kept.trace, saved.kept.trace);
        let mut carried = LabSession::resume(&read.kept, settings.threshold, data, None, &Device::flex()).unwrap();
        block_on(carried.train_step(&train)).unwrap();
        assert_eq!(weights_fingerprint(&carried.inference_model()).unwrap(), went_on);

        for (what, damaged) in [
            ("truncated", bytes[..bytes.len() - 100].to_vec()),
            ("flipped", {
                let mut b = bytes.clone();
                let middle = b.len() / 2;
                b[middle] ^= 0x10;
                b
            }),
            ("foreign", b"PLTRACE1 not a saved run at all".to_vec()),
        ] {
            let refused = SavedRun::decode(&damaged, "saved").map(drop).unwrap_err();
            assert!(refused.starts_with("saved: "), "{what}: {refused}");
        }
    }
}
