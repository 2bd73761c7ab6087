//! Choosing where the nets run: `cpu`, `cuda` or `cuda:N`, as every command's `--device` spells it.
//!
//! A binary built without the `cuda` feature knows only the CPU; asking it for a GPU is an error
//! that says how to get one, rather than a silent CPU run.

use std::fmt;
use std::str::FromStr;

use candle_core::Device;

use crate::{Error, Result};

/// A device as named on the command line, before it is opened.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DeviceSpec {
    /// The CPU.
    Cpu,
    /// The CUDA GPU with this ordinal.
    Cuda(usize),
}

impl FromStr for DeviceSpec {
    type Err = Error;

    /// Parses `cpu`, `cuda`, `cuda:N` or `gpu` (a synonym of `cuda`), ignoring case and surrounding
    /// blanks.
    fn from_str(text: &str) -> Result<Self> {
        let spec = text.trim().to_ascii_lowercase();
        let bad = || Error::Input(format!("device {text:?}: expected cpu, cuda or cuda:N (N a GPU number)"));
        match spec.as_str() {
            "cpu" => Ok(DeviceSpec::Cpu),
            "cuda" | "gpu" => Ok(DeviceSpec::Cuda(0)),
            _ => {
                let ordinal =
                    spec.strip_prefix("cuda:").or_else(|| spec.strip_prefix("gpu:")).ok_or_else(bad)?;
                if ordinal.is_empty() || !ordinal.chars().all(|c| c.is_ascii_digit()) {
                    return Err(bad());
                }
                ordinal.parse().map(DeviceSpec::Cuda).map_err(|_| bad())
            }
        }
    }
}

impl fmt::Display for DeviceSpec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            DeviceSpec::Cpu => f.write_str("cpu"),
            DeviceSpec::Cuda(n) => write!(f, "cuda:{n}"),
        }
    }
}

impl DeviceSpec {
    /// Opens the device: for CUDA this initialises the driver and creates a context, which fails
    /// when there is no such GPU or the binary lacks the `cuda` feature.
    pub fn open(self) -> Result<Device> {
        match self {
            DeviceSpec::Cpu => Ok(Device::Cpu),
            DeviceSpec::Cuda(_) if !cuda_compiled() => Err(Error::Input(format!(
                "device {self}: this binary was built without CUDA support (rebuild with `--features cuda`)"
            ))),
            DeviceSpec::Cuda(n) => Device::new_cuda(n).map_err(|e| {
                // The driver's error says why; candle's captured backtrace would only bury it.
                let e = match e {
                    candle_core::Error::WithBacktrace { inner, .. } => *inner,
                    e => e,
                };
                Error::Input(format!("device {self}: cannot open it: {e}"))
            }),
        }
    }
}

/// Whether this build can run on CUDA GPUs at all (the `cuda` feature).
pub const fn cuda_compiled() -> bool {
    cfg!(feature = "cuda")
}

/// Parses and opens a device name (see [`DeviceSpec`]).
///
/// ```
/// let cpu = desdis_models::device::parse_device("cpu")?;
/// assert!(cpu.is_cpu());
/// assert!(desdis_models::device::parse_device("tpu").is_err());
/// # Ok::<(), desdis_models::Error>(())
/// ```
pub fn parse_device(text: &str) -> Result<Device> {
    text.parse::<DeviceSpec>()?.open()
}

/// The first CUDA GPU when the binary has CUDA support and one can be opened, else the CPU.
pub fn default_device() -> Device {
    if !cuda_compiled() {
        return Device::Cpu;
    }
    match DeviceSpec::Cuda(0).open() {
        Ok(device) => device,
        Err(e) => {
            tracing::info!("no usable GPU, running on the CPU ({e})");
            Device::Cpu
        }
    }
}

/// `--device` as given, or [`default_device`] when it is absent.
pub fn select_device(text: Option<&str>) -> Result<Device> {
    match text {
        Some(text) => parse_device(text),
        None => Ok(default_device()),
    }
}

/// A short name of an opened device, as [`DeviceSpec`] spells it (`cpu`, `cuda:0`).
pub fn device_name(device: &Device) -> String {
    match device.location() {
        candle_core::DeviceLocation::Cpu => "cpu".into(),
        candle_core::DeviceLocation::Cuda { gpu_id } => format!("cuda:{gpu_id}"),
        candle_core::DeviceLocation::Metal { gpu_id } => format!("metal:{gpu_id}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_parse() {
        for (text, want) in [
            ("cpu", DeviceSpec::Cpu),
            (" CPU ", DeviceSpec::Cpu),
            ("cuda", DeviceSpec::Cuda(0)),
            ("gpu", DeviceSpec::Cuda(0)),
            ("cuda:0", DeviceSpec::Cuda(0)),
            ("CUDA:3", DeviceSpec::Cuda(3)),
            ("gpu:1", DeviceSpec::Cuda(1)),
        ] {
            assert_eq!(text.parse::<DeviceSpec>().unwrap(), want, "{text:?}");
        }
        for text in ["", "tpu", "cuda:", "cuda:x", "cuda:-1", "cuda:+1", "cuda0", "cuda:1:2", "metal"] {
            let err = text.parse::<DeviceSpec>().unwrap_err().to_string();
            assert!(err.contains("expected cpu, cuda or cuda:N"), "{text:?}: {err}");
        }
    }

    #[test]
    fn names_round_trip() {
        for spec in [DeviceSpec::Cpu, DeviceSpec::Cuda(0), DeviceSpec::Cuda(7)] {
            assert_eq!(spec.to_string().parse::<DeviceSpec>().unwrap(), spec);
        }
        assert_eq!(device_name(&Device::Cpu), "cpu");
    }

    #[test]
    fn nets_know_their_device_and_take_host_inputs() {
        use candle_core::{ModuleT, Tensor};
        let device = select_device(Some("cpu")).unwrap();
        let (_vars, net) = crate::init::init_net(crate::arch::Arch::DesDis { dim: 8 }, 1, &device).unwrap();
        assert!(net.device().is_cpu());
        let x = Tensor::zeros((2, 1, 32, 32), candle_core::DType::U8, &Device::Cpu).unwrap();
        assert_eq!(net.forward_t(&x, false).unwrap().dims(), &[2, 128]);
    }

    #[test]
    fn cpu_always_opens_and_cuda_needs_the_feature() {
        assert!(parse_device("cpu").unwrap().is_cpu());
        assert!(select_device(Some("cpu")).unwrap().is_cpu());
        if !cuda_compiled() {
            let err = parse_device("cuda").unwrap_err().to_string();
            assert!(err.contains("without CUDA support"), "{err}");
            assert!(default_device().is_cpu());
            assert!(select_device(None).unwrap().is_cpu());
        }
    }
}
