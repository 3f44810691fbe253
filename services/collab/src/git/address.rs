//! Where the server may fetch repositories from: not its own machine or network.
//!
//! A repository URL is something a user typed, and the server fetches it; without a check,
//! `http://127.0.0.1:6379/` or `https://169.254.169.254/` would make the server talk to
//! services only it can reach (server-side request forgery). So the host is resolved here,
//! every address it resolves to must be public, and git is then pinned to the address checked
//! (`http.curloptResolve`), so a second DNS answer (DNS rebinding) cannot send it elsewhere.
//! `--git-allow-private` lifts the rule, for git servers on a private network (and tests).

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use ipnet::{Ipv4Net, Ipv6Net};

/// IPv4 ranges that are not the public internet (IANA special-purpose registry).
const BLOCKED_V4: [Ipv4Net; 17] = [
    net4([0, 0, 0, 0], 8),       // "this network"; 0.0.0.0 reaches the local host
    net4([10, 0, 0, 0], 8),      // private (RFC 1918)
    net4([100, 64, 0, 0], 10),   // carrier-grade NAT (RFC 6598); also cloud metadata
    net4([127, 0, 0, 0], 8),     // loopback
    net4([169, 254, 0, 0], 16),  // link-local; 169.254.169.254 is cloud metadata
    net4([172, 16, 0, 0], 12),   // private
    net4([192, 0, 0, 0], 24),    // IETF protocol assignments
    net4([192, 0, 2, 0], 24),    // documentation
    net4([192, 88, 99, 0], 24),  // 6to4 relay anycast
    net4([192, 168, 0, 0], 16),  // private
    net4([198, 18, 0, 0], 15),   // benchmarking
    net4([198, 51, 100, 0], 24), // documentation
    net4([203, 0, 113, 0], 24),  // documentation
    net4([224, 0, 0, 0], 4),     // multicast
    net4([240, 0, 0, 0], 4),     // reserved, and broadcast
    net4([255, 255, 255, 255], 32),
    net4([192, 31, 196, 0], 24), // AS112
];

/// IPv6 ranges that are not the public internet. Ranges that embed an IPv4 address
/// (mapped, compatible, NAT64, 6to4) are checked by that address instead.
const BLOCKED_V6: [Ipv6Net; 8] = [
    net6([0, 0, 0, 0, 0, 0, 0, 0], 128),         // unspecified
    net6([0, 0, 0, 0, 0, 0, 0, 1], 128),         // loopback
    net6([0x100, 0, 0, 0, 0, 0, 0, 0], 64),      // discard
    net6([0x2001, 0xdb8, 0, 0, 0, 0, 0, 0], 32), // documentation
    net6([0xfc00, 0, 0, 0, 0, 0, 0, 0], 7),      // unique local (private)
    net6([0xfe80, 0, 0, 0, 0, 0, 0, 0], 10),     // link-local
    net6([0xfec0, 0, 0, 0, 0, 0, 0, 0], 10),     // site-local (deprecated)
    net6([0xff00, 0, 0, 0, 0, 0, 0, 0], 8),      // multicast
];

const fn net4(octets: [u8; 4], prefix: u8) -> Ipv4Net {
    Ipv4Net::new_assert(
        Ipv4Addr::new(octets[0], octets[1], octets[2], octets[3]),
        prefix,
    )
}

const fn net6(segments: [u16; 8], prefix: u8) -> Ipv6Net {
    let [a, b, c, d, e, f, g, h] = segments;
    Ipv6Net::new_assert(Ipv6Addr::new(a, b, c, d, e, f, g, h), prefix)
}

/// Whether `ip` is on the public internet: not loopback, private, link-local, carrier-grade
/// NAT, cloud metadata, multicast, documentation or otherwise reserved, in either family,
/// including IPv4 addresses carried inside IPv6 ones.
pub fn is_public(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => !BLOCKED_V4.iter().any(|net| net.contains(&v4)),
        IpAddr::V6(v6) => match embedded_v4(v6) {
            Some(v4) => is_public(IpAddr::V4(v4)),
            None => !BLOCKED_V6.iter().any(|net| net.contains(&v6)),
        },
    }
}

/// The IPv4 address an IPv6 one stands for: IPv4-mapped (`::ffff:a.b.c.d`), IPv4-compatible
/// (`::a.b.c.d`), NAT64 (`64:ff9b::/96`) and 6to4 (`2002:AABB:CCDD::/48`).
fn embedded_v4(ip: Ipv6Addr) -> Option<Ipv4Addr> {
    let s = ip.segments();
    let low = Ipv4Addr::new((s[6] >> 8) as u8, s[6] as u8, (s[7] >> 8) as u8, s[7] as u8);
    match s {
        [0, 0, 0, 0, 0, 0xffff, _, _] => Some(low),
        // `::` and `::1` themselves are the unspecified and loopback addresses.
        [0, 0, 0, 0, 0, 0, hi, _] if hi != 0 => Some(low),
        [0x64, 0xff9b, 0, 0, 0, 0, _, _] => Some(low),
        [0x2002, hi, lo, ..] => Some(Ipv4Addr::new(
            (hi >> 8) as u8,
            hi as u8,
            (lo >> 8) as u8,
            lo as u8,
        )),
        _ => None,
    }
}

/// A `http.curloptResolve` entry that makes git (curl) connect to `host:port` at one of
/// `ips` (in order) and nowhere else.
pub fn resolve_entry(host: &str, port: u16, ips: &[IpAddr]) -> String {
    let addresses: Vec<String> = ips
        .iter()
        .map(|ip| match ip {
            IpAddr::V4(v4) => v4.to_string(),
            IpAddr::V6(v6) => format!("[{v6}]"),
        })
        .collect();
    format!("{host}:{port}:{}", addresses.join(","))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn local_and_private_addresses_are_not_public() {
        for blocked in [
            "127.0.0.1",
            "127.1.2.3",
            "0.0.0.0",
            "10.1.2.3",
            "172.16.0.1",
            "172.31.255.255",
            "192.168.1.1",
            "169.254.169.254",
            "100.64.0.1",
            "100.100.100.200",
            "224.0.0.1",
            "255.255.255.255",
            "::",
            "::1",
            "fc00::1",
            "fd00:ec2::254",
            "fe80::1",
            "ff02::1",
            "::ffff:127.0.0.1",
            "::ffff:10.0.0.1",
            "::127.0.0.1",
            "64:ff9b::a9fe:a9fe",
            "2002:7f00:1::",
        ] {
            let ip: IpAddr = blocked.parse().unwrap();
            assert!(!is_public(ip), "{blocked}");
        }
        for public in [
            "140.82.112.3",
            "8.8.8.8",
            "172.32.0.1",
            "100.128.0.1",
            "2606:50c0:8000::153",
            "::ffff:140.82.112.3",
            "64:ff9b::808:808",
        ] {
            let ip: IpAddr = public.parse().unwrap();
            assert!(is_public(ip), "{public}");
        }
    }

    #[test]
    fn resolve_entries_bracket_ipv6() {
        let v6: IpAddr = "2606:50c0:8000::153".parse().unwrap();
        let v4: IpAddr = "140.82.112.3".parse().unwrap();
        assert_eq!(
            resolve_entry("github.com", 443, &[v6, v4]),
            "github.com:443:[2606:50c0:8000::153],140.82.112.3"
        );
    }
}
