//! The init's two configuration files, written by d2l and read by the init: one line per
//! value, `KEY VALUE`, with `\` and newlines escaped, so any argument or environment value
//! (which the kernel's `execve` takes as C strings: anything but NUL) survives.
//!
//! - [`RunConfig`] at [`RUN_CONFIG`] on the root filesystem: what PID 1 runs.
//! - [`BootConfig`] at [`BOOT_CONFIG`] in d2l's initramfs: the modules to load, the root
//!   filesystem to find, the init to hand over to.

use std::fmt::Write as _;

/// Where d2l puts the init binary on the root filesystem.
pub const INIT_PATH: &str = "/sbin/d2l-init";
/// Where d2l puts the [`RunConfig`] on the root filesystem.
pub const RUN_CONFIG: &str = "/etc/d2l-init.conf";
/// Where d2l puts the [`BootConfig`] in its initramfs (whose `/init` is the init binary).
pub const BOOT_CONFIG: &str = "/d2l-initramfs.conf";
/// Where the initramfs stage mounts the root filesystem before switching to it.
pub const NEW_ROOT: &str = "/newroot";

/// The serial port where the init reports the command's exit status for `d2l run` (the
/// second one: the first is the console), and the line it writes there.
pub const STATUS_PORT: &str = "ttyS1";
const STATUS_LINE: &str = "d2l-init exit status ";

/// The line that reports exit `status` on [`STATUS_PORT`].
pub fn status_line(status: i32) -> String {
    format!("{STATUS_LINE}{status}\n")
}

/// The status in what [`STATUS_PORT`] received, if a [`status_line`] is there.
pub fn parse_status(received: &str) -> Option<i32> {
    received.lines().rev().find_map(|line| {
        line.trim_end_matches('\r')
            .strip_prefix(STATUS_LINE)?
            .parse()
            .ok()
    })
}

/// A configuration file that does not parse.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum ConfigError {
    /// A line with an unknown key.
    #[error("line {line}: unknown key {key:?}")]
    UnknownKey {
        /// 1-based line number.
        line: usize,
        /// The key.
        key: String,
    },
    /// A bad escape sequence.
    #[error("line {line}: bad escape (only \\\\ and \\n are written)")]
    BadEscape {
        /// 1-based line number.
        line: usize,
    },
    /// A value that must be given once was given twice, or not at all.
    #[error("{key}: {problem}")]
    Value {
        /// The key.
        key: &'static str,
        /// What is wrong.
        problem: &'static str,
    },
    /// A value that is not what its key takes.
    #[error("line {line}: {key} takes {expected}")]
    Invalid {
        /// 1-based line number.
        line: usize,
        /// The key.
        key: &'static str,
        /// What it takes.
        expected: &'static str,
    },
}

/// What PID 1 runs: the image's command with its environment, as the image's config (or
/// `--entrypoint`, `--cmd`) says.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RunConfig {
    /// The machine's host name.
    pub hostname: String,
    /// ENTRYPOINT followed by CMD: the program and its arguments.
    pub argv: Vec<String>,
    /// `KEY=VALUE` pairs, in order.
    pub env: Vec<String>,
    /// The working directory (`/` when the image sets none).
    pub workdir: String,
    /// The user, as the image's config gives it (`name`, `uid`, `name:group`, `uid:gid`);
    /// empty is root.
    pub user: String,
    /// Whether the init brings up the first network card with DHCP.
    pub network: bool,
}

/// What the initramfs stage does before it hands over.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct BootConfig {
    /// The root filesystem's UUID (`8-4-4-4-12` hexadecimal).
    pub root_uuid: String,
    /// The modules to load: for each module asked for, its name and the files in the
    /// initramfs to load for it, in order (what it needs first).
    pub modules: Vec<(String, Vec<String>)>,
    /// The modules (by name) that only serve to reach a disk: left out once the root
    /// filesystem's disk is there.
    pub disk_modules: Vec<String>,
    /// Drivers (by module name) loaded only when a device matches one of their patterns.
    pub devices: Vec<(String, String)>,
    /// The init to execute on the root filesystem once it is mounted.
    pub next: String,
}

impl RunConfig {
    /// The file's text.
    pub fn encode(&self) -> String {
        let mut out = String::from("# d2l-init: what PID 1 runs (written by d2l build)\n");
        line(&mut out, "hostname", &self.hostname);
        for arg in &self.argv {
            line(&mut out, "arg", arg);
        }
        for var in &self.env {
            line(&mut out, "env", var);
        }
        line(&mut out, "workdir", &self.workdir);
        line(&mut out, "user", &self.user);
        line(
            &mut out,
            "network",
            if self.network { "dhcp" } else { "none" },
        );
        out
    }

    /// Parses [`RunConfig::encode`]'s text.
    pub fn decode(text: &str) -> Result<RunConfig, ConfigError> {
        let mut config = RunConfig {
            workdir: "/".into(),
            network: true,
            ..RunConfig::default()
        };
        for (number, key, value) in lines(text)? {
            match key {
                "hostname" => config.hostname = value,
                "arg" => config.argv.push(value),
                "env" => config.env.push(value),
                "workdir" => config.workdir = value,
                "user" => config.user = value,
                "network" => {
                    config.network = match value.as_str() {
                        "dhcp" => true,
                        "none" => false,
                        _ => {
                            return Err(ConfigError::Invalid {
                                line: number,
                                key: "network",
                                expected: "dhcp or none",
                            })
                        }
                    }
                }
                other => return Err(unknown(number, other)),
            }
        }
        if config.argv.is_empty() {
            return Err(ConfigError::Value {
                key: "arg",
                problem: "no command to run",
            });
        }
        Ok(config)
    }
}

