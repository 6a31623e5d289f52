//! The run trace: every gated unit's retention score at regular steps, plus the metric series,
//! for the lab to replay. A [`crate::container`] file (magic `PLTRACE1`, version 1): the JSON
//! header lists the sites (block, kind, units), the snapshot steps and the metrics; the body is
//! the scores as little-endian f32, snapshot after snapshot, each in site order.

use serde::{Deserialize, Serialize};

use crate::container::{ContainerError, Format};
use crate::gates::{PerSite, SiteKind};
use crate::train::TrainEvent;

const FORMAT: Format = Format {
    magic: b"PLTRACE1",
    version: 1,
    noun: "trace",
};

/// One gated vector in the trace.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TraceSite {
    pub block: usize,
    pub kind: SiteKind,
    pub units: usize,
}

/// A run's trace in memory.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Trace {
    /// What produced it (method, preset, seed), free text for display.
    pub description: String,
    pub sites: Vec<TraceSite>,
    /// Step of each snapshot.
    pub steps: Vec<usize>,
    /// `snapshots[i]` holds every site's scores at `steps[i]`, sites in `sites` order.
    #[serde(skip)]
    pub snapshots: Vec<Vec<f32>>,
    /// Training and evaluation events, in order.
    pub events: Vec<TrainEvent>,
}

impl Trace {
    /// An empty trace shaped like `scores` (one vector per block and site), e.g. a first
    /// retention snapshot.
    pub fn shaped_like(description: String, scores: &[PerSite<Vec<f32>>]) -> Self {
        let layout: Vec<PerSite<usize>> = scores
            .iter()
            .map(|sites| std::array::from_fn(|i| sites[i].as_ref().map(Vec::len)))
            .collect();
        Self::new(description, &layout)
    }

    /// An empty trace for the gated sites of `blocks` blocks.
    pub fn new(description: String, site_layout: &[PerSite<usize>]) -> Self {
        let sites = site_layout
            .iter()
            .enumerate()
            .flat_map(|(block, sites)| {
                SiteKind::ALL
                    .into_iter()
                    .zip(sites)
                    .filter_map(move |(kind, units)| units.map(|units| TraceSite { block, kind, units }))
            })
            .collect();
        Self {
            description,
            sites,
            steps: Vec::new(),
            snapshots: Vec::new(),
            events: Vec::new(),
        }
    }

    /// Scores in one snapshot (`None` when a damaged header's site sizes overflow).
    fn units_per_snapshot(&self) -> Option<usize> {
        self.sites
            .iter()
            .try_fold(0usize, |sum, site| sum.checked_add(site.units))
    }

    /// Whether `scores` have this trace's layout (always, before a trace without sites has
    /// laid them out): a trace read from a file may belong to another model.
    pub fn fits(&self, scores: &[PerSite<Vec<f32>>]) -> bool {
        self.sites.is_empty() || Self::shaped_like(String::new(), scores).sites == self.sites
    }

    /// Appends one snapshot of per-block, per-site scores (ungated sites are `None`). The first
    /// snapshot of a trace made without sites lays them out (only then is it known what a
    /// method scores); a second snapshot at the last recorded step is ignored (a resumed run
    /// starts where its trace ends).
    pub fn record(&mut self, step: usize, scores: &[PerSite<Vec<f32>>]) {
        if self.steps.last() == Some(&step) {
            return;
        }
        if self.steps.is_empty() && self.sites.is_empty() {
            self.sites = Self::shaped_like(String::new(), scores).sites;
        }
        let flat: Vec<f32> = scores
            .iter()
            .flat_map(|sites| sites.iter().flatten().flatten().copied())
            .collect();
        assert_eq!(
            Some(flat.len()),
            self.units_per_snapshot(),
            "scores do not match the trace's sites"
        );
        self.steps.push(step);
        self.snapshots.push(flat);
    }

    /// Forgets everything recorded after `step` steps: a run resumed from a checkpoint at
    /// `step` records the rest again.
    pub fn truncate_to(&mut self, step: usize) {
        let keep = self.steps.iter().take_while(|&&s| s <= step).count();
        self.steps.truncate(keep);
        self.snapshots.truncate(keep);
        self.events.retain(|e| e.steps_done() <= step);
    }

