// CURVE for one process of a topology (a node, or a service): its keypair, the public
// keys of the processes it connects to, and the keys its ZAP handler admits. Key files
// the topology leaves to their defaults are made at first start (docs/SECURITY.md).
#pragma once

#include <filesystem>
#include <map>
#include <string>

#include "switchboard/actors/runtime.hpp"
#include "switchboard/actors/zap.hpp"
#include "switchboard/common/error.hpp"
#include "switchboard/router/topology.hpp"
#include "switchboard/transport/curve.hpp"

namespace switchboard::actors {

struct CurveSetup {
  transport::CurveKeypair own;
  std::map<std::string, std::string> node_keys;     ///< node name -> its public key
  std::map<std::string, std::string> service_keys;  ///< service name -> its public key
  ZapPolicy admitted;                               ///< who may connect to this process
  /// The topology's service grants, by the User-Id ZAP gives their keys' connections
  /// (grant_user_id). A client key without one has every right.
  std::map<std::string, router::Grant> grants;
};

/// The User-Id of the connections of grant `name`'s keys: "grant NAME".
inline std::string grant_user_id(const std::string& name) { return "grant " + name; }

/// The secret key file of `node` (curve_secret_file, or DATA/keys/node.key).
std::filesystem::path node_key_file(const router::NodeConfig& node);
/// The local client's key file of `node`: DATA/keys/client.key.
std::filesystem::path local_client_key_file(const router::NodeConfig& node);
/// The secret key file of `service` (curve_secret_file, or data/services/NAME.key).
std::filesystem::path service_key_file(const router::ServiceConfig& service);

/// CURVE for node `name` of `topology`: its keypair, the other nodes' and the
/// services' public keys, and as admitted keys the other nodes' (everywhere), the
/// services', the listed clients' and the local client's (client endpoints only).
/// Errors: unavailable, bad_field (a key file cannot be read or made, holds no key,
/// or a secret one is readable by others; the message names the file and the
/// topology key it comes from).
Result<CurveSetup> node_curve(const router::Topology& topology, const std::string& name);

/// CURVE for service `service`: its keypair, the nodes' public keys, and the nodes as
/// the only keys admitted (they connect to its endpoint). Errors: as node_curve.
Result<CurveSetup> service_curve(const router::Topology& topology, const std::string& service);

/// The CURVE settings of a node's actors: its keypair, and the server key of every
/// peer they may connect to under its actor or feed name (peer_actor, peer_feed,
/// presence_peer_actor of each other node; service_actor of each service).
ActorSockets::Curve node_actor_curve(const CurveSetup& setup);

}  // namespace switchboard::actors