impl BootConfig {
    /// The file's text.
    pub fn encode(&self) -> String {
        let mut out = String::from("# d2l-init: the initramfs stage (written by d2l build)\n");
        line(&mut out, "root-uuid", &self.root_uuid);
        for (name, paths) in &self.modules {
            line(&mut out, "load", &format!("{name} {}", paths.join(" ")));
        }
        for name in &self.disk_modules {
            line(&mut out, "disk-module", name);
        }
        for (name, pattern) in &self.devices {
            line(&mut out, "device", &format!("{name} {pattern}"));
        }
        line(&mut out, "next", &self.next);
        out
    }

    /// Parses [`BootConfig::encode`]'s text.
    pub fn decode(text: &str) -> Result<BootConfig, ConfigError> {
        let mut config = BootConfig::default();
        for (number, key, value) in lines(text)? {
            match key {
                "root-uuid" => config.root_uuid = value,
                "load" => {
                    let mut words = value.split(' ');
                    let name = words.next().unwrap_or_default().to_owned();
                    config
                        .modules
                        .push((name, words.map(str::to_owned).collect()));
                }
                "disk-module" => config.disk_modules.push(value),
                "device" => match value.split_once(' ') {
                    Some((name, pattern)) => config.devices.push((name.into(), pattern.into())),
                    None => {
                        return Err(ConfigError::Invalid {
                            line: number,
                            key: "device",
                            expected: "a module name and a device pattern",
                        })
                    }
                },
                "next" => config.next = value,
                other => return Err(unknown(number, other)),
            }
        }
        if config.root_uuid.is_empty() {
            return Err(ConfigError::Value {
                key: "root-uuid",
                problem: "missing",
            });
        }
        if !config.next.starts_with('/') {
            return Err(ConfigError::Value {
                key: "next",
                problem: "must be an absolute path",
            });
        }
        Ok(config)
    }
}

fn unknown(line: usize, key: &str) -> ConfigError {
    ConfigError::UnknownKey {
        line,
        key: key.into(),
    }
}

/// Appends `KEY VALUE\n`, the value escaped.
fn line(out: &mut String, key: &str, value: &str) {
    let _ = write!(out, "{key} ");
    for c in value.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            c => out.push(c),
        }
    }
    out.push('\n');
}

/// The `(line number, key, unescaped value)` of each line that is not blank or a comment.
fn lines(text: &str) -> Result<Vec<(usize, &str, String)>, ConfigError> {
    let mut out = Vec::new();
    for (index, raw) in text.lines().enumerate() {
        let number = index + 1;
        if raw.is_empty() || raw.starts_with('#') {
            continue;
        }
        let (key, escaped) = raw.split_once(' ').unwrap_or((raw, ""));
        let mut value = String::with_capacity(escaped.len());
        let mut chars = escaped.chars();
        while let Some(c) = chars.next() {
            if c != '\\' {
                value.push(c);
                continue;
            }
            match chars.next() {
                Some('\\') => value.push('\\'),
                Some('n') => value.push('\n'),
                _ => return Err(ConfigError::BadEscape { line: number }),
            }
        }
        out.push((number, key, value));
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn run_config_round_trips_any_text() {
        let config = RunConfig {
            hostname: "app".into(),
            argv: vec![
                "/app".into(),
                "two words".into(),
                "back\\slash\nnew line".into(),
                String::new(),
                "ünï".into(),
            ],
            env: vec!["PATH=/bin".into(), "EMPTY=".into()],
            workdir: "/data dir".into(),
            user: "app:staff".into(),
            network: false,
        };
        let text = config.encode();
        assert_eq!(text.lines().filter(|l| l.starts_with("arg ")).count(), 5);
        assert_eq!(RunConfig::decode(&text).unwrap(), config);
    }

    #[test]
    fn boot_config_round_trips() {
        let config = BootConfig {
            root_uuid: "0f1e2d3c-4b5a-6978-8796-a5b4c3d2e1f0".into(),
            modules: vec![(
                "ext4".into(),
                vec![
                    "/lib/modules/6.1/kernel/fs/jbd2/jbd2.ko".into(),
                    "/lib/modules/6.1/kernel/fs/ext4/ext4.ko".into(),
                ],
            )],
            disk_modules: vec!["virtio_blk".into()],
            devices: vec![(
                "e1000".into(),
                "pci:v00008086d0000100Esv*sd*bc*sc*i*".into(),
            )],
            next: INIT_PATH.into(),
        };
        assert_eq!(BootConfig::decode(&config.encode()).unwrap(), config);
    }

    #[test]
    fn status_lines_round_trip() {
        for status in [0, 7, 137, 255] {
            assert_eq!(parse_status(&status_line(status)), Some(status));
        }
        assert_eq!(parse_status("noise\r\nd2l-init exit status 3\r\n"), Some(3));
        assert_eq!(parse_status("d2l-init exit status x\n"), None);
        assert_eq!(parse_status(""), None);
    }

    #[test]
    fn bad_files_are_errors() {
        assert_eq!(
            RunConfig::decode("hostname x\n").unwrap_err(),
            ConfigError::Value {
                key: "arg",
                problem: "no command to run"
            }
        );
        assert!(matches!(
            RunConfig::decode("arg /x\nsurprise 1\n"),
            Err(ConfigError::UnknownKey { line: 2, .. })
        ));
        assert!(matches!(
            RunConfig::decode("arg a\\tb\n"),
            Err(ConfigError::BadEscape { line: 1 })
        ));
        assert!(matches!(
            RunConfig::decode("arg /x\nnetwork maybe\n"),
            Err(ConfigError::Invalid { line: 2, .. })
        ));
        assert!(BootConfig::decode("next /init\n").is_err());
        assert!(BootConfig::decode("root-uuid u\nnext init\n").is_err());
    }
}