    /// The scores of site `site` (index into `sites`) in snapshot `snapshot`.
    pub fn site_scores(&self, snapshot: usize, site: usize) -> &[f32] {
        let start: usize = self.sites[..site].iter().map(|s| s.units).sum();
        &self.snapshots[snapshot][start..start + self.sites[site].units]
    }

    /// Every unit's score of site kind `kind`, all blocks in order, in snapshot `snapshot`
    /// (empty when the method gates no site of that kind).
    pub fn kind_scores(&self, snapshot: usize, kind: SiteKind) -> Vec<f32> {
        (0..self.sites.len())
            .filter(|&site| self.sites[site].kind == kind)
            .flat_map(|site| self.site_scores(snapshot, site).iter().copied())
            .collect()
    }
}

/// Serialises a trace.
pub fn encode_trace(trace: &Trace) -> Vec<u8> {
    let body: Vec<u8> = trace.snapshots.iter().flatten().flat_map(|x| x.to_le_bytes()).collect();
    FORMAT.encode(trace, &[&body])
}

/// Bounds of a trace's sites, those of a model config (`model::config_check`).
const MAX_BLOCKS: usize = 128;
const MAX_UNITS: usize = 65_536;

/// Parses a trace; `name` appears in every error.
pub fn decode_trace(bytes: &[u8], name: &str) -> Result<Trace, ContainerError> {
    let (mut trace, body): (Trace, &[u8]) = FORMAT.decode(bytes, name)?;
    // The lab lays out heatmaps by block and unit: both are bounded like a model's, and a
    // site appears once (a trace without snapshots needs no body to claim any of them).
    let mut seen = std::collections::HashSet::new();
    for site in &trace.sites {
        if site.block >= MAX_BLOCKS || !(1..=MAX_UNITS).contains(&site.units) || !seen.insert((site.block, site.kind)) {
            return Err(FORMAT.bad_header(
                name,
                format!(
                    "site {} of block {} with {} units is out of range or repeated (blocks below {MAX_BLOCKS}, 1 to {MAX_UNITS} units)",
                    site.kind.name(),
                    site.block,
                    site.units
                ),
            ));
        }
    }
    // Checked: a damaged header may claim sites and snapshots whose sizes overflow.
    let per_snapshot = trace.units_per_snapshot();
    let needed = per_snapshot
        .and_then(|n| n.checked_mul(trace.steps.len()))
        .and_then(|n| n.checked_mul(4));
    let (Some(per_snapshot), Some(needed)) = (per_snapshot, needed) else {
        let detail = format!(
            "{} snapshots of its sites would need more bytes than memory holds",
            trace.steps.len()
        );
        return Err(FORMAT.truncated(name, &detail));
    };
    if body.len() != needed {
        let detail = format!(
            "{} snapshots of {per_snapshot} scores need {needed} bytes, file has {}",
            trace.steps.len(),
            body.len()
        );
        return Err(FORMAT.truncated(name, &detail));
    }
    if trace.steps.windows(2).any(|w| w[0] >= w[1]) {
        return Err(FORMAT.bad_header(name, "snapshot steps are not increasing".into()));
    }
    let values: Vec<f32> = body
        .chunks_exact(4)
        .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
        .collect();
    // Every score a run records is in [0, 1] (retention, a keep probability, or a weight norm
    // over its site's largest: `CutSource::display_scores`); the heatmaps would clamp anything
    // else and show a wrong picture without a word, so it is refused with where it is.
    if let Some(at) = values.iter().position(|v| !(0.0..=1.0).contains(v)) {
        let (snapshot, unit) = (at / per_snapshot.max(1), at % per_snapshot.max(1));
        let problem = if values[at].is_finite() {
            "outside 0 to 1"
        } else {
            "not a finite number"
        };
        return Err(FORMAT.bad_header(
            name,
            format!(
                "score {} of the snapshot at step {} is {}: {problem}",
                unit + 1,
                trace.steps[snapshot],
                values[at]
            ),
        ));
    }
    trace.snapshots = values.chunks(per_snapshot.max(1)).map(<[f32]>::to_vec).collect();
    if per_snapshot == 0 {
        trace.snapshots = vec![Vec::new(); trace.steps.len()];
    }
    Ok(trace)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> Trace {
        let layout = vec![
            [Some(3), None, Some(2), None, None],
            [Some(3), None, Some(2), None, None],
        ];
        let mut trace = Trace::new("test".into(), &layout);
        let scores = |x: f32| vec![[Some(vec![x; 3]), None, Some(vec![0.5; 2]), None, None]; 2];
        trace.record(0, &scores(0.9));
        trace.record(50, &scores(0.2));
        trace
    }

    #[test]
    fn round_trips_and_addresses_sites() {
        let trace = sample();
        let decoded = decode_trace(&encode_trace(&trace), "t.pltrace").unwrap();
        assert_eq!(decoded, trace);
        assert_eq!(decoded.sites.len(), 4);
        assert_eq!(decoded.site_scores(1, 2), &[0.2, 0.2, 0.2]);
        assert_eq!(decoded.kind_scores(1, SiteKind::Ffn1Hidden), [0.2; 6]);
        assert_eq!(decoded.kind_scores(0, SiteKind::AttnValue), [0.5; 4]);
        assert!(decoded.kind_scores(0, SiteKind::AttnQuery).is_empty());
    }

    #[test]
    fn the_first_snapshot_lays_out_a_trace_made_without_sites_and_a_repeated_step_is_ignored() {
        let laid_out = sample();
        let mut trace = Trace::new("test".into(), &[]);
        let scores = |x: f32| vec![[Some(vec![x; 3]), None, Some(vec![0.5; 2]), None, None]; 2];
        trace.record(0, &scores(0.9));
        trace.record(0, &scores(0.1));
        trace.record(50, &scores(0.2));
        assert_eq!(trace, laid_out);
    }

    #[test]
    fn truncated_and_foreign_files_are_clear_errors() {
        let bytes = encode_trace(&sample());
        let cut = decode_trace(&bytes[..bytes.len() - 4], "cut.pltrace").unwrap_err();
        assert!(cut.to_string().starts_with("cut.pltrace: trace is truncated"), "{cut}");
        let other_model: Vec<PerSite<Vec<f32>>> = vec![std::array::from_fn(|_| Some(vec![0.5; 3]))];
        assert!(!sample().fits(&other_model), "a trace of another model's sites");
        assert!(Trace::new("fresh".into(), &[]).fits(&other_model));
        let mut far_block = sample();
        far_block.snapshots.clear();
        far_block.steps.clear();
        far_block.sites[0].block = usize::MAX;
        let err = decode_trace(&encode_trace(&far_block), "far.pltrace").unwrap_err();
        assert!(err.to_string().contains("is out of range or repeated"), "{err}");
        let mut overflowing = sample();
        overflowing.sites[0].units = usize::MAX;
        let err = decode_trace(&encode_trace(&overflowing), "huge.pltrace").unwrap_err();
        // Refused by the bound on units; the size arithmetic is checked as well (on wasm32 a
        // trace within the bounds can still claim more than memory holds).
        assert!(err.to_string().contains("is out of range or repeated"), "{err}");
        for (bad, problem) in [
            (1.5, "is 1.5: outside 0 to 1"),
            (-0.25, "is -0.25: outside 0 to 1"),
            (f32::NAN, "is NaN: not a finite number"),
        ] {
            let mut scored = sample();
            scored.snapshots[1][4] = bad;
            let err = decode_trace(&encode_trace(&scored), "odd.pltrace")
                .unwrap_err()
                .to_string();
            assert!(
                err.contains(&format!("score 5 of the snapshot at step 50 {problem}")),
                "{err}"
            );
        }
        let other = decode_trace(b"PLCKPT01 and then some", "ckpt.plc").unwrap_err();
        assert_eq!(other.to_string(), "ckpt.plc: not a Prunelab trace (bad magic bytes)");
    }
}
