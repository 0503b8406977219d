//! Choosing a burn device by name at run time.

use burn::prelude::Device;

/// The backends circuitry can be built with. Only `flex` is always compiled in; the others
/// are cargo features of `circuitry-models` (`tch`, `cuda`, `wgpu`, `ndarray`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DeviceKind {
    Flex,
    Tch,
    Cuda,
    Wgpu,
    NdArray,
}

impl DeviceKind {
    pub const NAMES: [&'static str; 5] = ["flex", "tch", "cuda", "wgpu", "ndarray"];

    pub fn feature_enabled(self) -> bool {
        match self {
            DeviceKind::Flex => true,
            DeviceKind::Tch => cfg!(feature = "tch"),
            DeviceKind::Cuda => cfg!(feature = "cuda"),
            DeviceKind::Wgpu => cfg!(feature = "wgpu"),
            DeviceKind::NdArray => cfg!(feature = "ndarray"),
        }
    }
}

/// Parses `flex`, `tch`, `cuda`, `cuda:N`, `wgpu` or `ndarray` into a device, with an error
/// that says how to enable a backend that was not compiled in.
pub fn parse_device(name: &str) -> Result<Device, String> {
    let (kind_name, index) = match name.split_once(':') {
        Some((k, i)) => (k, Some(i)),
        None => (name, None),
    };
    let kind = match kind_name {
        "flex" | "cpu" => DeviceKind::Flex,
        "tch" | "libtorch" => DeviceKind::Tch,
        "cuda" => DeviceKind::Cuda,
        "wgpu" => DeviceKind::Wgpu,
        "ndarray" => DeviceKind::NdArray,
        other => {
            return Err(format!(
                "unknown device `{other}`; expected one of {}",
                DeviceKind::NAMES.join(", ")
            ));
        }
    };
    if !kind.feature_enabled() {
        return Err(format!(
            "device `{kind_name}` is not compiled into this build; rebuild with `--features circuitry-models/{kind_name}`"
        ));
    }
    let index: usize = match index {
        None => 0,
        Some(i) => i
            .parse()
            .map_err(|_| format!("bad device index `{i}` in `{name}`"))?,
    };
    Ok(make_device(kind, index))
}

#[allow(deprecated, unused_variables, unreachable_code)]
fn make_device(kind: DeviceKind, index: usize) -> Device {
    match kind {
        #[cfg(feature = "tch")]
        DeviceKind::Tch => Device::libtorch(),
        #[cfg(feature = "cuda")]
        DeviceKind::Cuda => Device::cuda(index),
        #[cfg(feature = "wgpu")]
        DeviceKind::Wgpu => Device::wgpu(Default::default()),
        #[cfg(feature = "ndarray")]
        DeviceKind::NdArray => Device::ndarray(),
        _ => Device::flex(),
    }
}
