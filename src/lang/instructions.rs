//! The instruction phrasings: several training phrasings per task and one held-out evaluation
//! phrasing per task, as CALVIN has. They live in `lang/train.txt` and `lang/eval.txt`, plain text
//! that people read and edit, and are compiled into the binary.
//!
//! Line format: `task_name: phrasing`; `#` starts a comment line; blank lines are ignored. Phrasings
//! are compared after [`normalize`], so "Open the drawer." and "open the drawer" are duplicates.

use std::collections::HashMap;
use std::fmt;
use std::sync::LazyLock;

use super::normalize::normalize;
use crate::sim::tasks::Task;

/// Path of the training phrasings, relative to the crate root (as error messages name it).
pub const TRAIN_FILE: &str = "lang/train.txt";
/// Path of the evaluation phrasings, relative to the crate root.
pub const EVAL_FILE: &str = "lang/eval.txt";
/// Longest phrasing, in characters: well under what a typed instruction may hold
/// ([`super::understand::MAX_INPUT_CHARS`]), so every phrasing can be typed whole.
pub const MAX_PHRASING_CHARS: usize = 160;

/// `lang/train.txt` as compiled in.
pub const EMBEDDED_TRAIN_TEXT: &str = include_str!("../../lang/train.txt");
/// `lang/eval.txt` as compiled in.
pub const EMBEDDED_EVAL_TEXT: &str = include_str!("../../lang/eval.txt");

static EMBEDDED: LazyLock<Instructions> = LazyLock::new(|| {
    Instructions::parse(EMBEDDED_TRAIN_TEXT, EMBEDDED_EVAL_TEXT)
        .expect("the embedded instruction files are valid (checked by `embedded_instructions_are_valid`)")
});

/// A line in an instruction file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Location {
    /// File name, as given to the parser.
    pub file: String,
    /// 1-based line number.
    pub line: usize,
}

impl fmt::Display for Location {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.file, self.line)
    }
}

/// Why an instruction file was rejected.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum InstructionError {
    /// A line that is neither blank, a comment, nor `task_name: phrasing`.
    #[error("{at}: expected `task_name: phrasing`")]
    MissingColon {
        /// Where.
        at: Location,
    },
    /// The name before the colon is not one of the 34 tasks.
    #[error("{at}: unknown task `{name}` (`vlasim expert --list` shows the 34 names)")]
    UnknownTask {
        /// Where.
        at: Location,
        /// The name as written.
        name: String,
    },
    /// Nothing but punctuation or spaces after the colon.
    #[error("{at}: the phrasing is empty")]
    EmptyPhrasing {
        /// Where.
        at: Location,
    },
    /// A phrasing longer than [`MAX_PHRASING_CHARS`].
    #[error("{at}: the phrasing has {chars} characters; at most {MAX_PHRASING_CHARS} fit")]
    PhrasingTooLong {
        /// Where.
        at: Location,
        /// Its length.
        chars: usize,
    },
    /// The same phrasing (after normalisation) twice, in one file or across both.
    #[error("{at}: `{phrasing}` repeats {first} (phrasings are compared ignoring case and punctuation)")]
    Duplicate {
        /// The repeat.
        at: Location,
        /// The first occurrence.
        first: Location,
        /// The phrasing as written at `at`.
        phrasing: String,
    },
    /// A second phrasing for a task in a file that takes exactly one per task.
    #[error(
        "{at}: a second phrasing for `{task}` (the first is on line {first_line}); this file takes exactly one per task"
    )]
    ExtraPhrasing {
        /// Where.
        at: Location,
        /// The task.
        task: Task,
        /// Line of the first phrasing.
        first_line: usize,
    },
    /// A task without any phrasing.
    #[error("{file}: task `{task}` has no phrasing")]
    TaskWithoutPhrasing {
        /// The file.
        file: String,
        /// The task.
        task: Task,
    },
}

/// How many phrasings a file gives each task.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PerTask {
    /// One or more (training).
    AtLeastOne,
    /// Exactly one (evaluation).
    ExactlyOne,
}

/// One phrasing of a task.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Phrasing {
    /// As written in the file.
    pub text: String,
    /// After [`normalize`].
    pub normalized: String,
    /// 1-based line number in its file.
    pub line: usize,
}

/// The phrasings of one file, grouped by task in [`Task::all`] order.
#[derive(Debug, Clone)]
pub struct Phrasings {
    file: String,
    by_task: Vec<(Task, Vec<Phrasing>)>,
}

