//! The `anjeon` binary: everything lives in the library; see `anjeon::cli`.

fn main() -> std::process::ExitCode {
    anjeon::cli::run()
}
