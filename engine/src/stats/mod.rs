//! Statistics for reporting results honestly: confidence intervals of word error rates from a
//! paired bootstrap over utterances, and the spread of a figure across seeds.

mod bootstrap;
mod spread;

pub use bootstrap::{
    Bootstrap, BootstrapConfig, BootstrapError, Interval, PairedDifference, UtteranceErrors, WerEstimate, corpus_wer,
};
pub use spread::{MeanSd, mean_sd, median, percentile};
