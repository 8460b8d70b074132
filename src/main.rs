fn main() -> std::process::ExitCode {
    std::process::ExitCode::from(comfyprov::cli::main())
}
