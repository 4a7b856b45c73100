//! Which task an instruction names, by comparing its words with the training phrasings.
//!
//! A deterministic, explainable method with no learning beyond counting: naive Bayes over the
//! **features** of a normalised phrasing, each weighted by how few tasks use it: its words reduced
//! to a crude stem ("rightwards" → "right", "closing" and "close" → "clos") so inflections match,
//! plus its first word once more as the leading verb, since instructions are imperatives and
//! "stack the blocks" is not "take the block off the stack".
//!
//! - `P(feature | task)` is the share of the task's phrasings that use the feature, with add-½
//!   smoothing so an unseen feature costs a fixed amount instead of ruling the task out.
//! - The feature's weight is its inverse task frequency `ln(tasks / tasks using it)`: "the" occurs
//!   in every task and weighs nothing, so how often a task's phrasings happen to say "the" cannot
//!   decide anything; "red" (8 of 34 tasks), "left", "off", "drawer" weigh more, "twist" or "button"
//!   most. No hand-made list of important words is needed, and an edited `train.txt` reweighs itself.
//!   Against a task that never uses the feature, the weight is at least 1 (`MIN_ABSENCE_WEIGHT`).
//! - A task's score is its posterior under a uniform prior: the softmax over tasks of
//!   `Σ weight(feature) · ln P(feature | task)` across the instruction's known features.
//!
//! Unlike a similarity score, naive Bayes counts a word *against* the tasks that never use it,
//! which is what separates "turn the red block to the left" (rotate) from "push the red block to
//! the left" although both share five words with either task's phrasings. Word pairs were tried as
//! extra features and dropped: rare pairs such as "cube towards" carried the templates' accidents
//! (one rotate phrasing says "the blue cube towards the right") more than meaning.
//!
//! For people, each task also names its closest training phrasing: the one sharing the largest
//! fraction of features with the instruction (Jaccard similarity).

use std::collections::{BTreeSet, HashMap};

use super::instructions::Phrasings;
use crate::sim::tasks::Task;

/// Add-α smoothing of the feature counts (1 would be Laplace's rule). Below 1, so a word that one
/// phrasing of a task uses already counts clearly for that task.
const SMOOTHING: f32 = 0.5;
/// Least weight of a feature a task never uses: as much as in unweighted naive Bayes. A word most
/// tasks use ("block", weight 0.2) says little about which of them is meant, but clearly speaks
/// against the few that never use it ("push the block in the drawer" is not close_drawer).
const MIN_ABSENCE_WEIGHT: f32 = 1.0;
/// Endings a stem drops (one of them, the first that leaves at least [`MIN_STEM_CHARS`]), so
/// inflected and derived forms share a feature. Crude on purpose: it needs to be consistent, not
/// linguistically right, since training phrasings and input go through the same function.
const STEM_ENDINGS: [&str; 7] = ["wards", "ing", "ed", "es", "ly", "s", "e"];
/// Marks the feature of the first word (which no word can start with after normalisation).
const LEADING_VERB_MARK: &str = "^";
/// Shortest stem kept; shorter results keep the word whole ("red", "led", "one", "the").
const MIN_STEM_CHARS: usize = 3;

/// How one task matches an instruction.
#[derive(Debug, Clone, PartialEq)]
pub struct TaskMatch {
    /// The task.
    pub task: Task,
    /// Posterior probability of the task given the instruction's known features (weighted naive
    /// Bayes, uniform prior); sums to 1 over tasks.
    pub score: f32,
    /// The task's training phrasing sharing the most features with the instruction (its first if none shares any).
    pub closest_phrasing: String,
}

/// One task's statistics.
#[derive(Debug, Clone)]
struct TaskModel {
    task: Task,
    /// `weight(feature) · ln P(feature | task)` by feature id.
    weighted_log_likelihood: Vec<f32>,
    /// Each phrasing with its feature ids.
    phrasings: Vec<(String, BTreeSet<usize>)>,
}

/// The matcher, built from a set of training phrasings.
#[derive(Debug, Clone)]
pub struct Matcher {
    /// Feature id by name: a word's stem, or the leading-verb mark and the first word's stem.
    feature_ids: HashMap<String, usize>,
    known_words: BTreeSet<String>,
    tasks: Vec<TaskModel>,
}

