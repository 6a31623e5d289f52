//! Picking the compute backend in the browser: WebGPU when the browser offers it, otherwise
//! burn's CPU backend compiled to wasm — and always saying which one is in use.

use prunelab_engine::burn::prelude::Device;

/// The backend the lab runs on.
#[derive(Debug, Clone)]
pub struct Backend {
    pub device: Device,
    /// Human-readable adapter description.
    pub label: String,
    pub is_webgpu: bool,
    /// The largest buffer one tensor may take here, in bytes: a step whose largest tensor
    /// (`train::largest_step_tensor`) is bigger is refused before it starts, since burn panics
    /// on an allocation the device refuses and a panic ends the page.
    pub largest_buffer: u64,
}

/// On the CPU backend every tensor lives in the wasm module's memory, at most 4 GiB for all of
/// them together. Measured natively on the same backend (`prunelab bench --device cpu --preset
/// tiny --batch N --seconds 5`, peak resident at 20, 80 and 240 s of audio: 213, 567 and
/// 1,462 MB), a tiny step's memory grows by 5.6–5.9 MB per second of audio, about 24 times
/// its largest tensor (the first subsampling convolution's output, 0.25 MB a second). 80 MiB
/// for the largest keeps a step near 2 GiB: a batch of about 336 s.
pub const CPU_LARGEST_BUFFER: u64 = 80 << 20;

/// Initialises WebGPU once; falls back to the CPU backend with the reason in the label.
pub async fn init_backend() -> Backend {
    if !browser_has_webgpu() {
        return cpu_fallback("this browser does not expose WebGPU");
    }
    match Device::wgpu_options().init_with_setup_async().await {
        Ok((device, setup)) => {
            let info = setup.adapter.get_info();
            let name = if info.name.is_empty() {
                "unnamed adapter".to_string()
            } else {
                info.name
            };
            // What cubecl takes as its largest page: the same two limits.
            let limits = setup.device.limits();
            Backend {
                device,
                label: format!("WebGPU · {name} ({})", info.driver_info),
                is_webgpu: true,
                largest_buffer: limits.max_storage_buffer_binding_size.min(limits.max_buffer_size),
            }
        }
        Err(e) => {
            web_sys::console::warn_1(&format!("WebGPU failed to start: {e:?}").into());
            cpu_fallback("WebGPU found no usable adapter")
        }
    }
}

fn cpu_fallback(reason: &str) -> Backend {
    Backend {
        device: Device::flex(),
        label: format!("CPU (wasm) · {reason}"),
        is_webgpu: false,
        largest_buffer: CPU_LARGEST_BUFFER,
    }
}

/// Why the WebGPU device was lost, once it has been (noted by the script in `index.html`).
pub fn gpu_lost_reason() -> Option<String> {
    let window = web_sys::window()?;
    let reason = web_sys::js_sys::Reflect::get(&window, &wasm_bindgen::JsValue::from_str("__prunelabGpuLost")).ok()?;
    reason.as_string()
}

fn browser_has_webgpu() -> bool {
    web_sys::window()
        .map(|w| {
            let gpu = js_sys_gpu(&w.navigator());
            !gpu.is_undefined() && !gpu.is_null()
        })
        .unwrap_or(false)
}

/// `navigator.gpu`, read reflectively so that browsers without it do not throw.
fn js_sys_gpu(navigator: &web_sys::Navigator) -> wasm_bindgen::JsValue {
    let key = wasm_bindgen::JsValue::from_str("gpu");
    web_sys::js_sys::Reflect::get(navigator, &key).unwrap_or(wasm_bindgen::JsValue::UNDEFINED)
}
