//! Bytes kept in the browser's Cache API under a key, across visits: the lab's downloaded assets
//! (the corpus, the trained start) and the run it keeps for a reload.

use wasm_bindgen::JsCast;
use wasm_bindgen_futures::JsFuture;
use web_sys::js_sys::Uint8Array;

use crate::js_error::js_message;

/// One named bucket of the Cache API.
#[derive(Clone, Copy)]
pub struct BrowserCache(pub &'static str);

impl BrowserCache {
    async fn open(self) -> Result<web_sys::Cache, String> {
        let window = web_sys::window().ok_or("the page has no window")?;
        let caches = window
            .caches()
            .map_err(|e| format!("the browser's storage is not available: {}", js_message(&e)))?;
        JsFuture::from(caches.open(self.0))
            .await
            .map_err(|e| format!("the browser's storage cannot be opened: {}", js_message(&e)))?
            .dyn_into()
            .map_err(|_| "the browser's storage gave something else than a cache".to_string())
    }

    /// The bytes kept under `key`, if any (and if the storage can be read at all).
    pub async fn get(self, key: &str) -> Option<Vec<u8>> {
        let cache = self.open().await.ok()?;
        let hit = JsFuture::from(cache.match_with_str(key)).await.ok()?;
        let response: web_sys::Response = hit.dyn_into().ok()?;
        let buffer = JsFuture::from(response.array_buffer().ok()?).await.ok()?;
        let bytes = Uint8Array::new(&buffer).to_vec();
        (!bytes.is_empty()).then_some(bytes)
    }

    /// Keeps `bytes` under `key`, replacing what was there; why not, when the storage refuses
    /// (full, denied, private mode).
    pub async fn put(self, key: &str, bytes: &[u8]) -> Result<(), String> {
        let cache = self.open().await?;
        let mut copy = bytes.to_vec();
        let response = web_sys::Response::new_with_opt_u8_array(Some(&mut copy))
            .map_err(|e| format!("cannot wrap the bytes: {}", js_message(&e)))?;
        JsFuture::from(cache.put_with_str(key, &response))
            .await
            .map(drop)
            .map_err(|e| format!("the browser's storage refused it: {}", js_message(&e)))
    }

    /// Forgets what is kept under `key` (nothing to do when nothing is).
    pub async fn delete(self, key: &str) {
        if let Ok(cache) = self.open().await {
            let _ = JsFuture::from(cache.delete_with_str(key)).await;
        }
    }
}
