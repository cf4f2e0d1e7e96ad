//! The NAT chart: four panels of grouped bars (connect latency and publish time per N on a log
//! scale, since they span orders of magnitude; localhost throughput; egress packet rate).

use std::fmt::Write as _;

use super::report::thousands;
use super::results::{LocalPath, NatResults, Side};
use crate::bench::chart::{self, escape, Layout, BASELINE_COLOR, FLOOR_COLOR, NETD_COLOR};

const PANEL_WIDTH: f64 = 360.0;
const PLOT_TOP: f64 = 80.0;
const PLOT_HEIGHT: f64 = 240.0;
const HEIGHT: f64 = 350.0;

/// One bar: its value (None: not measured) and colour.
struct Bar {
    value: Option<f64>,
    color: &'static str,
}

/// Bars side by side under one label.
struct Group {
    label: String,
    bars: Vec<Bar>,
}

struct Panel {
    title: &'static str,
    groups: Vec<Group>,
    log: bool,
    decimals: usize,
}

pub fn svg(nat: &NatResults, date: &str, time: &str) -> String {
    let counts = nat.port_counts();
    let side_bars = |value: &dyn Fn(Side) -> Option<f64>| {
        Side::ALL
            .iter()
            .map(|&side| Bar {
                value: value(side),
                color: side_color(side),
            })
            .collect()
    };
    let panels = [
        Panel {
            title: "new connection p50 (µs, log) by N",
            groups: counts
                .iter()
                .map(|&n| Group {
                    label: thousands(n),
                    bars: side_bars(&|side| nat.connect_p50_us(side, n)),
                })
                .collect(),
            log: true,
            decimals: 0,
        },
        Panel {
            title: "publish N ports (s, log) by N",
            groups: counts
                .iter()
                .map(|&n| Group {
                    label: thousands(n),
                    bars: side_bars(&|side| nat.publish_s(side, n)),
                })
                .collect(),
            log: true,
            decimals: 3,
        },
        Panel {
            title: "localhost TCP (Gbit/s)",
            groups: LocalPath::ALL
                .iter()
                .map(|&path| Group {
                    label: path.short().to_string(),
                    bars: vec![Bar {
                        value: nat.local_gbps(path),
                        color: local_color(path),
                    }],
                })
                .collect(),
            log: false,
            decimals: 2,
        },
        Panel {
            title: "egress UDP 64 B (kpps)",
            groups: Side::ALL
                .iter()
                .map(|&side| Group {
                    label: side.label().to_string(),
                    bars: vec![Bar {
                        value: nat.egress_kpps(side),
                        color: side_color(side),
                    }],
                })
                .collect(),
            log: false,
            decimals: 0,
        },
    ];
    let title = format!(
        "netd NAT vs. bridge+iptables / docker-proxy, {date} {time} UTC (medians; lower is better \
         for latency and publish time)"
    );
    let layout = Layout {
        panel_width: PANEL_WIDTH,
        height: HEIGHT,
        legend: &[
            ("bridge+iptables / docker-proxy", BASELINE_COLOR),
            ("netd", NETD_COLOR),
            ("direct (floor)", FLOOR_COLOR),
        ],
    };
    chart::side_by_side(&title, &layout, &panels, draw)
}

fn side_color(side: Side) -> &'static str {
    match side {
        Side::Iptables => BASELINE_COLOR,
        Side::Netd => NETD_COLOR,
    }
}

fn local_color(path: LocalPath) -> &'static str {
    match path {
        LocalPath::DockerProxy => BASELINE_COLOR,
        LocalPath::NetdHook => NETD_COLOR,
        LocalPath::DirectBridge | LocalPath::DirectNetd => FLOOR_COLOR,
    }
}

fn draw(svg: &mut String, panel: &Panel, left: f64) {
    let baseline = PLOT_TOP + PLOT_HEIGHT;
    let values: Vec<f64> = panel
        .groups
        .iter()
        .flat_map(|g| g.bars.iter().filter_map(|b| b.value))
        .filter(|v| *v > 0.0)
        .collect();
    let max = values.iter().copied().fold(0.0, f64::max);
    // Log panels start one decade below the smallest value, so every bar is visible.
    let floor = values
        .iter()
        .copied()
        .fold(f64::INFINITY, f64::min)
        .log10()
        .floor()
        - 1.0;
    let height_of = |value: f64| -> f64 {
        if max <= 0.0 || value <= 0.0 {
            return 0.0;
        }
        let fraction = if panel.log {
            (value.log10() - floor) / (max.log10() - floor).max(1e-9)
        } else {
            value / max
        };
        fraction * (PLOT_HEIGHT - 20.0)
    };
    chart::panel_title(svg, left + PANEL_WIDTH / 2.0, PLOT_TOP - 10.0, panel.title);
    chart::axis(svg, left + 15.0, left + PANEL_WIDTH - 15.0, baseline);
    let slot = (PANEL_WIDTH - 30.0) / panel.groups.len().max(1) as f64;
    for (g, group) in panel.groups.iter().enumerate() {
        let center = left + 15.0 + slot * (g as f64 + 0.5);
        let bar_width = (slot * 0.8 / group.bars.len().max(1) as f64).min(50.0);
        let first = center - bar_width * group.bars.len() as f64 / 2.0;
        for (b, bar) in group.bars.iter().enumerate() {
            let x = first + bar_width * b as f64;
            let mid = x + bar_width / 2.0;
            match bar.value {
                Some(value) => {
                    let h = height_of(value);
                    let _ = writeln!(
                        svg,
                        r#"<rect x="{x}" y="{}" width="{}" height="{h}" fill="{}"/>"#,
                        baseline - h,
                        bar_width - 2.0,
                        bar.color
                    );
                    let _ = writeln!(
                        svg,
                        r#"<text x="{mid}" y="{}" text-anchor="middle" font-size="10">{:.*}</text>"#,
                        baseline - h - 4.0,
                        panel.decimals,
                        value
                    );
                }
                None => {
                    let _ = writeln!(
                        svg,
                        r#"<text x="{mid}" y="{}" text-anchor="middle" font-size="10">n/a</text>"#,
                        baseline - 4.0
                    );
                }
            }
        }
        let _ = writeln!(
            svg,
            r#"<text x="{center}" y="{}" text-anchor="middle" font-size="11">{}</text>"#,
            baseline + 16.0,
            escape(&group.label)
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn draws_measured_bars_and_marks_the_rest() {
        let mut nat = NatResults::new(&[1, 10_000], 10, 2);
        let run = nat.scale_mut(Side::Iptables, 10_000);
        run.connect_p50_us.push(230.0);
        run.publish_s.push(0.17);
        nat.egress_mut(Side::Netd).udp_pps.push(150_000.0);
        let svg = svg(&nat, "2026-01-01", "00:00");
        assert!(svg.starts_with("<svg") && svg.ends_with("</svg>\n"));
        assert!(svg.contains(">230<") && svg.contains(">0.170<") && svg.contains(">150<"));
        assert!(svg.contains(">n/a<"));
        assert!(svg.contains(">10,000<"));
    }
}
