//! Trees: one directory each, serialized deterministically as JSON so an unchanged directory
//! is the same blob.
//!
//! Names are bytes. A name that is valid UTF-8 is stored as a JSON string; any other name as
//! `{"hex": "…"}`. Decoding rejects names a restore could be tricked by: empty, `.`, `..`,
//! or containing `/` or NUL.

use serde::{Deserialize, Serialize};

use crate::{BlobId, Error, Result};

/// Bytes that are usually text: serialized as a JSON string when valid UTF-8, otherwise as
/// `{"hex": "…"}`. Used for names, symlink targets and extended attributes.
#[derive(Clone, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct ByteString(pub Vec<u8>);

impl ByteString {
    pub fn display(&self) -> String {
        String::from_utf8_lossy(&self.0).into_owned()
    }
}

fn serialize_bytes<S: serde::Serializer>(
    bytes: &[u8],
    s: S,
) -> std::result::Result<S::Ok, S::Error> {
    match std::str::from_utf8(bytes) {
        Ok(text) => s.serialize_str(text),
        Err(_) => {
            use serde::ser::SerializeMap;
            let mut m = s.serialize_map(Some(1))?;
            m.serialize_entry("hex", &hex::encode(bytes))?;
            m.end()
        }
    }
}

impl Serialize for ByteString {
    fn serialize<S: serde::Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
        serialize_bytes(&self.0, s)
    }
}

impl<'de> Deserialize<'de> for ByteString {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Repr {
            Text(String),
            Hex { hex: String },
        }
        Ok(ByteString(match Repr::deserialize(d)? {
            Repr::Text(t) => t.into_bytes(),
            Repr::Hex { hex } => hex::decode(hex).map_err(serde::de::Error::custom)?,
        }))
    }
}

/// An entry name, as bytes.
#[derive(Clone, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Name(pub Vec<u8>);

impl Name {
    /// Checks the name is a single safe path component.
    pub fn validate(&self) -> std::result::Result<(), String> {
        let n = &self.0;
        if n.is_empty() || n == b"." || n == b".." {
            return Err(format!(
                "entry name {:?} is not a file name",
                String::from_utf8_lossy(n)
            ));
        }
        if n.contains(&b'/') || n.contains(&0) {
            return Err(format!(
                "entry name {:?} contains '/' or NUL",
                String::from_utf8_lossy(n)
            ));
        }
        Ok(())
    }

    pub fn display(&self) -> String {
        String::from_utf8_lossy(&self.0).into_owned()
    }
}

impl Serialize for Name {
    fn serialize<S: serde::Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
        serialize_bytes(&self.0, s)
    }
}

impl<'de> Deserialize<'de> for Name {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
        let name = Name(ByteString::deserialize(d)?.0);
        name.validate().map_err(serde::de::Error::custom)?;
        Ok(name)
    }
}

/// One chunk of a file's content: the blob and its plaintext length. A chunk whose id is all
/// zeros is a *hole*: that many zero bytes, stored nowhere (sparse files).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChunkRef(pub BlobId, pub u32);

impl ChunkRef {
    /// A hole of `len` zero bytes.
    pub fn hole(len: u32) -> Self {
        ChunkRef(BlobId::default(), len)
    }

    pub fn is_hole(&self) -> bool {
        self.0 == BlobId::default()
    }
}

/// The chunk list of a stream stored as an object: a tree-kind blob whose id is the object's
/// id. JSON `{"size": N, "chunks": [[id, len], …]}`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ContentList {
    pub size: u64,
    pub chunks: Vec<ChunkRef>,
}

impl ContentList {
    pub fn encode(&self) -> Vec<u8> {
        serde_json::to_vec(self).expect("content list serializes")
    }

    /// Decodes a content list and checks the lengths add up to `size`.
    pub fn decode(bytes: &[u8], blob: BlobId) -> Result<Self> {
        let c: ContentList =
            serde_json::from_slice(bytes).map_err(|e| Error::corrupt_blob("object", blob, e))?;
        let sum: u64 = c.chunks.iter().map(|c| c.1 as u64).sum();
        if sum != c.size {
            return Err(Error::corrupt_blob(
                "object",
                blob,
                format!("chunks hold {sum} bytes but the object says {}", c.size),
            ));
        }
        Ok(c)
    }
}

