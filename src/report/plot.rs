//! The reports' plots as images: Avg. Len. per model with its 95 % interval, the SR@1..5
//! curves, Avg. Len. against latency, and Avg. Len. against pre-training scale. Plain axes,
//! ticks and labels in the bitmap font, the same bytes on every machine.

use super::backbones::BackboneRow;
use crate::sim::camera::Image;
use crate::sim::chains::CHAIN_LENGTH;
use crate::video::draw::{self, Rect};

/// Plot size (px).
pub const WIDTH: u32 = 720;
/// Plot size (px).
pub const HEIGHT: u32 = 440;

const BACKGROUND: [u8; 3] = [255, 255, 255];
const INK: [u8; 3] = [40, 40, 40];
const GRID: [u8; 3] = [225, 225, 225];
/// One colour per model, in row order (matplotlib's ten, repeating after them).
const PALETTE: [[u8; 3]; 10] = [
    [31, 119, 180],
    [255, 127, 14],
    [44, 160, 44],
    [214, 39, 40],
    [148, 103, 189],
    [140, 86, 75],
    [227, 119, 194],
    [127, 127, 127],
    [188, 189, 34],
    [23, 190, 207],
];
const MARGIN_LEFT: i32 = 64;
const MARGIN_RIGHT: i32 = 24;
const MARGIN_TOP: i32 = 40;
const MARGIN_BOTTOM: i32 = 56;

fn colour(index: usize) -> [u8; 3] {
    PALETTE[index % PALETTE.len()]
}

/// A blank chart: title, axes, a labelled y grid from 0 to `y_max`, and a mapping from data to pixels.
struct Chart {
    image: Image,
    x_range: (f64, f64),
    y_max: f64,
}

impl Chart {
    fn new(title: &str, y_label: &str, x_label: &str, x_range: (f64, f64), y_max: f64, y_ticks: usize) -> Chart {
        let mut image = Image::new(WIDTH, HEIGHT);
        draw::fill_rect(&mut image, Rect { x: 0, y: 0, width: WIDTH, height: HEIGHT }, BACKGROUND);
        let mut chart = Chart { image, x_range, y_max };
        let (left, right, top, bottom) = chart.area();
        for tick in 0..=y_ticks {
            let value = y_max * tick as f64 / y_ticks as f64;
            let (_, y) = chart.to_px(x_range.0, value);
            draw::draw_line(&mut chart.image, (left, y), (right, y), 1, GRID);
            let label = format!("{value:.1}");
            let x = left - 6 - draw::text_width(&label, 1) as i32;
            draw::draw_text(&mut chart.image, x, y - 4, &label, 1, INK);
        }
        draw::draw_line(&mut chart.image, (left, top), (left, bottom), 1, INK);
        draw::draw_line(&mut chart.image, (left, bottom), (right, bottom), 1, INK);
        let title_x = (left + right) / 2 - draw::text_width(title, 2) as i32 / 2;
        draw::draw_text(&mut chart.image, title_x, 10, title, 2, INK);
        draw::draw_text(&mut chart.image, 8, top - 22, y_label, 1, INK);
        let x_label_x = (left + right) / 2 - draw::text_width(x_label, 1) as i32 / 2;
        draw::draw_text(&mut chart.image, x_label_x, HEIGHT as i32 - 16, x_label, 1, INK);
        chart
    }

    /// Left, right, top and bottom of the plotting area.
    fn area(&self) -> (i32, i32, i32, i32) {
        (MARGIN_LEFT, WIDTH as i32 - MARGIN_RIGHT, MARGIN_TOP, HEIGHT as i32 - MARGIN_BOTTOM)
    }

    fn to_px(&self, x: f64, y: f64) -> (i32, i32) {
        let (left, right, top, bottom) = self.area();
        let (x0, x1) = self.x_range;
        let fx = if x1 > x0 { (x - x0) / (x1 - x0) } else { 0.5 };
        let fy = (y / self.y_max).clamp(0.0, 1.0);
        (left + (fx * f64::from(right - left)).round() as i32, bottom - (fy * f64::from(bottom - top)).round() as i32)
    }

