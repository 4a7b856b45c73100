//! `vlasim lang`: understand a typed instruction, check the instruction files, or train and save a tokenizer.

use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};
use clap::{ArgGroup, Args};

use vlasim::lang::instructions::{EMBEDDED_EVAL_TEXT, EMBEDDED_TRAIN_TEXT, Instructions};
use vlasim::lang::tokenizer::{self, DEFAULT_VOCAB_SIZE};
use vlasim::lang::understand;

/// Arguments of `vlasim lang`.
#[derive(Args)]
#[command(group(ArgGroup::new("action").required(true).args(["understand", "check", "tokenizer"])))]
pub struct LangArgs {
    /// Show how a typed instruction is understood: task, score, unknown words, suggestions.
    #[arg(long, value_name = "TEXT")]
    understand: Option<String>,
    /// Count the phrasings per task and show how each evaluation phrasing is understood.
    #[arg(long)]
    check: bool,
    /// Train a BPE tokenizer on the training phrasings (plus --corpus) and save it to this tokenizer.json.
    #[arg(long, value_name = "PATH")]
    tokenizer: Option<PathBuf>,
    /// Vocabulary size of the tokenizer.
    #[arg(long, default_value_t = DEFAULT_VOCAB_SIZE, requires = "tokenizer")]
    vocab_size: usize,
    /// Extra text files for the tokenizer, one training text per line.
    #[arg(long, value_name = "FILE", requires = "tokenizer")]
    corpus: Vec<PathBuf>,
}

/// Runs `vlasim lang`.
pub fn run(args: LangArgs) -> Result<()> {
    // Report a broken instruction file with its line here, before anything relies on it.
    Instructions::parse(EMBEDDED_TRAIN_TEXT, EMBEDDED_EVAL_TEXT)?;
    if let Some(text) = args.understand {
        print_understanding(&text);
    } else if args.check {
        check()?;
    } else if let Some(path) = args.tokenizer {
        save_tokenizer(&path, args.vocab_size, &args.corpus)?;
    }
    Ok(())
}

fn print_understanding(text: &str) {
    let understanding = understand(text);
    println!("normalized:  {}", understanding.normalized);
    if let Some(task) = understanding.task {
        println!("task:        {task} (score {:.2})", understanding.score);
    }
    if let Some(problem) = &understanding.problem {
        println!("problem:     {problem:?} (best score {:.2})", understanding.score);
    }
    for word in &understanding.unknown_words {
        match understanding.corrections.iter().find(|(typed, _)| typed == word) {
            Some((_, known)) => println!("unknown:     {word} (read as {known})"),
            None => println!("unknown:     {word}"),
        }
    }
    for (task, phrasing) in &understanding.suggestions {
        println!("suggestion:  {:<24} \"{phrasing}\"", task.name());
    }
}

fn check() -> Result<()> {
    let instructions = Instructions::embedded();
    let counts: Vec<usize> = instructions.train.by_task().map(|(_, phrasings)| phrasings.len()).collect();
    println!(
        "{}: {} phrasings, {}–{} per task; {}: {}",
        instructions.train.file(),
        instructions.train.len(),
        counts.iter().min().unwrap_or(&0),
        counts.iter().max().unwrap_or(&0),
        instructions.eval.file(),
        instructions.eval.len()
    );
    let mut misunderstood = 0;
    for (task, phrasing) in instructions.eval.iter() {
        let understanding = understand(&phrasing.text);
        let verdict = match (understanding.task, &understanding.problem) {
            (Some(found), _) if found == task => format!("ok {:.2}", understanding.score),
            (Some(found), _) => format!("WRONG: {found}"),
            (None, problem) => format!("WRONG: {problem:?}"),
        };
        misunderstood += usize::from(understanding.task != Some(task));
        println!(
            "{:<24} {:>3} train  {:<14} \"{}\"",
            task.name(),
            instructions.train.of(task).len(),
            verdict,
            phrasing.text
        );
    }
    if misunderstood > 0 {
        bail!("{misunderstood} evaluation phrasings were not understood as their task");
    }
    Ok(())
}

fn save_tokenizer(path: &Path, vocab_size: usize, corpus_files: &[PathBuf]) -> Result<()> {
    let mut texts = Vec::new();
    for file in corpus_files {
        texts.push(std::fs::read_to_string(file).with_context(|| format!("cannot read corpus {}", file.display()))?);
    }
    let lines = texts.iter().flat_map(|text| text.lines()).filter(|line| !line.trim().is_empty());
    let tokenizer = tokenizer::train(lines, vocab_size)?;
    if let Some(dir) = path.parent().filter(|dir| !dir.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
    }
    tokenizer.save(path)?;
    println!("wrote {} ({} tokens)", path.display(), tokenizer.vocab_size());
    Ok(())
}
