//! A kernel's network: its own namespace, public egress through `slirp4netns`, and routes
//! that make the host and private networks unreachable.
//!
//! Why slirp4netns: it is the user-mode network stack rootless Podman and Docker use, it
//! needs no bridge, veth or firewall rule on the host (nothing to clean up when a runtime
//! dies), it refuses connections to the host's loopback (`--disable-host-loopback`) and
//! sandboxes itself (`--enable-sandbox`, `--enable-seccomp`). Everything it forwards leaves
//! through the host's own sockets, so what the kernel may reach is decided inside the
//! kernel's namespace, before slirp4netns sees a packet: `unreachable` routes for loopback,
//! private, shared, link-local (cloud metadata) and multicast ranges and for every address
//! and on-link network of the host's interfaces. The routes are written while the sandbox
//! is still blocked, before any of its code runs; the kernel holds no capability in its
//! namespace, so it cannot change them. IPv6 is not forwarded at all.

use std::net::IpAddr;
use std::os::fd::{AsRawFd, OwnedFd};
use std::time::Duration;

use tokio::io::AsyncReadExt;

/// Ranges a kernel never reaches unless the operator allows them (`--kernel-allow-net`).
pub const BLOCKED: &[&str] = &[
    "0.0.0.0/8",
    "10.0.0.0/8",
    "100.64.0.0/10",
    "127.0.0.0/8",
    "169.254.0.0/16",
    "172.16.0.0/12",
    "192.0.0.0/24",
    "192.168.0.0/16",
    "198.18.0.0/15",
    "224.0.0.0/4",
    "240.0.0.0/4",
];

/// slirp4netns's gateway inside the namespace (the host, through slirp4netns).
const GATEWAY: &str = "10.0.2.2";
/// slirp4netns's network; its DNS forwarder is 10.0.2.3.
const SLIRP_NETWORK: &str = "10.0.2.0/24";
/// How long slirp4netns may take to configure the namespace.
const READY_TIMEOUT: Duration = Duration::from_secs(10);

/// Longest wait for bwrap to bring up the sandbox's loopback before its network is set up.
const LOOPBACK_WAIT: Duration = Duration::from_secs(1);

/// A kernel's running network stack; dropping it stops slirp4netns.
#[derive(Debug)]
pub struct Network {
    _slirp: tokio::process::Child,
    /// slirp4netns exits when this closes (`--exit-fd`).
    _exit: OwnedFd,
}

/// A network to allow: `CIDR` (IPv4).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Cidr(pub String);

impl std::str::FromStr for Cidr {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        let (address, bits) = text
            .split_once('/')
            .ok_or_else(|| format!("expected ADDRESS/BITS, got {text:?}"))?;
        let address: std::net::Ipv4Addr = address
            .parse()
            .map_err(|_| format!("{address:?} is not an IPv4 address"))?;
        let bits: u8 = bits
            .parse()
            .ok()
            .filter(|bits| *bits <= 32)
            .ok_or_else(|| format!("{bits:?} is not a prefix length (0-32)"))?;
        Ok(Cidr(format!("{address}/{bits}")))
    }
}

/// Waits (at most [`LOOPBACK_WAIT`]) until the loopback of the namespace of `pid` is up,
/// which bwrap does inside the sandbox after it reported the sandbox's pid. Changing the
/// namespace's routes at the same moment made bwrap's own netlink requests fail now and then
/// ("bwrap: loopback: Failed RTM_NEWADDR", seen in about one full test run in three). Up
/// means the local table holds loopback's /8, which the kernel adds only once `lo` has its
/// address and is up. Past the wait this goes on as before.
pub async fn loopback_up(pid: i32) {
    let path = format!("/proc/{pid}/net/fib_trie");
    let deadline = tokio::time::Instant::now() + LOOPBACK_WAIT;
    while tokio::time::Instant::now() < deadline {
        match tokio::fs::read_to_string(&path).await {
            Ok(trie) if trie.contains("/8 host LOCAL") => return,
            Ok(_) => tokio::time::sleep(Duration::from_millis(1)).await,
            Err(_) => return,
        }
    }
    tracing::debug!(
        pid,
        "the sandbox's loopback was not up in time; setting up its network"
    );
}

