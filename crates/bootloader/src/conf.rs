//! The `extlinux.conf` d2l writes.

/// Tenths of a second syslinux waits before booting the single entry.
const TIMEOUT_TENTHS: u32 = 10;

/// The `extlinux.conf` for one kernel: `SERIAL 0 115200` first (so a test can read the
/// serial console), a short timeout, one entry booting `kernel` with `initrd` and
/// `root=UUID=<root_uuid> rw rootfstype=ext4 console=tty0 console=ttyS0,115200n8` plus
/// `extra_cmdline`.
pub fn extlinux_conf(
    kernel: &str,
    initrd: Option<&str>,
    root_uuid: &str,
    extra_cmdline: &str,
) -> String {
    let mut s = String::new();
    s.push_str("SERIAL 0 115200\n");
    s.push_str("DEFAULT linux\n");
    s.push_str("PROMPT 0\n");
    s.push_str(&format!("TIMEOUT {TIMEOUT_TENTHS}\n"));
    s.push('\n');
    s.push_str("LABEL linux\n");
    s.push_str(&format!("  KERNEL {kernel}\n"));
    if let Some(initrd) = initrd {
        s.push_str(&format!("  INITRD {initrd}\n"));
    }
    s.push_str(&format!(
        "  APPEND {}\n",
        kernel_cmdline(root_uuid, SERIAL_X86, extra_cmdline)
    ));
    s
}

/// The first serial port's console on a PC (16550 UART).
pub(crate) const SERIAL_X86: &str = "ttyS0";
/// The first serial port's console on an arm64 machine (PL011 UART, QEMU's `virt` and most
/// arm64 servers and clouds).
pub(crate) const SERIAL_ARM64: &str = "ttyAMA0";

/// The kernel command line every loader d2l installs passes: the root filesystem by UUID,
/// read-write, consoles on the screen and the first serial port (`serial`, e.g. `ttyS0`),
/// then `extra_cmdline` (`--cmdline`).
pub(crate) fn kernel_cmdline(root_uuid: &str, serial: &str, extra_cmdline: &str) -> String {
    let mut cmdline =
        format!("root=UUID={root_uuid} rw rootfstype=ext4 console=tty0 console={serial},115200n8");
    let extra = extra_cmdline.trim();
    if !extra.is_empty() {
        cmdline.push(' ');
        cmdline.push_str(extra);
    }
    cmdline
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn serial_first_one_entry() {
        let c = extlinux_conf(
            "/boot/vmlinuz",
            Some("/boot/initrd.img"),
            "1234-abcd",
            "quiet",
        );
        assert!(c.starts_with("SERIAL 0 115200\n"));
        assert_eq!(c.matches("LABEL ").count(), 1);
        assert!(c.contains("\n  KERNEL /boot/vmlinuz\n"));
        assert!(c.contains("\n  INITRD /boot/initrd.img\n"));
        assert!(c.contains(
            "\n  APPEND root=UUID=1234-abcd rw rootfstype=ext4 console=tty0 \
             console=ttyS0,115200n8 quiet\n"
        ));
        let c = extlinux_conf("/vmlinuz", None, "u", "");
        assert!(!c.contains("INITRD"));
        assert!(c.contains("console=ttyS0,115200n8\n"));
    }
}
