#include "switchboard/actors/node.hpp"

#include <random>

#include <spdlog/spdlog.h>

#include "switchboard/actors/chat.hpp"
#include "switchboard/actors/metrics.hpp"
#include "switchboard/actors/history_reader.hpp"
#include "switchboard/actors/persistence.hpp"
#include "switchboard/router/placement.hpp"

namespace switchboard::actors {
namespace {
constexpr const char* kPersistenceMailbox = "inproc://switchboard-persistence";
constexpr const char* kHistoryMailbox = "inproc://switchboard-history";
constexpr const char* kPresenceInternal = "inproc://switchboard-presence-internal";
constexpr const char* kChatInternal = "inproc://switchboard-chat-internal";
constexpr const char* kWebhookMailbox = "inproc://switchboard-webhooks";

/// A node without CURVE says so at start, if anything of it listens on tcp.
void warn_if_plain(const NodeOptions& o) {
  for (const auto* list : {&o.client_endpoints, &o.pub_endpoints, &o.presence_endpoints, &o.presence_pub_endpoints,
                           &o.peer_endpoints, &o.presence_peer_endpoints})
    for (const auto& e : *list)
      if (e.rfind("tcp://", 0) == 0) {
        spdlog::warn("node {}: CURVE is off: {} and its other tcp endpoints are plain text, open to anyone who can "
                     "connect",
                     o.name, e);
        return;
      }
}

/// Differs between starts of a node, so that the others learn it restarted.
std::uint64_t random_incarnation() {
  std::random_device device;
  std::uint64_t value = 0;
  while (value == 0) value = (std::uint64_t{device()} << 32) | device();
  return value;
}
}

NodeOptions node_options(const router::Topology& topology, const std::string& name) {
  const router::NodeConfig& node = topology.nodes.at(name);
  NodeOptions options;
  options.name = node.name;
  options.data_dir = node.data;
  options.client_endpoints = {node.client};
  options.pub_endpoints = {node.publish};
  options.presence_endpoints = {node.presence};
  options.presence_pub_endpoints = {node.presence_pub};
  options.limits = topology.limits;
  options.presence.heartbeat_interval = topology.heartbeat;
  options.presence.session_ttl = topology.session_ttl;
  options.presence.max_sessions_per_user = topology.max_sessions_per_user;
  options.max_map_bytes = node.max_store_mb << 20;
  options.durability = node.sync ? persistence::Durability::sync : persistence::Durability::nosync;
  options.services = topology.services;
  for (const auto& [webhook_name, w] : topology.webhooks) {
    WebhookTarget target;
    target.delivery.name = webhook_name;
    target.delivery.rooms = w.rooms;
    target.delivery.users = w.users;
    target.delivery.connections = w.connections;
    target.delivery.max_batch = w.max_batch;
    auto names = [&](const char* kind) { return std::find(w.events.begin(), w.events.end(), kind) != w.events.end(); };
    target.delivery.messages = names("message");
    target.delivery.membership = names("membership");
    target.delivery.room = names("room");
    target.presence = names("presence");
    if (names("notification")) {
      // A run of a room's messages, gathered over the window, is one request per member.
      target.notifications = true;
      target.delivery.messages = true;
      target.delivery.max_batch = target.delivery.page;
      target.delivery.window = w.window;
    }
    target.url = w.url;
    target.parsed = *router::parse_http_url(w.url);  // checked when the file was read
    target.secret = w.secret;
    target.timeout = w.timeout;
    options.webhooks.push_back(std::move(target));
  }
  for (const auto& [service_name, service] : topology.services)
    if (service.publish_hook) options.hook = PublishHook{service_name, service.timeout, service.fail_open};
  if (topology.nodes.size() > 1) {
    ChatCluster cluster{node.name, topology.shards, {}, topology.peers};
    for (const auto& [other, config] : topology.nodes) {
      if (other == node.name) continue;
      cluster.others.push_back(other);
      options.links[other] = NodeLink{config.peer, config.publish, config.presence_peer};
    }
    options.presence.cluster = PresenceCluster{node.name, cluster.others, topology.peers, 0};
    options.cluster = std::move(cluster);
    options.peer_endpoints = {node.peer};
    options.presence_peer_endpoints = {node.presence_peer};
  }
  return options;
}

Result<std::unique_ptr<Node>> Node::start(NodeOptions options) {
  persistence::StoreOptions store_options;
  store_options.dir = options.data_dir;
  store_options.durability = options.durability;
  store_options.max_map_bytes = options.max_map_bytes;
  store_options.initial_map_bytes = std::min(store_options.initial_map_bytes, options.max_map_bytes);
  store_options.key = options.store_key;
  auto store = persistence::HistoryStore::open(store_options);
  if (!store) return store.error();

  const auto now = Now::real();
  const auto window = static_cast<std::uint64_t>(options.limits.dedup_window.count());
  auto snapshot = store->snapshot(now.wall_ms > window ? now.wall_ms - window : 0);
  if (!snapshot) return snapshot.error();

  std::unique_ptr<Node> node(new Node(std::move(options)));
  const NodeOptions& o = node->options_;
  if (o.metrics) node->metrics_ = std::make_unique<NodeMetrics>(o.name);
  NodeMetrics* metrics = node->metrics_.get();
  try {
    std::optional<ActorSockets::Curve> curve;
    if (o.curve) {
      node->zap_ = std::make_unique<ZapHandler>(node->context_, o.curve->admitted, "node " + o.name);
      curve = node_actor_curve(*o.curve);
    } else {
      warn_if_plain(o);
    }
    PersistenceOptions persistence_options{o.limits};
    if (metrics) persistence_options.metrics = &metrics->persistence();
    if (o.cluster) {  // copies of the store for replicas that need one (docs/REPLICATION.md)
      persistence_options.copies_dir = o.data_dir / "copies";
      persistence_options.in_shard = [placement = router::RoomPlacement(o.cluster->shards)](
                                         const std::string& shard, std::string_view room) {
        return placement.owner_of(room).name == shard;
      };
    }
    // History reads on a thread of their own, beside the commits (actors/history_reader.hpp).
    HistoryReaderOptions reader_options{persistence_options.max_page_bytes, persistence_options.metrics};
    node->history_ = std::make_unique<ActorThread>(
        node->context_, ActorSockets{"history", {kHistoryMailbox}, {}, {}, o.limits},
        std::make_unique<HistoryReader>(store->reader(), reader_options));
    node->persistence_ = std::make_unique<ActorThread>(
        node->context_, ActorSockets{"persistence", {kPersistenceMailbox}, {}, {}, o.limits},
        std::make_unique<Persistence>(std::move(*store), persistence_options));

    PresenceOptions presence_options = o.presence;
    presence_options.limits = o.limits;
    if (metrics) presence_options.metrics = &metrics->presence();
    if (o.curve) presence_options.grants = {o.curve->grants.begin(), o.curve->grants.end()};
    ActorSockets presence_sockets{"presence", o.presence_endpoints, o.presence_pub_endpoints, {}, o.limits};
    presence_sockets.mailbox.push_back(kInprocPresenceEndpoint);
    presence_sockets.publish.push_back(kInprocPresencePubEndpoint);
    presence_sockets.internal = {kPresenceInternal};
    presence_sockets.curve = curve;
    if (std::any_of(o.webhooks.begin(), o.webhooks.end(), [](const WebhookTarget& w) { return w.presence; })) {
      presence_options.webhook_actor = "webhooks";  // presence changes this node tells
      presence_sockets.peers["webhooks"] = kWebhookMailbox;
    }
    if (presence_options.cluster) {
      // Presence shares its users and rooms' members with the other nodes' presence.
      if (presence_options.cluster->incarnation == 0) presence_options.cluster->incarnation = random_incarnation();
      presence_sockets.node_mailbox = o.presence_peer_endpoints;
      presence_sockets.identity = o.name;
      for (const auto& [other, link] : o.links) presence_sockets.remote_peers[presence_peer_actor(other)] = link.presence_peer;
    }
    node->presence_ = std::make_unique<ActorThread>(node->context_, std::move(presence_sockets),
                                                    std::make_unique<Presence>(presence_options, *snapshot));

    ChatOptions chat_options;
    chat_options.node_name = o.name;
    chat_options.cluster = o.cluster;
    chat_options.hook = o.hook;
    chat_options.limits = o.limits;
    if (metrics) chat_options.metrics = &metrics->chat();
    chat_options.presence_actor = "presence";
    chat_options.reader_actor = "history";
    if (o.curve) chat_options.grants = {o.curve->grants.begin(), o.curve->grants.end()};
    chat_options.presence_endpoints = node->presence_->mailbox_endpoints();
    chat_options.presence_pub_endpoints = node->presence_->publish_endpoints();
    ActorSockets chat_sockets{"chat", o.client_endpoints, o.pub_endpoints,
                              {{"persistence", kPersistenceMailbox}, {"history", kHistoryMailbox}, {"presence", kPresenceInternal}},
                              o.limits};
    chat_sockets.mailbox.push_back(kInprocClientEndpoint);
    chat_sockets.publish.push_back(kInprocPubEndpoint);
    if (!o.webhooks.empty()) {  // chat tells the webhook sender what it stored; cursors come back
      chat_options.webhook_actor = "webhooks";
      chat_options.room_events = std::any_of(o.webhooks.begin(), o.webhooks.end(), [](const WebhookTarget& w) {
        return w.delivery.membership || w.delivery.room;
      });
      chat_sockets.peers["webhooks"] = kWebhookMailbox;
      chat_sockets.internal = {kChatInternal};
    }
    chat_sockets.curve = curve;
    for (const auto& [service_name, service] : o.services) {
      chat_sockets.remote_peers[service_actor(service_name)] = service.endpoint;
      chat_sockets.identity = o.name;
      chat_options.services[service_name] = service.timeout;
    }
    if (o.cluster) {
      // Other nodes forward requests to this one's peer ROUTER; this one calls theirs
      // and subscribes to their room messages for its own subscribers (XPUB).
      chat_sockets.node_mailbox = o.peer_endpoints;
      chat_sockets.identity = o.name;
      chat_sockets.xpub = true;
      for (const auto& [other, link] : o.links) {
        chat_sockets.remote_peers[peer_actor(other)] = link.peer;
        chat_sockets.feeds[peer_feed(other)] = link.publish;
      }
    }
    node->chat_ = std::make_unique<ActorThread>(node->context_, std::move(chat_sockets),
                                                std::make_unique<Chat>(chat_options, *snapshot));
    if (node->zap_) node->describe_endpoints();
  } catch (const std::exception& e) {
    return make_error(errc::unavailable, std::string("cannot start the node's actors: ") + e.what());
  }
  if (o.bridge) {
    BridgeOptions bridge = *o.bridge;
    bridge.chat_endpoint = kInprocClientEndpoint;
    bridge.pub_endpoint = kInprocPubEndpoint;
    bridge.presence_endpoint = kInprocPresenceEndpoint;
    bridge.presence_pub_endpoint = kInprocPresencePubEndpoint;
    bridge.limits = o.limits;
    bridge.presence_heartbeat = o.presence.heartbeat_interval;
    const bool required = bridge.required;
    auto started = Bridge::start(node->context_, std::move(bridge));
    // A default address that is taken is let go; options that are wrong (a web
    // directory that is not one, an origin that is not) never are.
    if (started)
      node->bridge_ = std::move(*started);
    else if (required || started.error().code == errc::bad_field)
      return started.error();
    else
      spdlog::warn("node {}: running without a WebSocket bridge: {}", o.name, started.error().message);
  }
  if (o.api) {
    ApiOptions api = *o.api;
    api.chat_endpoint = kInprocClientEndpoint;
    api.presence_endpoint = kInprocPresenceEndpoint;
    api.limits = o.limits;
    auto started = ApiServer::start(node->context_, std::move(api));
    if (started)
      node->api_ = std::move(*started);
    else if (o.api->required || started.error().code == errc::bad_field)
      return started.error();
    else
      spdlog::warn("node {}: running without the HTTP API: {}", o.name, started.error().message);
  }
  if (!o.webhooks.empty()) {
    WebhookSenderOptions webhooks{o.name,          o.webhooks, kWebhookMailbox, kChatInternal, kInprocClientEndpoint,
                                  kInprocPresenceEndpoint, o.limits};
    auto started = WebhookSender::start(node->context_, std::move(webhooks));
    if (!started) return started.error();
    node->webhooks_ = std::move(*started);
  }
  if (metrics) {
    collect_runtime(*metrics, {node->persistence_.get(), node->history_.get(), node->presence_.get(), node->chat_.get()},
                    node->bridge_.get());
    if (node->api_) collect_api(*metrics, *node->api_);
    if (node->webhooks_) collect_webhooks(*metrics, *node->webhooks_);
    auto server = MetricsServer::start(*o.metrics, [metrics] { return metrics->text(); },
                                       [metrics] { return metrics->json(); });
    if (server)
      node->metrics_server_ = std::move(*server);
    else if (o.metrics->required)
      return server.error();
    else
      spdlog::warn("node {}: running without a metrics endpoint: {}", o.name, server.error().message);
  }
  spdlog::info("node {}: {} rooms, data in {}, durability {}, bodies {}", o.name, snapshot->rooms.size(),
               o.data_dir.string(), o.durability == persistence::Durability::sync ? "sync" : "nosync",
               o.store_key ? "encrypted" : "in clear");
  return node;
}

Node::Node(NodeOptions options) : options_(std::move(options)) {}

Node::~Node() { stop(); }

void Node::stop() {
  // The metrics endpoint first: nothing reads the actors' counters once they go.
  if (metrics_server_) metrics_server_->stop();
  // The bridge and the API first: their connections are told the node is going away.
  if (bridge_) bridge_->stop();
  if (api_) api_->stop();
  if (webhooks_) webhooks_->stop();  // what it had on its way goes again from the stored cursors
  // Chat first: it stops taking requests and lets its last batch become durable.
  if (chat_) chat_->stop();
  if (presence_) presence_->stop();
  if (history_) history_->stop();
  if (persistence_) persistence_->stop();
  metrics_server_.reset();
  bridge_.reset();
  api_.reset();
  webhooks_.reset();
  chat_.reset();
  presence_.reset();
  history_.reset();
  persistence_.reset();  // closes the store (the history reader shared it)
  metrics_.reset();
  if (zap_) zap_->stop();
}

void Node::describe_endpoints() {
  const auto tcp = [](const std::vector<std::string>& endpoints) {
    std::string list;
    for (const auto& e : endpoints)
      if (e.rfind("inproc://", 0) != 0) list += (list.empty() ? "" : " ") + e;
    return list;
  };
  zap_->describe(zap_domain("chat", "clients"), tcp(client_endpoints()));
  zap_->describe(zap_domain("chat", "publish"), tcp(pub_endpoints()));
  zap_->describe(zap_domain("chat", "peers"), tcp(options_.peer_endpoints));
  zap_->describe(zap_domain("presence", "clients"), tcp(presence_endpoints()));
  zap_->describe(zap_domain("presence", "publish"), tcp(presence_pub_endpoints()));
  zap_->describe(zap_domain("presence", "peers"), tcp(options_.presence_peer_endpoints));
}

const std::vector<std::string>& Node::client_endpoints() const { return chat_->mailbox_endpoints(); }
const std::vector<std::string>& Node::pub_endpoints() const { return chat_->publish_endpoints(); }
const std::vector<std::string>& Node::presence_endpoints() const { return presence_->mailbox_endpoints(); }
const std::vector<std::string>& Node::presence_pub_endpoints() const { return presence_->publish_endpoints(); }

}  // namespace switchboard::actors
