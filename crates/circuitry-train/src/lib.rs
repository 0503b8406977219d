//! circuitry-train (in progress)