impl Phrasings {
    /// Parses one instruction file; `file` names it in errors. Rejects malformed lines, unknown
    /// task names, empty, overlong and duplicate phrasings, and tasks with no phrasing or, for
    /// [`PerTask::ExactlyOne`], with more than one.
    pub fn parse(file: &str, text: &str, per_task: PerTask) -> Result<Phrasings, InstructionError> {
        let mut by_task: Vec<(Task, Vec<Phrasing>)> = Task::all().into_iter().map(|t| (t, Vec::new())).collect();
        let mut first_seen: HashMap<String, usize> = HashMap::new();
        for (index, raw) in text.lines().enumerate() {
            let at = Location { file: file.to_owned(), line: index + 1 };
            let line = raw.trim();
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            let Some((name, phrasing)) = line.split_once(':') else {
                return Err(InstructionError::MissingColon { at });
            };
            let name = name.trim();
            let Some(slot) = by_task.iter_mut().find(|(task, _)| task.name() == name) else {
                return Err(InstructionError::UnknownTask { at, name: name.to_owned() });
            };
            let phrasing = phrasing.trim();
            let normalized = normalize(phrasing);
            let chars = phrasing.chars().count();
            if normalized.is_empty() {
                return Err(InstructionError::EmptyPhrasing { at });
            }
            if chars > MAX_PHRASING_CHARS {
                return Err(InstructionError::PhrasingTooLong { at, chars });
            }
            if let Some(&first_line) = first_seen.get(&normalized) {
                let first = Location { file: file.to_owned(), line: first_line };
                return Err(InstructionError::Duplicate { at, first, phrasing: phrasing.to_owned() });
            }
            if let (PerTask::ExactlyOne, Some(first)) = (per_task, slot.1.first()) {
                return Err(InstructionError::ExtraPhrasing { at, task: slot.0, first_line: first.line });
            }
            first_seen.insert(normalized.clone(), at.line);
            slot.1.push(Phrasing { text: phrasing.to_owned(), normalized, line: at.line });
        }
        if let Some((task, _)) = by_task.iter().find(|(_, phrasings)| phrasings.is_empty()) {
            return Err(InstructionError::TaskWithoutPhrasing { file: file.to_owned(), task: *task });
        }
        Ok(Phrasings { file: file.to_owned(), by_task })
    }

    /// The file these came from.
    pub fn file(&self) -> &str {
        &self.file
    }

    /// The phrasings of `task` (at least one).
    pub fn of(&self, task: Task) -> &[Phrasing] {
        self.by_task.iter().find(|(t, _)| *t == task).map(|(_, p)| p.as_slice()).unwrap_or_default()
    }

    /// Every task with its phrasings, in [`Task::all`] order.
    pub fn by_task(&self) -> impl Iterator<Item = (Task, &[Phrasing])> {
        self.by_task.iter().map(|(task, phrasings)| (*task, phrasings.as_slice()))
    }

    /// Every (task, phrasing) pair, tasks in [`Task::all`] order, phrasings in file order.
    pub fn iter(&self) -> impl Iterator<Item = (Task, &Phrasing)> {
        self.by_task.iter().flat_map(|(task, phrasings)| phrasings.iter().map(move |p| (*task, p)))
    }

    /// Number of phrasings.
    pub fn len(&self) -> usize {
        self.by_task.iter().map(|(_, p)| p.len()).sum()
    }

    /// Always false: a parsed file has a phrasing for every task.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// The training and the evaluation phrasings, which share no phrasing.
#[derive(Debug, Clone)]
pub struct Instructions {
    /// Several phrasings per task, for training.
    pub train: Phrasings,
    /// Exactly one phrasing per task, never seen in training.
    pub eval: Phrasings,
}

impl Instructions {
    /// The phrasings compiled into the binary from `lang/train.txt` and `lang/eval.txt`.
    ///
    /// Panics if an edit broke those files; `cargo test` and every `vlasim lang` command report
    /// that with file and line (parse [`EMBEDDED_TRAIN_TEXT`] and [`EMBEDDED_EVAL_TEXT`] to do the same).
    pub fn embedded() -> &'static Instructions {
        &EMBEDDED
    }

    /// Parses the two files (their text) and checks that no evaluation phrasing is a training one.
    pub fn parse(train_text: &str, eval_text: &str) -> Result<Instructions, InstructionError> {
        let train = Phrasings::parse(TRAIN_FILE, train_text, PerTask::AtLeastOne)?;
        let eval = Phrasings::parse(EVAL_FILE, eval_text, PerTask::ExactlyOne)?;
        let train_lines: HashMap<&str, usize> = train.iter().map(|(_, p)| (p.normalized.as_str(), p.line)).collect();
        for (_, phrasing) in eval.iter() {
            if let Some(&line) = train_lines.get(phrasing.normalized.as_str()) {
                return Err(InstructionError::Duplicate {
                    at: Location { file: EVAL_FILE.into(), line: phrasing.line },
                    first: Location { file: TRAIN_FILE.into(), line },
                    phrasing: phrasing.text.clone(),
                });
            }
        }
        Ok(Instructions { train, eval })
    }

