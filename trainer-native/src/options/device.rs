//! Choosing the compute device.

use clap::ValueEnum;
use prunelab_engine::burn::prelude::*;

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum DeviceChoice {
    /// wgpu when it finds a hardware GPU, otherwise the CPU backend.
    Auto,
    /// burn's pure-Rust CPU backend (flex).
    Cpu,
    /// wgpu (Vulkan, Metal, DX12; lavapipe on machines without a GPU).
    Wgpu,
}

/// The device and a label saying what it is.
pub fn pick(choice: DeviceChoice) -> Result<(Device, String), String> {
    match choice {
        DeviceChoice::Cpu => Ok((Device::flex(), "cpu (flex)".to_string())),
        DeviceChoice::Wgpu => wgpu_device().map(|(d, name, _)| (d, format!("wgpu ({name})"))),
        DeviceChoice::Auto => match wgpu_device() {
            Ok((device, name, true)) => Ok((device, format!("wgpu ({name})"))),
            // A software adapter (lavapipe, SwiftShader) is slower than the native CPU backend.
            Ok((_, name, false)) => Ok((Device::flex(), format!("cpu (flex; wgpu adapter {name} is software)"))),
            Err(_) => Ok((Device::flex(), "cpu (flex; no wgpu adapter)".to_string())),
        },
    }
}

/// Initialises wgpu; returns the device, the adapter name, and whether it is hardware.
fn wgpu_device() -> Result<(Device, String, bool), String> {
    let (device, setup) = Device::wgpu_options()
        .init_with_setup()
        .map_err(|e| format!("no usable wgpu adapter: {e:?}"))?;
    let info = setup.adapter.get_info();
    let hardware = !matches!(
        info.device_type,
        prunelab_engine::burn::tensor::wgpu::wgpu::DeviceType::Cpu
    );
    Ok((device, format!("{} / {:?}", info.name, info.backend), hardware))
}
