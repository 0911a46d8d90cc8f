#include "switchboard/actors/security.hpp"

#include "switchboard/actors/chat.hpp"
#include "switchboard/actors/presence.hpp"

namespace switchboard::actors {
namespace {

Error naming(const Error& e, const std::string& origin) { return Error{e.code, origin + ": " + e.message}; }

/// The public key of a process the topology names: its curve_public, or the keypair
/// in its secret key file (made if missing: processes of one machine starting together).
Result<std::string> public_key_of(const std::string& given, const std::filesystem::path& file,
                                  const std::string& origin) {
  if (!given.empty()) return given;
  auto keys = transport::ensure_curve_keypair(file);
  if (!keys) return naming(keys.error(), origin);
  return keys->public_key;
}

/// The other nodes' and the services' public keys, all admitted.
Result<void> add_topology_keys(const router::Topology& topology, const std::string& self_node,
                               const std::string& self_service, CurveSetup& setup) {
  for (const auto& [name, node] : topology.nodes) {
    if (name == self_node) continue;
    auto key = public_key_of(node.curve_public, node_key_file(node), "[nodes." + name + "] curve_secret_file");
    if (!key) return key.error();
    setup.node_keys[name] = *key;
    setup.admitted.admit(*key, "node " + name, true);
  }
  for (const auto& [name, service] : topology.services) {
    if (name == self_service) continue;
    auto key = public_key_of(service.curve_public, service_key_file(service),
                             "[services." + name + "] curve_secret_file");
    if (!key) return key.error();
    setup.service_keys[name] = *key;
  }
  return {};
}

/// The keypair in `file` (made if missing), which must match `given` if the topology gives it.
Result<transport::CurveKeypair> own_keypair(const std::filesystem::path& file, const std::string& given,
                                            const std::string& table) {
  auto own = transport::ensure_curve_keypair(file);
  if (!own) return naming(own.error(), table + " curve_secret_file");
  if (!given.empty() && given != own->public_key)
    return make_error(errc::bad_field, table + " curve_public is not the public key of " + file.string() + " (" +
                                           own->public_key + ")");
  return own;
}

Result<void> add_client_keys(const router::Topology& topology, const router::NodeConfig& node, CurveSetup& setup) {
  const auto& security = topology.security;
  for (const auto& key : security.client_keys) setup.admitted.admit(key, "client");
  if (!security.client_keys_dir.empty()) {
    std::error_code ec;
    std::filesystem::directory_iterator it(security.client_keys_dir, ec);
    if (ec)
      return make_error(errc::unavailable, "[security] client_keys_dir: cannot read " + security.client_keys_dir + ": " +
                                               ec.message());
    for (; it != std::filesystem::directory_iterator(); it.increment(ec)) {
      if (it->path().extension() != ".pub") continue;
      auto key = transport::load_curve_public(it->path());
      if (!key) return naming(key.error(), "[security] client_keys_dir");
      setup.admitted.admit(*key, "client " + it->path().filename().string());
    }
  }
  if (security.local_client) {
    auto local = transport::ensure_curve_keypair(local_client_key_file(node));
    if (!local) return naming(local.error(), "the local client's key");
    setup.admitted.admit(local->public_key, "the local client");
  }
  // Last: a grant's key found in client_keys_dir too has the grant's rights, not all.
  for (const auto& [name, grant] : security.grants) {
    for (const auto& key : grant.keys) setup.admitted.keys[key].who = grant_user_id(name);
    setup.grants.emplace(grant_user_id(name), grant);
  }
  return {};
}

}  // namespace

std::filesystem::path node_key_file(const router::NodeConfig& node) {
  if (!node.curve_secret_file.empty()) return node.curve_secret_file;
  return std::filesystem::path(node.data) / "keys" / "node.key";
}

std::filesystem::path local_client_key_file(const router::NodeConfig& node) {
  return std::filesystem::path(node.data) / "keys" / "client.key";
}

std::filesystem::path service_key_file(const router::ServiceConfig& service) {
  if (!service.curve_secret_file.empty()) return service.curve_secret_file;
  return std::filesystem::path("data") / "services" / (service.name + ".key");
}

Result<CurveSetup> node_curve(const router::Topology& topology, const std::string& name) {
  const router::NodeConfig& node = topology.nodes.at(name);
  CurveSetup setup;
  auto own = own_keypair(node_key_file(node), node.curve_public, "[nodes." + name + "]");
  if (!own) return own.error();
  setup.own = std::move(*own);
  if (auto r = add_topology_keys(topology, name, {}, setup); !r) return r.error();
  for (const auto& [service, key] : setup.service_keys) setup.admitted.admit(key, "service " + service);
  if (auto r = add_client_keys(topology, node, setup); !r) return r.error();
  return setup;
}

Result<CurveSetup> service_curve(const router::Topology& topology, const std::string& service) {
  const router::ServiceConfig& config = topology.services.at(service);
  CurveSetup setup;
  auto own = own_keypair(service_key_file(config), config.curve_public, "[services." + service + "]");
  if (!own) return own.error();
  setup.own = std::move(*own);
  if (auto r = add_topology_keys(topology, {}, service, setup); !r) return r.error();
  return setup;
}

ActorSockets::Curve node_actor_curve(const CurveSetup& setup) {
  ActorSockets::Curve curve{setup.own, {}};
  for (const auto& [node, key] : setup.node_keys) {
    curve.server_keys[peer_actor(node)] = key;
    curve.server_keys[peer_feed(node)] = key;
    curve.server_keys[presence_peer_actor(node)] = key;
  }
  for (const auto& [service, key] : setup.service_keys) curve.server_keys[service_actor(service)] = key;
  return curve;
}

}  // namespace switchboard::actors
