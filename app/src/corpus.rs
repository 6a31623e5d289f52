//! The lab's assets in the browser: the built-in corpus and the trained start, each fetched once
//! with a progress report and kept in the Cache API for the next visit; the corpus is then
//! turned into features by the engine, and its train transcripts into the lexicon decoder.

use prunelab_engine::audio::{Audio, FbankConfig, decode_audio};
use prunelab_engine::data::{CorpusPack, LoadOptions, Utterance, load_pack_split};
use prunelab_engine::decode::{BeamConfig, Decoder, LmConfig};
use prunelab_engine::store::decode_checkpoint;
use prunelab_engine::train::TrainerState;
use wasm_bindgen::JsCast;
use wasm_bindgen_futures::JsFuture;
use web_sys::js_sys::{Reflect, Uint8Array};

use crate::browser_cache::BrowserCache;
use crate::js_error::js_message;
use crate::timing::yield_to_browser;

/// Where trunk serves the packed corpus (copied from `static/` by `index.html`).
pub const CORPUS_URL: &str = "corpus.plc";
/// Cache API bucket; bump the suffix when an asset's format changes.
const ASSETS: BrowserCache = BrowserCache("prunelab-assets-v2");

/// The corpus, ready for training and listening.
pub struct LabCorpus {
    pub train: Vec<Utterance>,
    pub dev: Vec<Utterance>,
    /// Encoded audio of each dev utterance, for playback (same order as `dev`).
    dev_audio: Vec<Vec<u8>>,
    /// Items the engine refused, by name (reported, never silently dropped).
    pub skipped: Vec<String>,
    /// Whether the bytes came from the Cache API rather than the network.
    pub from_cache: bool,
    /// The CLI's default decoder: beam search over the train transcripts' words with the
    /// class language model trained on them.
    pub lexicon: Decoder,
}

impl LabCorpus {
    /// The decoded samples of dev utterance `id`.
    pub fn dev_samples(&self, id: &str) -> Result<Audio, String> {
        let index = self
            .dev
            .iter()
            .position(|u| u.id == id)
            .ok_or_else(|| format!("{id}: no such utterance"))?;
        decode_audio(&self.dev_audio[index], id).map_err(|e| e.to_string())
    }
}

/// Fetches (or reads from the cache) and loads the corpus; `progress(fraction, message)` is
/// called while it works.
pub async fn load_corpus(progress: impl Fn(f64, String)) -> Result<LabCorpus, String> {
    let (bytes, from_cache) = fetch_asset(CORPUS_URL, "the corpus", |f, m| progress(0.6 * f, m)).await?;
    progress(0.6, "reading the corpus pack…".into());
    yield_to_browser().await;
    let pack = CorpusPack::parse(&bytes, CORPUS_URL).map_err(|e| e.to_string())?;
    let options = LoadOptions::plain(&FbankConfig::default(), false);
    progress(0.65, "computing filterbank features (train)…".into());
    yield_to_browser().await;
    let train = load_pack_split(&pack, "train", &options).map_err(|e| e.to_string())?;
    progress(0.9, "computing filterbank features (dev)…".into());
    yield_to_browser().await;
    let dev = load_pack_split(&pack, "dev", &options).map_err(|e| e.to_string())?;
    // Every dev utterance came from the pack, so its clip is there; a pack where it is not is
    // damaged, and the Listen panel would play silence for it.
    let dev_audio = dev
        .utterances
        .iter()
        .map(|u| {
            pack.split("dev")
                .find(|e| e.id == u.id)
                .map(|e| pack.audio(e).to_vec())
                .ok_or_else(|| format!("{CORPUS_URL}: dev utterance {} has no audio clip", u.id))
        })
        .collect::<Result<_, _>>()?;
    let skipped = train
        .skipped
        .iter()
        .chain(&dev.skipped)
        .map(|i| i.to_string())
        .collect();
    let lexicon = Decoder::closed_vocabulary(
        pack.transcripts("train").iter().map(String::as_str),
        BeamConfig::default(),
        LmConfig::default(),
    );
    Ok(LabCorpus {
        lexicon,
        train: train.utterances,
        dev: dev.utterances,
        dev_audio,
        skipped,
        from_cache,
    })
}

/// The trained start (`prunelab train … --weights-out`), fetched like the corpus.
pub async fn load_trained_start(url: &str, progress: impl Fn(f64, String)) -> Result<TrainerState, String> {
    let (bytes, _) = fetch_asset(url, "the trained model", progress).await?;
    decode_checkpoint(&bytes, url).map_err(|e| e.to_string())
}

/// `url`'s bytes from the Cache API, or downloaded (and cached for the next visit), with
/// `progress(fraction of the download, message)`; `true` when they came from the cache.
async fn fetch_asset(url: &str, what: &str, progress: impl Fn(f64, String)) -> Result<(Vec<u8>, bool), String> {
    if let Some(bytes) = ASSETS.get(url).await {
        return Ok((bytes, true));
    }
    let bytes = download(url, what, &progress).await?;
    // Failing to cache (private mode, quota) costs only a download next time, so it is logged,
    // not reported.
    if let Err(e) = ASSETS.put(url, &bytes).await {
        web_sys::console::warn_1(&format!("could not cache {url}: {e}").into());
    }
    Ok((bytes, false))
}

/// Downloads `url` (`what` it is, for messages), reporting the fraction received.
async fn download(url: &str, what: &str, progress: &impl Fn(f64, String)) -> Result<Vec<u8>, String> {
    let window = web_sys::window().ok_or("no window")?;
    let response: web_sys::Response = JsFuture::from(window.fetch_with_str(url))
        .await
        .map_err(|e| format!("{url}: cannot fetch: {}", js_message(&e)))?
        .dyn_into()
        .map_err(|_| format!("{url}: not a response"))?;
    if !response.ok() {
        return Err(format!("{url}: the server answered {}", response.status()));
    }
    let total: f64 = response
        .headers()
        .get("content-length")
        .ok()
        .flatten()
        .and_then(|v| v.parse().ok())
        .unwrap_or(0.0);
    let body = response.body().ok_or_else(|| format!("{url}: empty response"))?;
    let reader: web_sys::ReadableStreamDefaultReader = body
        .get_reader()
        .dyn_into()
        .map_err(|_| format!("{url}: cannot read the response"))?;
    let mut bytes = Vec::with_capacity(total as usize);
    loop {
        let chunk = JsFuture::from(reader.read())
            .await
            .map_err(|e| format!("{url}: download broke off: {}", js_message(&e)))?;
        let done = Reflect::get(&chunk, &"done".into())
            .ok()
            .and_then(|d| d.as_bool())
            .unwrap_or(true);
        if done {
            break;
        }
        let value = Reflect::get(&chunk, &"value".into()).map_err(|_| format!("{url}: bad chunk"))?;
        bytes.extend(Uint8Array::new(&value).to_vec());
        let mib = bytes.len() as f64 / (1024.0 * 1024.0);
        let message = if total > 0.0 {
            format!("downloading {what}: {mib:.1} of {:.1} MiB", total / (1024.0 * 1024.0))
        } else {
            format!("downloading {what}: {mib:.1} MiB")
        };
        let fraction = if total > 0.0 { bytes.len() as f64 / total } else { 0.5 };
        progress(fraction.min(1.0), message);
    }
    Ok(bytes)
}
