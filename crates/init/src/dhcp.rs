//! DHCP packets (RFC 2131, options RFC 2132): the client side's DISCOVER and REQUEST, and
//! the server's OFFER and ACK read back, bounded and checked (a reply is input from the
//! network).

use std::net::Ipv4Addr;

/// The server's and the client's UDP ports.
pub const SERVER_PORT: u16 = 67;
/// See [`SERVER_PORT`].
pub const CLIENT_PORT: u16 = 68;

/// The fixed part of a BOOTP message, before the magic cookie.
const FIXED: usize = 236;
const MAGIC_COOKIE: [u8; 4] = [99, 130, 83, 99];
const BOOTREQUEST: u8 = 1;
const BOOTREPLY: u8 = 2;
/// Ethernet hardware addresses.
const HTYPE_ETHERNET: u8 = 1;
/// Asks the server to broadcast its reply: the client has no address to receive it on.
const FLAG_BROADCAST: u16 = 0x8000;

const OPTION_PAD: u8 = 0;
const OPTION_SUBNET_MASK: u8 = 1;
const OPTION_ROUTER: u8 = 3;
const OPTION_DNS: u8 = 6;
const OPTION_HOSTNAME: u8 = 12;
const OPTION_REQUESTED_IP: u8 = 50;
const OPTION_LEASE_TIME: u8 = 51;
const OPTION_MESSAGE_TYPE: u8 = 53;
const OPTION_SERVER_ID: u8 = 54;
const OPTION_PARAMETERS: u8 = 55;
const OPTION_END: u8 = 255;

/// DHCP message types (option 53).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MessageType {
    /// A client looks for servers.
    Discover = 1,
    /// A server offers an address.
    Offer = 2,
    /// A client asks for the offered address.
    Request = 3,
    /// A server refuses.
    Nak = 6,
    /// A server confirms.
    Ack = 5,
}

/// What a server's reply says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reply {
    /// OFFER, ACK or NAK.
    pub kind: MessageType,
    /// The client's address.
    pub address: Ipv4Addr,
    /// The server that answered (option 54).
    pub server: Option<Ipv4Addr>,
    /// The subnet mask (option 1).
    pub netmask: Option<Ipv4Addr>,
    /// The first router (option 3).
    pub router: Option<Ipv4Addr>,
    /// Name servers (option 6).
    pub dns: Vec<Ipv4Addr>,
    /// Seconds the lease lasts (option 51).
    pub lease_seconds: Option<u32>,
}

/// A DISCOVER from `mac`, with transaction `xid`.
pub fn discover(xid: u32, mac: [u8; 6], hostname: &str) -> Vec<u8> {
    let mut packet = header(xid, mac);
    option(
        &mut packet,
        OPTION_MESSAGE_TYPE,
        &[MessageType::Discover as u8],
    );
    common_options(&mut packet, hostname);
    packet
}

/// A REQUEST for the `offer` a server made.
pub fn request(xid: u32, mac: [u8; 6], hostname: &str, offer: &Reply) -> Vec<u8> {
    let mut packet = header(xid, mac);
    option(
        &mut packet,
        OPTION_MESSAGE_TYPE,
        &[MessageType::Request as u8],
    );
    option(&mut packet, OPTION_REQUESTED_IP, &offer.address.octets());
    if let Some(server) = offer.server {
        option(&mut packet, OPTION_SERVER_ID, &server.octets());
    }
    common_options(&mut packet, hostname);
    packet
}

fn header(xid: u32, mac: [u8; 6]) -> Vec<u8> {
    let mut packet = vec![0u8; FIXED];
    packet[0] = BOOTREQUEST;
    packet[1] = HTYPE_ETHERNET;
    packet[2] = 6;
    packet[4..8].copy_from_slice(&xid.to_be_bytes());
    packet[10..12].copy_from_slice(&FLAG_BROADCAST.to_be_bytes());
    packet[28..34].copy_from_slice(&mac);
    packet.extend_from_slice(&MAGIC_COOKIE);
    packet
}