/// Makes every blocked range unreachable in the namespace of `pid`. Run before the sandbox
/// has a route out, so there is no moment in which a blocked address is reachable.
pub async fn block(pid: i32) -> std::io::Result<()> {
    let mut batch = String::new();
    // The sandbox's own loopback stays usable: the local routing table answers for it.
    let ranges = BLOCKED.iter().filter(|range| !range.starts_with("127."));
    for range in ranges.map(|r| r.to_string()).chain(host_networks()) {
        // The host's own network may contain slirp4netns's; its more specific route wins.
        batch.push_str(&format!("route replace unreachable {range}\n"));
    }
    ip_batch(pid, &batch).await
}

/// Starts slirp4netns for the namespace of `pid` and waits until the route out exists;
/// then routes `allowed` through it.
#[allow(unsafe_code)]
pub async fn connect(pid: i32, allowed: &[Cidr]) -> std::io::Result<Network> {
    let (ready_read, ready_write) =
        nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC).map_err(std::io::Error::from)?;
    let (exit_read, exit_write) =
        nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC).map_err(std::io::Error::from)?;
    // In a private mount namespace of its own: slirp4netns's `--enable-sandbox` unmounts what
    // it does not need, and in a copy of the runtime's namespace that would reach the
    // kernels' shared drive slots (see `mounts`) and take their drives away.
    let mut command = tokio::process::Command::new("unshare");
    command
        .args(["--mount", "--propagation", "private", "--", "slirp4netns"])
        .args(["--configure", "--mtu=65520", "--disable-host-loopback"])
        .args(["--enable-sandbox", "--enable-seccomp"])
        .arg(format!("--ready-fd={}", ready_write.as_raw_fd()))
        .arg(format!("--exit-fd={}", exit_read.as_raw_fd()))
        // By path, not pid: a pid would make it join the sandbox's user namespace, which
        // holds no rights over the network namespace.
        .arg("--netns-type=path")
        .arg(format!("/proc/{pid}/ns/net"))
        .arg("tap0")
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .kill_on_drop(true);
    let (ready_fd, exit_fd) = (ready_write.as_raw_fd(), exit_read.as_raw_fd());
    // SAFETY: fcntl(2) is async-signal-safe; it only clears close-on-exec on the two fds
    // slirp4netns must inherit.
    unsafe {
        command.pre_exec(move || {
            for fd in [ready_fd, exit_fd] {
                if libc::fcntl(fd, libc::F_SETFD, 0) != 0 {
                    return Err(std::io::Error::last_os_error());
                }
            }
            Ok(())
        });
    }
    let mut slirp = command.spawn().map_err(|error| {
        std::io::Error::new(
            error.kind(),
            format!("starting unshare + slirp4netns: {error}"),
        )
    })?;
    drop(ready_write);
    drop(exit_read);
    let mut ready = tokio::fs::File::from_std(std::fs::File::from(ready_read));
    let mut byte = [0u8; 1];
    let read = tokio::time::timeout(READY_TIMEOUT, ready.read(&mut byte)).await;
    if !matches!(read, Ok(Ok(1))) {
        let mut message = String::new();
        let _ = slirp.kill().await;
        if let Some(mut stderr) = slirp.stderr.take() {
            let _ = stderr.read_to_string(&mut message).await;
        }
        return Err(std::io::Error::other(format!(
            "slirp4netns did not configure the kernel's network: {}",
            message.trim()
        )));
    }
    if !allowed.is_empty() {
        let batch: String = allowed
            .iter()
            .map(|cidr| format!("route replace {} via {GATEWAY} dev tap0\n", cidr.0))
            .collect();
        ip_batch(pid, &batch).await?;
    }
    Ok(Network {
        _slirp: slirp,
        _exit: exit_write,
    })
}

