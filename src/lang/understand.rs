//! Understanding a typed instruction: which task it names, how sure that is, and what to tell the
//! person when it names none (the GUI's command box shows all of it).

use std::sync::LazyLock;

use super::instructions::Instructions;
use super::matcher::{Matcher, TaskMatch};
use super::normalize::normalize;
use super::spelling::closest_known;
use crate::sim::scene::BlockColor;
use crate::sim::tasks::{Surface, Task};

/// Longest input read, in characters; the rest is cut off and reported as [`Problem::TooLong`].
/// The longest training phrasing is well under half of this.
pub const MAX_INPUT_CHARS: usize = 300;
/// Below this score (the best task's posterior probability) no task stands out ([`Problem::WeakMatch`]).
pub const MIN_SCORE: f32 = 0.2;
/// A runner-up scoring at least this fraction of the best makes the instruction [`Problem::Ambiguous`].
pub const AMBIGUOUS_RUNNER_UP_RATIO: f32 = 0.5;
/// How many (task, phrasing) suggestions to offer.
pub const SUGGESTION_COUNT: usize = 3;
/// Varied examples offered when nothing typed can be matched at all.
const EXAMPLE_TASKS: [Task; SUGGESTION_COUNT] =
    [Task::OpenDrawer, Task::TurnOnLed, Task::LiftBlock(BlockColor::Red, Surface::Table)];

static MATCHER: LazyLock<Matcher> = LazyLock::new(|| Matcher::new(&Instructions::embedded().train));

/// Why a typed instruction does not name one task clearly. When there is a problem,
/// [`Understanding::task`] is `None`; the suggestions say what could be meant.
#[derive(Debug, Clone, PartialEq)]
pub enum Problem {
    /// Nothing but spaces and punctuation was typed.
    Empty,
    /// The input is longer than [`MAX_INPUT_CHARS`]; only its beginning was read.
    TooLong {
        /// The limit.
        max_chars: usize,
    },
    /// None of the words occurs in the training phrasings (nor is a recognisable misspelling of one).
    NoKnownWords,
    /// Some words are known, but they point to no task in particular (best score below [`MIN_SCORE`]),
    /// e.g. "the block".
    WeakMatch,
    /// Two or three tasks match nearly equally well (the runner-up scores at least
    /// [`AMBIGUOUS_RUNNER_UP_RATIO`] of the best), e.g. "lift the red block" without saying from where;
    /// the suggestions start with the contenders.
    Ambiguous,
}

impl std::fmt::Display for Problem {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Problem::Empty => f.write_str("the instruction is empty"),
            Problem::TooLong { max_chars } => {
                write!(f, "the instruction is longer than {max_chars} characters; only its beginning was read")
            }
            Problem::NoKnownWords => f.write_str("none of its words is known"),
            Problem::WeakMatch => f.write_str("it names no task in particular"),
            Problem::Ambiguous => f.write_str("it fits several tasks nearly equally"),
        }
    }
}

/// What a typed instruction was understood to mean.
#[derive(Debug, Clone, PartialEq)]
pub struct Understanding {
    /// The input after normalisation (and cutting, for [`Problem::TooLong`]).
    pub normalized: String,
    /// The task named, when there is no [`Problem`].
    pub task: Option<Task>,
    /// The best task's score: its probability given the known words, in [1/34, 1] (see [`super::matcher`]).
    pub score: f32,
    /// Words that occur in the training phrasings neither as typed nor inflected ("opening" is known
    /// through "open"), in input order, each once.
    pub unknown_words: Vec<String>,
    /// Unknown words read as known ones: (typed, read as), e.g. ("drwaer", "drawer").
    pub corrections: Vec<(String, String)>,
    /// The best-matching tasks with their closest training phrasing, best first.
    pub suggestions: Vec<(Task, String)>,
    /// Why no task was chosen, if none was.
    pub problem: Option<Problem>,
}

