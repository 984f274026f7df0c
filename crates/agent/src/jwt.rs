//! The Engine API JWT secret shared by the execution and consensus client.

use std::io::Write;
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::Path;

/// Creates `path` with 32 random bytes as hex and mode 0600 unless it exists; the secret is never logged.
///
/// An existing file is kept as it is (both clients already share it), but one readable by others is
/// refused: it would let any local user drive the execution client through the Engine API.
pub(crate) fn ensure(path: &Path) -> std::io::Result<bool> {
    match std::fs::metadata(path) {
        Ok(meta) => {
            if meta.permissions().mode() & 0o077 != 0 {
                return Err(std::io::Error::other(format!(
                    "JWT secret {} is readable by group or others (mode {:o}); run `chmod 600 {}`",
                    path.display(),
                    meta.permissions().mode() & 0o777,
                    path.display()
                )));
            }
            Ok(false)
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            if let Some(dir) = path.parent() {
                std::fs::create_dir_all(dir)?;
            }
            let mut bytes = [0u8; 32];
            getrandom::fill(&mut bytes).map_err(std::io::Error::other)?;
            // create_new: two agents racing on one volume must not overwrite each other's secret.
            let mut file = std::fs::OpenOptions::new()
                .write(true)
                .create_new(true)
                .mode(0o600)
                .open(path)?;
            file.write_all(alloy::hex::encode(bytes).as_bytes())?;
            file.sync_all()?;
            Ok(true)
        }
        Err(e) => Err(e),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn creates_hex_secret_with_mode_0600_once() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("sub/jwt.hex");
        assert!(ensure(&path).unwrap());
        let text = std::fs::read_to_string(&path).unwrap();
        assert_eq!(text.len(), 64);
        assert!(text.chars().all(|c| c.is_ascii_hexdigit()));
        assert_eq!(
            std::fs::metadata(&path).unwrap().permissions().mode() & 0o777,
            0o600
        );
        assert!(!ensure(&path).unwrap(), "second call must keep the file");
        assert_eq!(std::fs::read_to_string(&path).unwrap(), text);
    }

    #[test]
    fn refuses_a_world_readable_secret() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("jwt.hex");
        std::fs::write(&path, "00").unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).unwrap();
        let err = ensure(&path).unwrap_err().to_string();
        assert!(err.contains("chmod 600"), "{err}");
    }
}