impl Matcher {
    /// Builds the matcher from training phrasings.
    pub fn new(training: &Phrasings) -> Matcher {
        let mut feature_ids: HashMap<String, usize> = HashMap::new();
        let mut known_words = BTreeSet::new();
        let mut tasks: Vec<TaskModel> = training
            .by_task()
            .map(|(task, phrasings)| {
                let phrasings = phrasings
                    .iter()
                    .map(|phrasing| {
                        let words: Vec<&str> = phrasing.normalized.split(' ').collect();
                        known_words.extend(words.iter().map(|w| w.to_string()));
                        let ids = feature_names(&words)
                            .into_iter()
                            .map(|name| {
                                let next = feature_ids.len();
                                *feature_ids.entry(name).or_insert(next)
                            })
                            .collect();
                        (phrasing.text.clone(), ids)
                    })
                    .collect();
                TaskModel { task, weighted_log_likelihood: Vec::new(), phrasings }
            })
            .collect();
        let feature_count = feature_ids.len();
        let mut tasks_using = vec![0usize; feature_count];
        for model in &tasks {
            let used: BTreeSet<usize> = model.phrasings.iter().flat_map(|(_, ids)| ids.iter().copied()).collect();
            for id in used {
                tasks_using[id] += 1;
            }
        }
        let task_count = tasks.len() as f32;
        let weights: Vec<f32> = tasks_using.iter().map(|&n| (task_count / n as f32).ln()).collect();
        for model in &mut tasks {
            let mut counts = vec![0.0f32; feature_count];
            for id in model.phrasings.iter().flat_map(|(_, ids)| ids) {
                counts[*id] += 1.0;
            }
            let total: f32 = counts.iter().sum::<f32>() + SMOOTHING * feature_count as f32;
            model.weighted_log_likelihood = counts
                .iter()
                .zip(&weights)
                .map(|(&count, &weight)| {
                    let weight = if count == 0.0 { weight.max(MIN_ABSENCE_WEIGHT) } else { weight };
                    weight * ((count + SMOOTHING) / total).ln()
                })
                .collect();
        }
        Matcher { feature_ids, known_words, tasks }
    }

    /// Every word of the training phrasings.
    pub fn known_words(&self) -> &BTreeSet<String> {
        &self.known_words
    }

    /// Whether `word` or an inflection of it (same stem) occurs in the training phrasings.
    pub fn knows(&self, word: &str) -> bool {
        self.feature_ids.contains_key(stem(word))
    }

    /// Every task's match with `words` (the instruction's known words, in order), best first; ties
    /// keep [`Task::all`] order, so an instruction without known features ranks the tasks in that order.
    pub fn rank(&self, words: &[&str]) -> Vec<TaskMatch> {
        let query: BTreeSet<usize> =
            feature_names(words).iter().filter_map(|name| self.feature_ids.get(name).copied()).collect();
        let log_joint: Vec<f32> =
            self.tasks.iter().map(|model| query.iter().map(|&id| model.weighted_log_likelihood[id]).sum()).collect();
        let max = log_joint.iter().copied().fold(f32::NEG_INFINITY, f32::max);
        let unnormalised: Vec<f32> = log_joint.iter().map(|l| (l - max).exp()).collect();
        let evidence: f32 = unnormalised.iter().sum();
        let mut matches: Vec<TaskMatch> = self
            .tasks
            .iter()
            .zip(unnormalised)
            .map(|(model, weight)| TaskMatch {
                task: model.task,
                score: weight / evidence,
                closest_phrasing: closest_phrasing(&model.phrasings, &query).to_owned(),
            })
            .collect();
        matches.sort_by(|a, b| b.score.total_cmp(&a.score));
        matches
    }
}

