//! The command of the PID 1 test, compiled statically by the test: it reports what d2l-init
//! set up, leaves orphans for it to reap, and waits for the SIGTERM it must forward.

use std::process::Command;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

static TERMINATED: AtomicBool = AtomicBool::new(false);

extern "C" fn on_terminate(_signal: i32) {
    TERMINATED.store(true, Ordering::SeqCst);
}

extern "C" {
    fn signal(signum: i32, handler: extern "C" fn(i32)) -> usize;
}

const SIGTERM: i32 = 15;

fn main() {
    let args: Vec<String> = std::env::args().collect();
    match args.get(1).map(String::as_str) {
        // Starts a sleeper and exits at once: the sleeper's parent becomes PID 1.
        Some("orphan-maker") => {
            Command::new(&args[0]).arg("sleeper").spawn().unwrap();
            return;
        }
        Some("sleeper") => {
            std::thread::sleep(Duration::from_millis(500));
            return;
        }
        _ => {}
    }
    // SAFETY (test program): installs a handler that only stores to an atomic.
    unsafe { signal(SIGTERM, on_terminate) };
    let mountinfo = std::fs::read_to_string("/proc/self/mountinfo").unwrap_or_default();
    let targets: Vec<&str> = mountinfo
        .lines()
        .filter_map(|l| l.split(' ').nth(4))
        .collect();
    println!("workload mounts: {}", targets.join(" "));
    let hostname = std::fs::read_to_string("/proc/sys/kernel/hostname").unwrap_or_default();
    println!("workload hostname: {}", hostname.trim());
    let lo = std::fs::read_to_string("/sys/class/net/lo/flags").unwrap_or_default();
    let up = u32::from_str_radix(lo.trim().trim_start_matches("0x"), 16).unwrap_or(0) & 1;
    println!("workload loopback up: {up}");
    println!(
        "workload dev links: {}",
        ["/dev/fd", "/dev/stdin", "/dev/ptmx"]
            .iter()
            .all(|l| std::fs::symlink_metadata(l).is_ok())
    );
    println!(
        "workload env: {}",
        std::env::var("WORKLOAD_ENV").unwrap_or_default()
    );
    for _ in 0..3 {
        Command::new(&args[0]).arg("orphan-maker").status().unwrap();
    }
    println!("workload ready");
    let deadline = Instant::now() + Duration::from_secs(60);
    while !TERMINATED.load(Ordering::SeqCst) && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(20));
    }
    // The sleepers ended long ago; PID 1 must have reaped them.
    std::thread::sleep(Duration::from_millis(800));
    let zombies = std::fs::read_dir("/proc")
        .unwrap()
        .flatten()
        .filter(|e| e.file_name().to_string_lossy().parse::<u32>().is_ok())
        .filter(|e| {
            let stat = std::fs::read_to_string(e.path().join("stat")).unwrap_or_default();
            stat.rsplit_once(") ").is_some_and(|(_, rest)| rest.starts_with('Z'))
        })
        .count();
    println!("workload zombies: {zombies}");
    println!(
        "workload got SIGTERM: {}",
        TERMINATED.load(Ordering::SeqCst)
    );
    std::process::exit(42);
}
