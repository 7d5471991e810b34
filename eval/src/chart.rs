//! Horizontal bar charts as inline SVG text: one bar per metric, its 95% interval as a
//! whisker, gate thresholds as dashed ticks. No script, no external font or stylesheet, so
//! the markup can be pasted into any page (`report.html`, the web UI's eval page).
//!
//! ```
//! use anjeon_eval::chart::{chart_svg, Bar, Status};
//! let bars = [Bar {
//!     label: "kobest_copa acc".into(),
//!     value: 0.62,
//!     ci95: Some((0.55, 0.69)),
//!     min: Some(0.55),
//!     max: None,
//!     status: Status::Pass,
//! }];
//! let svg = chart_svg("벤치마크", &bars, None);
//! assert!(svg.starts_with("<svg") && svg.contains("kobest_copa acc"));
//! ```

use std::fmt::Write;

/// One bar.
#[derive(Debug, Clone, PartialEq)]
pub struct Bar {
    pub label: String,
    pub value: f64,
    /// The 95% interval, drawn as a whisker.
    pub ci95: Option<(f64, f64)>,
    /// Gate bounds, drawn as dashed ticks.
    pub min: Option<f64>,
    pub max: Option<f64>,
    pub status: Status,
}

/// How a bar is coloured: by its gate verdict, or neutral when no gate judged it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Status {
    #[default]
    Neutral,
    Pass,
    Fail,
}

impl Status {
    fn colour(self) -> &'static str {
        match self {
            Status::Neutral => "#3b6ea8",
            Status::Pass => "#2e7d32",
            Status::Fail => "#c62828",
        }
    }
}

/// How labels and bars share the width.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Layout {
    /// 680 wide, each label left of its bar (screens, reports).
    Wide,
    /// 360 wide, each label above its bar (phones).
    Narrow,
}

struct Geometry {
    width: f64,
    /// Where the value axis starts.
    x0: f64,
    row: f64,
    label_above: bool,
}

impl Layout {
    fn geometry(self) -> Geometry {
        match self {
            Layout::Wide => Geometry {
                width: 680.0,
                x0: 250.0,
                row: 24.0,
                label_above: false,
            },
            Layout::Narrow => Geometry {
                width: 360.0,
                x0: 8.0,
                row: 40.0,
                label_above: true,
            },
        }
    }
}

const VALUE_WIDTH: f64 = 70.0;
const BAR: f64 = 14.0;
const TOP: f64 = 30.0;
const AXIS: f64 = 26.0;
/// Characters of a label shown before it is cut with "…" (Hangul is wide).
const LABEL_CHARS: usize = 34;

/// The chart as an `<svg>` element. `domain` is the value axis; `None` picks one that
/// holds every value, interval and threshold, starting at 0 (and 0..1 when everything is
/// a proportion).
pub fn chart_svg(title: &str, bars: &[Bar], domain: Option<(f64, f64)>) -> String {
    chart_svg_with(Layout::Wide, title, bars, domain)
}

