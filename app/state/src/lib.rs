//! The lab's state without its page: [`settings::LabSettings`], the one typed value that
//! round-trips through the URL, [`session::LabSession`], the engine run behind the page, and
//! [`compare::Comparison`], methods trained side by side, with [`intervals`] for their WER
//! against the start, [`legend`], where a chart's legend stays off the data, and
//! [`saved_run`], a run kept across reloads.
//! No UI and no browser API, so the tests run natively.

pub mod compare;
pub mod intervals;
pub mod legend;
pub mod saved_run;
pub mod session;
pub mod settings;
#[cfg(test)]
mod test_support;
