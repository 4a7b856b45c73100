//! Where the networks run: the CPU always, a CUDA or Metal GPU when vlasim is built with the cargo
//! feature of the same name (candle's own back ends). Nothing needs a GPU: the shipped model, the
//! tests and the benchmarks run on the CPU.

use std::fmt;
use std::str::FromStr;

use candle_core::Device;

/// A device as named on the command line: `cpu`, `cuda`, `cuda:N`, `metal` or `metal:N`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum DeviceName {
    #[default]
    Cpu,
    /// A CUDA GPU by ordinal.
    Cuda(usize),
    /// A Metal GPU by ordinal.
    Metal(usize),
}

/// Why a device could not be named or opened.
#[derive(Debug, thiserror::Error)]
pub enum DeviceError {
    #[error("unknown device `{0}`: expected cpu, cuda, cuda:N, metal or metal:N")]
    Unknown(String),
    #[error(
        "{device} needs a vlasim built with `cargo build --release --features {feature}`; this one was built without it"
    )]
    NotBuilt { device: DeviceName, feature: &'static str },
    #[error("cannot open {device}: {source}")]
    Open { device: DeviceName, source: candle_core::Error },
}

impl FromStr for DeviceName {
    type Err = DeviceError;

    fn from_str(text: &str) -> Result<Self, DeviceError> {
        let unknown = || DeviceError::Unknown(text.to_string());
        let (kind, ordinal) = match text.split_once(':') {
            Some((kind, ordinal)) => (kind, Some(ordinal.parse().map_err(|_| unknown())?)),
            None => (text, None),
        };
        match (kind, ordinal) {
            ("cpu", None) => Ok(DeviceName::Cpu),
            ("cuda", ordinal) => Ok(DeviceName::Cuda(ordinal.unwrap_or(0))),
            ("metal", ordinal) => Ok(DeviceName::Metal(ordinal.unwrap_or(0))),
            _ => Err(unknown()),
        }
    }
}

impl fmt::Display for DeviceName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            DeviceName::Cpu => write!(f, "cpu"),
            DeviceName::Cuda(ordinal) => write!(f, "cuda:{ordinal}"),
            DeviceName::Metal(ordinal) => write!(f, "metal:{ordinal}"),
        }
    }
}

impl DeviceName {
    /// Opens the device; a GPU this build has no back end for is an error naming the cargo feature.
    pub fn open(self) -> Result<Device, DeviceError> {
        let not_built = |feature| Err(DeviceError::NotBuilt { device: self, feature });
        let opened = match self {
            DeviceName::Cpu => return Ok(Device::Cpu),
            DeviceName::Cuda(_) if !cfg!(feature = "cuda") => return not_built("cuda"),
            DeviceName::Metal(_) if !cfg!(feature = "metal") => return not_built("metal"),
            DeviceName::Cuda(ordinal) => Device::new_cuda(ordinal),
            DeviceName::Metal(ordinal) => Device::new_metal(ordinal),
        };
        opened.map_err(|source| DeviceError::Open { device: self, source })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn device_names_round_trip_and_bad_ones_are_refused() {
        for (text, name) in [("cpu", DeviceName::Cpu), ("cuda", DeviceName::Cuda(0)), ("metal:1", DeviceName::Metal(1))]
        {
            let parsed: DeviceName = text.parse().unwrap();
            assert_eq!(parsed, name);
            assert_eq!(parsed.to_string().parse::<DeviceName>().unwrap(), name);
        }
        for bad in ["gpu", "cuda:x", "cpu:1", "", "cuda:-1"] {
            let error = bad.parse::<DeviceName>().unwrap_err().to_string();
            assert!(error.contains(&format!("`{bad}`")) && error.contains("cuda:N"), "{error}");
        }
    }

    #[test]
    fn the_cpu_always_opens_and_a_missing_back_end_names_its_feature() {
        assert!(DeviceName::Cpu.open().unwrap().is_cpu());
        if !cfg!(feature = "cuda") {
            let error = DeviceName::Cuda(0).open().unwrap_err().to_string();
            assert!(error.contains("--features cuda"), "{error}");
        }
        if !cfg!(feature = "metal") {
            let error = DeviceName::Metal(0).open().unwrap_err().to_string();
            assert!(error.contains("--features metal"), "{error}");
        }
    }
}
