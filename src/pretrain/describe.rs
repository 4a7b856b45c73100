//! Captions and question–answer pairs read off a [`SceneSample`]'s ground truth: where each block
//! lies, how the blocks stand to each other, the drawer, the sliding door, the lights and the
//! gripper. Every answer is exact: a relation is only asked about when the blocks are clearly
//! apart along it, and a "which" question only when every block it ranges over is.
//!
//! Directions are the robot's, as in the task names ("push the red block to the left"): *left of*
//! means farther towards +y, *in front of* nearer the robot (smaller x), *behind* farther from it.
//! The static camera looks over the robot's left shoulder, so in its image "left" runs towards the
//! lower left and "behind" towards the upper left.
//!
//! The texts form a closed language; [`corpus_texts`] lists every phrase of it, which is what the
//! tokenizer is trained on besides the instructions.

use nalgebra::Vector3;

use super::sample::SceneSample;
use crate::sim::scene::BlockColor;
use crate::sim::tasks::{Place, Side};

/// Two blocks' centres must be this far apart along a direction for one to be "left of" (or in
/// front of, …) the other; closer pairs are never asked about.
pub const RELATION_MARGIN_M: f64 = 0.04;
/// The prompt of a caption.
pub const CAPTION_PROMPT: &str = "describe the scene.";

/// What a text pair is about.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum TextKind {
    /// A description of the whole scene.
    Caption,
    /// Where one block is.
    Place,
    /// The colour of the block at a place.
    Colour,
    /// How many blocks lie at a place.
    Count,
    /// Which blocks stand in a relation to one block.
    Relation,
    /// Whether one block stands in a relation to another.
    Compare,
    /// Whether the drawer is open.
    Drawer,
    /// Where the sliding door is.
    Slider,
    /// Whether the LED is on.
    Led,
    /// Whether the light bulb is on.
    Lightbulb,
    /// What the gripper holds.
    Gripper,
}

impl TextKind {
    /// Every kind.
    pub const ALL: [TextKind; 11] = [
        TextKind::Caption,
        TextKind::Place,
        TextKind::Colour,
        TextKind::Count,
        TextKind::Relation,
        TextKind::Compare,
        TextKind::Drawer,
        TextKind::Slider,
        TextKind::Led,
        TextKind::Lightbulb,
        TextKind::Gripper,
    ];

    /// Lower-case name, as in the manifest.
    pub fn name(self) -> &'static str {
        match self {
            TextKind::Caption => "caption",
            TextKind::Place => "place",
            TextKind::Colour => "colour",
            TextKind::Count => "count",
            TextKind::Relation => "relation",
            TextKind::Compare => "compare",
            TextKind::Drawer => "drawer",
            TextKind::Slider => "slider",
            TextKind::Led => "led",
            TextKind::Lightbulb => "lightbulb",
            TextKind::Gripper => "gripper",
        }
    }
}

/// A prompt and the text a model should answer it with.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TextPair {
    /// What it is about.
    pub kind: TextKind,
    /// The caption prompt or the question.
    pub prompt: String,
    /// The caption or the answer.
    pub target: String,
}

/// A direction one block can stand in from another.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Relation {
    /// Towards the robot's left (+y).
    LeftOf,
    /// Towards the robot's right (-y).
    RightOf,
    /// Nearer the robot (-x).
    InFrontOf,
    /// Farther from the robot (+x).
    Behind,
}

impl Relation {
    /// Every relation.
    pub const ALL: [Relation; 4] = [Relation::LeftOf, Relation::RightOf, Relation::InFrontOf, Relation::Behind];