fn common_options(packet: &mut Vec<u8>, hostname: &str) {
    if !hostname.is_empty() && hostname.len() <= 255 {
        option(packet, OPTION_HOSTNAME, hostname.as_bytes());
    }
    option(
        packet,
        OPTION_PARAMETERS,
        &[
            OPTION_SUBNET_MASK,
            OPTION_ROUTER,
            OPTION_DNS,
            OPTION_LEASE_TIME,
        ],
    );
    packet.push(OPTION_END);
    // Some servers drop requests shorter than BOOTP's 300 bytes.
    if packet.len() < 300 {
        packet.resize(300, 0);
    }
}

fn option(packet: &mut Vec<u8>, code: u8, value: &[u8]) {
    packet.push(code);
    packet.push(u8::try_from(value.len()).unwrap_or(u8::MAX));
    packet.extend_from_slice(&value[..value.len().min(255)]);
}

/// Reads a server's reply to transaction `xid` for `mac`; `None` for anything else (another
/// client's reply, a malformed packet).
pub fn parse_reply(packet: &[u8], xid: u32, mac: [u8; 6]) -> Option<Reply> {
    if packet.len() < FIXED + 4
        || packet[0] != BOOTREPLY
        || packet[4..8] != xid.to_be_bytes()
        || packet[28..34] != mac
        || packet[FIXED..FIXED + 4] != MAGIC_COOKIE
    {
        return None;
    }
    let address = Ipv4Addr::new(packet[16], packet[17], packet[18], packet[19]);
    let mut reply = Reply {
        kind: MessageType::Offer,
        address,
        server: None,
        netmask: None,
        router: None,
        dns: Vec::new(),
        lease_seconds: None,
    };
    let mut kind = None;
    let mut options = &packet[FIXED + 4..];
    while let Some((&code, rest)) = options.split_first() {
        match code {
            OPTION_PAD => {
                options = rest;
                continue;
            }
            OPTION_END => break,
            _ => {}
        }
        let (&len, rest) = rest.split_first()?;
        let value = rest.get(..usize::from(len))?;
        options = &rest[usize::from(len)..];
        let ip = |v: &[u8]| -> Option<Ipv4Addr> {
            let octets: [u8; 4] = v.get(..4)?.try_into().ok()?;
            Some(Ipv4Addr::from(octets))
        };
        match code {
            OPTION_MESSAGE_TYPE => {
                kind = match value.first() {
                    Some(2) => Some(MessageType::Offer),
                    Some(5) => Some(MessageType::Ack),
                    Some(6) => Some(MessageType::Nak),
                    _ => None,
                }
            }
            OPTION_SERVER_ID => reply.server = ip(value),
            OPTION_SUBNET_MASK => reply.netmask = ip(value),
            OPTION_ROUTER => reply.router = ip(value),
            OPTION_DNS => reply.dns = value.chunks_exact(4).filter_map(ip).collect(),
            OPTION_LEASE_TIME => {
                reply.lease_seconds = value
                    .get(..4)
                    .map(|v| u32::from_be_bytes(v.try_into().expect("four bytes were taken")))
            }
            _ => {}
        }
    }
    reply.kind = kind?;
    Some(reply)
}

/// The prefix length of `netmask` (24 for 255.255.255.0).
pub fn prefix_len(netmask: Ipv4Addr) -> u32 {
    u32::from(netmask).leading_ones()
}

#[cfg(test)]
mod tests {
    use super::*;

    const MAC: [u8; 6] = [0x52, 0x54, 0, 0x12, 0x34, 0x56];

