//! A trained model folder driving the arm: it renders the policy cameras itself, so it sees the
//! very pixels training saw, reads `robot_obs` from the world and its instruction through the
//! model's own tokenizer, and turns the predicted action into the simulator's relative action.
//! Evaluation and the GUI both drive the arm through it.
//!
//! A folder with an `ensemble.json` is an ensemble: the models of the folders it names predict
//! from the same observation as the folder's own, and the arm executes the mean of their
//! predictions. Independently trained models err in different directions, so the mean steadies
//! the arm as the temporal ensemble does across time.

use std::path::{Path, PathBuf};

use candle_core::{Device, Tensor};
use serde::Deserialize;

use super::VlaError;
use super::attention_maps::PatchAttention;
use super::config::VlaConfig;
use super::ensemble::{PredictedStep, executed};
use super::model::{ACTION_DIMS, Vla};
use super::policy::{VlaPolicy, image_tensor};
use crate::lang::tokenizer::{Encoding, Tokenizer, TokenizerError};
use crate::sim::arm::Action;
use crate::sim::camera::{Image, PolicyCameras, View};
use crate::sim::world::World;

/// The tokenizer's file inside a model folder.
pub const TOKENIZER_FILE: &str = "tokenizer.json";
/// The file that makes a model folder an ensemble.
pub const ENSEMBLE_FILE: &str = "ensemble.json";

/// `ensemble.json`: the model folders averaged with the folder's own model.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct EnsembleFile {
    /// Paths relative to the ensemble's folder; each a model folder with the same cameras, text
    /// length and tokenizer as the folder's own model.
    other_members: Vec<PathBuf>,
}

