//! Prunelab in the browser. `main` only installs the panic hook and mounts the page.

mod backend;
mod page;

fn main() {
    console_error_panic_hook::set_once();
    leptos::mount::mount_to_body(page::Page);
}
