//! Wire names → idiomatic Rust names, in one place (STYLE.md: generated
//! code does the Kurento ↔ Rust name mapping).

use heck::{ToSnakeCase, ToUpperCamelCase};

const KEYWORDS: &[&str] = &[
    "as", "break", "const", "continue", "else", "enum", "extern", "false", "fn", "for", "if", "impl", "in", "let",
    "loop", "match", "mod", "move", "mut", "pub", "ref", "return", "static", "struct", "trait", "true", "type",
    "unsafe", "use", "where", "while", "async", "await", "dyn", "abstract", "become", "box", "do", "final", "macro",
    "override", "priv", "typeof", "unsized", "virtual", "yield", "try", "gen",
];

/// `sdpMLineIndex` → `sdp_m_line_index`, `type` → `r#type`.
pub fn field(name: &str) -> String {
    let s = name.to_snake_case();
    let s = if s.is_empty() { "_field".to_string() } else { s };
    let s = if s.starts_with(|c: char| c.is_ascii_digit()) { format!("_{s}") } else { s };
    match s.as_str() {
        "self" | "super" | "crate" | "Self" => format!("{s}_"),
        k if KEYWORDS.contains(&k) => format!("r#{s}"),
        _ => s,
    }
}

/// Snake case without raw-identifier escaping, for composing names.
pub fn snake(name: &str) -> String {
    name.to_snake_case()
}

/// `NOT_FLOWING` → `NotFlowing`, `VP8` → `Vp8`, `connecting` → `Connecting`.
pub fn variant(value: &str) -> String {
    let s = value.to_upper_camel_case();
    let s = if s.is_empty() { "Empty".to_string() } else { s };
    if s.starts_with(|c: char| c.is_ascii_digit()) { format!("V{s}") } else { s }
}

/// Makes a list of generated names unique by suffixing collisions.
pub fn dedupe(names: Vec<String>) -> Vec<String> {
    let mut out: Vec<String> = Vec::with_capacity(names.len());
    for n in names {
        let mut candidate = n.clone();
        let mut i = 2;
        while out.contains(&candidate) {
            candidate = format!("{n}{i}");
            i += 1;
        }
        out.push(candidate);
    }
    out
}

/// A Rust string literal for arbitrary text.
pub fn lit(s: &str) -> String {
    format!("{s:?}")
}

/// Turns descriptor doc text into `///` lines (first paragraph only, markup
/// roles stripped): docs are for the reader of generated code, not a copy of
/// the descriptor.
pub fn doc_lines(doc: &str, indent: &str) -> String {
    let first = doc.split("\n\n").next().unwrap_or("").trim();
    if first.is_empty() {
        return String::new();
    }
    let mut out = String::new();
    for line in first.lines() {
        let line = line.trim().replace(":rom:cls:", "").replace(":rom:meth:", "").replace(":rom:attr:", "");
        out.push_str(indent);
        out.push_str("/// ");
        out.push_str(&line.replace('`', "'"));
        out.push('\n');
    }
    out
}
