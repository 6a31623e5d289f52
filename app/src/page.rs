//! The lab page. For now: which backend the lab got (the lab UI arrives with its own issue).

use leptos::prelude::*;
use prunelab_engine::burn::prelude::*;

use crate::backend::{Backend, init_backend};

#[component]
pub fn Page() -> impl IntoView {
    let backend = LocalResource::new(init_backend);
    view! {
        <main>
            <h1>"Prunelab"</h1>
            <p>"Structured pruning of Conformer speech recognisers, live in your browser."</p>
            <Suspense fallback=|| view! { <p id="backend">"Starting the compute backend…"</p> }>
                {move || backend.get().map(|b| view! { <BackendBadge backend=b /> })}
            </Suspense>
        </main>
    }
}

/// Shows the backend, and proves it computes by running one small matrix product.
#[component]
fn BackendBadge(backend: Backend) -> impl IntoView {
    let class = if backend.is_webgpu { "badge webgpu" } else { "badge cpu" };
    let device = backend.device.clone();
    let check = LocalResource::new(move || smoke_test(device.clone()));
    view! {
        <p id="backend" class=class data-webgpu=backend.is_webgpu.to_string()>{backend.label.clone()}</p>
        <p id="smoke">
            {move || match check.get() {
                None => "Running a test computation…".to_string(),
                Some(Ok(v)) => format!("Test computation ok: trace of A·Aᵀ = {v} (expected 30)"),
                Some(Err(e)) => format!("Test computation failed: {e}"),
            }}
        </p>
    }
}

/// A 2×2 product read back asynchronously (a synchronous read panics on WebGPU).
async fn smoke_test(device: Device) -> Result<f32, String> {
    let a = Tensor::<2>::from_floats([[1.0, 2.0], [3.0, 4.0]], &device);
    let product = a.clone().matmul(a.transpose());
    let trace = (product * Tensor::<2>::eye(2, &device)).sum(); // 1·1 + 2·2 + 3·3 + 4·4 = 30
    let data = trace.into_data_async().await.map_err(|e| format!("{e:?}"))?;
    let values: Vec<f32> = data.iter::<f32>().collect();
    values.first().copied().ok_or_else(|| "empty result".to_string())
}
