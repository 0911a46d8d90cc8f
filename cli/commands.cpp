#include "switchboard/cli/commands.hpp"

#include <signal.h>

#include <atomic>
#include <charconv>
#include <chrono>
#include <cstdio>
#include <ctime>
#include <filesystem>
#include <iostream>
#include <sstream>

#include <nlohmann/json.hpp>
#include <spdlog/sinks/stdout_color_sinks.h>
#include <spdlog/spdlog.h>

#include "switchboard/actors/bridge/json_codec.hpp"
#include "switchboard/actors/node.hpp"
#include "switchboard/actors/security.hpp"
#include "switchboard/client/client.hpp"
#include "switchboard/client/presence.hpp"
#include "switchboard/router/host_port.hpp"
#include "switchboard/router/placement.hpp"
#include "switchboard/router/topology.hpp"
#include "switchboard/transport/token.hpp"
#include "switchboard/common/utf8.hpp"

namespace switchboard::cli {

using client::Client;
using client::ClientOptions;
using transport::RoomMessage;

int fail(const std::string& what, const Error& error) {
  std::cerr << "switchboard: " << what << ": " << errc_name(error.code) << ": " << error.message << "\n";
  return 1;
}

std::string message_line(const RoomMessage& m) {
  const std::string head = "[" + m.room + " #" + std::to_string(m.seq) + "] " + m.user;
  const EntryFields& e = m.entry;
  const std::string target = "#" + std::to_string(e.target);
  switch (e.kind) {
    case EntryKind::edit: return head + " edited " + target + (e.deleted ? " (deleted since)" : ": " + m.body);
    case EntryKind::remove: return head + " deleted " + target;
    case EntryKind::react: return head + (e.on ? " reacted " + e.key + " to " : " took back " + e.key + " on ") + target;
    case EntryKind::message: break;
  }
  std::string line = head;
  if (e.thread != 0) line += " in thread #" + std::to_string(e.thread);
  if (e.reply_to != 0) line += " replying to #" + std::to_string(e.reply_to);
  line += e.deleted ? ": (deleted)" : ": " + m.body;
  if (e.edited_ts != 0) line += " (edited)";
  if (e.replies != 0)
    line += " (" + std::to_string(e.replies) + (e.replies == 1 ? " reply" : " replies") + ", last #" +
            std::to_string(e.last_reply) + ")";
  if (e.deleted) return line;
  if (!e.reactions.empty()) {
    line += " [";
    for (std::size_t i = 0; i < e.reactions.size(); ++i)
      line += (i ? ", " : "") + e.reactions[i].key + " " + std::to_string(e.reactions[i].count);
    line += "]";
  }
  return line;
}

Result<ClientOptions> client_options(const ClientArgs& args) {
  ClientOptions options;
  for (std::size_t from = 0; from <= args.connect.size();) {  // A or A,B,C
    const std::size_t comma = std::min(args.connect.find(',', from), args.connect.size());
    if (comma == from) return make_error(errc::bad_field, "--connect '" + args.connect + "' has an empty endpoint");
    options.endpoints.push_back(args.connect.substr(from, comma - from));
    from = comma + 1;
  }
  options.endpoint = options.endpoints.front();
  if (options.endpoints.size() == 1) options.endpoints.clear();
  options.wait_for_node = false;  // a person waits: "nothing listens there" at once, not after ten attempts
  if (!args.as.empty()) options.as = args.as;
  for (const auto& pair : args.node_keys) {
    const auto eq = pair.find('=');
    if (eq == std::string::npos || !transport::valid_curve_key(pair.substr(eq + 1)))
      return make_error(errc::bad_field, "--node-key '" + pair + "' is not ENDPOINT=KEY (a node's public key: 40 "
                                         "characters of Z85)");
    options.node_keys[pair.substr(0, eq)] = pair.substr(eq + 1);
  }
  if (args.curve) {
    auto keys = client::load_local_keys(args.keys);
    if (!keys)
      return Error{keys.error().code, keys.error().message + " (--keys names the node's DATA/keys directory; "
                                                             "--curve off for a node run without CURVE)"};
    options.curve = std::move(*keys);
  }
  return options;
}

Result<void> enter(Client& c, const ClientArgs& args) {
  if (auto r = c.create_room(args.room, args.user); !r) return r.error();
  if (auto r = c.join(args.room, args.user); !r) return r.error();
  return {};
}

namespace {

void print(const RoomMessage& m, bool json) {
  // The bridge's own writer: the same names and shapes as a `message` frame.
  std::cout << (json ? actors::bridge::message_object_json(m) : message_line(m)) << "\n";
  std::cout.flush();
}

Result<std::unique_ptr<Client>> connect(const ClientArgs& args) {
  auto options = client_options(args);
  if (!options) return options.error();
  return std::make_unique<Client>(*options);
}

// Set by SIGINT/SIGTERM in the client commands, which poll it between waits and then
// stop cleanly (exit 0). A second signal, while a request still waits for its answer,
// ends the process at once (SA_RESETHAND: the default action again).
std::atomic<bool> interrupted{false};
void on_signal(int) { interrupted = true; }
void catch_interrupts() {
  struct sigaction sa {};
  sa.sa_handler = on_signal;
  sa.sa_flags = SA_RESETHAND;
  sigaction(SIGINT, &sa, nullptr);
  sigaction(SIGTERM, &sa, nullptr);
}

/// The address of an HTTP listener (the bridge: + 10, metrics: + 20) when none is
/// given: the listen host, its port + `offset` ("*" stays "*"); the embedded default's
/// address for an endpoint that is not tcp.
std::string derived_address(const std::string& listen, unsigned offset, const char* default_host,
                            std::uint16_t default_port) {
  const std::string prefix = "tcp://";
  const auto colon = listen.rfind(':');
  if (listen.rfind(prefix, 0) != 0 || colon == std::string::npos || colon < prefix.size())
    return std::string(default_host) + ":" + std::to_string(default_port);
  std::string host = listen.substr(prefix.size(), colon - prefix.size());
  if (host == "*") host = "0.0.0.0";
  const std::string port = listen.substr(colon + 1);
  if (port == "*") return host + ":*";
  try {
    return host + ":" + std::to_string(std::stoul(port) + offset);
  } catch (const std::exception&) {
    return host + ":" + port;  // refused by parse_bridge_address
  }
}

/// The metrics endpoint `run` asks for: --metrics, else the topology node's key, else
/// (no file) the listen host and port + 20. nullopt for "off" or none; exits 2 through
/// `bad` for an address that is not HOST:PORT.
std::optional<actors::MetricsOptions> metrics_options(const RunArgs& args, const router::NodeConfig& node, bool& bad) {
  std::string metrics = args.metrics;
  if (metrics.empty())
    metrics = args.config.empty()
                  ? derived_address(args.listen, 20, actors::kDefaultMetricsAddress, actors::kDefaultMetricsPort)
                  : node.metrics;
  if (metrics.empty() || metrics == "off") return std::nullopt;
  auto address = actors::parse_bridge_address(metrics);
  if (!address) {
    std::cerr << "switchboard: the metrics address must be HOST:PORT (an IP address; [::1]:7420 for IPv6) or off; got '"
              << metrics << "'\n";
    bad = true;
    return std::nullopt;
  }
  // A derived default may be taken (another node on this host): then run without.
  return actors::MetricsOptions{address->host, address->port, !args.metrics.empty() || !args.config.empty()};
}

/// The HTTP API `run` asks for: --api, else the topology node's key, else (no file) the
/// listen host and port + 30; with the bridge's TLS files. nullopt for "off" or none;
/// exits 2 through `bad` for an address that is not HOST:PORT, 1 for keys that cannot
/// be read.
std::optional<actors::ApiOptions> api_options(const RunArgs& args, const router::Topology& topo,
                                              const router::NodeConfig& node, int& bad) {
  std::string api = args.api;
  if (api.empty())
    api = args.config.empty() ? derived_address(args.listen, 30, actors::kDefaultApiAddress, actors::kDefaultApiPort)
                              : node.api;
  if (api.empty() || api == "off") return std::nullopt;
  auto address = actors::parse_bridge_address(api);
  if (!address) {
    std::cerr << "switchboard: the API address must be HOST:PORT (an IP address; [::1]:7430 for IPv6) or off; got '"
              << api << "'\n";
    bad = 2;
    return std::nullopt;
  }
  auto keys = actors::api::node_api_keys(topo, node.name);
  if (!keys) {
    bad = fail("cannot start the HTTP API", keys.error());
    return std::nullopt;
  }
  actors::ApiOptions o;
  o.address = address->host;
  o.port = address->port;
  o.keys = std::move(*keys);
  o.tls_cert = args.bridge_cert.empty() ? node.bridge_cert : args.bridge_cert;
  o.tls_key = args.bridge_key.empty() ? node.bridge_key : args.bridge_key;
  // A derived default may be taken (another node on this host): then run without.
  o.required = !args.api.empty() || !args.config.empty();
  return o;
}

}  // namespace

/// Prints every error of a topology file as file:line:column: message.
bool report(const router::LoadResult& loaded) {
  for (const auto& e : loaded.errors) std::cerr << e.to_string() << "\n";
  return loaded.ok();
}

int where(const std::string& room, const std::string& config) {
  router::LoadResult loaded = config.empty()
                                  ? router::parse_topology("[nodes.embedded]\nclient = \"tcp://127.0.0.1:7400\"\n",
                                                           "the embedded default")
                                  : router::load_topology(config);
  if (!report(loaded)) return 1;
  const router::RoomPlacement placement(loaded.topology.shards);
  const auto& shard = placement.owner_of(room);
  const auto& node = loaded.topology.nodes.at(shard.owner);
  std::cout << "room " << room << ": shard " << shard.name << ", node " << node.name << " (" << node.client << ")\n";
  return 0;
}

int check_config(const std::string& file) {
  auto loaded = router::load_topology(file);
  if (!report(loaded)) return 1;
  std::cout << file << ": ok: " << loaded.topology.nodes.size() << " node(s), " << loaded.topology.shards.size()
            << " shard(s)\n";
  return 0;
}

int run(const RunArgs& args) {
  spdlog::set_default_logger(spdlog::stderr_color_mt("switchboard"));
  // Block the stop signals in every thread; this one waits for them.
  sigset_t stop_signals;
  sigemptyset(&stop_signals);
  sigaddset(&stop_signals, SIGINT);
  sigaddset(&stop_signals, SIGTERM);
  pthread_sigmask(SIG_BLOCK, &stop_signals, nullptr);

  // The same topology model serves a file and the command line: flags are a
  // one-node topology.
  router::Topology topo;
  router::NodeConfig node;
  if (!args.config.empty()) {
    auto loaded = router::load_topology(args.config);
    if (!report(loaded)) return 1;
    topo = std::move(loaded.topology);
    auto it = topo.nodes.find(args.node);
    if (it == topo.nodes.end()) {
      std::cerr << "switchboard: " << args.config << " has no node '" << args.node << "'\n";
      return 1;
    }
    node = it->second;
  } else {
    std::ostringstream file;
    file << "[nodes.\"" << args.name << "\"]\nclient = \"" << args.listen << "\"\n";
    if (!args.publish.empty()) file << "publish = \"" << args.publish << "\"\n";
    if (!args.presence.empty()) file << "presence = \"" << args.presence << "\"\n";
    if (!args.presence_pub.empty()) file << "presence_pub = \"" << args.presence_pub << "\"\n";
    file << "[presence]\nheartbeat_ms = " << args.heartbeat_ms << "\nsession_ttl_ms = " << args.session_ttl_ms << "\n";
    if (!args.limits.empty()) file << "[limits]\n";
    for (const std::string& limit : args.limits) {
      // KEY=INTEGER, checked here for shape and by the topology reader for the rest.
      const auto eq = limit.find('=');
      const std::string key = limit.substr(0, eq), value = eq == std::string::npos ? "" : limit.substr(eq + 1);
      if (key.empty() || value.empty() || key.find_first_not_of("abcdefghijklmnopqrstuvwxyz_") != std::string::npos ||
          value.find_first_not_of("0123456789") != std::string::npos) {
        std::cerr << "switchboard: --limit takes KEY=INTEGER, a key of [limits] (docs/TOPOLOGY.md); got '" << limit
                  << "'\n";
        return 2;
      }
      file << key << " = " << value << "\n";
    }
    auto loaded = router::parse_topology(file.str(), "command line");
    if (!report(loaded)) return 2;
    topo = std::move(loaded.topology);
    node = topo.nodes.begin()->second;
    node.data = args.data;
    node.sync = args.durability != "nosync";
    node.max_store_mb = args.max_store_mb;
  }
  topo.nodes[node.name] = node;
  actors::NodeOptions options = actors::node_options(topo, node.name);
  if (const std::string& file = args.store_key.empty() ? node.store_key : args.store_key; !file.empty()) {
    auto key = persistence::StoreKey::load(file);
    if (!key) return fail("cannot start the node", key.error());
    options.store_key = std::move(*key);
  }
  if (topo.security.curve && args.curve) {
    // Keys made at first start: say where, so that client commands can be pointed there.
    std::vector<std::filesystem::path> made;
    for (const auto& file : {actors::node_key_file(node), actors::local_client_key_file(node)})
      if (std::error_code ec; !std::filesystem::exists(file, ec)) made.push_back(file);
    if (!topo.security.local_client && made.size() == 2) made.pop_back();
    auto curve = actors::node_curve(topo, node.name);
    if (!curve) return fail("cannot start the node", Error{curve.error().code, (args.config.empty() ? "" : args.config + ": ") +
                                                                                 curve.error().message});
    options.curve = std::move(*curve);
    for (const auto& file : made)
      spdlog::info("wrote a new CURVE keypair: {} (secret, mode 0600) and {}.pub", file.string(), file.string());
    if (!made.empty())
      spdlog::info("client commands on this machine use them with --keys {} (the default for ./data)",
                   actors::local_client_key_file(node).parent_path().string());
  }
  std::string bridge = args.bridge;
  if (bridge.empty())
    bridge = args.config.empty()
                 ? derived_address(args.listen, 10, actors::kDefaultBridgeAddress, actors::kDefaultBridgePort)
                 : node.bridge;
  if (!bridge.empty() && bridge != "off") {
    auto address = actors::parse_bridge_address(bridge);
    if (!address) {
      std::cerr << "switchboard: the bridge address must be HOST:PORT (an IP address; [::1]:7410 for IPv6); got '"
                << bridge << "'\n";
      return 2;
    }
    actors::BridgeOptions b;
    b.address = address->host;
    b.port = address->port;
    b.web_root = args.web.empty() ? node.web : args.web;
    b.tls_cert = args.bridge_cert.empty() ? node.bridge_cert : args.bridge_cert;
    b.tls_key = args.bridge_key.empty() ? node.bridge_key : args.bridge_key;
    b.allowed_origins = args.bridge_origins.empty() ? node.bridge_origins : args.bridge_origins;
    for (const auto& origin : args.bridge_origins)  // a topology's are checked where it is read
      if (auto normalised = origin == "*" ? Result<std::string>(origin) : router::normalise_origin(origin);
          !normalised) {
        std::cerr << "switchboard: --bridge-origin: " << normalised.error().message << "\n";
        return 2;
      }
    // The topology's other bridges: the page this one serves may move to them, and
    // theirs to it. An address that names no one host (0.0.0.0, ::) is not an origin
    // a page can have: such a node's bridge needs its origins listed.
    for (const auto& [name, other] : topo.nodes) {
      if (name == node.name || other.bridge.empty() || other.bridge == "off") continue;
      auto at = actors::parse_bridge_address(other.bridge);
      if (!at || at->port == 0 || at->host == "0.0.0.0" || at->host == "::") continue;
      const std::string host = at->host.find(':') != std::string::npos ? "[" + at->host + "]" : at->host;
      b.peer_bridges.push_back((other.bridge_cert.empty() ? "http://" : "https://") + host + ":" +
                               std::to_string(at->port));
    }
    b.max_queued_frames = args.bridge_max_queue;
    b.handshake_timeout = std::chrono::milliseconds(args.bridge_handshake_ms);
    b.idle_timeout = std::chrono::milliseconds(args.bridge_idle_ms);
    // A derived default address may be taken; one asked for, or asked to serve TLS, must work.
    b.required = !args.bridge.empty() || !args.config.empty() || !b.tls_cert.empty() || !b.tls_key.empty();
    if (!args.token_key.empty()) {
      auto key = transport::load_token_public_key(args.token_key);
      if (!key) return fail("--token-key", key.error());
      b.token_key = *key;
    }
    options.bridge = std::move(b);
  }
  bool bad_metrics = false;
  options.metrics = metrics_options(args, node, bad_metrics);
  if (bad_metrics) return 2;
  int bad_api = 0;
  options.api = api_options(args, topo, node, bad_api);
  if (bad_api != 0) return bad_api;
  auto running = actors::Node::start(options);
  if (!running) return fail("cannot start the node", running.error());

  // The ready line: tests and scripts wait for it and read the endpoints from it.
  std::cout << "switchboard ready node=" << options.name << " client=" << (*running)->client_endpoints().front()
            << " pub=" << (*running)->pub_endpoints().front() << " data=" << node.data
            << " durability=" << (node.sync ? "sync" : "nosync")
            << " presence=" << (*running)->presence_endpoints().front()
            << " presence_pub=" << (*running)->presence_pub_endpoints().front();
  if (!(*running)->peer_endpoints().empty()) std::cout << " peer=" << (*running)->peer_endpoints().front();
  if (const auto* b = (*running)->bridge()) {
    std::cout << " bridge=" << b->url();
    if (!options.bridge->web_root.empty()) std::cout << " web=http" << b->url().substr(2);  // ws[s]://… -> http[s]://…
  }
  if (const auto* m = (*running)->metrics_server()) std::cout << " metrics=" << m->url();
  if (const auto* a = (*running)->api()) std::cout << " api=" << a->url();
  std::cout << " curve=" << (options.curve ? options.curve->own.public_key : "off") << std::endl;

  int signal = 0;
  sigwait(&stop_signals, &signal);
  spdlog::info("signal {}: stopping", signal);
  (*running)->stop();
  std::cout << "switchboard stopped" << std::endl;
  return 0;
}

int post(const ClientArgs& args, const std::string& text, const std::string& client_msg_id,
         const std::vector<std::string>& mentions, std::uint64_t reply_to, std::uint64_t thread) {
  auto connected = connect(args);
  if (!connected) return fail("cannot connect", connected.error());
  auto& c = *connected;
  if (auto r = enter(*c, args); !r) return fail("cannot enter room '" + args.room + "'", r.error());
  transport::Publish message{args.room, args.user, client_msg_id, text, mentions};
  message.reply_to = reply_to;
  message.thread = thread;
  auto ack = c->publish(std::move(message));
  if (!ack) return fail("post failed", ack.error());
  std::cout << ack->seq << std::endl;
  return 0;
}

int change(const ClientArgs& args, EntryKind kind, std::uint64_t target, const std::string& text, bool on) {
  auto connected = connect(args);
  if (!connected) return fail("cannot connect", connected.error());
  auto& c = *connected;
  auto ack = kind == EntryKind::edit     ? c->edit(args.room, args.user, target, text)
             : kind == EntryKind::remove ? c->remove(args.room, args.user, target)
                                         : c->react(args.room, args.user, target, text, on);
  if (!ack) return fail(std::string(entry_kind_name(kind)) + " failed", ack.error());
  std::cout << ack->seq << std::endl;
  return 0;
}

int tail(const ClientArgs& args, std::optional<std::uint64_t> from, std::optional<std::uint64_t> count) {
  catch_interrupts();
  auto connected = connect(args);
  if (!connected) return fail("cannot connect", connected.error());
  auto& c = *connected;
  std::optional<std::uint64_t> after;
  if (from) after = *from == 0 ? 0 : *from - 1;
  if (auto r = c->subscribe(args.room, after); !r) return fail("cannot follow '" + args.room + "'", r.error());
  std::uint64_t printed = 0;
  while (!interrupted && (!count || printed < *count)) {
    auto m = c->next(client::Millis(200));
    if (!m) return fail("following '" + args.room + "'", m.error());
    for (const auto& t : c->take_truncations())  // said before the first message kept
      std::cerr << "switchboard: older messages of '" << t.room << "' were removed: its history starts at seq "
                << t.first_seq << "\n";
    if (*m) {
      print(**m, args.json);
      ++printed;
    }
  }
  return 0;
}

int history(const ClientArgs& args, std::uint32_t limit, std::optional<std::uint64_t> before,
            std::optional<std::uint64_t> after, std::uint64_t thread) {
  auto connected = connect(args);
  if (!connected) return fail("cannot connect", connected.error());
  auto& c = *connected;
  auto page = c->history(args.room, client::HistoryQuery{limit, before, after, thread});
  if (!page) return fail("history of '" + args.room + "'", page.error());
  if (page->first_seq != 0)
    std::cerr << "switchboard: older messages of '" << args.room << "' were removed: its history starts at seq "
              << page->first_seq << "\n";
  for (const auto& m : page->messages) print(m, args.json);
  return 0;
}

int room(const ClientArgs& args, const std::string& action, const std::string& role_name, bool private_room) {
  std::optional<Role> role;
  if (!role_name.empty() && !(role = role_from_name(role_name)))
    return fail("--role", Error{errc::bad_field, "'" + role_name + "' is not a role: owner, member or reader"});
  auto connected = connect(args);
  if (!connected) return fail("cannot connect", connected.error());
  auto& c = *connected;
  const std::string what = action + " in '" + args.room + "'";
  auto done = [&](const Result<bool>& changed, const char* yes, const char* no) {
    if (!changed) return fail(what, changed.error());
    std::cout << (*changed ? yes : no) << std::endl;
    return 0;
  };
  if (action == "create") return done(c->create_room(args.room, args.user, private_room), "created", "exists already");
  if (action == "add") return done(c->add_member(args.room, args.user, role.value_or(Role::member)), "added", "a member already");
  if (action == "remove") return done(c->remove_member(args.room, args.user), "removed", "not a member");
  if (action == "ban") return done(c->ban(args.room, args.user), "banned", "banned already");
  if (action == "unban") return done(c->unban(args.room, args.user), "unbanned", "not banned");
  if (action == "kick") return done(c->kick(args.room, args.user), "kicked", "not a member (their following ended)");
  if (action == "role") return done(c->set_role(args.room, args.user, role.value_or(Role::member)), "changed", "unchanged");
  if (action == "delete") return done(c->delete_room(args.room), "deleted", "not deleted");
  auto members = c->members_with_roles(args.room);
  if (!members) return fail(what, members.error());
  for (std::size_t i = 0; i < members->members.size(); ++i)
    std::cout << members->members[i] << "\t" << (i < members->roles.size() ? switchboard::role_name(members->roles[i]) : "?")
              << std::endl;
  return 0;
}

int who(const ClientArgs& args) {
  auto options = client_options(args);
  if (!options) return fail("cannot connect", options.error());
  Client c(*options);
  auto presence = client::PresenceClient::connect(c, *options);
  if (!presence) return fail("cannot reach presence", presence.error());
  auto here = (*presence)->who(args.room);
  if (!here) return fail("who is in '" + args.room + "'", here.error());
  for (const auto& u : here->users) {
    if (args.json) {
      nlohmann::json j = {{"room", args.room}, {"user", u.user}, {"status", transport::availability_name(u.status)},
                          {"text", u.text}};
      std::cout << j.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace) << "\n";
    } else {
      std::cout << u.user << " (" << transport::availability_name(u.status) << (u.text.empty() ? "" : ": " + u.text)
                << ")\n";
    }
  }
  return 0;
}

