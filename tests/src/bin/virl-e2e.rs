//! The `virl` program, built inside the end-to-end test package so that its
//! tests can run it as a child process (`CARGO_BIN_EXE_virl-e2e`).

fn main() -> std::process::ExitCode {
    virl_studio::cli::main()
}
