//! The side panel (egui): instruction box and command history, driver selector, the policy
//! cameras' images, the oracle's per-step timeline with chain results, and the simulation controls.

use bevy::asset::RenderAssetUsages;
use bevy::camera::CameraOutputMode;
use bevy::camera::visibility::RenderLayers;
use bevy::image::ImageSampler;
use bevy::prelude::*;
use bevy::render::render_resource::BlendState;
use bevy::render::render_resource::{Extent3d, TextureDimension, TextureFormat};
use bevy_egui::egui::{self, Color32, RichText};
use bevy_egui::{EguiContexts, EguiGlobalSettings, EguiPrimaryContextPass, EguiTextureHandle, PrimaryEguiContext};

use std::borrow::Cow;
use std::path::Path;

use super::models::ModelCatalog;
use super::orbit_camera::ViewportInset;
use super::recording::Recording;
use super::session::{Command, Driver, Outcome, Session};
use super::{SimControl, StepRequest};
use crate::data::teleop::{self, DEFAULT_DEMOS_DIR};
use crate::sim::camera::Image;
use crate::sim::chains::CHAIN_LENGTH;
use crate::sim::scene::Scene;
use crate::video::compose::SubtaskStatus;
use crate::vla::attention_maps::{self, AttentionSource, PatchAttention, heat_colour};
use crate::vla::catalog::ModelCard;

/// The side panel.
pub struct PanelPlugin {
    /// The attention map shown at start.
    pub attention_map: AttentionMap,
}

impl Plugin for PanelPlugin {
    fn build(&self, app: &mut App) {
        app.init_resource::<PanelState>()
            .insert_resource(AttentionOverlay { map: self.attention_map, ..default() })
            .add_systems(Startup, (spawn_ui_camera, create_policy_images))
            .add_systems(Update, update_policy_images)
            .add_systems(EguiPrimaryContextPass, draw_panel);
    }
}

/// The panel's own state between frames.
#[derive(Resource, Default)]
pub struct PanelState {
    /// The instruction being typed.
    pub input: String,
    scene_choice: String,
    seed_choice: u64,
    chain_choice: u64,
    error: Option<String>,
    /// What became of the last teleop demonstration saved.
    demo_saved: Option<Result<String, String>>,
}

/// Which attention map is blended over the static camera's image, and how strongly.
#[derive(Resource, Debug, Clone, Copy, PartialEq)]
pub struct AttentionOverlay {
    /// The map shown.
    pub map: AttentionMap,
    /// 0: image only, 1: map only.
    pub opacity: f32,
}

impl Default for AttentionOverlay {
    fn default() -> Self {
        AttentionOverlay { map: AttentionMap::HeadMean, opacity: 0.6 }
    }
}

/// The attention maps on offer (DESIGN.md §6).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AttentionMap {
    /// Last layer, averaged over heads.
    HeadMean,
    /// Last layer, one head.
    Head(usize),
    /// Attention rollout through the language model.
    Rollout,
    /// How far the action moves when each cell is hidden (not attention: a sanity check of it).
    Occlusion,
}

impl AttentionOverlay {
    /// The image the VLA saw at its last step with this overlay on it, when the session has
    /// attention to show.
    pub fn draw(&self, session: &Session) -> Option<Image> {
        let (attention, seen) = session.attention()?;
        Some(attention_maps::overlay(seen, &self.map.of(attention), attention.grid, self.opacity))
    }
}

impl std::str::FromStr for AttentionMap {
    type Err = String;

    /// `mean`, `head0`, `head1`, …, `rollout` or `occlusion`.
    fn from_str(text: &str) -> Result<Self, String> {
        match text {
            "mean" => Ok(AttentionMap::HeadMean),
            "rollout" => Ok(AttentionMap::Rollout),
            "occlusion" => Ok(AttentionMap::Occlusion),
            _ => text
                .strip_prefix("head")
                .and_then(|head| head.parse().ok())
                .map(AttentionMap::Head)
                .ok_or_else(|| format!("expected mean, headN, rollout or occlusion; got `{text}`")),
        }
    }
}

impl AttentionMap {
    /// This map of `attention`; the head mean where the map does not exist for this model.
    fn of(self, attention: &PatchAttention) -> Vec<f32> {
        match self {
            AttentionMap::Head(head) if head < attention.heads.len() => attention.heads[head].clone(),
            AttentionMap::Rollout if attention.rollout.is_some() => attention.rollout.clone().unwrap_or_default(),
            AttentionMap::Occlusion if attention.occlusion.is_some() => attention.occlusion.clone().unwrap_or_default(),
            _ => attention.head_mean(),
        }
    }
}

