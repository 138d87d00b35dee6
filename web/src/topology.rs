//! The topology graph's geometry, computed server-side: clusters on a circle, flows as curved
//! arrows between them (the two directions of an active/active pair bend to opposite sides,
//! so both stay readable). The template only draws what is computed here.

use serde::Serialize;

use crate::views::{ClusterView, FlowView, Health};

pub const WIDTH: f64 = 860.0;
pub const HEIGHT: f64 = 520.0;
const NODE_W: f64 = 180.0;
const NODE_H: f64 = 74.0;
/// How far a flow's curve bends away from the straight line.
const BEND: f64 = 46.0;

#[derive(Debug, Clone, Serialize)]
pub struct Node {
    pub name: String,
    /// Top-left corner.
    pub x: f64,
    pub y: f64,
    pub w: f64,
    pub h: f64,
    pub label: String,
    pub detail: String,
    pub health: Health,
}

#[derive(Debug, Clone, Serialize)]
pub struct Edge {
    pub flow: String,
    pub href: String,
    /// SVG path data of the curve.
    pub path: String,
    pub label_x: f64,
    pub label_y: f64,
    pub label: String,
    pub health: Health,
}

#[derive(Debug, Clone, Serialize)]
pub struct Graph {
    pub width: f64,
    pub height: f64,
    pub nodes: Vec<Node>,
    pub edges: Vec<Edge>,
}

/// Where a ray from the centre of a node towards `(dx, dy)` leaves its rectangle.
fn border(cx: f64, cy: f64, dx: f64, dy: f64) -> (f64, f64) {
    let tx = if dx.abs() > f64::EPSILON { (NODE_W / 2.0 + 6.0) / dx.abs() } else { f64::INFINITY };
    let ty = if dy.abs() > f64::EPSILON { (NODE_H / 2.0 + 6.0) / dy.abs() } else { f64::INFINITY };
    let t = tx.min(ty);
    (cx + dx * t, cy + dy * t)
}

/// Compact numbers for labels: 950, 12.3k, 4.1M.
pub fn compact(v: f64) -> String {
    let a = v.abs();
    if a >= 1e6 {
        format!("{:.1}M", v / 1e6)
    } else if a >= 1e4 {
        format!("{:.0}k", v / 1e3)
    } else if a >= 1e3 {
        format!("{:.1}k", v / 1e3)
    } else if a >= 10.0 || v == v.trunc() {
        format!("{v:.0}")
    } else {
        format!("{v:.1}")
    }
}

/// Percent-encodes a flow name for a URL path segment (`a->b` becomes `a-%3Eb`).
pub fn encode_segment(s: &str) -> String {
    let mut out = String::new();
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

pub fn layout(clusters: &[ClusterView], flows: &[FlowView]) -> Graph {
    let n = clusters.len().max(1) as f64;
    let (cx, cy) = (WIDTH / 2.0, HEIGHT / 2.0);
    let (rx, ry) = (WIDTH / 2.0 - NODE_W / 2.0 - 20.0, HEIGHT / 2.0 - NODE_H / 2.0 - 20.0);
    let centres: Vec<(f64, f64)> = (0..clusters.len())
        .map(|i| {
            // Start at the top and go clockwise.
            let a = -std::f64::consts::FRAC_PI_2 + std::f64::consts::TAU * i as f64 / n;
            if clusters.len() == 1 {
                (cx, cy)
            } else {
                (cx + rx * a.cos(), cy + ry * a.sin())
            }
        })
        .collect();
    let nodes = clusters
        .iter()
        .zip(&centres)
        .map(|(c, (x, y))| {
            let place: Vec<&str> = [c.region.as_deref(), c.cloud.as_deref()].into_iter().flatten().collect();
            let brokers = match c.reachable {
                None => "connecting".to_string(),
                Some(false) => "unreachable".to_string(),
                Some(true) => format!("{} broker{}", c.brokers, if c.brokers == 1 { "" } else { "s" }),
            };
            Node {
                name: c.name.clone(),
                x: x - NODE_W / 2.0,
                y: y - NODE_H / 2.0,
                w: NODE_W,
                h: NODE_H,
                label: if place.is_empty() { String::new() } else { place.join(" · ") },
                detail: brokers,
                health: c.health,
            }
        })
        .collect();
    let index = |name: &str| clusters.iter().position(|c| c.name == name);
    let edges = flows
        .iter()
        .filter_map(|f| {
            let (s, t) = (index(&f.source)?, index(&f.target)?);
            let ((x1, y1), (x2, y2)) = (centres[s], centres[t]);
            let (dx, dy) = (x2 - x1, y2 - y1);
            let len = (dx * dx + dy * dy).sqrt().max(1.0);
            // Perpendicular, always to the right of the direction of travel.
            let (px, py) = (-dy / len, dx / len);
            let (mx, my) = ((x1 + x2) / 2.0 + px * BEND, (y1 + y2) / 2.0 + py * BEND);
            let (sx, sy) = border(x1, y1, mx - x1, my - y1);
            let (ex, ey) = border(x2, y2, mx - x2, my - y2);
            // The curve's midpoint (t = 0.5 on the quadratic Bézier).
            let (lx, ly) = (0.25 * sx + 0.5 * mx + 0.25 * ex, 0.25 * sy + 0.5 * my + 0.25 * ey);
            let state = match f.health {
                Health::Paused => " · paused".to_string(),
                Health::FailedOver => format!(" · {}", f.failover_state),
                Health::Error => " · error".to_string(),
                _ => String::new(),
            };
            Some(Edge {
                flow: f.name.clone(),
                href: format!("/flows/{}", encode_segment(&f.name)),
                path: format!("M {sx:.1} {sy:.1} Q {mx:.1} {my:.1} {ex:.1} {ey:.1}"),
                label_x: lx,
                label_y: ly,
                label: format!("{} rec/s · lag {}s{state}", compact(f.outlook.records_per_second), compact(f.lag_seconds)),
                health: f.health,
            })
        })
        .collect();
    Graph { width: WIDTH, height: HEIGHT, nodes, edges }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers_and_segments() {
        assert_eq!(compact(950.0), "950");
        assert_eq!(compact(12_345.0), "12k");
        assert_eq!(compact(1_234.0), "1.2k");
        assert_eq!(compact(0.25), "0.2");
        assert_eq!(compact(4_100_000.0), "4.1M");
        assert_eq!(encode_segment("us-east->eu-west"), "us-east-%3Eeu-west");
    }

    #[test]
    fn edges_leave_and_enter_at_node_borders() {
        let (x, y) = border(100.0, 100.0, 1.0, 0.0);
        assert_eq!((x, y), (100.0 + NODE_W / 2.0 + 6.0, 100.0));
        let (x, y) = border(100.0, 100.0, 0.0, -2.0);
        assert_eq!((x, y), (100.0, 100.0 - NODE_H / 2.0 - 6.0));
    }
}