    /// A reply as QEMU's user network (slirp) sends one.
    fn reply(kind: u8, xid: u32) -> Vec<u8> {
        let mut p = vec![0u8; FIXED];
        p[0] = BOOTREPLY;
        p[1] = 1;
        p[2] = 6;
        p[4..8].copy_from_slice(&xid.to_be_bytes());
        p[16..20].copy_from_slice(&[10, 0, 2, 15]);
        p[28..34].copy_from_slice(&MAC);
        p.extend_from_slice(&MAGIC_COOKIE);
        p.extend_from_slice(&[53, 1, kind]);
        p.extend_from_slice(&[54, 4, 10, 0, 2, 2]);
        p.extend_from_slice(&[0, 0]); // padding
        p.extend_from_slice(&[1, 4, 255, 255, 255, 0]);
        p.extend_from_slice(&[3, 4, 10, 0, 2, 2]);
        p.extend_from_slice(&[6, 8, 10, 0, 2, 3, 1, 1, 1, 1]);
        p.extend_from_slice(&[51, 4, 0, 1, 81, 128]);
        p.push(255);
        p
    }

    #[test]
    fn requests_carry_what_servers_need() {
        let d = discover(0xdead_beef, MAC, "app");
        assert_eq!(d.len(), 300);
        assert_eq!(d[0], BOOTREQUEST);
        assert_eq!(&d[4..8], &0xdead_beef_u32.to_be_bytes());
        assert_eq!(&d[10..12], &[0x80, 0], "broadcast flag");
        assert_eq!(&d[28..34], &MAC);
        assert_eq!(&d[236..240], &MAGIC_COOKIE);
        assert_eq!(&d[240..243], &[53, 1, 1]);
        assert_eq!(&d[243..248], b"\x0c\x03app");
        let offer = parse_reply(&reply(2, 7), 7, MAC).unwrap();
        let r = request(7, MAC, "", &offer);
        assert_eq!(&r[240..243], &[53, 1, 3]);
        assert_eq!(&r[243..249], &[50, 4, 10, 0, 2, 15]);
        assert_eq!(&r[249..255], &[54, 4, 10, 0, 2, 2]);
    }

    #[test]
    fn replies_are_read() {
        let offer = parse_reply(&reply(2, 7), 7, MAC).unwrap();
        assert_eq!(
            offer,
            Reply {
                kind: MessageType::Offer,
                address: Ipv4Addr::new(10, 0, 2, 15),
                server: Some(Ipv4Addr::new(10, 0, 2, 2)),
                netmask: Some(Ipv4Addr::new(255, 255, 255, 0)),
                router: Some(Ipv4Addr::new(10, 0, 2, 2)),
                dns: vec![Ipv4Addr::new(10, 0, 2, 3), Ipv4Addr::new(1, 1, 1, 1)],
                lease_seconds: Some(86400),
            }
        );
        assert_eq!(prefix_len(offer.netmask.unwrap()), 24);
        assert_eq!(
            parse_reply(&reply(5, 7), 7, MAC).unwrap().kind,
            MessageType::Ack
        );
        assert_eq!(
            parse_reply(&reply(6, 7), 7, MAC).unwrap().kind,
            MessageType::Nak
        );
    }

    #[test]
    fn other_packets_are_not_replies() {
        assert!(
            parse_reply(&reply(2, 7), 8, MAC).is_none(),
            "another transaction"
        );
        assert!(
            parse_reply(&reply(2, 7), 7, [0; 6]).is_none(),
            "another client"
        );
        assert!(
            parse_reply(&reply(9, 7), 7, MAC).is_none(),
            "an unknown type"
        );
        let full = reply(2, 7);
        for len in 0..full.len() - 1 {
            // Truncated anywhere: never a panic, and never a reply without its type.
            let _ = parse_reply(&full[..len], 7, MAC);
        }
        assert!(parse_reply(&full[..243], 7, MAC).is_some());
        assert!(parse_reply(&full[..242], 7, MAC).is_none());
        let mut long_option = full.clone();
        long_option[244] = 200; // server id claims 200 bytes
        assert!(
            parse_reply(&long_option, 7, MAC).is_none(),
            "an option past the end"
        );
    }
}