/// `ms` since the epoch as UTC ISO 8601 to the second ("2026-12-07T03:01:02Z").
static std::string utc_time(std::uint64_t ms) {
  const std::time_t t = static_cast<std::time_t>(ms / 1000);
  std::tm tm{};
  gmtime_r(&t, &tm);
  char text[32];
  std::strftime(text, sizeof text, "%Y-%m-%dT%H:%M:%SZ", &tm);
  return text;
}

int status(const ClientArgs& args) {
  auto options = client_options(args);
  if (!options) return fail("cannot connect", options.error());
  Client c(*options);
  auto presence = client::PresenceClient::connect(c, *options);
  if (!presence) return fail("cannot reach presence", presence.error());
  auto s = (*presence)->status(args.user);
  if (!s) return fail("the status of '" + args.user + "'", s.error());
  if (args.json) {
    nlohmann::json j = {{"user", s->user}, {"online", s->online}};
    if (s->online) j["status"] = transport::availability_name(s->status), j["text"] = s->text;
    if (s->last_seen) j["last_seen"] = *s->last_seen;
    std::cout << j.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace) << "\n";
    return 0;
  }
  std::cout << s->user << ": ";
  if (s->online)
    std::cout << "online (" << transport::availability_name(s->status) << (s->text.empty() ? "" : ": " + s->text) << ")";
  else if (s->last_seen)
    std::cout << "offline, last seen " << utc_time(*s->last_seen);
  else
    std::cout << "offline";
  std::cout << "\n";
  return 0;
}

