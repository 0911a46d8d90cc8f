// The topology file: one TOML file that names every node, its endpoints and data, the
// chat shards and their owners, and the limits. Every node reads the same file.
//
//   [limits]                      # optional: transport::Limits, in bytes / ms
//   [presence]                    # optional: heartbeat_ms, session_ttl_ms, max_sessions_per_user
//   [cluster]                     # optional: heartbeat_ms, misses, request_timeout_ms
//   [nodes.a]                     # one table per node
//   client = "tcp://127.0.0.1:7400"
//   ...
//   [services.NAME]               # optional: service actors (endpoint, hook, ...)
//   [security]                    # optional: curve, client_keys, client_keys_dir, local_client
//   [[shards]]                    # chat shards and the node that owns each
//   name = "s1"
//   owner = "a"
//
// The full reference is docs/TOPOLOGY.md; examples/topologies/ has examples.
#pragma once

#include <chrono>
#include <cstdint>
#include <filesystem>
#include <map>
#include <string>
#include <vector>

#include "switchboard/router/peers.hpp"
#include "switchboard/transport/limits.hpp"

namespace switchboard::router {

struct NodeConfig {
  std::string name;
  std::string client, publish, presence, presence_pub;  ///< endpoints
  std::string peer;  ///< the ROUTER other nodes forward requests to
  std::string presence_peer;  ///< the ROUTER other nodes' presence shares users with
  std::string data;
  bool sync = true;                      ///< durability: sync (default) or nosync
  std::uint64_t max_store_mb = 64 * 1024;
  std::string bridge;  ///< the WebSocket bridge's "HOST:PORT" ("": no bridge)
  std::string web;     ///< directory of the web page's files the bridge serves
  /// TLS for the bridge (PEM files): both or neither; with them it serves wss:// only.
  std::string bridge_cert, bridge_key;
  /// Origins whose pages may open the bridge beside its own ("*": any), normalised.
  std::vector<std::string> bridge_origins;
  /// Key file that encrypts message bodies at rest ("": bodies in clear).
  std::string store_key;
  std::string metrics;  ///< the metrics endpoint's "HOST:PORT", or "off" ("": none)
  std::string api;      ///< the HTTP API's "HOST:PORT", or "off" ("": none); docs/API.md
  /// CURVE: the node's secret key file ("": DATA/keys/node.key, made at first
  /// start if missing), and its public key if the topology gives it (other nodes
  /// trust it; "": read from curve_secret_file + ".pub", made with the secret).
  std::string curve_secret_file, curve_public;
};

struct ShardConfig {
  std::string name;
  std::string owner;  ///< a node's name: the shard's primary
  /// Nodes that keep a copy of the shard's history (docs/REPLICATION.md).
  std::vector<std::string> replicas = {};
  /// replicated: a write is acknowledged once `ack_replicas` replicas have it durably
  /// too (the default when there are replicas); local: once the primary has it.
  enum class Ack { local, replicated } ack = Ack::local;
  std::size_t ack_replicas = 0;  ///< replicated: replicas besides the primary (1 by default)
};

/// A service: an actor a backend runs in its own process (actors/service.hpp),
/// addressed by its name.
struct ServiceConfig {
  std::string name;
  std::string endpoint;       ///< its ROUTER; every node connects to it
  bool publish_hook = false;  ///< chat asks it about every publish before storing it
  bool fail_open = false;     ///< when it does not answer: accept (true) or refuse
  std::chrono::milliseconds timeout{1000};  ///< how long chat waits for its verdict
  /// CURVE: as a node's ("": data/services/NAME.key).
  std::string curve_secret_file, curve_public;
};

/// [security.grants.NAME]: what a service holding one of `keys` may do (docs/SECURITY.md).
struct Grant {
  enum class Ops { read, write, manage };
  std::string name;
  std::vector<std::string> keys;          ///< Z85 public keys, admitted on client endpoints
  std::vector<std::string> users{"*"};    ///< whom it may act for ("*": anyone)
  std::vector<std::string> rooms{"*"};    ///< rooms it may touch: names, or prefixes ending in '*'
  Ops ops = Ops::write;
  std::vector<std::string> api_keys = {};  ///< bearer keys of the HTTP API (docs/API.md)
};

/// [security]: CURVE on every tcp endpoint (docs/SECURITY.md).
struct SecurityConfig {
  bool curve = true;  ///< false: plain tcp (a tunnel in front, or a benchmark); logged
  std::vector<std::string> client_keys;  ///< Z85 public keys of clients admitted
  std::string client_keys_dir;  ///< a directory whose *.pub files are admitted client keys
  /// Each node makes DATA/keys/client.key (a client keypair for the CLI on the same
  /// machine) and admits it.
  bool local_client = true;
  std::map<std::string, Grant> grants;  ///< by name
  /// Bearer keys of the HTTP API with every right (docs/API.md); a grant's have its own.
  std::vector<std::string> api_keys;
};

/// Whether `key` may be an API key: 32 to 256 printable ASCII characters, no spaces.
bool valid_api_key(std::string_view key);

/// [webhooks.NAME]: an HTTP endpoint the node POSTs events to (docs/WEBHOOKS.md).
struct WebhookConfig {
  std::string name;
  std::string url;     ///< http:// or https:// (parse_http_url)
  std::string secret;  ///< signs every request (HMAC-SHA256)
  /// Any of "message", "membership", "room", "presence"; or "notification" alone.
  std::vector<std::string> events{"message"};
  std::vector<std::string> rooms{"*"};  ///< names, or prefixes ending in '*'
  std::vector<std::string> users{"*"};  ///< senders whose messages go out
  std::size_t connections = 4;          ///< requests at once
  std::size_t max_batch = 1;            ///< events per request (1: the body is the event)
  std::chrono::milliseconds timeout{5000};  ///< for an answer; then retried
  /// Notifications: how long a room's messages are gathered into one per member.
  std::chrono::milliseconds window{1000};
};

struct Topology {
  std::map<std::string, NodeConfig> nodes;
  std::vector<ShardConfig> shards;
  transport::Limits limits;
  std::chrono::milliseconds heartbeat{5000}, session_ttl{15000};
  /// Presence sessions one user may hold at once (devices, browser tabs).
  std::size_t max_sessions_per_user = 32;
  PeerOptions peers;  ///< [cluster]: heartbeats between nodes, breaker, forward timeout
  std::map<std::string, ServiceConfig> services;
  SecurityConfig security;
  std::map<std::string, WebhookConfig> webhooks;  ///< by name; every node runs each
  /// The node that owns `shard` ("" for none).
  std::string owner_of_shard(std::string_view shard) const;
};

/// One thing wrong with a file, with where it is.
struct ConfigError {
  std::string file;
  std::uint32_t line = 0, column = 0;
  std::string message;
  /// "file:line:column: message", the form compilers use and editors understand.
  std::string to_string() const;
};

/// Reads and checks a topology file. Either the topology, or every error found (at
/// least one): TOML syntax, unknown keys, wrong types, bad values, endpoints used
/// twice, shards without an owner or owned by an unknown node, a node named twice.
struct LoadResult {
  Topology topology;
  std::vector<ConfigError> errors;
  bool ok() const noexcept { return errors.empty(); }
};
LoadResult load_topology(const std::filesystem::path& file);
/// The same, from text (`name` is what errors call the file).
LoadResult parse_topology(std::string_view text, const std::string& name);

}  // namespace switchboard::router
