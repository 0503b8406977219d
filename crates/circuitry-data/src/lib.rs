//! circuitry-data (in progress)
