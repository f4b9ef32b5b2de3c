//! The `virl` binary: the command line now; the studio joins it later.

fn main() -> std::process::ExitCode {
    virl_studio::cli::main()
}
