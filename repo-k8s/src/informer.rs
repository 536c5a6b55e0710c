//! Informers: a local copy of the objects of one resource, kept current by kube-rs's
//! watcher (a list, then a watch from the list's resourceVersion, listed again when the
//! server says the version is gone (410), with backoff while the server is unreachable).
//!
//! Informers made together run on one thread of their own with one tokio runtime and
//! client, so the synchronous rest of cairn reads the copies without calls to the API
//! server, and waits on [`Changes`] instead of polling.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};

use futures::StreamExt;
use kube::api::{Api, DynamicObject};
use kube::runtime::watcher::{self, Event};
use kube::runtime::WatchStreamExt;

use crate::cluster::Cluster;
use crate::discovery::Resource;
use crate::object::Object;

/// A counter that informers bump on every change they see, to wait on.
#[derive(Default)]
pub struct Changes {
    seen: Mutex<u64>,
    changed: Condvar,
}

impl Changes {
    pub fn new() -> Arc<Changes> {
        Arc::new(Changes::default())
    }

    /// The number of changes so far.
    pub fn count(&self) -> u64 {
        *self.seen.lock().expect("not poisoned")
    }

    /// Waits until the count passes `seen` or `timeout` passes; returns the count.
    pub fn wait_past(&self, seen: u64, timeout: Duration) -> u64 {
        let guard = self.seen.lock().expect("not poisoned");
        let (guard, _) = self
            .changed
            .wait_timeout_while(guard, timeout, |n| *n <= seen)
            .expect("not poisoned");
        *guard
    }

    /// Wakes whoever waits (a change, or a reason to look again).
    pub fn bump(&self) {
        *self.seen.lock().expect("not poisoned") += 1;
        self.changed.notify_all();
    }
}

type Key = (String, String);

#[derive(Default)]
struct Copy {
    objects: BTreeMap<Key, Object>,
    /// Whether the first list has been read.
    synced: bool,
    /// The last error the watcher met (it keeps trying).
    error: Option<String>,
}

/// The objects of one resource (in one namespace, or all), as the API server last said.
/// Informers made together share one thread, runtime and connection; it stops when the last
/// of them is dropped.
pub struct Informer {
    copy: Arc<Mutex<Copy>>,
    _group: Arc<Group>,
}

/// The thread of a set of informers.
struct Group {
    stop: Arc<tokio::sync::Notify>,
    stopped: Arc<AtomicBool>,
    thread: Mutex<Option<std::thread::JoinHandle<()>>>,
}

impl Drop for Group {
    fn drop(&mut self) {
        self.stopped.store(true, Ordering::Relaxed);
        self.stop.notify_one();
        if let Some(t) = self.thread.lock().expect("not poisoned").take() {
            let _ = t.join();
        }
    }
}

impl Informer {
    /// The objects now, by namespace and name.
    pub fn objects(&self) -> Vec<Object> {
        self.lock().objects.values().cloned().collect()
    }