    /// A tick at `x` with its label on text line `line` (0, or 1 to stagger labels too wide for
    /// their neighbours' room).
    fn x_tick(&mut self, x: f64, label: &str, line: i32) {
        let (px, bottom) = self.to_px(x, 0.0);
        draw::draw_line(&mut self.image, (px, bottom), (px, bottom + 4 + 12 * line), 1, INK);
        let y = bottom + 8 + 12 * line;
        draw::draw_text(&mut self.image, px - draw::text_width(label, 1) as i32 / 2, y, label, 1, INK);
    }

    fn marker(&mut self, point: (i32, i32), rgb: [u8; 3]) {
        draw::fill_rect(&mut self.image, marker_rect(point), rgb);
    }

    /// Names in their colours (the i-th in colour i), top right.
    fn legend<'a>(&mut self, names: impl Iterator<Item = &'a str> + Clone) {
        let (_, right, top, _) = self.area();
        let widest = names.clone().map(|name| draw::text_width(name, 1)).max().unwrap_or(0) as i32;
        for (i, name) in names.enumerate() {
            let y = top + 4 + 12 * i as i32;
            let x = right - widest - 16;
            draw::fill_rect(&mut self.image, Rect { x, y, width: 8, height: 8 }, colour(i));
            draw::draw_text(&mut self.image, x + 12, y, name, 1, INK);
        }
    }

    /// A vertical 95 % interval whisker around `value` at `x`.
    fn whisker(&mut self, x: f64, value: f64, half_width: f64, rgb: [u8; 3]) {
        let (px, low) = self.to_px(x, (value - half_width).max(0.0));
        let (_, high) = self.to_px(x, value + half_width);
        draw::draw_line(&mut self.image, (px, low), (px, high), 2, rgb);
        draw::draw_line(&mut self.image, (px - 6, low), (px + 6, low), 2, rgb);
        draw::draw_line(&mut self.image, (px - 6, high), (px + 6, high), 2, rgb);
    }
}

/// The square a point's marker fills.
fn marker_rect((x, y): (i32, i32)) -> Rect {
    Rect { x: x - 3, y: y - 3, width: 7, height: 7 }
}

/// Avg. Len. per model as bars with 95 % interval whiskers.
pub fn avg_len_bars(rows: &[BackboneRow]) -> Image {
    let count = rows.len().max(1) as f64;
    let mut chart = Chart::new("Avg. Len. (95 % CI)", "Avg. Len.", "model", (0.0, count), 5.0, 5);
    let (left, right, _, _) = chart.area();
    let slot = f64::from(right - left) / count;
    let crowded = rows.iter().any(|r| f64::from(draw::text_width(&r.name, 1)) > slot - 8.0);
    for (i, row) in rows.iter().enumerate() {
        let centre = i as f64 + 0.5;
        let (x, top) = chart.to_px(centre, row.metrics.avg_len);
        let (_, bottom) = chart.to_px(centre, 0.0);
        let half = (slot * 0.3) as i32;
        let bar = Rect { x: x - half, y: top, width: (2 * half) as u32, height: (bottom - top).max(0) as u32 };
        draw::fill_rect(&mut chart.image, bar, colour(i));
        if row.avg_len_ci95.is_finite() {
            chart.whisker(centre, row.metrics.avg_len, row.avg_len_ci95, INK);
        }
        let value = format!("{:.2}", row.metrics.avg_len);
        draw::draw_text(&mut chart.image, x - draw::text_width(&value, 1) as i32 / 2, top - 22, &value, 1, INK);
        chart.x_tick(centre, &row.name, if crowded { (i % 2) as i32 } else { 0 });
    }
    chart.image
}

