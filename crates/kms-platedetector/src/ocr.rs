//! Reading a plate crop with Debian's `tesseract` command (packages
//! `tesseract-ocr`, `tesseract-ocr-eng`): one line of uppercase letters and
//! digits. A process per read keeps tesseract's C++ state out of the
//! server; reads run on the filter's OCR thread, never a streaming thread.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

/// Why a read failed.
#[derive(Debug, thiserror::Error)]
pub enum OcrError {
    #[error("tesseract is not installed (Debian packages tesseract-ocr and tesseract-ocr-eng)")]
    Missing,
    #[error("cannot run tesseract: {0}")]
    Io(#[from] std::io::Error),
    #[error("tesseract failed: {0}")]
    Failed(String),
}

/// The `tesseract` binary on `PATH`.
pub fn tesseract() -> Result<PathBuf, OcrError> {
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path).map(|d| d.join("tesseract")).find(|p| p.is_file()).ok_or(OcrError::Missing)
}

/// Reads the text of a PGM picture of one line.
pub fn read_line(bin: &Path, pgm: &[u8]) -> Result<String, OcrError> {
    let mut child = Command::new(bin)
        .args(["stdin", "stdout", "-l", "eng", "--psm", "7", "-c"])
        .arg("tessedit_char_whitelist=ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()?;
    if let Some(mut stdin) = child.stdin.take() {
        stdin.write_all(pgm)?;
    }
    let out = child.wait_with_output()?;
    if !out.status.success() {
        return Err(OcrError::Failed(String::from_utf8_lossy(&out.stderr).trim().to_string()));
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}