int call(const ClientArgs& args, const std::string& service, const std::string& body) {
  auto connected = connect(args);
  if (!connected) return fail("cannot connect", connected.error());
  auto& c = *connected;
  auto answer = c->call_service(service, args.user, body);
  if (!answer) return fail("call of service '" + service + "'", answer.error());
  std::cout << *answer << "\n";
  return 0;
}

/// The nodes a gathered answer is missing (down, or not reachable yet), when there are any.
static void print_missing(const std::vector<std::string>& nodes) {
  if (nodes.empty()) return;
  std::cout << "not answering:";
  for (const auto& n : nodes) std::cout << " " << n;
  std::cout << "\n";
}

int export_room(const ClientArgs& args, std::uint64_t after) {
  auto connected = connect(args);
  if (!connected) return fail("cannot connect", connected.error());
  const auto started = std::chrono::steady_clock::now();
  std::uint64_t count = 0, first = 0;
  auto last = (*connected)->read_history(args.room, after, [&](const transport::HistoryPage& page) {
    for (const auto& m : page.messages) {
      // The bridge's JSON writer (bodies are UTF-8: checked when they were published).
      actors::bridge::JsonWriter w(m.body.size() + 128);
      w.begin_object().u64("seq", m.seq).str("user", m.user).u64("ts", m.ts_ms).str("body", m.body).str("cmid",
                                                                                                          m.client_msg_id);
      if (!m.mentions.empty()) {
        w.key("mentions").begin_array();
        for (auto name : m.mentions) w.str(name);
        w.end_array();
      }
      w.end_object();
      std::string text = w.take();
      text += '\n';
      std::fwrite(text.data(), 1, text.size(), stdout);
      if (count++ == 0) first = m.seq;
    }
    return !std::ferror(stdout);
  });
  std::fflush(stdout);
  if (std::ferror(stdout)) return fail("export", make_error(errc::unavailable, "writing the output failed"));
  if (!last) return fail("export of '" + args.room + "'", last.error());
  const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - started).count();
  if (count == 0)
    std::fprintf(stderr, "export: no messages in '%s' after seq %llu\n", args.room.c_str(),
                 static_cast<unsigned long long>(after));
  else
    std::fprintf(stderr, "export: %llu messages of '%s', seq %llu to %llu (%.1f s)\n",
                 static_cast<unsigned long long>(count), args.room.c_str(), static_cast<unsigned long long>(first),
                 static_cast<unsigned long long>(*last), seconds);
  return 0;
}

