//! Panorama application graphs (`graphs/APP/graph.json`): which camera nodes feed the code
//! node, and what in the graph is inconsistent, reported before anything runs.

use std::collections::HashSet;

use serde::Deserialize;

#[derive(Debug, Deserialize)]
struct File {
    #[serde(rename = "nodeGraph")]
    node_graph: NodeGraph,
}

#[derive(Debug, Deserialize)]
struct NodeGraph {
    #[serde(default)]
    packages: Vec<Package>,
    #[serde(default)]
    nodes: Vec<GraphNode>,
    #[serde(default)]
    edges: Vec<Edge>,
}

#[derive(Debug, Deserialize)]
struct Package {
    name: String,
}

/// A node of the graph.
#[derive(Debug, Clone, Deserialize, PartialEq, Eq)]
pub struct GraphNode {
    /// Node name.
    pub name: String,
    /// `PACKAGE.INTERFACE`.
    pub interface: String,
}

/// An edge `producer` -> `consumer`, each `NODE.PORT`.
#[derive(Debug, Clone, Deserialize, PartialEq, Eq)]
pub struct Edge {
    /// `NODE.PORT`.
    pub producer: String,
    /// `NODE.PORT`.
    pub consumer: String,
}

/// A parsed graph.
#[derive(Debug, Clone)]
pub struct Graph {
    /// Nodes.
    pub nodes: Vec<GraphNode>,
    /// Edges.
    pub edges: Vec<Edge>,
    packages: Vec<String>,
}

/// Why a graph file cannot be read at all.
#[derive(Debug, thiserror::Error)]
#[error("graph.json, line {line} column {column}: {message}")]
pub struct GraphError {
    /// 1-based line.
    pub line: usize,
    /// 1-based column.
    pub column: usize,
    /// What serde said.
    pub message: String,
}

fn is_camera(interface: &str) -> bool {
    interface.contains("media_source")
}

impl Graph {
    /// Parses `graph.json` text.
    pub fn parse(text: &str) -> Result<Graph, GraphError> {
        let f: File = serde_json::from_str(text).map_err(|e| GraphError {
            line: e.line(),
            column: e.column(),
            message: e.to_string(),
        })?;
        Ok(Graph {
            nodes: f.node_graph.nodes,
            edges: f.node_graph.edges,
            packages: f.node_graph.packages.into_iter().map(|p| p.name).collect(),
        })
    }

    /// The camera nodes (media sources), in file order.
    pub fn cameras(&self) -> Vec<String> {
        self.nodes
            .iter()
            .filter(|n| is_camera(&n.interface))
            .map(|n| n.name.clone())
            .collect()
    }

    /// Everything inconsistent: duplicate nodes, interfaces of undeclared packages, edges to or
    /// from nodes that do not exist, cameras that feed nothing. Empty when the graph is sound.
    pub fn problems(&self) -> Vec<String> {
        let mut problems = Vec::new();
        let mut names = HashSet::new();
        for n in &self.nodes {
            if !names.insert(n.name.as_str()) {
                problems.push(format!("node `{}` is declared twice", n.name));
            }
            let package = n.interface.rsplit_once('.').map_or("", |(p, _)| p);
            if package.is_empty() {
                problems.push(format!(
                    "node `{}`: interface `{}` is not PACKAGE.INTERFACE",
                    n.name, n.interface
                ));
            } else if !self.packages.iter().any(|p| p == package) {
                problems.push(format!(
                    "node `{}` uses package `{package}`, which `packages` does not list",
                    n.name
                ));
            }
        }
        let node_of = |end: &str| end.split_once('.').map_or(end, |(n, _)| n).to_owned();
        let mut fed = HashSet::new();
        for e in &self.edges {
            for (role, end) in [("producer", &e.producer), ("consumer", &e.consumer)] {
                let node = node_of(end);
                if !names.contains(node.as_str()) {
                    problems.push(format!(
                        "edge {} -> {}: {role} node `{node}` does not exist",
                        e.producer, e.consumer
                    ));
                }
                if !end.contains('.') {
                    problems.push(format!(
                        "edge {} -> {}: `{end}` names no port (NODE.PORT)",
                        e.producer, e.consumer
                    ));
                }
            }
            fed.insert(node_of(&e.producer));
        }
        for camera in self.cameras() {
            if !fed.contains(&camera) {
                problems.push(format!("camera `{camera}` feeds no node"));
            }
        }
        if self.cameras().is_empty() {
            problems.push("no camera (media source) node".into());
        }
        problems
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const GOOD: &str = r#"{"nodeGraph":{"envelopeVersion":"2021-01-01",
      "packages":[{"name":"123456789012::APP","version":"1.0"},
                  {"name":"panorama::abstract_rtsp_media_source","version":"1.0"},
                  {"name":"panorama::hdmi_data_sink","version":"1.0"}],
      "nodes":[{"name":"front_door","interface":"panorama::abstract_rtsp_media_source.rtsp_v1_interface","overridable":true},
               {"name":"lobby","interface":"panorama::abstract_rtsp_media_source.rtsp_v1_interface"},
               {"name":"code_node","interface":"123456789012::APP.interface"},
               {"name":"output_node","interface":"panorama::hdmi_data_sink.hdmi0"}],
      "edges":[{"producer":"front_door.video_out","consumer":"code_node.video_in"},
               {"producer":"lobby.video_out","consumer":"code_node.video_in"},
               {"producer":"code_node.video_out","consumer":"output_node.video_in"}]}}"#;

    #[test]
    fn cameras_come_from_media_source_nodes() {
        let g = Graph::parse(GOOD).unwrap();
        assert_eq!(g.cameras(), ["front_door", "lobby"]);
        assert!(g.problems().is_empty(), "{:?}", g.problems());
    }

    #[test]
    fn inconsistencies_are_all_reported() {
        let bad = GOOD
            .replace(
                r#""consumer":"code_node.video_in"},
               {"producer":"lobby"#,
                r#""consumer":"ghost.video_in"},
               {"producer":"lobby"#,
            )
            .replace("123456789012::APP.interface", "other::APP.interface")
            .replace(
                r#"{"producer":"lobby.video_out","consumer":"code_node.video_in"},"#,
                "",
            );
        let g = Graph::parse(&bad).unwrap();
        let problems = g.problems().join("\n");
        assert!(problems.contains("`ghost` does not exist"), "{problems}");
        assert!(problems.contains("package `other::APP`"), "{problems}");
        assert!(
            problems.contains("camera `lobby` feeds no node"),
            "{problems}"
        );
        let err = Graph::parse("{\n\"nodeGraph\": [}").unwrap_err();
        assert_eq!(err.line, 2);
    }
}
