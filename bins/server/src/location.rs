//! A BackupStorageLocation as a cairn repository: which storage URL and settings its
//! provider and config mean, which Secret holds its password, and whether backups may be
//! written there. Velero's providers map to cairn's storage: `aws` (S3 and S3-compatibles)
//! to `s3://`, `gcp` to `gs://`, `azure` to `az://`, and cairn's `filesystem` (for tests
//! and single machines) to a directory.

use repo_core::storage::StorageOptions;
use repo_k8s::velero::{BackupStorageLocation, BackupStorageLocationAccessMode};

/// The Secret holding a location's repository password unless the location names another
/// (Velero's, so an existing install's Secret is used).
pub const PASSWORD_SECRET: &str = "velero-repo-credentials";
/// The key of the password in that Secret.
pub const PASSWORD_KEY: &str = "repository-password";
/// Annotation naming another Secret for a location's password.
pub const PASSWORD_SECRET_ANNOTATION: &str = "cairn.io/repository-password-secret";

/// Where a location's repository is and how to reach it.
#[derive(Debug)]
pub struct Target {
    /// What `repo_core::storage::open_url` opens.
    pub url: String,
    pub storage: StorageOptions,
    /// The Secret (in the location's namespace) and key of the repository password.
    pub password_secret: (String, String),
    /// `accessMode: ReadOnly`: restores only.
    pub read_only: bool,
}

