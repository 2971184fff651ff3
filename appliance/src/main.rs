//! The `tungate` binary: parses the command line and hands over to [`tungate::cli`].

fn main() {
    std::process::exit(tungate::cli::main());
}