/// Width of the panel in logical pixels.
const PANEL_WIDTH: f32 = 440.0;
const SCENES: [&str; 4] = ["a", "b", "c", "d"];
const SUCCESS: Color32 = Color32::from_rgb(60, 170, 80);
const FAILURE: Color32 = Color32::from_rgb(200, 60, 50);
const PENDING: Color32 = Color32::from_rgb(90, 90, 96);
const STEPPED: Color32 = Color32::from_rgb(150, 150, 160);

/// egui draws through its own camera, so the 3D camera's viewport can leave the panel's area out.
fn spawn_ui_camera(mut commands: Commands, mut egui_settings: ResMut<EguiGlobalSettings>) {
    egui_settings.auto_create_primary_context = false;
    commands.spawn((
        PrimaryEguiContext,
        Camera2d,
        RenderLayers::none(),
        Camera {
            order: 1,
            output_mode: CameraOutputMode::Write {
                blend_state: Some(BlendState::ALPHA_BLENDING),
                clear_color: ClearColorConfig::None,
            },
            clear_color: ClearColorConfig::Custom(Color::NONE),
            ..default()
        },
    ));
}

// A Bevy system: its parameters are the resources it touches, as in Bevy's own systems.
#[allow(clippy::too_many_arguments)]
fn draw_panel(
    mut contexts: EguiContexts,
    mut session: ResMut<Session>,
    mut state: ResMut<PanelState>,
    mut control: ResMut<SimControl>,
    mut step_request: ResMut<StepRequest>,
    mut inset: ResMut<ViewportInset>,
    mut recording: ResMut<Recording>,
    policy_images: Res<PolicyImages>,
    images: Res<Assets<bevy::image::Image>>,
    (mut catalog, mut overlay): (ResMut<ModelCatalog>, ResMut<AttentionOverlay>),
) -> Result {
    let ctx = contexts.ctx_mut()?.clone();
    if state.scene_choice.is_empty() {
        state.scene_choice = session.scene().name.clone();
        state.seed_choice = session.seed();
        state.chain_choice = session.seed();
    }
    let mut root = egui::Ui::new(
        ctx.clone(),
        "root".into(),
        egui::UiBuilder::new().layer_id(egui::LayerId::background()).max_rect(ctx.viewport_rect()),
    );
    let panel = egui::Panel::right("vlasim_panel").exact_size(PANEL_WIDTH).show(&mut root, |ui| {
        egui::ScrollArea::vertical().show(ui, |ui| {
            instruction_section(ui, &mut session, &mut state);
            ui.separator();
            driver_section(ui, &mut session, &mut catalog);
            demo_section(ui, &mut session, &mut state);
            ui.separator();
            camera_section(ui, &policy_images, &images);
            let mut settings = *overlay;
            attention_section(ui, &mut session, &mut settings);
            overlay.set_if_neq(settings);
            ui.separator();
            timeline_section(ui, &session);
            ui.separator();
            simulation_section(ui, &mut session, &mut state, &mut control, &mut step_request);
            ui.separator();
            recording_section(ui, &session, &mut recording);
            ui.separator();
            history_section(ui, session.history());
        });
    });
    inset.right = panel.response.rect.width();
    if session.driver() == Driver::Teleop {
        teleop_help(&ctx);
    }
    Ok(())
}

fn instruction_section(ui: &mut egui::Ui, session: &mut Session, state: &mut PanelState) {
    ui.heading("Instruction");
    let response = ui.add(
        egui::TextEdit::singleline(&mut state.input)
            .hint_text("e.g. pull the handle to open the drawer")
            .desired_width(f32::INFINITY),
    );
    if response.lost_focus() && ui.input(|i| i.key_pressed(egui::Key::Enter)) {
        session.submit(&state.input);
        state.input.clear();
        response.request_focus();
    }
    let mut suggestion_clicked = None;
    if let Some(warning) = session.warning() {
        egui::Frame::new().fill(Color32::from_rgb(80, 60, 20)).inner_margin(6.0).show(ui, |ui| {
            if let Some(problem) = &warning.problem {
                ui.label(RichText::new(format!("Not understood: {problem}")).color(Color32::YELLOW));
            }
            if !warning.unknown_words.is_empty() {
                ui.label(format!("Unknown words: {}", warning.unknown_words.join(", ")));
            }
            if !warning.suggestions.is_empty() {
                ui.label("Closest known instructions:");
                for (_, phrasing) in &warning.suggestions {
                    if ui.link(phrasing).clicked() {
                        suggestion_clicked = Some(phrasing.clone());
                    }
                }
            }
        });
    }
    if let Some(phrasing) = suggestion_clicked {
        session.submit(&phrasing);
    }
}

