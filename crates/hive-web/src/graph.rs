//! A workflow's graph as the page draws it: an SVG the server lays out, no script. The DAG is
//! cut in layers by the longest path from the input node (so every edge points down), each
//! layer a row of boxes (labelled with the node's id and type) centred under the widest,
//! ordered to follow their predecessors; edges are curves from a box's bottom to the next
//! one's top, labelled with their `when`.

use hive_core::workflows::definition::Definition;
use std::collections::HashMap;

/// A box's size and the gaps between them, in SVG units (the picture scales to the page).
pub const BOX_WIDTH: u32 = 168;
pub const BOX_HEIGHT: u32 = 48;
pub const GAP_X: u32 = 32;
/// Room between two rows for the arrows and their labels.
pub const GAP_Y: u32 = 64;
pub const MARGIN: u32 = 16;
/// Characters of an id a box shows; a longer one is cut with an ellipsis (its whole id is
/// in the box's tooltip and in the list of edges beside the picture).
pub const ID_CHARS: usize = 20;

/// The laid-out picture.
#[derive(Debug, Clone, PartialEq)]
pub struct Graph {
    pub width: u32,
    pub height: u32,
    pub boxes: Vec<NodeBox>,
    pub arrows: Vec<Arrow>,
}

/// One node's box.
#[derive(Debug, Clone, PartialEq)]
pub struct NodeBox {
    pub id: String,
    /// The id as the box shows it (cut when long).
    pub label: String,
    pub kind: &'static str,
    /// Its row: the longest path from the input node.
    pub layer: usize,
    pub x: u32,
    pub y: u32,
}

impl NodeBox {
    /// Where its id is written (centred), and its type below.
    pub fn width(&self) -> u32 {
        BOX_WIDTH
    }

    pub fn height(&self) -> u32 {
        BOX_HEIGHT
    }

    pub fn text_x(&self) -> u32 {
        self.x + BOX_WIDTH / 2
    }

    pub fn id_y(&self) -> u32 {
        self.y + 20
    }

    pub fn kind_y(&self) -> u32 {
        self.y + 38
    }
}

/// One edge: an SVG path, and its label's place when it has one.
#[derive(Debug, Clone, PartialEq)]
pub struct Arrow {
    pub from: String,
    pub to: String,
    /// The `d` of its path.
    pub path: String,
    pub label: Option<Label>,
}

/// An edge's `when`, written on a small plate in the middle of the edge.
#[derive(Debug, Clone, PartialEq)]
pub struct Label {
    pub text: String,
    /// The text's centre.
    pub x: u32,
    pub y: u32,
    /// The plate behind it.
    pub plate_x: u32,
    pub plate_y: u32,
    pub plate_width: u32,
    pub plate_height: u32,
}

impl Label {
    /// Whether the two plates overlap.
    pub fn covers(&self, other: &Label) -> bool {
        self.plate_x < other.plate_x + other.plate_width
            && other.plate_x < self.plate_x + self.plate_width
            && self.plate_y < other.plate_y + other.plate_height
            && other.plate_y < self.plate_y + self.plate_height
    }
}

/// A label's plate's height.
pub const LABEL_HEIGHT: u32 = 18;

/// A node as the layout reads it.
pub struct Node<'a> {
    pub id: &'a str,
    pub kind: &'static str,
    pub input: bool,
}

/// An edge as the layout reads it.
pub struct Edge<'a> {
    pub from: &'a str,
    pub to: &'a str,
    pub when: Option<&'a str>,
}

/// The picture of a checked document.
pub fn of(definition: &Definition) -> Graph {
    let nodes: Vec<Node<'_>> = definition
        .nodes
        .iter()
        .map(|node| Node {
            id: &node.id,
            kind: node.kind.type_name(),
            input: node.kind.type_name() == "input",
        })
        .collect();
    let edges: Vec<Edge<'_>> = definition
        .edges
        .iter()
        .map(|edge| Edge {
            from: &edge.from,
            to: &edge.to,
            when: edge.when.as_deref(),
        })
        .collect();
    layout(&nodes, &edges)
}

