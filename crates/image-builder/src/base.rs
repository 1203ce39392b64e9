//! Handing a builder the image a generated Containerfile starts `FROM`, as an OCI archive d2l
//! wrote: never through a registry.
//!
//! buildah and podman read `FROM oci-archive:PATH` themselves. (Not `oci:DIR`: buildah 1.28
//! names the image after DIR, which then has to be a valid lowercase image name.) docker
//! cannot, so the archive is `docker load`ed first and its image ID is the `FROM`; that image
//! is removed again when the [`BaseImage`] is dropped.

use std::path::Path;
use std::process::{Command, Stdio};

use crate::{Builder, BuilderKind, Error, Result};

/// What a Containerfile's `FROM` names for an archive, while the builder needs it.
#[derive(Debug)]
pub struct BaseImage {
    /// The `FROM` value.
    pub reference: String,
    /// docker's loaded copy, removed on drop.
    loaded: Option<Builder>,
}

impl Builder {
    /// Makes `oci_archive` (an absolute path to an OCI archive) something this builder's
    /// `FROM` can name.
    pub fn base_image(&self, oci_archive: &Path) -> Result<BaseImage> {
        if self.kind != BuilderKind::Docker {
            return Ok(BaseImage {
                reference: format!("oci-archive:{}", oci_archive.display()),
                loaded: None,
            });
        }
        let mut cmd = Command::new(&self.program);
        cmd.args(["load", "--input"]).arg(oci_archive);
        let out = cmd
            .stdin(Stdio::null())
            .stderr(Stdio::inherit())
            .output()
            .map_err(|source| Error::Spawn {
                command: "docker load".into(),
                source,
            })?;
        if !out.status.success() {
            return Err(Error::Failed {
                command: "docker load".into(),
                status: out.status,
            });
        }
        let stdout = String::from_utf8_lossy(&out.stdout);
        let reference = loaded_image(&stdout).ok_or_else(|| Error::NoOutput {
            command: "docker load".into(),
            path: oci_archive.to_path_buf(),
        })?;
        Ok(BaseImage {
            reference: reference.to_string(),
            loaded: Some(self.clone()),
        })
    }
}

impl Drop for BaseImage {
    fn drop(&mut self) {
        if let Some(docker) = &self.loaded {
            let _ = Command::new(&docker.program)
                .args(["rmi", &self.reference])
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .status();
        }
    }
}

/// The image `docker load` reports: `Loaded image ID: sha256:...` or `Loaded image: NAME`.
fn loaded_image(stdout: &str) -> Option<&str> {
    stdout.lines().rev().find_map(|line| {
        line.strip_prefix("Loaded image ID: ")
            .or_else(|| line.strip_prefix("Loaded image: "))
            .map(str::trim)
            .filter(|r| !r.is_empty())
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn buildah_and_podman_read_the_archive_themselves() {
        for kind in [BuilderKind::Buildah, BuilderKind::Podman] {
            let builder = Builder {
                kind,
                program: "/nonexistent".into(),
            };
            let base = builder.base_image(Path::new("/tmp/b/base.tar")).unwrap();
            assert_eq!(base.reference, "oci-archive:/tmp/b/base.tar");
        }
    }

    #[test]
    fn docker_load_output() {
        assert_eq!(
            loaded_image("Loaded image ID: sha256:0123abcd\n"),
            Some("sha256:0123abcd")
        );
        assert_eq!(
            loaded_image("Loaded image: base:latest\n"),
            Some("base:latest")
        );
        assert_eq!(loaded_image("something else\n"), None);
    }
}
