//! The backbone comparison: one row per evaluated model folder — what the backbone is (preset,
//! image tokens, vision-language pre-training, size), how it did on the CALVIN-style chains
//! (SR@1..5, Avg. Len. with a 95 % confidence interval) and what a control step costs.

use crate::eval::{EvalResults, Metrics};
use crate::sim::chains::CHAIN_LENGTH;

/// One model of the comparison.
#[derive(Debug, Clone, PartialEq)]
pub struct BackboneRow {
    /// Model folder name.
    pub name: String,
    /// Preset it was built from.
    pub preset: String,
    /// Image tokens per frame in the language model.
    pub image_tokens: usize,
    /// Vision-language pre-training it started from (`none` when trained from scratch).
    pub pretraining: String,
    /// Parameter count.
    pub parameters: usize,
    /// Samples it was trained on and the dataset's path (unknown without its `training.json`):
    /// models trained on different demonstrations must not pass for one recipe's.
    pub training: Option<(u64, String)>,
    /// Its evaluation.
    pub metrics: Metrics,
    /// Half-width of the 95 % confidence interval of the Avg. Len.
    pub avg_len_ci95: f64,
    /// Wall milliseconds per closed-loop control step (render, model, action), one thread.
    pub latency_ms: f64,
}

/// Half-width of the normal-approximation 95 % confidence interval of the mean number of
/// consecutive subtasks completed per chain (1.96 standard errors).
pub fn avg_len_ci95(results: &EvalResults) -> f64 {
    let completed: Vec<f64> = results.chains.iter().map(|c| c.completed() as f64).collect();
    mean_and_ci95(&completed).1
}

/// How much longer `candidate`'s chains are than `reference`'s, chain by chain, with the
/// half-width of its 95 % confidence interval: both models met the same chains, so the paired
/// differences give a far tighter interval than the two Avg. Len. intervals side by side. `None`
/// when the two evaluations did not run the same chains.
pub fn paired_avg_len_difference(candidate: &EvalResults, reference: &EvalResults) -> Option<(f64, f64)> {
    if candidate.chains.len() != reference.chains.len() {
        return None;
    }
    let differences = candidate
        .chains
        .iter()
        .zip(&reference.chains)
        .map(|(a, b)| {
            let same_chain = (a.index, &a.tasks) == (b.index, &b.tasks);
            same_chain.then(|| a.completed() as f64 - b.completed() as f64)
        })
        .collect::<Option<Vec<f64>>>()?;
    Some(mean_and_ci95(&differences))
}

/// The mean of `values` and the half-width of its normal-approximation 95 % confidence interval
/// (NaN for fewer than two values).
fn mean_and_ci95(values: &[f64]) -> (f64, f64) {
    let n = values.len();
    let mean = values.iter().sum::<f64>() / n.max(1) as f64;
    if n < 2 {
        return (mean, f64::NAN);
    }
    let variance = values.iter().map(|v| (v - mean) * (v - mean)).sum::<f64>() / (n - 1) as f64;
    (mean, 1.96 * (variance / n as f64).sqrt())
}

