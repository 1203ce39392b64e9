//! Writing a result file safely: under a temporary name in the destination directory,
//! renamed into place only when complete, so a failure leaves nothing at the destination.

use std::fs::File;
use std::io::{self, BufWriter, Write};
use std::path::{Path, PathBuf};

use std::sync::Mutex;

use anyhow::{Context, Result};

/// Outputs being written, by their temporary path: removed if the process is interrupted
/// (destructors do not run when a signal ends the process).
static PARTIAL_OUTPUTS: Mutex<Vec<PathBuf>> = Mutex::new(Vec::new());

/// Removes outputs in progress on SIGINT, SIGTERM and SIGHUP, then exits with 130.
pub fn remove_partial_outputs_on_interrupt() {
    let result = ctrlc::set_handler(|| {
        // Runs on the handler's own thread, so ordinary code (locks, I/O) is fine here.
        if let Ok(paths) = PARTIAL_OUTPUTS.lock() {
            for path in paths.iter() {
                // Outputs are files; a builder's scratch directory (`build -f`) is not.
                let _ = std::fs::remove_file(path).or_else(|_| std::fs::remove_dir_all(path));
            }
        }
        eprintln!("d2l: interrupted");
        std::process::exit(130);
    });
    if let Err(e) = result {
        tracing::warn!(
            "cannot handle interrupts, an interrupted run may leave a .partial file: {e}"
        );
    }
}

/// Removes `path` (a file or a directory) if the process is interrupted.
pub fn track(path: &Path) {
    if let Ok(mut paths) = PARTIAL_OUTPUTS.lock() {
        paths.push(path.to_path_buf());
    }
}

/// Forgets a path given to [`track`].
pub fn untrack(path: &Path) {
    if let Ok(mut paths) = PARTIAL_OUTPUTS.lock() {
        paths.retain(|p| p != path);
    }
}

/// What a writer writes to.
pub enum Destination<'a> {
    /// A regular file, empty, open for writing (writers may use positioned writes and
    /// in-kernel copies).
    File(&'a File),
    /// A stream.
    Stream(&'a mut dyn Write),
}

/// Where an output goes.
pub enum Output {
    /// A file being written under a temporary name.
    File {
        temp: tempfile::NamedTempFile,
        destination: PathBuf,
    },
    /// Standard output.
    Stdout,
}

impl Output {
    /// `-` is standard output; anything else a file, written under a temporary name next to it.
    pub fn create(path: &Path) -> Result<Output> {
        if path == Path::new("-") {
            return Ok(Output::Stdout);
        }
        // Known now, not after the whole output is written and its rename fails.
        if path.is_dir() || path.as_os_str().as_encoded_bytes().ends_with(b"/") {
            anyhow::bail!("{}: is a directory, give a file name", path.display());
        }
        let dir = match path.parent() {
            Some(p) if !p.as_os_str().is_empty() => p,
            _ => Path::new("."),
        };
        let name = path
            .file_name()
            .with_context(|| format!("{}: not a file name", path.display()))?;
        let temp = tempfile::Builder::new()
            .prefix(&format!(".{}.", name.to_string_lossy()))
            .suffix(".partial")
            .tempfile_in(dir)
            .with_context(|| {
                format!(
                    "{}: cannot create a file in {}",
                    path.display(),
                    dir.display()
                )
            })?;
        track(temp.path());
        Ok(Output::File {
            temp,
            destination: path.to_path_buf(),
        })
    }

    /// Directory for scratch files that belong with this output (same filesystem).
    pub fn scratch_dir(&self) -> Option<&Path> {
        match self {
            Output::File { destination, .. } => destination
                .parent()
                .filter(|p| !p.as_os_str().is_empty())
                .or(Some(Path::new("."))),
            Output::Stdout => None,
        }
    }

    /// Runs `write` on the destination (the temporary file itself, or buffered standard
    /// output), then renames the file into place.
    pub fn write_with<T>(self, write: impl FnOnce(Destination<'_>) -> Result<T>) -> Result<T> {
        match self {
            Output::Stdout => {
                let stdout = io::stdout();
                let mut out = BufWriter::with_capacity(1 << 20, stdout.lock());
                let value = write(Destination::Stream(&mut out))?;
                out.flush().context("writing to standard output")?;
                Ok(value)
            }
            Output::File { temp, destination } => {
                let temp_path = temp.path().to_path_buf();
                let result = write(Destination::File(temp.as_file()))
                    .and_then(|value| finish_file(temp.as_file(), &destination).map(|()| value));
                let value = match result {
                    Ok(value) => value,
                    Err(e) => {
                        drop(temp);
                        untrack(&temp_path);
                        return Err(e);
                    }
                };
                let persisted = temp.persist(&destination);
                untrack(&temp_path);
                persisted.with_context(|| {
                    format!("renaming the finished output to {}", destination.display())
                })?;
                Ok(value)
            }
        }
    }
}

fn finish_file(file: &File, destination: &Path) -> Result<()> {
    use std::os::unix::fs::PermissionsExt;
    // tempfile creates 0600; a finished output gets the usual 0644 (less the umask would be
    // nicer, but reading the umask is racy).
    file.set_permissions(std::fs::Permissions::from_mode(0o644))
        .with_context(|| format!("setting the mode of {}", destination.display()))?;
    Ok(())
}
