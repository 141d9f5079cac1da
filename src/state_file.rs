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
///
/// The temporary file has a random name and is created with O_EXCL: a fixed name would let
/// whoever can write the directory plant a symlink there, and a root CLI writing the daemon's
/// state would then write through it.
pub fn create_temp(dir: &Path, name: &str) -> std::io::Result<(PathBuf, std::fs::File)> {
    std::fs::create_dir_all(dir)?;
    let temp = tempfile::Builder::new()
        .prefix(&format!(".{name}."))
        .suffix(".tmp")
        .tempfile_in(dir)?;
    let (file, path) = temp.keep().map_err(|e| e.error)?;
    Ok((path, file))
}

/// The second half: renames the synced `temp` over `dir/name` and syncs the directory.
pub fn commit(dir: &Path, name: &str, temp: &Path) -> std::io::Result<()> {
    std::fs::rename(temp, dir.join(name))?;
    std::fs::File::open(dir)?.sync_all()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_symlink_planted_at_a_temporary_name_is_never_written_through() {
        let dir = tempfile::tempdir().expect("tempdir");
        let victim = dir.path().join("victim");
        std::fs::write(&victim, "precious").expect("write");
        std::os::unix::fs::symlink(&victim, dir.path().join(".status.json.tmp")).expect("link");
        write_atomic(dir.path(), "status.json", b"new").expect("written");
        assert_eq!(std::fs::read_to_string(&victim).expect("read"), "precious");
        assert_eq!(
            std::fs::read_to_string(dir.path().join("status.json")).expect("read"),
            "new"
        );
        let left: Vec<_> = std::fs::read_dir(dir.path())
            .expect("dir")
            .flatten()
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .filter(|n| n.ends_with(".tmp") && n != ".status.json.tmp")
            .collect();
        assert!(left.is_empty(), "temporary files left: {left:?}");
    }
}
