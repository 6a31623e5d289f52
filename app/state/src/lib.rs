//! The lab's state without its page: [`settings::LabSettings`], the one typed value that
//! round-trips through the URL, and [`session::LabSession`], the engine run behind the page.
//! No UI and no browser API, so the tests run natively.

pub mod session;
pub mod settings;
