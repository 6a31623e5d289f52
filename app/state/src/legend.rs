//! Where a chart's legend goes: the corner of the plot whose box covers the fewest data points,
//! so the legend does not sit on the curves (the compare view's did, always at the upper
//! right). Plain geometry, so the page's plotters code only asks.

/// A corner of the plotting area.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Corner {
    UpperRight,
    UpperLeft,
    LowerRight,
    LowerLeft,
}

impl Corner {
    /// In order of preference when corners cover as many points.
    pub const ALL: [Corner; 4] = [
        Corner::UpperRight,
        Corner::UpperLeft,
        Corner::LowerRight,
        Corner::LowerLeft,
    ];
}

/// One series as the chart draws it: its points, and whether a line joins them (then the
/// segments between points count as data too).
pub struct Drawn<'a> {
    pub points: &'a [(f64, f64)],
    pub joined: bool,
}

/// The corner where a legend box of `width` × `height` (shares of the plotting area, 0–1)
/// covers the fewest points of `series` drawn over `x_range` × `y_range`. A line's segments
/// are sampled, so a curve passing under a corner counts even between its points.
pub fn legend_corner(series: &[Drawn], x_range: (f64, f64), y_range: (f64, f64), width: f64, height: f64) -> Corner {
    const SAMPLES_PER_SEGMENT: usize = 8;
    let span = |(lo, hi): (f64, f64)| if hi > lo { hi - lo } else { 1.0 };
    // Every point as shares of the plotting area, (0, 0) at the lower left.
    let mut shares: Vec<(f64, f64)> = Vec::new();
    for s in series {
        let at = |(x, y): (f64, f64)| ((x - x_range.0) / span(x_range), (y - y_range.0) / span(y_range));
        shares.extend(s.points.iter().copied().map(at));
        if s.joined {
            for pair in s.points.windows(2) {
                let (a, b) = (at(pair[0]), at(pair[1]));
                shares.extend((1..SAMPLES_PER_SEGMENT).map(|i| {
                    let t = i as f64 / SAMPLES_PER_SEGMENT as f64;
                    (a.0 + t * (b.0 - a.0), a.1 + t * (b.1 - a.1))
                }));
            }
        }
    }
    let covered = |corner: Corner| {
        let (right, upper) = match corner {
            Corner::UpperRight => (true, true),
            Corner::UpperLeft => (false, true),
            Corner::LowerRight => (true, false),
            Corner::LowerLeft => (false, false),
        };
        let in_x = |x: f64| if right { x >= 1.0 - width } else { x <= width };
        let in_y = |y: f64| if upper { y >= 1.0 - height } else { y <= height };
        shares.iter().filter(|&&(x, y)| in_x(x) && in_y(y)).count()
    };
    // `min_by_key` keeps the first of equal corners: the order of preference.
    Corner::ALL
        .into_iter()
        .min_by_key(|&c| covered(c))
        .unwrap_or(Corner::UpperRight)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_legend_goes_to_the_corner_the_curves_leave_empty() {
        let (x, y) = ((0.0, 10.0), (0.0, 100.0));
        // Nothing drawn: the usual upper right.
        assert_eq!(legend_corner(&[], x, y, 0.3, 0.2), Corner::UpperRight);
        // A loss curve falling from the upper left to the lower right leaves the upper right
        // and the lower left; the upper right is preferred.
        let falling: Vec<(f64, f64)> = (0..=10).map(|i| (i as f64, 100.0 - 9.0 * i as f64)).collect();
        let drawn = [Drawn {
            points: &falling,
            joined: true,
        }];
        assert_eq!(legend_corner(&drawn, x, y, 0.3, 0.2), Corner::UpperRight);
        // Rising curves (WER against size) fill the upper right: the legend moves to the upper left.
        let rising: Vec<(f64, f64)> = (0..=10).map(|i| (i as f64, 9.0 * i as f64 + 5.0)).collect();
        let drawn = [Drawn {
            points: &rising,
            joined: true,
        }];
        assert_eq!(legend_corner(&drawn, x, y, 0.3, 0.2), Corner::UpperLeft);
        // Two points, neither under the upper right box, joined by a line that crosses it: the
        // segment counts.
        let through = [(5.0, 100.0), (10.0, 60.0)];
        let drawn = [Drawn {
            points: &through,
            joined: true,
        }];
        assert_eq!(legend_corner(&drawn, x, y, 0.3, 0.2), Corner::UpperLeft);
        // The same points not joined: the upper right is free again.
        let drawn = [Drawn {
            points: &through,
            joined: false,
        }];
        assert_eq!(legend_corner(&drawn, x, y, 0.3, 0.2), Corner::UpperRight);
    }
}