fn driver_section(ui: &mut egui::Ui, session: &mut Session, catalog: &mut ModelCatalog) {
    ui.horizontal(|ui| {
        ui.label("Driver:");
        for driver in [Driver::Expert, Driver::Teleop] {
            if ui.selectable_label(session.driver() == driver, driver.label()).clicked() {
                session.set_driver(driver);
            }
        }
        let vla = ui.add_enabled(
            session.model().is_some(),
            egui::Button::selectable(session.driver() == Driver::Vla, Driver::Vla.label()),
        );
        if vla.on_disabled_hover_text("No model folder could be loaded (see below).").clicked() {
            session.set_driver(Driver::Vla);
        }
    });
    model_selector(ui, session, catalog);
    side_by_side_selector(ui, session, catalog);
    if let Some(problem) = session.model_problem() {
        ui.colored_label(FAILURE, problem);
    }
}

/// Saving a teleoperated subtask the oracle saw done as a LeRobot v3 demonstration.
fn demo_section(ui: &mut egui::Ui, session: &mut Session, state: &mut PanelState) {
    if session.driver() != Driver::Teleop {
        return;
    }
    if session.has_demo()
        && ui.button(format!("Save the demonstration to {DEFAULT_DEMOS_DIR}")).clicked()
        && let Some(demo) = session.take_demo()
    {
        let frames = demo.frames.len();
        state.demo_saved = Some(
            teleop::add_demo(Path::new(DEFAULT_DEMOS_DIR), demo)
                .map(|summary| format!("saved ({frames} frames); the dataset holds {} episodes", summary.episodes))
                .map_err(|error| format!("{error:#}")),
        );
    }
    match &state.demo_saved {
        Some(Ok(message)) => {
            ui.colored_label(SUCCESS, message);
        }
        Some(Err(error)) => {
            ui.colored_label(FAILURE, error);
        }
        None if !session.has_demo() => {
            ui.small("A subtask you drive to success can be saved as a demonstration.");
        }
        None => {}
    }
}

/// A labelled drop-down of the catalog's models (and "off" when `off` is given); returns the
/// choice made this frame: `Some(None)` for "off".
fn model_choice(
    ui: &mut egui::Ui,
    label: &str,
    current: Option<&str>,
    cards: &[ModelCard],
    off: Option<&str>,
) -> Option<Option<ModelCard>> {
    let mut chosen = None;
    ui.horizontal(|ui| {
        ui.label(label);
        egui::ComboBox::from_id_salt(label)
            .width(ui.available_width())
            .selected_text(current.or(off).unwrap_or("none"))
            .show_ui(ui, |ui| {
                if let Some(off) = off
                    && ui.selectable_label(current.is_none(), off).clicked()
                {
                    chosen = Some(None);
                }
                for card in cards {
                    if ui.selectable_label(current == Some(card.name.as_str()), card.summary()).clicked() {
                        chosen = Some(Some(card.clone()));
                    }
                }
            });
    });
    chosen.filter(|choice| choice.as_ref().map(|card| card.name.as_str()) != current)
}

/// The backbone selector: every loadable model folder with its tokens, size and Avg. Len.
fn model_selector(ui: &mut egui::Ui, session: &mut Session, catalog: &mut ModelCatalog) {
    let current = session.model().map(|card| card.name.clone());
    if let Some(Some(card)) = model_choice(ui, "Model:", current.as_deref(), &catalog.cards, None) {
        catalog.switch(session, &card);
    }
    if let Some(card) = session.model() {
        ui.small(card.summary());
    }
    for problem in catalog.problems.iter().chain(&catalog.switch_error) {
        ui.colored_label(FAILURE, problem);
    }
}

