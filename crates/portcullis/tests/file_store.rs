//! What only the file store promises: permissions, file names, the mtime as deadline, and
//! leaving alone what it did not write. The shared contract is in `store_contract.rs`.
#![cfg(unix)]
#![allow(clippy::unwrap_used)]

use std::fs::{self, File, FileTimes, OpenOptions};
use std::io::Write;
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use portcullis::clock::ManualClock;
use portcullis::store::{
    CasToken, FileStore, SaveOutcome, SessionStore, StoreError, StoreKey, WriteOutcome,
};
use tempfile::TempDir;

const MINUTE: Duration = Duration::from_secs(60);

fn open() -> (FileStore, TempDir) {
    let folder = tempfile::tempdir().unwrap();
    (
        FileStore::open(folder.path().join("sessions")).unwrap(),
        folder,
    )
}

fn key(text: &str) -> StoreKey {
    StoreKey::from_string(text.to_owned())
}

fn mode(path: &Path) -> u32 {
    fs::metadata(path).unwrap().permissions().mode() & 0o777
}

fn mtime(path: &Path) -> SystemTime {
    fs::metadata(path).unwrap().modified().unwrap()
}

fn set_mtime(path: &Path, to: SystemTime) {
    File::open(path)
        .unwrap()
        .set_times(FileTimes::new().set_modified(to))
        .unwrap();
}

fn unix_secs(time: SystemTime) -> u64 {
    time.duration_since(UNIX_EPOCH).unwrap().as_secs()
}

/// Writes a file the way someone other than the store might.
fn plant(path: &Path, mode: u32, content: &[u8], modified: SystemTime) {
    let mut file = OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(mode)
        .open(path)
        .unwrap();
    file.write_all(content).unwrap();
    fs::set_permissions(path, fs::Permissions::from_mode(mode)).unwrap();
    set_mtime(path, modified);
}

/// The folder's entries, but the store's own `.lock` (the writers' OS lock) and `.gitignore`,
/// always there.
fn names_in(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = fs::read_dir(dir)
        .unwrap()
        .map(|entry| entry.unwrap().file_name().into_string().unwrap())
        .filter(|name| name != ".lock" && name != ".gitignore")
        .collect();
    names.sort();
    names
}

#[tokio::test]
async fn the_folder_holds_a_gitignore_of_everything_that_no_sweep_removes() {
    let folder = tempfile::tempdir().unwrap();
    let store = FileStore::open(folder.path()).unwrap();
    let ignore = fs::read_to_string(folder.path().join(".gitignore")).unwrap();
    assert!(ignore.lines().any(|line| line == "*"), "{ignore}");
    assert_eq!(store.purge_expired().await.unwrap(), 0);
    assert!(folder.path().join(".gitignore").exists());
}

#[tokio::test]
async fn folder_is_0700_and_files_are_0600() {
    let folder = tempfile::tempdir().unwrap();
    let nested = folder.path().join("a/b");
    let store = FileStore::open(&nested).unwrap();
    assert_eq!(mode(&nested), 0o700);

    let k = key("sess:perm");
    store
        .create(&k, b"created", SystemTime::now() + MINUTE)
        .await
        .unwrap();
    assert_eq!(mode(&nested.join("sess:perm")), 0o600);
    store
        .save(
            &k,
            &CasToken::new(b"created"),
            b"updated",
            SystemTime::now() + MINUTE,
        )
        .await
        .unwrap();
    assert_eq!(mode(&nested.join("sess:perm")), 0o600);

    let loose = folder.path().join("loose");
    fs::create_dir(&loose).unwrap();
    fs::set_permissions(&loose, fs::Permissions::from_mode(0o755)).unwrap();
    FileStore::open(&loose).unwrap();
    assert_eq!(mode(&loose), 0o700, "an existing folder is tightened");
}

#[tokio::test]
async fn opening_a_file_as_the_folder_is_refused() {
    let folder = tempfile::tempdir().unwrap();
    let file = folder.path().join("not-a-folder");
    fs::write(&file, b"x").unwrap();
    let error = FileStore::open(&file).unwrap_err();
    assert!(matches!(error, StoreError::Unavailable { .. }), "{error:?}");
}

