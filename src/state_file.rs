//! Files kidsafe keeps under `state_dir` (status, overrides, the compiled-store cache), written
//! so that a reader — or a restart after a power cut — sees the old file or the new one whole,
//! never half of one.

use std::io::Write;
use std::path::{Path, PathBuf};

/// Writes `bytes` to `dir/name`: a temporary file in the same directory, fsync, rename over
/// the old one, fsync of the directory (the rename is durable only once the directory entry is
/// on disk). Creates `dir` if needed.
pub fn write_atomic(dir: &Path, name: &str, bytes: &[u8]) -> std::io::Result<()> {
    let (temp, mut file) = create_temp(dir, name)?;
    file.write_all(bytes)?;
    file.sync_all()?;
    drop(file);
    commit(dir, name, &temp)
}

/// The first half of [`write_atomic`] for a caller that streams the file: creates `dir` if
/// needed and the temporary file for `dir/name`. Write it, `sync_all` it, then [`commit`] it.
pub fn create_temp(dir: &Path, name: &str) -> std::io::Result<(PathBuf, std::fs::File)> {
    std::fs::create_dir_all(dir)?;
    let temp = dir.join(format!(".{name}.tmp"));
    let file = std::fs::File::create(&temp)?;
    Ok((temp, file))
}

/// The second half: renames the synced `temp` over `dir/name` and syncs the directory.
pub fn commit(dir: &Path, name: &str, temp: &Path) -> std::io::Result<()> {
    std::fs::rename(temp, dir.join(name))?;
    std::fs::File::open(dir)?.sync_all()
}
