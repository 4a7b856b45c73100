//! Symbolic start states and evaluation chains, following CALVIN's scheme: start states vary the
//! lights, the door side, the drawer and where the blocks lie (on the table, at most one in the
//! cabinet); a chain is 5 tasks from distinct categories, each one's precondition holding in the
//! state the previous one leaves. Everything is drawn from [`Rng`] streams, so chain `i` of seed
//! `s` is the same on every machine and does not depend on how many chains are drawn.

use super::rng::Rng;
use super::tasks::{Category, Place, Side, Symbolic, Task};

/// Length of an evaluation chain.
pub const CHAIN_LENGTH: usize = 5;
/// The seed of the standard 1000 evaluation chains.
pub const EVAL_SEED: u64 = 1000;

/// One evaluation chain.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Chain {
    /// Symbolic start state.
    pub initial: Symbolic,
    /// The five subtasks.
    pub tasks: [Task; CHAIN_LENGTH],
}

/// A random CALVIN-style symbolic start state. Blocks lie on the table, in either half of the
/// cabinet (one per half) or in the drawer (at most one), so every task, `lift_*_block_drawer`
/// and `push_into_drawer` included, can open a chain.
pub fn sample_initial(rng: &mut Rng) -> Symbolic {
    let side = |rng: &mut Rng| {
        if rng.chance(0.5) { Side::Left } else { Side::Right }
    };
    let mut blocks = [Place::Table; 3];
    for i in 0..3 {
        let roll = rng.unit_f64();
        let place = if roll < 0.6 {
            Place::Table
        } else if roll < 0.85 {
            Place::Slider(side(rng))
        } else {
            Place::Drawer
        };
        if !blocks[..i].contains(&place) || place == Place::Table {
            blocks[i] = place;
        }
    }
    Symbolic {
        slider: side(rng),
        drawer_open: rng.chance(0.5),
        lightbulb: rng.chance(0.5),
        led: rng.chance(0.5),
        blocks,
    }
}

/// Chain `index` of the chains drawn with `seed`.
pub fn chain(seed: u64, index: u64) -> Chain {
    let mut rng = Rng::stream(seed, index);
    loop {
        let initial = sample_initial(&mut rng);
        let tasks = draw_tasks(&initial, CHAIN_LENGTH, None, &|_| true, &mut rng);
        if let Ok(tasks) = <[Task; CHAIN_LENGTH]>::try_from(tasks) {
            return Chain { initial, tasks };
        }
    }
}

/// Up to `count` tasks drawn one after the other from `state`, each applicable in the state the
/// previous one leaves, each of its own category and not of `excluded`, each leaving a state in
/// which `keeps` holds. Fewer when no task qualifies.
fn draw_tasks(
    state: &Symbolic,
    count: usize,
    excluded: Option<Category>,
    keeps: &dyn Fn(&Symbolic) -> bool,
    rng: &mut Rng,
) -> Vec<Task> {
    let mut state = state.clone();
    let mut tasks: Vec<Task> = Vec::with_capacity(count);
    while tasks.len() < count {
        let candidates: Vec<(Task, Symbolic)> = Task::all()
            .into_iter()
            .filter(|task| Some(task.category()) != excluded)
            .filter(|task| tasks.iter().all(|done| done.category() != task.category()))
            .filter_map(|task| task.apply(&state).map(|next| (task, next)))
            .filter(|(_, next)| keeps(next))
            .collect();
        if candidates.is_empty() {
            break;
        }
        let (task, next) = rng.choose(&candidates).clone();
        tasks.push(task);
        state = next;
    }
    tasks
}

/// Chains `0..count` of `seed`.
pub fn chains(seed: u64, count: usize) -> Vec<Chain> {
    (0..count as u64).map(|i| chain(seed, i)).collect()
}

/// A start for one task alone: a symbolic start state and the tasks that must run first to
/// reach a state where `task` applies (for example `lift_red_block_table` before `place_in_drawer`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TaskStart {
    /// Symbolic start state.
    pub initial: Symbolic,
    /// Tasks to run before `task` (by the expert), possibly none.
    pub setup: Vec<Task>,
}

/// Start states drawn for a task before settling for one that needs a setup.
const DIRECT_START_DRAWS: usize = 256;

/// Samples a start from which `task` can be attempted: a start state where it applies as it is
/// whenever one can be drawn, otherwise the shortest setup. A setup task ends where the oracle
/// first counts it done, a state no evaluation chain begins the task from: after a setup
/// `close_drawer` the drawer is still 2–8 cm open, so `open_drawer` demonstrations from there
/// hook a handle 2–8 cm nearer the robot than the closed drawer a chain starts with.
pub fn task_start(task: Task, rng: &mut Rng) -> TaskStart {
    if let Some(initial) =
        (0..DIRECT_START_DRAWS).map(|_| sample_initial(rng)).find(|initial| task.apply(initial).is_some())
    {
        return TaskStart { initial, setup: Vec::new() };
    }
    let all = Task::all();
    loop {
        let initial = sample_initial(rng);
        // Setups of one task, then two, in a random order so every route gets used.
        let mut firsts: Vec<Task> = all.clone();
        rng.shuffle(&mut firsts);
        for first in &firsts {
            let Some(after_first) = first.apply(&initial) else {
                continue;
            };
            if task.apply(&after_first).is_some() {
                return TaskStart { initial, setup: vec![*first] };
            }
        }
        for first in &firsts {
            let Some(after_first) = first.apply(&initial) else {
                continue;
            };
            for second in &firsts {
                let Some(after_second) = second.apply(&after_first) else {
                    continue;
                };
                if task.apply(&after_second).is_some() {
                    return TaskStart { initial, setup: vec![*first, *second] };
                }
            }
        }
    }
}

