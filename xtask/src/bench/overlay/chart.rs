//! The overlay chart: the c2c chart's metric panels for the three layouts, with 95% confidence
//! whiskers, and a panel of netd's encap/decap program cost.

use super::report::{COST_CASES, PROGRAM_COST_NS};
use super::results::OverlayResults;
use crate::bench::chart::{
    self, bars_panel, Bar, Layout, BASELINE_COLOR, FLOOR_COLOR, HEIGHT, NETD_COLOR, PANELS,
    PANEL_WIDTH,
};
use crate::bench::results::Metric;

enum Panel {
    Metric(Metric),
    ProgramCost,
}

pub fn svg(overlay: &OverlayResults, date: &str, time: &str) -> String {
    let title = format!(
        "netd overlay vs. kernel vxlan + bridge across two hosts, {date} {time} UTC (medians, \
         95% CI whiskers; higher is better except RTT and cost)"
    );
    let layout = Layout {
        panel_width: PANEL_WIDTH,
        height: HEIGHT,
        legend: &[
            ("veth floor", FLOOR_COLOR),
            ("kernel vxlan + bridge", BASELINE_COLOR),
            ("netd overlay", NETD_COLOR),
        ],
    };
    let panels: Vec<Panel> = PANELS
        .iter()
        .map(|&metric| Panel::Metric(metric))
        .chain([Panel::ProgramCost])
        .collect();
    chart::side_by_side(&title, &layout, &panels, |svg, panel, left| match panel {
        Panel::Metric(metric) => {
            let interval = |kind| overlay.interval(kind, *metric);
            chart::metric_panel(svg, &overlay.topologies, *metric, interval, left);
        }
        Panel::ProgramCost => {
            let cost = |case: &str| {
                overlay
                    .prog_cost
                    .as_ref()
                    .ok()
                    .and_then(|cases| cases.iter().find(|c| c.case == case))
                    .map(|c| c.ns_per_packet)
            };
            let bars: Vec<Bar> = COST_CASES
                .iter()
                .map(|&case| Bar {
                    label: case,
                    value: cost(case),
                    interval: None,
                    color: NETD_COLOR,
                })
                .collect();
            let title = format!("eBPF ns/packet (target ≤ {PROGRAM_COST_NS})");
            bars_panel(svg, &title, &bars, 1, left);
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::bench::results::TopologyRun;
    use crate::bench::topology::Kind;

    #[test]
    fn draws_measured_bars_and_marks_the_rest() {
        let mut baseline = TopologyRun::new(Kind::VxlanBridge);
        baseline.udp_pps = vec![100e3, 110e3, 120e3];
        let overlay = OverlayResults {
            topologies: vec![baseline, TopologyRun::new(Kind::NetdOverlay)],
            prog_cost: Err("missing".to_string()),
        };
        let svg = svg(&overlay, "2026-11-23", "00:00");
        assert!(svg.starts_with("<svg") && svg.ends_with("</svg>\n"));
        assert!(svg.contains(">110<"));
        assert!(svg.contains("netd overlay (n/a)") && svg.contains("encap (n/a)"));
        assert!(svg.contains("<path d=\"M"), "a confidence whisker");
    }
}
