//! The `kidsafe` command. Parsing, dispatch and exit codes are `kidsafe::cli`'s; the bodies
//! of the commands live in the modules that own them.

fn main() -> std::process::ExitCode {
    kidsafe::cli::main()
}
