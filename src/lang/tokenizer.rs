//! The sub-word tokenizer of the VLAs' language models, a Hugging Face `tokenizers` BPE trained on
//! the training phrasings, the phrases of the pre-training captions and question–answer pairs
//! ([`crate::pretrain::describe::corpus_texts`]), and any extra text.
//!
//! Why BPE: the language models in the zoo are decoders trained with next-token loss (Gemma-, Llama-,
//! Phi-style), and those families use BPE with `<s>`/`</s>`; WordPiece's `[CLS]`/`[SEP]` belongs to
//! BERT-style encoders. Over a closed tabletop vocabulary, a few hundred merges make every corpus word
//! one token, and an unseen word still splits into known characters instead of becoming `<unk>`.
//! Words are split on spaces and marked with `▁` (Metaspace, as SentencePiece does), so decoding
//! restores the spaces.
//!
//! The saved `tokenizer.json` is self-contained for Python users: it holds the normaliser of
//! [`super::normalize`] (so `tokenizers.Tokenizer.from_file` sees the same text we do), the
//! `<s> … </s>` template and the padding token. Checked once by hand: Python's `tokenizers` 0.23.3
//! (Oniguruma regexes) gave the same normalised text and ids as this module on all 488 phrasings
//! and nine adversarial strings (typographic punctuation, full-width letters, emoji, CJK, tabs). The words of the training corpus, which
//! [`Encoding::unknown_words`] is measured against, go beside it in `tokenizer.words.txt`, one word a
//! line. Not inside: the `tokenizers` loader (Rust and Python alike) fails on a top-level key it
//! does not know, and the vocabulary cannot stand in for the list, since a rare corpus word may be
//! split into pieces while a never-seen word may happen to be one token.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use tokenizers::models::TrainerWrapper;
use tokenizers::models::bpe::{BPE, BpeTrainer};
use tokenizers::pre_tokenizers::metaspace::{Metaspace, PrependScheme};
use tokenizers::processors::template::TemplateProcessing;
use tokenizers::{AddedToken, PaddingDirection, PaddingParams, TruncationDirection};

use super::instructions::Instructions;
use super::normalize::{normalize, normalizer};
use crate::pretrain::describe::corpus_texts;

/// Padding token (id 0).
pub const PAD: &str = "<pad>";
/// Token for characters never seen in training (id 1).
pub const UNK: &str = "<unk>";
/// Beginning of sequence (id 2).
pub const BOS: &str = "<s>";
/// End of sequence (id 3).
pub const EOS: &str = "</s>";
/// A vocabulary size for the tiny models. Trained on the instructions and the pre-training phrases,
/// BPE runs out of pairs to merge at 452 tokens (instructions alone: about 420), every word whole.
pub const DEFAULT_VOCAB_SIZE: usize = 512;
/// Smallest vocabulary accepted: the four special tokens, an alphabet of some 30 characters and a
/// few merges.
pub const MIN_VOCAB_SIZE: usize = 64;
/// Extension that replaces `.json` for the corpus word list beside a saved tokenizer.
const CORPUS_WORDS_EXTENSION: &str = "words.txt";

/// Why a tokenizer could not be trained, saved, loaded or used.
#[derive(Debug, thiserror::Error)]
pub enum TokenizerError {
    /// The vocabulary cannot even hold the special tokens and an alphabet.
    #[error("vocabulary size {0} is too small: at least {MIN_VOCAB_SIZE} (special tokens, alphabet and some merges)")]
    VocabTooSmall(usize),
    /// `max_len` leaves no room for `<s>` and `</s>`.
    #[error("max_len {0} is too small: <s> and </s> alone take 2")]
    MaxLenTooSmall(usize),
    /// Training failed inside `tokenizers`.
    #[error("cannot train the tokenizer: {0}")]
    Train(String),
    /// Encoding or decoding failed inside `tokenizers`.
    #[error("cannot encode or decode: {0}")]
    Codec(String),
    /// Reading or writing the file failed.
    #[error("{}: {source}", path.display())]
    Io {
        /// The file.
        path: PathBuf,
        /// The cause.
        source: std::io::Error,
    },
    /// The file is not a tokenizer saved by [`Tokenizer::save`].
    #[error("{}: not a valid tokenizer: {reason}", path.display())]
    Corrupt {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        reason: String,
    },
}

/// A text encoded for a model.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Encoding {
    /// `<s>`, the text's tokens, `</s>`, then `<pad>` up to `max_len`.
    pub ids: Vec<u32>,
    /// 1 for real tokens (including `<s>` and `</s>`), 0 for padding.
    pub attention_mask: Vec<u32>,
    /// Words of the normalised text that never occur in the training corpus, in order, each once.
    pub unknown_words: Vec<String>,
    /// Whether tokens were dropped to fit `max_len` (`</s>` is always kept).
    pub truncated: bool,
}

