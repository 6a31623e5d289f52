//! Recording from the microphone: `getUserMedia`, a `MediaRecorder` for a few seconds, and the
//! browser's own decoder back to samples. Resampling to the model's rate is the engine's.

use js_sys::{Function, Promise};
use wasm_bindgen::{JsCast, JsValue};
use wasm_bindgen_futures::JsFuture;
use web_sys::{AudioBuffer, AudioContext, Blob, BlobEvent, MediaRecorder, MediaStream, MediaStreamConstraints};

use crate::js_error::js_message;
use crate::timing::{MicrophoneFloor, sleep};

/// Mono samples in [-1, 1] at the rate the browser decoded them at.
#[derive(Debug, Clone, PartialEq)]
pub struct Recording {
    pub samples: Vec<f32>,
    pub sample_rate: u32,
}

/// Records `seconds` from the default microphone. Errors say what the person can do about
/// them (no microphone, permission refused).
pub async fn record(seconds: u32) -> Result<Recording, String> {
    // No other work starts on the page's thread until the recorder has stopped.
    let floor = MicrophoneFloor::take();
    let window = web_sys::window().ok_or("no window")?;
    // Outside a secure context (plain http from another machine) there is no
    // `navigator.mediaDevices` at all.
    const NO_DEVICES: &str = "this page cannot use a microphone here (the browser offers none; pages served over plain http from another machine are refused one)";
    let devices = window.navigator().media_devices().map_err(|_| NO_DEVICES)?;
    if JsValue::from(devices.clone()).is_undefined() {
        return Err(NO_DEVICES.into());
    }
    let constraints = MediaStreamConstraints::new();
    constraints.set_audio(&JsValue::TRUE);
    let asked = devices
        .get_user_media_with_constraints(&constraints)
        .map_err(|e| js_message(&e))?;
    let stream: MediaStream = JsFuture::from(asked)
        .await
        .map_err(|e| media_problem(&e))?
        .dyn_into()
        .map_err(|_| "the browser returned no audio stream")?;
    let recorded = record_stream(&stream, seconds).await;
    drop(floor);
    // Release the microphone (the browser's recording indicator goes out) whatever happened.
    for track in stream.get_tracks().iter() {
        if let Ok(track) = track.dyn_into::<web_sys::MediaStreamTrack>() {
            track.stop();
        }
    }
    decode(&recorded?).await
}

/// The stream's audio over `seconds`, as the recorder encoded it.
async fn record_stream(stream: &MediaStream, seconds: u32) -> Result<Blob, String> {
    let recorder = MediaRecorder::new_with_media_stream(stream).map_err(|e| js_message(&e))?;
    // Without a time slice the recorder hands over everything in one `dataavailable` event
    // when it stops; a recorder error rejects instead.
    let data = promise_from(|resolve, reject| {
        recorder.set_ondataavailable(Some(resolve));
        recorder.set_onerror(Some(reject));
    });
    recorder.start().map_err(|e| js_message(&e))?;
    sleep(seconds * 1000).await;
    recorder.stop().map_err(|e| js_message(&e))?;
    // A recorder that never hands over its data must not hold the microphone for ever.
    let deadline = promise_from(|_, reject| {
        if let Some(window) = web_sys::window() {
            let _ = window.set_timeout_with_callback_and_timeout_and_arguments_0(reject, 10_000);
        }
    });
    let handed = JsFuture::from(Promise::race(&js_sys::Array::of2(&data, &deadline))).await;
    recorder.set_ondataavailable(None);
    recorder.set_onerror(None);
    let event: BlobEvent = handed
        .map_err(|e| {
            if e.is_undefined() {
                "the recorder handed over nothing within 10 s".to_string()
            } else {
                format!("the recorder failed: {}", js_message(&e))
            }
        })?
        .dyn_into()
        .map_err(|_| "the recorder handed over no data")?;
    event.data().ok_or_else(|| "the recording is empty".to_string())
}

/// Decodes the recorder's output (WebM/Opus in Chromium) to mono samples.
async fn decode(blob: &Blob) -> Result<Recording, String> {
    let bytes = JsFuture::from(blob.array_buffer()).await.map_err(|e| js_message(&e))?;
    let context = AudioContext::new().map_err(|e| js_message(&e))?;
    let decoded = match context.decode_audio_data(&bytes.unchecked_into()) {
        Ok(decoding) => JsFuture::from(decoding).await,
        Err(e) => Err(e),
    };
    // Closed on every path: a page holds only a few audio contexts.
    let _ = context.close();
    let buffer: AudioBuffer = decoded
        .map_err(|e| format!("cannot decode the recording: {}", js_message(&e)))?
        .dyn_into()
        .map_err(|_| "the recording decoded to no audio")?;
    let samples = buffer.get_channel_data(0).map_err(|e| js_message(&e))?;
    Ok(Recording {
        samples,
        sample_rate: buffer.sample_rate().round() as u32,
    })
}

/// A promise that `hand_over` settles by installing its resolve and reject functions as
/// callbacks.
fn promise_from(hand_over: impl FnOnce(&Function, &Function)) -> Promise {
    let mut hand_over = Some(hand_over);
    Promise::new(&mut |resolve, reject| {
        if let Some(hand_over) = hand_over.take() {
            hand_over(&resolve, &reject);
        }
    })
}

/// What a refused `getUserMedia` means, in words.
fn media_problem(error: &JsValue) -> String {
    let name = error
        .dyn_ref::<web_sys::DomException>()
        .map(|e| e.name())
        .unwrap_or_default();
    match name.as_str() {
        "NotAllowedError" | "SecurityError" => {
            "the microphone was not allowed; allow it for this page and try again".into()
        }
        "NotFoundError" | "OverconstrainedError" => "no microphone was found".into(),
        "NotReadableError" | "AbortError" => "the microphone is busy or failed to start".into(),
        _ => format!("cannot use the microphone: {}", js_message(error)),
    }
}
