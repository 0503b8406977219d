//! circuitry-spec (in progress)
