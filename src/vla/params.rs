//! The trainable parameters of a model: created deterministically from a seed, saved to and loaded
//! from safetensors with errors that name the file and the tensor.
//!
//! candle's `VarMap` draws initial values from the thread RNG (the CPU device cannot be seeded), so
//! two runs of the same config would start from different weights. Here each tensor's values come
//! from the model seed and the tensor's name, independent of construction order.

use std::collections::{BTreeMap, HashMap};
use std::path::Path;
use std::sync::{Arc, Mutex};

use candle_core::{DType, Device, Shape, Tensor, Var};
use candle_nn::init::NormalOrUniform;
use candle_nn::{Init, VarBuilder};

use super::VlaError;
use crate::sim::rng::Rng;

/// Named trainable tensors, shared by the modules built from [`ParamStore::var_builder`].
#[derive(Debug, Clone)]
pub struct ParamStore {
    vars: Arc<Mutex<BTreeMap<String, Var>>>,
    seed: u64,
    device: Device,
}

/// FNV-1a, so a tensor's initial values depend only on its name and the seed.
fn name_hash(name: &str) -> u64 {
    name.bytes().fold(0xcbf2_9ce4_8422_2325, |hash, byte| (hash ^ byte as u64).wrapping_mul(0x0100_0000_01b3))
}

fn initial_values(shape: &Shape, init: Init, rng: &mut Rng) -> Vec<f32> {
    let count = shape.elem_count();
    let (normal, mean, scale) = match init {
        Init::Const(value) => return vec![value as f32; count],
        Init::Randn { mean, stdev } => (true, mean, stdev),
        Init::Uniform { lo, up } => (false, (lo + up) / 2.0, (up - lo) / 2.0),
        Init::Kaiming { dist, fan, non_linearity } => {
            let std = non_linearity.gain() / (fan.for_shape(shape) as f64).sqrt();
            match dist {
                NormalOrUniform::Normal => (true, 0.0, std),
                NormalOrUniform::Uniform => (false, 0.0, 3f64.sqrt() * std),
            }
        }
    };
    (0..count)
        .map(|_| {
            let unit = if normal { rng.normal() } else { rng.uniform(-1.0, 1.0) };
            (mean + scale * unit) as f32
        })
        .collect()
}

impl candle_nn::var_builder::SimpleBackend for ParamStore {
    fn get(&self, shape: Shape, name: &str, init: Init, dtype: DType, device: &Device) -> candle_core::Result<Tensor> {
        let mut vars = self.vars.lock().expect("the parameter map is never poisoned: no code panics holding it");
        if let Some(var) = vars.get(name) {
            if var.shape() != &shape {
                candle_core::bail!("parameter {name} is requested as {shape:?} but exists as {:?}", var.shape());
            }
            return Ok(var.as_tensor().clone());
        }
        let mut rng = Rng::stream(self.seed, name_hash(name));
        let values = initial_values(&shape, init, &mut rng);
        let var = Var::from_tensor(&Tensor::from_vec(values, shape, device)?.to_dtype(dtype)?)?;
        vars.insert(name.to_string(), var.clone());
        Ok(var.as_tensor().clone())
    }

    fn get_unchecked(&self, name: &str, _dtype: DType, _device: &Device) -> candle_core::Result<Tensor> {
        let vars = self.vars.lock().expect("the parameter map is never poisoned: no code panics holding it");
        match vars.get(name) {
            Some(var) => Ok(var.as_tensor().clone()),
            None => candle_core::bail!("no parameter named {name}"),
        }
    }

    fn contains_tensor(&self, name: &str) -> bool {
        self.vars.lock().expect("the parameter map is never poisoned: no code panics holding it").contains_key(name)
    }
}

impl ParamStore {
    /// An empty store whose parameters will be initialised from `seed` and live on `device`.
    pub fn new(seed: u64, device: &Device) -> Self {
        Self { vars: Arc::new(Mutex::new(BTreeMap::new())), seed, device: device.clone() }
    }

