#include "switchboard/router/topology.hpp"

#include <algorithm>
#include <cctype>
#include <filesystem>
#include <fstream>
#include <set>
#include <sstream>

#include <toml++/toml.h>

#include "switchboard/common/utf8.hpp"
#include "switchboard/router/host_port.hpp"
#include "switchboard/transport/curve.hpp"

namespace switchboard::router {
namespace {

/// Collects errors while walking the document.
class Checker {
 public:
  explicit Checker(std::string file) : file_(std::move(file)) {}

  void error(const toml::source_region& at, std::string message) {
    errors_.push_back({file_, at.begin.line, at.begin.column, std::move(message)});
  }
  std::vector<ConfigError> take() { return std::move(errors_); }

  /// Every key of `table` must be one of `allowed`.
  void known_keys(const toml::table& table, std::initializer_list<std::string_view> allowed, const std::string& where) {
    for (auto&& [key, node] : table) {
      bool known = false;
      for (auto a : allowed) known = known || key.str() == a;
      if (!known) {
        std::string list;
        for (auto a : allowed) list += (list.empty() ? "" : ", ") + std::string(a);
        error(key.source(), "unknown key '" + std::string(key.str()) + "' in " + where + " (known: " + list + ")");
      }
    }
  }

  bool string(const toml::table& t, std::string_view key, std::string& out, const std::string& where) {
    const toml::node* n = t.get(key);
    if (n == nullptr) return false;
    if (!n->is_string()) {
      error(n->source(), "'" + std::string(key) + "' in " + where + " must be a string");
      return false;
    }
    out = *n->value<std::string>();
    return true;
  }

  bool boolean(const toml::table& t, std::string_view key, bool& out, const std::string& where) {
    const toml::node* n = t.get(key);
    if (n == nullptr) return false;
    if (!n->is_boolean()) {
      error(n->source(), "'" + std::string(key) + "' in " + where + " must be true or false");
      return false;
    }
    out = *n->value<bool>();
    return true;
  }

  /// A CURVE public key: 40 characters of Z85.
  bool curve_key(const toml::node& n, std::string& out, const std::string& what) {
    if (!n.is_string() || !transport::valid_curve_key(*n.value<std::string>())) {
      error(n.source(), what + " must be a CURVE public key: 40 characters of Z85 (switchboard keygen --for curve "
                               "prints one)");
      return false;
    }
    out = *n.value<std::string>();
    return true;
  }

  /// The table's CURVE keys: curve_secret_file (a string) and curve_public (a key).
  void curve_keys(const toml::table& t, std::string& secret_file, std::string& public_key, const std::string& where) {
    string(t, "curve_secret_file", secret_file, where);
    if (const toml::node* n = t.get("curve_public")) curve_key(*n, public_key, "'curve_public' in " + where);
  }

  /// An integer in [min, max].
  template <class T>
  bool integer(const toml::table& t, std::string_view key, T& out, std::int64_t min, std::int64_t max,
               const std::string& where) {
    const toml::node* n = t.get(key);
    if (n == nullptr) return false;
    if (!n->is_integer()) {
      error(n->source(), "'" + std::string(key) + "' in " + where + " must be an integer");
      return false;
    }
    std::int64_t v = *n->value<std::int64_t>();
    if (v < min || v > max) {
      error(n->source(), "'" + std::string(key) + "' in " + where + " must be between " + std::to_string(min) +
                             " and " + std::to_string(max) + "; got " + std::to_string(v));
      return false;
    }
    out = static_cast<T>(v);
    return true;
  }

  const toml::table* table(const toml::node* n, const std::string& what) {
    if (n == nullptr) return nullptr;
    if (!n->is_table()) {
      error(n->source(), what + " must be a table");
      return nullptr;
    }
    return n->as_table();
  }

