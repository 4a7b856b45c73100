//! `meta/stats.json`: LeRobot's normalisation statistics (min, max, mean, std, count and the
//! 1/10/50/90/99 % quantiles) per feature. Vectors get one value per dimension; camera features
//! one per RGB channel over every pixel of every frame, in [0, 1] and shaped (3, 1, 1) as LeRobot
//! stores image statistics. Quantiles are exact: vectors are sorted, and 8-bit pixels are counted
//! in 256-bin histograms.

use serde_json::{Value, json};

/// LeRobot's default quantiles and their keys.
const QUANTILES: [(f64, &str); 5] = [(0.01, "q01"), (0.10, "q10"), (0.50, "q50"), (0.90, "q90"), (0.99, "q99")];

/// Statistics of a `rows × dim` feature, one entry per dimension.
pub fn vector_stats(values: &[f64], dim: usize) -> Value {
    let rows = values.len() / dim;
    let mut columns: Vec<Vec<f64>> =
        (0..dim).map(|d| (0..rows).map(|r| values[r * dim + d]).collect::<Vec<_>>()).collect();
    let mut stats = serde_json::Map::new();
    let mut per_dim = |key: &str, f: &dyn Fn(&[f64]) -> f64, columns: &[Vec<f64>]| {
        stats.insert(key.to_owned(), json!(columns.iter().map(|c| f(c)).collect::<Vec<_>>()));
    };
    for column in &mut columns {
        column.sort_by(f64::total_cmp);
    }
    per_dim("min", &|c| c.first().copied().unwrap_or(0.0), &columns);
    per_dim("max", &|c| c.last().copied().unwrap_or(0.0), &columns);
    per_dim("mean", &|c| mean(c), &columns);
    per_dim("std", &|c| std(c), &columns);
    for (q, key) in QUANTILES {
        per_dim(key, &|c| quantile_of_sorted(c, q), &columns);
    }
    stats.insert("count".to_owned(), json!([rows]));
    Value::Object(stats)
}

fn mean(values: &[f64]) -> f64 {
    values.iter().sum::<f64>() / values.len().max(1) as f64
}

fn std(values: &[f64]) -> f64 {
    let m = mean(values);
    (values.iter().map(|v| (v - m) * (v - m)).sum::<f64>() / values.len().max(1) as f64).sqrt()
}

/// The value below which a share `q` of the sorted values lies (nearest rank).
fn quantile_of_sorted(sorted: &[f64], q: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    let rank = (q * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}

/// Statistics of a camera feature from per-channel histograms of 8-bit values over `frames` frames.
pub fn image_stats(histograms: &[[u64; 256]; 3], frames: usize) -> Value {
    let channel = |f: &dyn Fn(&[u64; 256]) -> f64| -> Value {
        json!(histograms.iter().map(|h| vec![vec![f(h)]]).collect::<Vec<_>>())
    };
    let scaled = |level: usize| level as f64 / 255.0;
    let total = |h: &[u64; 256]| h.iter().sum::<u64>().max(1) as f64;
    let mean = |h: &[u64; 256]| h.iter().enumerate().map(|(l, n)| scaled(l) * *n as f64).sum::<f64>() / total(h);
    let std = |h: &[u64; 256]| {
        let m = mean(h);
        (h.iter().enumerate().map(|(l, n)| (scaled(l) - m).powi(2) * *n as f64).sum::<f64>() / total(h)).sqrt()
    };
    let quantile = |h: &[u64; 256], q: f64| {
        let rank = ((q * total(h)).ceil() as u64).max(1);
        let mut seen = 0;
        for (level, n) in h.iter().enumerate() {
            seen += n;
            if seen >= rank {
                return scaled(level);
            }
        }
        1.0
    };
    let mut stats = serde_json::Map::new();
    stats.insert("min".into(), channel(&|h| scaled(h.iter().position(|&n| n > 0).unwrap_or(0))));
    stats.insert("max".into(), channel(&|h| scaled(h.iter().rposition(|&n| n > 0).unwrap_or(0))));
    stats.insert("mean".into(), channel(&mean));
    stats.insert("std".into(), channel(&std));
    for (q, key) in QUANTILES {
        stats.insert(key.into(), channel(&|h| quantile(h, q)));
    }
    stats.insert("count".into(), json!([frames]));
    Value::Object(stats)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn vector_stats_per_dimension() {
        // Two dimensions over four rows.
        let stats = vector_stats(&[1.0, 10.0, 2.0, 20.0, 3.0, 30.0, 4.0, 40.0], 2);
        assert_eq!(stats["min"], json!([1.0, 10.0]));
        assert_eq!(stats["max"], json!([4.0, 40.0]));
        assert_eq!(stats["mean"], json!([2.5, 25.0]));
        assert_eq!(stats["q50"], json!([2.0, 20.0]));
        assert_eq!(stats["count"], json!([4]));
        assert!((stats["std"][0].as_f64().expect("number") - 1.118_033_988_749_895).abs() < 1e-12);
    }

    #[test]
    fn image_stats_from_histograms() {
        let mut histograms = [[0u64; 256]; 3];
        histograms[0][0] = 1;
        histograms[0][255] = 1;
        histograms[1][51] = 2;
        histograms[2][255] = 2;
        let stats = image_stats(&histograms, 2);
        assert_eq!(stats["min"], json!([[[0.0]], [[0.2]], [[1.0]]]));
        assert_eq!(stats["max"], json!([[[1.0]], [[0.2]], [[1.0]]]));
        assert_eq!(stats["mean"], json!([[[0.5]], [[0.2]], [[1.0]]]));
        assert_eq!(stats["std"][0], json!([[0.5]]));
        assert_eq!(stats["q99"][0], json!([[1.0]]));
    }
}