#[tokio::test]
async fn writes_leave_no_temporary_files_behind() {
    let (store, _folder) = open();
    let k = key("sess:tidy");
    let later = SystemTime::now() + MINUTE;
    store.create(&k, b"one", later).await.unwrap();
    store.create(&k, b"refused", later).await.unwrap();
    store
        .save(&k, &CasToken::new(b"one"), b"two", later)
        .await
        .unwrap();
    store
        .save(&k, &CasToken::new(b"one"), b"conflict", later)
        .await
        .unwrap();
    store
        .save(&key("sess:missing"), &CasToken::new(b""), b"refused", later)
        .await
        .unwrap();
    store.ping().await.unwrap();
    assert_eq!(names_in(store.dir()), ["sess:tidy"]);
}

#[tokio::test]
async fn a_torn_tmp_file_is_never_read_as_a_session() {
    let (store, _folder) = open();
    let tmp = store.dir().join(".tmp-xyz");
    plant(&tmp, 0o600, b"half a rec", SystemTime::now() + MINUTE);

    let refused = store.load(&key(".tmp-xyz"), None).await.unwrap_err();
    assert!(
        matches!(refused, StoreError::InvalidKey { .. }),
        "{refused:?}"
    );
    assert_eq!(store.load(&key("sess:xyz"), None).await.unwrap(), None);

    // Fresh or future: a write in progress, kept.
    assert_eq!(store.purge_expired().await.unwrap(), 0);
    set_mtime(&tmp, SystemTime::now() - 5 * MINUTE);
    assert_eq!(store.purge_expired().await.unwrap(), 0);
    assert!(
        tmp.exists(),
        "a temporary file younger than ten minutes is kept"
    );

    // Old: a crashed write, removed (and not counted as a session).
    set_mtime(&tmp, SystemTime::now() - 11 * MINUTE);
    assert_eq!(store.purge_expired().await.unwrap(), 0);
    assert!(
        !tmp.exists(),
        "a temporary file older than ten minutes is removed"
    );
}

#[tokio::test]
async fn a_foreign_file_is_ignored_by_purge_and_never_loaded() {
    let (store, _folder) = open();
    let long_ago = SystemTime::now() - 60 * MINUTE;
    let later = SystemTime::now() + MINUTE;
    let dir = store.dir();
    plant(&dir.join("notes with spaces.txt"), 0o600, b"mine", long_ago);
    plant(&dir.join(".hidden"), 0o600, b"mine", long_ago);
    // A valid key name, but readable by others: the store never writes such a file.
    plant(&dir.join("README.md"), 0o644, b"read me", later);
    fs::create_dir(dir.join("sess:a-folder")).unwrap();
    std::os::unix::fs::symlink("README.md", dir.join("sess:a-link")).unwrap();

    assert_eq!(store.purge_expired().await.unwrap(), 0);
    let left = [
        ".hidden",
        "README.md",
        "notes with spaces.txt",
        "sess:a-folder",
        "sess:a-link",
    ];
    assert_eq!(names_in(dir), left);
    assert_eq!(fs::read(dir.join("README.md")).unwrap(), b"read me");

    for name in ["README.md", "sess:a-folder", "sess:a-link"] {
        assert_eq!(
            store.load(&key(name), Some(later)).await.unwrap(),
            None,
            "{name}"
        );
        let save = store
            .save(&key(name), &CasToken::new(b""), b"x", later)
            .await
            .unwrap();
        assert_eq!(save, SaveOutcome::Gone, "{name}");
        let create = store.create(&key(name), b"x", later).await.unwrap();
        assert_eq!(create, WriteOutcome::NotWritten, "{name}");
    }
    assert_eq!(fs::read(dir.join("README.md")).unwrap(), b"read me");
}

