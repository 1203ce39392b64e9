//! The system calls an init needs that the standard library does not wrap, each as a safe
//! function returning `io::Result`.
//!
//! Every `unsafe` block here calls libc with pointers to live, NUL-terminated `CString`s or
//! to stack values of the exact type the call takes, sized with `size_of`; none keeps a
//! pointer past the call.
#![allow(unsafe_code)]

use std::ffi::CString;
use std::io;
use std::net::Ipv4Addr;
use std::os::fd::AsRawFd;
use std::os::unix::ffi::OsStrExt;
use std::path::Path;

fn cstring(s: impl AsRef<[u8]>) -> io::Result<CString> {
    CString::new(s.as_ref()).map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "NUL byte"))
}

fn check(ret: libc::c_int) -> io::Result<()> {
    if ret < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(())
    }
}

/// mount(2).
pub fn mount(
    source: &str,
    target: &Path,
    fstype: &str,
    flags: libc::c_ulong,
    data: &str,
) -> io::Result<()> {
    let (source, target) = (cstring(source)?, cstring(target.as_os_str().as_bytes())?);
    let (fstype, data) = (cstring(fstype)?, cstring(data)?);
    // SAFETY: all four are live C strings for the duration of the call.
    check(unsafe {
        libc::mount(
            source.as_ptr(),
            target.as_ptr(),
            fstype.as_ptr(),
            flags,
            data.as_ptr().cast(),
        )
    })
}

/// Moves the mount at `source` to `target` (MS_MOVE).
pub fn move_mount(source: &Path, target: &Path) -> io::Result<()> {
    let (source, target) = (
        cstring(source.as_os_str().as_bytes())?,
        cstring(target.as_os_str().as_bytes())?,
    );
    // SAFETY: live C strings; MS_MOVE ignores the type and data, which may be null.
    check(unsafe {
        libc::mount(
            source.as_ptr(),
            target.as_ptr(),
            std::ptr::null(),
            libc::MS_MOVE,
            std::ptr::null(),
        )
    })
}

/// umount2(2) with MNT_DETACH.
pub fn unmount_lazy(target: &Path) -> io::Result<()> {
    let target = cstring(target.as_os_str().as_bytes())?;
    // SAFETY: a live C string.
    check(unsafe { libc::umount2(target.as_ptr(), libc::MNT_DETACH) })
}

/// sethostname(2).
pub fn set_hostname(name: &str) -> io::Result<()> {
    // SAFETY: the pointer and length describe `name`'s bytes.
    check(unsafe { libc::sethostname(name.as_ptr().cast(), name.len()) })
}

/// init_module(2): loads a module from its (uncompressed) bytes.
pub fn init_module(image: &[u8]) -> io::Result<()> {
    let params = cstring("")?;
    // SAFETY: the pointer and length describe `image`; `params` is a live C string.
    let ret = unsafe {
        libc::syscall(
            libc::SYS_init_module,
            image.as_ptr(),
            image.len() as libc::c_ulong,
            params.as_ptr(),
        )
    };
    if ret < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(())
    }
}

/// Flushes filesystems.
pub fn sync() {
    // SAFETY: no arguments.
    unsafe { libc::sync() }
}

/// Powers the machine off (or, in a PID namespace, ends it); returns only on failure.
pub fn power_off() -> io::Error {
    sync();
    // SAFETY: no pointers.
    unsafe { libc::reboot(libc::RB_POWER_OFF) };
    io::Error::last_os_error()
}

/// Makes Ctrl-Alt-Del send SIGINT to PID 1 instead of rebooting at once.
pub fn ctrl_alt_del_to_signal() -> io::Result<()> {
    // SAFETY: no pointers.
    check(unsafe { libc::reboot(libc::RB_DISABLE_CAD) })
}

/// Seconds since boot (CLOCK_BOOTTIME), for the times the console shows.
pub fn uptime() -> f64 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: `ts` is a valid timespec to fill.
    unsafe { libc::clock_gettime(libc::CLOCK_BOOTTIME, &mut ts) };
    ts.tv_sec as f64 + ts.tv_nsec as f64 / 1e9
}

/// The signals PID 1 handles itself, by waiting for them ([`wait_signal`]).
pub struct SignalSet(libc::sigset_t);

impl SignalSet {
    /// Blocks `signals` in this thread (children start with none blocked: the standard
    /// library clears the mask before exec) so that [`SignalSet::wait`] receives them.
    pub fn block(signals: &[libc::c_int]) -> io::Result<SignalSet> {
        // SAFETY: sigset_t is plain data that sigemptyset initialises.
        let mut set: libc::sigset_t = unsafe { std::mem::zeroed() };
        // SAFETY: `set` is a valid sigset_t for each call.
        unsafe {
            libc::sigemptyset(&mut set);
            for &s in signals {
                libc::sigaddset(&mut set, s);
            }
        }
        // SAFETY: `set` is initialised; the old mask is not wanted (null).
        let ret = unsafe { libc::pthread_sigmask(libc::SIG_BLOCK, &set, std::ptr::null_mut()) };
        if ret != 0 {
            return Err(io::Error::from_raw_os_error(ret));
        }
        Ok(SignalSet(set))
    }