/// Up to `count` tasks to run one after the other from `state` before `task`, as the earlier
/// subtasks of an evaluation chain run before a later one: each from a category unlike `task`'s
/// and the others', and `task` still applicable after each. Fewer when no such task exists.
pub fn lead_in(task: Task, state: &Symbolic, count: usize, rng: &mut Rng) -> Vec<Task> {
    draw_tasks(state, count, Some(task.category()), &|next| task.apply(next).is_some(), rng)
}

#[cfg(test)]
mod tests {
    use std::collections::HashSet;

    use super::*;

    #[test]
    fn chains_are_valid_and_reproducible() {
        let first = chains(EVAL_SEED, 200);
        assert_eq!(first, chains(EVAL_SEED, 200));
        assert_eq!(chain(EVAL_SEED, 150), first[150], "a chain does not depend on how many are drawn");
        for chain in &first {
            let categories: HashSet<_> = chain.tasks.iter().map(|t| t.category()).collect();
            assert_eq!(categories.len(), CHAIN_LENGTH);
            let mut state = chain.initial.clone();
            for task in chain.tasks {
                state = task.apply(&state).unwrap_or_else(|| panic!("{task} does not apply in {state:?}"));
            }
        }
    }

    /// Results of different commits compare only on the same chains: FNV-1a of the 1000 standard
    /// chains' task names ("a,b,c,d,e;" per chain), as the evaluations in `assets/` drew them.
    #[test]
    fn the_standard_chains_stay_the_same() {
        let text: String =
            chains(EVAL_SEED, 1000).iter().map(|chain| chain.tasks.map(|task| task.name()).join(",") + ";").collect();
        let hash = text
            .bytes()
            .fold(0xcbf2_9ce4_8422_2325_u64, |hash, byte| (hash ^ u64::from(byte)).wrapping_mul(0x0100_0000_01b3));
        assert_eq!(hash, 0x732a_e6bb_001b_29f8);
    }

    #[test]
    fn every_task_appears_in_the_standard_chains() {
        let seen: HashSet<Task> = chains(EVAL_SEED, 1000).iter().flat_map(|c| c.tasks).collect();
        let missing: Vec<String> = Task::all().into_iter().filter(|t| !seen.contains(t)).map(|t| t.name()).collect();
        assert!(missing.is_empty(), "never sampled: {missing:?}");
    }

    #[test]
    fn every_task_has_a_start() {
        let mut rng = Rng::new(5);
        for task in Task::all() {
            let start = task_start(task, &mut rng);
            assert!(start.initial.grasped().is_none());
            let mut state = start.initial.clone();
            for setup in &start.setup {
                state = setup.apply(&state).expect("setup applies");
            }
            assert!(task.apply(&state).is_some(), "{task}");
        }
    }

    #[test]
    fn tasks_a_start_state_allows_need_no_setup() {
        let mut rng = Rng::new(7);
        for task in Task::all() {
            let direct = (0..500).any(|_| task.apply(&sample_initial(&mut rng)).is_some());
            for _ in 0..50 {
                let start = task_start(task, &mut rng);
                assert_eq!(start.setup.is_empty(), direct, "{task}: {:?}", start.setup);
            }
        }
    }

    #[test]
    fn a_lead_in_keeps_the_task_applicable_in_distinct_categories() {
        let mut rng = Rng::new(11);
        let mut lengths = HashSet::new();
        for task in Task::all() {
            for _ in 0..20 {
                let start = task_start(task, &mut rng);
                let state = start.setup.iter().try_fold(start.initial, |s, t| t.apply(&s)).expect("setup applies");
                let lead_in = lead_in(task, &state, CHAIN_LENGTH - 1, &mut rng);
                lengths.insert(lead_in.len());
                let mut categories: HashSet<_> = lead_in.iter().map(|t| t.category()).collect();
                assert!(categories.insert(task.category()), "{task} after {lead_in:?}");
                assert_eq!(categories.len(), lead_in.len() + 1, "{lead_in:?}");
                let after = lead_in.iter().try_fold(state, |s, t| t.apply(&s)).expect("the lead-in applies in turn");
                assert!(task.apply(&after).is_some(), "{task} after {lead_in:?}");
            }
        }
        assert!(lengths.contains(&(CHAIN_LENGTH - 1)), "full lead-ins exist: {lengths:?}");
    }
}
