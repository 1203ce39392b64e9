//! Running a builder: build the Dockerfile, export the result as an archive in a temporary
//! directory, drop the builder's copy.

use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use crate::{Builder, BuilderKind, Error, Result};

/// What to build.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BuildRequest {
    /// The Dockerfile (or Containerfile).
    pub dockerfile: PathBuf,
    /// The build context directory.
    pub context: PathBuf,
    /// `--build-arg` values, `KEY=VALUE` (or `KEY`, taken from the environment), as given.
    pub build_args: Vec<String>,
    /// The stage to build (`--target`), or the last one.
    pub target: Option<String>,
    /// The platform to build for, `os/arch[/variant]`.
    pub platform: String,
    /// Ask the builder to print less (`--quiet`).
    pub quiet: bool,
}

impl BuildRequest {
    /// A request for `dockerfile` in `context` (default: the Dockerfile's directory), for
    /// `platform`, after checking that both exist.
    pub fn new(dockerfile: &Path, context: Option<&Path>, platform: &str) -> Result<Self> {
        let meta = std::fs::metadata(dockerfile).map_err(|e| Error::Dockerfile {
            path: dockerfile.to_path_buf(),
            reason: e.to_string(),
        })?;
        if !meta.is_file() {
            return Err(Error::Dockerfile {
                path: dockerfile.to_path_buf(),
                reason: "not a file".into(),
            });
        }
        let context = match context {
            Some(dir) => dir.to_path_buf(),
            None => match dockerfile.parent() {
                Some(dir) if !dir.as_os_str().is_empty() => dir.to_path_buf(),
                _ => PathBuf::from("."),
            },
        };
        match std::fs::metadata(&context) {
            Ok(m) if m.is_dir() => {}
            Ok(_) => {
                return Err(Error::Context {
                    path: context,
                    reason: "not a directory".into(),
                })
            }
            Err(e) => {
                return Err(Error::Context {
                    path: context,
                    reason: e.to_string(),
                })
            }
        }
        Ok(BuildRequest {
            dockerfile: dockerfile.to_path_buf(),
            context,
            build_args: Vec::new(),
            target: None,
            platform: platform.to_string(),
            quiet: false,
        })
    }

    /// The options every builder's build command shares, then the context.
    fn build_options(&self) -> Vec<OsString> {
        let mut args: Vec<OsString> = vec!["--file".into(), self.dockerfile.clone().into()];
        for arg in &self.build_args {
            args.extend(["--build-arg".into(), arg.into()]);
        }
        if let Some(target) = &self.target {
            args.extend(["--target".into(), target.into()]);
        }
        args.extend(["--platform".into(), (&self.platform).into()]);
        if self.quiet {
            args.push("--quiet".into());
        }
        args
    }
}

/// How the built image is stored.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ArchiveFormat {
    /// An OCI image layout in a tar file (`oci-archive:`).
    OciArchive,
    /// `docker save` output (`docker-archive:`).
    DockerArchive,
}

/// The built image: an archive holding one image, in a temporary directory removed on drop.
#[derive(Debug)]
pub struct BuiltImage {
    dir: tempfile::TempDir,
    archive: PathBuf,
    format: ArchiveFormat,
    builder: BuilderKind,
}

impl BuiltImage {
    /// The archive file.
    pub fn archive(&self) -> &Path {
        &self.archive
    }

    /// Its format.
    pub fn format(&self) -> ArchiveFormat {
        self.format
    }

    /// The temporary directory holding it (removed when this value is dropped).
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// The builder that made it.
    pub fn builder(&self) -> BuilderKind {
        self.builder
    }
}

/// Name of the archive inside the temporary directory.
const ARCHIVE: &str = "image.tar";
/// Where the builder writes the image's ID (`--iidfile`).
const IID_FILE: &str = "image-id";

