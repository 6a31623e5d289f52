//! What each target does with an input: the whole path a file takes from bytes to use, as
//! far as it goes without training. `Ok` and `Err` are both fine outcomes; a panic, an abort
//! or a hang is a bug.

use prunelab_engine::audio::decode_audio;
use prunelab_engine::burn::prelude::Device;
use prunelab_engine::data::CorpusPack;
use prunelab_engine::store::{
    Trace, decode_checkpoint, decode_trace, load_export, load_gates, load_inference_model, read_export_archive,
};
use prunelab_engine::text::{CharTokenizer, normalize_transcript, parse_transcript_lines, score_chars, score_words};
use prunelab_engine::train::Trainer;
use prunelab_lab_state::saved_run::SavedRun;

use crate::mutate::json_end;
use crate::seeds;

pub struct Target {
    pub name: &'static str,
    pub what: &'static str,
    pub seeds: fn() -> Vec<Vec<u8>>,
    pub run: fn(&[u8]) -> Result<(), String>,
    /// Makes a mutated input's framing consistent again (a length prefix that says where its
    /// JSON ends), so mutations inside a header reach the code behind the header check.
    pub repair: fn(&mut Vec<u8>),
}

pub const TARGETS: [Target; 10] = [
    Target {
        name: "checkpoint",
        what: "training checkpoint: decode, load the inference model and gates, restore the trainer",
        seeds: seeds::checkpoints,
        run: checkpoint,
        repair: repair_checkpoint,
    },
    Target {
        name: "export",
        what: "pruned export: manifest + safetensors, build and load the pruned model",
        seeds: seeds::exports,
        run: export,
        repair: repair_export,
    },
    Target {
        name: "archive",
        what: "the lab's export archive (.tar): read its two files, build and load the pruned model",
        seeds: seeds::export_archives,
        run: export_archive,
        repair: repair_tar_checksums,
    },
    Target {
        name: "saved",
        what: "the lab's run kept across reloads: settings, checkpoint and trace, then the trainer restored",
        seeds: seeds::saved_runs,
        run: saved_run,
        repair: repair_saved_run,
    },
    Target {
        name: "trace",
        what: "retention trace",
        seeds: seeds::traces,
        run: trace,
        repair: repair_container,
    },
    Target {
        name: "pack",
        what: "corpus pack: parse, then decode and tokenise every entry",
        seeds: seeds::packs,
        run: pack,
        repair: repair_container,
    },
    Target {
        name: "flac",
        what: "FLAC decoding",
        seeds: seeds::flacs,
        run: audio,
        repair: leave,
    },
    Target {
        name: "wav",
        what: "WAV decoding",
        seeds: seeds::wavs,
        run: audio,
        repair: leave,
    },
    Target {
        name: "librispeech",
        what: "LibriSpeech .trans.txt: lines, normalisation, tokenisation",
        seeds: seeds::librispeech_transcripts,
        run: librispeech,
        repair: leave,
    },
    Target {
        name: "hypothesis",
        what: "Kaldi-style hypothesis file: lines, normalisation, WER and CER alignment",
        seeds: seeds::hypotheses,
        run: hypothesis,
        repair: leave,
    },
];

pub fn find(name: &str) -> Option<&'static Target> {
    TARGETS.iter().find(|t| t.name == name)
}

fn checkpoint(bytes: &[u8]) -> Result<(), String> {
    let device = Device::flex();
    let state = decode_checkpoint(bytes, "fuzz.plc").map_err(|e| e.to_string())?;
    load_inference_model(&state, None, &device, "fuzz.plc").map_err(|e| e.to_string())?;
    load_gates(&state, &device, "fuzz.plc").map_err(|e| e.to_string())?;
    // What `train --resume` does: the optimiser states too.
    Trainer::restore(state, &device).map_err(|e| e.to_string())?;
    Ok(())
}

