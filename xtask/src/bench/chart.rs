//! A small hand-written SVG bar chart: one panel per metric, one bar per topology; and the
//! pieces the NAT and engines charts draw with too.
//! Hand-written because three panels of bars do not justify a plotting dependency.

use std::fmt::Write as _;

use super::results::{C2cResults, Metric, Results, TopologyRun};
use super::topology::Kind;

pub const PANEL_WIDTH: f64 = 300.0;
const PANEL_HEIGHT: f64 = 300.0;
const TOP: f64 = 60.0;
const BOTTOM: f64 = 50.0;
/// The height of a chart of [`bars_panel`]s.
pub const HEIGHT: f64 = TOP + PANEL_HEIGHT + BOTTOM;
const BAR_WIDTH: f64 = 60.0;
/// The metrics of the topology charts (c2c and overlay), one panel each.
pub const PANELS: [Metric; 3] = [Metric::UdpKpps, Metric::TcpGbps, Metric::RttP50Us];

/// One colour per role in every chart, so that the charts read alike.
pub const BASELINE_COLOR: &str = "#e69f00";
pub const NETD_COLOR: &str = "#0072b2";
pub const FLOOR_COLOR: &str = "#8c8c8c";

pub fn color(kind: Kind) -> &'static str {
    match kind {
        Kind::Floor => FLOOR_COLOR,
        Kind::Bridge | Kind::VxlanBridge => BASELINE_COLOR,
        Kind::Netd | Kind::NetdOverlay => NETD_COLOR,
    }
}

pub fn svg(results: &Results, c2c: &C2cResults) -> String {
    let title = format!(
        "netd c2c vs. baselines, {} {} UTC (medians; higher is better except RTT)",
        results.date, results.time
    );
    let layout = Layout {
        panel_width: PANEL_WIDTH,
        height: HEIGHT,
        legend: &[],
    };
    side_by_side(&title, &layout, &PANELS, |svg, &metric, left| {
        metric_panel(svg, &c2c.topologies, metric, |_| None, left);
    })
}

/// A [`bars_panel`] of `metric`'s medians, one bar per run, with `interval`'s whiskers.
pub fn metric_panel(
    svg: &mut String,
    runs: &[TopologyRun],
    metric: Metric,
    interval: impl Fn(Kind) -> Option<(f64, f64)>,
    left: f64,
) {
    let bars: Vec<Bar> = runs
        .iter()
        .map(|run| Bar {
            label: run.kind.label(),
            value: metric.median_of(run),
            interval: interval(run.kind),
            color: color(run.kind),
        })
        .collect();
    bars_panel(svg, metric.title(), &bars, metric.decimals(), left);
}

/// One bar of a [`bars_panel`].
pub struct Bar<'a> {
    pub label: &'a str,
    /// None: not measured.
    pub value: Option<f64>,
    /// A confidence interval, drawn as a whisker.
    pub interval: Option<(f64, f64)>,
    pub color: &'static str,
}

/// A panel of bars side by side, scaled to the largest value (or whisker), each with its value
/// above it and its label below.
pub fn bars_panel(svg: &mut String, title: &str, bars: &[Bar], decimals: usize, left: f64) {
    let plot_height = PANEL_HEIGHT - 40.0;
    let baseline = TOP + 20.0 + plot_height;
    let max = bars
        .iter()
        .flat_map(|bar| [bar.value, bar.interval.map(|(_, high)| high)])
        .flatten()
        .fold(0.0, f64::max);
    let height_of = |value: f64| (value / max).max(0.0) * (plot_height - 20.0);
    panel_title(svg, left + PANEL_WIDTH / 2.0, TOP, title);
    axis(svg, left + 20.0, left + PANEL_WIDTH - 20.0, baseline);
    let slot = (PANEL_WIDTH - 40.0) / bars.len().max(1) as f64;
    for (i, item) in bars.iter().enumerate() {
        let center = left + 20.0 + slot * (i as f64 + 0.5);
        let label = match item.value {
            Some(value) if max > 0.0 => {
                let shape = BarShape {
                    center,
                    width: BAR_WIDTH,
                    height: height_of(value),
                };
                bar(
                    svg,
                    &shape,
                    baseline,
                    item.color,
                    &format!("{value:.decimals$}"),
                );
                if let Some((low, high)) = item.interval {
                    whisker(
                        svg,
                        center + BAR_WIDTH / 2.0 - 8.0,
                        baseline - height_of(low),
                        baseline - height_of(high),
                    );
                }
                item.label.to_string()
            }
            _ => format!("{} (n/a)", item.label),
        };
        bar_label(svg, center, baseline, &label);
    }
}

