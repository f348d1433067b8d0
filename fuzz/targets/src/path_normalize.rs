//! Target `path_normalize`: request-path normalization (pending the engine's new path API).

/// The target body.
pub fn run(_data: &[u8]) {}