    /// The words for it.
    pub fn phrase(self) -> &'static str {
        match self {
            Relation::LeftOf => "left of",
            Relation::RightOf => "right of",
            Relation::InFrontOf => "in front of",
            Relation::Behind => "behind",
        }
    }

    /// How far `a` lies from `b` in this direction (negative: the other way).
    pub fn offset_m(self, a: &Vector3<f64>, b: &Vector3<f64>) -> f64 {
        match self {
            Relation::LeftOf => a.y - b.y,
            Relation::RightOf => b.y - a.y,
            Relation::InFrontOf => b.x - a.x,
            Relation::Behind => a.x - b.x,
        }
    }

    /// Whether `a` stands in this relation to `b`, or `None` when they are too close to tell.
    pub fn holds(self, a: &Vector3<f64>, b: &Vector3<f64>) -> Option<bool> {
        let offset = self.offset_m(a, b);
        if offset > RELATION_MARGIN_M {
            Some(true)
        } else if offset < -RELATION_MARGIN_M {
            Some(false)
        } else {
            None
        }
    }
}

/// The places counted and asked about by colour: each holds blocks resting directly in or on it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Surface {
    Table,
    Drawer,
    Cabinet,
}

impl Surface {
    const ALL: [Surface; 3] = [Surface::Table, Surface::Drawer, Surface::Cabinet];

    fn phrase(self) -> &'static str {
        match self {
            Surface::Table => "on the table",
            Surface::Drawer => "in the drawer",
            Surface::Cabinet => "in the cabinet",
        }
    }

    fn holds(self, place: Place) -> bool {
        matches!(
            (self, place),
            (Surface::Table, Place::Table) | (Surface::Drawer, Place::Drawer) | (Surface::Cabinet, Place::Slider(_))
        )
    }
}

/// All captions and question–answer pairs about `sample`.
pub fn describe(sample: &SceneSample) -> Vec<TextPair> {
    let layout = &sample.layout;
    let positions = BlockColor::ALL.map(|color| sample.block_position_m(color));
    let mut texts = vec![TextPair { kind: TextKind::Caption, prompt: CAPTION_PROMPT.into(), target: caption(sample) }];
    let mut ask = |kind: TextKind, prompt: String, target: String| texts.push(TextPair { kind, prompt, target });

    for color in BlockColor::ALL {
        ask(TextKind::Place, place_question(color), place_phrase(layout.blocks[color.index()]));
    }
    for surface in Surface::ALL {
        let there: Vec<BlockColor> =
            BlockColor::ALL.into_iter().filter(|c| surface.holds(layout.blocks[c.index()])).collect();
        ask(TextKind::Count, count_question(surface), number_word(there.len()).into());
        if let [only] = there[..] {
            ask(TextKind::Colour, colour_question(surface.phrase()), only.name().into());
        }
    }
    for base in BlockColor::ALL {
        if let Some(top) = BlockColor::ALL.into_iter().find(|c| layout.blocks[c.index()] == Place::StackedOn(base)) {
            ask(TextKind::Colour, colour_question(&format!("on {}", block_name(base))), top.name().into());
        }
    }

    for reference in BlockColor::ALL {
        for relation in Relation::ALL {
            let others = BlockColor::ALL.into_iter().filter(|c| *c != reference);
            let verdicts: Option<Vec<(BlockColor, bool)>> = others
                .map(|c| relation.holds(&positions[c.index()], &positions[reference.index()]).map(|v| (c, v)))
                .collect();
            let Some(verdicts) = verdicts else { continue };
            let matching: Vec<BlockColor> = verdicts.iter().filter(|(_, v)| *v).map(|(c, _)| *c).collect();
            ask(TextKind::Relation, relation_question(relation, reference), block_list(&matching));
        }
    }
    for (i, a) in BlockColor::ALL.into_iter().enumerate() {
        for b in BlockColor::ALL.into_iter().skip(i + 1) {
            for relation in [Relation::LeftOf, Relation::InFrontOf] {
                if let Some(verdict) = relation.holds(&positions[a.index()], &positions[b.index()]) {
                    ask(TextKind::Compare, compare_question(a, relation, b), yes_no(verdict).into());
                }
            }
        }
    }

    ask(TextKind::Drawer, "is the drawer open?".into(), yes_no(layout.drawer_open).into());
    ask(TextKind::Slider, "where is the slider?".into(), layout.slider.name().into());
    ask(TextKind::Led, "is the led on?".into(), yes_no(layout.led).into());
    ask(TextKind::Lightbulb, "is the light bulb on?".into(), yes_no(layout.lightbulb).into());
    let held = layout.grasped();
    ask(TextKind::Gripper, "what is in the gripper?".into(), held.map_or("nothing".into(), block_name));
    ask(TextKind::Gripper, "is the gripper holding a block?".into(), yes_no(held.is_some()).into());
    texts
}