#[tokio::test]
async fn keys_with_path_characters_are_refused() {
    let (store, folder) = open();
    let later = SystemTime::now() + MINUTE;
    let too_long = "a".repeat(201);
    for bad in [
        "sess:../x",
        "a/b",
        "a\\b",
        ".hidden",
        "",
        "..",
        "nul\0byte",
        "sp ace",
        &too_long,
    ] {
        let k = key(bad);
        let errors = [
            store.create(&k, b"x", later).await.unwrap_err(),
            store
                .save(&k, &CasToken::new(b""), b"x", later)
                .await
                .unwrap_err(),
            store.load(&k, Some(later)).await.unwrap_err(),
            store.delete(&k).await.unwrap_err(),
        ];
        for error in errors {
            assert!(
                matches!(error, StoreError::InvalidKey { .. }),
                "{bad:?}: {error:?}"
            );
        }
    }
    assert_eq!(names_in(store.dir()), Vec::<String>::new());
    assert_eq!(names_in(folder.path()), ["sessions"]);

    let longest = key(&"a".repeat(200));
    let outcome = store.create(&longest, b"x", later).await.unwrap();
    assert_eq!(outcome, WriteOutcome::Written, "200 bytes is allowed");
    let hash_tagged = key("{sess}:AbC-_0.9");
    let outcome = store.create(&hash_tagged, b"x", later).await.unwrap();
    assert_eq!(
        outcome,
        WriteOutcome::Written,
        "the whole key alphabet is allowed"
    );
}

#[tokio::test]
async fn mtime_is_the_deadline() {
    let (store, _folder) = open();
    let k = key("sess:deadline");
    let path = store.dir().join("sess:deadline");
    let created = SystemTime::now() + Duration::from_millis(123_456);
    store.create(&k, b"x", created).await.unwrap();
    assert_eq!(unix_secs(mtime(&path)), unix_secs(created));

    let updated = SystemTime::now() + Duration::from_millis(654_321);
    store
        .save(&k, &CasToken::new(b"x"), b"y", updated)
        .await
        .unwrap();
    assert_eq!(unix_secs(mtime(&path)), unix_secs(updated));
}

#[tokio::test]
async fn load_with_slide_touches_mtime() {
    let (store, _folder) = open();
    let k = key("sess:touch");
    let path = store.dir().join("sess:touch");
    store
        .create(&k, b"x", SystemTime::now() + MINUTE)
        .await
        .unwrap();

    let slid = SystemTime::now() + 5 * MINUTE;
    assert!(store.load(&k, Some(slid)).await.unwrap().is_some());
    assert_eq!(unix_secs(mtime(&path)), unix_secs(slid));

    assert!(store.load(&k, None).await.unwrap().is_some());
    assert_eq!(
        unix_secs(mtime(&path)),
        unix_secs(slid),
        "a plain load does not touch"
    );
}

/// Rounds of a sliding load and a delete of one session started together, on real threads
/// (the load on one of two runtime workers, the delete on the blocking pool): whichever lands
/// first, the session ends gone, since a slide touches only the file it opened and never
/// creates one.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_slide_racing_a_delete_never_brings_the_session_back() {
    const ROUNDS: usize = 300;
    let (store, _folder) = open();
    let k = key("sess:slide-delete");
    let path = store.dir().join("sess:slide-delete");
    for round in 0..ROUNDS {
        let deadline = SystemTime::now() + MINUTE;
        store.create(&k, b"live", deadline).await.unwrap();
        let slide = tokio::spawn({
            let (store, k) = (store.clone(), k.clone());
            async move { store.load(&k, Some(deadline + MINUTE)).await }
        });
        let delete = tokio::spawn({
            let (store, k) = (store.clone(), k.clone());
            async move { store.delete(&k).await }
        });
        let loaded = slide.await.unwrap().unwrap();
        assert!(
            delete.await.unwrap().unwrap(),
            "round {round}: nothing to delete"
        );
        assert!(
            matches!(loaded.as_deref(), None | Some(b"live")),
            "round {round}: loaded {loaded:?}"
        );
        assert!(!path.exists(), "round {round}: the session came back");
        assert_eq!(store.load(&k, None).await.unwrap(), None);
    }
}

