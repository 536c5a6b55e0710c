//! Trees: one directory each, serialized deterministically as JSON so an unchanged directory
//! is the same blob.
//!
//! Names are bytes. A name that is valid UTF-8 is stored as a JSON string; any other name as
//! `{"hex": "…"}`. Decoding rejects names a restore could be tricked by: empty, `.`, `..`,
//! or containing `/` or NUL.

use serde::{Deserialize, Serialize};

use crate::{BlobId, Error, Result};

/// An entry name, as bytes.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
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
        match std::str::from_utf8(&self.0) {
            Ok(text) => s.serialize_str(text),
            Err(_) => {
                use serde::ser::SerializeMap;
                let mut m = s.serialize_map(Some(1))?;
                m.serialize_entry("hex", &hex::encode(&self.0))?;
                m.end()
            }
        }
    }
}

impl<'de> Deserialize<'de> for Name {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Repr {
            Text(String),
            Hex { hex: String },
        }
        let bytes = match Repr::deserialize(d)? {
            Repr::Text(t) => t.into_bytes(),
            Repr::Hex { hex } => hex::decode(hex).map_err(serde::de::Error::custom)?,
        };
        let name = Name(bytes);
        name.validate().map_err(serde::de::Error::custom)?;
        Ok(name)
    }
}

/// One chunk of a file's content: the blob and its plaintext length.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChunkRef(pub BlobId, pub u32);

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
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum NodeKind {
    File,
    Dir,
    Symlink,
}

/// One entry of a directory.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Node {
    pub name: Name,
    #[serde(rename = "type")]
    pub kind: NodeKind,
    #[serde(default)]
    pub size: u64,
    #[serde(default)]
    pub mode: u32,
    /// Modification time, RFC 3339.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub mtime: String,
    /// File content, in order.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub content: Vec<ChunkRef>,
    /// Directory content.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub subtree: Option<BlobId>,
    /// Symlink target, as bytes (hex).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub link_target: Option<String>,
}

/// A directory: nodes sorted by name, names unique.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Tree {
    pub nodes: Vec<Node>,
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
            if n.kind == NodeKind::File && content != n.size {
                return Err(Error::corrupt_blob(
                    "tree",
                    blob,
                    format!(
                        "file {:?} has size {} but {} bytes of content",
                        n.name.display(),
                        n.size,
                        content
                    ),
                ));
            }
        }
        Ok(t)
    }

    /// The node with this name.
    pub fn get(&self, name: &[u8]) -> Option<&Node> {
        self.nodes
            .binary_search_by(|n| n.name.0.as_slice().cmp(name))
            .ok()
            .map(|i| &self.nodes[i])
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
        let ok = r#"{"nodes":[{"name":{"hex":"ff"},"type":"dir"}]}"#;
        let t = Tree::decode(ok.as_bytes(), BlobId::default()).unwrap();
        assert_eq!(t.nodes[0].name.0, vec![0xff]);
        assert_eq!(Tree::decode(&t.encode(), BlobId::default()).unwrap(), t);
    }
}