/// One sentence for the blocks, one for the fixtures.
fn caption(sample: &SceneSample) -> String {
    let layout = &sample.layout;
    let blocks: Vec<String> = BlockColor::ALL.iter().map(|c| place_clause(*c, layout.blocks[c.index()])).collect();
    let fixtures = [
        drawer_clause(layout.drawer_open),
        slider_clause(layout.slider),
        light_clause("light bulb", layout.lightbulb),
        light_clause("led", layout.led),
    ];
    format!("{}. {}.", join_with_and(&blocks), join_with_and(&fixtures))
}

fn join_with_and(parts: &[String]) -> String {
    match parts {
        [] => String::new(),
        [only] => only.clone(),
        [init @ .., last] => format!("{} and {last}", init.join(", ")),
    }
}

fn block_name(color: BlockColor) -> String {
    format!("the {} block", color.name())
}

fn place_phrase(place: Place) -> String {
    match place {
        Place::Table => "on the table".into(),
        Place::Slider(_) => "in the cabinet".into(),
        Place::Drawer => "in the drawer".into(),
        Place::Grasped => "in the gripper".into(),
        Place::StackedOn(base) => format!("on {}", block_name(base)),
    }
}

fn place_clause(color: BlockColor, place: Place) -> String {
    format!("{} is {}", block_name(color), place_phrase(place))
}

fn drawer_clause(open: bool) -> String {
    format!("the drawer is {}", if open { "open" } else { "closed" })
}

fn slider_clause(side: Side) -> String {
    format!("the slider is on the {}", side.name())
}

fn light_clause(light: &str, on: bool) -> String {
    format!("the {light} is {}", if on { "on" } else { "off" })
}

fn place_question(color: BlockColor) -> String {
    format!("where is {}?", block_name(color))
}

fn count_question(surface: Surface) -> String {
    format!("how many blocks are {}?", surface.phrase())
}

fn colour_question(place: &str) -> String {
    format!("what colour is the block {place}?")
}

fn relation_question(relation: Relation, reference: BlockColor) -> String {
    format!("which block is {} {}?", relation.phrase(), block_name(reference))
}

fn compare_question(a: BlockColor, relation: Relation, b: BlockColor) -> String {
    format!("is {} {} {}?", block_name(a), relation.phrase(), block_name(b))
}

fn block_list(colors: &[BlockColor]) -> String {
    if colors.is_empty() {
        return "no block".into();
    }
    join_with_and(&colors.iter().map(|c| block_name(*c)).collect::<Vec<_>>())
}

fn number_word(count: usize) -> &'static str {
    ["zero", "one", "two", "three"].get(count).copied().expect("there are three blocks")
}

fn yes_no(answer: bool) -> &'static str {
    if answer { "yes" } else { "no" }
}

/// Every phrase the captions and answers are built from, each with all its fillers: the text the
/// tokenizer learns the pre-training vocabulary from (a few hundred lines).
pub fn corpus_texts() -> Vec<String> {
    let places = [Place::Table, Place::Slider(Side::Left), Place::Drawer, Place::Grasped]
        .into_iter()
        .chain(BlockColor::ALL.map(Place::StackedOn));
    let mut texts: Vec<String> = vec![CAPTION_PROMPT.into()];
    for place in places {
        texts.extend(BlockColor::ALL.map(|color| place_clause(color, place)));
    }
    for color in BlockColor::ALL {
        texts.push(place_question(color));
        texts.push(colour_question(&format!("on {}", block_name(color))));
        texts.extend(Relation::ALL.map(|relation| relation_question(relation, color)));
        for other in BlockColor::ALL {
            texts.extend(Relation::ALL.map(|relation| compare_question(color, relation, other)));
        }
    }
    for surface in Surface::ALL {
        texts.push(count_question(surface));
        texts.push(colour_question(surface.phrase()));
    }
    texts.push(block_list(&[]));
    texts.push(block_list(&BlockColor::ALL));
    texts.extend((0..=3).map(|n| number_word(n).to_owned()));
    for on in [false, true] {
        texts.push(drawer_clause(on));
        texts.push(light_clause("light bulb", on));
        texts.push(light_clause("led", on));
        texts.push(yes_no(on).into());
    }
    texts.extend([Side::Left, Side::Right].map(slider_clause));
    texts.extend(
        [
            "is the drawer open?",
            "where is the slider?",
            "is the led on?",
            "is the light bulb on?",
            "what is in the gripper?",
            "is the gripper holding a block?",
            "nothing",
        ]
        .map(String::from),
    );
    texts
}