/// SR@1..5 per model, one curve each.
pub fn success_rate_curves(rows: &[BackboneRow]) -> Image {
    let mut chart = Chart::new("SR@n: chains with n tasks done in a row", "success", "n", (0.5, 5.5), 1.0, 5);
    for n in 1..=CHAIN_LENGTH {
        chart.x_tick(n as f64, &n.to_string(), 0);
    }
    for (i, row) in rows.iter().enumerate() {
        let points: Vec<(i32, i32)> =
            row.metrics.success_rates.iter().enumerate().map(|(n, rate)| chart.to_px((n + 1) as f64, *rate)).collect();
        for pair in points.windows(2) {
            draw::draw_line(&mut chart.image, pair[0], pair[1], 2, colour(i));
        }
        for point in points {
            chart.marker(point, colour(i));
        }
    }
    chart.legend(rows.iter().map(|row| row.name.as_str()));
    chart.image
}

/// Avg. Len. against milliseconds per control step, one labelled point per model.
pub fn avg_len_against_latency(rows: &[BackboneRow]) -> Image {
    let slowest = rows.iter().map(|r| r.latency_ms).fold(0.0, f64::max);
    let x_max = (slowest * 1.15).max(1.0).ceil();
    let mut chart = Chart::new("Avg. Len. against latency", "Avg. Len.", "ms per control step", (0.0, x_max), 5.0, 5);
    for tick in 0..=4 {
        let value = x_max * f64::from(tick) / 4.0;
        chart.x_tick(value, &format!("{value:.1}"), 0);
    }
    let points: Vec<(i32, i32)> = rows.iter().map(|row| chart.to_px(row.latency_ms, row.metrics.avg_len)).collect();
    let mut taken: Vec<Rect> = points.iter().copied().map(marker_rect).collect();
    for (i, (row, &point)) in rows.iter().zip(&points).enumerate() {
        chart.marker(point, colour(i));
        let label = label_spot(point, draw::text_width(&row.name, 1), &taken);
        draw::draw_text(&mut chart.image, label.x, label.y, &row.name, 1, INK);
        taken.push(label);
    }
    chart.image
}

/// One line of [`avg_len_against_scale`]: a preset in one setting, with Avg. Len. and the
/// half-width of its 95 % interval at each scale where that run is finished.
pub struct ScaleSeries {
    pub name: String,
    pub points: Vec<Option<(f64, f64)>>,
}

/// Avg. Len. against pre-training scale, one line with interval whiskers per series; the scales
/// stand evenly spaced (they grow tenfold), each series a little apart from the others so that
/// their whiskers do not hide each other. The y axis ends at the next half above the highest
/// whisker: the study's models are far from CALVIN's 5.
pub fn avg_len_against_scale(scales: &[u64], series: &[ScaleSeries]) -> Image {
    let highest =
        series.iter().flat_map(|s| s.points.iter().flatten()).map(|(avg, half)| avg + half).fold(0.0, f64::max);
    let y_max = ((highest / 0.5).ceil() * 0.5).max(0.5);
    let x_range = (-0.5, scales.len() as f64 - 0.5);
    let mut chart = Chart::new("Avg. Len. against pre-training", "Avg. Len.", "corpus samples", x_range, y_max, 5);
    for (i, &scale) in scales.iter().enumerate() {
        chart.x_tick(i as f64, &scale_label(scale), 0);
    }
    let spread = 0.04 * (series.len().max(1) - 1) as f64;
    for (i, line) in series.iter().enumerate() {
        let offset = 0.04 * i as f64 - spread / 2.0;
        let finished: Vec<(f64, f64, f64)> = line
            .points
            .iter()
            .enumerate()
            .filter_map(|(x, point)| point.map(|(avg, half)| (x as f64 + offset, avg, half)))
            .collect();
        for pair in finished.windows(2) {
            let (from, to) = (chart.to_px(pair[0].0, pair[0].1), chart.to_px(pair[1].0, pair[1].1));
            draw::draw_line(&mut chart.image, from, to, 2, colour(i));
        }
        for &(x, avg, half) in &finished {
            chart.whisker(x, avg, half, colour(i));
            let point = chart.to_px(x, avg);
            chart.marker(point, colour(i));
        }
    }
    chart.legend(series.iter().map(|line| line.name.as_str()));
    chart.image
}