int backup(const ClientArgs& args, const std::string& out) {
  auto connected = connect(args);
  if (!connected) return fail("cannot connect", connected.error());
  const auto started = std::chrono::steady_clock::now();
  auto last_shown = started;
  constexpr double kMiB = 1024.0 * 1024.0;
  auto made = (*connected)->backup(out, [&](std::uint64_t received, std::uint64_t estimate) {
    const auto now = std::chrono::steady_clock::now();
    if (now - last_shown < std::chrono::seconds(1)) return;
    last_shown = now;
    std::fprintf(stderr, "backup: %.1f MiB received (the store uses %.1f MiB)\n", received / kMiB, estimate / kMiB);
  });
  if (!made) return fail("backup", made.error());
  const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - started).count();
  std::printf("backup: %llu bytes in %s (%.1f s, %.0f MiB/s)\n", static_cast<unsigned long long>(*made),
              (std::filesystem::path(out) / "data.mdb").c_str(), seconds, seconds > 0 ? *made / kMiB / seconds : 0.0);
  return 0;
}

int shards(const ClientArgs& args) {
  auto connected = connect(args);
  if (!connected) return fail("cannot connect", connected.error());
  auto list = (*connected)->shards();
  if (!list) return fail("shards", list.error());
  for (const auto& s : list->shards) {
    if (args.json) {
      nlohmann::json replicas = nlohmann::json::array();
      for (const auto& r : s.replicas)
        replicas.push_back({{"node", r.node}, {"lsn", r.lsn}, {"lag", s.primary_up && s.lsn >= r.lsn ? s.lsn - r.lsn : 0},
                            {"up", r.up}});
      nlohmann::json j = {{"shard", s.name}, {"primary", s.primary}, {"primary_up", s.primary_up}, {"ack", s.ack},
                          {"term", s.term}, {"lsn", s.lsn}, {"replicas", replicas}};
      std::cout << j.dump() << "\n";
      continue;
    }
    std::cout << s.name << ": primary " << (s.primary.empty() ? "none (an election is on, or the shard has not started)" : s.primary)
              << (s.primary_up || s.primary.empty() ? "" : " (down)") << ", ack " << s.ack;
    if (s.term > 1) std::cout << ", term " << s.term << " (failed over)";
    if (s.primary_up && !s.replicas.empty()) std::cout << ", log at " << s.lsn;
    if (s.replicas.empty()) std::cout << ", no replicas";
    for (const auto& r : s.replicas) {
      std::cout << "\n  replica " << r.node << ": ";
      if (!r.up) std::cout << "down, ";
      if (s.primary_up) std::cout << "lag " << (s.lsn >= r.lsn ? s.lsn - r.lsn : 0) << " (has " << r.lsn << ")";
      else std::cout << "has " << r.lsn;
    }
    std::cout << "\n";
  }
  print_missing(list->missing);
  return 0;
}

