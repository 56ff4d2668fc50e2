//! Where the CLI finds its token: `--token`/`TAPIR_TOKEN`, then the token saved by
//! `tapir login`, then the administrator token that a server on this machine leaves in its
//! data directory (readable only by the OS user that runs it).

use std::path::{Path, PathBuf};

use anyhow::{Context, Result};

use crate::serve::{LOCAL_TOKEN_FILE, default_data_dir};

/// The file `tapir login` writes: `$XDG_CONFIG_HOME/tapir/token` or `~/.config/tapir/token`.
pub fn saved_token_path() -> Option<PathBuf> {
    let config = std::env::var_os("XDG_CONFIG_HOME")
        .filter(|d| !d.is_empty())
        .map(PathBuf::from)
        .or_else(|| {
            std::env::var_os("HOME")
                .filter(|h| !h.is_empty())
                .map(|h| PathBuf::from(h).join(".config"))
        })?;
    Some(config.join("tapir").join("token"))
}

fn read_token(path: &Path) -> Option<String> {
    let text = std::fs::read_to_string(path).ok()?;
    let token = text.trim();
    (!token.is_empty()).then(|| token.to_owned())
}

/// The token to use, if any: given, saved by a login, or left by a local server.
pub fn find_token(given: Option<String>, data_dir: Option<&Path>) -> Option<String> {
    given
        .filter(|t| !t.trim().is_empty())
        .or_else(|| saved_token_path().as_deref().and_then(read_token))
        .or_else(|| {
            let dir = data_dir.map_or_else(default_data_dir, Path::to_path_buf);
            read_token(&dir.join(LOCAL_TOKEN_FILE))
        })
}

/// Saves a login's token for later commands, readable by this OS user only.
pub fn save_token(token: &str) -> Result<PathBuf> {
    let path = saved_token_path().context("neither XDG_CONFIG_HOME nor HOME is set")?;
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
    }
    write_secret(&path, token)?;
    Ok(path)
}

/// Replaces `path` with `secret`, readable by this OS user only. The file is created with
/// that mode, never widened and narrowed afterwards, so no other user can open it meanwhile.
pub fn write_secret(path: &Path, secret: &str) -> Result<()> {
    let _ = std::fs::remove_file(path);
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    let mut file = options
        .open(path)
        .with_context(|| format!("cannot write {}", path.display()))?;
    std::io::Write::write_all(&mut file, secret.as_bytes())
        .with_context(|| format!("cannot write {}", path.display()))
}

/// Forgets the saved login token.
pub fn forget_token() -> Option<PathBuf> {
    let path = saved_token_path()?;
    std::fs::remove_file(&path).ok().map(|()| path)
}

/// A password from `TAPIR_PASSWORD`, or the first line of standard input.
pub fn read_password() -> Result<String> {
    if let Ok(password) = std::env::var("TAPIR_PASSWORD") {
        return Ok(password);
    }
    eprint!("password: ");
    let mut line = String::new();
    std::io::stdin()
        .read_line(&mut line)
        .context("cannot read the password from standard input")?;
    Ok(line.trim_end_matches(['\r', '\n']).to_owned())
}
