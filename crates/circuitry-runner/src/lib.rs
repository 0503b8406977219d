//! circuitry-runner (in progress)