/// What kind of entry a node is.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum NodeKind {
    #[default]
    File,
    Dir,
    Symlink,
    /// Block device (metadata only: `rdev`).
    BlockDev,
    /// Character device (metadata only: `rdev`).
    CharDev,
    Fifo,
    /// A Unix socket: recorded so the tree is complete, never restored (nothing could listen
    /// on it).
    Socket,
}

/// One extended attribute.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Xattr {
    pub name: ByteString,
    pub value: ByteString,
}

fn is_zero<T: Default + PartialEq>(v: &T) -> bool {
    *v == T::default()
}

/// One entry of a directory. Every field but `name` and `type` is optional in the JSON, so
/// streams and older trees stay valid.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Node {
    pub name: Name,
    #[serde(rename = "type")]
    pub kind: NodeKind,
    /// File size in bytes, holes included.
    #[serde(default)]
    pub size: u64,
    /// Permission bits and set-id/sticky bits (`st_mode & 0o7777`).
    #[serde(default)]
    pub mode: u32,
    /// Modification time, RFC 3339 with nanoseconds.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub mtime: String,
    /// Status change time, RFC 3339 (compared, never restored: the kernel sets it).
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub ctime: String,
    #[serde(default, skip_serializing_if = "is_zero")]
    pub uid: u32,
    #[serde(default, skip_serializing_if = "is_zero")]
    pub gid: u32,
    /// Owner's user name, when the backup host knew it.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub user: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub group: String,
    /// Inode and device of the source, for change detection and hardlinks.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub inode: u64,
    #[serde(default, skip_serializing_if = "is_zero")]
    pub device: u64,
    /// Hard link count; entries with `links > 1` and the same `(device, inode)` are one file.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub links: u64,
    /// Device number of a block or character device.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub rdev: u64,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub xattrs: Vec<Xattr>,
    /// File content, in order.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub content: Vec<ChunkRef>,
    /// Directory content.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub subtree: Option<BlobId>,
    /// Symlink target.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub link_target: Option<ByteString>,
}

impl Node {
    /// The stored chunks of a file's content (holes left out).
    pub fn data_chunks(&self) -> impl Iterator<Item = &ChunkRef> {
        self.content.iter().filter(|c| !c.is_hole())
    }
}

/// Most entries one tree blob holds; a larger directory is split into parts.
pub const MAX_TREE_NODES: usize = 8192;

/// Longest hole one chunk reference records: a backup cuts longer holes into several.
/// Longer is a crafted or damaged tree.
pub const MAX_HOLE: u32 = 1 << 30;

/// Deepest directory nesting a reader accepts; deeper is a crafted or damaged snapshot.
/// Linux paths (4,096 bytes) allow about 2,000 levels.
pub const MAX_DEPTH: usize = 4096;

/// A directory: nodes sorted by name, names unique. A large directory is stored as a tree
/// of `parts` (tree blobs whose nodes, concatenated in order, are the directory), and no
/// nodes of its own.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Tree {
    pub nodes: Vec<Node>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub parts: Vec<BlobId>,
}

impl Tree {
    /// Sorts nodes by name so equal directories serialize to equal bytes.
    pub fn normalize(&mut self) {
        self.nodes.sort_by(|a, b| a.name.cmp(&b.name));
    }

    pub fn encode(&self) -> Vec<u8> {
        serde_json::to_vec(self).expect("tree serializes")
    }

