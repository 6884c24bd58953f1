//! A bar chart as the usage page draws it: an SVG the server lays out, no script. One slot a
//! day of the span (or a group: an agent, a model), a bar in each slot that has usage, its
//! height in proportion to the tallest (integer arithmetic), gridlines at zero, half and the
//! top with their values, and a few labels under the slots. Each bar carries its numbers in a
//! `<title>`; the page lists the same numbers in a table below the picture.

/// The picture's size in SVG units (it scales to the page).
pub const WIDTH: u32 = 720;
pub const HEIGHT: u32 = 260;
/// Room left of the plot for the values, under it for the labels.
const LEFT: u32 = 100;
const RIGHT: u32 = 40;
const TOP: u32 = 14;
const BOTTOM: u32 = 36;
/// Characters of a group's label under its bar (its whole name is in its tooltip).
const LABEL_CHARS: usize = 12;
/// Groups labelled one by one under their bars; more go unlabelled (the table names them).
const MAX_LABELLED: usize = 8;

/// One slot of the chart: a day or a group.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Slot {
    /// Written under the slot when it is labelled.
    pub label: String,
    /// What the bar measures (0 and no use: no bar).
    pub value: i64,
    /// Whether anything was used there: such a slot has a bar, however small.
    pub used: bool,
    /// The bar's tooltip.
    pub tooltip: String,
}

/// Which slots are labelled under the plot.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Labels {
    /// A span of days: its first, middle and last.
    Ends,
    /// Groups: each, when there are few.
    Each,
}

/// The laid-out picture.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Chart {
    pub width: u32,
    pub height: u32,
    pub plot_left: u32,
    pub plot_right: u32,
    pub bars: Vec<Bar>,
    pub grid: Vec<GridLine>,
    pub labels: Vec<AxisLabel>,
}

/// One bar.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Bar {
    pub x: u32,
    pub y: u32,
    pub width: u32,
    pub height: u32,
    pub tooltip: String,
}

/// A horizontal line at a value, written at its left.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GridLine {
    pub y: u32,
    pub text: String,
}

impl GridLine {
    /// Where its value is written (right-aligned before the plot).
    pub fn text_y(&self) -> u32 {
        self.y + 4
    }
}

/// A label under a slot.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AxisLabel {
    pub x: u32,
    pub y: u32,
    pub text: String,
}

