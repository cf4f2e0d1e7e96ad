//! A small hand-written SVG bar chart: one panel per metric, one bar per topology.
//! Hand-written because three panels of bars do not justify a plotting dependency.

use std::fmt::Write as _;

use super::results::{C2cResults, Metric, Results};
use super::topology::Kind;

const PANEL_WIDTH: f64 = 300.0;
const PANEL_HEIGHT: f64 = 300.0;
const TOP: f64 = 60.0;
const BOTTOM: f64 = 50.0;
const BAR_WIDTH: f64 = 60.0;
const PANELS: [Metric; 3] = [Metric::UdpKpps, Metric::TcpGbps, Metric::RttP50Us];

fn color(kind: Kind) -> &'static str {
    match kind {
        Kind::Floor => "#8c8c8c",
        Kind::Bridge => "#e69f00",
        Kind::Netd => "#0072b2",
    }
}

pub fn svg(results: &Results, c2c: &C2cResults) -> String {
    let width = PANEL_WIDTH * PANELS.len() as f64;
    let height = TOP + PANEL_HEIGHT + BOTTOM;
    let mut svg = String::new();
    let _ = writeln!(
        svg,
        r#"<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" viewBox="0 0 {width} {height}" font-family="sans-serif" font-size="12">"#
    );
    let _ = writeln!(svg, r#"<rect width="100%" height="100%" fill="white"/>"#);
    let _ = writeln!(
        svg,
        r#"<text x="{}" y="22" text-anchor="middle" font-size="15">netd c2c vs. baselines, {} {} UTC (medians; higher is better except RTT)</text>"#,
        width / 2.0,
        results.date,
        results.time
    );
    for (index, metric) in PANELS.into_iter().enumerate() {
        panel(&mut svg, c2c, metric, index as f64 * PANEL_WIDTH);
    }
    svg.push_str("</svg>\n");
    svg
}

fn panel(svg: &mut String, results: &C2cResults, metric: Metric, left: f64) {
    let plot_height = PANEL_HEIGHT - 40.0;
    let baseline = TOP + 20.0 + plot_height;
    let values: Vec<(Kind, Option<f64>)> = Kind::ALL
        .iter()
        .map(|&kind| (kind, results.median(kind, metric)))
        .collect();
    let max = values.iter().filter_map(|(_, v)| *v).fold(0.0, f64::max);
    let _ = writeln!(
        svg,
        r#"<text x="{}" y="{}" text-anchor="middle" font-weight="bold">{}</text>"#,
        left + PANEL_WIDTH / 2.0,
        TOP,
        escape(metric.title())
    );
    let _ = writeln!(
        svg,
        r##"<line x1="{}" y1="{baseline}" x2="{}" y2="{baseline}" stroke="#333"/>"##,
        left + 20.0,
        left + PANEL_WIDTH - 20.0
    );
    let slot = (PANEL_WIDTH - 40.0) / values.len() as f64;
    for (i, (kind, value)) in values.iter().enumerate() {
        let center = left + 20.0 + slot * (i as f64 + 0.5);
        let label = match value {
            Some(value) if max > 0.0 => {
                let bar_height = value / max * (plot_height - 20.0);
                let _ = writeln!(
                    svg,
                    r#"<rect x="{}" y="{}" width="{BAR_WIDTH}" height="{bar_height}" fill="{}"/>"#,
                    center - BAR_WIDTH / 2.0,
                    baseline - bar_height,
                    color(*kind)
                );
                let _ = writeln!(
                    svg,
                    r#"<text x="{center}" y="{}" text-anchor="middle">{:.*}</text>"#,
                    baseline - bar_height - 5.0,
                    metric.decimals(),
                    value
                );
                kind.label().to_string()
            }
            _ => format!("{} (n/a)", kind.label()),
        };
        let _ = writeln!(
            svg,
            r#"<text x="{center}" y="{}" text-anchor="middle">{}</text>"#,
            baseline + 18.0,
            escape(&label)
        );
    }
}

fn escape(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}