/// The comparison as a Markdown table, rows in the order given.
pub fn markdown_table(rows: &[BackboneRow]) -> String {
    let mut table =
        String::from("| model | preset | image tokens | VL pre-training | parameters | training samples (data) |");
    for i in 1..=CHAIN_LENGTH {
        table += &format!(" SR@{i} |");
    }
    table += " Avg. Len. (95 % CI) | latency ms/step |\n|---|---|---|---|---|---|";
    table += &"---|".repeat(CHAIN_LENGTH);
    table += "---|---|\n";
    for row in rows {
        let training = match &row.training {
            Some((samples, data)) => format!("{:.2} M ({data})", *samples as f64 / 1e6),
            None => "unknown".to_string(),
        };
        table += &format!(
            "| {} | {} | {} | {} | {:.2} M | {training} |",
            row.name,
            row.preset,
            row.image_tokens,
            row.pretraining,
            row.parameters as f64 / 1e6
        );
        for rate in row.metrics.success_rates {
            table += &format!(" {:.1} % |", rate * 100.0);
        }
        table += &format!(" {:.2} ± {:.2} | {:.2} |\n", row.metrics.avg_len, row.avg_len_ci95, row.latency_ms);
    }
    table
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::eval::results::SubtaskRecord;
    use crate::eval::{ChainRecord, Shard, Wording};

    fn chain(index: u64, completed: usize) -> ChainRecord {
        let tasks: Vec<String> = (0..CHAIN_LENGTH).map(|i| format!("task{i}")).collect();
        let subtasks = (0..(completed + 1).min(CHAIN_LENGTH))
            .map(|i| SubtaskRecord { task: tasks[i].clone(), success: i < completed, steps: 10 })
            .collect();
        ChainRecord { index, tasks, subtasks }
    }

    fn results(completed: &[usize]) -> EvalResults {
        let chains: Vec<ChainRecord> = completed.iter().enumerate().map(|(i, &c)| chain(i as u64, c)).collect();
        EvalResults {
            model: "m".into(),
            scene: "d".into(),
            seed: 1000,
            total_chains: chains.len() as u64,
            expert_leads: 0,
            wording: Wording::HeldOut,
            shards: vec![Shard::WHOLE],
            metrics: Metrics::of(&chains),
            wall_time_s: 1.0,
            threads: 1,
            chains,
        }
    }

    #[test]
    fn the_interval_is_1_96_standard_errors_of_the_chain_lengths() {
        // Completed 0, 2, 4: mean 2, sample variance 4, standard error 2 / sqrt(3).
        let half = avg_len_ci95(&results(&[0, 2, 4]));
        assert!((half - 1.96 * 2.0 / 3f64.sqrt()).abs() < 1e-12, "{half}");
        assert_eq!(avg_len_ci95(&results(&[3, 3, 3, 3])), 0.0);
        assert!(avg_len_ci95(&results(&[5])).is_nan(), "one chain gives no interval");
    }

    #[test]
    fn the_paired_difference_is_taken_chain_by_chain() {
        // Differences 1, 1, 1, 1: each chain one longer, so no spread at all, where the two
        // Avg. Len. intervals side by side would overlap widely.
        let (difference, half) = paired_avg_len_difference(&results(&[1, 3, 5, 2]), &results(&[0, 2, 4, 1])).unwrap();
        assert_eq!((difference, half), (1.0, 0.0));
        // Differences 2, 0, -2: mean 0, sample variance 4.
        let (difference, half) = paired_avg_len_difference(&results(&[2, 2, 2]), &results(&[0, 2, 4])).unwrap();
        assert_eq!(difference, 0.0);
        assert!((half - 1.96 * 2.0 / 3f64.sqrt()).abs() < 1e-12, "{half}");
        let mut other_chains = results(&[0, 2, 4]);
        other_chains.chains[1].index = 7;
        assert_eq!(paired_avg_len_difference(&results(&[2, 2, 2]), &other_chains), None);
        assert_eq!(paired_avg_len_difference(&results(&[2, 2]), &results(&[0, 2, 4])), None);
    }

    #[test]
    fn the_table_has_a_row_per_model_with_every_column() {
        let evaluated = results(&[0, 2, 4, 5]);
        let row = BackboneRow {
            name: "kosmos".into(),
            preset: "kosmos".into(),
            image_tokens: 16,
            pretraining: "none".into(),
            parameters: 300_000,
            training: Some((320_000, "demos".into())),
            avg_len_ci95: avg_len_ci95(&evaluated),
            metrics: evaluated.metrics,
            latency_ms: 1.5,
        };
        let table = markdown_table(&[row]);
        let lines: Vec<&str> = table.lines().collect();
        assert_eq!(lines.len(), 3);
        assert!(lines[0].contains("SR@5") && lines[0].contains("Avg. Len. (95 % CI)"));
        assert_eq!(lines[1].matches('|').count(), lines[0].matches('|').count());
        assert!(
            lines[2].starts_with(
                "| kosmos | kosmos | 16 | none | 0.30 M | 0.32 M (demos) | 75.0 % | 75.0 % | 50.0 % | 50.0 % | 25.0 % | 2.75 ± "
            ),
            "{}",
            lines[2]
        );
    }
}
