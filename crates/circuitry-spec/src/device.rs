//! `device = "..."`: the default compute device of an experiment (the CLI's `--device` wins).

use std::borrow::Cow;
use std::fmt;
use std::str::FromStr;

use schemars::{JsonSchema, Schema, SchemaGenerator, json_schema};
use serde::de::{self, Visitor};
use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::diagnostic::{did_you_mean, list};

/// A burn backend and device.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Device {
    /// `flex`: burn's pure-Rust CPU backend (the default).
    Flex,
    /// `tch`: libtorch (CPU).
    Tch,
    /// `cuda` (device 0) or `cuda:N`.
    Cuda(u32),
    /// `wgpu`: the default GPU through WebGPU.
    Wgpu,
    /// `ndarray`: burn's ndarray CPU backend.
    Ndarray,
}

/// The device names accepted in files (besides `cuda:N`).
pub const DEVICE_NAMES: &[&str] = &["flex", "tch", "cuda", "wgpu", "ndarray"];

impl fmt::Display for Device {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Device::Flex => f.write_str("flex"),
            Device::Tch => f.write_str("tch"),
            Device::Cuda(0) => f.write_str("cuda"),
            Device::Cuda(n) => write!(f, "cuda:{n}"),
            Device::Wgpu => f.write_str("wgpu"),
            Device::Ndarray => f.write_str("ndarray"),
        }
    }
}

impl FromStr for Device {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "flex" => Ok(Device::Flex),
            "tch" => Ok(Device::Tch),
            "cuda" => Ok(Device::Cuda(0)),
            "wgpu" => Ok(Device::Wgpu),
            "ndarray" => Ok(Device::Ndarray),
            other => {
                if let Some(n) = other.strip_prefix("cuda:") {
                    return n.parse().map(Device::Cuda).map_err(|_| {
                        format!("invalid CUDA device `{other}`: write cuda:N with N a device index")
                    });
                }
                Err(match did_you_mean(other, DEVICE_NAMES) {
                    Some(s) => format!(
                        "unknown device `{other}`; did you mean `{s}`? devices: {}, cuda:N",
                        list(DEVICE_NAMES)
                    ),
                    None => format!(
                        "unknown device `{other}`; devices: {}, cuda:N",
                        list(DEVICE_NAMES)
                    ),
                })
            }
        }
    }
}

impl Serialize for Device {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for Device {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl Visitor<'_> for V {
            type Value = Device;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a device name")
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Device, E> {
                v.parse().map_err(E::custom)
            }
        }
        d.deserialize_any(V)
    }
}

impl JsonSchema for Device {
    fn schema_name() -> Cow<'static, str> {
        "Device".into()
    }

    fn json_schema(_: &mut SchemaGenerator) -> Schema {
        json_schema!({
            "description": "A compute device: flex (pure-Rust CPU, default), tch (libtorch), cuda, cuda:N, wgpu or ndarray.",
            "anyOf": [
                { "enum": DEVICE_NAMES },
                { "type": "string", "pattern": "^cuda:[0-9]+$" }
            ]
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips() {
        for s in ["flex", "tch", "cuda", "cuda:3", "wgpu", "ndarray"] {
            assert_eq!(s.parse::<Device>().unwrap().to_string(), s);
        }
        assert_eq!("cuda:0".parse::<Device>().unwrap(), Device::Cuda(0));
        assert!("cuda:x".parse::<Device>().is_err());
        assert!(
            "flx"
                .parse::<Device>()
                .unwrap_err()
                .contains("did you mean `flex`")
        );
    }
}