#[cfg(test)]
mod tests {
    use std::collections::{BTreeSet, HashMap};

    use super::*;
    use crate::lang::normalize::normalize;
    use crate::pretrain::sample::sample_state;
    use crate::sim::oracle::perceive;
    use crate::sim::tasks::Symbolic;
    use crate::sim::world::SceneState;

    const SAMPLES: u64 = 1500;

    fn answers(texts: &[TextPair], kind: TextKind) -> HashMap<String, String> {
        texts.iter().filter(|t| t.kind == kind).map(|t| (t.prompt.clone(), t.target.clone())).collect()
    }

    /// Where the settled physics says a block is, in the answer's words, from the simulator's own
    /// contacts and the grasp (not from the sample's layout).
    fn place_from_contacts(state: &SceneState, color: BlockColor) -> String {
        let block = &state.blocks[color.index()];
        if state.grasped == Some(color) {
            return "in the gripper".into();
        }
        let below = BlockColor::ALL.into_iter().find(|other| {
            block.contacts.blocks[other.index()]
                && state.blocks[other.index()].pose.translation.z < block.pose.translation.z
        });
        match below {
            Some(base) => format!("on the {} block", base.name()),
            None if block.contacts.slider => "in the cabinet".into(),
            None if block.contacts.drawer => "in the drawer".into(),
            None if block.contacts.table => "on the table".into(),
            None => "nowhere".into(),
        }
    }

    #[test]
    fn every_answer_matches_the_settled_physics() {
        for index in 0..SAMPLES / 10 {
            let sample = sample_state(21, index);
            let texts = describe(&sample);
            let world = sample.world();
            let state = world.state();
            let symbolic: Symbolic = perceive(sample.scene, &state);
            let place = answers(&texts, TextKind::Place);
            for color in BlockColor::ALL {
                assert_eq!(place[&place_question(color)], place_from_contacts(&state, color), "sample {index}");
            }
            let lights = (answers(&texts, TextKind::Led), answers(&texts, TextKind::Lightbulb));
            assert_eq!(lights.0["is the led on?"], yes_no(state.led_on));
            assert_eq!(lights.1["is the light bulb on?"], yes_no(state.bulb_on));
            assert_eq!(answers(&texts, TextKind::Drawer)["is the drawer open?"], yes_no(symbolic.drawer_open));
            assert_eq!(answers(&texts, TextKind::Slider)["where is the slider?"], symbolic.slider.name());
            let gripper = answers(&texts, TextKind::Gripper);
            let held = state.grasped.map_or("nothing".to_owned(), block_name);
            assert_eq!(gripper["what is in the gripper?"], held, "sample {index}");
            // Relations against the settled block centres, with the margin shrunk by the settling.
            for text in texts.iter().filter(|t| t.kind == TextKind::Compare) {
                let (a, relation, b) = parse_compare(&text.prompt);
                let offset = relation.offset_m(
                    &state.blocks[a.index()].pose.translation.vector,
                    &state.blocks[b.index()].pose.translation.vector,
                );
                assert!(offset.abs() > RELATION_MARGIN_M - 0.01, "sample {index}: {} ({offset})", text.prompt);
                assert_eq!(text.target, yes_no(offset > 0.0), "sample {index}: {}", text.prompt);
            }
        }
    }

