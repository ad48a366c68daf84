//! The local archive: a directory on the server's own disk, the default outside AWS.
//!
//! Each object is a file, and each `/` in its name a subdirectory. Nothing is ever
//! overwritten: a body is written and flushed to a temporary file beside its final name,
//! then hard-linked into place, which fails if the name exists — so a crash leaves either
//! no object or the whole object, and two writers racing for one name cannot both win.
//! Directories are 0700 and files 0400.
//!
//! This is write-once against Portico's own mistakes, not against an administrator of the
//! machine: anyone who can become the `portico` user can delete the files. Deployments
//! that need more keep the directory on storage with its own retention, or use S3.

use std::fs::{self, DirBuilder, File, OpenOptions};
use std::io::{self, ErrorKind, Write};
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

use async_trait::async_trait;
use portico_platform::audit::archive::{ArchiveError, ArchiveSink};

use super::{check_name, prefix_folder};

/// Tells apart the temporary files of one process; the process id tells apart processes.
static TEMP_COUNTER: AtomicU64 = AtomicU64::new(0);

/// An archive in a local directory.
#[derive(Debug, Clone)]
pub struct LocalArchive {
    dir: PathBuf,
}

impl LocalArchive {
    /// An archive in `dir`, which is created (mode 0700) if it does not exist.
    pub fn new(dir: PathBuf) -> Result<Self, ArchiveError> {
        DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(&dir)
            .map_err(|err| io_error("create the directory", &dir, err))?;

        Ok(Self { dir })
    }

    /// The directory objects are kept in.
    pub fn dir(&self) -> &Path {
        &self.dir
    }
}

#[async_trait]
impl ArchiveSink for LocalArchive {
    fn describe(&self) -> String {
        self.dir.display().to_string()
    }

    async fn put(&self, name: &str, body: &[u8]) -> Result<(), ArchiveError> {
        check_name(name)?;
        let (root, name, body) = (self.dir.clone(), name.to_owned(), body.to_vec());

        blocking(move || put_file(&root, &name, &body)).await
    }

    async fn get(&self, name: &str) -> Result<Option<Vec<u8>>, ArchiveError> {
        check_name(name)?;
        let path = self.dir.join(name);

        blocking(move || read_if_present(&path)).await
    }

    async fn list(&self, prefix: &str) -> Result<Vec<String>, ArchiveError> {
        let folder = prefix_folder(prefix)?;
        let (root, folder, prefix) = (self.dir.clone(), folder.to_owned(), prefix.to_owned());

        blocking(move || {
            let mut names = Vec::new();
            walk(&root.join(&folder), &folder, &mut names)?;
            names.retain(|name| name.starts_with(&prefix));
            names.sort();
            Ok(names)
        })
        .await
    }
}

/// Runs file-system work off the async threads.
async fn blocking<T, F>(work: F) -> Result<T, ArchiveError>
where
    F: FnOnce() -> Result<T, ArchiveError> + Send + 'static,
    T: Send + 'static,
{
    tokio::task::spawn_blocking(work)
        .await
        .map_err(|err| ArchiveError::Other(format!("the local archive task failed: {err}")))?
}

/// Stores `body` as `root/name` unless a file of that name exists already.
fn put_file(root: &Path, name: &str, body: &[u8]) -> Result<(), ArchiveError> {
    let path = root.join(name);
    if let Some(existing) = read_if_present(&path)? {
        return same_or_exists(name, &existing, body);
    }

    let folder = path.parent().unwrap_or(root);
    create_folders(root, folder)?;
    let temp = write_temp(folder, body)?;

    // `link` never replaces an existing name: the atomic check-and-create.
    let linked = fs::hard_link(&temp, &path);
    if let Err(err) = fs::remove_file(&temp) {
        tracing::warn!(error = %err, "could not remove a temporary file of the local archive");
    }
    match linked {
        Ok(()) => sync_folder(folder),
        Err(err) if err.kind() == ErrorKind::AlreadyExists => {
            let existing = fs::read(&path).map_err(|err| io_error("read", &path, err))?;
            same_or_exists(name, &existing, body)
        }
        Err(err) => Err(io_error("link", &path, err)),
    }
}

/// Writing the same bytes twice is a success; anything else would be an overwrite.
fn same_or_exists(name: &str, existing: &[u8], body: &[u8]) -> Result<(), ArchiveError> {
    if existing == body {
        Ok(())
    } else {
        Err(ArchiveError::Exists(name.to_owned()))
    }
}

/// Creates the folders between `root` and `folder` (0700), making each new entry durable.
fn create_folders(root: &Path, folder: &Path) -> Result<(), ArchiveError> {
    let relative = folder.strip_prefix(root).unwrap_or(Path::new(""));
    let mut current = root.to_path_buf();
    for part in relative.components() {
        let parent = current.clone();
        current.push(part);
        match DirBuilder::new().mode(0o700).create(&current) {
            Ok(()) => sync_folder(&parent)?,
            Err(err) if err.kind() == ErrorKind::AlreadyExists => {}
            Err(err) => return Err(io_error("create the directory", &current, err)),
        }
    }

    Ok(())
}