/// Side-by-side mode: a second model, restarted from this start state with this one, gets every
/// instruction.
fn side_by_side_selector(ui: &mut egui::Ui, session: &mut Session, catalog: &mut ModelCatalog) {
    let current = session.partner().and_then(Session::model).map(|card| card.name.clone());
    match model_choice(ui, "Side by side:", current.as_deref(), &catalog.cards, Some("off")) {
        Some(Some(card)) => catalog.compare(session, &card),
        Some(None) => session.stop_comparing(),
        None => {}
    }
}

fn camera_section(ui: &mut egui::Ui, policy_images: &PolicyImages, images: &Assets<bevy::image::Image>) {
    ui.label(RichText::new("What the policy sees").strong());
    ui.horizontal(|ui| {
        for (view, scale, caption) in
            [(&policy_images.static_view, 2.0, "static"), (&policy_images.gripper_view, 2.5, "gripper")]
        {
            let Some(image) = images.get(&view.handle) else { continue };
            let size = egui::vec2(image.width() as f32, image.height() as f32);
            ui.vertical(|ui| {
                ui.image((view.texture, size * scale));
                ui.label(format!("{caption} {}×{}", image.width(), image.height()));
            });
        }
    });
}

fn attention_section(ui: &mut egui::Ui, session: &mut Session, overlay: &mut AttentionOverlay) {
    if session.model().is_none() {
        return;
    }
    let mut watch = session.watches_attention();
    if ui.checkbox(&mut watch, "Attention overlay on the static image").changed() {
        session.watch_attention(watch);
    }
    if !watch {
        return;
    }
    let (heads, has_rollout, source) = session
        .attention()
        .map_or((0, false, AttentionSource::ActionToken), |(a, _)| (a.heads.len(), a.rollout.is_some(), a.source));
    let (mean_label, map_label, legend) = match source {
        AttentionSource::ActionToken => {
            ("last layer, head mean", "head", "max: action token's attention (not importance)")
        }
        AttentionSource::TokenLearner => {
            ("token maps, mean", "token", "max: TokenLearner's attention (not importance)")
        }
    };
    ui.horizontal_wrapped(|ui| {
        ui.selectable_value(&mut overlay.map, AttentionMap::HeadMean, mean_label);
        for head in 0..heads {
            ui.selectable_value(&mut overlay.map, AttentionMap::Head(head), format!("{map_label} {head}"));
        }
        if has_rollout {
            ui.selectable_value(&mut overlay.map, AttentionMap::Rollout, "rollout");
        }
        ui.selectable_value(&mut overlay.map, AttentionMap::Occlusion, "occlusion check")
            .on_hover_text("How far the action moves when each cell is hidden; recomputed every step (slower).");
    });
    session.check_occlusion(overlay.map == AttentionMap::Occlusion);
    ui.add(egui::Slider::new(&mut overlay.opacity, 0.0..=1.0).text("opacity"));
    // Legend: the colour map from no attention to the map's own maximum.
    ui.horizontal(|ui| {
        ui.small("0");
        let (rect, _) = ui.allocate_exact_size(egui::vec2(160.0, 10.0), egui::Sense::hover());
        let steps = 32;
        for i in 0..steps {
            let [r, g, b] = heat_colour(i as f32 / (steps - 1) as f32);
            let left = rect.left() + rect.width() * i as f32 / steps as f32;
            let cell = egui::Rect::from_min_max(
                egui::pos2(left, rect.top()),
                egui::pos2(left + rect.width() / steps as f32 + 0.5, rect.bottom()),
            );
            ui.painter().rect_filled(cell, 0.0, Color32::from_rgb(r, g, b));
        }
        ui.small(if overlay.map == AttentionMap::Occlusion {
            "max: action change when the cell is hidden"
        } else {
            legend
        });
    });
    if session.attention().is_none() {
        ui.small("Drawn from the VLA's next step on.");
    }
}

