//! A self-signed certificate, so tapir can serve HTTPS before anyone has a
//! certificate from a CA. Clients trust it by being pointed at the
//! certificate file itself.

use std::fs::{self, OpenOptions};
use std::io::{self, Write};
use std::path::{Path, PathBuf};

use rcgen::{CertificateParams, DistinguishedName, DnType, ExtendedKeyUsagePurpose, KeyPair};
use time::OffsetDateTime;

/// Names used when the caller gives none: what a local client dials.
const DEFAULT_HOSTS: [&str; 3] = ["localhost", "127.0.0.1", "::1"];

const COMMON_NAME: &str = "tapir self-signed";

/// Apple's platforms reject server certificates valid for longer.
const VALIDITY_DAYS: i64 = 825;

const CERT_FILE: &str = "tapir-cert.pem";
const KEY_FILE: &str = "tapir-key.pem";

/// A certificate and its private key, both PEM-encoded.
pub struct SelfSigned {
    pub cert_pem: String,
    pub key_pem: String,
}

/// Makes a certificate for `hosts` (IP addresses become IP names, anything
/// else a DNS name), valid from now for 825 days, with a fresh P-256 key.
pub fn generate(hosts: &[String]) -> Result<SelfSigned, rcgen::Error> {
    let key = KeyPair::generate()?;
    let cert = params(hosts)?.self_signed(&key)?;
    Ok(SelfSigned {
        cert_pem: cert.pem(),
        key_pem: key.serialize_pem(),
    })
}

fn params(hosts: &[String]) -> Result<CertificateParams, rcgen::Error> {
    let names: Vec<String> = if hosts.is_empty() {
        DEFAULT_HOSTS.map(String::from).to_vec()
    } else {
        // Lists typed as "a, b" would otherwise yield names with spaces in them.
        hosts.iter().map(|host| host.trim().to_owned()).collect()
    };
    // rcgen makes an IP name of whatever parses as an address.
    let mut params = CertificateParams::new(names)?;
    let mut subject = DistinguishedName::new();
    subject.push(DnType::CommonName, COMMON_NAME);
    params.distinguished_name = subject;
    let now = OffsetDateTime::now_utc();
    params.not_before = now;
    params.not_after = now + time::Duration::days(VALIDITY_DAYS);
    params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
    Ok(params)
}

/// Writes `tapir-cert.pem` and `tapir-key.pem` into `dir`, creating it, and
/// returns their paths (certificate first).
///
/// Existing files are never replaced: a pair that was handed out to clients
/// must not change under them. The key is created readable by its owner only.
pub fn write_pair(pair: &SelfSigned, dir: &Path) -> io::Result<(PathBuf, PathBuf)> {
    fs::create_dir_all(dir).map_err(|error| {
        io::Error::new(
            error.kind(),
            format!("cannot create {}: {error}", dir.display()),
        )
    })?;
    let cert = dir.join(CERT_FILE);
    let key = dir.join(KEY_FILE);
    // Both are checked before either is written, so a refusal writes nothing.
    for path in [&cert, &key] {
        if fs::symlink_metadata(path).is_ok() {
            return Err(already_exists(path));
        }
    }
    write_new(&key, &pair.key_pem, owner_only())?;
    if let Err(error) = write_new(&cert, &pair.cert_pem, OpenOptions::new()) {
        // A key without its certificate would only make the next attempt refuse.
        let _ = fs::remove_file(&key);
        return Err(error);
    }
    Ok((cert, key))
}

fn owner_only() -> OpenOptions {
    #[cfg_attr(not(unix), allow(unused_mut))]
    let mut options = OpenOptions::new();
    // Set at creation: a chmod afterwards would leave a moment where others can read the key.
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    options
}

fn write_new(path: &Path, contents: &str, mut options: OpenOptions) -> io::Result<()> {
    // create_new still refuses if the file appeared since the check in write_pair.
    let written = options
        .write(true)
        .create_new(true)
        .open(path)
        .and_then(|mut file| file.write_all(contents.as_bytes()));
    written.map_err(|error| match error.kind() {
        io::ErrorKind::AlreadyExists => already_exists(path),
        kind => io::Error::new(kind, format!("cannot write {}: {error}", path.display())),
    })
}

fn already_exists(path: &Path) -> io::Error {
    io::Error::new(
        io::ErrorKind::AlreadyExists,
        format!("{} already exists; not replacing it", path.display()),
    )
}

#[cfg(test)]
mod tests {
    use std::net::IpAddr;

    use x509_parser::extensions::GeneralName;
    use x509_parser::pem::parse_x509_pem;

    use super::*;

    fn hosts(names: &[&str]) -> Vec<String> {
        names.iter().map(|name| name.to_string()).collect()
    }

