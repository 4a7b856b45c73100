//! Reading a misspelt word as the known word it most likely is ("drwaer" → "drawer", "trun" →
//! "turn"). Inflections need no guess: the matcher compares stems.
//!
//! Deliberately conservative: no guess for short words, where one edit turns "lift" into "left", and
//! none when two known words are equally close ("drawr" could be "draw" or "drawer"). The
//! matcher reports every word it read this way.

use std::collections::BTreeSet;

/// The known word `word` most likely means: the one known word within one edit (two for words of
/// seven letters or more) that is nearer than all others; `None` for a known word itself.
pub fn closest_known<'a>(word: &str, known: &'a BTreeSet<String>) -> Option<&'a str> {
    if known.contains(word) {
        return None;
    }
    let word: Vec<char> = word.chars().collect();
    let allowed = match word.len() {
        0..=3 => return None,
        4..=6 => 1,
        _ => 2,
    };
    let mut best: Option<(usize, &str)> = None;
    let mut tied = false;
    for candidate in known {
        let distance = edit_distance(&word, &candidate.chars().collect::<Vec<_>>());
        match best {
            _ if distance > allowed => {}
            Some((nearest, _)) if distance > nearest => {}
            Some((nearest, _)) if distance == nearest => tied = true,
            _ => {
                best = Some((distance, candidate));
                tied = false;
            }
        }
    }
    best.filter(|_| !tied).map(|(_, candidate)| candidate)
}

/// Optimal-string-alignment distance: insertions, deletions, substitutions and swaps of neighbours.
fn edit_distance(a: &[char], b: &[char]) -> usize {
    // NOTE: three rolling rows instead of a full table; words are short but input may hold many.
    let mut before_previous: Vec<usize> = vec![0; b.len() + 1];
    let mut previous: Vec<usize> = (0..=b.len()).collect();
    let mut current = vec![0; b.len() + 1];
    for i in 1..=a.len() {
        current[0] = i;
        for j in 1..=b.len() {
            let substitution = previous[j - 1] + usize::from(a[i - 1] != b[j - 1]);
            current[j] = substitution.min(previous[j] + 1).min(current[j - 1] + 1);
            if i > 1 && j > 1 && a[i - 1] == b[j - 2] && a[i - 2] == b[j - 1] {
                current[j] = current[j].min(before_previous[j - 2] + 1);
            }
        }
        std::mem::swap(&mut before_previous, &mut previous);
        std::mem::swap(&mut previous, &mut current);
    }
    previous[b.len()]
}

#[cfg(test)]
mod tests {
    use super::*;

    fn known() -> BTreeSet<String> {
        ["block", "close", "draw", "drawer", "turn", "lift", "left", "rotate", "slider", "slide", "red", "led"]
            .into_iter()
            .map(String::from)
            .collect()
    }

    #[test]
    fn reads_small_typos() {
        let known = known();
        assert_eq!(closest_known("drwaer", &known), Some("drawer"));
        assert_eq!(closest_known("trun", &known), Some("turn"));
        assert_eq!(closest_known("rotaet", &known), Some("rotate"));
    }

    #[test]
    fn does_not_guess() {
        let known = known();
        assert_eq!(closest_known("lift", &known), None, "known words stay");
        assert_eq!(closest_known("loft", &known), None, "lift and left are equally close");
        assert_eq!(closest_known("drawr", &known), None, "draw and drawer are equally close");
        assert_eq!(closest_known("rad", &known), None, "too short to guess");
        assert_eq!(closest_known("asdf", &known), None);
        assert_eq!(closest_known("请打开抽屉", &known), None);
    }

    #[test]
    fn edit_distance_counts_swaps_as_one() {
        let chars = |s: &str| s.chars().collect::<Vec<_>>();
        assert_eq!(edit_distance(&chars("turn"), &chars("trun")), 1);
        assert_eq!(edit_distance(&chars("drawer"), &chars("drawr")), 1);
        assert_eq!(edit_distance(&chars("kitten"), &chars("sitting")), 3);
        assert_eq!(edit_distance(&chars(""), &chars("abc")), 3);
    }
}