int unread(const ClientArgs& args, const std::vector<std::string>& mark) {
  auto connected = connect(args);
  if (!connected) return fail("cannot connect", connected.error());
  for (const auto& m : mark) {
    const auto eq = m.rfind('=');
    std::uint64_t seq = 0;
    const char* end = m.data() + m.size();
    const auto parsed = eq == std::string::npos ? std::from_chars_result{} : std::from_chars(m.data() + eq + 1, end, seq);
    if (eq == std::string::npos || eq == 0 || parsed.ec != std::errc{} || parsed.ptr != end) {
      std::cerr << "switchboard: --mark " << m << ": give ROOM=SEQ (an unsigned seq)\n";
      return 1;
    }
    auto marked = (*connected)->mark_read(m.substr(0, eq), args.user, seq);
    if (!marked) return fail("mark_read " + m.substr(0, eq), marked.error());
  }
  auto rooms = (*connected)->rooms_summary(args.user);
  if (!rooms) return fail("rooms", rooms.error());
  for (const auto& s : rooms->summaries) {
    if (args.json) {
      nlohmann::json j = {{"room", s.room},         {"role", role_name(s.role)},   {"unread", s.unread},
                          {"read_seq", s.read_seq}, {"last_seq", s.last_seq},      {"last_ts", s.last_ts_ms},
                          {"last_user", s.last_user}, {"preview", s.preview}, {"mentions", s.mentions}};
      std::cout << j.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace) << "\n";
      continue;
    }
    std::cout << s.room << ": " << s.unread << " unread";
    if (s.mentions > 0) std::cout << ", " << s.mentions << (s.mentions == 1 ? " mention" : " mentions");
    if (s.last_seq > 0) std::cout << " (read to " << s.read_seq << " of " << s.last_seq << "); newest " << s.last_user << ": " << s.preview;
    std::cout << "\n";
  }
  print_missing(rooms->missing);
  return 0;
}