/// The BPE tokenizer with the words of the corpus it was trained on.
#[derive(Debug, Clone)]
pub struct Tokenizer {
    inner: tokenizers::Tokenizer,
    corpus_words: BTreeSet<String>,
}

/// Trains a tokenizer of at most `vocab_size` tokens on the training phrasings, the pre-training
/// corpus's phrases and `extra_corpus` (evaluation phrasings stay unseen). Deterministic: the same
/// corpus gives the same file.
pub fn train<'a>(
    extra_corpus: impl IntoIterator<Item = &'a str>,
    vocab_size: usize,
) -> Result<Tokenizer, TokenizerError> {
    if vocab_size < MIN_VOCAB_SIZE {
        return Err(TokenizerError::VocabTooSmall(vocab_size));
    }
    let pretraining = corpus_texts();
    // Collected so that the texts' lifetime can shorten to the pre-training texts' (a generic
    // iterator's item lifetime cannot).
    let extra_corpus: Vec<&str> = extra_corpus.into_iter().collect();
    let corpus: Vec<&str> = Instructions::embedded()
        .train
        .iter()
        .map(|(_, phrasing)| phrasing.text.as_str())
        .chain(pretraining.iter().map(String::as_str))
        .chain(extra_corpus.iter().copied())
        .collect();
    let train_error = |e: tokenizers::Error| TokenizerError::Train(e.to_string());
    let specials = [PAD, UNK, BOS, EOS].map(|token| AddedToken::from(token, true));
    let mut trainer: TrainerWrapper = BpeTrainer::builder()
        .vocab_size(vocab_size)
        .show_progress(false)
        .special_tokens(specials.to_vec())
        .build()
        .into();
    let model = BPE::builder().unk_token(UNK.into()).build().map_err(train_error)?;
    let mut inner = tokenizers::Tokenizer::new(model);
    let metaspace = Metaspace::new('▁', PrependScheme::Always, true);
    inner.with_normalizer(Some(normalizer())).map_err(train_error)?;
    inner.with_pre_tokenizer(Some(metaspace.clone())).with_decoder(Some(metaspace));
    inner.train(&mut trainer, corpus.iter()).map_err(train_error)?;
    let id = |token: &str| inner.token_to_id(token).expect("special tokens are added by the trainer");
    let template = TemplateProcessing::builder()
        .try_single(format!("{BOS} $A {EOS}"))
        .map_err(TokenizerError::Train)?
        .special_tokens(vec![(BOS, id(BOS)), (EOS, id(EOS))])
        .build()
        .map_err(|e| TokenizerError::Train(e.to_string()))?;
    let padding = PaddingParams { pad_id: id(PAD), pad_token: PAD.into(), ..PaddingParams::default() };
    inner.with_post_processor(Some(template)).with_padding(Some(padding));
    let corpus_words = corpus.iter().flat_map(|text| words(text)).collect();
    Ok(Tokenizer { inner, corpus_words })
}

/// The words of `text` after normalisation.
fn words(text: &str) -> Vec<String> {
    normalize(text).split(' ').filter(|w| !w.is_empty()).map(str::to_owned).collect()
}

impl Tokenizer {
    /// Number of tokens, special tokens included.
    pub fn vocab_size(&self) -> usize {
        self.inner.get_vocab_size(true)
    }

    /// The id of a token, if it is in the vocabulary.
    pub fn token_id(&self, token: &str) -> Option<u32> {
        self.inner.token_to_id(token)
    }

    /// Encodes `text` as `<s> tokens </s>` padded or truncated to exactly `max_len` ids.
    pub fn encode(&self, text: &str, max_len: usize) -> Result<Encoding, TokenizerError> {
        if max_len < 2 {
            return Err(TokenizerError::MaxLenTooSmall(max_len));
        }
        let codec_error = |e: tokenizers::Error| TokenizerError::Codec(e.to_string());
        let mut encoding = self.inner.encode(text, false).map_err(codec_error)?;
        let content_len = max_len - 2;
        let truncated = encoding.len() > content_len;
        encoding.truncate(content_len, 0, TruncationDirection::Right);
        encoding.take_overflowing();
        let mut encoding = self.inner.post_process(encoding, None, true).map_err(codec_error)?;
        let pad_id = self.token_id(PAD).expect("a trained tokenizer has <pad>");
        encoding.pad(max_len, pad_id, 0, PAD, PaddingDirection::Right);
        let mut unknown_words: Vec<String> = Vec::new();
        for word in words(text) {
            if !self.corpus_words.contains(&word) && !unknown_words.contains(&word) {
                unknown_words.push(word);
            }
        }
        Ok(Encoding {
            ids: encoding.get_ids().to_vec(),
            attention_mask: encoding.get_attention_mask().to_vec(),
            unknown_words,
            truncated,
        })
    }

