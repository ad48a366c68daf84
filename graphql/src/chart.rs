//! A lab trend as an accessible SVG chart, rendered on the server: what the portal's
//! results page draws, and what `LabTrend.chartSvg` gives apps.
//!
//! The chart says everything without colour: its `<title>` and `<desc>` give the analyte,
//! the count, the span, the latest value and the reference range in words; a high result is
//! an upward triangle and a low one a downward triangle (not a red dot); every point has its
//! own `<title>`. Colours come from the clinic's CSS custom properties, with fallbacks.
//! The portal shows the same results as a table beside it.

use std::fmt::Write;

use chrono::{DateTime, Utc};

/// One result on the chart.
#[derive(Debug, Clone, PartialEq)]
pub struct Point {
    /// When it was taken.
    pub at: DateTime<Utc>,
    /// Its value.
    pub value: f64,
    /// Its interpretation code (`H`, `L`, `HH`, `LL`, `N`, …).
    pub flag: Option<String>,
}

/// What to draw.
#[derive(Debug, Clone)]
pub struct Trend<'a> {
    /// The analyte.
    pub name: &'a str,
    /// Its unit.
    pub unit: Option<&'a str>,
    /// The reference range's ends, if known.
    pub low: Option<f64>,
    /// The reference range's high end.
    pub high: Option<f64>,
    /// The results, oldest first.
    pub points: &'a [Point],
}

const WIDTH: f64 = 640.0;
const HEIGHT: f64 = 240.0;
const LEFT: f64 = 56.0;
const RIGHT: f64 = 16.0;
const TOP: f64 = 16.0;
const BOTTOM: f64 = 40.0;

/// The chart as SVG, or `None` when there is nothing numeric to draw.
pub fn svg(trend: &Trend<'_>, id: &str) -> Option<String> {
    let first = trend.points.first()?;
    let last = trend.points.last()?;
    let id = sanitize_id(id);
    let unit = trend.unit.unwrap_or("");
    let mut lowest = trend
        .points
        .iter()
        .map(|p| p.value)
        .fold(f64::INFINITY, f64::min);
    let mut highest = trend
        .points
        .iter()
        .map(|p| p.value)
        .fold(f64::NEG_INFINITY, f64::max);
    for bound in [trend.low, trend.high].into_iter().flatten() {
        lowest = lowest.min(bound);
        highest = highest.max(bound);
    }
    if !lowest.is_finite() || !highest.is_finite() {
        return None;
    }
    let pad = ((highest - lowest) * 0.1)
        .max(highest.abs() * 0.05)
        .max(0.5);
    let (lowest, highest) = (lowest - pad, highest + pad);
    let span = (last.at - first.at).num_seconds().max(1) as f64;
    let x = |at: DateTime<Utc>| {
        if trend.points.len() == 1 {
            LEFT + (WIDTH - LEFT - RIGHT) / 2.0
        } else {
            LEFT + (at - first.at).num_seconds() as f64 / span * (WIDTH - LEFT - RIGHT)
        }
    };
    let y = |value: f64| TOP + (highest - value) / (highest - lowest) * (HEIGHT - TOP - BOTTOM);
    let day = |at: DateTime<Utc>| at.format("%Y-%m-%d").to_string();

    let range_words = match (trend.low, trend.high) {
        (Some(low), Some(high)) => format!(
            "; reference range {} to {} {unit}",
            number(low),
            number(high)
        ),
        (None, Some(high)) => format!("; reference range up to {} {unit}", number(high)),
        (Some(low), None) => format!("; reference range from {} {unit}", number(low)),
        (None, None) => String::new(),
    };
    let description = format!(
        "{} results from {} to {}; latest {} {unit}{}{}",
        trend.points.len(),
        day(first.at),
        day(last.at),
        number(last.value),
        flag_words(last.flag.as_deref()),
        range_words
    );

    let mut out = String::new();
    let _ = write!(
        out,
        r#"<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {WIDTH} {HEIGHT}" role="img" aria-labelledby="{id}-title {id}-desc" class="trend-chart">"#
    );
    let _ = write!(
        out,
        r#"<title id="{id}-title">{}</title><desc id="{id}-desc">{}</desc>"#,
        escape(&format!("{} ({unit})", trend.name)),
        escape(description.trim())
    );
    if let (Some(low), Some(high)) = (trend.low, trend.high) {
        let _ = write!(
            out,
            r#"<rect class="range" x="{LEFT}" y="{:.1}" width="{:.1}" height="{:.1}" fill="var(--portico-accent, #0B6E69)" fill-opacity="0.12"/>"#,
            y(high),
            WIDTH - LEFT - RIGHT,
            (y(low) - y(high)).max(0.0)
        );
    }
    // Axes: the value scale's ends and the dates' ends, in text.
    let _ = write!(
        out,
        r##"<g class="axes" fill="#444" font-size="12" font-family="system-ui, sans-serif"><text x="{:.1}" y="{:.1}" text-anchor="end">{}</text><text x="{:.1}" y="{:.1}" text-anchor="end">{}</text><text x="{LEFT}" y="{:.1}">{}</text><text x="{:.1}" y="{:.1}" text-anchor="end">{}</text></g>"##,
        LEFT - 6.0,
        TOP + 10.0,
        number(highest),
        LEFT - 6.0,
        HEIGHT - BOTTOM,
        number(lowest),
        HEIGHT - 12.0,
        day(first.at),
        WIDTH - RIGHT,
        HEIGHT - 12.0,
        day(last.at)
    );
    let path: Vec<String> = trend
        .points
        .iter()
        .map(|p| format!("{:.1},{:.1}", x(p.at), y(p.value)))
        .collect();
    let _ = write!(
        out,
        r#"<polyline points="{}" fill="none" stroke="var(--portico-primary, #1F4E8C)" stroke-width="2"/>"#,
        path.join(" ")
    );
    for point in trend.points {
        let (px, py) = (x(point.at), y(point.value));
        let label = escape(&format!(
            "{}: {} {unit}{}",
            day(point.at),
            number(point.value),
            flag_words(point.flag.as_deref())
        ));
        let shape = match point.flag.as_deref() {
            Some("H" | "HH" | "HU" | ">") => format!(
                r#"<polygon class="high" points="{:.1},{:.1} {:.1},{:.1} {:.1},{:.1}"/>"#,
                px,
                py - 7.0,
                px - 6.0,
                py + 5.0,
                px + 6.0,
                py + 5.0
            ),
            Some("L" | "LL" | "LU" | "<") => format!(
                r#"<polygon class="low" points="{:.1},{:.1} {:.1},{:.1} {:.1},{:.1}"/>"#,
                px,
                py + 7.0,
                px - 6.0,
                py - 5.0,
                px + 6.0,
                py - 5.0
            ),
            _ => format!(r#"<circle class="normal" cx="{px:.1}" cy="{py:.1}" r="4"/>"#),
        };
        let _ = write!(
            out,
            r#"<g class="point" fill="var(--portico-primary, #1F4E8C)"><title>{label}</title>{shape}</g>"#
        );
    }
    out.push_str("</svg>");
    Some(out)
}

fn flag_words(flag: Option<&str>) -> &'static str {
    match flag {
        Some("H" | "HU" | ">") => " (high)",
        Some("HH") => " (critically high)",
        Some("L" | "LU" | "<") => " (low)",
        Some("LL") => " (critically low)",
        Some("A" | "AA") => " (abnormal)",
        _ => "",
    }
}

