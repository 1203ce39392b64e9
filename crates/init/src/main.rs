//! d2l-init: PID 1 of a machine d2l made from an image with no init of its own.
//!
//! In d2l's initramfs (where [`BOOT_CONFIG`] is) it loads the modules, mounts the root
//! filesystem and executes the next init there (itself, or the image's own with `--init
//! image`). On the root filesystem it mounts the API filesystems, sets the host name, brings
//! the network up, runs the image's command, and powers off when the command ends, having
//! said how it ended. Whatever goes wrong is said on the console before the machine powers
//! off: PID 1 must never exit (the kernel would panic).

mod mounts;
mod net;
mod stage1;
mod sys;
mod workload;

use std::path::Path;

use d2l_init::config::{status_line, BootConfig, RunConfig, BOOT_CONFIG, RUN_CONFIG, STATUS_PORT};

/// The status reported when the init itself fails (a shell's "cannot execute").
const INIT_FAILED: i32 = 126;

/// Says `message` on the console.
pub fn say(message: &str) {
    eprintln!("d2l-init: {message}");
}

/// What stopped the init.
pub struct Failure {
    message: String,
}

impl Failure {
    fn new(message: String) -> Failure {
        Failure { message }
    }
}

fn main() {
    if std::process::id() != 1 {
        say("not PID 1: this is the init of machines made by `d2l build`, run by the kernel");
        std::process::exit(2);
    }
    std::panic::set_hook(Box::new(|info| {
        say(&format!("crashed: {info}"));
        finish(INIT_FAILED);
    }));
    if Path::new(BOOT_CONFIG).exists() {
        let failure = match std::fs::read_to_string(BOOT_CONFIG)
            .map_err(|e| e.to_string())
            .and_then(|text| BootConfig::decode(&text).map_err(|e| e.to_string()))
        {
            Ok(config) => stage1::run(&config),
            Err(e) => Failure::new(format!("{BOOT_CONFIG}: {e}")),
        };
        say(&failure.message);
        finish(INIT_FAILED);
    }
    let status = match run() {
        Ok(status) => status,
        Err(failure) => {
            say(&failure.message);
            INIT_FAILED
        }
    };
    finish(status)
}

/// The root filesystem's part: everything up to the command's end; returns its status.
fn run() -> Result<i32, Failure> {
    let started = sys::uptime();
    let problems = mounts::mount_all(mounts::API_MOUNTS);
    if !sys::is_open(0) {
        let _ = sys::use_console();
    }
    say(&format!("started at {started:.3}s"));
    for problem in problems {
        say(&problem);
    }
    let config = std::fs::read_to_string(RUN_CONFIG)
        .map_err(|e| e.to_string())
        .and_then(|text| RunConfig::decode(&text).map_err(|e| e.to_string()))
        .map_err(|e| Failure::new(format!("{RUN_CONFIG}: {e}")))?;
    if !config.hostname.is_empty() {
        if let Err(e) = sys::set_hostname(&config.hostname) {
            say(&format!("host name {}: {e}", config.hostname));
        }
    }
    // In a container's PID namespace there is no Ctrl-Alt-Del to take (EINVAL).
    if let Err(e) = sys::ctrl_alt_del_to_signal() {
        if e.raw_os_error() != Some(libc::EINVAL) {
            say(&format!("Ctrl-Alt-Del: {e}"));
        }
    }
    if config.network {
        say(&format!("network: {}", net::bring_up(&config.hostname)));
    }
    let now = sys::uptime();
    say(&format!(
        "running {:?} at {now:.3}s (the init took {:.3}s)",
        config.argv,
        now - started
    ));
    match workload::run(&config) {
        Ok(exit) => {
            let how = match exit {
                sys::Exit::Code(_) => String::new(),
                sys::Exit::Signal(signal) => format!(" (killed by signal {signal})"),
            };
            say(&format!(
                "{} exited with status {}{how}",
                config.argv[0],
                exit.status()
            ));
            Ok(exit.status())
        }
        Err(message) => Err(Failure::new(message)),
    }
}

/// Reports `status` for `d2l run` and powers off; never returns.
fn finish(status: i32) -> ! {
    report_status(status);
    let error = sys::power_off();
    say(&format!("cannot power off: {error}"));
    // PID 1 must not exit: wait for someone to pull the plug.
    loop {
        std::thread::sleep(std::time::Duration::from_secs(3600));
    }
}

/// Writes the status line to the second serial port, when the machine has one (`d2l run`
/// gives it one; a port the kernel found no UART for has type 0).
fn report_status(status: i32) {
    let port_type = std::fs::read_to_string(format!("/sys/class/tty/{STATUS_PORT}/type"));
    if port_type.map_or(true, |t| t.trim() == "0") {
        return;
    }
    use std::io::Write;
    if let Ok(mut port) = std::fs::OpenOptions::new()
        .write(true)
        .open(format!("/dev/{STATUS_PORT}"))
    {
        let _ = port.write_all(status_line(status).as_bytes());
        let _ = sys::drain(&port);
    }
}
