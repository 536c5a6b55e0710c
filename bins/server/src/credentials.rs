//! The credentials a BackupStorageLocation's Secret holds, in the format Velero's AWS
//! plugin reads (an AWS shared credentials file: `[profile]` sections of `key = value`).

use repo_core::storage::S3Credentials;

/// Reads `profile` (Velero's `config.profile`, default `default`) of an AWS credentials
/// file. Errors say which key or section is missing, never a secret's value.
pub fn parse_aws(text: &str, profile: &str) -> Result<S3Credentials, String> {
    let mut section: Option<&str> = None;
    let mut found = false;
    let (mut id, mut secret, mut token) = (None, None, None);
    for line in text.lines() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') || line.starts_with(';') {
            continue;
        }
        if let Some(name) = line.strip_prefix('[').and_then(|l| l.strip_suffix(']')) {
            // `[profile x]` is the config file's spelling; accept it too.
            let name = name.trim();
            section = Some(name.strip_prefix("profile ").unwrap_or(name).trim());
            found |= section == Some(profile);
            continue;
        }
        if section != Some(profile) {
            continue;
        }
        let Some((k, v)) = line.split_once('=') else {
            continue;
        };
        let v = v.trim().to_string();
        match k.trim().to_ascii_lowercase().as_str() {
            "aws_access_key_id" => id = Some(v),
            "aws_secret_access_key" => secret = Some(v),
            "aws_session_token" => token = Some(v).filter(|t| !t.is_empty()),
            _ => {}
        }
    }
    if !found {
        return Err(format!(
            "the credentials have no [{profile}] section (an AWS credentials file, as Velero's AWS plugin reads)"
        ));
    }
    match (id, secret) {
        (Some(access_key_id), Some(secret_access_key)) => Ok(S3Credentials {
            access_key_id,
            secret_access_key,
            session_token: token,
        }),
        (None, _) => Err(format!("[{profile}] has no aws_access_key_id")),
        (_, None) => Err(format!("[{profile}] has no aws_secret_access_key")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn aws_credentials_files_as_velero_writes_them() {
        let text = "[default]\naws_access_key_id=minio\naws_secret_access_key = minio123\n\n[other]\naws_access_key_id = a\naws_secret_access_key = b\naws_session_token = t\n";
        let c = parse_aws(text, "default").unwrap();
        assert_eq!(
            (c.access_key_id.as_str(), c.secret_access_key.as_str()),
            ("minio", "minio123")
        );
        assert_eq!(c.session_token, None);
        let o = parse_aws(text, "other").unwrap();
        assert_eq!(o.session_token.as_deref(), Some("t"));
        assert!(parse_aws(text, "missing")
            .unwrap_err()
            .contains("no [missing] section"));
        let e = parse_aws("[default]\naws_access_key_id=x\n", "default").unwrap_err();
        assert!(
            e.contains("aws_secret_access_key") && !e.contains("x\n"),
            "{e}"
        );
        // Secrets never in Debug output.
        assert!(!format!("{c:?}").contains("minio123"));
    }
}
