//! What the page shows when the wasm module panics. A panic in wasm ends in a trap: the module's
//! state (leptos's signals, the engine's tensors, the task queue) may be left mid-update, so the
//! lab cannot carry on in this instance of the module. The hook logs the panic (with
//! `console_error_panic_hook`, as before) and hands its message to the page's script
//! (`window.__prunelabStopped`, in `app/index.html`), which shows a notice with Restart (a fresh
//! instance of the module in the same page) and Reload. The script also catches traps that run
//! no hook (an allocation that failed); it lives outside the module because it must work after
//! the module has trapped.
//!
//! Known traps are refused before they happen instead (a batch larger than the backend's
//! largest buffer: `driver::Assets::check_batch`).

use wasm_bindgen::{JsCast, JsValue};
use web_sys::js_sys::{Function, Reflect};

/// Installs the hook; call once, first thing in `main`.
pub fn install() {
    std::panic::set_hook(Box::new(|info| {
        console_error_panic_hook::hook(info);
        if tell_the_page(&info.to_string()).is_none() {
            web_sys::console::error_1(&"the page's notice of a stopped lab is missing (app/index.html)".into());
        }
    }));
}

fn tell_the_page(message: &str) -> Option<()> {
    let window = web_sys::window()?;
    let show: Function = Reflect::get(&window, &JsValue::from_str("__prunelabStopped"))
        .ok()?
        .dyn_into()
        .ok()?;
    show.call1(&JsValue::NULL, &JsValue::from_str(message)).ok().map(|_| ())
}