    /// Waits for one of the blocked signals; returns its number.
    pub fn wait(&self) -> io::Result<libc::c_int> {
        loop {
            // SAFETY: the set is initialised; the info is not wanted (null).
            let signal = unsafe { libc::sigwaitinfo(&self.0, std::ptr::null_mut()) };
            if signal >= 0 {
                return Ok(signal);
            }
            let error = io::Error::last_os_error();
            if error.kind() != io::ErrorKind::Interrupted {
                return Err(error);
            }
        }
    }

    /// Like [`SignalSet::wait`], giving up after `timeout` (then `None`).
    pub fn wait_for(&self, timeout: std::time::Duration) -> io::Result<Option<libc::c_int>> {
        let ts = libc::timespec {
            tv_sec: timeout.as_secs() as libc::time_t,
            tv_nsec: libc::c_long::from(timeout.subsec_nanos() as i32),
        };
        // SAFETY: the set and timeout are initialised; the info is not wanted (null).
        let signal = unsafe { libc::sigtimedwait(&self.0, std::ptr::null_mut(), &ts) };
        if signal >= 0 {
            return Ok(Some(signal));
        }
        let error = io::Error::last_os_error();
        match error.raw_os_error() {
            Some(libc::EAGAIN) | Some(libc::EINTR) => Ok(None),
            _ => Err(error),
        }
    }
}

/// How a child ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Exit {
    /// exit(N).
    Code(i32),
    /// Killed by this signal.
    Signal(i32),
}

impl Exit {
    /// The status a shell would report: N, or 128 + the signal.
    pub fn status(self) -> i32 {
        match self {
            Exit::Code(code) => code,
            Exit::Signal(signal) => 128 + signal,
        }
    }
}

/// Reaps one child that has ended, without waiting; `None` when none has (or there are no
/// children).
pub fn reap_one() -> Option<(libc::pid_t, Exit)> {
    let mut status = 0;
    // SAFETY: `status` is a valid int to fill.
    let pid = unsafe { libc::waitpid(-1, &mut status, libc::WNOHANG) };
    if pid <= 0 {
        return None;
    }
    let exit = if libc::WIFSIGNALED(status) {
        Exit::Signal(libc::WTERMSIG(status))
    } else {
        Exit::Code(libc::WEXITSTATUS(status))
    };
    Some((pid, exit))
}

/// kill(2); `pid` -1 is every process but PID 1.
pub fn kill(pid: libc::pid_t, signal: libc::c_int) -> io::Result<()> {
    // SAFETY: no pointers.
    check(unsafe { libc::kill(pid, signal) })
}

/// Makes `command` start as a program expects to: no signal blocked or ignored (PID 1
/// blocks the ones it waits for, and the standard library ignores SIGPIPE; a child inherits
/// both across exec), running as `uid`, `gid` and supplementary `groups`. The IDs are set in
/// this one step: the standard library's own `uid` would drop root before a later step could
/// set the groups.
pub fn prepare_child_on_exec(
    command: &mut std::process::Command,
    uid: libc::uid_t,
    gid: libc::gid_t,
    groups: Vec<libc::gid_t>,
) {
    use std::os::unix::process::CommandExt;
    // SAFETY: the closure runs in the child between fork and exec and only makes system
    // calls (async-signal-safe) on values prepared before the fork.
    unsafe {
        command.pre_exec(move || {
            let mut none: libc::sigset_t = std::mem::zeroed();
            libc::sigemptyset(&mut none);
            check(libc::sigprocmask(
                libc::SIG_SETMASK,
                &none,
                std::ptr::null_mut(),
            ))?;
            for signal in 1..libc::SIGRTMIN() {
                if signal != libc::SIGKILL && signal != libc::SIGSTOP {
                    libc::signal(signal, libc::SIG_DFL);
                }
            }
            check(libc::setgroups(groups.len(), groups.as_ptr()))?;
            check(libc::setgid(gid))?;
            check(libc::setuid(uid))
        });
    }
}

/// Waits until everything written to `file` (a terminal) has gone out.
pub fn drain(file: &std::fs::File) -> io::Result<()> {
    // SAFETY: a file descriptor this process owns.
    check(unsafe { libc::tcdrain(file.as_raw_fd()) })
}

/// An `ifreq` for interface `name`.
fn ifreq(name: &str) -> io::Result<libc::ifreq> {
    // SAFETY: ifreq is plain data; zero is a valid value for every field.
    let mut req: libc::ifreq = unsafe { std::mem::zeroed() };
    let bytes = name.as_bytes();
    if bytes.len() >= req.ifr_name.len() {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            "interface name too long",
        ));
    }
    for (dst, &src) in req.ifr_name.iter_mut().zip(bytes) {
        *dst = src as libc::c_char;
    }
    Ok(req)
}