/// The chart of `slots`, each value written by `write` on the gridlines.
pub fn draw(slots: &[Slot], labels: Labels, write: impl Fn(i64) -> String) -> Chart {
    let plot_width = WIDTH - LEFT - RIGHT;
    let plot_height = HEIGHT - TOP - BOTTOM;
    let bottom = TOP + plot_height;
    let count = u32::try_from(slots.len()).unwrap_or(u32::MAX).max(1);
    let slot = (plot_width / count).max(1);
    // A bar fills three quarters of its slot (all of a slot one unit wide).
    let bar_width = (slot * 3 / 4).max(1);
    let top = slots.iter().map(|s| s.value.max(0)).max().unwrap_or(0);
    let scaled = |value: i64| -> u32 {
        if top <= 0 {
            return 0;
        }
        let height = i128::from(value.max(0)) * i128::from(plot_height) / i128::from(top);
        u32::try_from(height).unwrap_or(plot_height)
    };
    let slot_x = |n: usize| LEFT + slot * u32::try_from(n).unwrap_or(0);
    let bars = slots
        .iter()
        .enumerate()
        .filter(|(_, s)| s.used || s.value > 0)
        .map(|(n, s)| {
            // Use too small to see still shows as a line.
            let height = scaled(s.value).max(1);
            Bar {
                x: slot_x(n) + (slot - bar_width) / 2,
                y: bottom - height,
                width: bar_width,
                height,
                tooltip: s.tooltip.clone(),
            }
        })
        .collect();
    let mut grid = vec![GridLine {
        y: bottom,
        text: write(0),
    }];
    if top > 0 {
        let half = top / 2;
        if half > 0 && half < top {
            grid.push(GridLine {
                y: bottom - scaled(half),
                text: write(half),
            });
        }
        grid.push(GridLine {
            y: bottom - scaled(top),
            text: write(top),
        });
    }
    let labelled: Vec<usize> = match labels {
        Labels::Ends if slots.is_empty() => Vec::new(),
        Labels::Ends => {
            let mut ends = vec![0, slots.len() / 2, slots.len() - 1];
            ends.dedup();
            ends
        }
        Labels::Each if slots.len() <= MAX_LABELLED => (0..slots.len()).collect(),
        Labels::Each => Vec::new(),
    };
    let labels = labelled
        .into_iter()
        .map(|n| {
            let text = &slots[n].label;
            AxisLabel {
                x: slot_x(n) + slot / 2,
                y: bottom + 18,
                text: if text.chars().count() > LABEL_CHARS {
                    let cut: String = text.chars().take(LABEL_CHARS - 1).collect();
                    format!("{cut}…")
                } else {
                    text.clone()
                },
            }
        })
        .collect();
    Chart {
        width: WIDTH,
        height: HEIGHT,
        plot_left: LEFT,
        plot_right: WIDTH - RIGHT,
        bars,
        grid,
        labels,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn slot(label: &str, value: i64, used: bool) -> Slot {
        Slot {
            label: label.to_owned(),
            value,
            used,
            tooltip: format!("{label}: {value}"),
        }
    }

    #[test]
    fn a_bar_for_each_slot_with_use_in_proportion_to_the_tallest() {
        let slots = [
            slot("2026-01-01", 100, true),
            slot("2026-01-02", 0, false),
            slot("2026-01-03", 50, true),
            slot("2026-01-04", 0, true),
        ];
        let chart = draw(&slots, Labels::Ends, |v| v.to_string());
        assert_eq!(chart.bars.len(), 3);
        let plot = HEIGHT - TOP - BOTTOM;
        assert_eq!(chart.bars[0].height, plot);
        assert_eq!(chart.bars[1].height, plot / 2);
        // Used, but nothing to measure: a line, so that the day shows.
        assert_eq!(chart.bars[2].height, 1);
        for bar in &chart.bars {
            assert_eq!(bar.y + bar.height, TOP + plot);
            assert!(bar.x >= LEFT && bar.x + bar.width <= WIDTH - RIGHT);
        }
        assert_eq!(chart.bars[1].tooltip, "2026-01-03: 50");
        let grid: Vec<&str> = chart.grid.iter().map(|g| g.text.as_str()).collect();
        assert_eq!(grid, ["0", "50", "100"]);
        let labels: Vec<&str> = chart.labels.iter().map(|l| l.text.as_str()).collect();
        assert_eq!(labels, ["2026-01-01", "2026-01-03", "2026-01-04"]);
    }

    #[test]
    fn huge_values_and_many_slots_stay_inside_the_plot() {
        let slots: Vec<Slot> = (0..366)
            .map(|n| slot(&n.to_string(), i64::MAX - n, true))
            .collect();
        let chart = draw(&slots, Labels::Ends, |v| v.to_string());
        assert_eq!(chart.bars.len(), 366);
        assert!(
            chart
                .bars
                .iter()
                .all(|b| b.width >= 1 && b.y >= TOP && b.x + b.width <= WIDTH)
        );
        let none = draw(&[], Labels::Ends, |v| v.to_string());
        assert!(none.bars.is_empty() && none.labels.is_empty());
    }

    #[test]
    fn few_groups_are_labelled_each_and_long_names_cut() {
        let slots = [
            slot("a-very-long-model-name", 3, true),
            slot("short", 1, true),
        ];
        let chart = draw(&slots, Labels::Each, |v| v.to_string());
        let labels: Vec<&str> = chart.labels.iter().map(|l| l.text.as_str()).collect();
        assert_eq!(labels, ["a-very-long…", "short"]);
        let many: Vec<Slot> = (0..9).map(|n| slot("m", n, true)).collect();
        assert!(
            draw(&many, Labels::Each, |v| v.to_string())
                .labels
                .is_empty()
        );
    }
}
