//! `kurento-media-server`: KMS 7.x-compatible media server.

fn main() -> std::process::ExitCode {
    kurento_media_server::main_with_modules(vec![])
}
