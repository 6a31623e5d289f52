//! Parsers of the values several subcommands take: presets, methods and sites by name.

use prunelab_engine::gates::{Method, SiteKind};
use prunelab_engine::model::Preset;

pub fn parse_method(name: &str) -> Result<Method, String> {
    Method::parse(name)
        .ok_or_else(|| format!("unknown method {name:?}; choose none, adaptive-dropout, l0 or magnitude"))
}

pub fn parse_site(name: &str) -> Result<SiteKind, String> {
    SiteKind::parse(name).ok_or_else(|| {
        format!("unknown site {name:?}; choose from ffn1.hidden, attn.query, attn.value, conv.input, ffn2.hidden")
    })
}

pub fn parse_preset(name: &str) -> Result<Preset, String> {
    Preset::parse(name).ok_or_else(|| format!("unknown preset {name:?}; choose tiny, small or medium"))
}