/// Writes `body` to a new hidden file in `folder` (mode 0400) and flushes it to disk.
fn write_temp(folder: &Path, body: &[u8]) -> Result<PathBuf, ArchiveError> {
    // A file left by a crashed process may hold a name: take the next one.
    for _ in 0..64 {
        let n = TEMP_COUNTER.fetch_add(1, Ordering::Relaxed);
        let temp = folder.join(format!(".tmp-{}-{n}", std::process::id()));
        let mut file = match OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o400)
            .open(&temp)
        {
            Ok(file) => file,
            Err(err) if err.kind() == ErrorKind::AlreadyExists => continue,
            Err(err) => return Err(io_error("create", &temp, err)),
        };

        let written = file.write_all(body).and_then(|()| file.sync_all());
        if let Err(err) = written {
            let _ = fs::remove_file(&temp);
            return Err(io_error("write", &temp, err));
        }
        return Ok(temp);
    }

    Err(ArchiveError::Other(format!(
        "no free temporary file name in {}",
        folder.display()
    )))
}

/// Flushes a directory, so the names just added to it survive a power cut.
fn sync_folder(folder: &Path) -> Result<(), ArchiveError> {
    File::open(folder)
        .and_then(|dir| dir.sync_all())
        .map_err(|err| io_error("flush the directory", folder, err))
}

/// A file's contents, or `None` if there is no such file.
fn read_if_present(path: &Path) -> Result<Option<Vec<u8>>, ArchiveError> {
    match fs::read(path) {
        Ok(body) => Ok(Some(body)),
        Err(err) if matches!(err.kind(), ErrorKind::NotFound | ErrorKind::NotADirectory) => {
            Ok(None)
        }
        Err(err) => Err(io_error("read", path, err)),
    }
}

/// Adds to `names` every file under `dir`, as `folder` followed by its relative path.
/// Hidden entries (temporary files) and names that are not UTF-8 are no objects.
fn walk(dir: &Path, folder: &str, names: &mut Vec<String>) -> Result<(), ArchiveError> {
    let entries = match fs::read_dir(dir) {
        Ok(entries) => entries,
        Err(err) if matches!(err.kind(), ErrorKind::NotFound | ErrorKind::NotADirectory) => {
            return Ok(());
        }
        Err(err) => return Err(io_error("list", dir, err)),
    };
    for entry in entries {
        let entry = entry.map_err(|err| io_error("list", dir, err))?;
        let Ok(file_name) = entry.file_name().into_string() else {
            continue;
        };
        if file_name.starts_with('.') {
            continue;
        }
        let kind = entry
            .file_type()
            .map_err(|err| io_error("list", &entry.path(), err))?;
        let name = format!("{folder}{file_name}");
        if kind.is_dir() {
            walk(&entry.path(), &format!("{name}/"), names)?;
        } else if kind.is_file() {
            names.push(name);
        }
    }

    Ok(())
}

/// Refused permissions and read-only disks are the operator's to fix; anything else
/// (a full disk, a missing mount, an I/O error) may pass, and is worth retrying.
fn io_error(action: &str, path: &Path, err: io::Error) -> ArchiveError {
    let message = format!("cannot {action} {}: {err}", path.display());
    match err.kind() {
        ErrorKind::PermissionDenied
        | ErrorKind::ReadOnlyFilesystem
        | ErrorKind::NotADirectory
        | ErrorKind::IsADirectory => ArchiveError::Other(message),
        kind => ArchiveError::Unavailable(Box::new(io::Error::new(kind, message))),
    }
}

#[cfg(test)]
mod tests {
    use std::os::unix::fs::PermissionsExt;
    use std::sync::Arc;

    use super::*;

    const CHECKPOINT: &str =
        "audit/01a23cdf-d215-73c9-b312-0ca8e43e8f19/checkpoints/00000000000000000007.json";

    fn archive() -> (tempfile::TempDir, LocalArchive) {
        let temp = tempfile::tempdir().unwrap();
        let archive = LocalArchive::new(temp.path().join("archive")).unwrap();
        (temp, archive)
    }

    fn mode(path: &Path) -> u32 {
        fs::metadata(path).unwrap().permissions().mode() & 0o777
    }

