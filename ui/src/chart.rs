//! The donut chart's geometry, kept apart from the markup so it can be tested.
//!
//! The chart is an SVG circle whose circumference is exactly 100 units
//! (radius 100 / 2π), so a segment's `stroke-dasharray` is its percentage and
//! its `stroke-dashoffset` is where the previous segments ended. No chart
//! library, no JavaScript: the server renders the same SVG the browser updates.

use yelb_core::{Restaurant, VoteCounts};

/// The radius that makes the circumference 100 (1 / 2π × 100).
pub const RADIUS: f64 = 15.915_494_309_189_533;
/// [`RADIUS`] as the SVG attribute writes it: a constant, so the browser
/// bundle needs no float formatting for it.
pub const RADIUS_ATTR: &str = "15.915494309189533";
/// Dash offset that starts the first segment at 12 o'clock.
const TOP: f64 = 25.0;

/// One restaurant's arc of the donut.
#[derive(Debug, Clone, PartialEq)]
pub struct Segment {
    /// Whose arc it is.
    pub restaurant: Restaurant,
    /// Its votes.
    pub count: i64,
    /// Its share of all votes, 0 to 100.
    pub percent: f64,
    /// `stroke-dasharray`: the arc, then the gap to the end of the circle.
    pub dasharray: String,
    /// `stroke-dashoffset`: where the arc starts.
    pub dashoffset: String,
}

/// The four arcs, in card order, for these counts. With no votes at all
/// every arc is empty (the chart shows its track and a total of 0).
pub fn segments(counts: &VoteCounts) -> Vec<Segment> {
    let total = counts.total();
    let mut start = 0.0;
    Restaurant::CARD_ORDER
        .into_iter()
        .map(|restaurant| {
            let count = counts.get(restaurant);
            let percent = if total > 0 { count as f64 * 100.0 / total as f64 } else { 0.0 };
            let segment = Segment {
                restaurant,
                count,
                percent,
                dasharray: format!("{} {}", fixed(percent, 3), fixed(100.0 - percent, 3)),
                dashoffset: fixed(TOP - start, 3),
            };
            start += percent;
            segment
        })
        .collect()
}

/// The widest the total may be, in chart units: the hole is 25.8 across
/// (radius 12.9 inside the ring), and the digits' box must clear the ring at
/// its corners too.
const TOTAL_WIDTH: f64 = 21.0;
/// The total's largest size, in chart units (up to three digits).
const TOTAL_SIZE: f64 = 9.0;
/// A bold digit's advance, in ems (DejaVu Sans Bold: 0.696; others are narrower).
const DIGIT_EM: f64 = 0.7;

/// The font size (chart units) of the total in the donut's hole: as large as
/// fits, so 4 digits and more shrink instead of running onto the ring.
pub fn total_font_size(total: i64) -> f64 {
    let digits = total.unsigned_abs().to_string().len() + usize::from(total < 0);
    (TOTAL_WIDTH / (DIGIT_EM * digits as f64)).min(TOTAL_SIZE)
}

/// A percentage as people read it: whole numbers, one decimal below 10%.
pub fn format_percent(percent: f64) -> String {
    if percent > 0.0 && percent < 0.05 {
        // A handful of votes among thousands is not nothing.
        "<0.1%".to_owned()
    } else if percent > 0.0 && percent < 10.0 {
        format!("{}%", fixed(percent, 1))
    } else {
        format!("{}%", fixed(percent, 0))
    }
}

/// `x` with `decimals` digits after the point, as `format!("{x:.N}")` writes
/// it but in integer arithmetic: the standard library's float formatting is
/// some 20 KB of the browser bundle, which every phone downloads. Halves
/// round away from zero (the standard library rounds them to even), and
/// values past ±9e15 saturate: neither shows on a chart.
pub fn fixed(x: f64, decimals: u32) -> String {
    let scale = 10_i64.pow(decimals.min(9));
    let scaled = (x * scale as f64).round() as i64;
    let sign = if scaled < 0 { "-" } else { "" };
    let whole = scaled.unsigned_abs() / scale as u64;
    if decimals == 0 {
        return format!("{sign}{whole}");
    }
    let fraction = scaled.unsigned_abs() % scale as u64;
    format!("{sign}{whole}.{fraction:0width$}", width = decimals.min(9) as usize)
}