    fn parse_compare(question: &str) -> (BlockColor, Relation, BlockColor) {
        for a in BlockColor::ALL {
            for b in BlockColor::ALL {
                for relation in Relation::ALL {
                    if compare_question(a, relation, b) == question {
                        return (a, relation, b);
                    }
                }
            }
        }
        panic!("not a comparison: {question}");
    }

    #[test]
    fn counts_colours_and_which_questions_agree_with_the_places() {
        for index in 0..SAMPLES {
            let sample = sample_state(5, index);
            let texts = describe(&sample);
            let place = answers(&texts, TextKind::Place);
            let counts = answers(&texts, TextKind::Count);
            let colours = answers(&texts, TextKind::Colour);
            for (surface, phrase) in
                [("table", "on the table"), ("drawer", "in the drawer"), ("cabinet", "in the cabinet")]
            {
                let there: Vec<BlockColor> =
                    BlockColor::ALL.into_iter().filter(|c| place[&place_question(*c)] == phrase).collect();
                let question = format!("how many blocks are {phrase}?");
                assert_eq!(counts[&question], ["zero", "one", "two", "three"][there.len()], "{surface}");
                let colour = colours.get(&format!("what colour is the block {phrase}?"));
                assert_eq!(colour.map(String::as_str), (there.len() == 1).then(|| there[0].name()), "{surface}");
            }
            // "which block is left of X?" lists exactly the blocks the pairwise comparisons put there.
            let positions = BlockColor::ALL.map(|c| sample.block_position_m(c));
            for (question, answer) in answers(&texts, TextKind::Relation) {
                let (relation, reference) = Relation::ALL
                    .into_iter()
                    .flat_map(|r| BlockColor::ALL.map(|c| (r, c)))
                    .find(|(r, c)| relation_question(*r, *c) == question)
                    .expect("a relation question");
                let expected: Vec<BlockColor> = BlockColor::ALL
                    .into_iter()
                    .filter(|c| *c != reference)
                    .filter(|c| relation.offset_m(&positions[c.index()], &positions[reference.index()]) > 0.0)
                    .collect();
                assert_eq!(answer, block_list(&expected), "sample {index}: {question}");
            }
        }
    }

    #[test]
    fn captions_state_every_block_and_fixture() {
        let sample = sample_state(1, 0);
        let caption = &describe(&sample)[0];
        assert_eq!(caption.kind, TextKind::Caption);
        for color in BlockColor::ALL {
            assert!(caption.target.contains(&place_clause(color, sample.layout.blocks[color.index()])));
        }
        assert!(caption.target.contains(&drawer_clause(sample.layout.drawer_open)), "{}", caption.target);
        assert!(caption.target.ends_with('.'));
    }

    #[test]
    fn every_kind_is_asked_and_answers_are_balanced() {
        let mut kinds = BTreeSet::new();
        let mut yes_no_counts = [0usize; 2];
        for index in 0..SAMPLES {
            for text in describe(&sample_state(9, index)) {
                kinds.insert(text.kind);
                if text.kind == TextKind::Compare {
                    yes_no_counts[usize::from(text.target == "yes")] += 1;
                }
            }
        }
        assert_eq!(kinds.len(), TextKind::ALL.len(), "{kinds:?}");
        let [no, yes] = yes_no_counts;
        assert!(yes * 3 > no && no * 3 > yes, "comparisons answer yes {yes} times and no {no} times");
    }

    #[test]
    fn the_corpus_texts_hold_every_word_the_descriptions_use() {
        let known: BTreeSet<String> = corpus_texts()
            .iter()
            .flat_map(|t| normalize(t).split(' ').map(str::to_owned).collect::<Vec<_>>())
            .collect();
        for index in 0..SAMPLES {
            for text in describe(&sample_state(13, index)) {
                for word in normalize(&text.prompt).split(' ').chain(normalize(&text.target).split(' ')) {
                    assert!(known.contains(word), "`{word}` of `{}` / `{}`", text.prompt, text.target);
                }
            }
        }
    }
}