/// Why a model folder could not drive the arm.
#[derive(Debug, thiserror::Error)]
pub enum DriverError {
    /// The model could not be loaded.
    #[error(transparent)]
    Model(#[from] VlaError),
    /// The tokenizer could not be loaded or could not encode the instruction.
    #[error(transparent)]
    Tokenizer(#[from] TokenizerError),
    /// The tokenizer's vocabulary is larger than the model's embedding table.
    #[error("{file}: the tokenizer has {tokenizer} tokens but the model embeds only {model}")]
    Vocabulary { file: String, tokenizer: usize, model: usize },
    /// `ensemble.json` is malformed or names a folder that cannot join the ensemble.
    #[error("{}: {reason}", file.display())]
    Ensemble { file: PathBuf, reason: String },
    /// `act` came before `begin`.
    #[error("the model has no instruction yet: begin an episode before acting")]
    NotStarted,
    /// A tensor operation failed.
    #[error("model inference failed: {0}")]
    Inference(candle_core::Error),
}

// By hand rather than `#[from]`, which would also make the cause a `source` that `{:#}` prints twice.
impl From<candle_core::Error> for DriverError {
    fn from(error: candle_core::Error) -> Self {
        DriverError::Inference(error)
    }
}

/// A model with its tokenizer and policy cameras.
pub struct VlaDriver {
    policy: VlaPolicy,
    /// An ensemble's further members (empty for a single model). The attention maps and the
    /// occlusion check show `policy` alone.
    other_members: Vec<VlaPolicy>,
    tokenizer: Tokenizer,
    cameras: Option<PolicyCameras>,
    static_image: Image,
    gripper_image: Image,
}

impl VlaDriver {
    /// Loads a model folder (`config.json`, `model.safetensors` and `tokenizer.json`, and the
    /// members an `ensemble.json` names) onto `device`.
    pub fn load(dir: &Path, device: &Device) -> Result<VlaDriver, DriverError> {
        let model = Vla::load(dir, device)?;
        let tokenizer = Tokenizer::load(&dir.join(TOKENIZER_FILE))?;
        if tokenizer.vocab_size() > model.config().vocab_size {
            return Err(DriverError::Vocabulary {
                file: dir.join(TOKENIZER_FILE).display().to_string(),
                tokenizer: tokenizer.vocab_size(),
                model: model.config().vocab_size,
            });
        }
        let other_members = load_other_members(dir, model.config(), device)?;
        Ok(VlaDriver::ensemble(model, other_members, tokenizer))
    }

    /// A driver for a model in memory.
    pub fn new(model: Vla, tokenizer: Tokenizer) -> VlaDriver {
        VlaDriver::ensemble(model, Vec::new(), tokenizer)
    }

    fn ensemble(model: Vla, other_members: Vec<Vla>, tokenizer: Tokenizer) -> VlaDriver {
        VlaDriver {
            policy: VlaPolicy::new(model),
            other_members: other_members.into_iter().map(VlaPolicy::new).collect(),
            tokenizer,
            cameras: None,
            static_image: Image::new(0, 0),
            gripper_image: Image::new(0, 0),
        }
    }

    /// Another driver of the same model (the weights are shared), with no episode begun: one per
    /// worker thread.
    pub fn fresh(&self) -> VlaDriver {
        let other_members = self.other_members.iter().map(|member| member.model().clone()).collect();
        VlaDriver::ensemble(self.policy.model().clone(), other_members, self.tokenizer.clone())
    }

    /// How many models predict each action: 1, or an ensemble's size.
    pub fn members(&self) -> usize {
        1 + self.other_members.len()
    }

    /// The parameters of every member together.
    pub fn parameter_count(&self) -> usize {
        self.policies().map(|policy| policy.model().params().parameter_count()).sum()
    }

    /// The model.
    pub fn model(&self) -> &Vla {
        self.policy.model()
    }

    /// Starts an episode in `world` with `instruction`; returns the encoding, whose unknown words a
    /// caller can show. Clears the history window.
    pub fn begin(&mut self, instruction: &str, world: &World) -> Result<Encoding, DriverError> {
        let encoding = self.tokenizer.encode(instruction, self.policy.model().config().max_text_len)?;
        for policy in self.policies_mut() {
            policy.reset(&encoding.ids, &encoding.attention_mask)?;
        }
        // The cameras hold the meshes of one world's scene; a new episode may bring another scene.
        self.cameras = Some(PolicyCameras::new(world));
        Ok(encoding)
    }

    /// The images the model saw at the last step: static and gripper camera.
    pub fn last_images(&self) -> (&Image, &Image) {
        (&self.static_image, &self.gripper_image)
    }

    /// Renders the cameras, runs the model and returns its action.
    pub fn act(&mut self, world: &World) -> Result<Action, DriverError> {
        let (static_image, gripper_image, robot_obs) = self.observe(world)?;
        let own = self.policy.predict(&static_image, gripper_image.as_ref(), &robot_obs)?;
        let predicted = self.with_other_members(own, &static_image, gripper_image.as_ref(), &robot_obs)?;
        Ok(relative(predicted))
    }

    /// Like [`VlaDriver::act`], also returning where the action token attended in the static
    /// image (`None` for a model without attention). Runs the whole window through the model,
    /// so it costs more than `act`; the action is the same.
    pub fn act_with_attention(&mut self, world: &World) -> Result<(Action, Option<PatchAttention>), DriverError> {
        let (static_image, gripper_image, robot_obs) = self.observe(world)?;
        let (own, capture) = self.policy.predict_with_attention(&static_image, gripper_image.as_ref(), &robot_obs)?;
        let predicted = self.with_other_members(own, &static_image, gripper_image.as_ref(), &robot_obs)?;
        Ok((relative(predicted), PatchAttention::of_newest_frame(&capture)?))
    }

    /// The action to execute: the mean of `own` prediction and the other members' on the same
    /// observation, the gripper decided on the mean score.
    fn with_other_members(
        &mut self,
        own: PredictedStep,
        static_image: &Tensor,
        gripper_image: Option<&Tensor>,
        robot_obs: &[f32],
    ) -> Result<[f32; ACTION_DIMS], DriverError> {
        let mut sum = own;
        for member in &mut self.other_members {
            let predicted = member.predict(static_image, gripper_image, robot_obs)?;
            for (total, value) in sum.iter_mut().zip(predicted) {
                *total += value;
            }
        }
        let members = self.members() as f32;
        Ok(executed(sum.map(|total| total / members)))
    }

    fn policies(&self) -> impl Iterator<Item = &VlaPolicy> {
        std::iter::once(&self.policy).chain(&self.other_members)
    }

    fn policies_mut(&mut self) -> impl Iterator<Item = &mut VlaPolicy> {
        std::iter::once(&mut self.policy).chain(&mut self.other_members)
    }

    /// The occlusion check on the newest observation (see [`VlaPolicy::occlusion`]).
    pub fn occlusion(&self, grid: usize) -> Result<Vec<f32>, DriverError> {
        Ok(self.policy.occlusion(grid)?)
    }

    /// Renders the cameras the model uses; returns them as tensors with `robot_obs`.
    fn observe(&mut self, world: &World) -> Result<(Tensor, Option<Tensor>, Vec<f32>), DriverError> {
        let cameras = self.cameras.as_mut().ok_or(DriverError::NotStarted)?;
        cameras.render_into(world, View::Static, &mut self.static_image);
        let uses_gripper = self.policy.model().config().use_gripper_camera;
        if uses_gripper {
            cameras.render_into(world, View::Gripper, &mut self.gripper_image);
        }
        let device = self.policy.model().device();
        let static_image = image_tensor(&self.static_image, device)?;
        let gripper_image = if uses_gripper { Some(image_tensor(&self.gripper_image, device)?) } else { None };
        let robot_obs = world.robot_obs().iter().map(|v| *v as f32).collect();
        Ok((static_image, gripper_image, robot_obs))
    }
}

/// The models named by `dir`'s `ensemble.json` (none without one). Each must see what the
/// folder's own model (`own`) sees and read the same tokens, since one observation and one
/// encoding feed them all.
fn load_other_members(dir: &Path, own: &VlaConfig, device: &Device) -> Result<Vec<Vla>, DriverError> {
    let file = dir.join(ENSEMBLE_FILE);
    if !file.exists() {
        return Ok(Vec::new());
    }
    let refuse = |reason: String| DriverError::Ensemble { file: file.clone(), reason };
    let text = std::fs::read_to_string(&file).map_err(|cause| refuse(cause.to_string()))?;
    let ensemble: EnsembleFile = serde_json::from_str(&text).map_err(|cause| refuse(cause.to_string()))?;
    let tokenizer = std::fs::read(dir.join(TOKENIZER_FILE)).map_err(|cause| refuse(cause.to_string()))?;
    ensemble
        .other_members
        .iter()
        .map(|relative| {
            let member_dir = dir.join(relative);
            let name = relative.display();
            if member_dir.join(ENSEMBLE_FILE).exists() {
                return Err(refuse(format!("{name} is an ensemble itself; list its members here instead")));
            }
            let model = Vla::load(&member_dir, device)?;
            let differs = observation(model.config()) != observation(own);
            if differs {
                return Err(refuse(format!(
                    "{name} sees other inputs than this folder's model (image sizes, gripper camera, robot state or text length)"
                )));
            }
            if std::fs::read(member_dir.join(TOKENIZER_FILE)).ok().as_deref() != Some(tokenizer.as_slice()) {
                return Err(refuse(format!("{name} has another tokenizer.json than this folder")));
            }
            Ok(model)
        })
        .collect()
}

/// What a model reads each step, which the members of an ensemble share.
fn observation(config: &VlaConfig) -> (usize, usize, bool, usize, usize) {
    (
        config.static_image_size,
        config.gripper_image_size,
        config.use_gripper_camera,
        config.robot_obs_dim,
        config.max_text_len,
    )
}

fn relative(predicted: [f32; ACTION_DIMS]) -> Action {
    Action::Relative(predicted.map(f64::from))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::eval::{EvalSettings, InstructedModel, Shard, Wording, WorkerPolicy, evaluate};
    use crate::lang::tokenizer;
    use crate::sim::chains::{self, EVAL_SEED};
    use crate::sim::episode;
    use crate::sim::scene::Scene;
    use crate::vla::presets::preset_with;
    use crate::vla::test_support::shrunk;

    /// A freshly initialised (untrained) model folder with the default tokenizer.
    fn model_folder(name: &str, configure: impl FnOnce(&mut VlaConfig)) -> PathBuf {
        let dir = std::env::temp_dir().join(format!("vlasim-driver-{name}-{}", std::process::id()));
        let mut config = shrunk(preset_with("kosmos", "policy_head").unwrap());
        configure(&mut config);
        Vla::new(config, &Device::Cpu).unwrap().save(&dir).unwrap();
        tokenizer::train([], tokenizer::DEFAULT_VOCAB_SIZE).unwrap().save(&dir.join(TOKENIZER_FILE)).unwrap();
        dir
    }

    #[test]
    fn a_model_folder_drives_the_arm_deterministically_within_the_action_range() {
        let dir = model_folder("drive", |_| {});
        let scene = Scene::resolve("d").unwrap();
        let chain = chains::chain(EVAL_SEED, 0);
        let run = || {
            let mut world = episode::chain_world(&scene, &chain, 0).unwrap();
            let mut driver = VlaDriver::load(&dir, &Device::Cpu).unwrap();
            driver.begin("open the drawer", &world).unwrap();
            let mut actions = Vec::new();
            for _ in 0..5 {
                let action = driver.act(&world).unwrap();
                world.step(&action);
                actions.push(action);
            }
            assert_eq!(driver.last_images().0.width, 128, "the static camera was rendered");
            (actions, world.robot_obs())
        };
        let (actions, robot_obs) = run();
        for action in &actions {
            let Action::Relative(values) = action else { panic!("a VLA acts relatively") };
            assert!(values[..6].iter().all(|v| (-1.0..=1.0).contains(v)), "{values:?}");
            assert!(values[6] == 1.0 || values[6] == -1.0, "{values:?}");
        }
        assert_eq!(run(), (actions, robot_obs), "same folder, same state, same actions");
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn acting_with_attention_gives_the_same_action_and_a_normalised_patch_map() {
        let dir = model_folder("attention", |_| {});
        let scene = Scene::resolve("d").unwrap();
        let world = episode::chain_world(&scene, &chains::chain(EVAL_SEED, 1), 1).unwrap();
        let mut plain = VlaDriver::load(&dir, &Device::Cpu).unwrap();
        let mut watched = VlaDriver::load(&dir, &Device::Cpu).unwrap();
        plain.begin("push the slider to the left", &world).unwrap();
        watched.begin("push the slider to the left", &world).unwrap();
        let (Action::Relative(a), (Action::Relative(b), attention)) =
            (plain.act(&world).unwrap(), watched.act_with_attention(&world).unwrap())
        else {
            panic!("a VLA acts relatively")
        };
        assert!(a.iter().zip(b).all(|(a, b)| (a - b).abs() < 1e-4), "{a:?} vs {b:?}");
        let attention = attention.expect("kosmos has attention");
        let cells = attention.grid * attention.grid;
        let rollout = attention.rollout.as_ref().expect("kosmos rolls out through self-attention");
        for map in attention.heads.iter().chain([rollout, &attention.head_mean()]) {
            assert_eq!(map.len(), cells);
            assert!(map.iter().all(|w| w.is_finite() && *w >= 0.0));
        }
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn an_untrained_model_runs_the_evaluation_protocol() {
        let dir = model_folder("eval", |_| {});
        let settings = EvalSettings {
            model: dir.display().to_string(),
            scene: Scene::resolve("d").unwrap(),
            seed: EVAL_SEED,
            total_chains: 1,
            expert_leads: 0,
            wording: Wording::HeldOut,
            shard: Shard::WHOLE,
            threads: 1,
        };
        let make = || Ok(Box::new(InstructedModel::load(&dir, &Device::Cpu, Wording::HeldOut)?) as WorkerPolicy);
        let results = evaluate(&settings, &make, &|_| {}).unwrap();
        let record = &results.chains[0];
        assert!(!record.subtasks.is_empty());
        let last = record.subtasks.last().unwrap();
        assert!(last.success || last.steps == episode::MAX_STEPS_PER_SUBTASK, "a failed subtask used its budget");
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn a_tokenizer_larger_than_the_embedding_is_refused() {
        let dir = model_folder("vocab", |config| config.vocab_size = 100);
        let error = VlaDriver::load(&dir, &Device::Cpu).err().expect("the vocabularies differ").to_string();
        assert!(error.contains("tokenizer.json: the tokenizer has"), "{error}");
        assert!(error.contains("the model embeds only 100"), "{error}");
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn an_ensemble_executes_the_mean_of_its_members_predictions() {
        let first = model_folder("ensemble-first", |_| {});
        let second = model_folder("ensemble-second", |config| config.seed = 1);
        let ensemble_file = first.join(ENSEMBLE_FILE);
        let members = format!(r#"{{"other_members": ["../{}"]}}"#, second.file_name().unwrap().to_string_lossy());
        std::fs::write(&ensemble_file, members).unwrap();
        let mut ensemble = VlaDriver::load(&first, &Device::Cpu).unwrap();
        std::fs::remove_file(&ensemble_file).unwrap();
        let mut alone =
            [VlaDriver::load(&first, &Device::Cpu).unwrap(), VlaDriver::load(&second, &Device::Cpu).unwrap()];
        assert_eq!((ensemble.members(), alone[0].members()), (2, 1));
        assert_eq!(ensemble.parameter_count(), alone[0].parameter_count() + alone[1].parameter_count());

        let scene = Scene::resolve("d").unwrap();
        let mut world = episode::chain_world(&scene, &chains::chain(EVAL_SEED, 0), 0).unwrap();
        for driver in alone.iter_mut().chain([&mut ensemble]) {
            driver.begin("open the drawer", &world).unwrap();
        }
        let arm = |action: Action| match action {
            Action::Relative(values) => values.map(|v| v as f32),
            _ => panic!("a VLA acts relatively"),
        };
        for _ in 0..4 {
            let [a, b] = [0, 1].map(|i| arm(alone[i].act(&world).unwrap()));
            let action = ensemble.act(&world).unwrap();
            let mean = arm(action);
            assert_ne!(a[..6], b[..6], "differently seeded members predict differently");
            for dim in 0..6 {
                assert!((mean[dim] - (a[dim] + b[dim]) / 2.0).abs() < 1e-5, "{mean:?} against {a:?} and {b:?}");
            }
            // Each member's temporal ensemble follows the observations the ensemble's actions lead to.
            world.step(&action);
        }
        for dir in [first, second] {
            std::fs::remove_dir_all(&dir).unwrap();
        }
    }

    #[test]
    fn an_ensemble_refuses_members_that_cannot_share_its_inputs() {
        let own = model_folder("ensemble-own", |_| {});
        let smaller = model_folder("ensemble-smaller", |config| config.static_image_size = 64);
        let other_words = model_folder("ensemble-words", |_| {});
        tokenizer::train([], 256).unwrap().save(&other_words.join(TOKENIZER_FILE)).unwrap();
        let refusal = |members: &str| -> String {
            std::fs::write(own.join(ENSEMBLE_FILE), members).unwrap();
            VlaDriver::load(&own, &Device::Cpu).err().expect("refused").to_string()
        };
        let name = |dir: &Path| dir.file_name().unwrap().to_string_lossy().into_owned();

        let error = refusal(r#"{"members": []}"#);
        assert!(error.contains("ensemble.json") && error.contains("unknown field"), "{error}");
        let error = refusal(&format!(r#"{{"other_members": ["../{}"]}}"#, name(&smaller)));
        assert!(error.contains("sees other inputs"), "{error}");
        let error = refusal(&format!(r#"{{"other_members": ["../{}"]}}"#, name(&other_words)));
        assert!(error.contains("another tokenizer.json"), "{error}");
        let error = refusal(r#"{"other_members": ["missing"]}"#);
        assert!(error.contains("missing") && error.contains("config.json"), "{error}");
        for dir in [own, smaller, other_words] {
            std::fs::remove_dir_all(&dir).unwrap();
        }
    }
}
