//! `cargo run -p circuitry-spec --example check -- FILE [--set KEY=VALUE]...`: load an
//! experiment and print its resolved TOML, or its errors.
fn main() {
    let mut args = std::env::args().skip(1);
    let Some(path) = args.next() else {
        eprintln!("usage: check FILE [--set KEY=VALUE]...");
        std::process::exit(2);
    };
    let mut overrides = Vec::new();
    while let Some(a) = args.next() {
        if a == "--set" {
            overrides.extend(args.next());
        }
    }
    match circuitry_spec::Experiment::from_file_with_overrides(&path, &overrides) {
        Ok(e) => {
            println!("{}", e.resolved_toml());
            for v in e.expand() {
                println!(
                    "# run {}: {} -> {}",
                    v.index,
                    v.label(),
                    v.experiment.hash()
                );
            }
        }
        Err(e) => {
            eprintln!("{e}");
            std::process::exit(1);
        }
    }
}
