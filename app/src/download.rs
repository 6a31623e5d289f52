//! Handing bytes from the page to the browser as a file to save.

use wasm_bindgen::JsCast;

/// Starts a download of `bytes` named `name`. The object URL lives a minute, long after the
/// browser has begun reading it (revoking it at once cancels the download in some browsers).
pub fn offer_download(name: &str, bytes: &[u8]) -> Result<(), String> {
    let blob = gloo_file::Blob::new_with_options(bytes, Some("application/octet-stream"));
    let url = gloo_file::ObjectUrl::from(blob);
    let document = web_sys::window()
        .and_then(|w| w.document())
        .ok_or("the page has no document")?;
    let anchor: web_sys::HtmlAnchorElement = document
        .create_element("a")
        .map_err(|e| format!("cannot make a link: {e:?}"))?
        .dyn_into()
        .map_err(|_| "cannot make a link".to_string())?;
    anchor.set_href(&url);
    anchor.set_download(name);
    anchor.click();
    leptos::task::spawn_local(async move {
        gloo_timers::future::TimeoutFuture::new(60_000).await;
        drop(url);
    });
    Ok(())
}
