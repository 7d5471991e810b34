//! Horizontal bar charts as inline SVG: one bar per metric, its 95% interval as a whisker,
//! gate bounds as dashed ticks. Written to the same shape as `anjeon_eval::chart` (on the
//! evalrag branch), so the page can switch to that function once it is on main.

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

/// A bar's colour: its gate verdict, or neutral when no gate judged it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Status {
    #[default]
    Neutral,
    Pass,
    Fail,
}

impl Status {
    /// Colours with at least 4.5:1 contrast on white.
    fn colour(self) -> &'static str {
        match self {
            Status::Neutral => "#2f5f94",
            Status::Pass => "#2a6f2e",
            Status::Fail => "#b3261e",
        }
    }
}

const WIDTH: f64 = 640.0;
const LABEL_WIDTH: f64 = 210.0;
const VALUE_WIDTH: f64 = 64.0;
const ROW: f64 = 26.0;
const BAR: f64 = 14.0;
const TOP: f64 = 8.0;
const AXIS: f64 = 24.0;
/// Characters of a label before it is cut with "…".
const LABEL_CHARS: usize = 28;

/// The chart as an `<svg class="chart">` element. `domain` is the value axis; `None` takes
/// 0..1 when every value, interval and bound is a proportion, else 0..the largest.
pub fn chart_svg(title: &str, bars: &[Bar], domain: Option<(f64, f64)>) -> String {
    let (lo, hi) = domain.unwrap_or_else(|| auto_domain(bars));
    let span = if hi > lo { hi - lo } else { 1.0 };
    let (x0, x1) = (LABEL_WIDTH, WIDTH - VALUE_WIDTH);
    let x = |v: f64| x0 + (v.clamp(lo, hi) - lo) / span * (x1 - x0);
    let height = TOP + ROW * bars.len() as f64 + AXIS;
    let mut s = String::new();
    let _ = write!(
        s,
        r#"<svg xmlns="http://www.w3.org/2000/svg" class="chart" viewBox="0 0 {WIDTH} {height}" width="{WIDTH}" height="{height}" role="img" aria-label="{t}" font-family="sans-serif" font-size="12"><title>{t}</title>"#,
        t = escape(title)
    );
    // Grid lines and axis labels at fifths of the domain.
    for i in 0..=5 {
        let v = lo + span * i as f64 / 5.0;
        let gx = x(v);
        let _ = write!(
            s,
            r##"<line x1="{gx:.1}" y1="{TOP}" x2="{gx:.1}" y2="{y2:.1}" stroke="#d0d4da" stroke-width="1"/><text x="{gx:.1}" y="{ty:.1}" text-anchor="middle" fill="#333">{label}</text>"##,
            y2 = height - AXIS,
            ty = height - 8.0,
            label = number(v)
        );
    }
    for (i, bar) in bars.iter().enumerate() {
        let top = TOP + ROW * i as f64;
        let mid = top + ROW / 2.0;
        let label: String = if bar.label.chars().count() > LABEL_CHARS {
            bar.label
                .chars()
                .take(LABEL_CHARS - 1)
                .chain(['…'])
                .collect()
        } else {
            bar.label.clone()
        };
        let _ = write!(
            s,
            r##"<g><title>{full}: {value}{ci}</title><text x="{lx:.1}" y="{ty:.1}" text-anchor="end" fill="#1a1a1a">{label}</text><rect x="{x0:.1}" y="{by:.1}" width="{w:.1}" height="{BAR}" fill="{c}"/>"##,
            full = escape(&bar.label),
            value = number(bar.value),
            ci = bar
                .ci95
                .map(|(a, b)| format!(" (95% 신뢰구간 {}–{})", number(a), number(b)))
                .unwrap_or_default(),
            lx = x0 - 8.0,
            ty = mid + 4.0,
            label = escape(&label),
            by = mid - BAR / 2.0,
            w = (x(bar.value) - x0).max(0.5),
            c = bar.status.colour(),
        );
        if let Some((a, b)) = bar.ci95 {
            let (xa, xb) = (x(a), x(b));
            let _ = write!(
                s,
                r##"<line class="ci" x1="{xa:.1}" y1="{mid:.1}" x2="{xb:.1}" y2="{mid:.1}" stroke="#111" stroke-width="1.5"/><line x1="{xa:.1}" y1="{t:.1}" x2="{xa:.1}" y2="{b2:.1}" stroke="#111" stroke-width="1.5"/><line x1="{xb:.1}" y1="{t:.1}" x2="{xb:.1}" y2="{b2:.1}" stroke="#111" stroke-width="1.5"/>"##,
                t = mid - 5.0,
                b2 = mid + 5.0,
            );
        }
        for bound in [bar.min, bar.max].into_iter().flatten() {
            let bx = x(bound);
            let _ = write!(
                s,
                r##"<line class="gate" x1="{bx:.1}" y1="{t:.1}" x2="{bx:.1}" y2="{b2:.1}" stroke="#7a4b00" stroke-width="2" stroke-dasharray="3 2"/>"##,
                t = top + 2.0,
                b2 = top + ROW - 2.0,
            );
        }
        let _ = write!(
            s,
            r##"<text x="{vx:.1}" y="{ty:.1}" fill="#1a1a1a">{v}</text></g>"##,
            vx = x1 + 6.0,
            ty = mid + 4.0,
            v = number(bar.value)
        );
    }
    s.push_str("</svg>");
    s
}

fn auto_domain(bars: &[Bar]) -> (f64, f64) {
    let values = bars.iter().flat_map(|b| {
        [Some(b.value), b.ci95.map(|c| c.1), b.min, b.max]
            .into_iter()
            .flatten()
    });
    let top = values.fold(0.0f64, |m, v| if v.is_finite() { m.max(v) } else { m });
    if top <= 1.0 {
        (0.0, 1.0)
    } else {
        (0.0, top)
    }
}

/// A value with at most three decimals, trailing zeros dropped.
pub fn number(v: f64) -> String {
    let s = format!("{v:.3}");
    let s = s.trim_end_matches('0').trim_end_matches('.');
    if s == "-0" {
        "0".into()
    } else {
        s.to_string()
    }
}

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

    #[test]
    fn a_bar_with_its_interval_and_gate() {
        let svg = chart_svg(
            "kobest <copa>",
            &[Bar {
                label: "kobest_copa acc".into(),
                value: 0.4,
                ci95: Some((0.1, 0.7)),
                min: Some(0.55),
                max: None,
                status: Status::Fail,
            }],
            None,
        );
        assert!(svg.starts_with("<svg") && svg.ends_with("</svg>"), "{svg}");
        assert!(svg.contains("class=\"chart\""));
        assert!(svg.contains("kobest &lt;copa&gt;"));
        assert!(svg.contains("<rect") && svg.contains("class=\"ci\""));
        assert!(svg.contains("class=\"gate\""));
        assert!(svg.contains(">0.4<"), "{svg}");
        assert_eq!(number(0.5), "0.5");
        assert_eq!(number(12.0), "12");
    }
}
