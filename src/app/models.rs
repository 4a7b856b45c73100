//! The VLA models the GUI can drive the arm with: the catalog of model folders (described once at
//! start-up), the start-up model handed to the session, and switching models from the panel
//! without a restart.

use std::path::{Path, PathBuf};

use bevy::prelude::*;

use super::session::{Driver, Session};
use crate::vla::catalog::{self, DEFAULT_MODEL, ModelCard};

/// Loads the catalog and the start-up model.
pub struct ModelsPlugin {
    /// Folder of model folders.
    pub root: PathBuf,
    /// Model to start with (by folder name); the default model, or the first, when absent.
    pub start_with: Option<String>,
    /// Start with the attention overlay on.
    pub watch_attention: bool,
    /// Start in side-by-side mode against this model (by folder name).
    pub compare_with: Option<String>,
}

impl Plugin for ModelsPlugin {
    fn build(&self, app: &mut App) {
        let catalog = ModelCatalog::read(&self.root);
        let start_with = self.start_with.clone().or_else(|| {
            let names: Vec<&str> = catalog.cards.iter().map(|card| card.name.as_str()).collect();
            names.iter().find(|name| **name == DEFAULT_MODEL).or(names.first()).map(|name| name.to_string())
        });
        app.insert_resource(catalog)
            .insert_resource(StartModel {
                name: start_with,
                watch_attention: self.watch_attention,
                compare_with: self.compare_with.clone(),
            })
            .add_systems(PreStartup, load_start_model);
    }
}

/// The model folders found, and those that could not be loaded with the reason.
#[derive(Resource, Debug, Default)]
pub struct ModelCatalog {
    /// Loadable models, sorted by name.
    pub cards: Vec<ModelCard>,
    /// `folder: reason` for each folder that failed to load.
    pub problems: Vec<String>,
    /// The last switch that failed, for the panel.
    pub switch_error: Option<String>,
}

impl ModelCatalog {
    fn read(root: &Path) -> ModelCatalog {
        let mut catalog = ModelCatalog::default();
        for dir in catalog::discover(root) {
            match catalog::load(&dir) {
                Ok((card, _)) => catalog.cards.push(card),
                Err(error) => catalog.problems.push(format!("{}: {error}", dir.display())),
            }
        }
        catalog
    }

    /// Hands the model `card` names to the session; a failure (say, the folder changed since
    /// start-up) is kept for the panel and the current model stays.
    pub fn switch(&mut self, session: &mut Session, card: &ModelCard) {
        self.switch_error = match catalog::load(&card.dir) {
            Ok((card, driver)) => {
                session.set_model(card, driver);
                None
            }
            Err(error) => Some(format!("cannot load {}: {error}", card.dir.display())),
        };
    }

    /// Starts side-by-side mode against the model `card` names (both sessions restart from the
    /// current start state); a failure is kept for the panel.
    pub fn compare(&mut self, session: &mut Session, card: &ModelCard) {
        let started = catalog::load(&card.dir)
            .map_err(|error| format!("cannot load {}: {error}", card.dir.display()))
            .and_then(|(card, driver)| session.compare_with(card, driver).map_err(|error| format!("{error:#}")));
        self.switch_error = started.err();
    }

    fn card(&self, name: &str) -> Option<ModelCard> {
        self.cards.iter().find(|card| card.name == name).cloned()
    }
}

#[derive(Resource)]
struct StartModel {
    name: Option<String>,
    watch_attention: bool,
    compare_with: Option<String>,
}

/// Before the script's start-up systems type anything, so a scripted instruction already has the model.
fn load_start_model(start: Res<StartModel>, mut catalog: ResMut<ModelCatalog>, mut session: ResMut<Session>) {
    if let Some(name) = &start.name {
        match catalog.card(name) {
            Some(card) => catalog.switch(&mut session, &card),
            None => catalog.switch_error = Some(format!("no model named {name} among the loadable ones")),
        }
        session.watch_attention(start.watch_attention);
    }
    if let Some(name) = &start.compare_with {
        match catalog.card(name) {
            Some(card) => catalog.compare(&mut session, &card),
            None => catalog.switch_error = Some(format!("no model named {name} to compare with")),
        }
    }
    if session.driver() == Driver::Vla && session.model().is_none() {
        session.set_driver(Driver::Expert);
    }
}
