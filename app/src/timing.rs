//! Time in the browser: a clock (`std::time::Instant` panics on wasm) and ways to give the
//! event loop a turn so the page stays responsive between training steps.

use wasm_bindgen::JsCast;
use wasm_bindgen::closure::Closure;
use wasm_bindgen_futures::JsFuture;
use web_sys::js_sys::{Function, Promise};

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

/// Resolves after `ms` milliseconds (a `setTimeout` promise).
pub async fn sleep(ms: i32) {
    let promise = Promise::new(&mut |resolve: Function, _reject: Function| {
        let callback = Closure::once_into_js(move || {
            let _ = resolve.call0(&wasm_bindgen::JsValue::NULL);
        });
        if let Some(window) = web_sys::window() {
            let _ = window.set_timeout_with_callback_and_timeout_and_arguments_0(callback.unchecked_ref(), ms);
        }
    });
    let _ = JsFuture::from(promise).await;
}

/// Lets the browser paint and handle input before the next piece of work.
pub async fn yield_to_browser() {
    sleep(0).await;
}
