//! Time in the browser: a clock (`std::time::Instant` panics on wasm) and ways to give the
//! event loop a turn so the page stays responsive between training steps.

/// Milliseconds from an arbitrary origin (`performance.now()`).
pub fn now_ms() -> f64 {
    web_sys::window().and_then(|w| w.performance()).map_or(0.0, |p| p.now())
}

/// The engine's clock for timing inference (`performance.now()`, in seconds).
pub struct BrowserClock;

impl prunelab_engine::train::Clock for BrowserClock {
    fn seconds(&self) -> f64 {
        now_ms() / 1000.0
    }
}

/// Resolves after `ms` milliseconds.
pub async fn sleep(ms: u32) {
    gloo_timers::future::TimeoutFuture::new(ms).await;
}

/// Lets the browser paint and handle input before the next piece of work.
pub async fn yield_to_browser() {
    sleep(0).await;
}