/// [`chart_svg`] in the given layout.
pub fn chart_svg_with(
    layout: Layout,
    title: &str,
    bars: &[Bar],
    domain: Option<(f64, f64)>,
) -> String {
    let Geometry {
        width,
        x0,
        row,
        label_above,
    } = layout.geometry();
    let (lo, hi) = domain.unwrap_or_else(|| auto_domain(bars));
    let span = if hi > lo { hi - lo } else { 1.0 };
    let x1 = width - VALUE_WIDTH;
    let x = |v: f64| x0 + (v.clamp(lo, hi) - lo) / span * (x1 - x0);
    let height = TOP + row * bars.len() as f64 + AXIS;
    let mut s = String::new();
    let _ = write!(
        s,
        r#"<svg xmlns="http://www.w3.org/2000/svg" class="chart" width="{width}" height="{height}" viewBox="0 0 {width} {height}" role="img" aria-label="{t}" font-family="sans-serif" font-size="12">"#,
        t = escape(title)
    );
    let _ = write!(
        s,
        r#"<text x="0" y="16" font-size="14" font-weight="bold">{}</text>"#,
        escape(title)
    );
    // Grid lines and tick labels.
    let axis_y = TOP + row * bars.len() as f64;
    for tick in ticks(lo, hi) {
        let tx = x(tick);
        let _ = write!(
            s,
            r##"<line x1="{tx:.1}" y1="{TOP}" x2="{tx:.1}" y2="{axis_y:.1}" stroke="#ddd"/><text x="{tx:.1}" y="{ty:.1}" text-anchor="middle" fill="#555">{label}</text>"##,
            ty = axis_y + 16.0,
            label = number(tick)
        );
    }
    for (i, b) in bars.iter().enumerate() {
        let top = TOP + row * i as f64;
        // with the label above, the bar takes the lower part of the row
        let mid = if label_above {
            top + row - BAR / 2.0 - 4.0
        } else {
            top + row / 2.0
        };
        let mut tip = format!("{} = {}", b.label, number(b.value));
        if let Some((l, h)) = b.ci95 {
            let _ = write!(tip, " (95% CI {}–{})", number(l), number(h));
        }
        let _ = write!(s, "<g><title>{}</title>", escape(&tip));
        let (lx, ly, anchor) = if label_above {
            (x0, top + 13.0, "start")
        } else {
            (x0 - 8.0, mid + 4.0, "end")
        };
        let _ = write!(
            s,
            r#"<text x="{lx:.1}" y="{ly:.1}" text-anchor="{anchor}">{}</text>"#,
            escape(&cut(&b.label)),
        );
        if b.value.is_finite() {
            let (a, z) = (x(lo.max(0.0).min(hi)), x(b.value));
            let _ = write!(
                s,
                r#"<rect x="{:.1}" y="{:.1}" width="{:.1}" height="{BAR}" fill="{}"/>"#,
                a.min(z),
                mid - BAR / 2.0,
                (z - a).abs(),
                b.status.colour()
            );
        }
        if let Some((l, h)) = b.ci95 {
            let (l, h) = (x(l), x(h));
            let _ = write!(
                s,
                r##"<path d="M{l:.1} {y:.1}H{h:.1}M{l:.1} {a:.1}V{z:.1}M{h:.1} {a:.1}V{z:.1}" stroke="#222" stroke-width="1.5" fill="none"/>"##,
                y = mid,
                a = mid - 5.0,
                z = mid + 5.0
            );
        }
        for bound in [b.min, b.max].into_iter().flatten() {
            let bx = x(bound);
            let _ = write!(
                s,
                r##"<line x1="{bx:.1}" y1="{:.1}" x2="{bx:.1}" y2="{:.1}" stroke="#e08a00" stroke-width="2" stroke-dasharray="3 2"/>"##,
                top + 1.0,
                top + row - 1.0
            );
        }
        let _ = write!(
            s,
            r#"<text x="{:.1}" y="{:.1}">{}</text></g>"#,
            x1 + 6.0,
            mid + 4.0,
            number(b.value)
        );
    }
    let _ = write!(
        s,
        r##"<line x1="{x0}" y1="{axis_y:.1}" x2="{x1}" y2="{axis_y:.1}" stroke="#888"/></svg>"##
    );
    s
}

/// 0..1 when every value, interval and bound is a proportion; otherwise 0 (or the lowest
/// value) up to the largest, rounded up to a tick.
fn auto_domain(bars: &[Bar]) -> (f64, f64) {
    let values: Vec<f64> = bars
        .iter()
        .flat_map(|b| {
            [Some(b.value), b.min, b.max]
                .into_iter()
                .chain(b.ci95.map(|c| Some(c.0)))
                .chain(b.ci95.map(|c| Some(c.1)))
                .flatten()
        })
        .filter(|v| v.is_finite())
        .collect();
    let lo = values.iter().copied().fold(0.0, f64::min);
    let hi = values.iter().copied().fold(0.0, f64::max);
    if lo >= 0.0 && hi <= 1.0 {
        return (0.0, 1.0);
    }
    let step = nice_step(hi - lo);
    ((lo / step).floor() * step, (hi / step).ceil() * step)
}

/// A step of 1, 2 or 5 times a power of ten giving about five ticks over `span`.
fn nice_step(span: f64) -> f64 {
    if span <= 0.0 || !span.is_finite() {
        return 1.0;
    }
    let raw = span / 5.0;
    let power = 10f64.powf(raw.log10().floor());
    let m = raw / power;
    let nice = if m <= 1.0 {
        1.0
    } else if m <= 2.0 {
        2.0
    } else if m <= 5.0 {
        5.0
    } else {
        10.0
    };
    nice * power
}

fn ticks(lo: f64, hi: f64) -> Vec<f64> {
    let step = if (lo, hi) == (0.0, 1.0) {
        0.25
    } else {
        nice_step(hi - lo)
    };
    let first = (lo / step).ceil() as i64;
    let last = (hi / step).floor() as i64;
    (first..=last).map(|k| k as f64 * step).collect()
}

fn cut(label: &str) -> String {
    if label.chars().count() <= LABEL_CHARS {
        label.to_string()
    } else {
        let mut s: String = label.chars().take(LABEL_CHARS - 1).collect();
        s.push('…');
        s
    }
}

