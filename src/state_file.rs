//! Files kidsafe keeps under `state_dir` (status, overrides, the compiled-store cache), written
//! so that a reader — or a restart after a power cut — sees the old file or the new one whole,
//! never half of one.

use std::io::Write;
use std::path::Path;

/// Writes `bytes` to `dir/name`: a temporary file in the same directory, fsync, rename over
/// the old one, fsync of the directory (the rename is durable only once the directory entry is
/// on disk). Creates `dir` if needed.
pub fn write_atomic(dir: &Path, name: &str, bytes: &[u8]) -> std::io::Result<()> {
    std::fs::create_dir_all(dir)?;
    let temp = dir.join(format!(".{name}.tmp"));
    {
        let mut file = std::fs::File::create(&temp)?;
        file.write_all(bytes)?;
        file.sync_all()?;
    }
    std::fs::rename(&temp, dir.join(name))?;
    std::fs::File::open(dir)?.sync_all()
}
