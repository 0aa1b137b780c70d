//! `kurento-module-creator`: see `kurento-module-creator --help` and
//! [`module_creator::cli`].

use std::process::ExitCode;

fn main() -> ExitCode {
    let mut args = vec![];
    for a in std::env::args_os().skip(1) {
        match a.into_string() {
            Ok(s) => args.push(s),
            Err(a) => {
                eprintln!("kurento-module-creator: argument {a:?} is not valid UTF-8");
                return ExitCode::from(1);
            }
        }
    }
    let code = module_creator::cli::run(&args, &mut std::io::stdout(), &mut std::io::stderr());
    ExitCode::from(u8::try_from(code).unwrap_or(1))
}