fn timeline_section(ui: &mut egui::Ui, session: &Session) {
    let timeline = session.timeline();
    let Some(task) = timeline.task else {
        ui.label("No task yet: type an instruction, or run an evaluation chain below.");
        return;
    };
    let steps = timeline.oracle.len();
    let status = session.subtask_status();
    let status = RichText::new(status.label().to_uppercase()).color(colour(status)).strong();
    ui.horizontal(|ui| {
        ui.label(RichText::new(task.name()).monospace().strong());
        ui.label(format!("step {steps} / {}", timeline.budget));
        ui.label(status);
    });
    // One thin cell per step of the budget: grey until stepped, green where the oracle says done.
    let (rect, _) = ui.allocate_exact_size(egui::vec2(ui.available_width(), 14.0), egui::Sense::hover());
    let painter = ui.painter_at(rect);
    painter.rect_filled(rect, 0.0, PENDING);
    let cell = rect.width() / timeline.budget.max(1) as f32;
    for (i, done) in timeline.oracle.iter().enumerate() {
        let x = rect.left() + i as f32 * cell;
        let cell_rect =
            egui::Rect::from_min_max(egui::pos2(x, rect.top()), egui::pos2(x + cell.max(1.0), rect.bottom()));
        painter.rect_filled(cell_rect, 0.0, if *done { SUCCESS } else { STEPPED });
    }
    if !timeline.chain.is_empty() {
        ui.horizontal(|ui| {
            ui.label("Chain:");
            for (i, status) in session.chain_statuses().into_iter().enumerate() {
                let chip =
                    egui::Button::new(RichText::new(format!("{}", i + 1)).color(Color32::WHITE)).fill(colour(status));
                ui.add_enabled(false, chip);
            }
            let completed = timeline.chain.iter().take_while(|r| **r == Some(true)).count();
            ui.label(format!("SR@{}: {completed}/{CHAIN_LENGTH}", CHAIN_LENGTH));
        });
    }
}

/// The same colours as the recorded videos' captions.
fn colour(status: SubtaskStatus) -> Color32 {
    let [r, g, b] = status.rgb();
    Color32::from_rgb(r, g, b)
}

fn simulation_section(
    ui: &mut egui::Ui,
    session: &mut Session,
    state: &mut PanelState,
    control: &mut SimControl,
    step_request: &mut StepRequest,
) {
    ui.heading("Simulation");
    ui.horizontal(|ui| {
        ui.label("Scene");
        egui::ComboBox::from_id_salt("scene").selected_text(&state.scene_choice).show_ui(ui, |ui| {
            for name in SCENES {
                ui.selectable_value(&mut state.scene_choice, name.to_string(), name);
            }
        });
        ui.label("Seed");
        ui.add(egui::DragValue::new(&mut state.seed_choice).range(0..=999_999));
        if ui.button("Reset").clicked() {
            state.error = Scene::resolve(&state.scene_choice)
                .map_err(anyhow::Error::from)
                .and_then(|scene| session.reset(scene, state.seed_choice))
                .err()
                .map(|e| format!("{e:#}"));
        }
    });
    ui.horizontal(|ui| {
        ui.label("Evaluation chain");
        ui.add(egui::DragValue::new(&mut state.chain_choice).range(0..=999));
        if ui.button("Run chain").on_hover_text("Reset to the chain's start state and attempt its 5 subtasks").clicked()
        {
            state.seed_choice = state.chain_choice;
            state.error = session.run_chain(state.chain_choice).err().map(|e| format!("{e:#}"));
        }
        if session.is_busy() && ui.button("Stop").clicked() {
            session.interrupt();
        }
    });
    ui.horizontal(|ui| {
        let label = if control.paused { "Resume" } else { "Pause" };
        if ui.button(label).clicked() {
            control.paused = !control.paused;
        }
        if ui.add_enabled(control.paused, egui::Button::new("Step")).clicked() {
            step_request.0 += 1;
        }
        ui.label("Speed");
        ui.add(egui::Slider::new(&mut control.speed, 0.25..=4.0).logarithmic(true).suffix("×"));
    });
    ui.label(format!("control step {} · 30 Hz", session.world().steps()));
    if let Some(error) = &state.error {
        ui.colored_label(FAILURE, error);
    }
}

fn recording_section(ui: &mut egui::Ui, session: &Session, recording: &mut Recording) {
    ui.horizontal(|ui| match recording.active() {
        Some((path, frames)) => {
            let label = format!("Stop recording ({frames} frames)");
            ui.label(RichText::new("● REC").color(FAILURE).strong()).on_hover_text(path.display().to_string());
            if ui.button(label).clicked() {
                recording.stop();
            }
        }
        None => {
            if ui.button("Record").on_hover_text("One frame per control step, into recordings/").clicked()
                && let Err(error) = recording.start_numbered(session)
            {
                recording.last = Some(Err(format!("{error:#}")));
            }
            ui.checkbox(&mut recording.inset, "policy cameras inset");
        }
    });
    match &recording.last {
        Some(Ok(summary)) => {
            ui.label(format!(
                "saved {} ({} frames, {:.1} s)",
                summary.path.display(),
                summary.frames,
                summary.duration_s
            ));
        }
        Some(Err(error)) => {
            ui.colored_label(FAILURE, error);
        }
        None => {}
    }
}