    #[tokio::test]
    async fn an_object_reads_back_from_a_read_only_file_in_private_directories() {
        let (_temp, archive) = archive();

        archive.put(CHECKPOINT, br#"{"seq":7}"#).await.unwrap();

        let got = archive.get(CHECKPOINT).await.unwrap();
        assert_eq!(got.as_deref(), Some(&br#"{"seq":7}"#[..]));
        assert_eq!(mode(archive.dir()), 0o700);
        assert_eq!(mode(&archive.dir().join("audit")), 0o700);
        assert_eq!(
            mode(archive.dir().join(CHECKPOINT).parent().unwrap()),
            0o700
        );
        assert_eq!(mode(&archive.dir().join(CHECKPOINT)), 0o400);
        assert_eq!(archive.describe(), archive.dir().display().to_string());
    }

    #[tokio::test]
    async fn a_missing_object_is_none() {
        let (_temp, archive) = archive();

        assert_eq!(archive.get(CHECKPOINT).await.unwrap(), None);
        assert_eq!(archive.get("audit").await.unwrap(), None);
    }

    #[tokio::test]
    async fn the_same_bytes_again_succeed_and_different_bytes_are_refused() {
        let (_temp, archive) = archive();
        archive.put(CHECKPOINT, b"first").await.unwrap();

        archive.put(CHECKPOINT, b"first").await.unwrap();
        let err = archive.put(CHECKPOINT, b"second").await.unwrap_err();

        assert!(
            matches!(&err, ArchiveError::Exists(name) if name == CHECKPOINT),
            "{err:?}"
        );
        let got = archive.get(CHECKPOINT).await.unwrap();
        assert_eq!(got.as_deref(), Some(&b"first"[..]));
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn of_writers_racing_for_one_name_exactly_one_wins() {
        let (_temp, archive) = archive();
        let archive = Arc::new(archive);

        let writers: Vec<_> = (0..16)
            .map(|i| {
                let archive = Arc::clone(&archive);
                tokio::spawn(
                    async move { archive.put("race", format!("body {i}").as_bytes()).await },
                )
            })
            .collect();
        let mut won = Vec::new();
        for (i, writer) in writers.into_iter().enumerate() {
            match writer.await.unwrap() {
                Ok(()) => won.push(i),
                Err(ArchiveError::Exists(_)) => {}
                Err(err) => panic!("{err:?}"),
            }
        }

        assert_eq!(won.len(), 1, "{won:?}");
        let got = archive.get("race").await.unwrap().unwrap();
        assert_eq!(got, format!("body {}", won[0]).into_bytes());
    }

    #[tokio::test]
    async fn listing_is_sorted_recursive_filtered_and_skips_temporary_files() {
        let (_temp, archive) = archive();
        for name in [
            "audit/t1/segments/00000000000000000011-00000000000000000020.ndjson",
            "audit/t1/checkpoints/00000000000000000010.json",
            "audit/t1/checkpoints/00000000000000000002.json",
            "audit/t2/checkpoints/00000000000000000001.json",
        ] {
            archive.put(name, b"x").await.unwrap();
        }
        // What a crash between writing and linking leaves behind.
        fs::write(archive.dir().join("audit/t1/checkpoints/.tmp-1-1"), b"x").unwrap();

        assert_eq!(
            archive.list("audit/t1/checkpoints/").await.unwrap(),
            [
                "audit/t1/checkpoints/00000000000000000002.json",
                "audit/t1/checkpoints/00000000000000000010.json",
            ]
        );
        assert_eq!(
            archive.list("audit/t1/").await.unwrap(),
            [
                "audit/t1/checkpoints/00000000000000000002.json",
                "audit/t1/checkpoints/00000000000000000010.json",
                "audit/t1/segments/00000000000000000011-00000000000000000020.ndjson",
            ]
        );
        assert_eq!(
            archive
                .list("audit/t1/checkpoints/0000000000000000001")
                .await
                .unwrap(),
            ["audit/t1/checkpoints/00000000000000000010.json"]
        );
        assert_eq!(archive.list("audit/t").await.unwrap().len(), 4);
        assert_eq!(archive.list("").await.unwrap().len(), 4);
        assert!(archive.list("audit/t3/").await.unwrap().is_empty());
    }

    #[tokio::test]
    async fn names_that_leave_the_directory_are_refused_everywhere() {
        let (_temp, archive) = archive();

        for name in ["../escape", "/etc/passwd", "a//b", "a/"] {
            let err = archive.put(name, b"x").await.unwrap_err();
            assert!(matches!(err, ArchiveError::Other(_)), "{name}: {err:?}");
            let err = archive.get(name).await.unwrap_err();
            assert!(matches!(err, ArchiveError::Other(_)), "{name}: {err:?}");
        }
        for prefix in ["../", "/etc/", "a//"] {
            let err = archive.list(prefix).await.unwrap_err();
            assert!(matches!(err, ArchiveError::Other(_)), "{prefix}: {err:?}");
        }
        assert!(!archive.dir().parent().unwrap().join("escape").exists());
    }

    #[tokio::test]
    async fn a_name_under_an_existing_object_is_a_configuration_error() {
        let (_temp, archive) = archive();
        archive.put("a", b"x").await.unwrap();

        let err = archive.put("a/b", b"y").await.unwrap_err();

        assert!(matches!(err, ArchiveError::Other(_)), "{err:?}");
    }

    #[test]
    fn an_existing_directory_is_kept() {
        let temp = tempfile::tempdir().unwrap();
        fs::write(temp.path().join("kept"), b"x").unwrap();

        let archive = LocalArchive::new(temp.path().to_path_buf()).unwrap();

        assert!(archive.dir().join("kept").exists());
    }
}