    /// The evaluation phrasing of `task`.
    pub fn eval_phrasing(&self, task: Task) -> &str {
        self.eval.of(task).first().map(|p| p.text.as_str()).unwrap_or_default()
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashSet;

    use super::*;

    /// Line of `task` in a file with one line per task in [`Task::all`] order.
    fn line_of(task: Task) -> usize {
        Task::all().iter().position(|t| *t == task).expect("a task") + 1
    }

    fn error_of(text: &str, per_task: PerTask) -> String {
        let complete: String = Task::all().iter().map(|t| format!("{t}: do {t}\n")).collect();
        Phrasings::parse("test.txt", &format!("{complete}{text}"), per_task).unwrap_err().to_string()
    }

    #[test]
    fn embedded_instructions_are_valid() {
        let instructions = Instructions::parse(EMBEDDED_TRAIN_TEXT, EMBEDDED_EVAL_TEXT);
        assert!(instructions.is_ok(), "{}", instructions.unwrap_err());
    }

    #[test]
    fn every_task_has_at_least_12_training_phrasings_and_exactly_one_for_evaluation() {
        let instructions = Instructions::embedded();
        for (task, phrasings) in instructions.train.by_task() {
            assert!(phrasings.len() >= 12, "{task} has {} training phrasings", phrasings.len());
            assert_eq!(instructions.eval.of(task).len(), 1, "{task}");
            assert_eq!(instructions.eval_phrasing(task), instructions.eval.of(task)[0].text);
        }
        assert!(instructions.train.len() >= 12 * 34);
        assert_eq!(instructions.eval.len(), 34);
    }

    #[test]
    fn training_and_evaluation_phrasings_are_disjoint_after_normalisation() {
        let instructions = Instructions::embedded();
        let train: HashSet<&str> = instructions.train.iter().map(|(_, p)| p.normalized.as_str()).collect();
        assert_eq!(train.len(), instructions.train.len(), "no duplicates within training");
        for (task, phrasing) in instructions.eval.iter() {
            assert!(
                !train.contains(phrasing.normalized.as_str()),
                "{task}: `{}` is also a training phrasing",
                phrasing.text
            );
        }
    }

    #[test]
    fn parse_errors_name_file_line_and_reason() {
        let tasks = Task::all().len();
        let open_drawer_line = line_of(Task::OpenDrawer);
        assert_eq!(
            error_of("# fine\n\nopen_drawer pull it\n", PerTask::AtLeastOne),
            format!("test.txt:{}: expected `task_name: phrasing`", tasks + 3)
        );
        assert_eq!(
            error_of("open_drawr: pull it\n", PerTask::AtLeastOne),
            format!("test.txt:{}: unknown task `open_drawr` (`vlasim expert --list` shows the 34 names)", tasks + 1)
        );
        assert_eq!(
            error_of("open_drawer: ?!\n", PerTask::AtLeastOne),
            format!("test.txt:{}: the phrasing is empty", tasks + 1)
        );
        assert!(
            error_of(&format!("open_drawer: {}\n", "pull ".repeat(40)), PerTask::AtLeastOne)
                .starts_with(&format!("test.txt:{}: the phrasing has 199 characters", tasks + 1))
        );
        assert_eq!(
            error_of("close_drawer: Do  open_drawer!\n", PerTask::AtLeastOne),
            format!(
                "test.txt:{}: `Do  open_drawer!` repeats test.txt:{open_drawer_line} (phrasings are compared ignoring case and punctuation)",
                tasks + 1
            )
        );
        assert_eq!(
            error_of("open_drawer: pull it open\n", PerTask::ExactlyOne),
            format!(
                "test.txt:{}: a second phrasing for `open_drawer` (the first is on line {open_drawer_line}); this file takes exactly one per task",
                tasks + 1
            )
        );
    }

    #[test]
    fn a_task_without_phrasing_is_reported() {
        let text: String =
            Task::all().iter().filter(|t| **t != Task::StackBlock).map(|t| format!("{t}: do {t}\n")).collect();
        let error = Phrasings::parse("test.txt", &text, PerTask::AtLeastOne).unwrap_err();
        assert_eq!(error.to_string(), "test.txt: task `stack_block` has no phrasing");
    }

    #[test]
    fn an_evaluation_phrasing_used_in_training_is_reported() {
        let train: String = Task::all().iter().map(|t| format!("{t}: do {t}\n")).collect();
        let eval: String = Task::all().iter().map(|t| format!("{t}: please do {t}\n")).collect();
        assert!(Instructions::parse(&train, &eval).is_ok());
        let eval = eval.replace("please do open_drawer", "Do open_drawer.");
        let error = Instructions::parse(&train, &eval).unwrap_err();
        let line = line_of(Task::OpenDrawer);
        assert_eq!(
            error.to_string(),
            format!(
                "lang/eval.txt:{line}: `Do open_drawer.` repeats lang/train.txt:{line} (phrasings are compared ignoring case and punctuation)"
            )
        );
    }
}
