//! Devices: `"cpu"`, and `"cuda"` / `"cuda:N"` on builds with the `cuda` feature.

use std::sync::OnceLock;

use candle_core::{Device, DeviceLocation};

use super::error::{Result, TensorError};

pub use tandem_protocol::kernel::RUNTIME_ENV;

/// A device from its name: `cpu`, `cuda`, `cuda:N` (`gpu` is an alias of `cuda`).
pub fn parse(text: &str) -> Result<Device> {
    match text.trim() {
        "cpu" => Ok(Device::Cpu),
        "cuda" | "gpu" => cuda(0),
        other => match other.strip_prefix("cuda:").map(str::parse::<usize>) {
            Some(Ok(ordinal)) => cuda(ordinal),
            _ => Err(TensorError::Device(format!(
                "unknown device {text:?}: expected 'cpu', 'cuda' or 'cuda:N'"
            ))),
        },
    }
}

/// The device's name as notebook code writes it: `cpu`, `cuda:0`.
pub fn name(device: &Device) -> String {
    match device.location() {
        DeviceLocation::Cpu => "cpu".into(),
        DeviceLocation::Cuda { gpu_id } => format!("cuda:{gpu_id}"),
        DeviceLocation::Metal { gpu_id } => format!("metal:{gpu_id}"),
    }
}

#[cfg(feature = "cuda")]
fn cuda(ordinal: usize) -> Result<Device> {
    Device::new_cuda(ordinal).map_err(|error| {
        TensorError::Device(format!("CUDA device {ordinal} is not available: {error}"))
    })
}

#[cfg(not(feature = "cuda"))]
fn cuda(_ordinal: usize) -> Result<Device> {
    Err(TensorError::Device(
        "CUDA is not available: this Tandem kernel was built without CUDA support, so only \
         'cpu' exists (a GPU runtime needs a server built with `--features cuda` on a machine \
         with an NVIDIA GPU)"
            .into(),
    ))
}

/// Whether this build has CUDA and a CUDA device opens (checked once per kernel).
pub fn cuda_available() -> bool {
    static AVAILABLE: OnceLock<bool> = OnceLock::new();
    *AVAILABLE.get_or_init(|| cuda(0).is_ok())
}

/// Where tensors go unless told otherwise: the first CUDA device when the kernel runs as a
/// GPU runtime ([`RUNTIME_ENV`]`=gpu`) and one opens, else the CPU. Read once, at the first
/// use, so notebook code changing `os.environ` later does not move it.
pub fn default() -> Device {
    static DEFAULT: OnceLock<Device> = OnceLock::new();
    DEFAULT
        .get_or_init(|| {
            let gpu = std::env::var(RUNTIME_ENV).is_ok_and(|runtime| runtime == "gpu");
            match gpu.then(|| cuda(0)) {
                Some(Ok(device)) => device,
                Some(Err(error)) => {
                    tracing::warn!(%error, "GPU runtime requested, tensors stay on the CPU");
                    Device::Cpu
                }
                None => Device::Cpu,
            }
        })
        .clone()
}

/// Fails unless both operands live on the same device.
pub fn check_same(op: &str, lhs: &Device, rhs: &Device) -> Result<()> {
    if lhs.same_device(rhs) {
        return Ok(());
    }
    Err(TensorError::Device(format!(
        "{op}: tensors are on different devices ({} and {}); move one with .to(device)",
        name(lhs),
        name(rhs)
    )))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cpu_parses_and_bad_names_are_explained() {
        assert_eq!(name(&parse("cpu").unwrap()), "cpu");
        assert!(parse("tpu").unwrap_err().to_string().contains("'cpu'"));
    }

    #[cfg(not(feature = "cuda"))]
    #[test]
    fn cuda_is_a_clear_error_without_the_feature() {
        assert!(!cuda_available());
        let error = parse("cuda:0").unwrap_err().to_string();
        assert!(error.contains("built without CUDA"), "{error}");
    }
}
