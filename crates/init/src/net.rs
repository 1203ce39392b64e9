//! The network: loopback up, then the first network card configured by DHCP (address,
//! default route, /etc/resolv.conf).

use std::net::{Ipv4Addr, SocketAddrV4, UdpSocket};
use std::time::{Duration, Instant};

use d2l_init::dhcp::{self, MessageType, Reply, CLIENT_PORT, SERVER_PORT};

use crate::sys;

/// How long the first network card may take to appear (its driver was loaded by the
/// initramfs, or built in: it is there, or about to be).
const CARD_WAIT: Duration = Duration::from_secs(1);
/// How long a card may take to report a link (carrier) once up.
const LINK_WAIT: Duration = Duration::from_secs(3);
/// The first wait for a DHCP answer, doubled at each try (a packet lost while the link
/// settles costs a quarter of a second, not seconds).
const FIRST_REPLY_WAIT: Duration = Duration::from_millis(100);
const TRIES: u32 = 8;

/// Brings the network up; returns a line for the console.
pub fn bring_up(hostname: &str) -> String {
    if let Err(e) = sys::interface_up("lo") {
        crate::say(&format!("loopback: {e}"));
    }
    let Some(card) = first_card() else {
        return "no network card: loopback only".into();
    };
    match configure(&card, hostname) {
        Ok(lease) => {
            let prefix = lease.netmask.map_or(32, dhcp::prefix_len);
            let mut line = format!("{card} {}/{prefix}", lease.address);
            if let Some(router) = lease.router {
                line += &format!(", router {router}");
            }
            if !lease.dns.is_empty() {
                let dns: Vec<String> = lease.dns.iter().map(|d| d.to_string()).collect();
                line += &format!(", DNS {}", dns.join(" "));
            }
            if let Some(server) = lease.server {
                line += &format!(" (DHCP from {server})");
            }
            line
        }
        Err(e) => format!("{card}: no DHCP lease ({e}): loopback only"),
    }
}

/// The network cards (not loopback or tunnels) in /sys/class/net, by name.
pub fn cards() -> Vec<String> {
    let mut cards: Vec<String> = std::fs::read_dir("/sys/class/net")
        .map(|dir| {
            dir.filter_map(|e| e.ok())
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .filter(|name| name != "lo" && !name.starts_with("sit"))
                .collect()
        })
        .unwrap_or_default();
    cards.sort();
    cards
}

/// The first network card, waiting for one to appear.
fn first_card() -> Option<String> {
    let deadline = Instant::now() + CARD_WAIT;
    loop {
        if let Some(card) = cards().into_iter().next() {
            return Some(card);
        }
        if Instant::now() > deadline {
            return None;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// DHCP on `card`, then its address, route and name servers set.
fn configure(card: &str, hostname: &str) -> std::io::Result<Reply> {
    sys::interface_up(card)?;
    wait_for_link(card);
    let mac = sys::hardware_address(card)?;
    let socket = UdpSocket::bind(SocketAddrV4::new(Ipv4Addr::UNSPECIFIED, CLIENT_PORT))?;
    sys::bind_to_device(&socket, card)?;
    socket.set_broadcast(true)?;
    let xid = transaction_id(mac);
    let offer = exchange(
        &socket,
        &dhcp::discover(xid, mac, hostname),
        xid,
        mac,
        MessageType::Offer,
    )?;
    let ack = exchange(
        &socket,
        &dhcp::request(xid, mac, hostname, &offer),
        xid,
        mac,
        MessageType::Ack,
    )?;
    let netmask = ack.netmask.unwrap_or(Ipv4Addr::new(255, 255, 255, 0));
    sys::set_address(card, ack.address, netmask)?;
    if let Some(router) = ack.router {
        sys::add_default_route(router)?;
    }
    if !ack.dns.is_empty() {
        write_resolv_conf(&ack.dns);
    }
    Ok(ack)
}

/// Sends `packet` until a reply of `kind` comes (a NAK is an error).
fn exchange(
    socket: &UdpSocket,
    packet: &[u8],
    xid: u32,
    mac: [u8; 6],
    kind: MessageType,
) -> std::io::Result<Reply> {
    let server = SocketAddrV4::new(Ipv4Addr::BROADCAST, SERVER_PORT);
    let mut buffer = [0u8; 1500];
    let mut wait = FIRST_REPLY_WAIT;
    for _ in 0..TRIES {
        socket.send_to(packet, server)?;
        let deadline = Instant::now() + wait;
        wait *= 2;
        while let Some(left) = deadline.checked_duration_since(Instant::now()) {
            socket.set_read_timeout(Some(left.max(Duration::from_millis(1))))?;
            let Ok((len, _)) = socket.recv_from(&mut buffer) else {
                break;
            };
            match dhcp::parse_reply(&buffer[..len], xid, mac) {
                Some(reply) if reply.kind == kind => return Ok(reply),
                Some(reply) if reply.kind == MessageType::Nak => {
                    return Err(std::io::Error::other("the server refused (NAK)"))
                }
                _ => {}
            }
        }
    }
    Err(std::io::Error::new(
        std::io::ErrorKind::TimedOut,
        format!("no answer to {} tries", TRIES),
    ))
}

/// Waits until `card` reports a link, for at most [`LINK_WAIT`].
fn wait_for_link(card: &str) {
    let deadline = Instant::now() + LINK_WAIT;
    let carrier = format!("/sys/class/net/{card}/carrier");
    while Instant::now() < deadline {
        if std::fs::read_to_string(&carrier).is_ok_and(|c| c.trim() == "1") {
            return;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// A transaction ID that differs between machines and boots.
fn transaction_id(mac: [u8; 6]) -> u32 {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.subsec_nanos());
    u32::from_be_bytes([mac[2], mac[3], mac[4], mac[5]]) ^ nanos
}

/// /etc/resolv.conf with the lease's name servers (replacing a link to a resolver the image
/// does not run).
fn write_resolv_conf(dns: &[Ipv4Addr]) {
    let text: String = dns
        .iter()
        .map(|server| format!("nameserver {server}\n"))
        .collect();
    let path = std::path::Path::new("/etc/resolv.conf");
    let _ = std::fs::create_dir_all("/etc");
    if path.is_symlink() {
        let _ = std::fs::remove_file(path);
    }
    if let Err(e) = std::fs::write(path, text) {
        crate::say(&format!("/etc/resolv.conf: {e}"));
    }
}