 private:
  std::string file_;
  std::vector<ConfigError> errors_;
};

/// An array of API keys, `out`: each valid_api_key and listed once in the file
/// (`owner_of`: each key seen so far, and where).
void read_api_keys(Checker& c, const toml::node& n, const std::string& where, std::vector<std::string>& out,
                   std::map<std::string, std::string>& owner_of) {
  if (!n.is_array()) return c.error(n.source(), "'api_keys' in " + where + " must be an array of strings");
  for (const toml::node& item : *n.as_array()) {
    const auto* text = item.as_string();
    if (!text || !valid_api_key(text->get())) {
      c.error(item.source(), "each of 'api_keys' in " + where +
                                 " must be 32 to 256 printable ASCII characters without spaces");
      continue;
    }
    auto [it, fresh] = owner_of.emplace("api " + text->get(), where);
    if (!fresh) {
      c.error(item.source(), "API key " + text->get().substr(0, 4) + "... in " + where + " is also in " + it->second +
                                 ": a key has one set of rights");
      continue;
    }
    out.push_back(text->get());
  }
}

/// A non-empty array of strings at `key` of `t`, each checked by `each(item, out)`.
template <class Each>
void read_list(Checker& c, const toml::table& t, std::string_view key, const std::string& where,
               std::vector<std::string>& out, const Each& each) {
  const toml::node* n = t.get(key);
  if (n == nullptr) return;
  if (!n->is_array() || n->as_array()->empty()) {
    c.error(n->source(), "'" + std::string(key) + "' in " + where + " must be a non-empty array");
    return;
  }
  out.clear();
  for (const toml::node& item : *n->as_array()) each(item, out);
}

/// A list of user or room names, or prefixes ending in '*' ("*": any).
void read_names(Checker& c, const toml::table& t, std::string_view key, const std::string& where,
                std::vector<std::string>& out) {
  read_list(c, t, key, where, out, [&](const toml::node& item, std::vector<std::string>& into) {
    const auto* text = item.as_string();
    if (!text || !valid_name(text->get()))
      return c.error(item.source(), "each of '" + std::string(key) + "' in " + where +
                                        " must be a name, or \"*\" for any");
    into.push_back(text->get());
  });
}

bool valid_node_name(const std::string& name);

// [webhooks.NAME] tables (docs/WEBHOOKS.md).
void read_webhooks(Checker& c, const toml::table& webhooks, std::map<std::string, WebhookConfig>& out) {
  for (auto&& [name_key, node] : webhooks) {
    const std::string name(name_key.str());
    const std::string where = "[webhooks." + name + "]";
    const toml::table* t = c.table(&node, where);
    if (!t) continue;
    if (!valid_node_name(name))
      c.error(name_key.source(), "webhook name '" + name + "' must be 1 to 64 letters, digits, '-', '_' or '.'");
    c.known_keys(*t, {"url", "secret", "events", "rooms", "users", "connections", "max_batch", "timeout_ms", "window_ms"},
                 where);
    WebhookConfig w;
    w.name = name;
    if (!c.string(*t, "url", w.url, where)) {
      if (!t->get("url")) c.error(t->source(), where + " has no 'url' (where events are POSTed)");
    } else if (auto url = parse_http_url(w.url); !url) {
      c.error(t->get("url")->source(), "'url' in " + where + ": " + url.error().message);
    }
    if (!c.string(*t, "secret", w.secret, where)) {
      if (!t->get("secret"))
        c.error(t->source(), where + " has no 'secret' (the key every request is signed with: 32 to 256 printable "
                                     "ASCII characters)");
    } else if (!valid_api_key(w.secret)) {
      c.error(t->get("secret")->source(),
              "'secret' in " + where + " must be 32 to 256 printable ASCII characters without spaces");
    }
    read_list(c, *t, "events", where, w.events, [&](const toml::node& item, std::vector<std::string>& into) {
      const auto* text = item.as_string();
      static const std::set<std::string, std::less<>> kKinds{"message", "membership", "room", "presence", "notification"};
      if (!text || !kKinds.count(text->get()))
        return c.error(item.source(), "each of 'events' in " + where + " must be \"message\", \"membership\", "
                                      "\"room\", \"presence\" or \"notification\"");
      if (std::find(into.begin(), into.end(), text->get()) != into.end())
        return c.error(item.source(), "'events' in " + where + " names \"" + text->get() + "\" twice");
      into.push_back(text->get());
    });
    if (w.events.size() > 1 && std::find(w.events.begin(), w.events.end(), "notification") != w.events.end())
      c.error(t->get("events")->source(), "'events' in " + where + " names \"notification\" with other kinds: "
                                          "notifications go to a url of their own");
    std::int64_t window = w.window.count();
    if (c.integer(*t, "window_ms", window, 0, 60'000, where) && w.events != std::vector<std::string>{"notification"})
      c.error(t->get("window_ms")->source(), "'window_ms' in " + where + " is for a webhook of notifications");
    w.window = std::chrono::milliseconds(window);
    if (t->get("max_batch") && w.events == std::vector<std::string>{"notification"})
      c.error(t->get("max_batch")->source(), "'max_batch' in " + where + " is for a webhook of events (a "
                                             "notification is one request per member)");
    read_names(c, *t, "rooms", where, w.rooms);
    read_names(c, *t, "users", where, w.users);
    c.integer(*t, "connections", w.connections, 1, 64, where);
    c.integer(*t, "max_batch", w.max_batch, 1, 1000, where);
    std::int64_t timeout = w.timeout.count();
    c.integer(*t, "timeout_ms", timeout, 1, 600'000, where);
    w.timeout = std::chrono::milliseconds(timeout);
    out.emplace(name, std::move(w));
  }
}

// [security.grants.NAME] tables: keys or api_keys (one at least), users, rooms, ops.
void read_grants(Checker& c, const toml::table& grants, SecurityConfig& security,
                 std::map<std::string, std::string>& owner_of) {
  for (const auto& key : security.client_keys) owner_of[key] = "client_keys";
  for (auto&& [name_key, node] : grants) {
    const std::string name(name_key.str());
    const std::string where = "[security.grants." + name + "]";
    const toml::table* t = c.table(&node, where);
    if (!t) continue;
    c.known_keys(*t, {"keys", "api_keys", "users", "rooms", "ops"}, where);
    Grant grant;
    grant.name = name;
    auto names = [&](std::string_view key, std::vector<std::string>& out, const auto& each) {
      read_list(c, *t, key, where, out, each);
    };
    names("keys", grant.keys, [&](const toml::node& item, std::vector<std::string>& out) {
      std::string key;
      if (!c.curve_key(item, key, "each of 'keys' in " + where)) return;
      auto [it, fresh] = owner_of.emplace(key, where);
      if (!fresh) return c.error(item.source(), "key " + key.substr(0, 8) + "... in " + where + " is also in " +
                                                    it->second + ": a key has one set of rights");
      out.push_back(key);
    });
    if (const toml::node* api = t->get("api_keys")) read_api_keys(c, *api, where, grant.api_keys, owner_of);
    if (!t->get("keys") && !t->get("api_keys"))
      c.error(t->source(), where + " needs 'keys' (the CURVE public keys it grants rights to), 'api_keys' (the HTTP "
                                   "API's bearer keys), or both");
    read_names(c, *t, "users", where, grant.users);
    read_names(c, *t, "rooms", where, grant.rooms);
    std::string ops = "write";
    if (c.string(*t, "ops", ops, where)) {
      if (ops == "read") grant.ops = Grant::Ops::read;
      else if (ops == "write") grant.ops = Grant::Ops::write;
      else if (ops == "manage") grant.ops = Grant::Ops::manage;
      else c.error(t->get("ops")->source(), "'ops' in " + where + " must be \"read\", \"write\" or \"manage\"; got \"" + ops + "\"");
    }
    security.grants.emplace(name, std::move(grant));
  }
}

bool valid_endpoint(const std::string& e) {
  for (const char* scheme : {"tcp://", "ipc://", "inproc://"})
    if (e.rfind(scheme, 0) == 0 && e.size() > std::string_view(scheme).size()) return true;
  return false;
}

bool valid_node_name(const std::string& name) {
  if (name.empty() || name.size() > 64) return false;
  for (unsigned char ch : name)
    if (!std::isalnum(ch) && ch != '-' && ch != '_' && ch != '.') return false;
  return true;
}

/// Same host, port + offset: the default for a node's other endpoints.
std::string sibling(const std::string& client, int offset) {
  if (client.rfind("tcp://", 0) != 0) return client + "-" + std::to_string(offset);
  auto colon = client.rfind(':');
  std::string port = client.substr(colon + 1);
  if (port == "*" || port == "0") return client.substr(0, colon) + ":*";
  try {
    return client.substr(0, colon) + ":" + std::to_string(std::stoi(port) + offset);
  } catch (const std::exception&) {
    return {};
  }
}

void read_limits(Checker& c, const toml::table& t, transport::Limits& l) {
  const std::string where = "[limits]";
  c.known_keys(t, {"max_frame", "max_socket_message", "max_body", "max_room", "max_user", "max_client_msg_id",
                   "max_array", "max_map", "max_depth", "default_history_page", "max_history_page",
                   "dedup_window_ms", "dedup_max_entries", "pub_sndhwm", "reply_hwm", "max_session",
                   "max_status_text", "publish_per_s", "publish_burst", "typing_per_s", "typing_burst",
                   "requests_per_s", "request_burst", "max_rooms_per_user", "max_mentions", "retention_max_age_s",
                   "retention_max_messages", "retention_default_age_s", "retention_default_messages",
                   "edit_window_s", "delete_window_s", "max_reaction_keys"},
               where);
  constexpr std::int64_t kMiB = 1 << 20;
  c.integer(t, "max_frame", l.max_frame, 64, 256 * kMiB, where);
  c.integer(t, "max_socket_message", l.max_socket_message, 64, 1024 * kMiB, where);
  c.integer(t, "max_body", l.max_body, 1, 256 * kMiB, where);
  c.integer(t, "max_room", l.max_room, 1, 500, where);  // an LMDB key holds at most 511 bytes
  c.integer(t, "max_user", l.max_user, 1, 500, where);
  c.integer(t, "max_client_msg_id", l.max_client_msg_id, 1, 1024, where);
  c.integer(t, "max_array", l.max_array, 1, 1 << 24, where);
  c.integer(t, "max_map", l.max_map, 8, 1 << 16, where);
  c.integer(t, "max_depth", l.max_depth, 2, 64, where);
  c.integer(t, "default_history_page", l.default_history_page, 1, 100000, where);
  c.integer(t, "max_history_page", l.max_history_page, 1, 100000, where);
  c.integer(t, "max_rooms_per_user", l.max_rooms_per_user, 1, 100'000'000, where);
  c.integer(t, "max_mentions", l.max_mentions, 0, 1 << 16, where);
  constexpr std::int64_t kCentury = 100LL * 366 * 24 * 3600;
  c.integer(t, "retention_max_age_s", l.retention_max_age_s, 0, kCentury, where);
  c.integer(t, "retention_default_age_s", l.retention_default_age_s, 0, kCentury, where);
  c.integer(t, "retention_max_messages", l.retention_max_messages, 0, 1LL << 48, where);
  c.integer(t, "retention_default_messages", l.retention_default_messages, 0, 1LL << 48, where);
  c.integer(t, "edit_window_s", l.edit_window_s, 0, kCentury, where);
  c.integer(t, "delete_window_s", l.delete_window_s, 0, kCentury, where);
  // At most a client's default map size (32): a message's `reactions` is one map.
  c.integer(t, "max_reaction_keys", l.max_reaction_keys, 1, 32, where);
  for (auto [name, value] : {std::pair{"publish_per_s", &l.publish_per_s}, std::pair{"publish_burst", &l.publish_burst},
                             std::pair{"typing_per_s", &l.typing_per_s}, std::pair{"typing_burst", &l.typing_burst},
                             std::pair{"requests_per_s", &l.requests_per_s},
                             std::pair{"request_burst", &l.request_burst}})
    c.integer(t, name, *value, 0, 1'000'000, where);
  std::int64_t window = l.dedup_window.count();
  if (c.integer(t, "dedup_window_ms", window, 0, 7LL * 24 * 3600 * 1000, where))
    l.dedup_window = std::chrono::milliseconds(window);
  c.integer(t, "dedup_max_entries", l.dedup_max_entries, 0, 1LL << 32, where);
  c.integer(t, "pub_sndhwm", l.pub_sndhwm, 0, 1 << 30, where);
  c.integer(t, "reply_hwm", l.reply_hwm, 0, 1 << 30, where);
  c.integer(t, "max_session", l.max_session, 1, 500, where);
  c.integer(t, "max_status_text", l.max_status_text, 0, 64 * 1024, where);
  l.max_string = std::max(l.max_string, l.max_frame);
  auto at = t.source();
  if (l.max_socket_message < l.max_frame)
    c.error(at, "[limits] max_socket_message must be at least max_frame");
  if (l.max_body > l.max_frame) c.error(at, "[limits] max_body must be at most max_frame");
  if (l.max_mentions > l.max_array) c.error(at, "[limits] max_mentions must be at most max_array");
  if (l.default_history_page > l.max_history_page)
    c.error(at, "[limits] default_history_page must be at most max_history_page");
}

}  // namespace

bool valid_api_key(std::string_view key) {
  return key.size() >= 32 && key.size() <= 256 &&
         std::all_of(key.begin(), key.end(), [](char ch) { return ch > 0x20 && ch < 0x7F; });
}

std::string Topology::owner_of_shard(std::string_view shard) const {
  for (const auto& s : shards)
    if (s.name == shard) return s.owner;
  return {};
}

std::string ConfigError::to_string() const {
  return file + ":" + std::to_string(line) + ":" + std::to_string(column) + ": " + message;
}

// A shard's `replicas`, `ack` and `ack_replicas` (docs/REPLICATION.md).
void read_replicas(Checker& c, const toml::table& t, const Topology& topo, ShardConfig& shard) {
  const std::string where = "shard '" + shard.name + "'";
  if (const toml::node* replicas = t.get("replicas")) {
    if (!replicas->is_array()) {
      c.error(replicas->source(), "'replicas' of " + where + " must be an array of node names");
    } else {
      for (const toml::node& item : *replicas->as_array()) {
        const auto* node = item.as_string();
        if (!node) {
          c.error(item.source(), "each of 'replicas' of " + where + " must be a node's name");
        } else if (!topo.nodes.count(node->get())) {
          c.error(item.source(), where + " has replica '" + node->get() + "', which is not a node of this file");
        } else if (node->get() == shard.owner) {
          c.error(item.source(), where + " has its owner '" + shard.owner + "' as a replica: a replica is another node");
        } else if (std::find(shard.replicas.begin(), shard.replicas.end(), node->get()) != shard.replicas.end()) {
          c.error(item.source(), where + " names replica '" + node->get() + "' twice");
        } else {
          shard.replicas.push_back(node->get());
        }
      }
    }
  }
  shard.ack = shard.replicas.empty() ? ShardConfig::Ack::local : ShardConfig::Ack::replicated;
  std::string ack;
  if (c.string(t, "ack", ack, "[[shards]]")) {
    if (ack == "local") {
      shard.ack = ShardConfig::Ack::local;
    } else if (ack == "replicated") {
      shard.ack = ShardConfig::Ack::replicated;
      if (shard.replicas.empty())
        c.error(t.get("ack")->source(), where + " has ack = \"replicated\" but no 'replicas' to acknowledge with");
    } else {
      c.error(t.get("ack")->source(), "'ack' of " + where + " must be \"replicated\" or \"local\"; got \"" + ack + "\"");
    }
  }
  shard.ack_replicas = shard.ack == ShardConfig::Ack::replicated ? 1 : 0;
  if (t.get("ack_replicas")) {
    std::int64_t n = static_cast<std::int64_t>(shard.ack_replicas);
    if (c.integer(t, "ack_replicas", n, 1, 64, "[[shards]]")) {
      if (shard.ack != ShardConfig::Ack::replicated)
        c.error(t.get("ack_replicas")->source(), where + " sets 'ack_replicas' but does not have ack = \"replicated\"");
      else if (static_cast<std::size_t>(n) > shard.replicas.size())
        c.error(t.get("ack_replicas")->source(), where + " asks for " + std::to_string(n) + " replicas' acks but has " +
                                                     std::to_string(shard.replicas.size()));
      else shard.ack_replicas = static_cast<std::size_t>(n);
    }
  }
}

LoadResult parse_topology(std::string_view text, const std::string& name) {
  LoadResult result;
  Checker c(name);
  toml::table root;
  try {
    root = toml::parse(text, name);
  } catch (const toml::parse_error& e) {
    c.error(e.source(), std::string(e.description()));
    result.errors = c.take();
    return result;
  }
  Topology& topo = result.topology;
  c.known_keys(root, {"limits", "presence", "cluster", "nodes", "shards", "services", "security", "webhooks"},
               "the file");
  if (const toml::table* webhooks = c.table(root.get("webhooks"), "[webhooks]")) read_webhooks(c, *webhooks, topo.webhooks);

  if (const toml::table* security = c.table(root.get("security"), "[security]")) {
    const std::string where = "[security]";
    c.known_keys(*security, {"curve", "client_keys", "client_keys_dir", "local_client", "api_keys", "grants"}, where);
    c.boolean(*security, "curve", topo.security.curve, where);
    c.boolean(*security, "local_client", topo.security.local_client, where);
    c.string(*security, "client_keys_dir", topo.security.client_keys_dir, where);
    if (const toml::node* keys = security->get("client_keys")) {
      if (!keys->is_array()) {
        c.error(keys->source(), "'client_keys' in [security] must be an array of CURVE public keys");
      } else {
        for (const toml::node& key : *keys->as_array()) {
          std::string text;
          if (c.curve_key(key, text, "each of 'client_keys' in [security]")) topo.security.client_keys.push_back(text);
        }
      }
    }
    std::map<std::string, std::string> owner_of;  // key -> the table that has it
    if (const toml::node* api = security->get("api_keys"))
      read_api_keys(c, *api, where, topo.security.api_keys, owner_of);
    if (const toml::table* grants = c.table(security->get("grants"), "[security.grants]"))
      read_grants(c, *grants, topo.security, owner_of);
  }

  if (const toml::table* limits = c.table(root.get("limits"), "[limits]")) read_limits(c, *limits, topo.limits);

  if (const toml::table* presence = c.table(root.get("presence"), "[presence]")) {
    c.known_keys(*presence, {"heartbeat_ms", "session_ttl_ms", "max_sessions_per_user"}, "[presence]");
    c.integer(*presence, "max_sessions_per_user", topo.max_sessions_per_user, 1, 100'000, "[presence]");
    std::int64_t beat = topo.heartbeat.count(), ttl = topo.session_ttl.count();
    c.integer(*presence, "heartbeat_ms", beat, 10, 3'600'000, "[presence]");
    c.integer(*presence, "session_ttl_ms", ttl, 20, 86'400'000, "[presence]");
    if (ttl <= beat) c.error(presence->source(), "[presence] session_ttl_ms must be longer than heartbeat_ms");
    topo.heartbeat = std::chrono::milliseconds(beat);
    topo.session_ttl = std::chrono::milliseconds(ttl);
  }

  if (const toml::table* cluster = c.table(root.get("cluster"), "[cluster]")) {
    const std::string where = "[cluster]";
    c.known_keys(*cluster, {"heartbeat_ms", "misses", "request_timeout_ms", "election_wait", "election_timeout"},
                 where);
    std::int64_t beat = topo.peers.heartbeat.count(), timeout = topo.peers.request_timeout.count();
    c.integer(*cluster, "heartbeat_ms", beat, 10, 600'000, where);
    c.integer(*cluster, "misses", topo.peers.misses, 1, 1000, where);
    c.integer(*cluster, "request_timeout_ms", timeout, 10, 3'600'000, where);
    c.integer(*cluster, "election_wait", topo.peers.election_wait, 0, 100, where);
    c.integer(*cluster, "election_timeout", topo.peers.election_timeout, 1, 100, where);
    topo.peers.heartbeat = std::chrono::milliseconds(beat);
    topo.peers.request_timeout = std::chrono::milliseconds(timeout);
  }

  // Nodes, and every endpoint they use (each may be used once).
  std::map<std::string, std::string> endpoint_owner;  // endpoint -> "nodes.a.client"
  std::map<std::string, std::string> data_owner;      // normalised data directory -> node name
  const toml::table* nodes = c.table(root.get("nodes"), "[nodes]");
  if (nodes == nullptr || nodes->empty()) {
    if (!root.get("nodes"))
      c.error(root.source(), "no [nodes.NAME] table: a topology names at least one node");
    else if (nodes != nullptr)  // a bare [nodes] with nothing in it
      c.error(nodes->source(), "[nodes] has no [nodes.NAME] table: a topology names at least one node");
  } else {
    for (auto&& [key, value] : *nodes) {
      const std::string node_name(key.str());
      const std::string where = "[nodes." + node_name + "]";
      const toml::table* t = c.table(&value, where);
      if (t == nullptr) continue;
      if (!valid_node_name(node_name))
        c.error(key.source(), "node name '" + node_name +
                                  "' must be 1 to 64 letters, digits, '-', '_' or '.' (it names the node on the wire)");
      c.known_keys(*t, {"client", "publish", "presence", "presence_pub", "peer", "presence_peer", "data",
                         "durability", "max_store_mb", "bridge", "web", "bridge_cert", "bridge_key", "bridge_origins", "store_key",
                         "metrics", "api", "curve_secret_file", "curve_public"}, where);
      NodeConfig node;
      node.name = node_name;
      // An HTTP listener's "HOST:PORT" (or "off"), each address used by one listener of the file.
      auto http_address = [&](const char* key, const char* what, const char* port, std::string& out) {
        if (!c.string(*t, key, out, where) || out == "off") return;
        const auto at = t->get(key)->source();
        const auto address = parse_host_port(out);
        if (!address)
          return c.error(at, "'" + std::string(key) + "' in " + where + " must be \"HOST:PORT\" (an IP address; [::1]:" +
                                 port + " for IPv6) or \"off\"; got \"" + out + "\"");
        if (address->port == 0) return;
        const std::string owner = "nodes." + node_name + "." + key;
        if (auto [it, fresh] = endpoint_owner.emplace("http://" + out, owner); !fresh)
          c.error(at, std::string(what) + " address \"" + out + "\" (" + owner + ") is already used by " + it->second);
      };
      node.data = "data/" + node_name;
      if (!c.string(*t, "client", node.client, where) && !t->get("client"))
        c.error(t->source(), where + " has no 'client' endpoint");
      c.string(*t, "data", node.data, where);
      // Two nodes on one data directory would hand out the same seqs twice.
      if (auto [it, fresh] = data_owner.emplace(std::filesystem::path(node.data).lexically_normal().string(), node_name);
          !fresh)
        c.error(t->get("data") ? t->get("data")->source() : t->source(),
                "'data' of " + where + " is \"" + node.data + "\", the data directory of [nodes." + it->second +
                    "] too: each node needs a data directory of its own");
      std::string durability = "sync";
      if (c.string(*t, "durability", durability, where) && durability != "sync" && durability != "nosync")
        c.error(t->get("durability")->source(), "'durability' in " + where + " must be \"sync\" or \"nosync\"; got \"" +
                                                    durability + "\"");
      node.sync = durability != "nosync";
      c.integer(*t, "max_store_mb", node.max_store_mb, 1, 1LL << 30, where);
      if (c.string(*t, "bridge", node.bridge, where) && node.bridge != "off" && !parse_host_port(node.bridge))
        c.error(t->get("bridge")->source(), "'bridge' in " + where +
                                                " must be \"HOST:PORT\" (an IP address; [::1]:7410 for IPv6) or \"off\"; got \"" +
                                                node.bridge + "\"");
      c.string(*t, "web", node.web, where);
      c.string(*t, "store_key", node.store_key, where);
      http_address("api", "API", "7430", node.api);
      const bool has_cert = c.string(*t, "bridge_cert", node.bridge_cert, where);
      const bool has_key = c.string(*t, "bridge_key", node.bridge_key, where);
      if (has_cert != has_key)
        c.error(t->get(has_cert ? "bridge_cert" : "bridge_key")->source(),
                where + " has '" + (has_cert ? "bridge_cert" : "bridge_key") + "' without '" +
                    (has_cert ? "bridge_key" : "bridge_cert") + "': the bridge's TLS needs the certificate and its key");
      else if (has_cert && node.bridge.empty() && (node.api.empty() || node.api == "off"))
        c.error(t->get("bridge_cert")->source(), where + " has 'bridge_cert' but no 'bridge' or 'api' address to serve it on");
      if (const toml::node* origins = t->get("bridge_origins")) {
        if (!origins->is_array()) {
          c.error(origins->source(), "'bridge_origins' in " + where + " must be an array of origins "
                                     "(\"https://chat.example.com\", or \"*\" for any)");
        } else {
          for (const toml::node& item : *origins->as_array()) {
            const auto* text = item.as_string();
            if (text && text->get() == "*") {
              node.bridge_origins.push_back("*");
              continue;
            }
            auto origin = text ? normalise_origin(text->get()) : Result<std::string>(make_error(errc::bad_field, "not a string"));
            if (!origin)
              c.error(item.source(), "each of 'bridge_origins' in " + where + " must be an origin or \"*\": " +
                                         origin.error().message);
            else
              node.bridge_origins.push_back(std::move(*origin));
          }
          if (node.bridge.empty() || node.bridge == "off")
            c.error(origins->source(), where + " has 'bridge_origins' but no 'bridge' address to serve");
        }
      }
      http_address("metrics", "metrics", "7420", node.metrics);
      c.curve_keys(*t, node.curve_secret_file, node.curve_public, where);

      struct Endpoint { const char* key; std::string* value; int offset; };
      for (Endpoint e : {Endpoint{"client", &node.client, 0}, Endpoint{"publish", &node.publish, 1},
                         Endpoint{"presence", &node.presence, 2}, Endpoint{"presence_pub", &node.presence_pub, 3},
                         Endpoint{"peer", &node.peer, 4}, Endpoint{"presence_peer", &node.presence_peer, 5}}) {
        const toml::node* n = t->get(e.key);
        if (e.offset != 0 && !c.string(*t, e.key, *e.value, where) && valid_endpoint(node.client))
          *e.value = sibling(node.client, e.offset);  // derived only from a client that is valid
        if (e.value->empty()) continue;
        auto at = n ? n->source() : t->source();
        if (!valid_endpoint(*e.value)) {
          c.error(at, "'" + std::string(e.key) + "' in " + where + " is not an endpoint (tcp://HOST:PORT, ipc://PATH, inproc://NAME): \"" +
                          *e.value + "\"");
          continue;
        }
        if (e.value->ends_with(":*")) {  // ports the node picks cannot clash, but cannot be found either
          if (nodes->size() > 1 && (e.offset == 1 || e.offset >= 4))
            c.error(at, "'" + std::string(e.key) + "' of a node of several needs a fixed port: the other nodes connect to it");
          continue;
        }
        std::string owner = "nodes." + node_name + "." + e.key;
        auto [it, fresh] = endpoint_owner.emplace(*e.value, owner);
        if (!fresh)
          c.error(at, "endpoint \"" + *e.value + "\" (" + owner + (n ? "" : ", by default") + ") is already used by " +
                          it->second);
      }
      topo.nodes.emplace(node_name, std::move(node));
    }
  }

  // Services: an endpoint each (fixed: every node connects to it), at most one hook.
  if (const toml::table* services = c.table(root.get("services"), "[services]")) {
    std::string hooked;
    for (auto&& [key, value] : *services) {
      const std::string name(key.str());
      const std::string where = "[services." + name + "]";
      const toml::table* t = c.table(&value, where);
      if (t == nullptr) continue;
      if (!valid_node_name(name))
        c.error(key.source(), "service name '" + name + "' must be 1 to 64 letters, digits, '-', '_' or '.'");
      c.known_keys(*t, {"endpoint", "hook", "on_failure", "timeout_ms", "curve_secret_file", "curve_public"}, where);
      ServiceConfig service;
      service.name = name;
      c.curve_keys(*t, service.curve_secret_file, service.curve_public, where);
      if (!c.string(*t, "endpoint", service.endpoint, where) && !t->get("endpoint"))
        c.error(t->source(), where + " has no 'endpoint'");
      if (!service.endpoint.empty()) {
        auto at = t->get("endpoint")->source();
        if (!valid_endpoint(service.endpoint) || service.endpoint.ends_with(":*")) {
          c.error(at, "'endpoint' in " + where + " must be an endpoint with a fixed port: \"" + service.endpoint + "\"");
        } else if (auto [it, fresh] = endpoint_owner.emplace(service.endpoint, "services." + name); !fresh) {
          c.error(at, "endpoint \"" + service.endpoint + "\" (services." + name + ") is already used by " + it->second);
        }
      }
      std::string hook;
      if (c.string(*t, "hook", hook, where)) {
        if (hook != "publish") {
          c.error(t->get("hook")->source(), "'hook' in " + where + " must be \"publish\"; got \"" + hook + "\"");
        } else if (!hooked.empty()) {
          c.error(t->get("hook")->source(), "services " + hooked + " and " + name + " both hook publish; one may");
        } else {
          service.publish_hook = true;
          hooked = name;
        }
      }
      std::string on_failure = "refuse";
      if (c.string(*t, "on_failure", on_failure, where) && on_failure != "refuse" && on_failure != "accept")
        c.error(t->get("on_failure")->source(),
                "'on_failure' in " + where + " must be \"refuse\" or \"accept\"; got \"" + on_failure + "\"");
      service.fail_open = on_failure == "accept";
      std::int64_t timeout = service.timeout.count();
      c.integer(*t, "timeout_ms", timeout, 1, 600'000, where);
      service.timeout = std::chrono::milliseconds(timeout);
      topo.services.emplace(name, std::move(service));
    }
  }

  // Shards: each names an owner that is a node of this file.
  if (const toml::node* shards = root.get("shards")) {
    if (!shards->is_array_of_tables()) {
      c.error(shards->source(), "'shards' must be an array of tables: [[shards]]");
    } else {
      std::set<std::string> names;
      for (const toml::node& entry : *shards->as_array()) {
        const toml::table& t = *entry.as_table();
        c.known_keys(t, {"name", "owner", "replicas", "ack", "ack_replicas"}, "[[shards]]");
        ShardConfig shard;
        if (!c.string(t, "name", shard.name, "[[shards]]") && !t.get("name"))
          c.error(t.source(), "a shard has no 'name'");
        if (!shard.name.empty() && !names.insert(shard.name).second)
          c.error(t.get("name")->source(), "shard '" + shard.name + "' is named twice");
        if (!c.string(t, "owner", shard.owner, "[[shards]]") && !t.get("owner")) {
          c.error(t.source(), "shard '" + shard.name + "' has no owner");
        } else if (!shard.owner.empty() && !topo.nodes.count(shard.owner)) {
          c.error(t.get("owner")->source(),
                  "shard '" + shard.name + "' is owned by '" + shard.owner + "', which is not a node of this file");
        }
        read_replicas(c, t, topo, shard);
        topo.shards.push_back(std::move(shard));
      }
    }
  } else if (topo.nodes.size() == 1) {
    topo.shards.push_back({"default", topo.nodes.begin()->first});
  } else if (topo.nodes.size() > 1) {
    c.error(root.source(), "several nodes but no [[shards]]: name the chat shards and the node that owns each");
  }
  result.errors = c.take();
  return result;
}

LoadResult load_topology(const std::filesystem::path& file) {
  std::ifstream in(file);
  if (!in) {
    LoadResult r;
    r.errors.push_back({file.string(), 0, 0, "cannot read the file"});
    return r;
  }
  std::stringstream text;
  text << in.rdbuf();
  return parse_topology(text.str(), file.string());
}

}  // namespace switchboard::router
