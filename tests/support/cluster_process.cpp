#include "cluster_process.hpp"

#include <fstream>
#include <set>
#include <stdexcept>
#include <thread>

#include "switchboard/router/placement.hpp"

namespace switchboard::testing {
namespace {

constexpr const char* kEndpointKeys[] = {"client", "publish", "presence", "presence_pub", "peer", "presence_peer"};

/// The endpoints one node uses to reach another: what a proxied link stands in front of.
bool node_to_node(const std::string& key) { return key == "peer" || key == "publish" || key == "presence_peer"; }

}  // namespace

Cluster::Cluster(ClusterSettings settings) : settings_(settings) {
  auto example = router::load_topology(std::string(SWITCHBOARD_SOURCE_DIR) + "/examples/topologies/three-nodes.toml");
  if (!example.ok()) throw std::runtime_error(example.errors.front().to_string());
  topology_ = example.topology;

  std::set<int> used;
  auto port = [&] {
    for (;;)
      if (int p = free_port(); used.insert(p).second) return p;
  };
  std::map<std::string, std::map<std::string, int>> bound;  // node -> key -> port
  for (const auto& [name, node] : topology_.nodes)
    for (const char* key : kEndpointKeys) bound[name][key] = port();

  for (const auto& [self, unused] : topology_.nodes) {
    if (!settings.proxied_links && !files_.empty()) {
      files_[self] = files_.begin()->second;  // one file for all
      continue;
    }
    auto& file = files_[self] = dir_.path() / (settings.proxied_links ? "topology-" + self + ".toml" : "three-nodes.toml");
    std::ofstream out(file);
    out << "[cluster]\nheartbeat_ms = " << settings.heartbeat_ms << "\nmisses = " << settings.misses
        << "\nrequest_timeout_ms = " << settings.request_timeout_ms << "\n";
    for (const auto& [name, node] : topology_.nodes) {
      out << "[nodes." << name << "]\n";
      for (const char* key : kEndpointKeys) {
        int p = bound[name][key];
        if (settings.proxied_links && name != self && node_to_node(key)) {
          auto& proxy = proxies_[{self, name}].emplace_back(std::make_unique<LinkProxy>(port(), p));
          p = proxy->listen_port();
        }
        out << key << " = \"tcp://127.0.0.1:" << p << "\"\n";
      }
      out << "data = \"" << (dir_.path() / name).string() << "\"\ndurability = \"" << (node.sync ? "sync" : "nosync")
          << "\"\n";
    }
    for (const auto& shard : topology_.shards) {
      out << "[[shards]]\nname = \"" << shard.name << "\"\nowner = \"" << shard.owner << "\"\n";
      if (auto lines = settings.shard_lines.find(shard.name); lines != settings.shard_lines.end()) out << lines->second;
    }
    out << settings.extra;
  }
}

std::vector<std::string> Cluster::names() const {
  std::vector<std::string> out;
  for (const auto& [name, node] : topology_.nodes) out.push_back(name);
  return out;
}

void Cluster::start(const std::string& node) {
  NodeProcess::Args args{{"--config", files_.at(node).string(), "--node", node}};
  if (!settings_.log_files) {
    nodes_[node] = std::make_unique<NodeProcess>(std::move(args));
    return;
  }
  args.log_file = (dir_.path() / (node + ".log")).string();
  try {
    nodes_[node] = std::make_unique<NodeProcess>(args);
  } catch (const std::runtime_error& e) {  // what it logged says why
    std::ifstream in(args.log_file, std::ios::binary);
    throw std::runtime_error(std::string(e.what()) + "\nits log:\n" +
                             std::string((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>()));
  }
}

bool Cluster::wait_for_log(const std::string& name, const std::string& text, std::chrono::milliseconds timeout) const {
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  const auto path = dir_.path() / (name + ".log");
  std::size_t scanned = 0;
  std::string seen;
  do {
    std::ifstream in(path, std::ios::binary);
    in.seekg(static_cast<std::streamoff>(scanned));
    std::string more((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
    scanned += more.size();
    seen += more;
    if (seen.find(text) != std::string::npos) return true;
    if (more.empty()) std::this_thread::sleep_for(std::chrono::milliseconds(20));  // a poll, not a wait for an outcome
  } while (std::chrono::steady_clock::now() < deadline);
  return false;
}

void Cluster::start_all() {
  for (const auto& [name, node] : topology_.nodes) start(name);
}

client::ClientOptions Cluster::client_of(const std::string& name) {
  const NodeProcess& n = node(name);
  client::ClientOptions o;
  o.endpoint = n.client_endpoint();
  o.attempt_timeout *= kSlowdown;
  if (n.curve_public() != "off") {
    auto keys = client::load_local_keys(n.keys_dir());
    if (!keys) throw std::runtime_error("keys of node " + name + ": " + keys.error().message);
    o.curve = std::move(*keys);
  }
  return o;
}

std::string Cluster::room_owned_by(const std::string& node, const std::string& prefix) const {
  router::RoomPlacement placement(topology_.shards);
  for (int i = 0;; ++i) {
    std::string room = prefix + "-" + std::to_string(i);
    if (placement.owner_of(room).owner == node) return room;
  }
}

void Cluster::set_link(const std::string& from, const std::string& to, LinkProxy::Mode mode,
                       std::chrono::milliseconds delay, bool both) {
  for (auto& proxy : proxies_.at({from, to})) proxy->set_mode(mode, delay);
  if (both) set_link(to, from, mode, delay, false);
}

}  // namespace switchboard::testing