    /// The subject alternative names as text, IP names parsed back to addresses.
    fn names_in(cert_pem: &str) -> (Vec<String>, Vec<IpAddr>) {
        let (_, pem) = parse_x509_pem(cert_pem.as_bytes()).unwrap();
        let cert = pem.parse_x509().unwrap();
        let san = cert.subject_alternative_name().unwrap().unwrap();
        let mut dns = Vec::new();
        let mut ips = Vec::new();
        for name in &san.value.general_names {
            match name {
                GeneralName::DNSName(host) => dns.push(host.to_string()),
                GeneralName::IPAddress(octets) => ips.push(match octets.len() {
                    4 => IpAddr::from(<[u8; 4]>::try_from(*octets).unwrap()),
                    _ => IpAddr::from(<[u8; 16]>::try_from(*octets).unwrap()),
                }),
                other => panic!("unexpected name {other:?}"),
            }
        }
        (dns, ips)
    }

    #[test]
    fn names_the_given_hosts_by_kind() {
        let pair = generate(&hosts(&["tapir.example", " 10.1.2.3", "fe80::1"])).unwrap();
        let (dns, ips) = names_in(&pair.cert_pem);
        assert_eq!(dns, ["tapir.example"]);
        assert_eq!(
            ips,
            [
                "10.1.2.3".parse::<IpAddr>().unwrap(),
                "fe80::1".parse().unwrap()
            ]
        );
    }

    #[test]
    fn defaults_to_the_local_names() {
        let pair = generate(&[]).unwrap();
        let (dns, ips) = names_in(&pair.cert_pem);
        assert_eq!(dns, ["localhost"]);
        assert_eq!(
            ips,
            [
                "127.0.0.1".parse::<IpAddr>().unwrap(),
                "::1".parse().unwrap()
            ]
        );
    }

    #[test]
    fn has_the_tapir_name_and_825_days_from_now() {
        let before = OffsetDateTime::now_utc().unix_timestamp();
        let pair = generate(&hosts(&["localhost"])).unwrap();
        let (_, pem) = parse_x509_pem(pair.cert_pem.as_bytes()).unwrap();
        let cert = pem.parse_x509().unwrap();
        let common_name = cert.subject().iter_common_name().next().unwrap();
        assert_eq!(common_name.as_str().unwrap(), "tapir self-signed");
        assert_eq!(cert.subject(), cert.issuer());
        let not_before = cert.validity().not_before.timestamp();
        let not_after = cert.validity().not_after.timestamp();
        // X.509 times have whole seconds; allow the test's own run time.
        assert!((before - 1..=before + 60).contains(&not_before));
        assert_eq!(not_after - not_before, 825 * 24 * 60 * 60);
        assert!(pair.key_pem.starts_with("-----BEGIN PRIVATE KEY-----"));
    }

    #[test]
    fn rejects_a_name_that_cannot_be_a_dns_name() {
        assert!(matches!(
            generate(&hosts(&["tâpir.example"])),
            Err(rcgen::Error::InvalidAsn1String(_))
        ));
    }

    #[test]
    fn writes_the_pair_into_a_new_directory() {
        let dir = tempfile::tempdir().unwrap();
        let target = dir.path().join("tls");
        let pair = generate(&[]).unwrap();
        let (cert, key) = write_pair(&pair, &target).unwrap();
        assert_eq!(cert, target.join("tapir-cert.pem"));
        assert_eq!(key, target.join("tapir-key.pem"));
        assert_eq!(fs::read_to_string(&cert).unwrap(), pair.cert_pem);
        assert_eq!(fs::read_to_string(&key).unwrap(), pair.key_pem);
    }

    #[test]
    fn names_a_directory_it_cannot_create() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("file");
        fs::write(&file, "").unwrap();
        let target = file.join("tls");
        let error = write_pair(&generate(&[]).unwrap(), &target).unwrap_err();
        assert!(
            error.to_string().contains(&target.display().to_string()),
            "{error}"
        );
    }

    #[cfg(unix)]
    #[test]
    fn only_the_owner_can_read_the_key() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let (_, key) = write_pair(&generate(&[]).unwrap(), dir.path()).unwrap();
        let mode = fs::metadata(key).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
    }

    #[test]
    fn refuses_to_replace_a_pair() {
        let dir = tempfile::tempdir().unwrap();
        let first = generate(&[]).unwrap();
        let (cert, key) = write_pair(&first, dir.path()).unwrap();
        let error = write_pair(&generate(&[]).unwrap(), dir.path()).unwrap_err();
        assert_eq!(error.kind(), io::ErrorKind::AlreadyExists);
        assert!(error.to_string().contains(&cert.display().to_string()));
        assert_eq!(fs::read_to_string(&cert).unwrap(), first.cert_pem);
        assert_eq!(fs::read_to_string(&key).unwrap(), first.key_pem);
    }

    #[test]
    fn an_existing_key_alone_blocks_the_certificate_too() {
        let dir = tempfile::tempdir().unwrap();
        let key = dir.path().join("tapir-key.pem");
        fs::write(&key, "someone's key").unwrap();
        let error = write_pair(&generate(&[]).unwrap(), dir.path()).unwrap_err();
        assert_eq!(error.kind(), io::ErrorKind::AlreadyExists);
        assert!(error.to_string().contains(&key.display().to_string()));
        assert!(!dir.path().join("tapir-cert.pem").exists());
        assert_eq!(fs::read_to_string(&key).unwrap(), "someone's key");
    }
}