/// Rounds of a sliding load racing a save of one session: the saved record is never lost nor
/// rolled back, and its deadline is the one its writer set or the slide's, if the slide came
/// after it (never the old file's).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_slide_racing_a_save_never_undoes_it() {
    const ROUNDS: usize = 300;
    let (store, _folder) = open();
    let k = key("sess:slide-save");
    let path = store.dir().join("sess:slide-save");
    let created = SystemTime::now() + MINUTE;
    store.create(&k, b"round 0", created).await.unwrap();
    for round in 1..=ROUNDS {
        let slid = SystemTime::now() + 3 * MINUTE;
        let saved_deadline = SystemTime::now() + 2 * MINUTE;
        let previous = format!("round {}", round - 1);
        let record = format!("round {round}");
        let slide = tokio::spawn({
            let (store, k) = (store.clone(), k.clone());
            async move { store.load(&k, Some(slid)).await }
        });
        let save = tokio::spawn({
            let (store, k, record) = (store.clone(), k.clone(), record.clone());
            let token = CasToken::new(previous.as_bytes());
            async move {
                store
                    .save(&k, &token, record.as_bytes(), saved_deadline)
                    .await
            }
        });
        let loaded = slide.await.unwrap().unwrap().unwrap();
        assert_eq!(save.await.unwrap().unwrap(), SaveOutcome::Saved);
        assert!(
            loaded == previous.as_bytes() || loaded == record.as_bytes(),
            "round {round}: loaded {loaded:?}"
        );
        assert_eq!(fs::read(&path).unwrap(), record.as_bytes());
        let deadline = mtime(&path);
        assert!(
            deadline == saved_deadline || deadline == slid,
            "round {round}: the deadline is neither the save's nor the slide's"
        );
    }
}

#[tokio::test]
async fn expiry_follows_the_stores_clock() {
    let clock = ManualClock::new();
    let (store, _folder) = open();
    let store = store.with_clock(Arc::new(clock.clone()));
    let k = key("sess:clock");
    store
        .create(&k, b"x", SystemTime::now() + MINUTE)
        .await
        .unwrap();
    assert!(store.load(&k, None).await.unwrap().is_some());

    clock.advance(MINUTE + Duration::from_secs(1));
    assert_eq!(store.load(&k, None).await.unwrap(), None);
    let outcome = store
        .save(
            &k,
            &CasToken::new(b""),
            b"y",
            SystemTime::now() + 2 * MINUTE,
        )
        .await
        .unwrap();
    assert_eq!(outcome, SaveOutcome::Gone);
    assert_eq!(store.purge_expired().await.unwrap(), 1);
    assert_eq!(names_in(store.dir()), Vec::<String>::new());
}

#[tokio::test]
async fn stores_opened_twice_on_one_folder_share_it() {
    let (first, _folder) = open();
    let second = FileStore::open(first.dir().join("../sessions")).unwrap();
    assert_eq!(first.dir(), second.dir());
    let k = key("sess:shared");
    first
        .create(&k, b"x", SystemTime::now() + MINUTE)
        .await
        .unwrap();
    assert_eq!(
        second.load(&k, None).await.unwrap().as_deref(),
        Some(&b"x"[..])
    );
}

#[tokio::test]
async fn an_unreadable_record_is_unavailable_not_absent() {
    let (store, _folder) = open();
    // The folder replaced by a file: no record can be opened (ENOTDIR), whoever runs the test
    // (root reads anything). A symbolic link is no longer a case: it is foreign, never opened.
    fs::remove_dir_all(store.dir()).unwrap();
    fs::write(store.dir(), b"not a folder").unwrap();
    let error = store.load(&key("sess:gone"), None).await.unwrap_err();
    let StoreError::Unavailable { source, .. } = error else {
        panic!("{error:?}")
    };
    assert!(
        source.downcast_ref::<std::io::Error>().is_some(),
        "{source:?}"
    );
}

#[tokio::test]
async fn ping_fails_once_the_folder_is_gone() {
    let (store, _folder) = open();
    store.ping().await.unwrap();
    fs::remove_dir_all(store.dir()).unwrap();
    assert!(matches!(
        store.ping().await,
        Err(StoreError::Unavailable { .. })
    ));
    fs::write(store.dir(), b"now a file").unwrap();
    assert!(matches!(
        store.ping().await,
        Err(StoreError::Unavailable { .. })
    ));
}

#[tokio::test]
async fn the_sweeper_purges_in_the_background() {
    let clock = ManualClock::new();
    let (store, _folder) = open();
    let store = store.with_clock(Arc::new(clock.clone()));
    let k = key("sess:swept");
    store
        .create(&k, b"x", SystemTime::now() + MINUTE)
        .await
        .unwrap();
    clock.advance(2 * MINUTE);

    // Zero is raised to the minimum period instead of panicking; the first sweep is at once.
    let sweeper = store.spawn_sweeper(Duration::ZERO);
    let give_up = SystemTime::now() + Duration::from_secs(5);
    while !names_in(store.dir()).is_empty() {
        assert!(SystemTime::now() < give_up, "the sweeper did not purge");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(!sweeper.is_finished(), "the sweeper keeps running");
    sweeper.abort();
}
