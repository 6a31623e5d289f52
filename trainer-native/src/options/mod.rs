//! Option groups and value parsers that several subcommands share.

pub mod bootstrap;
pub mod decoding;
pub mod device;
pub mod parse;
