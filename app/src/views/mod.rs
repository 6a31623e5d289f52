//! The page's widgets; each draws one part of the `Lab` state and sends commands.

mod compare;
mod controls;
mod curves;
mod heatmaps;
mod listen;
mod open_run;
mod status;
mod tradeoff;

pub use compare::{CompareButton, ComparePanel};
pub use controls::{Controls, EmbedPlay};
pub use curves::Curves;
pub use heatmaps::Heatmaps;
pub use listen::{CorpusStore, Listen};
pub use open_run::{OpenRun, open_first};
pub use status::Status;
pub use tradeoff::TradeOffPanel;
