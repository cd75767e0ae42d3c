//! The `cryptosphere` binary; everything lives in [`cryptosphere::cli`].

fn main() -> std::process::ExitCode {
    cryptosphere::cli::main()
}