fn export(bytes: &[u8]) -> Result<(), String> {
    let (manifest, weights) = split_export(bytes).ok_or("no manifest length prefix")?;
    let manifest = std::str::from_utf8(manifest).map_err(|e| format!("manifest is not UTF-8: {e}"))?;
    load_export(manifest, weights, &Device::flex(), "fuzz/manifest.json").map_err(|e| e.to_string())?;
    Ok(())
}

fn export_archive(bytes: &[u8]) -> Result<(), String> {
    let (manifest, weights) = read_export_archive(bytes, "fuzz.tar").map_err(|e| e.to_string())?;
    load_export(&manifest, &weights, &Device::flex(), "fuzz.tar").map_err(|e| e.to_string())?;
    Ok(())
}

fn split_export(bytes: &[u8]) -> Option<(&[u8], &[u8])> {
    let len = u32::from_le_bytes(bytes.get(..4)?.try_into().ok()?) as usize;
    let rest = &bytes[4..];
    (len <= rest.len()).then(|| rest.split_at(len))
}

fn trace(bytes: &[u8]) -> Result<(), String> {
    read_every_score(&decode_trace(bytes, "fuzz.pltrace").map_err(|e| e.to_string())?);
    Ok(())
}

/// What the lab does with a trace: read every site's scores of every snapshot.
fn read_every_score(trace: &Trace) {
    for snapshot in 0..trace.steps.len() {
        for site in 0..trace.sites.len() {
            std::hint::black_box(trace.site_scores(snapshot, site));
        }
    }
}

/// What the page does with the run a reload finds: decode it, and to continue it restore the
/// trainer and show the trace.
fn saved_run(bytes: &[u8]) -> Result<(), String> {
    let (state, trace) = SavedRun::decode(bytes, "fuzz.plsaved")?.kept.into_parts();
    Trainer::restore(state, &Device::flex()).map_err(|e| e.to_string())?;
    read_every_score(&trace);
    Ok(())
}

fn pack(bytes: &[u8]) -> Result<(), String> {
    let pack = CorpusPack::parse(bytes, "fuzz.plcorpus").map_err(|e| e.to_string())?;
    for entry in &pack.header.entries {
        decode_audio(pack.audio(entry), &entry.id).map_err(|e| e.to_string())?;
        CharTokenizer
            .encode(&normalize_transcript(&entry.text))
            .map_err(|c| format!("untokenizable {c:?}"))?;
    }
    Ok(())
}

fn audio(bytes: &[u8]) -> Result<(), String> {
    decode_audio(bytes, "fuzz.audio").map(drop).map_err(|e| e.to_string())
}

/// The usable lines; the first problem, if any, becomes the outcome after they are used.
fn transcript_lines(bytes: &[u8]) -> (Vec<(String, String)>, Result<(), String>) {
    let parsed = parse_transcript_lines(bytes);
    let outcome = parsed.problems.first().map_or(Ok(()), |p| Err(p.to_string()));
    (parsed.lines.into_iter().map(|l| (l.id, l.text)).collect(), outcome)
}

fn librispeech(bytes: &[u8]) -> Result<(), String> {
    let (lines, outcome) = transcript_lines(bytes);
    for (_, text) in lines {
        CharTokenizer
            .encode(&normalize_transcript(&text))
            .map_err(|c| format!("untokenizable {c:?}"))?;
    }
    outcome
}

/// Scores each line against the previous one, as `prunelab wer` scores hypothesis against
/// reference.
fn hypothesis(bytes: &[u8]) -> Result<(), String> {
    let mut previous = String::new();
    let (lines, outcome) = transcript_lines(bytes);
    for (_, text) in lines {
        let text = normalize_transcript(&text);
        std::hint::black_box((score_words(&previous, &text), score_chars(&previous, &text)));
        previous = text;
    }
    outcome
}

/// Container files: magic (8), version (4), header length (8, LE), JSON header, body.
#[allow(clippy::ptr_arg)] // every repair has the signature of the one that rebuilds the vector
fn repair_container(data: &mut Vec<u8>) {
    if data.len() > 20
        && let Some(end) = json_end(data, 20)
    {
        data[12..20].copy_from_slice(&((end - 20) as u64).to_le_bytes());
    }
}