int keygen(const std::string& kind, const std::string& out, bool force) {
  if (kind != "store" && !force)
    for (const std::string& file : {out, out + ".pub"})
      if (std::error_code ec; std::filesystem::exists(file, ec))
        return fail("keygen", make_error(errc::bad_field,
                                         "'" + file + "' exists: a new key would replace it, and whatever trusts its "
                                         "public key would stop working; give --force to replace it"));
  if (kind == "store") {
    auto saved = persistence::StoreKey::generate().save(out);
    if (!saved) return fail("keygen", saved.error());
    std::cout << "store key in " << out << " (mode 0600; keep it, and keep it secret: without it the sealed "
              << "messages cannot be read)\n";
    return 0;
  }
  if (kind == "curve") {
    const auto keys = transport::generate_curve_keypair();
    if (auto saved = transport::save_curve_keypair(keys, out); !saved) return fail("keygen", saved.error());
    std::cerr << "CURVE secret key in " << out << " (mode 0600: keep it secret), public key in " << out << ".pub\n";
    std::cout << keys.public_key << "\n";
    return 0;
  }
  if (kind != "tokens") return fail("keygen", make_error(errc::bad_field, "unknown key kind '" + kind + "'"));
  auto saved = transport::save_token_key(transport::generate_token_key(), out);
  if (!saved) return fail("keygen", saved.error());
  std::cout << "token signing key in " << out << " (keep it secret), public key in " << out << ".pub\n";
  return 0;
}

int token(const TokenArgs& args) {
  const transport::Limits limits;
  if (args.user.size() > limits.max_user || !valid_name(args.user))
    return fail("token", make_error(errc::bad_field, "--user must be a user name of at most " +
                                                         std::to_string(limits.max_user) + " bytes, no control characters"));
  for (const auto& room : args.rooms)
    if (room.size() > limits.max_room || !valid_name(room))
      return fail("token", make_error(errc::bad_field, "--room '" + room + "' is not a room name"));
  auto key = transport::load_token_secret_key(args.key);
  if (!key) return fail("token", key.error());
  const auto now = std::chrono::duration_cast<std::chrono::seconds>(std::chrono::system_clock::now().time_since_epoch());
  std::cout << transport::issue_token({args.user, static_cast<std::uint64_t>(now.count()) + args.ttl_s, args.rooms}, *key)
            << "\n";
  return 0;
}

}  // namespace switchboard::cli