/// Maps a location to its repository. `credentials`: the content of the Secret key
/// `spec.credential` names, if it names one. Errors say what to change in the location.
pub fn target(bsl: &BackupStorageLocation, credentials: Option<&str>) -> Result<Target, String> {
    let spec = &bsl.spec;
    let provider = spec
        .provider
        .strip_prefix("velero.io/")
        .unwrap_or(&spec.provider);
    let bucket = spec.object_storage.bucket.trim_matches('/');
    if bucket.is_empty() {
        return Err("spec.objectStorage.bucket is empty; name the bucket (or, for the filesystem provider, the directory under config.path)".into());
    }
    let prefix = spec
        .object_storage
        .prefix
        .as_deref()
        .unwrap_or("")
        .trim_matches('/');
    let path = if prefix.is_empty() {
        bucket.to_string()
    } else {
        format!("{bucket}/{prefix}")
    };
    if spec.object_storage.ca_cert.is_some() || spec.object_storage.ca_cert_ref.is_some() {
        return Err("a custom CA (caCert, caCertRef) is not supported yet; use a store whose certificate the system trusts".into());
    }
    let config = |k: &str| spec.config.get(k).map(String::as_str);
    let mut storage = StorageOptions::default();
    let url = match provider {
        "aws" => {
            if config("insecureSkipTLSVerify") == Some("true") {
                return Err("config.insecureSkipTLSVerify is refused: cairn does not skip TLS verification (use http:// for a test store, or a certificate the system trusts)".into());
            }
            storage.s3_region = config("region").map(str::to_string);
            if let Some(endpoint) = config("s3Url") {
                storage.s3_endpoint = Some(endpoint.to_string());
                storage.s3_allow_http = Some(endpoint.starts_with("http://"));
            }
            // Velero's default is virtual-hosted requests for AWS itself; S3-compatible
            // stores (an s3Url) and s3ForcePathStyle use path style.
            let path_style = config("s3ForcePathStyle") == Some("true") || config("s3Url").is_some();
            storage.s3_virtual_hosted = Some(!path_style);
            if let Some(text) = credentials {
                let profile = config("profile").unwrap_or("default");
                let creds = crate::credentials::parse_aws(text, profile)
                    .map_err(|e| format!("the credentials Secret: {e}"))?;
                storage.s3_credentials = Some(creds);
            }
            format!("s3://{path}")
        }
        "gcp" | "azure" if credentials.is_some() => {
            return Err(format!(
                "credentials for {provider} from a Secret are not supported yet; give the server workload identity (its environment) and remove spec.credential"
            ))
        }
        "gcp" => format!("gs://{path}"),
        "azure" => format!("az://{path}"),
        "filesystem" => {
            let Some(root) = config("path") else {
                return Err("the filesystem provider needs config.path, the directory that holds the bucket directories".into());
            };
            format!("{}/{path}", root.trim_end_matches('/'))
        }
        other => {
            return Err(format!(
                "provider {other:?} is not one cairn serves; use aws (S3 and S3-compatible stores), gcp, azure or filesystem"
            ))
        }
    };
    let secret = bsl
        .metadata
        .annotations
        .get(PASSWORD_SECRET_ANNOTATION)
        .cloned()
        .unwrap_or_else(|| PASSWORD_SECRET.to_string());
    Ok(Target {
        url,
        storage,
        password_secret: (secret, PASSWORD_KEY.to_string()),
        read_only: spec.access_mode == Some(BackupStorageLocationAccessMode::ReadOnly),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use repo_k8s::velero::{BackupStorageLocationSpec, ObjectStorageLocation};

    fn bsl(
        provider: &str,
        bucket: &str,
        prefix: Option<&str>,
        config: &[(&str, &str)],
    ) -> BackupStorageLocation {
        BackupStorageLocation::new(
            "default",
            "velero",
            BackupStorageLocationSpec {
                provider: provider.into(),
                config: config
                    .iter()
                    .map(|(k, v)| (k.to_string(), v.to_string()))
                    .collect(),
                object_storage: ObjectStorageLocation {
                    bucket: bucket.into(),
                    prefix: prefix.map(str::to_string),
                    ..Default::default()
                },
                ..Default::default()
            },
        )
    }

    /// The location of Velero's own example (tilt-resources velero_v1_backupstoragelocation):
    /// MinIO through the aws provider.
    #[test]
    fn veleros_minio_example_maps_to_an_s3_repository() {
        let b = bsl(
            "aws",
            "velero",
            None,
            &[
                ("region", "minio"),
                ("s3ForcePathStyle", "true"),
                ("s3Url", "http://minio.velero.svc:9000"),
            ],
        );
        let creds = "[default]\naws_access_key_id = minio\naws_secret_access_key = minio123\n";
        let t = target(&b, Some(creds)).unwrap();
        assert_eq!(t.url, "s3://velero");
        assert_eq!(
            t.storage.s3_endpoint.as_deref(),
            Some("http://minio.velero.svc:9000")
        );
        assert_eq!(t.storage.s3_region.as_deref(), Some("minio"));
        assert_eq!(
            (t.storage.s3_allow_http, t.storage.s3_virtual_hosted),
            (Some(true), Some(false))
        );
        assert_eq!(t.storage.s3_credentials.unwrap().access_key_id, "minio");
        assert_eq!(
            t.password_secret,
            (PASSWORD_SECRET.into(), PASSWORD_KEY.into())
        );
        assert!(!t.read_only);
    }

    #[test]
    fn providers_prefixes_and_refusals() {
        assert_eq!(
            target(&bsl("velero.io/aws", "b", Some("/team/a/"), &[]), None)
                .unwrap()
                .url,
            "s3://b/team/a"
        );
        let aws = target(&bsl("aws", "b", None, &[]), None).unwrap();
        assert_eq!(
            aws.storage.s3_virtual_hosted,
            Some(true),
            "AWS itself: virtual-hosted"
        );
        assert_eq!(
            target(&bsl("gcp", "b", Some("p"), &[]), None).unwrap().url,
            "gs://b/p"
        );
        assert_eq!(
            target(&bsl("azure", "c", None, &[]), None).unwrap().url,
            "az://c"
        );
        assert_eq!(
            target(
                &bsl("filesystem", "b", Some("p"), &[("path", "/srv/backups/")]),
                None
            )
            .unwrap()
            .url,
            "/srv/backups/b/p"
        );
        let err = |b: BackupStorageLocation, c: Option<&str>| target(&b, c).unwrap_err();
        assert!(err(bsl("filesystem", "b", None, &[]), None).contains("config.path"));
        assert!(err(bsl("nfs", "b", None, &[]), None).contains("not one cairn serves"));
        assert!(err(bsl("aws", "", None, &[]), None).contains("bucket is empty"));
        assert!(err(
            bsl("aws", "b", None, &[("insecureSkipTLSVerify", "true")]),
            None
        )
        .contains("refused"));
        assert!(err(
            bsl("aws", "b", None, &[("profile", "x")]),
            Some("[default]\n")
        )
        .contains("no [x] section"));
        // Another password Secret by annotation; read-only locations.
        let mut b = bsl("aws", "b", None, &[]);
        b.metadata
            .annotations
            .insert(PASSWORD_SECRET_ANNOTATION.into(), "mine".into());
        b.spec.access_mode = Some(BackupStorageLocationAccessMode::ReadOnly);
        let t = target(&b, None).unwrap();
        assert_eq!(t.password_secret.0, "mine");
        assert!(t.read_only);
    }
}