    /// The text of `ids`, special tokens left out.
    pub fn decode(&self, ids: &[u32]) -> Result<String, TokenizerError> {
        self.inner.decode(ids, true).map_err(|e| TokenizerError::Codec(e.to_string()))
    }

    /// Writes `path` (Hugging Face's `tokenizer.json` format) and the corpus words beside it
    /// (`tokenizer.json` → `tokenizer.words.txt`).
    pub fn save(&self, path: &Path) -> Result<(), TokenizerError> {
        self.inner
            .save(path, true)
            .map_err(|e| TokenizerError::Io { path: path.to_owned(), source: std::io::Error::other(e) })?;
        let words_path = corpus_words_path(path);
        let words: String = self.corpus_words.iter().map(|word| format!("{word}\n")).collect();
        std::fs::write(&words_path, words).map_err(|source| TokenizerError::Io { path: words_path, source })
    }

    /// Reads a tokenizer written by [`Tokenizer::save`]: `path` and the corpus words beside it.
    pub fn load(path: &Path) -> Result<Tokenizer, TokenizerError> {
        let text =
            std::fs::read_to_string(path).map_err(|source| TokenizerError::Io { path: path.to_owned(), source })?;
        let corrupt = |reason: String| TokenizerError::Corrupt { path: path.to_owned(), reason };
        let inner: tokenizers::Tokenizer = text.parse().map_err(|e| corrupt(format!("{e}")))?;
        for token in [PAD, UNK, BOS, EOS] {
            if inner.token_to_id(token).is_none() {
                return Err(corrupt(format!("no `{token}` token")));
            }
        }
        let words_path = corpus_words_path(path);
        let words =
            std::fs::read_to_string(&words_path).map_err(|source| TokenizerError::Io { path: words_path, source })?;
        let corpus_words = words.lines().map(str::to_owned).collect();
        Ok(Tokenizer { inner, corpus_words })
    }
}

