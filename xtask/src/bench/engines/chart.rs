//! The engines chart: start latency per case (p50 bars with a p90 tick, baseline vs. netd), and
//! the memory behind 100 published ports (docker-proxy processes vs. netd's daemon growth).

use std::fmt::Write as _;

use super::report::growth_mib;
use super::results::{Case, EnginesResults, Side};
use crate::bench::chart::{self, BarShape, Layout, BASELINE_COLOR, NETD_COLOR};
use crate::bench::stats::median;

const PANEL_WIDTH: f64 = 300.0;
const PLOT_TOP: f64 = 80.0;
const PLOT_HEIGHT: f64 = 240.0;
const HEIGHT: f64 = 370.0;
const BAR_WIDTH: f64 = 56.0;

struct Bar {
    label: &'static str,
    value: Option<f64>,
    /// A tick above the bar (p90), if any.
    tick: Option<f64>,
    color: &'static str,
}

struct Panel {
    title: &'static str,
    bars: Vec<Bar>,
    decimals: usize,
}

pub fn svg(engines: &EnginesResults, date: &str, time: &str) -> String {
    let mut panels: Vec<Panel> = Case::ALL
        .iter()
        .map(|&case| Panel {
            title: match case {
                Case::DockerRun => "docker run -d (ms)",
                Case::DockerRunPorts => "docker run -d, 100 ports (ms)",
                Case::PodmanRun => "podman run -d (ms)",
            },
            bars: Side::ALL
                .iter()
                .map(|&side| Bar {
                    label: side.label(case),
                    value: engines.p50_ms(case, side),
                    tick: engines.p90_ms(case, side),
                    color: color(side),
                })
                .collect(),
            decimals: 0,
        })
        .collect();
    panels.push(Panel {
        title: "RSS for 100 published ports (MiB)",
        bars: vec![
            Bar {
                label: "docker-proxy",
                value: median(&engines.footprint(Side::Baseline).proxy_rss_mib),
                tick: None,
                color: BASELINE_COLOR,
            },
            Bar {
                label: "netd growth",
                value: growth_mib(engines).map(|g| g.max(0.0)),
                tick: None,
                color: NETD_COLOR,
            },
        ],
        decimals: 1,
    });
    let title = format!(
        "Container start with netd vs. Docker's bridge / CNI bridge, {date} {time} UTC (bars p50, \
         ticks p90; lower is better)"
    );
    let layout = Layout {
        panel_width: PANEL_WIDTH,
        height: HEIGHT,
        legend: &[
            ("Docker bridge / podman CNI bridge", BASELINE_COLOR),
            ("netd", NETD_COLOR),
        ],
    };
    chart::side_by_side(&title, &layout, &panels, draw)
}

fn color(side: Side) -> &'static str {
    match side {
        Side::Baseline => BASELINE_COLOR,
        Side::Netd => NETD_COLOR,
    }
}

fn draw(svg: &mut String, panel: &Panel, left: f64) {
    let baseline = PLOT_TOP + PLOT_HEIGHT;
    let max = panel
        .bars
        .iter()
        .flat_map(|bar| [bar.value, bar.tick])
        .flatten()
        .fold(0.0, f64::max);
    let height_of = |value: f64| {
        if max > 0.0 {
            (value / max).max(0.0) * (PLOT_HEIGHT - 20.0)
        } else {
            0.0
        }
    };
    chart::panel_title(svg, left + PANEL_WIDTH / 2.0, PLOT_TOP - 10.0, panel.title);
    chart::axis(svg, left + 20.0, left + PANEL_WIDTH - 20.0, baseline);
    let slot = (PANEL_WIDTH - 40.0) / panel.bars.len().max(1) as f64;
    for (index, bar) in panel.bars.iter().enumerate() {
        let center = left + 20.0 + slot * (index as f64 + 0.5);
        match bar.value {
            Some(value) => {
                let h = height_of(value);
                let decimals = panel.decimals;
                let shape = BarShape {
                    center,
                    width: BAR_WIDTH,
                    height: h,
                };
                chart::bar(
                    svg,
                    &shape,
                    baseline,
                    bar.color,
                    &format!("{value:.decimals$}"),
                );
                // The p90 as a whisker along the bar's right edge, clear of the p50's label.
                if let Some(tick) = bar.tick {
                    let x = center + BAR_WIDTH / 2.0 - 6.0;
                    let y = baseline - height_of(tick);
                    let _ = writeln!(
                        svg,
                        r##"<line x1="{x}" y1="{}" x2="{x}" y2="{y}" stroke="#333"/><line x1="{}" y1="{y}" x2="{}" y2="{y}" stroke="#333"/>"##,
                        baseline - h,
                        x - 6.0,
                        x + 6.0
                    );
                    let _ = writeln!(
                        svg,
                        r#"<text x="{}" y="{}" text-anchor="start" font-size="10">p90 {:.*}</text>"#,
                        x + 8.0,
                        y + 4.0,
                        panel.decimals,
                        tick
                    );
                }
            }
            None => {
                let _ = writeln!(
                    svg,
                    r#"<text x="{center}" y="{}" text-anchor="middle">n/a</text>"#,
                    baseline - 5.0
                );
            }
        }
        chart::bar_label(svg, center, baseline, bar.label);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn draws_measured_bars_and_marks_the_rest() {
        let mut engines = EnginesResults::new(2, 100);
        engines
            .run_mut(Case::DockerRun, Side::Baseline)
            .samples_ms
            .extend([288.0, 300.0]);
        engines
            .footprint_mut(Side::Baseline)
            .proxy_rss_mib
            .push(643.0);
        let svg = svg(&engines, "2026-01-01", "00:00");
        assert!(svg.starts_with("<svg") && svg.ends_with("</svg>\n"));
        assert!(svg.contains(">288<") && svg.contains(">643.0<"));
        assert!(svg.contains(">n/a<"));
    }
}