/// Each node's layer: the longest path to it from the input node (from any node without an
/// edge into it, for a graph that has other sources). A node on a cycle (a checked document
/// has none) goes below the rest.
pub fn layers(nodes: &[Node<'_>], edges: &[Edge<'_>]) -> Vec<usize> {
    let index: HashMap<&str, usize> = nodes.iter().enumerate().map(|(i, n)| (n.id, i)).collect();
    let links: Vec<(usize, usize)> = edges
        .iter()
        .filter_map(|edge| Some((*index.get(edge.from)?, *index.get(edge.to)?)))
        .collect();
    let mut incoming = vec![0usize; nodes.len()];
    for &(_, to) in &links {
        incoming[to] += 1;
    }
    let mut layer = vec![0usize; nodes.len()];
    let mut done = vec![false; nodes.len()];
    // Kahn's order, the input node first.
    let mut ready: Vec<usize> = (0..nodes.len()).filter(|&i| incoming[i] == 0).collect();
    ready.sort_by_key(|&i| (!nodes[i].input, i));
    ready.reverse();
    while let Some(node) = ready.pop() {
        done[node] = true;
        for &(from, to) in &links {
            if from != node {
                continue;
            }
            layer[to] = layer[to].max(layer[node] + 1);
            incoming[to] -= 1;
            if incoming[to] == 0 {
                ready.push(to);
            }
        }
    }
    let below = (0..nodes.len())
        .filter(|&i| done[i])
        .map(|i| layer[i] + 1)
        .max()
        .unwrap_or(0);
    for (i, done) in done.into_iter().enumerate() {
        if !done {
            layer[i] = below;
        }
    }
    layer
}

