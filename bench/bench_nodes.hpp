// Benchmarks' nodes in their own process, from a topology on loopback ports.
#pragma once

#include <functional>
#include <map>
#include <memory>
#include <stdexcept>
#include <string>

#include "switchboard/actors/node.hpp"
#include "switchboard/router/topology.hpp"

namespace switchboard::bench {

/// The nodes of a topology, running in this process.
struct InProcessNodes {
  router::Topology topology;
  std::map<std::string, std::unique_ptr<actors::Node>> nodes;
};

/// Starts every node of the topology `topology_text()` writes (`what` names it in
/// errors). A port found free can be taken before a node binds it: then up to five
/// topologies on new ports are tried.
inline InProcessNodes start_in_process(const std::function<std::string()>& topology_text, const std::string& what) {
  InProcessNodes out;
  std::string last_error;
  for (int attempt = 0; attempt < 5 && out.nodes.empty(); ++attempt) {
    auto parsed = router::parse_topology(topology_text(), what);
    if (!parsed.ok()) throw std::runtime_error("topology: " + parsed.errors.front().to_string());
    out.topology = parsed.topology;
    for (const auto& [name, node] : out.topology.nodes) {
      auto started = actors::Node::start(actors::node_options(out.topology, name));
      if (!started) {
        last_error = "node " + name + ": " + started.error().message;
        out.nodes.clear();
        break;
      }
      out.nodes.emplace(name, std::move(*started));
    }
  }
  if (out.nodes.empty()) throw std::runtime_error("cannot start the nodes of " + what + ": " + last_error);
  return out;
}

}  // namespace switchboard::bench
