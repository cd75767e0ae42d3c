//! The `cryptosphere` binary; everything lives in [`cryptosphere::cli`].

/// Chunks are large and short-lived: an allocator that keeps freed memory for the next one
/// saves the page faults of handing it back to the kernel and asking again.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> std::process::ExitCode {
    cryptosphere::cli::main()
}