impl Builder {
    /// Builds `request` and exports the image to an archive in `dir`, an empty directory
    /// the result owns (and removes when dropped). The builder's output goes to this
    /// process's standard output and error; its own copy of the image is removed afterwards.
    pub fn build(&self, request: &BuildRequest, dir: tempfile::TempDir) -> Result<BuiltImage> {
        let archive = dir.path().join(ARCHIVE);
        let iid_file = dir.path().join(IID_FILE);
        let format = match self.kind {
            BuilderKind::Buildah => {
                let id = self.build_with_iid(&["bud"], request, &iid_file)?;
                let target = format!("oci-archive:{}", archive.display());
                let push = self
                    .command(&["push", "--disable-compression"])
                    .args(request.quiet.then_some("--quiet"))
                    .arg(&id)
                    .arg(&target)
                    .output_to_user("buildah push");
                self.remove_image(&id);
                push?;
                ArchiveFormat::OciArchive
            }
            BuilderKind::Podman => {
                let id = self.build_with_iid(&["build"], request, &iid_file)?;
                let save = self
                    .command(&["save", "--format", "oci-archive", "--output"])
                    .arg(&archive)
                    .args(request.quiet.then_some("--quiet"))
                    .arg(&id)
                    .output_to_user("podman save");
                self.remove_image(&id);
                save?;
                ArchiveFormat::OciArchive
            }
            BuilderKind::Docker if self.buildx_exports_oci() => {
                let mut output = OsString::from("type=oci,dest=");
                output.push(&archive);
                self.command(&["buildx", "build", "--output"])
                    .arg(output)
                    .args(request.build_options())
                    .arg(&request.context)
                    .output_to_user("docker buildx build")?;
                ArchiveFormat::OciArchive
            }
            BuilderKind::Docker => {
                let id = self.build_with_iid(&["build"], request, &iid_file)?;
                let save = self
                    .command(&["save", "--output"])
                    .arg(&archive)
                    .arg(&id)
                    .output_to_user("docker save");
                self.remove_image(&id);
                save?;
                ArchiveFormat::DockerArchive
            }
        };
        if !archive.is_file() {
            return Err(Error::NoOutput {
                command: format!("{}", self.kind),
                path: archive,
            });
        }
        Ok(BuiltImage {
            dir,
            archive,
            format,
            builder: self.kind,
        })
    }

    /// `PROGRAM ARGS`, with the request's build options and context, writing the image ID to
    /// `iid_file`; returns the ID.
    fn build_with_iid(
        &self,
        args: &[&str],
        request: &BuildRequest,
        iid_file: &Path,
    ) -> Result<String> {
        let step = format!("{} {}", self.kind, args.join(" "));
        self.command(args)
            .arg("--iidfile")
            .arg(iid_file)
            .args(request.build_options())
            .arg(&request.context)
            .output_to_user(&step)?;
        let id = std::fs::read_to_string(iid_file).map_err(|_| Error::NoOutput {
            command: step,
            path: iid_file.to_path_buf(),
        })?;
        Ok(id.trim().to_string())
    }

    /// Whether `docker buildx` is there and its builder can write an OCI archive: the
    /// default `docker` driver cannot (without the containerd image store, which we cannot
    /// see), so only another driver takes the buildx path.
    fn buildx_exports_oci(&self) -> bool {
        let out = self
            .command(&["buildx", "inspect"])
            .stdin(Stdio::null())
            .output();
        match out {
            Ok(out) if out.status.success() => {
                buildx_driver(&String::from_utf8_lossy(&out.stdout)).is_some_and(|d| d != "docker")
            }
            _ => false,
        }
    }

    /// Removes the builder's copy of the image `id`: d2l keeps its result only in the
    /// archive. A failure is worth a warning, not a failed build.
    fn remove_image(&self, id: &str) {
        let out = self.command(&["rmi"]).arg(id).stdin(Stdio::null()).output();
        match out {
            Ok(out) if out.status.success() => {}
            Ok(out) => tracing::warn!(
                "`{} rmi {id}` failed ({}): {}",
                self.kind,
                out.status,
                String::from_utf8_lossy(&out.stderr).trim()
            ),
            Err(e) => tracing::warn!("cannot run `{} rmi {id}`: {e}", self.kind),
        }
    }

