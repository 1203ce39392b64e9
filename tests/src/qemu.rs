//! Booting images in QEMU and talking to their serial console.
//!
//! [`Qemu::builder`] describes a machine (memory, drives, direct kernel boot, extra
//! arguments); [`QemuBuilder::start`] runs `qemu-system-x86_64` with software emulation (TCG,
//! never KVM) and the first serial port on its standard input and output (`-nographic
//! -serial stdio -monitor none`). A thread reads the console into a shared buffer, so nothing
//! blocks QEMU; [`Qemu::wait_for`] waits until some text appears after the last match and
//! returns what came before it, or on timeout an error holding the tail of the transcript.
//! The process is killed when the [`Qemu`] is dropped, also when a test panics.
//!
//! ```no_run
//! use std::time::Duration;
//! use d2l_testkit::qemu::{Drive, Qemu};
//!
//! let mut vm = Qemu::builder()
//!     .memory_mib(1024)
//!     .kernel("vmlinuz".as_ref(), Some("initrd".as_ref()), "root=/dev/vda console=ttyS0")
//!     .drive(Drive::raw("root.ext4"))
//!     .start()
//!     .unwrap();
//! vm.wait_for("login:", Duration::from_secs(180)).unwrap();
//! vm.send_line("root").unwrap();
//! vm.shutdown();
//! ```

