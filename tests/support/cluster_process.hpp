// Three node processes from examples/topologies/three-nodes.toml, on loopback ports
// picked now, with data in a temporary directory; each runs as
// `switchboard run --config FILE --node N`. For the cluster tests and the chaos
// harness.
//
// With `proxied_links`, every link from one node to another goes through a LinkProxy
// (link_proxy.hpp): each node gets a file of its own, the same as the others' except
// that the other nodes' peer, publish and presence_peer endpoints are its proxies'
// ports. The links can then be slowed, held or cut, one direction at a time.
#pragma once

#include <filesystem>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "link_proxy.hpp"
#include "node_process.hpp"
#include "switchboard/client/client.hpp"
#include "switchboard/router/topology.hpp"

namespace switchboard::testing {

struct ClusterSettings {
  // Generous for a loaded 2-core machine running several three-node tests at once: a
  // node starved of CPU for a moment must not be taken for a dead one.
  int heartbeat_ms = 200 * kSlowdown, misses = 5, request_timeout_ms = 4000 * kSlowdown;
  std::string extra = {};  ///< more TOML for the file ([services.NAME] tables)
  bool proxied_links = false;
  /// More lines for a shard's [[shards]] entry, by shard name: `replicas = ["b"]`, ...
  std::map<std::string, std::string> shard_lines = {};
  /// Each node's log to a file of its own (see wait_for_log), not to the test's stderr.
  bool log_files = false;
};

class Cluster {
 public:
  explicit Cluster(ClusterSettings settings = {});
  explicit Cluster(const std::string& extra) : Cluster(ClusterSettings{.extra = extra}) {}

  /// The file every node reads (with proxied links: node a's).
  const std::filesystem::path& file() const noexcept { return files_.begin()->second; }
  const std::filesystem::path& file_of(const std::string& node) const { return files_.at(node); }
  const std::filesystem::path& dir() const noexcept { return dir_.path(); }
  std::vector<std::string> names() const;

  void start(const std::string& node);
  void start_all();
  NodeProcess& node(const std::string& name) { return *nodes_.at(name); }
  /// kill -9 and reap; start() brings it back on the same endpoints and data.
  void kill(const std::string& name) { nodes_.at(name)->kill_hard(); }

  /// Options for a client of `node`: its client endpoint and the keys in its data.
  client::ClientOptions client_of(const std::string& node);

  /// A room whose owner, by the topology's placement, is `node`.
  std::string room_owned_by(const std::string& node, const std::string& prefix) const;

  /// With log_files: waits until node `name`'s log has a line containing `text`
  /// (every process of it, restarts included); false if none did within `timeout`.
  bool wait_for_log(const std::string& name, const std::string& text,
                    std::chrono::milliseconds timeout = std::chrono::seconds(60)) const;

  /// Proxied links: sets the mode of every link from `from` to `to` (both directions
  /// with `both`).
  void set_link(const std::string& from, const std::string& to, LinkProxy::Mode mode,
                std::chrono::milliseconds delay = std::chrono::milliseconds(0), bool both = true);

 private:
  TempDir dir_;
  ClusterSettings settings_;
  router::Topology topology_;
  std::map<std::string, std::filesystem::path> files_;
  std::map<std::string, std::unique_ptr<NodeProcess>> nodes_;
  /// (from, to) -> the proxies `from` reaches `to`'s endpoints through.
  std::map<std::pair<std::string, std::string>, std::vector<std::unique_ptr<LinkProxy>>> proxies_;
};

}  // namespace switchboard::testing
