//! `bench appliance`: how long d2l's init takes from the kernel handing over to the image's
//! command, under QEMU without KVM. The minbase fixture (no kernel, no init) is built with
//! its kernel from the Debian fixture (`--kernel-from`) and a one-line command, then booted
//! [`BOOTS`] times as `d2l run` boots (virtio disk and network card). The init reports on the
//! console when it starts in the initramfs, how long the modules' own initialisation took
//! (time inside the kernel, probing devices), and when it executes the command; the rows are
//! the best of the boots. Target: the init's own time (handover to command, less the
//! modules' initialisation) under [`INIT_OWN_MAX`].

use std::process::Command;

use anyhow::{bail, Context, Result};

use super::{check, Ctx};
use crate::util;

/// Boots measured.
const BOOTS: usize = 3;
/// Target: seconds of the init's own work, handover to command.
const INIT_OWN_MAX: f64 = 1.0;
/// The command the machine runs.
const COMMAND: &str = r#"["/bin/sh","-c","echo first line of the workload"]"#;

/// One boot's times, in seconds since the kernel started.
struct Boot {
    /// The init starts (in the initramfs): the kernel hands over.
    handover: f64,
    /// The modules' own initialisation, inside the kernel.
    modules_in_kernel: f64,
    /// The command is executed.
    command: f64,
}

/// Measures and prints the appliance table.
pub(super) fn run(ctx: &Ctx) -> Result<()> {
    let fixtures = crate::fixtures::ensure()?;
    let kernel = format!(
        "oci:{}:{}",
        fixtures.join(crate::fixtures::OCI_DIR).display(),
        crate::fixtures::REFERENCE
    );
    let minbase = crate::minbase::ensure()?;
    let image = format!(
        "oci:{}:{}",
        minbase.join(crate::minbase::MINBASE.oci_dir).display(),
        crate::minbase::MINBASE.suite
    );
    let disk = ctx.tmp.join("appliance.img");
    util::run_silent(
        Command::new(&ctx.d2l)
            .args([
                "build",
                "--quiet",
                &image,
                "--kernel-from",
                &kernel,
                "--cmd",
                COMMAND,
                "-o",
            ])
            .arg(&disk),
    )?;
    let mut boots = Vec::new();
    for n in 0..BOOTS {
        print!("boot {}: ", n + 1);
        super::flush();
        let out = Command::new("timeout")
            .args([
                "300",
                "qemu-system-x86_64",
                "-machine",
                "accel=tcg",
                "-m",
                "512",
            ])
            .args([
                "-nographic",
                "-serial",
                "stdio",
                "-monitor",
                "none",
                "-no-reboot",
            ])
            .arg("-drive")
            .arg(format!("file={},format=raw,if=virtio", disk.display()))
            .args(["-nic", "user,model=virtio-net-pci"])
            .output()
            .context("qemu-system-x86_64")?;
        let console = String::from_utf8_lossy(&out.stdout).replace('\r', "");
        let boot = parse(&console).with_context(|| {
            format!(
                "the console lacks d2l-init's times; its end:\n{}",
                console
                    .chars()
                    .rev()
                    .take(3000)
                    .collect::<String>()
                    .chars()
                    .rev()
                    .collect::<String>()
            )
        })?;
        if !console.contains("\nfirst line of the workload\n") {
            bail!("the workload's line is not on the console");
        }
        println!(
            "handover at {:.3}s, command at {:.3}s",
            boot.handover, boot.command
        );
        boots.push(boot);
    }
    let best = |f: &dyn Fn(&Boot) -> f64| boots.iter().map(f).fold(f64::MAX, f64::min);
    let total = best(&|b| b.command - b.handover);
    let modules = best(&|b| b.modules_in_kernel);
    let own = best(&|b| b.command - b.handover - b.modules_in_kernel);
    println!(
        "{:<52} {:>9}",
        format!("best of {BOOTS} boots (TCG, virtio)"),
        "time"
    );
    println!("{:<52} {:>8.3}s", "kernel handover to the command", total);
    println!(
        "{:<52} {:>8.3}s",
        "  of which modules' own initialisation (kernel)", modules
    );
    println!("{:<52} {:>8.3}s", "  of which the init's own work", own);
    check(
        "d2l-init's own time",
        &format!("{own:.3}s"),
        &format!("< {INIT_OWN_MAX}s"),
        own < INIT_OWN_MAX,
    );
    Ok(())
}

/// The times d2l-init put on the console.
fn parse(console: &str) -> Option<Boot> {
    let after = |prefix: &str| -> Option<&str> {
        console
            .lines()
            .find_map(|l| l.split_once(prefix).map(|(_, rest)| rest))
    };
    let seconds = |text: &str| -> Option<f64> { text.split('s').next()?.trim().parse().ok() };
    let handover = seconds(after("d2l-init: started in the initramfs at ")?)?;
    let modules_in_kernel = seconds(after("kernel modules in ")?.split_once(", ")?.1)?;
    let command = seconds(after("d2l-init: running ")?.rsplit_once("] at ")?.1)?;
    Some(Boot {
        handover,
        modules_in_kernel,
        command,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_console_times_are_read() {
        let console = "d2l-init: started in the initramfs at 2.263s\n\
            d2l-init: loaded 14 kernel modules in 1.050s, 0.950s of it in their own \
            initialisation (11 drivers not needed: no such device, or the root disk was there)\n\
            d2l-init: running [\"/bin/sh\", \"-c\", \"echo x\"] at 3.528s (the init took 0.113s)\n";
        let boot = parse(console).unwrap();
        assert_eq!(boot.handover, 2.263);
        assert_eq!(boot.modules_in_kernel, 0.95);
        assert_eq!(boot.command, 3.528);
        assert!(parse("nothing").is_none());
    }
}
