//! Normalisation of instruction text: the one definition of which typed strings count as the same
//! instruction.
//!
//! It is written once, as a Hugging Face `tokenizers` normalizer pipeline. The matcher applies it to
//! typed input and the training phrasings, and the tokenizer stores the same pipeline in
//! `tokenizer.json`, so a Python user who loads that file sees exactly the text our models saw.
//! The pipeline, in order:
//!
//! 1. NFKC: full-width letters, ligatures and other compatibility forms become plain ones.
//! 2. Unicode lower case.
//! 3. Typographic apostrophes (`’ ‘ ‚ ‛ ′` and the backtick) become `'`; typographic hyphens
//!    (`‐ ‑ ‒ −`) become `-`.
//! 4. "counter clockwise", "counter-clockwise", "anti clockwise" and "anti-clockwise" become one word,
//!    "counterclockwise" or "anticlockwise": written apart, "clockwise" would name the opposite turn.
//! 5. Everything but letters, digits, combining marks, other symbols (emoji, so they can be reported
//!    as unknown words), whitespace, `'` and `-` becomes a space. En and em dashes separate words.
//! 6. `'` and `-` survive only inside a word (`don't`, `left-hand`); elsewhere they become spaces.
//! 7. Runs of whitespace become one space; leading and trailing spaces go.
//!
//! The regular expressions use only syntax that both `fancy-regex` (ours) and Oniguruma (the Python
//! package's) read the same way.

use std::sync::LazyLock;

use tokenizers::normalizers::{Lowercase, NFKC, Replace, Sequence, Strip};
use tokenizers::{NormalizedString, Normalizer, NormalizerWrapper};

static NORMALIZER: LazyLock<NormalizerWrapper> = LazyLock::new(normalizer);

/// The normalisation pipeline, as a `tokenizers` normalizer (see the module documentation).
pub fn normalizer() -> NormalizerWrapper {
    let replace = |pattern: &str, content: &str| -> NormalizerWrapper {
        Replace::new(tokenizers::normalizers::replace::ReplacePattern::Regex(pattern.into()), content)
            .expect("the normalisation patterns are fixed and valid (checked by the tests)")
            .into()
    };
    Sequence::new(vec![
        NFKC.into(),
        Lowercase.into(),
        replace("[‘’‚‛′`]", "'"),
        replace("[‐‑‒−]", "-"),
        replace(r"\bcounter[\s-]*clockwise", "counterclockwise"),
        replace(r"\banti[\s-]*clockwise", "anticlockwise"),
        replace(r"[^\p{L}\p{N}\p{M}\p{So}\s'-]", " "),
        replace(r"(?<![\p{L}\p{N}])['-]+|['-]+(?![\p{L}\p{N}])", " "),
        replace(r"\s+", " "),
        Strip::new(true, true).into(),
    ])
    .into()
}

/// `text` normalised: lower case, no punctuation except inside words, words separated by single spaces.
///
/// Time is linear in the length of `text`; callers that take typed input cap its length first.
pub fn normalize(text: &str) -> String {
    let mut normalized = NormalizedString::from(text);
    // NOTE: the only fallible step is a regex search, which fails only past fancy-regex's backtrack
    // limit (a million steps); the lookarounds here backtrack at most one character per position.
    NORMALIZER.normalize(&mut normalized).expect("the normalisation patterns cannot exceed the backtrack limit");
    normalized.get().to_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn folds_case_punctuation_and_spacing() {
        assert_eq!(normalize("  Open   the DRAWER!!  "), "open the drawer");
        assert_eq!(normalize("Push the red block, then... stop."), "push the red block then stop");
        assert_eq!(normalize("open_drawer"), "open drawer");
        assert_eq!(normalize("(lift) \"the\" [red] {block}"), "lift the red block");
        assert_eq!(normalize("ÖFFNE die Schublade"), "öffne die schublade");
    }

    #[test]
    fn keeps_apostrophes_and_hyphens_inside_words_only() {
        assert_eq!(normalize("Don’t rotate it clock‐wise"), "don't rotate it clock-wise");
        assert_eq!(normalize("'quoted' - and -dashed- words"), "quoted and dashed words");
        assert_eq!(normalize("the block—now"), "the block now");
        assert_eq!(normalize("rock--roll"), "rock roll");
    }

    #[test]
    fn joins_the_counterclockwise_spellings() {
        for text in ["Counter Clockwise", "counter-clockwise", "counter‐clockwise", "counterclockwise"] {
            assert_eq!(normalize(text), "counterclockwise", "{text}");
        }
        assert_eq!(normalize("turn it anti - clockwise"), "turn it anticlockwise");
        assert_eq!(normalize("turn it clockwise"), "turn it clockwise");
    }

    #[test]
    fn folds_compatibility_forms() {
        assert_eq!(normalize("ＯＰＥＮ　ｔｈｅ　ｄｒａｗｅｒ"), "open the drawer");
        assert_eq!(normalize("ﬁnd the ﬂat block"), "find the flat block");
    }

    #[test]
    fn keeps_symbols_and_other_scripts_as_words() {
        assert_eq!(normalize("请打开抽屉。"), "请打开抽屉");
        assert_eq!(normalize("open 🙂 the drawer"), "open 🙂 the drawer");
        assert_eq!(normalize("?!…"), "");
        assert_eq!(normalize(""), "");
    }

    #[test]
    fn long_text_is_normalised_whole() {
        let long = "Open the drawer! ".repeat(600);
        let normalized = normalize(&long);
        assert_eq!(normalized.split(' ').count(), 1800);
    }
}
