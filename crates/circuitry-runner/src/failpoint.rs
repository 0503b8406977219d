//! Named points where a test can make a run die, fail or pause, to check that what a killed or
//! failed run leaves behind is never a mixed or partial output:
//! `CIRCUITRY_FAILPOINT=NAME[:abort|:error|:sleep-MS]` (default `abort`, which ends the process
//! as `kill -9` would). The points: `after-lock`, `node-committed`, `before-publish`,
//! `after-publish`.

use crate::error::RunError;

pub const FAILPOINT_ENV: &str = "CIRCUITRY_FAILPOINT";

/// Acts if `CIRCUITRY_FAILPOINT` names `point`.
pub fn hit(point: &str) -> Result<(), RunError> {
    let Some(spec) = std::env::var_os(FAILPOINT_ENV) else {
        return Ok(());
    };
    let spec = spec.to_string_lossy();
    let (name, action) = spec.split_once(':').unwrap_or((&spec, "abort"));
    if name != point {
        return Ok(());
    }
    if let Some(ms) = action.strip_prefix("sleep-") {
        let ms = ms.parse().unwrap_or(1000);
        std::thread::sleep(std::time::Duration::from_millis(ms));
        return Ok(());
    }
    match action {
        "error" => Err(RunError::Spec(format!(
            "failpoint `{point}` ({FAILPOINT_ENV}) failed this run"
        ))),
        _ => std::process::abort(),
    }
}