/// Where the corpus word list of the tokenizer saved at `path` lives.
fn corpus_words_path(path: &Path) -> PathBuf {
    path.with_extension(CORPUS_WORDS_EXTENSION)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn trained() -> Tokenizer {
        train([], DEFAULT_VOCAB_SIZE).expect("the instruction corpus trains")
    }

    /// A fresh directory for one test's files.
    fn scratch_dir(test: &str) -> PathBuf {
        let dir = std::env::temp_dir().join(format!("vlasim-{test}-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("the temporary directory is writable");
        dir
    }

    #[test]
    fn every_training_word_is_one_token_and_ids_start_with_the_special_tokens() {
        let tokenizer = trained();
        assert!(tokenizer.vocab_size() <= DEFAULT_VOCAB_SIZE, "{}", tokenizer.vocab_size());
        assert_eq!([PAD, UNK, BOS, EOS].map(|t| tokenizer.token_id(t)), [Some(0), Some(1), Some(2), Some(3)]);
        for word in &tokenizer.corpus_words {
            assert!(tokenizer.token_id(&format!("▁{word}")).is_some(), "`{word}` is split");
        }
    }

    #[test]
    fn pretraining_texts_tokenize_without_unknown_words() {
        let tokenizer = trained();
        for text in corpus_texts() {
            let encoding = tokenizer.encode(&text, 32).unwrap();
            assert!(encoding.unknown_words.is_empty(), "`{text}`: {:?}", encoding.unknown_words);
            assert!(!encoding.truncated, "`{text}`");
        }
    }

    #[test]
    fn encodes_with_bos_eos_and_padding() {
        let tokenizer = trained();
        let encoding = tokenizer.encode("Open the drawer!", 8).unwrap();
        assert_eq!(encoding.ids.len(), 8);
        assert_eq!(encoding.ids[0], 2);
        assert_eq!(&encoding.ids[4..], [3, 0, 0, 0], "<s> open the drawer </s> and 3 × <pad>");
        assert_eq!(encoding.attention_mask, [1, 1, 1, 1, 1, 0, 0, 0]);
        assert!(!encoding.truncated);
        assert_eq!(tokenizer.decode(&encoding.ids).unwrap(), "open the drawer");
    }

    #[test]
    fn truncates_to_max_len_keeping_eos() {
        let tokenizer = trained();
        let encoding = tokenizer.encode("pull the handle to open the drawer", 5).unwrap();
        assert!(encoding.truncated);
        assert_eq!(encoding.ids.len(), 5);
        assert_eq!((encoding.ids[0], encoding.ids[4]), (2, 3));
        assert_eq!(encoding.attention_mask, [1; 5]);
        assert_eq!(tokenizer.decode(&encoding.ids).unwrap(), "pull the handle");
        assert!(matches!(tokenizer.encode("x", 1), Err(TokenizerError::MaxLenTooSmall(1))));
        assert!(matches!(train([], MIN_VOCAB_SIZE - 1), Err(TokenizerError::VocabTooSmall(_))));
    }

    #[test]
    fn evaluation_phrasings_tokenize_without_unk() {
        let tokenizer = trained();
        let unk = tokenizer.token_id(UNK).unwrap();
        for (task, phrasing) in Instructions::embedded().eval.iter() {
            let encoding = tokenizer.encode(&phrasing.text, 32).unwrap();
            assert!(!encoding.ids.contains(&unk), "{task}: `{}` → {:?}", phrasing.text, encoding.ids);
            assert!(!encoding.truncated);
        }
    }

    #[test]
    fn reports_words_never_seen_in_the_corpus() {
        let tokenizer = trained();
        let encoding = tokenizer.encode("Kindly open the drawer, kindly!", 16).unwrap();
        assert_eq!(encoding.unknown_words, ["kindly"]);
        let unk = tokenizer.token_id(UNK).unwrap();
        assert!(!encoding.ids.contains(&unk), "unseen words split into known pieces");
        let encoding = tokenizer.encode("请打开抽屉", 16).unwrap();
        assert_eq!(encoding.unknown_words, ["请打开抽屉"]);
        assert!(encoding.ids.contains(&unk), "unseen characters are <unk>");
    }

    #[test]
    fn extra_corpus_words_become_known() {
        let tokenizer =
            train(["the drawer is half open", "what colour is the cube? blue"], DEFAULT_VOCAB_SIZE).unwrap();
        assert!(tokenizer.encode("the drawer is half open", 16).unwrap().unknown_words.is_empty());
        assert!(tokenizer.encode("what colour", 16).unwrap().unknown_words.is_empty());
    }

    #[test]
    fn save_then_load_gives_identical_ids_and_training_is_deterministic() {
        let dir = scratch_dir("tokenizer-round-trip");
        let path = dir.join("tokenizer.json");
        let tokenizer = trained();
        tokenizer.save(&path).unwrap();
        let loaded = Tokenizer::load(&path).unwrap();
        assert_eq!(loaded.corpus_words, tokenizer.corpus_words);
        for (_, phrasing) in Instructions::embedded().train.iter().chain(Instructions::embedded().eval.iter()) {
            assert_eq!(loaded.encode(&phrasing.text, 24).unwrap(), tokenizer.encode(&phrasing.text, 24).unwrap());
        }
        let again = dir.join("again.json");
        trained().save(&again).unwrap();
        assert_eq!(std::fs::read(&path).unwrap(), std::fs::read(&again).unwrap(), "same corpus, same file");
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn the_saved_normalizer_is_the_matcher_normalizer() {
        let dir = scratch_dir("tokenizer-normalizer");
        let path = dir.join("tokenizer.json");
        trained().save(&path).unwrap();
        let loaded = Tokenizer::load(&path).unwrap();
        std::fs::remove_dir_all(&dir).unwrap();
        let saved = loaded.inner.get_normalizer().expect("a normalizer is saved");
        for text in ["Don’t OPEN the drawer—now!", "ＰＵＳＨ the red block…", " 🙂 rock--roll 'x' "] {
            let mut normalized = tokenizers::NormalizedString::from(text);
            tokenizers::Normalizer::normalize(saved, &mut normalized).unwrap();
            assert_eq!(normalized.get(), normalize(text));
        }
    }

    #[test]
    fn corrupt_or_missing_files_are_rejected_with_the_path_and_reason() {
        let dir = scratch_dir("tokenizer-corrupt");
        let path = dir.join("tokenizer.json");
        trained().save(&path).unwrap();
        assert!(dir.join("tokenizer.words.txt").exists());
        let saved = std::fs::read_to_string(&path).unwrap();
        for (content, reason) in [
            ("{ not json".to_owned(), "tokenizer.json: not a valid tokenizer: "),
            (saved.replace("\"<pad>\"", "\"<padding>\""), "tokenizer.json: not a valid tokenizer: no `<pad>` token"),
        ] {
            std::fs::write(&path, content).unwrap();
            let error = Tokenizer::load(&path).unwrap_err().to_string();
            assert!(error.contains(reason), "{error}");
        }
        std::fs::write(&path, saved).unwrap();
        std::fs::remove_file(dir.join("tokenizer.words.txt")).unwrap();
        let error = Tokenizer::load(&path).unwrap_err().to_string();
        assert!(error.contains("tokenizer.words.txt: No such file"), "{error}");
        let error = Tokenizer::load(&dir.join("missing.json")).unwrap_err().to_string();
        assert!(error.contains("missing.json: No such file"), "{error}");
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
