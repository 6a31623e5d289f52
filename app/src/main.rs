//! Prunelab in the browser. `main` only installs the panic hook and mounts the page.

mod backend;
mod charts;
mod corpus;
mod driver;
mod lab;
mod page;
mod session;
mod settings;
mod timing;
mod views;

fn main() {
    console_error_panic_hook::set_once();
    leptos::mount::mount_to_body(page::Page);
}
