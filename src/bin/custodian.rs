//! `custodian`: the operations command line (see [`custodian::cli`]).

fn main() -> std::process::ExitCode {
    custodian::cli::main()
}
