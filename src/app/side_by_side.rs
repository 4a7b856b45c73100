//! Side-by-side mode: the session's partner (a second model given the same start state and the
//! same instructions, see [`Session::compare_with`]) drawn in a window of its own — its view of
//! the desk with its instruction, step, oracle status and chain chips, and its policy cameras with
//! the attention overlay — by the deterministic renderer recordings use.

use bevy::image::ImageSampler;
use bevy::prelude::*;
use bevy_egui::{EguiContexts, EguiPrimaryContextPass, EguiTextureHandle, egui};

use super::panel::{AttentionOverlay, bevy_image, stamp};
use super::recording::caption;
use super::session::Session;
use crate::video::compose::{ComposeOptions, Composer};

/// The partner's window.
pub struct SideBySidePlugin;

impl Plugin for SideBySidePlugin {
    fn build(&self, app: &mut App) {
        app.init_resource::<PartnerView>()
            .add_systems(Update, compose_partner_view)
            .add_systems(EguiPrimaryContextPass, draw_partner_window);
    }
}

/// Size of the partner's frame (the recordings' default).
const FRAME: ComposeOptions = ComposeOptions { width: 640, height: 480, inset: true };
/// Shown at this fraction of the frame's size.
const SHOWN_SCALE: f32 = 0.75;

#[derive(Resource, Default)]
struct PartnerView {
    composer: Option<Composer>,
    texture: Option<(Handle<bevy::image::Image>, egui::TextureId)>,
    /// Generation and step of the partner last drawn.
    shown: Option<(u64, u64)>,
}

fn compose_partner_view(
    session: Res<Session>,
    overlay: Res<AttentionOverlay>,
    mut view: ResMut<PartnerView>,
    mut images: ResMut<Assets<bevy::image::Image>>,
    mut contexts: EguiContexts,
) {
    let Some(partner) = session.partner() else {
        view.shown = None;
        return;
    };
    let stamp = stamp(partner);
    if view.shown == Some(stamp) && !overlay.is_changed() {
        return;
    }
    // A composer holds one scene's meshes: build it again when the partner's world was rebuilt.
    if view.shown.is_none_or(|(generation, _)| generation != stamp.0) {
        match Composer::new(partner.world(), FRAME) {
            Ok(composer) => view.composer = Some(composer),
            Err(error) => {
                error!("cannot draw the side-by-side view: {error:#}");
                return;
            }
        }
    }
    view.shown = Some(stamp);
    let static_inset = overlay.draw(partner);
    let Some(composer) = &mut view.composer else { return };
    let frame = composer.compose_with_static_inset(partner.world(), &caption(partner), static_inset.as_ref());
    let image = bevy_image(frame, ImageSampler::linear());
    match &view.texture {
        Some((handle, _)) => {
            if let Some(mut asset) = images.get_mut(handle) {
                *asset = image;
            }
        }
        None => {
            let handle = images.add(image);
            let texture = contexts.add_image(EguiTextureHandle::Strong(handle.clone()));
            view.texture = Some((handle, texture));
        }
    }
}

fn draw_partner_window(mut contexts: EguiContexts, session: Res<Session>, view: Res<PartnerView>) -> Result {
    let (Some(partner), Some((_, texture))) = (session.partner(), &view.texture) else { return Ok(()) };
    let name = partner.model().map_or("?", |card| card.name.as_str());
    let size = egui::vec2(FRAME.width as f32, FRAME.height as f32) * SHOWN_SCALE;
    egui::Window::new(format!("Side by side: {name}"))
        .anchor(egui::Align2::LEFT_BOTTOM, [10.0, -10.0])
        .resizable(false)
        .show(contexts.ctx_mut()?, |ui| {
            ui.image((*texture, size));
            if let Some(problem) = partner.model_problem() {
                ui.colored_label(egui::Color32::from_rgb(200, 60, 50), problem);
            }
        });
    Ok(())
}