/// The colour of a restaurant's arc, card accent and legend swatch (CSS class suffix).
pub const fn colour_class(restaurant: Restaurant) -> &'static str {
    match restaurant {
        Restaurant::Ihop => "c-ihop",
        Restaurant::Chipotle => "c-chipotle",
        Restaurant::Outback => "c-outback",
        Restaurant::Bucadibeppo => "c-bucadibeppo",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn arcs_follow_each_other_round_the_circle_and_add_up_to_it() {
        let counts = VoteCounts { outback: 1, bucadibeppo: 1, ihop: 2, chipotle: 0 };
        let arcs = segments(&counts);
        let order: Vec<_> = arcs.iter().map(|s| s.restaurant).collect();
        assert_eq!(order, Restaurant::CARD_ORDER.to_vec());
        assert_eq!(arcs[0].percent, 50.0);
        assert_eq!(arcs[0].dasharray, "50.000 50.000");
        assert_eq!(arcs[0].dashoffset, "25.000");
        assert_eq!(arcs[1].dashoffset, "-25.000");
        assert_eq!(arcs[2].dashoffset, "-25.000", "an empty arc takes no room");
        assert_eq!(arcs[3].dashoffset, "-50.000");
        assert_eq!(arcs.iter().map(|s| s.percent).sum::<f64>(), 100.0);
    }

    #[test]
    fn no_votes_draw_no_arcs_instead_of_dividing_by_zero() {
        let arcs = segments(&VoteCounts::default());
        assert!(arcs.iter().all(|s| s.percent == 0.0 && s.dasharray == "0.000 100.000"));
    }

    #[test]
    fn percentages_read_naturally() {
        assert_eq!(format_percent(0.0), "0%");
        assert_eq!(format_percent(3.333), "3.3%");
        assert_eq!(format_percent(66.6), "67%");
        assert_eq!(format_percent(100.0), "100%");
        assert_eq!(format_percent(0.04), "<0.1%");
        assert_eq!(format_percent(0.05), "0.1%");
    }

    #[test]
    fn the_radius_attribute_is_the_radius() {
        assert_eq!(RADIUS_ATTR, RADIUS.to_string());
        assert!((2.0 * std::f64::consts::PI * RADIUS - 100.0).abs() < 1e-12);
    }

    #[test]
    fn fixed_writes_what_the_standard_library_writes() {
        for x in [
            0.0,
            1.0,
            2.5,
            9.95,
            10.0,
            33.333_333,
            66.666_666,
            99.999_9,
            100.0,
            25.0,
            0.000_4,
            1_234.567_89,
            -12.345_6,
            -0.4,
        ] {
            for d in 0..=3 {
                let ours = fixed(x, d);
                let std = format!("{x:.prec$}", prec = d as usize);
                // Equal, or (at an exact half) one unit apart in the last digit.
                let unit = 10_f64.powi(-(d as i32));
                let diff = (ours.parse::<f64>().unwrap() - std.parse::<f64>().unwrap()).abs();
                assert!(ours == std || diff <= unit * 1.000_001, "{x} to {d}: {ours} vs {std}");
                assert_eq!(ours.split('.').nth(1).map_or(0, str::len), d as usize, "{ours}");
            }
        }
        assert_eq!(fixed(33.333_333, 3), "33.333");
        assert_eq!(fixed(-0.000_1, 3), "0.000");
        assert_eq!(fixed(-1.5, 0), "-2");
        assert_eq!(fixed(0.05, 1), "0.1");
    }

    #[test]
    fn the_total_shrinks_with_its_digits_and_always_fits_the_hole() {
        assert_eq!(total_font_size(0), 9.0);
        assert_eq!(total_font_size(999), 9.0);
        assert!(total_font_size(1_000) < 9.0);
        let mut last = 9.0;
        for total in [1_000, 12_345, 123_456, 1_234_567, i64::MAX] {
            let size = total_font_size(total);
            assert!(size <= last, "{total}");
            last = size;
            // The digits' box (0.7 em a digit, 0.73 em tall) inside the hole's radius of 12.9.
            let width = 0.7 * size * total.to_string().len() as f64;
            let height = 0.73 * size;
            assert!((width / 2.0).hypot(height / 2.0) < 12.9, "{total}: {width} x {height}");
        }
    }
}