/// Lays the nodes out in rows by [`layers`], and draws the edges between them. An edge that
/// skips rows passes through a free place in each row between its ends (a place as wide as a
/// box, kept empty), so that it never crosses a box.
pub fn layout(nodes: &[Node<'_>], edges: &[Edge<'_>]) -> Graph {
    let mut layer = layers(nodes, edges);
    let rows = layer.iter().copied().max().map_or(0, |max| max + 1);
    let index: HashMap<&str, usize> = nodes.iter().enumerate().map(|(i, n)| (n.id, i)).collect();
    // Each edge as the places it goes through: its source, a free place in each row it
    // passes (numbered after the nodes), its target.
    let mut chains: Vec<(Vec<usize>, &Edge<'_>)> = Vec::new();
    for edge in edges {
        let (Some(&from), Some(&to)) = (index.get(edge.from), index.get(edge.to)) else {
            continue;
        };
        let mut chain = vec![from];
        for row in layer[from] + 1..layer[to] {
            chain.push(layer.len());
            layer.push(row);
        }
        chain.push(to);
        chains.push((chain, edge));
    }
    let links: Vec<(usize, usize)> = chains
        .iter()
        .flat_map(|(chain, _)| chain.windows(2).map(|pair| (pair[0], pair[1])))
        .collect();
    // Each row in document order first, then by where its predecessors stand (the mean of
    // their places in the rows above): fewer edges cross.
    let places = layer.len();
    let mut place: Vec<f64> = vec![0.0; places];
    let mut row_of: Vec<Vec<usize>> = vec![Vec::new(); rows];
    for (i, &l) in layer.iter().enumerate() {
        row_of[l].push(i);
    }
    for row in &mut row_of {
        let mut keyed: Vec<(f64, usize)> = row
            .iter()
            .map(|&item| {
                let before: Vec<f64> = links
                    .iter()
                    .filter(|&&(from, to)| to == item && layer[from] < layer[item])
                    .map(|&(from, _)| place[from])
                    .collect();
                let key = if before.is_empty() {
                    item as f64
                } else {
                    before.iter().sum::<f64>() / before.len() as f64
                };
                (key, item)
            })
            .collect();
        keyed.sort_by(|a, b| a.0.total_cmp(&b.0).then(a.1.cmp(&b.1)));
        *row = keyed.into_iter().map(|(_, item)| item).collect();
        // A row's places are spread over the same span as the widest row's, so that the
        // mean of a node's predecessors compares across rows.
        let count = row.len() as f64;
        for (i, &item) in row.iter().enumerate() {
            place[item] = (i as f64 + 0.5) / count;
        }
    }
    let widest = row_of.iter().map(Vec::len).max().unwrap_or(0) as u32;
    let row_width = |count: u32| count * BOX_WIDTH + count.saturating_sub(1) * GAP_X;
    let width = 2 * MARGIN + row_width(widest).max(BOX_WIDTH);
    let height = 2 * MARGIN + rows as u32 * BOX_HEIGHT + (rows as u32).saturating_sub(1) * GAP_Y;
    let mut at: Vec<(u32, u32)> = vec![(0, 0); places];
    for (l, row) in row_of.iter().enumerate() {
        let left = MARGIN + (row_width(widest) - row_width(row.len() as u32)) / 2;
        for (i, &item) in row.iter().enumerate() {
            at[item] = (
                left + i as u32 * (BOX_WIDTH + GAP_X),
                MARGIN + l as u32 * (BOX_HEIGHT + GAP_Y),
            );
        }
    }
    let boxes = nodes
        .iter()
        .enumerate()
        .map(|(i, node)| NodeBox {
            id: node.id.to_owned(),
            label: cut(node.id, ID_CHARS),
            kind: node.kind,
            layer: layer[i],
            x: at[i].0,
            y: at[i].1,
        })
        .collect();
    Graph {
        width,
        height,
        boxes,
        arrows: arrows(&chains, &at),
    }
}

/// The edges: each leaves its source's bottom and enters its target's top (through the
/// middle of the free places it passes), the ends of a box's several edges spread along its
/// side in the order of where they go.
fn arrows(chains: &[(Vec<usize>, &Edge<'_>)], at: &[(u32, u32)]) -> Vec<Arrow> {
    // An edge's slot among the edges that leave its source (`first`) or enter its target,
    // ordered by where their next (or previous) place stands; and how many parts the side
    // is cut in.
    let slot = |mine: usize, first: bool| {
        let ends = |i: usize| {
            let chain = &chains[i].0;
            if first {
                (chain[0], chain[1])
            } else {
                (chain[chain.len() - 1], chain[chain.len() - 2])
            }
        };
        let mut peers: Vec<usize> = (0..chains.len())
            .filter(|&i| ends(i).0 == ends(mine).0)
            .collect();
        peers.sort_by_key(|&i| (at[ends(i).1].0, i));
        let position = peers.iter().position(|&i| i == mine).unwrap_or(0);
        (position as u32 + 1, peers.len() as u32 + 1)
    };
    let mut placed: Vec<Label> = Vec::new();
    chains
        .iter()
        .enumerate()
        .map(|(i, (chain, edge))| {
            let (from, to) = (chain[0], chain[chain.len() - 1]);
            let (out_slot, out_parts) = slot(i, true);
            let (in_slot, in_parts) = slot(i, false);
            // Where it leaves, the top and bottom of each free place it passes, where it ends.
            let mut points = vec![(
                f64::from(at[from].0 + BOX_WIDTH * out_slot / out_parts),
                f64::from(at[from].1 + BOX_HEIGHT),
            )];
            for &free in &chain[1..chain.len() - 1] {
                let x = f64::from(at[free].0 + BOX_WIDTH / 2);
                points.push((x, f64::from(at[free].1)));
                points.push((x, f64::from(at[free].1 + BOX_HEIGHT)));
            }
            points.push((
                f64::from(at[to].0 + BOX_WIDTH * in_slot / in_parts),
                f64::from(at[to].1),
            ));
            // Curves across the gaps between rows, straight down through the free places.
            let curves: Vec<Curve> = points
                .chunks(2)
                .map(|pair| Curve::between(pair[0], pair[1]))
                .collect();
            let mut path = String::new();
            for (n, curve) in curves.iter().enumerate() {
                path.push_str(&curve.path(n == 0));
                path.push(' ');
            }
            let label = edge.when.map(|when| {
                let label = Curve::label(&curves[0], cut(when, ID_CHARS), &placed);
                placed.push(label.clone());
                label
            });
            Arrow {
                from: edge.from.to_owned(),
                to: edge.to.to_owned(),
                path: path.trim_end().to_owned(),
                label,
            }
        })
        .collect()
}

/// A cubic curve that leaves straight down and arrives straight down.
struct Curve {
    points: [(f64, f64); 4],
}

impl Curve {
    fn between(start: (f64, f64), end: (f64, f64)) -> Self {
        let bend = ((end.1 - start.1) / 2.0).max(0.0);
        Self {
            points: [start, (start.0, start.1 + bend), (end.0, end.1 - bend), end],
        }
    }

    fn at(&self, t: f64) -> (f64, f64) {
        let [p0, p1, p2, p3] = self.points;
        let u = 1.0 - t;
        let mix = |a: f64, b: f64, c: f64, d: f64| {
            u * u * u * a + 3.0 * u * u * t * b + 3.0 * u * t * t * c + t * t * t * d
        };
        (mix(p0.0, p1.0, p2.0, p3.0), mix(p0.1, p1.1, p2.1, p3.1))
    }

    /// The point of the curve at `depth` below its start (the curve only goes down).
    fn at_depth(&self, depth: f64) -> (f64, f64) {
        let target = self.points[0].1 + depth;
        let (mut low, mut high) = (0.0, 1.0);
        for _ in 0..40 {
            let middle = (low + high) / 2.0;
            if self.at(middle).1 < target {
                low = middle;
            } else {
                high = middle;
            }
        }
        self.at((low + high) / 2.0)
    }

    /// Its label: on the curve, in the gap under its source (so never over a box of a row
    /// it passes), halfway down unless a label placed before is there, then higher or lower.
    fn label(&self, text: String, placed: &[Label]) -> Label {
        let plate_width = text.chars().count() as u32 * 7 + 10;
        let plate_height = LABEL_HEIGHT;
        let gap = f64::from(GAP_Y);
        let at = |depth: f64| {
            let (x, y) = self.at_depth(depth);
            let (x, y) = (x.round() as u32, y.round() as u32);
            Label {
                x,
                y,
                plate_x: x.saturating_sub(plate_width / 2),
                plate_y: y.saturating_sub(plate_height / 2),
                plate_width,
                plate_height,
                text: text.clone(),
            }
        };
        let half = f64::from(LABEL_HEIGHT) / 2.0 + 1.0;
        [gap / 2.0, half, gap - half]
            .into_iter()
            .map(at)
            .find(|label| !placed.iter().any(|other| label.covers(other)))
            .unwrap_or_else(|| at(gap / 2.0))
    }

    /// Its part of a path: from its start (`M`, a path's first part) or on from where the
    /// path is (`L`, a straight line down through a free place).
    fn path(&self, first: bool) -> String {
        let [p0, p1, p2, p3] = self
            .points
            .map(|(x, y)| (x.round() as i64, y.round() as i64));
        format!(
            "{} {} {} C {} {} {} {} {} {}",
            if first { "M" } else { "L" },
            p0.0,
            p0.1,
            p1.0,
            p1.1,
            p2.0,
            p2.1,
            p3.0,
            p3.1
        )
    }
}

/// `text` cut to `chars` characters, the last of them an ellipsis when it was longer.
fn cut(text: &str, chars: usize) -> String {
    if text.chars().count() <= chars {
        return text.to_owned();
    }
    let mut short: String = text.chars().take(chars.saturating_sub(1)).collect();
    short.push('…');
    short
}

#[cfg(test)]
mod tests {
    use super::*;

    fn node<'a>(id: &'a str, kind: &'static str) -> Node<'a> {
        Node {
            id,
            kind,
            input: kind == "input",
        }
    }

    fn edge<'a>(from: &'a str, to: &'a str) -> Edge<'a> {
        Edge {
            from,
            to,
            when: None,
        }
    }

    fn when<'a>(from: &'a str, to: &'a str, label: &'a str) -> Edge<'a> {
        Edge {
            from,
            to,
            when: Some(label),
        }
    }

    fn layer_of(graph: &Graph, id: &str) -> usize {
        graph.boxes.iter().find(|b| b.id == id).unwrap().layer
    }

    fn boxed<'g>(graph: &'g Graph, id: &str) -> &'g NodeBox {
        graph.boxes.iter().find(|b| b.id == id).unwrap()
    }

    #[test]
    fn layers_are_the_longest_path_from_the_input_node() {
        // Written out of order: the input node is not first, and `done` is reached both
        // directly and through two steps.
        let nodes = [
            node("done", "output"),
            node("b", "transform"),
            node("start", "input"),
            node("a", "agent"),
        ];
        let edges = [
            edge("start", "a"),
            edge("a", "b"),
            edge("b", "done"),
            edge("start", "done"),
        ];
        let graph = layout(&nodes, &edges);
        assert_eq!(layer_of(&graph, "start"), 0);
        assert_eq!(layer_of(&graph, "a"), 1);
        assert_eq!(layer_of(&graph, "b"), 2);
        assert_eq!(layer_of(&graph, "done"), 3);
        // Rows go down the picture, one per layer, and every edge points down.
        for b in &graph.boxes {
            assert_eq!(b.y, MARGIN + b.layer as u32 * (BOX_HEIGHT + GAP_Y));
        }
        for arrow in &graph.arrows {
            assert!(layer_of(&graph, &arrow.from) < layer_of(&graph, &arrow.to));
        }
        assert_eq!(
            graph.height,
            2 * MARGIN + 4 * BOX_HEIGHT + 3 * GAP_Y,
            "four rows"
        );
    }

    #[test]
    fn a_node_on_a_cycle_goes_below_the_rest() {
        let nodes = [
            node("start", "input"),
            node("a", "transform"),
            node("b", "transform"),
        ];
        let edges = [edge("start", "a"), edge("a", "b"), edge("b", "a")];
        let graph = layout(&nodes, &edges);
        assert_eq!(layer_of(&graph, "start"), 0);
        assert_eq!(layer_of(&graph, "a"), 1);
        assert_eq!(layer_of(&graph, "b"), 1);
    }

    #[test]
    fn boxes_never_overlap_and_stay_in_the_picture() {
        // A fan of seven branches joined again, and a long chain beside it.
        let branches: Vec<String> = (0..7).map(|i| format!("branch-{i}")).collect();
        let mut nodes = vec![
            node("start", "input"),
            node("fan", "parallel"),
            node("both", "join"),
        ];
        let mut edges = vec![edge("start", "fan")];
        for branch in &branches {
            nodes.push(node(branch, "http"));
            edges.push(edge("fan", branch));
            edges.push(edge(branch, "both"));
        }
        nodes.push(node("side", "transform"));
        edges.push(edge("start", "side"));
        let graph = layout(&nodes, &edges);
        assert_eq!(graph.boxes.len(), nodes.len(), "one box a node");
        for (i, a) in graph.boxes.iter().enumerate() {
            assert!(
                a.x >= MARGIN && a.x + BOX_WIDTH + MARGIN <= graph.width,
                "{a:?}"
            );
            assert!(
                a.y >= MARGIN && a.y + BOX_HEIGHT + MARGIN <= graph.height,
                "{a:?}"
            );
            for b in &graph.boxes[i + 1..] {
                let apart_x = a.x + BOX_WIDTH + GAP_X <= b.x || b.x + BOX_WIDTH + GAP_X <= a.x;
                let apart_y = a.y + BOX_HEIGHT <= b.y || b.y + BOX_HEIGHT <= a.y;
                assert!(apart_x || apart_y, "{a:?} overlaps {b:?}");
            }
        }
        // The widest row (the seven branches) sets the width; narrower rows are centred.
        assert_eq!(layer_of(&graph, "side"), 1);
        assert_eq!(graph.width, 2 * MARGIN + 7 * BOX_WIDTH + 6 * GAP_X);
        let start = boxed(&graph, "start");
        assert_eq!(start.x + BOX_WIDTH / 2, graph.width / 2);
        // The fan's branches leave its bottom at distinct points, in the order of their boxes.
        let mut leaving: Vec<(u32, u32)> = graph
            .arrows
            .iter()
            .filter(|a| a.from == "fan")
            .map(|a| {
                let x: u32 = a.path.split(' ').nth(1).unwrap().parse().unwrap();
                (boxed(&graph, &a.to).x, x)
            })
            .collect();
        leaving.sort();
        assert!(leaving.windows(2).all(|w| w[0].1 < w[1].1), "{leaving:?}");
    }

    #[test]
    fn edges_carry_their_when_labels_between_the_rows() {
        let nodes = [
            node("start", "input"),
            node("big", "condition"),
            node("review", "approval"),
            node("auto", "transform"),
            node("done", "join"),
        ];
        let edges = [
            edge("start", "big"),
            when("big", "review", "true"),
            when("big", "auto", "false"),
            edge("review", "done"),
            // Skips a row: its label stays in the gap under its source.
            when("big", "done", "a-label-longer-than-twenty-characters"),
        ];
        let graph = layout(&nodes, &edges);
        let labels: Vec<(&str, &str, &Label)> = graph
            .arrows
            .iter()
            .filter_map(|a| Some((a.from.as_str(), a.to.as_str(), a.label.as_ref()?)))
            .collect();
        assert_eq!(labels.len(), 3);
        assert!(
            graph
                .arrows
                .iter()
                .filter(|a| a.from != "big")
                .all(|a| a.label.is_none())
        );
        let texts: Vec<&str> = labels.iter().map(|(_, _, l)| l.text.as_str()).collect();
        assert_eq!(texts, ["true", "false", "a-label-longer-than…"]);
        let source = boxed(&graph, "big");
        for (_, to, label) in &labels {
            let below_source = source.y + BOX_HEIGHT;
            assert!(
                label.plate_y >= below_source
                    && label.plate_y + label.plate_height <= below_source + GAP_Y,
                "the label to {to} is in the gap under its source: {label:?}"
            );
            assert!(label.plate_x <= label.x && label.x <= label.plate_x + label.plate_width);
            assert!(label.plate_width >= label.text.chars().count() as u32 * 7);
        }
        // The labels of one node's edges do not cover each other.
        for (i, (_, _, a)) in labels.iter().enumerate() {
            for (_, _, b) in &labels[i + 1..] {
                let apart = a.plate_x + a.plate_width <= b.plate_x
                    || b.plate_x + b.plate_width <= a.plate_x
                    || a.plate_y + a.plate_height <= b.plate_y
                    || b.plate_y + b.plate_height <= a.plate_y;
                assert!(apart, "{a:?} covers {b:?}");
            }
        }
        // The true branch is drawn left of the false one, as the edges are written.
        assert!(boxed(&graph, "review").x < boxed(&graph, "auto").x);
    }

    /// Points along an arrow's path (its curves sampled, their ends left out).
    fn along(path: &str) -> Vec<(f64, f64)> {
        let words: Vec<&str> = path.split(' ').collect();
        let mut points = Vec::new();
        for part in words.chunks(10) {
            assert!(matches!(part[0], "M" | "L") && part[3] == "C", "{path}");
            let n: Vec<f64> = part[1..].iter().filter_map(|w| w.parse().ok()).collect();
            let curve = Curve {
                points: [(n[0], n[1]), (n[2], n[3]), (n[4], n[5]), (n[6], n[7])],
            };
            assert_eq!(curve.points[1].0, n[0], "leaves straight down");
            points.extend((1..20).map(|step| curve.at(f64::from(step) / 20.0)));
        }
        points
    }

    #[test]
    fn an_edge_that_skips_rows_never_crosses_a_box() {
        // `auto` goes straight to `done`, past the two rows of the long branch.
        let nodes = [
            node("start", "input"),
            node("big", "condition"),
            node("wait", "delay"),
            node("ask", "approval"),
            node("auto", "transform"),
            node("done", "output"),
        ];
        let edges = [
            edge("start", "big"),
            when("big", "wait", "true"),
            when("big", "auto", "false"),
            edge("wait", "ask"),
            edge("ask", "done"),
            edge("auto", "done"),
            edge("start", "done"),
        ];
        let graph = layout(&nodes, &edges);
        assert_eq!(layer_of(&graph, "done"), 4);
        for arrow in &graph.arrows {
            for (x, y) in along(&arrow.path) {
                for b in &graph.boxes {
                    let inside = x > f64::from(b.x)
                        && x < f64::from(b.x + BOX_WIDTH)
                        && y > f64::from(b.y)
                        && y < f64::from(b.y + BOX_HEIGHT);
                    assert!(
                        !inside,
                        "{} → {} crosses {}: {}",
                        arrow.from, arrow.to, b.id, arrow.path
                    );
                }
            }
        }
        // The edge from `start` passes three rows: a free place in each, so the rows of
        // the long branch are as wide as three boxes.
        let long = graph
            .arrows
            .iter()
            .find(|a| a.from == "start" && a.to == "done")
            .unwrap();
        assert_eq!(long.path.matches(" L ").count(), 3, "{}", long.path);
        assert_eq!(graph.width, 2 * MARGIN + 3 * BOX_WIDTH + 2 * GAP_X);
    }

    #[test]
    fn a_document_is_drawn_with_its_ids_and_types() {
        let definition = Definition::parse(
            r#"{"name": "drawn", "nodes": [
                {"id": "start", "type": "input"},
                {"id": "a-very-long-node-identifier-indeed", "type": "transform", "value": 1},
                {"id": "done", "type": "output", "value": 2}],
              "edges": [{"from": "start", "to": "a-very-long-node-identifier-indeed"},
                {"from": "a-very-long-node-identifier-indeed", "to": "done"}]}"#,
        )
        .unwrap();
        let graph = of(&definition);
        let drawn: Vec<(&str, &str, usize)> = graph
            .boxes
            .iter()
            .map(|b| (b.label.as_str(), b.kind, b.layer))
            .collect();
        assert_eq!(
            drawn,
            [
                ("start", "input", 0),
                ("a-very-long-node-id…", "transform", 1),
                ("done", "output", 2)
            ]
        );
        assert_eq!(graph.boxes[1].id, "a-very-long-node-identifier-indeed");
        assert_eq!(graph.arrows.len(), 2);
        assert_eq!(graph.arrows[0].path, "M 100 64 C 100 96 100 96 100 128");
    }
}