/// A socket to configure interfaces through.
fn control_socket() -> io::Result<std::net::UdpSocket> {
    std::net::UdpSocket::bind("0.0.0.0:0")
}

fn ioctl(
    socket: &std::net::UdpSocket,
    request: libc::c_ulong,
    req: &mut libc::ifreq,
) -> io::Result<()> {
    // SAFETY: `req` is an initialised ifreq, which every request used here reads or fills.
    check(unsafe { libc::ioctl(socket.as_raw_fd(), request as _, req as *mut libc::ifreq) })
}

/// Brings interface `name` up.
pub fn interface_up(name: &str) -> io::Result<()> {
    let socket = control_socket()?;
    let mut req = ifreq(name)?;
    ioctl(&socket, libc::SIOCGIFFLAGS, &mut req)?;
    // SAFETY: SIOCGIFFLAGS filled the flags member of the union.
    unsafe { req.ifr_ifru.ifru_flags |= (libc::IFF_UP | libc::IFF_RUNNING) as libc::c_short };
    ioctl(&socket, libc::SIOCSIFFLAGS, &mut req)
}

/// The Ethernet address of interface `name`.
pub fn hardware_address(name: &str) -> io::Result<[u8; 6]> {
    let socket = control_socket()?;
    let mut req = ifreq(name)?;
    ioctl(&socket, libc::SIOCGIFHWADDR, &mut req)?;
    // SAFETY: SIOCGIFHWADDR filled the hwaddr member of the union.
    let data = unsafe { req.ifr_ifru.ifru_hwaddr.sa_data };
    let mut mac = [0u8; 6];
    for (dst, &src) in mac.iter_mut().zip(data.iter()) {
        *dst = src as u8;
    }
    Ok(mac)
}

fn sockaddr(address: Ipv4Addr) -> libc::sockaddr {
    let sin = libc::sockaddr_in {
        sin_family: libc::AF_INET as libc::sa_family_t,
        sin_port: 0,
        sin_addr: libc::in_addr {
            s_addr: u32::from(address).to_be(),
        },
        sin_zero: [0; 8],
    };
    // SAFETY: sockaddr_in and sockaddr have the same size; the kernel reads it as the
    // family says.
    unsafe { std::mem::transmute::<libc::sockaddr_in, libc::sockaddr>(sin) }
}

/// Gives interface `name` the address and netmask.
pub fn set_address(name: &str, address: Ipv4Addr, netmask: Ipv4Addr) -> io::Result<()> {
    let socket = control_socket()?;
    let mut req = ifreq(name)?;
    req.ifr_ifru.ifru_addr = sockaddr(address);
    ioctl(&socket, libc::SIOCSIFADDR, &mut req)?;
    let mut req = ifreq(name)?;
    req.ifr_ifru.ifru_netmask = sockaddr(netmask);
    ioctl(&socket, libc::SIOCSIFNETMASK, &mut req)
}

/// Adds the default route through `gateway`.
pub fn add_default_route(gateway: Ipv4Addr) -> io::Result<()> {
    let socket = control_socket()?;
    // SAFETY: rtentry is plain data; zero is a valid value for every field.
    let mut route: libc::rtentry = unsafe { std::mem::zeroed() };
    route.rt_dst = sockaddr(Ipv4Addr::UNSPECIFIED);
    route.rt_genmask = sockaddr(Ipv4Addr::UNSPECIFIED);
    route.rt_gateway = sockaddr(gateway);
    route.rt_flags = libc::RTF_UP | libc::RTF_GATEWAY;
    // SAFETY: `route` is an initialised rtentry, which SIOCADDRT reads.
    check(unsafe {
        libc::ioctl(
            socket.as_raw_fd(),
            libc::SIOCADDRT as _,
            &mut route as *mut libc::rtentry,
        )
    })
}

/// Binds `socket` to interface `name` (SO_BINDTODEVICE): DHCP before the interface has an
/// address.
pub fn bind_to_device(socket: &std::net::UdpSocket, name: &str) -> io::Result<()> {
    // SAFETY: the pointer and length describe `name`'s bytes.
    check(unsafe {
        libc::setsockopt(
            socket.as_raw_fd(),
            libc::SOL_SOCKET,
            libc::SO_BINDTODEVICE,
            name.as_ptr().cast(),
            name.len() as libc::socklen_t,
        )
    })
}

/// Whether file descriptor `fd` is open.
pub fn is_open(fd: libc::c_int) -> bool {
    // SAFETY: F_GETFD reads flags of a descriptor number; no pointers.
    unsafe { libc::fcntl(fd, libc::F_GETFD) >= 0 }
}

/// Makes `/dev/console` standard input, output and error (the kernel could not open it
/// before /dev was mounted).
pub fn use_console() -> io::Result<()> {
    let console = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open("/dev/console")?;
    for fd in 0..3 {
        // SAFETY: both are descriptor numbers; dup2 replaces `fd` atomically.
        check(unsafe { libc::dup2(console.as_raw_fd(), fd) })?;
    }
    Ok(())
}