/// Understands a typed instruction: normalises it, matches it against the training phrasings and
/// reports the task, or the problem with suggestions. Never panics; time is bounded by
/// [`MAX_INPUT_CHARS`] whatever the input's length.
pub fn understand(text: &str) -> Understanding {
    let (kept, too_long) = match text.char_indices().nth(MAX_INPUT_CHARS) {
        Some((cut, _)) => (&text[..cut], true),
        None => (text, false),
    };
    let normalized = normalize(kept);
    let mut words: Vec<&str> = Vec::new();
    let mut unknown_words: Vec<String> = Vec::new();
    let mut corrections = Vec::new();
    for word in normalized.split(' ').filter(|w| !w.is_empty()) {
        if MATCHER.knows(word) {
            words.push(word);
            continue;
        }
        if !unknown_words.iter().any(|w| w == word) {
            unknown_words.push(word.to_owned());
        }
        if let Some(known_word) = closest_known(word, MATCHER.known_words()) {
            words.push(known_word);
            if !corrections.iter().any(|(typed, _)| typed == word) {
                corrections.push((word.to_owned(), known_word.to_owned()));
            }
        }
    }
    let ranked = MATCHER.rank(&words);
    let (best, runner_up) = (&ranked[0], &ranked[1]);
    let problem = if too_long {
        Some(Problem::TooLong { max_chars: MAX_INPUT_CHARS })
    } else if normalized.is_empty() {
        Some(Problem::Empty)
    } else if words.is_empty() {
        Some(Problem::NoKnownWords)
    } else if best.score < MIN_SCORE {
        Some(Problem::WeakMatch)
    } else if runner_up.score >= AMBIGUOUS_RUNNER_UP_RATIO * best.score {
        Some(Problem::Ambiguous)
    } else {
        None
    };
    let suggestions = if words.is_empty() { examples() } else { top(&ranked) };
    Understanding {
        normalized,
        task: problem.is_none().then_some(best.task),
        score: best.score,
        unknown_words,
        corrections,
        suggestions,
        problem,
    }
}

fn top(ranked: &[TaskMatch]) -> Vec<(Task, String)> {
    ranked.iter().take(SUGGESTION_COUNT).map(|m| (m.task, m.closest_phrasing.clone())).collect()
}

