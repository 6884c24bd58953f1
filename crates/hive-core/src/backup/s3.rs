//! The optional S3-compatible target: every archive is uploaded after it is made, and
//! retention lists and deletes there by the same rules as in the backup directory. The
//! endpoint is the operator's configuration (like `DATABASE_URL`), not a user's input, so it is
//! reached directly, not through the egress guard.

use super::{BackupError, BackupInfo, created_at_of};
use crate::kernel::config::BackupS3Config;
use futures_util::StreamExt;
use object_store::aws::{AmazonS3, AmazonS3Builder};
use object_store::path::Path as ObjectPath;
use object_store::{ObjectStore, ObjectStoreExt};
use secrecy::ExposeSecret;
use std::path::Path;
use std::sync::Arc;
use tokio::io::AsyncWriteExt;

pub struct S3Target {
    store: Arc<AmazonS3>,
    prefix: String,
}

impl std::fmt::Debug for S3Target {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("S3Target")
            .field("prefix", &self.prefix)
            .finish_non_exhaustive()
    }
}

/// A failure at the bucket, said without its credentials (the client's errors carry none).
fn failed(what: &str, error: impl std::fmt::Display) -> BackupError {
    BackupError::Failed(format!("S3 {what}: {error}"))
}

impl S3Target {
    pub fn new(config: &BackupS3Config) -> Result<Self, BackupError> {
        let mut builder = AmazonS3Builder::new()
            .with_bucket_name(&config.bucket)
            .with_region(&config.region)
            .with_access_key_id(&config.access_key_id)
            .with_secret_access_key(config.secret_access_key.expose_secret());
        if let Some(endpoint) = &config.endpoint {
            builder = builder
                .with_endpoint(endpoint.as_str().trim_end_matches('/'))
                // Services other than AWS take the bucket in the path.
                .with_virtual_hosted_style_request(false)
                .with_allow_http(endpoint.scheme() == "http");
        }
        let store = builder.build().map_err(|e| failed("configuration", e))?;
        Ok(Self {
            store: Arc::new(store),
            prefix: config.prefix.clone(),
        })
    }

    fn key(&self, name: &str) -> ObjectPath {
        if self.prefix.is_empty() {
            ObjectPath::from(name)
        } else {
            ObjectPath::from(format!("{}/{name}", self.prefix))
        }
    }

    /// Uploads the archive at `file` as `name` (in parts when it is large).
    pub async fn upload(&self, file: &Path, name: &str) -> Result<(), BackupError> {
        let mut source = tokio::fs::File::open(file)
            .await
            .map_err(|e| failed("upload", e))?;
        let store: Arc<dyn ObjectStore> = Arc::clone(&self.store) as Arc<dyn ObjectStore>;
        let mut writer = object_store::buffered::BufWriter::new(store, self.key(name));
        let copied = tokio::io::copy(&mut source, &mut writer).await;
        if let Err(error) = copied {
            let _ = writer.abort().await;
            return Err(failed("upload", error));
        }
        writer.shutdown().await.map_err(|e| failed("upload", e))
    }

    /// The archives in the bucket (under the prefix), newest first.
    pub async fn list(&self) -> Result<Vec<BackupInfo>, BackupError> {
        let prefix = (!self.prefix.is_empty()).then(|| ObjectPath::from(self.prefix.as_str()));
        let mut listing = self.store.list(prefix.as_ref());
        let mut found = Vec::new();
        while let Some(object) = listing.next().await {
            let object = object.map_err(|e| failed("list", e))?;
            let Some(name) = object.location.filename() else {
                continue;
            };
            if let Some(created_at) = created_at_of(name) {
                found.push(BackupInfo {
                    name: name.to_owned(),
                    bytes: object.size,
                    created_at,
                });
            }
        }
        super::newest_first(&mut found);
        Ok(found)
    }

    pub async fn delete(&self, names: &[String]) -> Result<(), BackupError> {
        for name in names {
            match self.store.delete(&self.key(name)).await {
                Ok(()) | Err(object_store::Error::NotFound { .. }) => {}
                Err(error) => return Err(failed("delete", error)),
            }
        }
        Ok(())
    }
}
