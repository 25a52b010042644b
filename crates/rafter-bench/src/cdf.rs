//! Cumulative distributions of election measurements, as the Raft paper's
//! figure 16 shows them: one curve per election timeout range, written as a
//! CSV file (for any plotting tool) and drawn as a PNG.

use std::fmt::Write as _;

use crate::png::{Canvas, Rgb};

/// One curve: a label (the timeout range, e.g. `150-300`) and its samples
/// (milliseconds, or messages, as the plot's unit says).
pub struct Series {
    pub label: String,
    pub samples: Vec<f64>,
}

impl Series {
    /// The samples in ascending order with the fraction of samples at or
    /// below each.
    pub fn points(&self) -> Vec<(f64, f64)> {
        let mut sorted = self.samples.clone();
        sorted.sort_by(f64::total_cmp);
        let count = sorted.len() as f64;
        sorted
            .into_iter()
            .enumerate()
            .map(|(index, value)| (value, (index + 1) as f64 / count))
            .collect()
    }
}

/// CSV rows `metric,range_ms,value,cumulative_fraction` for every series.
pub fn csv(metric: &str, series: &[Series]) -> String {
    let mut text = String::new();
    for curve in series {
        for (value, fraction) in curve.points() {
            let _ = writeln!(text, "{metric},{},{value:.3},{fraction:.4}", curve.label);
        }
    }
    text
}

/// Curve colours, in series order.
const COLORS: [Rgb; 6] = [
    [0x1f, 0x77, 0xb4],
    [0xd6, 0x27, 0x28],
    [0x2c, 0xa0, 0x2c],
    [0xff, 0x7f, 0x0e],
    [0x94, 0x67, 0xbd],
    [0x8c, 0x56, 0x4b],
];
const WIDTH_PX: i64 = 800;
const HEIGHT_PX: i64 = 500;
const LEFT_PX: i64 = 70;
const RIGHT_PX: i64 = 30;
const TOP_PX: i64 = 20;
const BOTTOM_PX: i64 = 50;
const FONT_SCALE: i64 = 3;
const BLACK: Rgb = [0, 0, 0];
const GRID: Rgb = [0xdd, 0xdd, 0xdd];

/// A tick spacing of 1, 2 or 5 times a power of ten giving at most ~8 ticks.
fn tick_step(max: f64) -> f64 {
    let rough = max / 8.0;
    let power = 10f64.powf(rough.log10().floor());
    [1.0, 2.0, 5.0, 10.0]
        .into_iter()
        .map(|m| m * power)
        .find(|step| *step >= rough)
        .unwrap_or(10.0 * power)
}

/// The CDF plot: the samples on the x axis (labelled `x_unit`), cumulative
/// percent on the y axis, one coloured staircase per series with a legend
/// of the ranges in the lower right.
pub fn plot_png(series: &[Series], x_unit: &str) -> Vec<u8> {
    let mut canvas = Canvas::new(WIDTH_PX as usize, HEIGHT_PX as usize, [255, 255, 255]);
    let plot_width = WIDTH_PX - LEFT_PX - RIGHT_PX;
    let plot_height = HEIGHT_PX - TOP_PX - BOTTOM_PX;
    let max_value = series
        .iter()
        .flat_map(|s| s.samples.iter().copied())
        .fold(1.0, f64::max);
    let step = tick_step(max_value);
    let x_max = (max_value / step).ceil() * step;
    let x_px = |value: f64| LEFT_PX + (value / x_max * plot_width as f64).round() as i64;
    let y_px =
        |fraction: f64| TOP_PX + plot_height - (fraction * plot_height as f64).round() as i64;
    let bottom = TOP_PX + plot_height;

    let mut tick = 0.0;
    while tick <= x_max + step / 2.0 {
        let x = x_px(tick);
        canvas.line((x, TOP_PX), (x, bottom), 1, GRID);
        let label = format!("{tick}");
        let half = Canvas::text_width_px(&label, FONT_SCALE) / 2;
        canvas.text(x - half, bottom + 8, &label, FONT_SCALE, BLACK);
        tick += step;
    }
    let unit_x = WIDTH_PX - RIGHT_PX - Canvas::text_width_px(x_unit, FONT_SCALE);
    canvas.text(unit_x, bottom + 30, x_unit, FONT_SCALE, BLACK);
    for percent in [0, 25, 50, 75, 100] {
        let y = y_px(f64::from(percent) / 100.0);
        canvas.line((LEFT_PX, y), (LEFT_PX + plot_width, y), 1, GRID);
        let label = format!("{percent}%");
        let width = Canvas::text_width_px(&label, FONT_SCALE);
        canvas.text(LEFT_PX - 8 - width, y - 7, &label, FONT_SCALE, BLACK);
    }
    canvas.line((LEFT_PX, TOP_PX), (LEFT_PX, bottom), 2, BLACK);
    canvas.line((LEFT_PX, bottom), (LEFT_PX + plot_width, bottom), 2, BLACK);

    for (index, curve) in series.iter().enumerate() {
        let color = COLORS[index % COLORS.len()];
        let mut previous = (x_px(0.0), y_px(0.0));
        for (value, fraction) in curve.points() {
            let x = x_px(value);
            canvas.line(previous, (x, previous.1), 2, color);
            canvas.line((x, previous.1), (x, y_px(fraction)), 2, color);
            previous = (x, y_px(fraction));
        }
        let legend_y = bottom - 30 - (series.len() - 1 - index) as i64 * 24;
        let legend_x = LEFT_PX + plot_width - 200;
        canvas.fill_rect(legend_x, legend_y + 5, 30, 5, color);
        canvas.text(legend_x + 40, legend_y, &curve.label, FONT_SCALE, BLACK);
    }
    canvas.to_png()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn points_are_sorted_with_cumulative_fractions() {
        let series = Series {
            label: "150-300".to_string(),
            samples: vec![30.0, 10.0, 20.0, 40.0],
        };
        assert_eq!(
            series.points(),
            vec![(10.0, 0.25), (20.0, 0.5), (30.0, 0.75), (40.0, 1.0)]
        );
        assert!(csv("elected", &[series]).starts_with("elected,150-300,10.000,0.2500\n"));
    }

    #[test]
    fn tick_steps_are_round() {
        assert_eq!(tick_step(400.0), 50.0);
        assert_eq!(tick_step(80.0), 10.0);
        assert_eq!(tick_step(1500.0), 200.0);
    }

    #[test]
    fn plots_to_a_png() {
        let series = [Series {
            label: "150-300".to_string(),
            samples: vec![180.0, 210.0, 260.0],
        }];
        assert_eq!(&plot_png(&series, "ms")[1..4], b"PNG");
    }
}
