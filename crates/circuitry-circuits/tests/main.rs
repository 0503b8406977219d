//! The integration tests of `circuitry-circuits`, one module per file, linked into one test binary
//! (one link step instead of one per file).

mod analysis_common;
mod iv_common;
mod iv_smollm2;
mod wc_common;

mod causal_fixtures;
mod circuit_analyses;
mod composition_baseline;
mod factored_properties;
mod factored_scale;
mod icl_analyses;
mod intervention_analyses;
mod interventions_ablation;
mod interventions_attribution;
mod interventions_eap;
mod interventions_patching;
mod interventions_path_patching;
mod neuron_analyses;
mod smollm2_ioi;
mod smollm2_neurons;
mod weight_circuits_fixtures;
