//! The local CA of `dev up`: one CA per dev directory (shared by both
//! clusters of `--zones 2`, so each zone trusts the other's gateways), and a
//! certificate per gateway for `127.0.0.1` and `localhost`. For a laptop
//! only: the CA key sits beside the certificate (mode 0600).

use anyhow::Context as _;
use rcgen::{
    BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair,
    KeyUsagePurpose,
};
use std::path::{Path, PathBuf};

/// A dev CA: its certificate file and the issuer that signs with its key.
pub struct DevCa {
    /// PEM certificate clients trust (`--ca-bundle`, `tls_ca_file`).
    pub cert_path: PathBuf,
    issuer: Issuer<'static, KeyPair>,
}

/// The CA's fixed subject: a reloaded key signs under the same name.
fn ca_params() -> anyhow::Result<CertificateParams> {
    let mut p = CertificateParams::new(Vec::<String>::new())?;
    p.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    p.distinguished_name
        .push(DnType::CommonName, "Meridian dev CA");
    p.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
    Ok(p)
}

/// Writes `text` to `path`, readable by the owner only when `secret`.
fn write_file(path: &Path, text: &str, secret: bool) -> anyhow::Result<()> {
    use std::io::Write as _;
    use std::os::unix::fs::OpenOptionsExt as _;
    let mode = if secret { 0o600 } else { 0o644 };
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(mode)
        .open(path)
        .with_context(|| format!("write {}", path.display()))?;
    f.write_all(text.as_bytes())
        .with_context(|| format!("write {}", path.display()))
}

impl DevCa {
    /// The CA in `dir` (`ca.pem`, `ca.key`), created when absent.
    pub fn ensure(dir: &Path) -> anyhow::Result<DevCa> {
        std::fs::create_dir_all(dir).with_context(|| format!("create {}", dir.display()))?;
        let cert_path = dir.join("ca.pem");
        let key_path = dir.join("ca.key");
        let params = ca_params()?;
        let key = if cert_path.exists() && key_path.exists() {
            let pem = std::fs::read_to_string(&key_path)
                .with_context(|| format!("read {}", key_path.display()))?;
            KeyPair::from_pem(&pem).with_context(|| format!("parse {}", key_path.display()))?
        } else {
            let key = KeyPair::generate()?;
            let cert = params.self_signed(&key)?;
            write_file(&key_path, &key.serialize_pem(), true)?;
            write_file(&cert_path, &cert.pem(), false)?;
            key
        };
        Ok(DevCa {
            cert_path,
            issuer: Issuer::new(params, key),
        })
    }

    /// A server certificate for `names` (IP addresses or DNS names) as
    /// `dir/NAME.pem` and `dir/NAME.key`; kept if it exists.
    pub fn issue(
        &self,
        dir: &Path,
        name: &str,
        names: &[&str],
    ) -> anyhow::Result<(PathBuf, PathBuf)> {
        std::fs::create_dir_all(dir).with_context(|| format!("create {}", dir.display()))?;
        let cert_path = dir.join(format!("{name}.pem"));
        let key_path = dir.join(format!("{name}.key"));
        if cert_path.exists() && key_path.exists() {
            return Ok((cert_path, key_path));
        }
        let mut p =
            CertificateParams::new(names.iter().map(|n| n.to_string()).collect::<Vec<_>>())?;
        p.distinguished_name.push(DnType::CommonName, name);
        p.key_usages = vec![
            KeyUsagePurpose::DigitalSignature,
            KeyUsagePurpose::KeyEncipherment,
        ];
        p.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
        p.use_authority_key_identifier_extension = true;
        let key = KeyPair::generate()?;
        let cert = p.signed_by(&key, &self.issuer)?;
        write_file(&key_path, &key.serialize_pem(), true)?;
        write_file(&cert_path, &cert.pem(), false)?;
        Ok((cert_path, key_path))
    }
}
