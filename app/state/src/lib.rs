//! The lab's state without its page: [`settings::LabSettings`], the one typed value that
//! round-trips through the URL, [`session::LabSession`], the engine run behind the page, and
//! [`compare::Comparison`], methods trained side by side.
//! No UI and no browser API, so the tests run natively.

pub mod compare;
pub mod session;
pub mod settings;
#[cfg(test)]
mod test_support;
