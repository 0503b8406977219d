//! circuitry-circuits (in progress)