/// "none", "10k", "1M": a scale as the axis shows it.
fn scale_label(scale: u64) -> String {
    match scale {
        0 => "none".into(),
        s if s >= 1_000_000 && s % 1_000_000 == 0 => format!("{}M", s / 1_000_000),
        s if s >= 1_000 && s % 1_000 == 0 => format!("{}k", s / 1_000),
        s => s.to_string(),
    }
}

/// Where a point's label goes: right of its marker above or below, else left of it, whichever
/// first keeps clear of the markers and labels in `taken` (models with about the same latency and
/// Avg. Len. crowd one spot); right above when none does.
fn label_spot((x, y): (i32, i32), width: u32, taken: &[Rect]) -> Rect {
    let left = x - 6 - width as i32;
    let spots = [(x + 6, y - 10), (x + 6, y + 3), (left, y - 10), (left, y + 3), (x + 6, y - 20), (left, y + 13)];
    let rects = spots.map(|(x, y)| Rect { x, y, width, height: LABEL_HEIGHT });
    *rects.iter().find(|spot| !taken.iter().any(|other| overlaps(spot, other))).unwrap_or(&rects[0])
}

/// Height of a line of the bitmap font at scale 1 (px).
const LABEL_HEIGHT: u32 = 8;

fn overlaps(a: &Rect, b: &Rect) -> bool {
    a.x < b.x + b.width as i32
        && b.x < a.x + a.width as i32
        && a.y < b.y + b.height as i32
        && b.y < a.y + a.height as i32
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::eval::Metrics;

    fn row(name: &str, avg_len: f64, latency_ms: f64) -> BackboneRow {
        let mut metrics = Metrics::of(&[]);
        metrics.avg_len = avg_len;
        metrics.success_rates = [0.9, 0.7, 0.5, 0.3, 0.1];
        BackboneRow {
            name: name.into(),
            preset: name.into(),
            image_tokens: 16,
            pretraining: "none".into(),
            parameters: 1,
            training: None,
            metrics,
            avg_len_ci95: 0.2,
            latency_ms,
        }
    }

    fn count(image: &Image, rgb: [u8; 3]) -> usize {
        image.rgb.chunks_exact(3).filter(|p| *p == rgb).count()
    }

    #[test]
    fn bars_are_as_tall_as_their_values_in_their_colours() {
        let rows = [row("a", 1.0, 1.0), row("b", 3.0, 2.0)];
        let image = avg_len_bars(&rows);
        assert_eq!((image.width, image.height), (WIDTH, HEIGHT));
        let (short, tall) = (count(&image, colour(0)), count(&image, colour(1)));
        // Same width, three times the height (up to the whisker drawn over each).
        assert!((tall as f64 / short as f64 - 3.0).abs() < 0.2, "{short} vs {tall} pixels");
    }

    #[test]
    fn every_model_appears_in_every_plot() {
        let rows = [row("a", 1.0, 1.0), row("b", 3.0, 2.0), row("c", 2.0, 4.0)];
        for image in [success_rate_curves(&rows), avg_len_against_latency(&rows)] {
            for i in 0..rows.len() {
                assert!(count(&image, colour(i)) > 20, "model {i} is missing");
            }
        }
        assert_eq!(avg_len_bars(&rows), avg_len_bars(&rows), "the same rows draw the same pixels");
    }

    #[test]
    fn every_finished_cell_of_the_study_is_drawn_and_the_axis_fits_them() {
        let series = [
            ScaleSeries { name: "kosmos seen".into(), points: vec![Some((0.2, 0.04)), None, Some((0.12, 0.03))] },
            ScaleSeries { name: "paligemma seen".into(), points: vec![Some((0.23, 0.04)), None, None] },
            ScaleSeries { name: "kosmos unseen".into(), points: vec![None, None, None] },
        ];
        let image = avg_len_against_scale(&[0, 10_000, 1_000_000], &series);
        let (two_points, one_point, legend_only) =
            (count(&image, colour(0)), count(&image, colour(1)), count(&image, colour(2)));
        assert_eq!(legend_only, 64, "a series without a finished cell has its 8×8 legend square only");
        assert!(one_point > legend_only + 30, "a lone cell gets its marker and whisker: {one_point} pixels");
        assert!(two_points > one_point + 100, "two cells are joined by a line: {two_points} against {one_point}");
        let top = chart_top_of(&image, colour(1));
        assert!(top < (MARGIN_TOP + HEIGHT as i32 - MARGIN_BOTTOM) / 2, "0.27 on an axis to 0.5 is high up: {top}");
        assert_eq!(scale_label(0), "none");
        assert_eq!(
            (scale_label(10_000), scale_label(1_000_000), scale_label(1_500)),
            ("10k".into(), "1M".into(), "1500".into())
        );
    }

    /// The highest row with a pixel of `rgb` below the title and legend.
    fn chart_top_of(image: &Image, rgb: [u8; 3]) -> i32 {
        let (left, right) = (MARGIN_LEFT as u32, WIDTH / 2);
        (MARGIN_TOP as u32 + 40..HEIGHT).find(|&y| (left..right).any(|x| image.pixel(x, y) == rgb)).unwrap() as i32
    }

    #[test]
    fn ten_models_get_ten_colours() {
        let colours: std::collections::HashSet<[u8; 3]> = (0..10).map(colour).collect();
        assert_eq!(colours.len(), 10);
    }

    #[test]
    fn labels_of_crowded_points_keep_clear_of_each_other() {
        let points = [(300, 200), (302, 201), (299, 203), (301, 199)];
        let mut taken: Vec<Rect> = points.iter().copied().map(marker_rect).collect();
        for point in points {
            let label = label_spot(point, 40, &taken);
            assert!(!taken.iter().any(|other| overlaps(&label, other)), "{label:?} overlaps {taken:?}");
            taken.push(label);
        }
        let alone = label_spot((100, 100), 40, &[marker_rect((100, 100))]);
        assert_eq!((alone.x, alone.y), (106, 90), "a lone point's label sits right above it");
    }

    /// Labels drawn on the text line starting at `y`: runs of ink columns closer than a blank
    /// character apart, leaving out the 1-px leader ticks of the other line.
    fn labels_on_line(image: &Image, y: i32) -> usize {
        let inked = |x: u32| (y..y + 8).any(|row| image.pixel(x, row as u32) == INK);
        let mut labels = 0;
        let (mut run_start, mut last_ink): (Option<u32>, u32) = (None, 0);
        for x in 0..=image.width {
            let ink = x < image.width && inked(x);
            if let Some(start) = run_start
                && (x - last_ink > 6 || x == image.width)
            {
                labels += usize::from(last_ink - start >= 6);
                run_start = None;
            }
            if ink {
                run_start.get_or_insert(x);
                last_ink = x;
            }
        }
        labels
    }

    #[test]
    fn bar_labels_too_wide_for_their_slots_alternate_between_two_lines() {
        let rows: Vec<BackboneRow> = (0..9).map(|i| row(&format!("paligemma-wide-{i}"), 1.0, 1.0)).collect();
        let image = avg_len_bars(&rows);
        let bottom = HEIGHT as i32 - MARGIN_BOTTOM;
        assert_eq!(labels_on_line(&image, bottom + 8), 5, "labels 0, 2, 4, 6, 8 apart on the first line");
        assert_eq!(labels_on_line(&image, bottom + 20), 4, "labels 1, 3, 5, 7 apart on the second");
        let few = avg_len_bars(&rows[..2]);
        assert_eq!(labels_on_line(&few, bottom + 8), 2, "labels with room stay on one line");
    }
}
