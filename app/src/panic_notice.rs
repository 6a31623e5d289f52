//! What the page shows when the wasm module panics. A panic in wasm is a trap: the module's
//! state (leptos's signals, the engine's tensors) may be left mid-update, so nothing it holds
//! can be trusted afterwards, and the lab cannot carry on in this tab. The hook logs the panic
//! (with `console_error_panic_hook`, as before) and puts a notice at the top of the page with
//! what went wrong and a Reload button. It writes the notice with plain DOM calls, not leptos,
//! and the button reloads with an inline script, not a wasm closure: neither needs the module
//! that has just trapped. The settings live in the link, so a reload starts with them.
//!
//! Known traps are refused before they happen instead (a batch larger than the backend's
//! largest buffer: `driver::Assets::check_batch`).

/// Installs the hook; call once, first thing in `main`.
pub fn install() {
    std::panic::set_hook(Box::new(|info| {
        console_error_panic_hook::hook(info);
        if show_notice(&info.to_string()).is_none() {
            web_sys::console::error_1(&"could not show the notice of the panic above".into());
        }
    }));
}

fn show_notice(message: &str) -> Option<()> {
    let document = web_sys::window()?.document()?;
    // Only the first panic gets a notice: a second adds nothing the reader can act on.
    if document.get_element_by_id("stopped").is_some() {
        return Some(());
    }
    let notice = document.create_element("div").ok()?;
    notice.set_id("stopped");
    notice.set_class_name("stopped");
    notice.set_attribute("role", "alert").ok()?;
    let text = document.create_element("p").ok()?;
    text.set_text_content(Some(&format!(
        "The lab stopped on an internal error and cannot go on in this tab ({message}). Your \
         settings are kept in the link: reload to start again with them."
    )));
    let reload = document.create_element("button").ok()?;
    reload.set_id("reload");
    reload.set_text_content(Some("Reload"));
    reload.set_attribute("onclick", "location.reload()").ok()?;
    notice.append_child(&text).ok()?;
    notice.append_child(&reload).ok()?;
    document.body()?.prepend_with_node_1(&notice).ok()
}
