//! The 34 CALVIN tasks, the symbolic scene state they are defined on, and each task's
//! precondition and effect on that state (CALVIN's `multistep_sequences.py` conditions).
//!
//! Directions are the robot's: the robot faces +x, so "left" is +y and "right" is -y. The sliding
//! door's side names where the *door* is: with the slider "right" the door covers the right half
//! of the cabinet and the left half is open.

use std::fmt;

use super::scene::BlockColor;

/// Left or right, from the robot's point of view.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Side {
    /// +y.
    Left,
    /// -y.
    Right,
}

impl Side {
    /// +1 for left (+y), -1 for right.
    pub fn sign(self) -> f64 {
        match self {
            Side::Left => 1.0,
            Side::Right => -1.0,
        }
    }

    /// The other side.
    pub fn opposite(self) -> Side {
        match self {
            Side::Left => Side::Right,
            Side::Right => Side::Left,
        }
    }

    /// "left" or "right".
    pub fn name(self) -> &'static str {
        match self {
            Side::Left => "left",
            Side::Right => "right",
        }
    }
}

/// Where a block is lifted from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Surface {
    /// The desk top.
    Table,
    /// The cabinet behind the sliding door.
    Slider,
    /// The drawer.
    Drawer,
}

impl Surface {
    fn name(self) -> &'static str {
        match self {
            Surface::Table => "table",
            Surface::Slider => "slider",
            Surface::Drawer => "drawer",
        }
    }
}

/// One of CALVIN's 34 tasks.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Task {
    /// Turn a block on the table by more than 60° about the vertical (right = clockwise from above).
    RotateBlock(BlockColor, Side),
    /// Push a block on the table more than 0.1 m sideways.
    PushBlock(BlockColor, Side),
    /// Slide the door more than 0.15 m to a side.
    MoveSlider(Side),
    /// Pull the drawer out more than 0.12 m.
    OpenDrawer,
    /// Push the drawer in more than 0.12 m.
    CloseDrawer,
    /// Lift a block more than 0.05 m from where it lies, held only by the robot.
    LiftBlock(BlockColor, Surface),
    /// Put the held block down inside the cabinet.
    PlaceInSlider,
    /// Put the held block down inside the drawer.
    PlaceInDrawer,
    /// Push a block from the table into the open drawer.
    PushIntoDrawer,
    /// Put the held block on top of another block.
    StackBlock,
    /// Take a stacked block off the one below.
    UnstackBlock,
    /// Switch the light bulb on.
    TurnOnLightbulb,
    /// Switch the light bulb off.
    TurnOffLightbulb,
    /// Press the button to light the LED.
    TurnOnLed,
    /// Press the button to put the LED out.
    TurnOffLed,
}

/// Chains draw their tasks from distinct categories.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Category {
    /// rotate_*.
    Rotate,
    /// push_*_block_*.
    Push,
    /// move_slider_*.
    Slider,
    /// open/close_drawer.
    Drawer,
    /// lift_*.
    Lift,
    /// place_in_*, push_into_drawer.
    Place,
    /// stack_block.
    Stack,
    /// unstack_block.
    Unstack,
    /// turn_*_lightbulb.
    Lightbulb,
    /// turn_*_led.
    Led,
}

impl Task {
    /// All 34 tasks, in CALVIN's order.
    pub fn all() -> Vec<Task> {
        let mut tasks = Vec::with_capacity(34);
        for color in BlockColor::ALL {
            for side in [Side::Right, Side::Left] {
                tasks.push(Task::RotateBlock(color, side));
            }
        }
        for color in BlockColor::ALL {
            for side in [Side::Right, Side::Left] {
                tasks.push(Task::PushBlock(color, side));
            }
        }
        tasks.extend([
            Task::MoveSlider(Side::Left),
            Task::MoveSlider(Side::Right),
            Task::OpenDrawer,
            Task::CloseDrawer,
        ]);
        for color in BlockColor::ALL {
            for surface in [Surface::Table, Surface::Slider, Surface::Drawer] {
                tasks.push(Task::LiftBlock(color, surface));
            }
        }
        tasks.extend([
            Task::PlaceInSlider,
            Task::PlaceInDrawer,
            Task::PushIntoDrawer,
            Task::StackBlock,
            Task::UnstackBlock,
            Task::TurnOnLightbulb,
            Task::TurnOffLightbulb,
            Task::TurnOnLed,
            Task::TurnOffLed,
        ]);
        tasks
    }

