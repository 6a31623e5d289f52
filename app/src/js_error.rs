//! What a JavaScript error says, for the page's messages.

use wasm_bindgen::JsValue;
use web_sys::js_sys::Reflect;

/// The message of a JS error value, or its debug form.
pub fn js_message(value: &JsValue) -> String {
    Reflect::get(value, &"message".into())
        .ok()
        .and_then(|m| m.as_string())
        .unwrap_or_else(|| format!("{value:?}"))
}
