//! Time in the browser: a clock (`std::time::Instant` panics on wasm) and ways to give the
//! event loop a turn so the page stays responsive between training steps.

use std::cell::Cell;

/// Milliseconds from an arbitrary origin (`performance.now()`).
pub fn now_ms() -> f64 {
    web_sys::window().and_then(|w| w.performance()).map_or(0.0, |p| p.now())
}

/// The engine's clock for timing inference (`performance.now()`, in seconds).
pub struct BrowserClock;

impl prunelab_engine::infer::Clock for BrowserClock {
    fn seconds(&self) -> f64 {
        now_ms() / 1000.0
    }
}

/// Resolves after `ms` milliseconds.
pub async fn sleep(ms: u32) {
    gloo_timers::future::TimeoutFuture::new(ms).await;
}

thread_local! {
    /// Whether a [`MicrophoneFloor`] is held.
    static MICROPHONE_HAS_THE_FLOOR: Cell<bool> = const { Cell::new(false) };
}

/// Held from the moment the microphone is asked for until its recorder has stopped. The
/// recorder is started and stopped from the page's one thread, and the driver holds that thread
/// for seconds at a time on the CPU backend (a training step, a scoring pass): when such a piece
/// of work slipped in between the microphone opening and the recorder starting, the recording
/// began seconds late and missed the first words (a loaded machine makes the pieces longer).
/// While a floor is held, [`yield_to_browser`] waits instead of letting the next piece start.
pub struct MicrophoneFloor(());

impl MicrophoneFloor {
    pub fn take() -> Self {
        MICROPHONE_HAS_THE_FLOOR.with(|held| held.set(true));
        Self(())
    }
}

impl Drop for MicrophoneFloor {
    fn drop(&mut self) {
        MICROPHONE_HAS_THE_FLOOR.with(|held| held.set(false));
    }
}

/// Lets the browser paint and handle input before the next piece of work, and holds that work
/// back while the microphone is recording ([`MicrophoneFloor`]).
pub async fn yield_to_browser() {
    sleep(0).await;
    while MICROPHONE_HAS_THE_FLOOR.with(Cell::get) {
        sleep(20).await;
    }
}
