//! `cargo run -p circuitry-spec --example analyses`: what `circuitry analyses` prints.
fn main() {
    for kind in circuitry_spec::analysis_kinds() {
        println!("{kind}");
    }
}