    fn command(&self, args: &[&str]) -> Command {
        let mut cmd = Command::new(&self.program);
        cmd.args(args);
        cmd
    }
}

/// The driver `docker buildx inspect` reports (`Driver: docker-container`).
fn buildx_driver(inspect: &str) -> Option<&str> {
    inspect
        .lines()
        .filter_map(|line| line.split_once(':'))
        .find(|(key, _)| key.trim() == "Driver")
        .map(|(_, value)| value.trim())
}

/// Running a builder step with its output going to the user.
trait RunStep {
    /// Runs the command with inherited standard output and error (and no standard input:
    /// nothing should wait for an answer); fails unless it exits 0.
    fn output_to_user(&mut self, step: &str) -> Result<()>;
}

impl RunStep for Command {
    fn output_to_user(&mut self, step: &str) -> Result<()> {
        tracing::info!("running {}", command_line(self));
        let status = self
            .stdin(Stdio::null())
            .status()
            .map_err(|source| Error::Spawn {
                command: command_line(self),
                source,
            })?;
        if !status.success() {
            return Err(Error::Failed {
                command: step.to_string(),
                status,
            });
        }
        Ok(())
    }
}

/// A command line as a shell user would read it (for logs and errors).
fn command_line(cmd: &Command) -> String {
    std::iter::once(cmd.get_program())
        .chain(cmd.get_args())
        .map(|a| a.to_string_lossy())
        .collect::<Vec<_>>()
        .join(" ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn context_defaults_to_the_dockerfiles_directory() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("Containerfile");
        std::fs::write(&file, "FROM scratch\n").unwrap();
        let request = BuildRequest::new(&file, None, "linux/amd64").unwrap();
        assert_eq!(request.context, dir.path());
        let other = tempfile::tempdir().unwrap();
        let request = BuildRequest::new(&file, Some(other.path()), "linux/arm64").unwrap();
        assert_eq!(request.context, other.path());
        assert_eq!(request.platform, "linux/arm64");
    }

    #[test]
    fn missing_dockerfile_or_context_is_named() {
        let dir = tempfile::tempdir().unwrap();
        let missing = dir.path().join("Dockerfile");
        let err = BuildRequest::new(&missing, None, "linux/amd64").unwrap_err();
        assert!(err
            .to_string()
            .starts_with(&format!("{}: ", missing.display())));
        let err = BuildRequest::new(dir.path(), None, "linux/amd64").unwrap_err();
        assert_eq!(
            err.to_string(),
            format!("{}: not a file", dir.path().display())
        );
        let file = dir.path().join("Dockerfile");
        std::fs::write(&file, "FROM scratch\n").unwrap();
        let err = BuildRequest::new(&file, Some(&file), "linux/amd64").unwrap_err();
        assert_eq!(
            err.to_string(),
            format!("build context {}: not a directory", file.display())
        );
    }

    #[test]
    fn build_options_in_order() {
        let request = BuildRequest {
            dockerfile: "ctx/Dockerfile".into(),
            context: "ctx".into(),
            build_args: vec!["A=1".into(), "B".into()],
            target: Some("kernel".into()),
            platform: "linux/amd64".into(),
            quiet: true,
        };
        let args: Vec<String> = request
            .build_options()
            .iter()
            .map(|a| a.to_string_lossy().into_owned())
            .collect();
        assert_eq!(
            args,
            [
                "--file",
                "ctx/Dockerfile",
                "--build-arg",
                "A=1",
                "--build-arg",
                "B",
                "--target",
                "kernel",
                "--platform",
                "linux/amd64",
                "--quiet"
            ]
        );
    }

    #[test]
    fn buildx_driver_from_inspect_output() {
        let default = "Name:          default\nDriver:        docker\nLast Activity: x\n\n\
                       Nodes:\nName:      default\nEndpoint:  default\n";
        assert_eq!(buildx_driver(default), Some("docker"));
        let container = "Name:          builder\nDriver:        docker-container\n";
        assert_eq!(buildx_driver(container), Some("docker-container"));
        assert_eq!(buildx_driver("nothing here"), None);
    }
}
