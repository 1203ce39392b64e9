//! The workload of the appliance tests, compiled statically by the test and put alone in a
//! `FROM scratch` image: it says on the console what it was started with, reaches the
//! host's HTTP server at QEMU's 10.0.2.2, and exits with status 7. Standard library only.

use std::io::{Read, Write};
use std::net::{TcpStream, UdpSocket};

fn main() {
    let args: Vec<String> = std::env::args().collect();
    println!("probe argv: {args:?}");
    let mut env: Vec<String> = std::env::vars().map(|(k, v)| format!("{k}={v}")).collect();
    env.sort();
    println!("probe env: {env:?}");
    println!(
        "probe cwd: {}",
        std::env::current_dir().map_or_else(|e| e.to_string(), |d| d.display().to_string())
    );
    // Real and effective IDs, as /proc gives them: "Uid: 1000 1000 1000 1000".
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    for key in ["Uid:", "Gid:", "Groups:"] {
        let ids = status
            .lines()
            .find_map(|l| l.strip_prefix(key))
            .unwrap_or("?")
            .split_whitespace()
            .collect::<Vec<_>>()
            .join(" ");
        println!("probe {} {ids}", key.trim_end_matches(':').to_lowercase());
    }
    // The source address the kernel picks to reach the host: the one DHCP gave.
    let address = UdpSocket::bind("0.0.0.0:0")
        .and_then(|s| s.connect("10.0.2.2:9").map(|()| s))
        .and_then(|s| s.local_addr())
        .map_or_else(|e| format!("none ({e})"), |a| a.ip().to_string());
    println!("probe ipv4: {address}");
    let hostname = std::fs::read_to_string("/proc/sys/kernel/hostname").unwrap_or_default();
    println!("probe hostname: {}", hostname.trim());
    let resolv = std::fs::read_to_string("/etc/resolv.conf").unwrap_or_default();
    println!("probe resolv: {:?}", resolv.trim());
    if let Some(port) = env
        .iter()
        .find_map(|v| v.strip_prefix("PROBE_PORT="))
    {
        match get(port) {
            Ok(line) => println!("probe http: {line}"),
            Err(e) => println!("probe http: failed: {e}"),
        }
    }
    std::process::exit(7);
}

fn get(port: &str) -> std::io::Result<String> {
    let mut stream = TcpStream::connect(format!("10.0.2.2:{port}"))?;
    stream.write_all(b"GET /from-the-probe HTTP/1.0\r\nHost: 10.0.2.2\r\n\r\n")?;
    let mut reply = String::new();
    stream.read_to_string(&mut reply)?;
    Ok(reply.lines().next().unwrap_or("").to_owned())
}