    /// Decodes and validates a tree blob.
    pub fn decode(bytes: &[u8], blob: BlobId) -> Result<Self> {
        let t: Tree =
            serde_json::from_slice(bytes).map_err(|e| Error::corrupt_blob("tree", blob, e))?;
        if !t.parts.is_empty() && !t.nodes.is_empty() {
            return Err(Error::corrupt_blob(
                "tree",
                blob,
                "a split directory has nodes of its own",
            ));
        }
        if t.nodes.len() > MAX_TREE_NODES || t.parts.len() > MAX_TREE_NODES {
            return Err(Error::corrupt_blob(
                "tree",
                blob,
                format!("more than {MAX_TREE_NODES} entries in one tree blob"),
            ));
        }
        for w in t.nodes.windows(2) {
            if w[0].name >= w[1].name {
                return Err(Error::corrupt_blob(
                    "tree",
                    blob,
                    format!("names not sorted and unique at {:?}", w[1].name.display()),
                ));
            }
        }
        for n in &t.nodes {
            let content: u64 = n.content.iter().map(|c| c.1 as u64).sum();
            let long_hole = n.content.iter().find(|c| c.is_hole() && c.1 > MAX_HOLE);
            let bad = match n.kind {
                NodeKind::File if n.size > i64::MAX as u64 => {
                    Some(format!("has size {}, more than a file can have", n.size))
                }
                NodeKind::File if long_hole.is_some() => Some(format!(
                    "has a hole of {} bytes, more than the {MAX_HOLE} one entry records",
                    long_hole.map_or(0, |c| c.1)
                )),
                NodeKind::File => (content != n.size)
                    .then(|| format!("has size {} but {content} bytes of content", n.size)),
                NodeKind::Dir => n
                    .subtree
                    .is_none()
                    .then(|| "is a directory without a subtree".to_string()),
                NodeKind::Symlink => n
                    .link_target
                    .is_none()
                    .then(|| "is a symlink without a target".to_string()),
                _ => None,
            }
            .or_else(|| {
                (n.kind != NodeKind::File && !n.content.is_empty())
                    .then(|| "is not a file but has content".to_string())
            });
            if let Some(why) = bad {
                return Err(Error::corrupt_blob(
                    "tree",
                    blob,
                    format!("entry {:?} {why}", n.name.display()),
                ));
            }
        }
        Ok(t)
    }

    /// The node with this name (in a tree that is not split).
    pub fn get(&self, name: &[u8]) -> Option<&Node> {
        self.nodes
            .binary_search_by(|n| n.name.0.as_slice().cmp(name))
            .ok()
            .map(|i| &self.nodes[i])
    }

    /// Tree blobs this tree points to: subdirectories and parts.
    pub fn child_trees(&self) -> impl Iterator<Item = BlobId> + '_ {
        self.parts.iter().copied().chain(
            self.nodes
                .iter()
                .filter(|n| n.kind == NodeKind::Dir)
                .filter_map(|n| n.subtree),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hostile_names_are_rejected() {
        for bad in [
            r#""""#,
            r#"".""#,
            r#""..""#,
            r#""a/b""#,
            r#""a\u0000b""#,
            r#"{"hex":"2e2e"}"#,
            r#"{"hex":"612f62"}"#,
        ] {
            let json = format!(r#"{{"nodes":[{{"name":{bad},"type":"file"}}]}}"#);
            assert!(
                Tree::decode(json.as_bytes(), BlobId::default()).is_err(),
                "{bad} accepted"
            );
        }
        let ok = r#"{"nodes":[{"name":{"hex":"ff00ff"},"type":"dir"}]}"#;
        assert!(
            Tree::decode(ok.as_bytes(), BlobId::default()).is_err(),
            "NUL inside hex accepted"
        );
        let no_subtree = r#"{"nodes":[{"name":"d","type":"dir"}]}"#;
        assert!(Tree::decode(no_subtree.as_bytes(), BlobId::default()).is_err());
        let ok = format!(
            r#"{{"nodes":[{{"name":{{"hex":"ff"}},"type":"dir","subtree":"{}"}}]}}"#,
            BlobId([1; 32])
        );
        let t = Tree::decode(ok.as_bytes(), BlobId::default()).unwrap();
        assert_eq!(t.nodes[0].name.0, vec![0xff]);
        assert_eq!(Tree::decode(&t.encode(), BlobId::default()).unwrap(), t);
    }
}
