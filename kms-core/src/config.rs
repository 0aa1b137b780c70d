//! Settings the object model reads (spec §11.2–11.3).

use serde_json::Value;

/// Configuration shared by all objects of a server.
#[derive(Debug, Clone, Default)]
pub struct CoreConfig {
    /// The merged module configuration tree: `{"kurento": {"MediaElement":
    /// {...}}, "<plugin>": {...}}` (the `modules` key of spec §11.2).
    pub modules: Value,
    /// `metadata` of the main config, pretty-printed, or "" (spec §9).
    pub metadata: String,
    /// 0 = unlimited. Beyond upstream: one client cannot exhaust the server.
    pub max_objects_per_session: usize,
    /// Upper bound for `getUsedCpu(interval)` in ms, so a call cannot hold a
    /// worker indefinitely.
    pub max_cpu_sample_ms: u64,
    /// Directories the module configuration was read from, then the main
    /// configuration's: relative file settings (certificates) resolve here.
    pub config_dirs: Vec<std::path::PathBuf>,
}

impl CoreConfig {
    /// `modules.<ns>.<class>.<key>` (spec §11.2: the declaring class).
    pub fn module_value(&self, ns: &str, class: &str, key: &str) -> Option<&Value> {
        self.modules.get(ns)?.get(class)?.get(key)
    }

    /// Lenient integer read: INI values are strings (spec §11.2).
    pub fn module_i64(&self, ns: &str, class: &str, key: &str) -> Option<i64> {
        match self.module_value(ns, class, key)? {
            Value::Number(n) => n.as_i64(),
            Value::String(s) => s.trim().parse().ok(),
            Value::Bool(b) => Some(*b as i64),
            _ => None,
        }
    }

    pub fn module_str(&self, ns: &str, class: &str, key: &str) -> Option<String> {
        match self.module_value(ns, class, key)? {
            Value::String(s) => Some(s.clone()),
            Value::Null => None,
            v => Some(v.to_string()),
        }
    }

    pub fn module_bool(&self, ns: &str, class: &str, key: &str) -> Option<bool> {
        match self.module_value(ns, class, key)? {
            Value::Bool(b) => Some(*b),
            Value::Number(n) => n.as_i64().map(|i| i != 0),
            Value::String(s) => match s.trim() {
                "1" | "true" | "TRUE" | "True" | "yes" => Some(true),
                "0" | "false" | "FALSE" | "False" | "no" => Some(false),
                _ => None,
            },
            _ => None,
        }
    }
}
