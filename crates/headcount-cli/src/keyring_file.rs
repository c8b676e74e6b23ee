//! `--keyring-file`: the agent's encryption keys kept on disk, in Serf's
//! format (a JSON array of base64 keys, the primary first), so that keys
//! installed, made primary or removed through the API survive a restart
//! and an operator can edit the file and send SIGHUP.

use std::io::Write;
use std::path::{Path, PathBuf};

use base64::Engine;
use headcount::{Key, Memberlist};

/// Largest keyring file read (a keyring of 32-byte keys is 47 bytes a key).
const MAX_FILE: u64 = 64 * 1024;

/// Most keys a file may hold.
const MAX_KEYS: usize = 256;

/// The keyring file of an agent.
#[derive(Clone, Debug)]
pub struct KeyringFile {
    path: PathBuf,
}

impl KeyringFile {
    /// The file at `path` (it need not exist yet).
    pub fn new(path: impl Into<PathBuf>) -> Self {
        KeyringFile { path: path.into() }
    }

    /// Its path.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Reads the keys, primary first; `None` when the file does not exist.
    pub fn load(&self) -> Result<Option<Vec<Vec<u8>>>, String> {
        let shown = self.path.display();
        let file = match std::fs::File::open(&self.path) {
            Ok(f) => f,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(format!("keyring file {shown}: {e}")),
        };
        let mut text = String::new();
        use std::io::Read;
        file.take(MAX_FILE + 1)
            .read_to_string(&mut text)
            .map_err(|e| format!("keyring file {shown}: {e}"))?;
        if text.len() as u64 > MAX_FILE {
            return Err(format!(
                "keyring file {shown}: larger than {MAX_FILE} bytes"
            ));
        }
        parse(&text)
            .map(Some)
            .map_err(|e| format!("keyring file {shown}: {e}"))
    }

    /// Writes `keys` (primary first), replacing the file atomically, readable
    /// by its owner only.
    pub fn save<K: AsRef<[u8]>>(&self, keys: &[K]) -> Result<(), String> {
        let encoded: Vec<String> = keys
            .iter()
            .map(|k| base64::engine::general_purpose::STANDARD.encode(k.as_ref()))
            .collect();
        let text = serde_json::to_string_pretty(&encoded).expect("strings serialise");
        let shown = self.path.display();
        let mut tmp = self.path.clone().into_os_string();
        tmp.push(".tmp");
        let tmp = PathBuf::from(tmp);
        let mut opts = std::fs::OpenOptions::new();
        opts.write(true).create(true).truncate(true);
        #[cfg(unix)]
        {
            use std::os::unix::fs::OpenOptionsExt;
            opts.mode(0o600);
        }
        let write = || -> std::io::Result<()> {
            let mut f = opts.open(&tmp)?;
            f.write_all(text.as_bytes())?;
            f.write_all(b"\n")?;
            f.sync_all()?;
            std::fs::rename(&tmp, &self.path)
        };
        write().map_err(|e| format!("cannot write the keyring file {shown}: {e}"))
    }

    /// Writes the node's current keys to the file (after an API change).
    /// Nothing is written while the node has no keys.
    pub async fn save_from(&self, ml: &Memberlist) -> Result<(), String> {
        let keys = ml.keys().await.map_err(|e| e.to_string())?;
        if keys.is_empty() {
            return Ok(());
        }
        let keys: Vec<&[u8]> = keys.iter().map(Key::as_bytes).collect();
        self.save(&keys)
    }

    /// Makes the node's keyring what the file says (SIGHUP): installs the
    /// keys it lacks, makes the file's first key the primary, removes the
    /// keys the file no longer lists. Returns a summary for the log.
    pub async fn apply_to(&self, ml: &Memberlist) -> Result<String, String> {
        let Some(want) = self.load()? else {
            return Err(format!(
                "keyring file {} does not exist",
                self.path.display()
            ));
        };
        let have: Vec<Vec<u8>> = ml
            .keys()
            .await
            .map_err(|e| e.to_string())?
            .iter()
            .map(|k| k.as_bytes().to_vec())
            .collect();
        let (mut added, mut removed) = (0, 0);
        for k in want.iter().filter(|k| !have.contains(k)) {
            ml.add_key(k).await.map_err(|e| format!("install: {e}"))?;
            added += 1;
        }
        let primary_changed = have.first() != want.first();
        ml.use_key(&want[0])
            .await
            .map_err(|e| format!("use: {e}"))?;
        for k in have.iter().filter(|k| !want.contains(k)) {
            ml.remove_key(k).await.map_err(|e| format!("remove: {e}"))?;
            removed += 1;
        }
        Ok(format!(
            "{} keys: {added} installed, {removed} removed, primary {}",
            want.len(),
            if primary_changed {
                "changed"
            } else {
                "unchanged"
            }
        ))
    }
}

/// Parses Serf's keyring format: a non-empty JSON array of base64 keys of
/// 16, 24 or 32 bytes, without duplicates.
fn parse(text: &str) -> Result<Vec<Vec<u8>>, String> {
    let list: Vec<String> =
        serde_json::from_str(text).map_err(|e| format!("not a JSON array of base64 keys ({e})"))?;
    if list.is_empty() {
        return Err("holds no key".into());
    }
    if list.len() > MAX_KEYS {
        return Err(format!("holds {} keys; at most {MAX_KEYS}", list.len()));
    }
    let mut keys: Vec<Vec<u8>> = Vec::with_capacity(list.len());
    for (i, k) in list.iter().enumerate() {
        let key = crate::agent::parse_key(k).map_err(|e| format!("key {}: {e}", i + 1))?;
        if keys.contains(&key) {
            return Err(format!("key {} appears twice", i + 1));
        }
        keys.push(key);
    }
    Ok(keys)
}

#[cfg(test)]
mod tests {
    use super::*;

    const K16: &str = "AAAAAAAAAAAAAAAAAAAAAA==";
    const K32: &str = "T9jncgl9mbLus+baTTa7q7nPSUrXwbDi2dhbtqir37s=";

    #[test]
    fn parses_serfs_format_and_refuses_bad_files() {
        let keys = parse(&format!("[\"{K32}\", \"{K16}\"]")).unwrap();
        assert_eq!((keys.len(), keys[0].len(), keys[1].len()), (2, 32, 16));
        for (bad, why) in [
            ("[]", "holds no key"),
            ("{}", "not a JSON array"),
            ("[\"abc\"]", "key 1"),
            ("[\"AAAA\"]", "key 1"),
            (&format!("[\"{K16}\",\"{K16}\"]") as &str, "twice"),
        ] {
            let e = parse(bad).unwrap_err();
            assert!(e.contains(why), "{bad}: {e}");
        }
    }

    #[test]
    fn load_save_round_trip_and_missing_file() {
        let dir = std::env::temp_dir().join(format!("headcount-keyring-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let f = KeyringFile::new(dir.join("keyring.json"));
        let _ = std::fs::remove_file(f.path());
        assert_eq!(f.load().unwrap(), None);
        let keys = parse(&format!("[\"{K32}\", \"{K16}\"]")).unwrap();
        f.save(&keys).unwrap();
        assert_eq!(f.load().unwrap(), Some(keys));
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(f.path()).unwrap().permissions().mode();
            assert_eq!(mode & 0o777, 0o600);
        }
        std::fs::write(f.path(), "x".repeat(MAX_FILE as usize + 1)).unwrap();
        assert!(f.load().unwrap_err().contains("larger than"));
        let _ = std::fs::remove_dir_all(&dir);
    }
}