/// A figure as charts and tables show it: up to four decimals for proportions, fewer for
/// large values.
pub fn number(v: f64) -> String {
    if !v.is_finite() {
        return "—".into();
    }
    let a = v.abs();
    let text = if a >= 100.0 {
        format!("{v:.0}")
    } else if a >= 10.0 {
        format!("{v:.1}")
    } else {
        format!("{v:.4}")
    };
    if text.contains('.') {
        text.trim_end_matches('0').trim_end_matches('.').to_string()
    } else {
        text
    }
}

/// Text escaped for XML and HTML content and attribute values.
pub fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn bar(label: &str, value: f64) -> Bar {
        Bar {
            label: label.into(),
            value,
            ci95: None,
            min: None,
            max: None,
            status: Status::Neutral,
        }
    }

    #[test]
    fn bars_whiskers_and_thresholds_are_drawn_to_scale() {
        let bars = [
            Bar {
                ci95: Some((0.4, 0.6)),
                min: Some(0.55),
                status: Status::Fail,
                ..bar("kobest_copa acc", 0.5)
            },
            bar("rag <coverage> & \"more\"", 1.0),
        ];
        let svg = chart_svg("점수", &bars, None);
        assert!(svg.starts_with("<svg xmlns=\"http://www.w3.org/2000/svg\""));
        assert!(svg.ends_with("</svg>"));
        assert_eq!(svg.matches("<rect").count(), 2);
        // Plot area 250..610: 0.5 → 430, interval 0.4..0.6 → 394..466, bound 0.55 → 448.
        assert!(
            svg.contains(r#"<rect x="250.0" y="35.0" width="180.0""#),
            "{svg}"
        );
        assert!(svg.contains("M394.0 42.0H466.0"), "{svg}");
        assert!(svg.contains(r#"x1="448.0""#), "{svg}");
        assert!(svg.contains("#c62828"));
        assert!(svg.contains("rag &lt;coverage&gt; &amp; &quot;more&quot;"));
        assert!(svg.contains("(95% CI 0.4–0.6)"));
        // Ticks of a proportion axis.
        for t in ["0.25", "0.75"] {
            assert!(svg.contains(&format!(">{t}</text>")), "{t}");
        }
        // Balanced tags.
        assert_eq!(svg.matches("<g>").count(), svg.matches("</g>").count());
    }

    #[test]
    fn the_narrow_layout_puts_labels_above_full_width_bars() {
        let bars = [bar("kobest_copa acc", 0.5), bar("kobest_boolq acc", 1.0)];
        let svg = chart_svg_with(Layout::Narrow, "점수", &bars, None);
        assert!(svg.contains(r#"width="360""#), "{svg}");
        // plot area 8..290: 0.5 → 149; labels start at the left edge, above their bars
        assert!(
            svg.contains(r#"<rect x="8.0" y="52.0" width="141.0""#),
            "{svg}"
        );
        assert!(svg.contains(r#"<text x="8.0" y="43.0" text-anchor="start">kobest_copa acc"#));
        assert!(svg.contains(r#"<text x="8.0" y="83.0" text-anchor="start">kobest_boolq acc"#));
    }

    #[test]
    fn domains_fit_the_data() {
        assert_eq!(auto_domain(&[bar("a", 0.3)]), (0.0, 1.0));
        assert_eq!(
            auto_domain(&[bar("ms", 187.0), bar("p95", 420.0)]),
            (0.0, 500.0)
        );
        let d = auto_domain(&[Bar {
            ci95: Some((-0.1, 0.3)),
            ..bar("d", 0.1)
        }]);
        assert!(d.0 < -0.09 && d.1 >= 0.3, "{d:?}");
        assert_eq!(
            ticks(0.0, 500.0),
            vec![0.0, 100.0, 200.0, 300.0, 400.0, 500.0]
        );
        // Values outside an explicit domain are clamped, never drawn outside the plot.
        let svg = chart_svg("t", &[bar("x", 7.0)], Some((0.0, 1.0)));
        assert!(svg.contains(r#"width="360.0""#), "{svg}");
        assert!(!chart_svg("empty", &[], None).contains("<rect"));
    }

    #[test]
    fn numbers_and_labels_are_short() {
        assert_eq!(number(0.5), "0.5");
        assert_eq!(number(0.123_456), "0.1235");
        assert_eq!(number(187.4), "187");
        assert_eq!(number(12.34), "12.3");
        assert_eq!(number(0.0), "0");
        assert_eq!(number(f64::NAN), "—");
        let long = "가".repeat(50);
        assert_eq!(cut(&long).chars().count(), LABEL_CHARS);
    }
}
