//! The KMS command line (spec §11.4): the same flags, `KURENTO_<OPT>`
//! environment fallbacks, unknown arguments ignored, `--gst-*` honoured.

use std::path::PathBuf;

#[derive(Debug, Clone, Default, PartialEq)]
pub struct Cli {
    pub help: bool,
    pub version: bool,
    pub list: bool,
    /// `--dump-config`: print the effective configuration as JSON, exit.
    pub dump_config: bool,
    pub conf_file: PathBuf,
    pub modules_config_path: Option<String>,
    pub modules_path: Option<String>,
    pub logs_path: Option<PathBuf>,
    pub log_file_size_mb: u64,
    pub number_log_files: u32,
    /// `--log-format=json`: one JSON object per line, for log shippers.
    pub log_json: bool,
    /// `--gst-debug=<spec>` and friends, applied to GStreamer's environment.
    pub gst_debug: Option<String>,
    pub gst_debug_no_color: bool,
}

pub const DEFAULT_CONF_FILE: &str = "/etc/kurento/kurento.conf.json";

pub const HELP: &str = "Usage: kurento-media-server [OPTION...]

Kurento Media Server (kurento-rs), wire-compatible with KMS 7.x.

  -h, --help                       Show this help and exit
  -v, --version                    Show the version and the loaded modules
  -l, --list                       List the available factories
      --dump-config                Print the effective configuration (files + KMS_* variables) as JSON
  -f, --conf-file=FILE             Main configuration file
                                   (env KURENTO_CONF_FILE; default /etc/kurento/kurento.conf.json)
  -c, --modules-config-path=DIRS   Colon-separated module config directories
                                   (env KURENTO_MODULES_CONFIG_PATH; default <conf dir>/modules)
  -p, --modules-path=DIRS          Accepted for compatibility; modules are linked in at build time
                                   (env KURENTO_MODULES_PATH)
  -d, --logs-path=DIR              Also write logs to files in DIR (env KURENTO_LOGS_PATH)
  -s, --log-file-size=MB           Log file size before rotation (env KURENTO_LOG_FILE_SIZE; 100)
  -n, --number-log-files=N         Log files kept (env KURENTO_NUMBER_LOG_FILES; 10)
      --log-format=FORMAT          text (default) or json: one JSON object per line
                                   (env KURENTO_LOG_FORMAT)
      --gst-debug=SPEC             GStreamer debug levels (as GST_DEBUG)
      --gst-debug-no-color         Disable colours in GStreamer debug output
";

const LONG: &[(&str, char)] = &[
    ("help", 'h'),
    ("version", 'v'),
    ("list", 'l'),
    ("conf-file", 'f'),
    ("modules-config-path", 'c'),
    ("modules-path", 'p'),
    ("logs-path", 'd'),
    ("log-file-size", 's'),
    ("number-log-files", 'n'),
    // No short form in KMS; 'F' is internal.
    ("log-format", 'F'),
    // No short form (KMS has none): an internal key.
    ("dump-config", 'D'),
];

fn takes_value(c: char) -> bool {
    matches!(c, 'f' | 'c' | 'p' | 'd' | 's' | 'n' | 'F')
}

impl Cli {
    /// Parses `args` (without the program name); `env` looks variables up.
    pub fn parse(args: &[String], env: impl Fn(&str) -> Option<String>) -> Cli {
        let mut given: Vec<(char, Option<String>)> = vec![];
        let mut gst_debug = None;
        let mut gst_no_color = false;
        let mut i = 0;
        while i < args.len() {
            let a = &args[i];
            i += 1;
            if let Some(rest) = a.strip_prefix("--gst-") {
                match rest.split_once('=') {
                    Some(("debug", v)) => gst_debug = Some(v.to_string()),
                    None if rest == "debug" && i < args.len() => {
                        gst_debug = Some(args[i].clone());
                        i += 1;
                    }
                    None if rest == "debug-no-color" => gst_no_color = true,
                    _ => {}
                }
                continue;
            }
            let (key, inline) = if let Some(long) = a.strip_prefix("--") {
                let (n, v) = match long.split_once('=') {
                    Some((n, v)) => (n, Some(v.to_string())),
                    None => (long, None),
                };
                match LONG.iter().find(|(l, _)| *l == n) {
                    Some((_, c)) => (*c, v),
                    None => continue, // unknown: ignored (spec §11.4)
                }
            } else if let Some(short) = a.strip_prefix('-') {
                let mut chars = short.chars();
                match chars.next() {
                    Some(c) if c != 'D' && c != 'F' && LONG.iter().any(|(_, s)| *s == c) => {
                        let rest: String = chars.collect();
                        (c, (!rest.is_empty()).then(|| rest.trim_start_matches('=').to_string()))
                    }
                    _ => continue,
                }
            } else {
                continue;
            };
            let value = if takes_value(key) && inline.is_none() && i < args.len() {
                i += 1;
                Some(args[i - 1].clone())
            } else {
                inline
            };
            given.push((key, value));
        }
        let get = |c: char| -> Option<String> {
            given.iter().rev().find(|(k, _)| *k == c).and_then(|(_, v)| v.clone()).or_else(|| {
                let long = LONG.iter().find(|(_, s)| *s == c).map(|(l, _)| *l)?;
                env(&format!("KURENTO_{}", long.to_uppercase().replace('-', "_")))
            })
        };
        let flag = |c: char| given.iter().any(|(k, _)| *k == c);
        Cli {
            help: flag('h'),
            version: flag('v'),
            list: flag('l'),
            dump_config: flag('D'),
            conf_file: PathBuf::from(get('f').unwrap_or_else(|| DEFAULT_CONF_FILE.to_string())),
            modules_config_path: get('c'),
            modules_path: get('p'),
            logs_path: get('d').map(PathBuf::from),
            log_file_size_mb: get('s').and_then(|v| v.parse().ok()).unwrap_or(100),
            number_log_files: get('n').and_then(|v| v.parse().ok()).unwrap_or(10),
            log_json: get('F').is_some_and(|v| v.eq_ignore_ascii_case("json")),
            gst_debug,
            gst_debug_no_color: gst_no_color,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(a: &[&str]) -> Vec<String> {
        a.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn command_line_wins_over_environment() {
        let env = |k: &str| (k == "KURENTO_CONF_FILE").then(|| "/env.json".to_string());
        assert_eq!(Cli::parse(&args(&[]), env).conf_file, PathBuf::from("/env.json"));
        assert_eq!(Cli::parse(&args(&["-f", "/cli.json"]), env).conf_file, PathBuf::from("/cli.json"));
        assert_eq!(Cli::parse(&args(&["--conf-file=/x.json"]), env).conf_file, PathBuf::from("/x.json"));
    }

    #[test]
    fn unknown_arguments_are_ignored_and_gst_options_kept() {
        let c = Cli::parse(&args(&["--bogus", "-z", "--gst-debug=3,agnosticbin:5", "--version"]), |_| None);
        assert!(c.version);
        assert_eq!(c.gst_debug.as_deref(), Some("3,agnosticbin:5"));
        assert_eq!(c.conf_file, PathBuf::from(DEFAULT_CONF_FILE));
    }

    #[test]
    fn modules_config_path_from_env() {
        let env = |k: &str| (k == "KURENTO_MODULES_CONFIG_PATH").then(|| "/a:/b".to_string());
        assert_eq!(Cli::parse(&args(&["-l"]), env).modules_config_path.as_deref(), Some("/a:/b"));
    }
}