/// A vertical whisker from `y_low` to `y_high` at `x`, with caps.
fn whisker(svg: &mut String, x: f64, y_low: f64, y_high: f64) {
    let _ = writeln!(
        svg,
        r##"<path d="M{} {y_low}H{}M{x} {y_low}V{y_high}M{} {y_high}H{}" stroke="#333" fill="none"/>"##,
        x - 4.0,
        x + 4.0,
        x - 4.0,
        x + 4.0
    );
}

/// The frame of a chart: how wide each panel is, how high the chart, and the legend's
/// (label, colour) items.
pub struct Layout<'a> {
    pub panel_width: f64,
    pub height: f64,
    pub legend: &'a [(&'a str, &'a str)],
}

/// A whole chart: the title, the legend and `panels` side by side, each drawn by `draw` from its
/// left edge.
pub fn side_by_side<P>(
    title: &str,
    layout: &Layout,
    panels: &[P],
    draw: impl Fn(&mut String, &P, f64),
) -> String {
    let width = layout.panel_width * panels.len() as f64;
    let mut svg = String::new();
    begin(&mut svg, width, layout.height, title);
    legend(&mut svg, width, layout.legend);
    for (index, panel) in panels.iter().enumerate() {
        draw(&mut svg, panel, index as f64 * layout.panel_width);
    }
    svg.push_str("</svg>\n");
    svg
}

/// Opens an SVG on a white background with `title` centred on top.
fn begin(svg: &mut String, width: f64, height: f64, title: &str) {
    let _ = writeln!(
        svg,
        r#"<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" viewBox="0 0 {width} {height}" font-family="sans-serif" font-size="12">"#
    );
    let _ = writeln!(svg, r#"<rect width="100%" height="100%" fill="white"/>"#);
    let _ = writeln!(
        svg,
        r#"<text x="{}" y="22" text-anchor="middle" font-size="15">{}</text>"#,
        width / 2.0,
        escape(title)
    );
}

/// A row of colour swatches with their labels, centred under the title.
fn legend(svg: &mut String, width: f64, items: &[(&str, &str)]) {
    // About 7 px per character at font-size 12, plus the swatch and a gap.
    let widths: Vec<f64> = items
        .iter()
        .map(|(label, _)| label.len() as f64 * 7.0 + 40.0)
        .collect();
    let mut x = (width - widths.iter().sum::<f64>()) / 2.0;
    for ((label, color), item_width) in items.iter().zip(widths) {
        let _ = writeln!(
            svg,
            r#"<rect x="{x}" y="34" width="12" height="12" fill="{color}"/><text x="{}" y="45">{}</text>"#,
            x + 16.0,
            escape(label)
        );
        x += item_width;
    }
}

/// A panel's bold title, centred at `center`.
pub fn panel_title(svg: &mut String, center: f64, y: f64, title: &str) {
    let _ = writeln!(
        svg,
        r#"<text x="{center}" y="{y}" text-anchor="middle" font-weight="bold">{}</text>"#,
        escape(title)
    );
}

/// The line the bars stand on.
pub fn axis(svg: &mut String, from: f64, to: f64, baseline: f64) {
    let _ = writeln!(
        svg,
        r##"<line x1="{from}" y1="{baseline}" x2="{to}" y2="{baseline}" stroke="#333"/>"##
    );
}

/// Where a bar stands: its centre, width and height above the baseline.
pub struct BarShape {
    pub center: f64,
    pub width: f64,
    pub height: f64,
}

/// A bar on `baseline` with `value` written above it.
pub fn bar(svg: &mut String, shape: &BarShape, baseline: f64, color: &str, value: &str) {
    let BarShape {
        center,
        width,
        height,
    } = *shape;
    let _ = writeln!(
        svg,
        r#"<rect x="{}" y="{}" width="{width}" height="{height}" fill="{color}"/>"#,
        center - width / 2.0,
        baseline - height
    );
    let _ = writeln!(
        svg,
        r#"<text x="{center}" y="{}" text-anchor="middle">{value}</text>"#,
        baseline - height - 5.0
    );
}

/// What a bar stands for, under the baseline.
pub fn bar_label(svg: &mut String, center: f64, baseline: f64, label: &str) {
    let _ = writeln!(
        svg,
        r#"<text x="{center}" y="{}" text-anchor="middle">{}</text>"#,
        baseline + 18.0,
        escape(label)
    );
}

pub fn escape(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}
