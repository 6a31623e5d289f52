//! The font for chart text. plotters lays text out with ab_glyph, so SVG needs one too:
//! `$PRUNELAB_FONT`, or DejaVu Sans where Debian's `fonts-dejavu-core` puts it.

use prunelab_engine::bounded_read::{limits, read_bounded};
use std::path::PathBuf;
use std::sync::OnceLock;

use plotters::style::{FontStyle, register_font};

const FONT_PATHS: [&str; 3] = [
    "/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf",
    "/usr/share/fonts/dejavu/DejaVuSans.ttf",
    "/usr/share/fonts/TTF/DejaVuSans.ttf",
];

/// Registers the font for chart text once per process. The error says how to get one.
pub fn ensure_font() -> Result<(), String> {
    static FONT: OnceLock<Result<(), String>> = OnceLock::new();
    FONT.get_or_init(|| {
        let candidates: Vec<PathBuf> = std::env::var_os("PRUNELAB_FONT")
            .map(PathBuf::from)
            .into_iter()
            .chain(FONT_PATHS.iter().map(PathBuf::from))
            .collect();
        let path = candidates.iter().find(|p| p.is_file()).ok_or_else(|| {
            "no TrueType font for chart text: set PRUNELAB_FONT to a .ttf file or install DejaVu Sans \
             (Debian: apt-get install fonts-dejavu-core)"
                .to_string()
        })?;
        let bytes = read_bounded(path, limits::FONT, "font").map_err(|e| e.to_string())?;
        // plotters keeps fonts for the life of the process; this one is read once.
        let bytes: &'static [u8] = Box::leak(bytes.into_boxed_slice());
        register_font("sans-serif", FontStyle::Normal, bytes)
            .map_err(|_| format!("{}: not a TrueType font plotters can read", path.display()))
    })
    .clone()
}
