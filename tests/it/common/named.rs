//! A real BIND `named` from Debian as the authoritative server of test zones: its own directory,
//! zone files and TSIG key (hmac-sha256, allowed to update every zone), listening on a loopback
//! high port (UDP and TCP), run in the foreground and killed on drop. Never the system service.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use enc365_nginx::publish::dns::wire;
use hickory_proto::rr::RecordType;

/// The TSIG key name the tests use.
pub const KEY_NAME: &str = "enc365-test";
/// Its secret (base64 of 32 bytes).
pub const KEY_SECRET: &str = "cGxlYXNlLW5ldmVyLXVzZS10aGlzLWtleS1mb3ItcmVhbCEh";

/// A running `named`.
pub struct Named {
    child: Child,
    /// Where it answers (127.0.0.1:port, UDP and TCP).
    pub addr: SocketAddr,
    dir: tempfile::TempDir,
}

/// Where Debian puts named (it is in /usr/sbin, often not on a user's PATH).
fn named_binary() -> PathBuf {
    for dir in ["/usr/sbin", "/usr/bin"] {
        let p = Path::new(dir).join("named");
        if p.exists() {
            return p;
        }
    }
    panic!("BIND named is not installed; run scripts/deps.sh (it installs bind9)");
}

impl Named {
    /// Starts named serving `zones` (each with an SOA, an NS and an A record for the apex).
    pub fn start(zones: &[&str]) -> Named {
        let zones: Vec<(&str, &str)> = zones.iter().map(|z| (*z, "")).collect();
        Named::start_at([127, 0, 0, 1], super::free_port(), &zones)
    }

    /// Starts named on `ip`:`port` serving each zone with an SOA, an NS (`ns.<zone>`, at `ip`),
    /// an A record for the apex (127.0.0.1, where nginx listens) and the extra zone-file lines
    /// given (e.g. a delegation with glue).
    pub fn start_at(ip: [u8; 4], port: u16, zones: &[(&str, &str)]) -> Named {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path().display().to_string();
        let listen = std::net::Ipv4Addr::from(ip);
        let mut conf = format!(
            "options {{\n  directory \"{d}\";\n  pid-file \"{d}/named.pid\";\n  \
             session-keyfile \"{d}/session.key\";\n  managed-keys-directory \"{d}\";\n  \
             listen-on port {port} {{ {listen}; }};\n  listen-on-v6 {{ none; }};\n  \
             recursion no;\n  dnssec-validation no;\n  notify no;\n}};\n\
             controls {{ }};\n\
             key \"{KEY_NAME}\" {{ algorithm hmac-sha256; secret \"{KEY_SECRET}\"; }};\n"
        );
        for (zone, extra) in zones {
            std::fs::write(
                dir.path().join(format!("{zone}.zone")),
                format!(
                    "$TTL 60\n@ IN SOA ns.{zone}. hostmaster.{zone}. 1 60 60 600 60\n\
                     @ IN NS ns.{zone}.\nns IN A {listen}\n@ IN A 127.0.0.1\n{extra}"
                ),
            )
            .unwrap();
            conf.push_str(&format!(
                "zone \"{zone}\" {{ type primary; file \"{d}/{zone}.zone\"; \
                 update-policy {{ grant {KEY_NAME} zonesub ANY; }}; }};\n"
            ));
        }
        std::fs::write(dir.path().join("named.conf"), conf).unwrap();
        let log = std::fs::File::create(dir.path().join("named.log")).unwrap();
        let child = Command::new(named_binary())
            .args(["-g", "-4", "-c"])
            .arg(dir.path().join("named.conf"))
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .expect("could not start named");
        let named = Named {
            child,
            addr: SocketAddr::from((ip, port)),
            dir,
        };
        named.wait_ready(zones.first().map_or(".", |z| z.0));
        named
    }

    fn wait_ready(&self, zone: &str) {
        let deadline = Instant::now() + Duration::from_secs(20);
        while Instant::now() < deadline {
            if wire::query(self.addr, zone, RecordType::SOA, false)
                .is_ok_and(|m| !m.answers.is_empty())
            {
                return;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        panic!("named did not start:\n{}", self.log());
    }

    /// What named logged.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("named.log")).unwrap_or_default()
    }

    /// The values named holds for `owner`/`rtype` (CNAME targets without the trailing dot).
    pub fn values(&self, owner: &str, rtype: RecordType) -> Vec<String> {
        wire::values(self.addr, owner, rtype).unwrap()
    }

    /// The `[dns]` table for an RFC 2136 publisher against this named, checked on it.
    pub fn rfc2136_config(&self, propagation_timeout: u64) -> String {
        format!(
            "\n[dns]\nprovider = \"rfc2136\"\nserver = \"{}\"\ntsig_key_name = \"{KEY_NAME}\"\n\
             tsig_secret = \"{KEY_SECRET}\"\ncheck_servers = [\"{}\"]\npropagation_timeout = \
             {propagation_timeout}\n",
            self.addr, self.addr
        )
    }
}

impl Drop for Named {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
