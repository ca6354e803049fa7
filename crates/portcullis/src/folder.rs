//! Folders the library makes in an application's working directory (`.portcullis/`, the file
//! store's session folder): each gets a `.gitignore` of `*`, as Python's venv does, so that
//! `git add .` never commits a development key or a session.

use std::fs::OpenOptions;
use std::io::{self, Write as _};
use std::path::Path;

/// What the `.gitignore` says: everything in this folder, itself included.
const IGNORE_ALL: &str =
    "# Made by Portcullis: nothing in this folder belongs in version control.\n*\n";

/// Writes `dir/.gitignore` holding `*` unless a `.gitignore` is there already (one the
/// application wrote is left alone).
///
/// # Errors
/// The file system's, other than the file existing already.
pub(crate) fn ignore_in_git(dir: &Path) -> io::Result<()> {
    match OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(dir.join(".gitignore"))
    {
        Ok(mut file) => file.write_all(IGNORE_ALL.as_bytes()),
        Err(e) if e.kind() == io::ErrorKind::AlreadyExists => Ok(()),
        Err(e) => Err(e),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_gitignore_of_everything_is_written_once_and_an_existing_one_kept() {
        let dir = tempfile::tempdir().unwrap();
        ignore_in_git(dir.path()).unwrap();
        let path = dir.path().join(".gitignore");
        let text = std::fs::read_to_string(&path).unwrap();
        assert!(text.lines().any(|line| line == "*"), "{text}");
        std::fs::write(&path, "mine\n").unwrap();
        ignore_in_git(dir.path()).unwrap();
        assert_eq!(std::fs::read_to_string(&path).unwrap(), "mine\n");
    }
}
