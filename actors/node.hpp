// A Switchboard node: the actors of one process, built from its options.
//
// No globals: two nodes can run in one process (tests do), each with its own
// ZeroMQ context, actors and data directory.
#pragma once

#include <filesystem>
#include <memory>
#include <string>
#include <vector>

#include <zmq.hpp>

#include "switchboard/actors/api/api_server.hpp"
#include "switchboard/actors/bridge.hpp"
#include "switchboard/actors/chat.hpp"
#include "switchboard/actors/metrics_server.hpp"
#include "switchboard/actors/presence.hpp"
#include "switchboard/actors/runtime.hpp"
#include "switchboard/actors/webhook/webhook_sender.hpp"
#include "switchboard/actors/security.hpp"
#include "switchboard/common/error.hpp"
#include "switchboard/persistence/history_store.hpp"
#include "switchboard/router/topology.hpp"
#include "switchboard/transport/limits.hpp"

namespace switchboard::actors {

class NodeMetrics;  // actors/metrics.hpp

/// The embedded default's endpoints (docs/PROTOCOL.md).
inline constexpr const char* kDefaultClientEndpoint = "tcp://127.0.0.1:7400";
inline constexpr const char* kDefaultPubEndpoint = "tcp://127.0.0.1:7401";
inline constexpr const char* kDefaultPresenceEndpoint = "tcp://127.0.0.1:7402";
inline constexpr const char* kDefaultPresencePubEndpoint = "tcp://127.0.0.1:7403";
/// In-process endpoints every node also binds, for clients sharing its context.
inline constexpr const char* kInprocClientEndpoint = "inproc://switchboard-client";
inline constexpr const char* kInprocPubEndpoint = "inproc://switchboard-pub";
inline constexpr const char* kInprocPresenceEndpoint = "inproc://switchboard-presence";
inline constexpr const char* kInprocPresencePubEndpoint = "inproc://switchboard-presence-pub";

/// How a node reaches another node of its topology.
struct NodeLink {
  std::string peer;     ///< its peer ROUTER: forwarded requests, heartbeats
  std::string publish;  ///< its room messages PUB
  std::string presence_peer;  ///< its presence's ROUTER for the other nodes' presence
};

struct NodeOptions {
  std::string name = "embedded";
  std::filesystem::path data_dir = "data";
  std::vector<std::string> client_endpoints = {kDefaultClientEndpoint};
  std::vector<std::string> pub_endpoints = {kDefaultPubEndpoint};
  std::vector<std::string> presence_endpoints = {kDefaultPresenceEndpoint};
  std::vector<std::string> presence_pub_endpoints = {kDefaultPresencePubEndpoint};
  PresenceOptions presence;
  persistence::Durability durability = persistence::Durability::sync;
  std::size_t max_map_bytes = 64ull << 30;
  /// Set: message bodies are encrypted at rest with it (persistence::StoreOptions::key).
  std::optional<persistence::StoreKey> store_key;
  transport::Limits limits;
  /// A node of several: the shards and their owners, and heartbeat settings.
  std::optional<ChatCluster> cluster;
  std::vector<std::string> peer_endpoints;  ///< where the other nodes reach this one
  std::vector<std::string> presence_peer_endpoints;  ///< ...and this one's presence
  std::map<std::string, NodeLink> links;    ///< the other nodes, by name
  /// The services of the topology, by name: clients `call` them through this node.
  std::map<std::string, router::ServiceConfig> services;
  /// The one of them that accepts or refuses every publish before it is stored.
  std::optional<PublishHook> hook;
  /// The WebSocket bridge (none: no bridge). Its node endpoints and limits are
  /// filled in by Node::start.
  std::optional<BridgeOptions> bridge;
  /// The metrics endpoint (none: no metrics are kept at all). docs/METRICS.md.
  std::optional<MetricsOptions> metrics;
  /// The HTTP server API (none: no API). Its node endpoints and limits are filled in
  /// by Node::start. docs/API.md.
  std::optional<ApiOptions> api;
  /// Webhooks (docs/WEBHOOKS.md): each gets the events of the rooms this node writes.
  std::vector<WebhookTarget> webhooks;
  /// CURVE on every tcp endpoint (actors/security.hpp: node_curve). None: plain tcp,
  /// with a warning at start if any endpoint is tcp.
  std::optional<CurveSetup> curve;
};

/// The options of node `name` of a checked topology (router::load_topology): its
/// endpoints, data and limits, and, with several nodes, the cluster. The node must
/// be in the topology. CURVE is left to the caller: node_curve (actors/security.hpp)
/// reads and makes the keys, which may fail.
NodeOptions node_options(const router::Topology& topology, const std::string& name);

class Node {
 public:
  /// Opens the history store in options.data_dir, starts the persistence and chat
  /// actors and binds every endpoint. Errors: unavailable (the store cannot be
  /// opened, an endpoint cannot be bound; the message names which and why).
  static Result<std::unique_ptr<Node>> start(NodeOptions options);

  ~Node();  ///< stop()

  /// Stops accepting requests, lets the batch in flight become durable and be
  /// acknowledged (queued requests go in a last batch), then closes the store.
  void stop();

  /// Endpoints actually bound (tcp "*" ports resolved), inproc ones included.
  const std::vector<std::string>& client_endpoints() const;
  const std::vector<std::string>& pub_endpoints() const;
  const std::vector<std::string>& presence_endpoints() const;
  const std::vector<std::string>& presence_pub_endpoints() const;
  /// A node of several: its peer endpoints (empty otherwise).
  const std::vector<std::string>& peer_endpoints() const noexcept { return options_.peer_endpoints; }
  /// The node's context: in-process clients pass it to reach the inproc endpoints.
  zmq::context_t& context() noexcept { return context_; }
  const NodeOptions& options() const noexcept { return options_; }
  /// The WebSocket bridge, if the options asked for one.
  const Bridge* bridge() const noexcept { return bridge_.get(); }
  /// The HTTP API, if the options asked for one and it could listen.
  const ApiServer* api() const noexcept { return api_.get(); }
  const WebhookSender* webhooks() const noexcept { return webhooks_.get(); }
  /// The metrics endpoint, if the options asked for one and it could listen.
  const MetricsServer* metrics_server() const noexcept { return metrics_server_.get(); }
  /// The node's metrics, if the options asked for them (until stop()).
  const NodeMetrics* metrics() const noexcept { return metrics_.get(); }

 private:
  explicit Node(NodeOptions options);
  /// Tells the ZAP handler which endpoints each domain is, for its refusal logs.
  void describe_endpoints();

  NodeOptions options_;
  zmq::context_t context_;
  std::unique_ptr<ZapHandler> zap_;  ///< bound before any CURVE socket, stopped after them
  std::unique_ptr<NodeMetrics> metrics_;  ///< the actors count into it: outlives them
  std::unique_ptr<ActorThread> persistence_;
  std::unique_ptr<ActorThread> history_;  ///< history reads, beside persistence's commits
  std::unique_ptr<ActorThread> presence_;
  std::unique_ptr<ActorThread> chat_;
  std::unique_ptr<Bridge> bridge_;
  std::unique_ptr<ApiServer> api_;
  std::unique_ptr<WebhookSender> webhooks_;
  std::unique_ptr<MetricsServer> metrics_server_;
};

}  // namespace switchboard::actors