use std::fmt;
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, ExitStatus, Stdio};
use std::sync::{Arc, Condvar, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// The emulator this module runs.
pub const QEMU: &str = "qemu-system-x86_64";
/// The Debian package that provides [`QEMU`].
pub const QEMU_PACKAGE: &str = "qemu-system-x86";
/// OVMF, the UEFI firmware for QEMU: its code (read-only) and the template of its variable
/// store (copied for each machine, which writes to it).
pub const OVMF_CODE: &str = "/usr/share/OVMF/OVMF_CODE_4M.fd";
/// See [`OVMF_CODE`].
pub const OVMF_VARS: &str = "/usr/share/OVMF/OVMF_VARS_4M.fd";
/// The Debian package that provides OVMF.
pub const OVMF_PACKAGE: &str = "ovmf";
/// How many bytes of transcript a [`Timeout`] shows.
pub const TAIL: usize = 4000;

/// A disk attached to the machine.
#[derive(Debug, Clone)]
pub struct Drive {
    /// The image file.
    pub file: PathBuf,
    /// QEMU's format name: `raw`, `qcow2`, ...
    pub format: String,
    /// QEMU's interface: `virtio`, `ide`, ...
    pub interface: String,
    /// Attach read-only (`readonly=on`).
    pub read_only: bool,
}

impl Drive {
    /// A raw image on virtio (`/dev/vda` for the first one).
    pub fn raw(file: impl Into<PathBuf>) -> Self {
        Self::new(file, "raw", "virtio")
    }

    /// An image of `format` on `interface`.
    pub fn new(file: impl Into<PathBuf>, format: &str, interface: &str) -> Self {
        Self {
            file: file.into(),
            format: format.to_string(),
            interface: interface.to_string(),
            read_only: false,
        }
    }

    /// The same drive, read-only.
    pub fn read_only(mut self) -> Self {
        self.read_only = true;
        self
    }

    fn arg(&self) -> String {
        // QEMU's option syntax doubles commas inside a value.
        let file = self.file.to_string_lossy().replace(',', ",,");
        let mut arg = format!("file={file},format={},if={}", self.format, self.interface);
        if self.read_only {
            arg.push_str(",readonly=on");
        }
        arg
    }
}

/// Describes a machine; [`start`](Self::start) boots it.
#[derive(Debug, Clone)]
pub struct QemuBuilder {
    memory_mib: u32,
    cpus: u32,
    drives: Vec<Drive>,
    kernel: Option<PathBuf>,
    initrd: Option<PathBuf>,
    append: Option<String>,
    extra: Vec<String>,
    uefi: bool,
}

impl Default for QemuBuilder {
    fn default() -> Self {
        Self {
            memory_mib: 1024,
            cpus: 1,
            drives: Vec::new(),
            kernel: None,
            initrd: None,
            append: None,
            extra: Vec::new(),
            uefi: false,
        }
    }
}

impl QemuBuilder {
    /// Guest memory in MiB (default 1024).
    pub fn memory_mib(mut self, mib: u32) -> Self {
        self.memory_mib = mib;
        self
    }

    /// Virtual CPUs (default 1; TCG runs each in its own host thread).
    pub fn cpus(mut self, cpus: u32) -> Self {
        self.cpus = cpus;
        self
    }

    /// Adds a drive; the first virtio one is `/dev/vda`.
    pub fn drive(mut self, drive: Drive) -> Self {
        self.drives.push(drive);
        self
    }

    /// Direct kernel boot: `-kernel KERNEL [-initrd INITRD] -append CMDLINE`.
    pub fn kernel(mut self, kernel: &Path, initrd: Option<&Path>, cmdline: &str) -> Self {
        self.kernel = Some(kernel.to_path_buf());
        self.initrd = initrd.map(Path::to_path_buf);
        self.append = Some(cmdline.to_string());
        self
    }

    /// Boots through UEFI (OVMF, with a fresh copy of its variable store) instead of
    /// SeaBIOS.
    pub fn uefi(mut self) -> Self {
        self.uefi = true;
        self
    }

    /// Appends raw QEMU arguments.
    pub fn args<I, S>(mut self, args: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        self.extra.extend(args.into_iter().map(Into::into));
        self
    }

    /// The full argument list (without the program name).
    pub fn command_args(&self) -> Vec<String> {
        let mut args: Vec<String> = vec![
            "-machine".into(),
            "accel=tcg".into(),
            "-m".into(),
            self.memory_mib.to_string(),
            "-smp".into(),
            self.cpus.to_string(),
            "-nographic".into(),
            "-serial".into(),
            "stdio".into(),
            "-monitor".into(),
            "none".into(),
            "-no-reboot".into(),
        ];
        if let Some(kernel) = &self.kernel {
            args.push("-kernel".into());
            args.push(kernel.to_string_lossy().into_owned());
        }
        if let Some(initrd) = &self.initrd {
            args.push("-initrd".into());
            args.push(initrd.to_string_lossy().into_owned());
        }
        if let Some(append) = &self.append {
            args.push("-append".into());
            args.push(append.clone());
        }
        for drive in &self.drives {
            args.push("-drive".into());
            args.push(drive.arg());
        }
        args.extend(self.extra.iter().cloned());
        args
    }

    /// Starts QEMU.
    ///
    /// # Errors
    ///
    /// When `qemu-system-x86_64` cannot be started (the message names the Debian package).
    pub fn start(&self) -> std::io::Result<Qemu> {
        let mut args = self.command_args();
        let uefi_vars = if self.uefi {
            let dir = tempfile::tempdir()?;
            let vars = dir.path().join("OVMF_VARS.fd");
            std::fs::copy(OVMF_VARS, &vars).map_err(|e| {
                std::io::Error::new(
                    e.kind(),
                    format!("cannot copy {OVMF_VARS} (apt-get install {OVMF_PACKAGE}): {e}"),
                )
            })?;
            args.extend([
                "-drive".to_owned(),
                format!("if=pflash,format=raw,unit=0,readonly=on,file={OVMF_CODE}"),
                "-drive".to_owned(),
                format!("if=pflash,format=raw,unit=1,file={}", vars.display()),
            ]);
            Some(dir)
        } else {
            None
        };
        let mut child = Command::new(QEMU)
            .args(&args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .map_err(|e| {
                std::io::Error::new(
                    e.kind(),
                    format!("cannot start {QEMU} (apt-get install {QEMU_PACKAGE}): {e}"),
                )
            })?;
        let console = Arc::new(Console::default());
        let stdout = child.stdout.take().expect("piped stdout");
        let stderr = child.stderr.take().expect("piped stderr");
        let readers = vec![
            reader(stdout, Arc::clone(&console), false),
            reader(stderr, Arc::clone(&console), true),
        ];
        Ok(Qemu {
            stdin: child.stdin.take(),
            child,
            console,
            cursor: 0,
            shell_commands: 0,
            started: Instant::now(),
            command: format!("{QEMU} {}", args.join(" ")),
            readers,
            status: None,
            _uefi_vars: uefi_vars,
        })
    }
}

/// What the reader threads collect.
#[derive(Default)]
struct Console {
    state: Mutex<ConsoleState>,
    changed: Condvar,
}

#[derive(Default)]
struct ConsoleState {
    /// The serial console, lossily decoded.
    text: String,
    /// QEMU's own standard error.
    stderr: String,
    /// How many of the two streams have reached end of file.
    closed: u8,
}

fn reader(
    mut from: impl Read + Send + 'static,
    console: Arc<Console>,
    is_stderr: bool,
) -> JoinHandle<()> {
    std::thread::spawn(move || {
        let mut buf = [0u8; 8192];
        // A multi-byte character may be split between reads: carry its start over.
        let mut pending: Vec<u8> = Vec::new();
        loop {
            let n = from.read(&mut buf).unwrap_or(0);
            let mut state = console.state.lock().unwrap();
            if n == 0 {
                let rest = String::from_utf8_lossy(&pending).into_owned();
                if is_stderr {
                    state.stderr.push_str(&rest);
                } else {
                    state.text.push_str(&rest);
                }
                state.closed += 1;
                console.changed.notify_all();
                return;
            }
            pending.extend_from_slice(&buf[..n]);
            let valid = match std::str::from_utf8(&pending) {
                Ok(_) => pending.len(),
                Err(e) if e.error_len().is_none() => e.valid_up_to(),
                Err(_) => pending.len(),
            };
            let text = String::from_utf8_lossy(&pending[..valid]).into_owned();
            pending.drain(..valid);
            if is_stderr {
                state.stderr.push_str(&text);
            } else {
                // The console's line endings are CR LF; keep LF only.
                state.text.push_str(&text.replace('\r', ""));
            }
            console.changed.notify_all();
        }
    })
}

/// A running QEMU; killed when dropped.
pub struct Qemu {
    child: Child,
    stdin: Option<ChildStdin>,
    console: Arc<Console>,
    /// Where the next [`Qemu::wait_for`] starts looking, in bytes of the transcript.
    cursor: usize,
    /// Commands [`Qemu::shell`] ran, numbering their end markers.
    shell_commands: u32,
    started: Instant,
    command: String,
    readers: Vec<JoinHandle<()>>,
    status: Option<ExitStatus>,
    /// The machine's copy of OVMF's variable store, removed with it.
    _uefi_vars: Option<tempfile::TempDir>,
}

/// [`Qemu::wait_for`] gave up: the text did not appear in time, or QEMU exited first.
#[derive(Debug, Clone)]
pub struct Timeout {
    /// What was awaited.
    pub wanted: String,
    /// How long it waited.
    pub waited: Duration,
    /// Whether QEMU had exited (both its output streams closed).
    pub exited: bool,
    /// The last [`TAIL`] bytes of the console.
    pub tail: String,
    /// QEMU's standard error.
    pub stderr: String,
}

impl fmt::Display for Timeout {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let why = if self.exited {
            "QEMU exited"
        } else {
            "timed out"
        };
        write!(
            f,
            "{why} after {:.1}s waiting for {:?}\n--- console tail ---\n{}\n--- end of console ---",
            self.waited.as_secs_f64(),
            self.wanted,
            self.tail
        )?;
        if !self.stderr.is_empty() {
            write!(f, "\n--- qemu stderr ---\n{}", self.stderr)?;
        }
        Ok(())
    }
}

impl std::error::Error for Timeout {}

impl Qemu {
    /// A machine with the defaults: 1 GiB, one CPU, no drives.
    pub fn builder() -> QemuBuilder {
        QemuBuilder::default()
    }

    /// The command line QEMU was started with (for logs).
    pub fn command(&self) -> &str {
        &self.command
    }

    /// Time since QEMU started.
    pub fn elapsed(&self) -> Duration {
        self.started.elapsed()
    }

    /// Waits until `wanted` appears in the console after the previous match; returns the
    /// console text from there up to and including it, and moves past it.
    ///
    /// # Errors
    ///
    /// A [`Timeout`] with the transcript's tail when `timeout` passes or QEMU exits first.
    pub fn wait_for(&mut self, wanted: &str, timeout: Duration) -> Result<String, Timeout> {
        self.wait_for_any(&[wanted], timeout).map(|(_, text)| text)
    }

    /// [`wait_for`](Self::wait_for) whichever of `wanted` appears first; returns its index
    /// and the text up to and including it.
    ///
    /// # Errors
    ///
    /// A [`Timeout`] as for [`wait_for`](Self::wait_for).
    pub fn wait_for_any(
        &mut self,
        wanted: &[&str],
        timeout: Duration,
    ) -> Result<(usize, String), Timeout> {
        self.wait_until(&wanted.join(" | "), timeout, |text| {
            wanted
                .iter()
                .enumerate()
                .filter_map(|(i, w)| text.find(w).map(|at| (at + w.len(), i)))
                .min()
        })
    }

    /// The general form: waits until `find(new text)` returns `Some((end, value))`, where
    /// `end` is the byte offset in the new text just past the match; returns `value` and the
    /// new text up to `end`. `what` names the condition in errors. Use it for regular
    /// expressions or anything else a substring cannot say.
    ///
    /// # Errors
    ///
    /// A [`Timeout`] as for [`wait_for`](Self::wait_for).
    pub fn wait_until<T>(
        &mut self,
        what: &str,
        timeout: Duration,
        mut find: impl FnMut(&str) -> Option<(usize, T)>,
    ) -> Result<(T, String), Timeout> {
        let deadline = Instant::now() + timeout;
        let start = Instant::now();
        let mut state = self.console.state.lock().unwrap();
        loop {
            let new = &state.text[self.cursor..];
            if let Some((end, value)) = find(new) {
                let matched = new[..end].to_string();
                self.cursor += end;
                return Ok((value, matched));
            }
            let now = Instant::now();
            if now >= deadline || state.closed >= 2 {
                return Err(Timeout {
                    wanted: what.to_string(),
                    waited: start.elapsed(),
                    exited: state.closed >= 2,
                    tail: tail(&state.text, TAIL).to_string(),
                    stderr: state.stderr.clone(),
                });
            }
            state = self
                .console
                .changed
                .wait_timeout(state, deadline - now)
                .unwrap()
                .0;
        }
    }

    /// Logs in on the console at its `login:` prompt and waits for the shell's `prompt`.
    ///
    /// # Errors
    ///
    /// A [`Timeout`] naming the step that did not come.
    pub fn log_in(
        &mut self,
        user: &str,
        password: &str,
        prompt: &str,
        timeout: Duration,
    ) -> Result<(), Timeout> {
        self.send_line(user).map_err(|e| self.closed(user, e))?;
        self.wait_for("Password:", timeout)?;
        self.send_line(password)
            .map_err(|e| self.closed("the password", e))?;
        self.wait_for(prompt, timeout).map(drop)
    }

    /// Runs `command` in the shell logged in on the console and returns what it printed,
    /// without the typed line: the output ends at a marker the command line echoes, spelled
    /// as arithmetic there so the typed line cannot match it.
    ///
    /// # Errors
    ///
    /// A [`Timeout`] when the marker does not come in `timeout`.
    pub fn shell(&mut self, command: &str, timeout: Duration) -> Result<String, Timeout> {
        self.shell_commands += 1;
        let marker = format!("END-{}", self.shell_commands + 1000);
        // The prompt is on the console already: what follows is the typed line's echo.
        let before = self.console.state.lock().unwrap().text.len();
        self.send_line(&format!(
            "{command}; echo END-$(({}+1000))",
            self.shell_commands
        ))
        .map_err(|e| self.closed(command, e))?;
        self.wait_for(&marker, timeout)?;
        let text = self.transcript();
        let body = text[before..].split(&marker).next().unwrap_or("");
        // The echo ends at the first newline (readline wraps long lines with a carriage
        // return only).
        Ok(body
            .split_once('\n')
            .map_or("", |(_, rest)| rest)
            .to_string())
    }

    /// A [`Timeout`] for typing `what` on a console whose QEMU has gone.
    fn closed(&self, what: &str, error: std::io::Error) -> Timeout {
        let state = self.console.state.lock().unwrap();
        Timeout {
            wanted: format!("to type {what} ({error})"),
            waited: Duration::ZERO,
            exited: true,
            tail: tail(&state.text, TAIL).to_string(),
            stderr: state.stderr.clone(),
        }
    }

    /// Everything the console printed so far.
    pub fn transcript(&self) -> String {
        self.console.state.lock().unwrap().text.clone()
    }

    /// The last `bytes` of the console (for failure messages).
    pub fn transcript_tail(&self, bytes: usize) -> String {
        tail(&self.console.state.lock().unwrap().text, bytes).to_string()
    }

    /// Types `line` and Enter on the console.
    ///
    /// # Errors
    ///
    /// When QEMU's standard input is closed (it exited).
    pub fn send_line(&mut self, line: &str) -> std::io::Result<()> {
        self.send(&format!("{line}\r"))
    }

    /// Types `text` on the console as it is.
    ///
    /// # Errors
    ///
    /// When QEMU's standard input is closed (it exited).
    pub fn send(&mut self, text: &str) -> std::io::Result<()> {
        let stdin = self
            .stdin
            .as_mut()
            .ok_or_else(|| std::io::Error::new(std::io::ErrorKind::BrokenPipe, "stdin closed"))?;
        stdin.write_all(text.as_bytes())?;
        stdin.flush()
    }

    /// Waits up to `timeout` for QEMU to exit by itself (the guest powered off; QEMU runs
    /// with `-no-reboot`, so a reboot also ends it); `None` if it still runs.
    pub fn wait_exit(&mut self, timeout: Duration) -> Option<ExitStatus> {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(status) = self.try_status() {
                return Some(status);
            }
            if Instant::now() >= deadline {
                return None;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    fn try_status(&mut self) -> Option<ExitStatus> {
        if self.status.is_none() {
            self.status = self.child.try_wait().ok().flatten();
        }
        self.status
    }

    /// Pulls the plug: kills QEMU (an unclean stop for the guest) and waits for it and the
    /// reader threads. Returns the exit status. Dropping does the same.
    pub fn shutdown(&mut self) -> Option<ExitStatus> {
        self.stdin.take();
        if self.try_status().is_none() {
            let _ = self.child.kill();
            self.status = self.child.wait().ok();
        }
        for reader in self.readers.drain(..) {
            let _ = reader.join();
        }
        self.status
    }
}

impl Drop for Qemu {
    fn drop(&mut self) {
        self.shutdown();
    }
}

impl fmt::Debug for Qemu {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Qemu")
            .field("command", &self.command)
            .field("pid", &self.child.id())
            .field("elapsed", &self.elapsed())
            .finish()
    }
}

/// The last `bytes` (or a little more, to a character boundary) of `text`.
fn tail(text: &str, bytes: usize) -> &str {
    let mut at = text.len().saturating_sub(bytes);
    while !text.is_char_boundary(at) {
        at -= 1;
    }
    &text[at..]
}

/// `line` without the terminal's escape sequences (bash's bracketed-paste switches), trimmed.
pub fn without_escapes(line: &str) -> String {
    let mut text = String::new();
    let mut chars = line.chars();
    while let Some(c) = chars.next() {
        if c == '\u{1b}' {
            // CSI: ESC [ parameters, then a letter ends it.
            for c in chars.by_ref() {
                if c.is_ascii_alphabetic() {
                    break;
                }
            }
        } else {
            text.push(c);
        }
    }
    text.trim().to_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn command_line() {
        let args = Qemu::builder()
            .memory_mib(512)
            .kernel(
                Path::new("vmlinuz"),
                Some(Path::new("initrd")),
                "root=/dev/vda",
            )
            .drive(Drive::raw("a,b.img").read_only())
            .args(["-snapshot"])
            .command_args();
        let line = args.join(" ");
        assert!(line.starts_with("-machine accel=tcg -m 512 "), "{line}");
        assert!(!line.contains("kvm"));
        assert!(line.contains("-kernel vmlinuz -initrd initrd -append root=/dev/vda"));
        assert!(line.contains("-drive file=a,,b.img,format=raw,if=virtio,readonly=on"));
        assert!(line.ends_with("-snapshot"));
    }

    #[test]
    fn tail_respects_characters() {
        assert_eq!(tail("héllo", 3), "llo");
        assert_eq!(tail("héllo", 4), "éllo", "widened to a character boundary");
        assert_eq!(tail("ab", 10), "ab");
    }
}
