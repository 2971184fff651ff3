//! The `tungate` binary: parses the command line and hands over to the crates that do the
//! work ([`cli`] dispatches; [`daemon`] wires `tungate run` together).

mod cli;
mod daemon;

fn main() {
    std::process::exit(cli::main());
}