    /// CALVIN's task name, e.g. `lift_red_block_slider`.
    pub fn name(self) -> String {
        match self {
            Task::RotateBlock(color, side) => {
                format!("rotate_{}_block_{}", color.name(), side.name())
            }
            Task::PushBlock(color, side) => format!("push_{}_block_{}", color.name(), side.name()),
            Task::MoveSlider(side) => format!("move_slider_{}", side.name()),
            Task::OpenDrawer => "open_drawer".into(),
            Task::CloseDrawer => "close_drawer".into(),
            Task::LiftBlock(color, surface) => {
                format!("lift_{}_block_{}", color.name(), surface.name())
            }
            Task::PlaceInSlider => "place_in_slider".into(),
            Task::PlaceInDrawer => "place_in_drawer".into(),
            Task::PushIntoDrawer => "push_into_drawer".into(),
            Task::StackBlock => "stack_block".into(),
            Task::UnstackBlock => "unstack_block".into(),
            Task::TurnOnLightbulb => "turn_on_lightbulb".into(),
            Task::TurnOffLightbulb => "turn_off_lightbulb".into(),
            Task::TurnOnLed => "turn_on_led".into(),
            Task::TurnOffLed => "turn_off_led".into(),
        }
    }

    /// Looks a task up by its CALVIN name.
    pub fn from_name(name: &str) -> Option<Task> {
        Task::all().into_iter().find(|task| task.name() == name)
    }

    /// The task's category.
    pub fn category(self) -> Category {
        match self {
            Task::RotateBlock(..) => Category::Rotate,
            Task::PushBlock(..) => Category::Push,
            Task::MoveSlider(_) => Category::Slider,
            Task::OpenDrawer | Task::CloseDrawer => Category::Drawer,
            Task::LiftBlock(..) => Category::Lift,
            Task::PlaceInSlider | Task::PlaceInDrawer | Task::PushIntoDrawer => Category::Place,
            Task::StackBlock => Category::Stack,
            Task::UnstackBlock => Category::Unstack,
            Task::TurnOnLightbulb | Task::TurnOffLightbulb => Category::Lightbulb,
            Task::TurnOnLed | Task::TurnOffLed => Category::Led,
        }
    }

    /// The symbolic state after the task, or `None` if its precondition does not hold in `state`.
    pub fn apply(self, state: &Symbolic) -> Option<Symbolic> {
        let mut next = state.clone();
        let free_hand = state.grasped().is_none();
        match self {
            Task::RotateBlock(color, _) | Task::PushBlock(color, _) => {
                (free_hand && state.is_free_on_table(color)).then_some(next)
            }
            Task::MoveSlider(side) => {
                next.slider = side;
                (free_hand && state.slider == side.opposite()).then_some(next)
            }
            Task::OpenDrawer | Task::CloseDrawer => {
                let open = self == Task::OpenDrawer;
                next.drawer_open = open;
                (free_hand && state.drawer_open != open).then_some(next)
            }
            Task::LiftBlock(color, surface) => {
                let reachable = match (surface, state.blocks[color.index()]) {
                    (Surface::Table, _) => state.is_free_on_table(color),
                    (Surface::Slider, Place::Slider(half)) => half == state.open_slider_half(),
                    (Surface::Drawer, Place::Drawer) => state.drawer_open,
                    _ => false,
                };
                next.blocks[color.index()] = Place::Grasped;
                (free_hand && reachable).then_some(next)
            }
            Task::PlaceInSlider => {
                let held = state.grasped()?;
                let half = state.open_slider_half();
                let occupied = state.blocks.contains(&Place::Slider(half));
                next.blocks[held.index()] = Place::Slider(half);
                (!occupied).then_some(next)
            }
            Task::PlaceInDrawer => {
                let held = state.grasped()?;
                next.blocks[held.index()] = Place::Drawer;
                (state.drawer_open && !state.blocks.contains(&Place::Drawer)).then_some(next)
            }
            Task::PushIntoDrawer => {
                // As CALVIN: only defined when exactly one block is on the table, so "the block" is unambiguous.
                let on_table: Vec<BlockColor> =
                    BlockColor::ALL.into_iter().filter(|c| state.blocks[c.index()] == Place::Table).collect();
                let [pushed] = on_table[..] else { return None };
                next.blocks[pushed.index()] = Place::Drawer;
                (free_hand
                    && state.drawer_open
                    && state.is_free_on_table(pushed)
                    && !state.blocks.contains(&Place::Drawer))
                .then_some(next)
            }
            Task::StackBlock => {
                let held = state.grasped()?;
                let base = BlockColor::ALL.into_iter().find(|c| *c != held && state.is_free_on_table(*c))?;
                next.blocks[held.index()] = Place::StackedOn(base);
                Some(next)
            }
            Task::UnstackBlock => {
                let top =
                    BlockColor::ALL.into_iter().find(|c| matches!(state.blocks[c.index()], Place::StackedOn(_)))?;
                next.blocks[top.index()] = Place::Table;
                free_hand.then_some(next)
            }
            Task::TurnOnLightbulb | Task::TurnOffLightbulb => {
                let on = self == Task::TurnOnLightbulb;
                next.lightbulb = on;
                (free_hand && state.lightbulb != on).then_some(next)
            }
            Task::TurnOnLed | Task::TurnOffLed => {
                let on = self == Task::TurnOnLed;
                next.led = on;
                (free_hand && state.led != on).then_some(next)
            }
        }
    }
}

