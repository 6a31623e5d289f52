//! What the CLI prints and writes about results: final scores, WER tables, arrays.

pub mod chart_font;
pub mod comparison;
pub mod npy;
pub mod plots;
pub mod run_history;
pub mod train_report;
pub mod trajectory;
pub mod trajectory_chart;
pub mod wer_table;