/// The phrasing with the highest Jaccard similarity to `query`; the first on ties.
fn closest_phrasing<'a>(phrasings: &'a [(String, BTreeSet<usize>)], query: &BTreeSet<usize>) -> &'a str {
    let jaccard = |ids: &BTreeSet<usize>| {
        let shared = ids.intersection(query).count();
        shared as f32 / (ids.len() + query.len() - shared).max(1) as f32
    };
    let mut best = (&phrasings[0].0, jaccard(&phrasings[0].1));
    for (text, ids) in &phrasings[1..] {
        let similarity = jaccard(ids);
        if similarity > best.1 {
            best = (text, similarity);
        }
    }
    best.0
}

/// The features of a phrasing: its words' stems, each once, and the first word's stem marked as
/// the leading verb.
fn feature_names(words: &[&str]) -> BTreeSet<String> {
    let leading_verb = words.first().map(|word| format!("{LEADING_VERB_MARK}{}", stem(word)));
    words.iter().map(|word| stem(word).to_owned()).chain(leading_verb).collect()
}

/// `word` without the first of [`STEM_ENDINGS`] that leaves a stem of [`MIN_STEM_CHARS`] or more;
/// "ss" keeps its last "s" ("press", "pressed" and "presses" → "press").
fn stem(word: &str) -> &str {
    STEM_ENDINGS
        .iter()
        .filter(|ending| !(**ending == "s" && word.ends_with("ss")))
        .filter_map(|ending| word.strip_suffix(ending))
        .find(|stem| stem.chars().count() >= MIN_STEM_CHARS)
        .unwrap_or(word)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::lang::instructions::Instructions;
    use crate::sim::scene::BlockColor;
    use crate::sim::tasks::Side;

    fn rank(text: &str) -> Vec<TaskMatch> {
        let matcher = Matcher::new(&Instructions::embedded().train);
        let words: Vec<&str> = text.split(' ').collect();
        matcher.rank(&words)
    }

    #[test]
    fn scores_are_a_distribution_over_the_tasks() {
        let ranked = rank("open the drawer");
        assert_eq!(ranked.len(), 34);
        let total: f32 = ranked.iter().map(|m| m.score).sum();
        assert!((total - 1.0).abs() < 1e-4, "{total}");
        assert!(ranked.windows(2).all(|pair| pair[0].score >= pair[1].score));
        assert_eq!((ranked[0].task, ranked[0].closest_phrasing.as_str()), (Task::OpenDrawer, "open the drawer"));
    }

    #[test]
    fn a_word_counts_against_tasks_that_never_use_it() {
        let ranked = rank("turn the red block to the left");
        assert_eq!(ranked[0].task, Task::RotateBlock(BlockColor::Red, Side::Left), "{ranked:?}");
        let ranked = rank("push the red block to the left");
        assert_eq!(ranked[0].task, Task::PushBlock(BlockColor::Red, Side::Left), "{ranked:?}");
    }

    #[test]
    fn inflections_share_a_stem_and_short_words_stay_whole() {
        for (word, expected) in [
            ("rightwards", "right"),
            ("towards", "toward"),
            ("closing", "clos"),
            ("close", "clos"),
            ("closed", "clos"),
            ("blocks", "block"),
            ("press", "press"),
            ("pressed", "press"),
            ("presses", "press"),
            ("lights", "light"),
            ("red", "red"),
            ("led", "led"),
            ("one", "one"),
            ("on", "on"),
            ("slider", "slider"),
            ("slide", "slid"),
        ] {
            assert_eq!(stem(word), expected, "{word}");
        }
    }

    #[test]
    fn a_common_word_still_counts_against_the_tasks_that_never_use_it() {
        let ranked = rank("push the block in the drawer");
        assert_eq!(ranked[0].task, Task::PushIntoDrawer, "{ranked:?}");
    }

    #[test]
    fn on_and_off_decide_between_the_switch_tasks() {
        assert_eq!(rank("turn the led on")[0].task, Task::TurnOnLed);
        assert_eq!(rank("turn the led off")[0].task, Task::TurnOffLed);
    }

    #[test]
    fn a_query_without_known_words_ranks_all_tasks_equally_in_task_order() {
        let ranked = rank("qwer");
        assert!(ranked.iter().all(|m| (m.score - 1.0 / 34.0).abs() < 1e-6));
        assert_eq!(ranked.iter().map(|m| m.task).collect::<Vec<_>>(), Task::all());
    }
}