impl fmt::Display for Task {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.name())
    }
}

/// Where a block is, symbolically.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Place {
    /// On the desk top.
    Table,
    /// Inside the cabinet, in the given half.
    Slider(Side),
    /// In the drawer.
    Drawer,
    /// In the gripper.
    Grasped,
    /// On top of another block.
    StackedOn(BlockColor),
}

impl fmt::Display for Place {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Place::Table => f.write_str("on the table"),
            Place::Slider(side) => write!(f, "in the {} half of the cabinet", side.name()),
            Place::Drawer => f.write_str("in the drawer"),
            Place::Grasped => f.write_str("in the gripper"),
            Place::StackedOn(base) => write!(f, "on the {} block", base.name()),
        }
    }
}

/// The symbolic scene state tasks are defined on (CALVIN's "conditions").
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Symbolic {
    /// Where the sliding door is.
    pub slider: Side,
    /// Whether the drawer is open.
    pub drawer_open: bool,
    /// Light bulb on.
    pub lightbulb: bool,
    /// LED on.
    pub led: bool,
    /// Blocks in [`BlockColor::ALL`] order.
    pub blocks: [Place; 3],
}

impl Symbolic {
    /// The block in the gripper, if any.
    pub fn grasped(&self) -> Option<BlockColor> {
        BlockColor::ALL.into_iter().find(|c| self.blocks[c.index()] == Place::Grasped)
    }

    /// The cabinet half the door leaves open.
    pub fn open_slider_half(&self) -> Side {
        self.slider.opposite()
    }

    /// On the table with nothing stacked on it.
    pub fn is_free_on_table(&self, color: BlockColor) -> bool {
        self.blocks[color.index()] == Place::Table && !self.blocks.contains(&Place::StackedOn(color))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn state() -> Symbolic {
        Symbolic {
            slider: Side::Right,
            drawer_open: false,
            lightbulb: false,
            led: true,
            blocks: [Place::Table, Place::Table, Place::Slider(Side::Left)],
        }
    }

    #[test]
    fn there_are_34_uniquely_named_tasks() {
        let names: std::collections::HashSet<String> = Task::all().iter().map(|t| t.name()).collect();
        assert_eq!(names.len(), 34);
        assert_eq!(Task::from_name("lift_pink_block_slider"), Some(Task::LiftBlock(BlockColor::Pink, Surface::Slider)));
    }

    #[test]
    fn preconditions_follow_calvin() {
        let s = state();
        assert!(Task::OpenDrawer.apply(&s).is_some());
        assert!(Task::CloseDrawer.apply(&s).is_none());
        assert!(Task::MoveSlider(Side::Left).apply(&s).is_some());
        assert!(Task::MoveSlider(Side::Right).apply(&s).is_none());
        // The pink block is in the left half, which the door (on the right) leaves open.
        assert!(Task::LiftBlock(BlockColor::Pink, Surface::Slider).apply(&s).is_some());
        assert!(Task::TurnOffLed.apply(&s).is_some() && Task::TurnOnLed.apply(&s).is_none());
        assert!(Task::PlaceInDrawer.apply(&s).is_none(), "nothing is held");
    }

    #[test]
    fn lift_then_stack_then_unstack() {
        let s = state();
        let lifted = Task::LiftBlock(BlockColor::Red, Surface::Table).apply(&s).unwrap();
        assert_eq!(lifted.grasped(), Some(BlockColor::Red));
        assert!(Task::OpenDrawer.apply(&lifted).is_none(), "a full hand cannot open the drawer");
        let stacked = Task::StackBlock.apply(&lifted).unwrap();
        assert_eq!(stacked.blocks[0], Place::StackedOn(BlockColor::Blue));
        assert!(Task::LiftBlock(BlockColor::Blue, Surface::Table).apply(&stacked).is_none());
        let unstacked = Task::UnstackBlock.apply(&stacked).unwrap();
        assert_eq!(unstacked.blocks[0], Place::Table);
    }
}
