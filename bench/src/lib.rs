//! What the benchmark binaries share: [`Proc`], a child process killed and
//! reaped when dropped, and [`bin`], the path of a sibling binary (the
//! release builds sit side by side in `target/release`).

use std::path::PathBuf;
use std::process::Child;

/// A child process that is killed and reaped when this is dropped, so a
/// benchmark that fails half-way leaves no server running.
pub struct Proc(pub Child);

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// The path of binary `name` next to the running one.
pub fn bin(name: &str) -> PathBuf {
    let exe = std::env::current_exe().expect("own path");
    exe.with_file_name(name)
}