fn history_section(ui: &mut egui::Ui, history: &[Command]) {
    ui.heading("History");
    if history.is_empty() {
        ui.label("Typed commands and their outcomes appear here.");
    }
    for command in history.iter().rev() {
        let colour = match &command.outcome {
            Outcome::Running => STEPPED,
            Outcome::Succeeded(_) => SUCCESS,
            Outcome::Failed(_) => FAILURE,
            Outcome::Rejected(_) => Color32::YELLOW,
        };
        ui.label(RichText::new(format!("“{}”", command.instruction)).italics());
        ui.horizontal_wrapped(|ui| {
            if let Some(task) = command.task {
                ui.label(RichText::new(task.name()).monospace());
            }
            ui.colored_label(colour, command.outcome.to_string());
        });
    }
}

fn teleop_help(ctx: &egui::Context) {
    egui::Window::new("Teleop keys").anchor(egui::Align2::LEFT_TOP, [10.0, 10.0]).resizable(false).show(ctx, |ui| {
        egui::Grid::new("keys").show(ui, |ui| {
            for (keys, what) in super::teleop::KEY_HELP {
                ui.label(RichText::new(*keys).monospace().strong());
                ui.label(*what);
                ui.end_row();
            }
        });
    });
}

/// A policy camera's image as a Bevy asset egui draws, rewritten in place after every control step
/// (replacing an egui-managed texture instead leaves it blank for a frame on every update).
struct PolicyView {
    handle: Handle<bevy::image::Image>,
    texture: egui::TextureId,
}

/// The two policy cameras' images.
#[derive(Resource)]
struct PolicyImages {
    static_view: PolicyView,
    gripper_view: PolicyView,
    shown: (u64, u64),
}

fn create_policy_images(
    mut commands: Commands,
    mut contexts: EguiContexts,
    mut images: ResMut<Assets<bevy::image::Image>>,
    session: Res<Session>,
) {
    let mut view = |image: &Image| {
        let handle = images.add(bevy_image(image, ImageSampler::nearest()));
        PolicyView { texture: contexts.add_image(EguiTextureHandle::Strong(handle.clone())), handle }
    };
    let static_view = view(session.static_image());
    let gripper_view = view(session.gripper_image());
    commands.insert_resource(PolicyImages { static_view, gripper_view, shown: stamp(&session) });
}

fn update_policy_images(
    session: Res<Session>,
    overlay: Res<AttentionOverlay>,
    mut policy_images: ResMut<PolicyImages>,
    mut images: ResMut<Assets<bevy::image::Image>>,
) {
    if policy_images.shown == stamp(&session) && !overlay.is_changed() {
        return;
    }
    policy_images.shown = stamp(&session);
    // With the overlay on, the static view is the image the VLA saw at its last step.
    let static_image = match overlay.draw(&session) {
        Some(image) => Cow::Owned(image),
        None => Cow::Borrowed(session.static_image()),
    };
    for (view, image) in
        [(&policy_images.static_view, &*static_image), (&policy_images.gripper_view, session.gripper_image())]
    {
        if let Some(mut asset) = images.get_mut(&view.handle) {
            *asset = bevy_image(image, ImageSampler::nearest());
        }
    }
}

/// Identifies the session's latest step.
pub(super) fn stamp(session: &Session) -> (u64, u64) {
    (session.generation(), session.world().steps())
}

/// `image` as a texture egui can draw, sampled with `sampler`.
pub(super) fn bevy_image(image: &Image, sampler: ImageSampler) -> bevy::image::Image {
    let rgba: Vec<u8> = image.rgb.chunks_exact(3).flat_map(|p| [p[0], p[1], p[2], 255]).collect();
    let size = Extent3d { width: image.width, height: image.height, depth_or_array_layers: 1 };
    let mut bevy_image = bevy::image::Image::new(
        size,
        TextureDimension::D2,
        rgba,
        TextureFormat::Rgba8UnormSrgb,
        RenderAssetUsages::RENDER_WORLD,
    );
    bevy_image.sampler = sampler;
    bevy_image
}
