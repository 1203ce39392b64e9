//! The image's command as PID 1's only child: started with the image's environment, working
//! directory and user, sent the signals PID 1 gets, waited for while orphans are reaped.

use std::process::Command;
use std::time::Duration;

use d2l_init::config::RunConfig;
use d2l_init::passwd::resolve_user;

use crate::sys::{self, Exit, SignalSet};

/// Signals forwarded to the command (SIGINT comes from Ctrl-Alt-Del, SIGTERM from a
/// hypervisor's or `kill`'s polite stop).
const FORWARDED: &[libc::c_int] = &[
    libc::SIGTERM,
    libc::SIGINT,
    libc::SIGHUP,
    libc::SIGQUIT,
    libc::SIGUSR1,
    libc::SIGUSR2,
];
/// The environment's PATH when the image sets none (Docker's default).
const DEFAULT_PATH: &str = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";
/// How long the other processes get between SIGTERM and SIGKILL once the command is done.
const GRACE: Duration = Duration::from_secs(2);

/// Runs the command to its end; returns how it ended, or why it could not start.
pub fn run(config: &RunConfig) -> Result<Exit, String> {
    let mut signals = vec![libc::SIGCHLD];
    signals.extend_from_slice(FORWARDED);
    let signals = SignalSet::block(&signals).map_err(|e| format!("blocking signals: {e}"))?;
    let mut command = command(config)?;
    // As container runtimes do: the working directory is made when the image lacks it.
    if let Err(e) = std::fs::create_dir_all(&config.workdir) {
        crate::say(&format!("working directory {}: {e}", config.workdir));
    }
    let child = command
        .spawn()
        .map_err(|e| format!("cannot run {}: {e}", config.argv[0]))?;
    let pid = child.id() as libc::pid_t;
    // PID 1 reaps everything itself, the command included: the handle is not waited on.
    drop(child);
    loop {
        let signal = signals
            .wait()
            .map_err(|e| format!("waiting for signals: {e}"))?;
        if signal == libc::SIGCHLD {
            while let Some((reaped, exit)) = sys::reap_one() {
                if reaped == pid {
                    end_others(&signals);
                    return Ok(exit);
                }
            }
        } else if let Err(e) = sys::kill(pid, signal) {
            crate::say(&format!("forwarding signal {signal}: {e}"));
        }
    }
}

/// Asks every other process to stop, then kills what is left, reaping all.
fn end_others(signals: &SignalSet) {
    if sys::kill(-1, libc::SIGTERM).is_err() {
        return; // no process is left
    }
    let deadline = std::time::Instant::now() + GRACE;
    while let Some(left) = deadline.checked_duration_since(std::time::Instant::now()) {
        while sys::reap_one().is_some() {}
        if sys::kill(-1, 0).is_err() {
            return;
        }
        let _ = signals.wait_for(left.min(Duration::from_millis(100)));
    }
    let _ = sys::kill(-1, libc::SIGKILL);
    while sys::reap_one().is_some() {}
}

/// The command `config` describes, ready to spawn.
fn command(config: &RunConfig) -> Result<Command, String> {
    let passwd = std::fs::read_to_string("/etc/passwd").unwrap_or_default();
    let group = std::fs::read_to_string("/etc/group").unwrap_or_default();
    let user = resolve_user(&config.user, &passwd, &group).map_err(|e| e.to_string())?;
    let mut env: Vec<(String, String)> = config
        .env
        .iter()
        .map(|var| match var.split_once('=') {
            Some((k, v)) => (k.to_owned(), v.to_owned()),
            None => (var.clone(), String::new()),
        })
        .collect();
    let mut default = |key: &str, value: &str| {
        if !env.iter().any(|(k, _)| k == key) {
            env.push((key.to_owned(), value.to_owned()));
        }
    };
    default("PATH", DEFAULT_PATH);
    default("HOME", &user.home);
    default("HOSTNAME", &config.hostname);
    default("TERM", "linux");
    let mut command = Command::new(&config.argv[0]);
    command
        .args(&config.argv[1..])
        .env_clear()
        .envs(env)
        .current_dir(&config.workdir);
    sys::prepare_child_on_exec(&mut command, user.uid, user.gid, user.groups);
    Ok(command)
}