    /// A builder that creates (or returns) parameters in this store, f32 on the store's device.
    pub fn var_builder(&self) -> VarBuilder<'static> {
        VarBuilder::from_backend(Box::new(self.clone()), DType::F32, self.device.clone())
    }

    /// Where the parameters live.
    pub fn device(&self) -> &Device {
        &self.device
    }

    /// All parameters, sorted by name (the optimiser's input).
    pub fn vars(&self) -> Vec<(String, Var)> {
        let vars = self.vars.lock().expect("the parameter map is never poisoned: no code panics holding it");
        vars.iter().map(|(name, var)| (name.clone(), var.clone())).collect()
    }

    /// Total number of scalar parameters.
    pub fn parameter_count(&self) -> usize {
        self.vars().iter().map(|(_, var)| var.elem_count()).sum()
    }

    /// Writes every parameter to a safetensors file.
    pub fn save(&self, path: &Path) -> Result<(), VlaError> {
        let tensors: HashMap<String, Tensor> =
            self.vars().into_iter().map(|(name, var)| (name, var.as_tensor().clone())).collect();
        candle_core::safetensors::save(&tensors, path).map_err(|source| VlaError::tensor_file(path, source))
    }

    /// Replaces every parameter with the tensor of the same name from `tensors`, read from `file`.
    /// Fails, naming the tensor, if one is missing, has another shape, or is not expected.
    pub fn load_tensors(&self, mut tensors: HashMap<String, Tensor>, file: &Path) -> Result<(), VlaError> {
        let vars = self.vars();
        for (name, var) in &vars {
            let tensor = tensors.remove(name).ok_or_else(|| VlaError::MissingTensor {
                file: file.to_path_buf(),
                name: name.clone(),
                expected: var.dims().to_vec(),
            })?;
            if tensor.dims() != var.dims() {
                return Err(VlaError::TensorShape {
                    file: file.to_path_buf(),
                    name: name.clone(),
                    expected: var.dims().to_vec(),
                    found: tensor.dims().to_vec(),
                });
            }
            let tensor = tensor.to_dtype(DType::F32).map_err(|source| VlaError::tensor_file(file, source))?;
            var.set(&tensor).map_err(|source| VlaError::tensor_file(file, source))?;
        }
        if let Some(name) = tensors.keys().min() {
            return Err(VlaError::UnexpectedTensor { file: file.to_path_buf(), name: name.clone() });
        }
        Ok(())
    }

    /// Copies every tensor of the safetensors file at `path` whose name matches a parameter (say,
    /// a pre-trained backbone's into a VLA); the other parameters keep their initial values. A
    /// matching name with another shape is an error naming it. Returns the parameters copied.
    pub fn init_from(&self, path: &Path) -> Result<usize, VlaError> {
        let tensors =
            candle_core::safetensors::load(path, &self.device).map_err(|source| VlaError::tensor_file(path, source))?;
        let mut copied = 0;
        for (name, var) in self.vars() {
            let Some(tensor) = tensors.get(&name) else { continue };
            if tensor.dims() != var.dims() {
                return Err(VlaError::TensorShape {
                    file: path.to_path_buf(),
                    name,
                    expected: var.dims().to_vec(),
                    found: tensor.dims().to_vec(),
                });
            }
            let tensor = tensor.to_dtype(DType::F32).map_err(|source| VlaError::tensor_file(path, source))?;
            var.set(&tensor).map_err(|source| VlaError::tensor_file(path, source))?;
            copied += 1;
        }
        if copied == 0 {
            return Err(VlaError::NothingShared { file: path.to_path_buf() });
        }
        Ok(copied)
    }

    /// [`ParamStore::load_tensors`] from a safetensors file.
    pub fn load(&self, path: &Path) -> Result<(), VlaError> {
        let tensors =
            candle_core::safetensors::load(path, &self.device).map_err(|source| VlaError::tensor_file(path, source))?;
        self.load_tensors(tensors, path)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn initial_values_depend_on_seed_and_name_only() {
        let values = |seed: u64, names: &[&str]| {
            let store = ParamStore::new(seed, &Device::Cpu);
            let vb = store.var_builder();
            for name in names {
                vb.get_with_hints((3, 4), name, candle_nn::init::DEFAULT_KAIMING_NORMAL).unwrap();
            }
            store
                .vars()
                .into_iter()
                .map(|(n, v)| (n, v.as_tensor().flatten_all().unwrap().to_vec1::<f32>().unwrap()))
                .collect::<BTreeMap<_, _>>()
        };
        let a = values(7, &["x", "y"]);
        assert_eq!(a, values(7, &["y", "x"]));
        assert_ne!(a["x"], a["y"]);
        assert_ne!(a["x"], values(8, &["x"])["x"]);
    }

    #[test]
    fn starting_from_another_model_copies_the_shared_parameters_only() {
        let store = |seed: u64, shapes: &[(&str, (usize, usize))]| {
            let store = ParamStore::new(seed, &Device::Cpu);
            for (name, shape) in shapes {
                store.var_builder().get_with_hints(*shape, name, candle_nn::init::DEFAULT_KAIMING_NORMAL).unwrap();
            }
            store
        };
        let value = |store: &ParamStore, name: &str| {
            let vars: BTreeMap<String, Var> = store.vars().into_iter().collect();
            vars[name].as_tensor().flatten_all().unwrap().to_vec1::<f32>().unwrap()
        };
        let path = std::env::temp_dir().join(format!("vlasim-init-{}.safetensors", std::process::id()));
        let pretrained = store(1, &[("backbone", (3, 4)), ("lm_head", (4, 2))]);
        pretrained.save(&path).unwrap();

        let vla = store(2, &[("backbone", (3, 4)), ("action_head", (4, 7))]);
        let head_before = value(&vla, "action_head");
        assert_eq!(vla.init_from(&path).unwrap(), 1);
        assert_eq!(value(&vla, "backbone"), value(&pretrained, "backbone"));
        assert_eq!(value(&vla, "action_head"), head_before, "what the file lacks keeps its initial value");

        let reshaped = store(2, &[("backbone", (4, 3))]);
        let error = reshaped.init_from(&path).unwrap_err().to_string();
        assert!(error.contains("`backbone` has shape [3, 4], expected [4, 3]"), "{error}");
        let unrelated = store(2, &[("other", (2, 2))]);
        assert!(matches!(unrelated.init_from(&path), Err(VlaError::NothingShared { .. })));
        std::fs::remove_file(&path).unwrap();
    }
}
