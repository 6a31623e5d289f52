//! Prunelab in the browser. `main` runs the static constructors once, installs the panic hook
//! (which logs a panic and hands it to the page's notice of a stopped lab) and mounts the page.

mod backend;
mod browser_cache;
mod charts;
mod corpus;
mod download;
mod driver;
mod js_error;
mod lab;
mod microphone;
mod page;
mod panic_notice;
mod probe;
mod timing;
mod views;

// Static constructors of the wasm module: `inventory`, used by cubecl's IR, registers items this
// way. A bin crate is linked by wasm-ld as a "command", and wasm-ld wraps every export in a call
// to these constructors unless the module calls them itself. Every call from JavaScript into
// wasm (each WebGPU object handed back, each closure run) then re-ran hundreds of registrations,
// and training on a GPU ran 29× slower (docs/results.md, session 12). Calling them once here
// turns the wrapping off; a browser test checks that the module has no wrapped exports.
#[cfg(target_family = "wasm")]
unsafe extern "C" {
    fn __wasm_call_ctors();
}

fn main() {
    // SAFETY: wasm-ld synthesises this function; `main` is the module's entry point, runs once,
    // and runs before any code that reads what the constructors register.
    #[cfg(target_family = "wasm")]
    unsafe {
        __wasm_call_ctors()
    };
    panic_notice::install();
    leptos::mount::mount_to_body(page::Page);
}