/// Runs `ip -batch -` in the network namespace of `pid`.
async fn ip_batch(pid: i32, batch: &str) -> std::io::Result<()> {
    use tokio::io::AsyncWriteExt;
    let mut child = tokio::process::Command::new("nsenter")
        .arg(format!("--net=/proc/{pid}/ns/net"))
        .args(["ip", "-batch", "-"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .map_err(|error| std::io::Error::new(error.kind(), format!("running nsenter: {error}")))?;
    let written = match child.stdin.take() {
        Some(mut stdin) => stdin.write_all(batch.as_bytes()).await,
        None => Ok(()),
    };
    // nsenter that failed (the namespace gone, a refused setns) exits before reading its
    // input: its own message says why, not the broken pipe of our write.
    let output = child.wait_with_output().await?;
    if !output.status.success() || written.is_err() {
        return Err(std::io::Error::other(format!(
            "setting the kernel's routes failed ({}{}): {}",
            output.status,
            written
                .err()
                .map(|error| format!(", writing the routes: {error}"))
                .unwrap_or_default(),
            String::from_utf8_lossy(&output.stderr).trim()
        )));
    }
    Ok(())
}

/// Every IPv4 address of the host's interfaces (as /32) and the networks they are on,
/// except slirp4netns's own network and loopback (already blocked).
fn host_networks() -> Vec<String> {
    let Ok(addresses) = nix::ifaddrs::getifaddrs() else {
        return Vec::new();
    };
    let mut networks = Vec::new();
    for interface in addresses {
        let (Some(address), Some(netmask)) = (interface.address, interface.netmask) else {
            continue;
        };
        let (Some(address), Some(netmask)) = (address.as_sockaddr_in(), netmask.as_sockaddr_in())
        else {
            continue;
        };
        let ip = address.ip();
        if ip.is_loopback() {
            continue;
        }
        let bits = u32::from(netmask.ip()).count_ones();
        let network = u32::from(ip) & u32::from(netmask.ip());
        networks.push(format!("{ip}/32"));
        let network = format!("{}/{bits}", std::net::Ipv4Addr::from(network));
        if bits > 0 && network != SLIRP_NETWORK {
            networks.push(network);
        }
    }
    networks.sort();
    networks.dedup();
    networks
}

/// Whether `address` is one a kernel never reaches by default (for tests and docs).
pub fn is_blocked(address: IpAddr) -> bool {
    let IpAddr::V4(address) = address else {
        // No IPv6 route exists inside a sandbox at all.
        return true;
    };
    BLOCKED.iter().any(|range| {
        let Some((base, bits)) = range.split_once('/') else {
            return false;
        };
        let (Ok(base), Ok(bits)) = (base.parse::<std::net::Ipv4Addr>(), bits.parse::<u32>()) else {
            return false;
        };
        let mask = if bits == 0 {
            0
        } else {
            u32::MAX << (32 - bits)
        };
        u32::from(address) & mask == u32::from(base) & mask
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn private_loopback_and_metadata_ranges_are_blocked() {
        for blocked in [
            "127.0.0.1",
            "10.1.2.3",
            "172.20.0.1",
            "192.168.1.1",
            "169.254.169.254",
            "100.100.100.200",
            "::1",
            "fc00::1",
        ] {
            assert!(is_blocked(blocked.parse().unwrap()), "{blocked}");
        }
        for public in ["151.101.0.223", "8.8.8.8", "172.32.0.1"] {
            assert!(!is_blocked(public.parse().unwrap()), "{public}");
        }
    }

    #[test]
    fn allowed_networks_parse() {
        assert_eq!(
            "10.8.0.0/16".parse::<Cidr>().unwrap(),
            Cidr("10.8.0.0/16".into())
        );
        assert!("10.8.0.0".parse::<Cidr>().is_err());
        assert!("10.8.0.0/33".parse::<Cidr>().is_err());
        assert!("fc00::/7".parse::<Cidr>().is_err());
    }
}