fn examples() -> Vec<(Task, String)> {
    let train = &Instructions::embedded().train;
    EXAMPLE_TASKS.iter().map(|&task| (task, train.of(task)[0].text.clone())).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sim::tasks::Side;

    #[track_caller]
    fn assert_understood(text: &str, task: Task) {
        let understanding = understand(text);
        assert_eq!(understanding.task, Some(task), "`{text}` → {understanding:?}");
    }

    #[test]
    fn every_training_phrasing_names_its_task() {
        for (task, phrasing) in Instructions::embedded().train.iter() {
            assert_understood(&phrasing.text, task);
        }
    }

    #[test]
    fn every_unseen_evaluation_phrasing_names_its_task() {
        for (task, phrasing) in Instructions::embedded().eval.iter() {
            assert_understood(&phrasing.text, task);
        }
    }

    #[test]
    fn paraphrases_name_their_task() {
        use BlockColor::*;
        for (text, task) in [
            ("Please open the drawer.", Task::OpenDrawer),
            ("could you shut that drawer", Task::CloseDrawer),
            ("slide the door over to the left", Task::MoveSlider(Side::Left)),
            ("move the sliding door to the right please", Task::MoveSlider(Side::Right)),
            ("push the red block a bit to the left", Task::PushBlock(Red, Side::Left)),
            ("slide the blue cube towards the right", Task::PushBlock(Blue, Side::Right)),
            ("rotate the pink block anti-clockwise", Task::RotateBlock(Pink, Side::Left)),
            ("turn the blue block right", Task::RotateBlock(Blue, Side::Right)),
            ("grasp the pink block sitting in the drawer and lift it", Task::LiftBlock(Pink, Surface::Drawer)),
            ("pick up the blue block from the cupboard", Task::LiftBlock(Blue, Surface::Slider)),
            ("lift the red cube off the desk", Task::LiftBlock(Red, Surface::Table)),
            ("put the block in the drawer", Task::PlaceInDrawer),
            ("put the object in the cabinet", Task::PlaceInSlider),
            ("push the block off the table into the drawer", Task::PushIntoDrawer),
            ("stack the block on the other one", Task::StackBlock),
            ("take the top block off", Task::UnstackBlock),
            ("press the button to turn on the green light", Task::TurnOnLed),
            ("switch off the led", Task::TurnOffLed),
            ("turn the yellow light on", Task::TurnOnLightbulb),
            ("switch the bulb off", Task::TurnOffLightbulb),
            ("Turn ON the LIGHT BULB!!!", Task::TurnOnLightbulb),
            ("open_drawer", Task::OpenDrawer),
        ] {
            assert_understood(text, task);
        }
    }

    #[test]
    fn misspellings_and_inflections_are_read_and_reported() {
        let understanding = understand("opening the drwaer");
        assert_eq!(understanding.task, Some(Task::OpenDrawer), "{understanding:?}");
        assert_eq!(understanding.unknown_words, ["drwaer"], "`opening` is known through `open`");
        assert_eq!(understanding.corrections, [("drwaer".to_owned(), "drawer".to_owned())]);
    }

    #[test]
    fn unknown_words_are_listed_but_do_not_prevent_a_match() {
        let understanding = understand("kindly open the drawer now robot");
        assert_eq!(understanding.task, Some(Task::OpenDrawer));
        assert_eq!(understanding.unknown_words, ["kindly", "now", "robot"]);
    }

    #[test]
    fn an_underspecified_instruction_is_ambiguous() {
        let understanding = understand("lift the red block");
        assert_eq!(understanding.problem, Some(Problem::Ambiguous), "{understanding:?}");
        assert_eq!(understanding.task, None);
        let tasks: Vec<Task> = understanding.suggestions.iter().map(|(t, _)| *t).collect();
        for surface in [Surface::Table, Surface::Slider, Surface::Drawer] {
            assert!(tasks.contains(&Task::LiftBlock(BlockColor::Red, surface)), "{tasks:?}");
        }
    }

    #[test]
    fn garbage_yields_a_problem_with_unknown_words_and_suggestions() {
        for (text, problem, unknown) in [
            ("", Problem::Empty, vec![]),
            ("   \t\n ", Problem::Empty, vec![]),
            ("?!...", Problem::Empty, vec![]),
            ("asdf qwer", Problem::NoKnownWords, vec!["asdf", "qwer"]),
            ("请打开抽屉", Problem::NoKnownWords, vec!["请打开抽屉"]),
            ("🤖 🙂🙂", Problem::NoKnownWords, vec!["🤖", "🙂🙂"]),
        ] {
            let understanding = understand(text);
            assert_eq!(understanding.problem, Some(problem), "`{text}` → {understanding:?}");
            assert_eq!(understanding.task, None);
            assert_eq!(understanding.unknown_words, unknown, "`{text}`");
            assert_eq!(understanding.suggestions.len(), SUGGESTION_COUNT);
        }
    }

    #[test]
    fn a_long_paste_is_cut_and_reported() {
        for paste in ["open the drawer ".repeat(700), "抽".repeat(10_000), "🙂".repeat(5_000)] {
            assert!(paste.len() >= 10_000);
            let understanding = understand(&paste);
            assert_eq!(understanding.problem, Some(Problem::TooLong { max_chars: MAX_INPUT_CHARS }));
            assert_eq!(understanding.task, None);
            assert!(understanding.normalized.chars().count() <= MAX_INPUT_CHARS);
            assert_eq!(understanding.suggestions.len(), SUGGESTION_COUNT);
        }
        assert_eq!(understand(&"open the drawer ".repeat(700)).suggestions[0].0, Task::OpenDrawer);
    }

    #[test]
    fn known_words_that_name_no_task_are_a_weak_match() {
        let understanding = understand("the block");
        assert_eq!(understanding.problem, Some(Problem::WeakMatch), "{understanding:?}");
    }
}