fn number(value: f64) -> String {
    let text = format!("{value:.2}");
    text.trim_end_matches('0').trim_end_matches('.').to_owned()
}

fn escape(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

fn sanitize_id(id: &str) -> String {
    let cleaned: String = id
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' {
                c
            } else {
                '-'
            }
        })
        .collect();
    format!("trend-{cleaned}")
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use chrono::TimeZone;

    use super::*;

    fn point(day: u32, value: f64, flag: Option<&str>) -> Point {
        Point {
            at: Utc.with_ymd_and_hms(2026, 1, day, 8, 0, 0).unwrap(),
            value,
            flag: flag.map(str::to_owned),
        }
    }

    #[test]
    fn the_chart_says_it_all_in_words_and_shapes() {
        let points = [
            point(1, 92.0, Some("N")),
            point(10, 104.0, Some("H")),
            point(20, 65.0, Some("L")),
        ];
        let chart = svg(
            &Trend {
                name: "Glucose <fasting>",
                unit: Some("mg/dL"),
                low: Some(70.0),
                high: Some(99.0),
                points: &points,
            },
            "2345-7",
        )
        .unwrap();
        assert!(chart.starts_with("<svg ") && chart.ends_with("</svg>"));
        assert!(
            chart.contains(r#"role="img" aria-labelledby="trend-2345-7-title trend-2345-7-desc""#)
        );
        assert!(
            chart.contains("Glucose &lt;fasting&gt; (mg/dL)"),
            "escaped: {chart}"
        );
        assert!(chart.contains(
            "3 results from 2026-01-01 to 2026-01-20; latest 65 mg/dL (low); reference range 70 to 99 mg/dL"
        ));
        assert_eq!(chart.matches(r#"class="high""#).count(), 1);
        assert_eq!(chart.matches(r#"class="low""#).count(), 1);
        assert_eq!(chart.matches(r#"class="normal""#).count(), 1);
        assert!(chart.contains("<title>2026-01-10: 104 mg/dL (high)</title>"));
        assert!(chart.contains(r#"class="range""#));
        assert!(!chart.contains("<script"));
    }

    #[test]
    fn one_result_or_none_are_handled() {
        let one = [point(3, 5.0, None)];
        let chart = svg(
            &Trend {
                name: "TSH",
                unit: None,
                low: None,
                high: None,
                points: &one,
            },
            "x y",
        )
        .unwrap();
        assert!(chart.contains("1 results from 2026-01-03 to 2026-01-03; latest 5"));
        assert!(chart.contains("trend-x-y-title"));
        assert!(!chart.contains("NaN") && !chart.contains("inf"));
        let none = Trend {
            name: "TSH",
            unit: None,
            low: None,
            high: None,
            points: &[],
        };
        assert_eq!(svg(&none, "t"), None);
    }
}