/// A checkpoint's header also holds its body's CRC-32; a hostile author computes it, so the
/// repair does too, letting mutated weights reach the weight loaders.
fn repair_checkpoint(data: &mut Vec<u8>) {
    repair_container(data);
    let Some((mut header, header_end)) = container_header(data) else {
        return;
    };
    let Some(fields) = header.as_object_mut() else {
        return;
    };
    fields.insert("body_crc32".into(), crc32fast::hash(&data[header_end..]).into());
    let body = data[header_end..].to_vec();
    *data = rebuild_container(data, &header, &body);
}

/// A saved run frames a checkpoint (with its own header and checksum) and then a trace; the
/// repair mends the outer framing, the checkpoint's, and where the outer header says the
/// checkpoint ends, so mutations reach the checkpoint's and the trace's own checks.
fn repair_saved_run(data: &mut Vec<u8>) {
    repair_container(data);
    let Some((mut header, header_end)) = container_header(data) else {
        return;
    };
    let split = header.get(1).and_then(serde_json::Value::as_u64).map(|n| n as usize);
    let Some(split) = split.filter(|&n| n <= data.len() - header_end) else {
        return;
    };
    let mut body = data[header_end..header_end + split].to_vec();
    repair_checkpoint(&mut body);
    header[1] = body.len().into();
    body.extend_from_slice(&data[header_end + split..]);
    *data = rebuild_container(data, &header, &body);
}

/// A container's JSON header and where it ends, where the framing holds.
fn container_header(data: &[u8]) -> Option<(serde_json::Value, usize)> {
    let header_len = u64::from_le_bytes(data.get(12..20)?.try_into().ok()?) as usize;
    let header_end = header_len.checked_add(20).filter(|&end| end <= data.len())?;
    let header = serde_json::from_slice(&data[20..header_end]).ok()?;
    Some((header, header_end))
}

/// `data`'s magic and version with `header` and `body` after them.
fn rebuild_container(data: &[u8], header: &serde_json::Value, body: &[u8]) -> Vec<u8> {
    let header = serde_json::to_vec(header).expect("a JSON value serialises");
    let mut rebuilt = data[..12].to_vec();
    rebuilt.extend_from_slice(&(header.len() as u64).to_le_bytes());
    rebuilt.extend_from_slice(&header);
    rebuilt.extend_from_slice(body);
    rebuilt
}

#[allow(clippy::ptr_arg)] // as `repair_container`
fn repair_export(data: &mut Vec<u8>) {
    if data.len() > 4
        && let Some(end) = json_end(data, 4)
    {
        data[..4].copy_from_slice(&((end - 4) as u32).to_le_bytes());
    }
}

/// Recomputes the checksum of every header a mutated archive still frames (its size fields
/// say where the next one is), so mutations inside a header reach the code behind the check.
#[allow(clippy::ptr_arg)] // as `repair_container`
fn repair_tar_checksums(data: &mut Vec<u8>) {
    let mut offset = 0;
    while offset + 512 <= data.len() && data[offset..offset + 512].iter().any(|&b| b != 0) {
        let header = &mut data[offset..offset + 512];
        header[148..156].fill(b' ');
        let sum: u32 = header.iter().map(|&b| u32::from(b)).sum();
        header[148..156].copy_from_slice(format!("{:06o}\0 ", sum % 0o1000000).as_bytes());
        let size = std::str::from_utf8(&header[124..135])
            .ok()
            .and_then(|s| u64::from_str_radix(s.trim_matches(|c: char| c == '\0' || c == ' '), 8).ok());
        let Some(size) = size.and_then(|s| usize::try_from(s).ok()) else {
            return;
        };
        offset = match offset.checked_add(512 + size.next_multiple_of(512)) {
            Some(next) => next,
            None => return,
        };
    }
}

fn leave(_: &mut Vec<u8>) {}
