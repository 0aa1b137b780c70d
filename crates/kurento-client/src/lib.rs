//! Placeholder; generated client lands here.