    /// How many objects there are.
    pub fn len(&self) -> usize {
        self.lock().objects.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// One object, if it exists.
    pub fn get(&self, ns: Option<&str>, name: &str) -> Option<Object> {
        let key = (ns.unwrap_or("").to_string(), name.to_string());
        self.lock().objects.get(&key).cloned()
    }

    /// Whether the first list has been read (before that, the copy is empty).
    pub fn is_synced(&self) -> bool {
        self.lock().synced
    }

    /// Waits for the first list for up to `timeout`; the watcher's last error if it has not
    /// come.
    pub fn wait_synced(&self, timeout: Duration) -> Result<(), String> {
        let deadline = Instant::now() + timeout;
        loop {
            {
                let c = self.lock();
                if c.synced {
                    return Ok(());
                }
                if Instant::now() >= deadline {
                    return Err(c.error.clone().unwrap_or_else(|| {
                        "no answer from the API server to the first list".into()
                    }));
                }
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Copy> {
        self.copy.lock().expect("not poisoned")
    }
}

fn key(d: &DynamicObject) -> Key {
    (
        d.metadata.namespace.clone().unwrap_or_default(),
        d.metadata.name.clone().unwrap_or_default(),
    )
}

impl Cluster {
    /// Starts an informer for `r` (in `ns`, or everywhere), bumping `changes` on each change.
    pub fn informer(&self, r: &Resource, ns: Option<&str>, changes: Arc<Changes>) -> Informer {
        let mut one = self.informers(&[(r.clone(), ns.map(str::to_string))], changes);
        one.pop().expect("one asked for")
    }

    /// Starts informers for each resource (in its namespace, or everywhere), on one
    /// thread with one connection, bumping `changes` on each change.
    pub fn informers(
        &self,
        wanted: &[(Resource, Option<String>)],
        changes: Arc<Changes>,
    ) -> Vec<Informer> {
        let copies: Vec<Arc<Mutex<Copy>>> = wanted.iter().map(|_| Arc::default()).collect();
        let stop = Arc::new(tokio::sync::Notify::new());
        let stopped = Arc::new(AtomicBool::new(false));
        let (config, wanted) = (self.config.clone(), wanted.to_vec());
        let (c, s, st) = (copies.clone(), stop.clone(), stopped.clone());
        let thread = std::thread::Builder::new()
            .name("informers".into())
            .spawn(move || watch(config, &wanted, &c, &s, &st, &changes))
            .expect("a thread starts");
        let group = Arc::new(Group {
            stop,
            stopped,
            thread: Mutex::new(Some(thread)),
        });
        copies
            .into_iter()
            .map(|copy| Informer {
                copy,
                _group: group.clone(),
            })
            .collect()
    }
}

fn watch(
    config: kube::Config,
    wanted: &[(Resource, Option<String>)],
    copies: &[Arc<Mutex<Copy>>],
    stop: &tokio::sync::Notify,
    stopped: &AtomicBool,
    changes: &Changes,
) {
    let set_error = |e: String| {
        for c in copies {
            c.lock().expect("not poisoned").error = Some(e.clone());
        }
    };
    let rt = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => return set_error(format!("starting the informers' runtime: {e}")),
    };
    rt.block_on(async {
        let client = match kube::Client::try_from(config) {
            Ok(c) => c,
            Err(e) => return set_error(format!("connecting: {e}")),
        };
        let streams = wanted.iter().enumerate().map(|(i, (r, ns))| {
            let ar = crate::cluster::api_resource(r);
            let api: Api<DynamicObject> = match ns {
                Some(ns) if r.namespaced => Api::namespaced_with(client.clone(), ns, &ar),
                _ => Api::all_with(client.clone(), &ar),
            };
            watcher::watcher(api, watcher::Config::default().page_size(500))
                .default_backoff()
                .map(move |e| (i, e))
                .boxed()
        });
        let mut all = futures::stream::select_all(streams);
        let mut listing: Vec<BTreeMap<Key, Object>> = vec![BTreeMap::new(); wanted.len()];
        while !stopped.load(Ordering::Relaxed) {
            let next = tokio::select! {
                _ = stop.notified() => break,
                e = all.next() => e,
            };
            let Some((i, event)) = next else {
                break;
            };
            let r = &wanted[i].0;
            let to_object = |d: DynamicObject| crate::cluster::to_object(d, r).ok();
            let mut c = copies[i].lock().expect("not poisoned");
            match event {
                Err(e) => {
                    c.error = Some(format!("watching {}: {e}", r.group_resource()));
                    continue;
                }
                Ok(Event::Init) => listing[i].clear(),
                Ok(Event::InitApply(d)) => {
                    let k = key(&d);
                    if let Some(o) = to_object(d) {
                        listing[i].insert(k, o);
                    }
                    continue;
                }
                Ok(Event::InitDone) => {
                    c.objects = std::mem::take(&mut listing[i]);
                    c.synced = true;
                    c.error = None;
                }
                Ok(Event::Apply(d)) => {
                    let k = key(&d);
                    if let Some(o) = to_object(d) {
                        c.objects.insert(k, o);
                    }
                }
                Ok(Event::Delete(d)) => {
                    c.objects.remove(&key(&d));
                }
            }
            drop(c);
            changes.bump();
        }
    });
}
