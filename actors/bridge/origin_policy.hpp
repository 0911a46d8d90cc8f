// Who may open a WebSocket on the bridge: the Origin and Host checks of the upgrade.
// A pure decision, tested without sockets (as zap_decide is).
//
// A browser sends `Origin` with every WebSocket upgrade, and any page it shows may try
// one: without the check, any web site a user visits could drive the local bridge.
// `Host` stops DNS rebinding: a page of evil.example whose name was made to point at
// 127.0.0.1 reaches the bridge with `Host: evil.example`, a name the bridge does not
// serve. docs/SECURITY.md ("The web page and the bridge") is the user's side of it.
#pragma once

#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "switchboard/common/error.hpp"

namespace switchboard::actors::bridge {

struct OriginPolicy {
  /// "*" was given: any origin, and any Host. Only by explicit choice.
  bool any = false;
  /// More origins admitted beside the bridge's own, normalised (router::normalise_origin).
  /// Their host names are names the bridge serves, too.
  std::vector<std::string> origins;
};

/// A policy from allow-list entries ("*" or origins); errors name the bad entry.
Result<OriginPolicy> make_origin_policy(const std::vector<std::string>& entries);

/// Whether `host` (a Host header: "name", "name:port", "[v6]:port") names this bridge:
/// an IP address, "localhost", or the host of an admitted origin (any, with "*").
bool host_served(const OriginPolicy& policy, std::string_view host);

/// The decision on a WebSocket upgrade: nullopt to admit it, else why it is refused
/// (the bridge answers 403 with it). `origin`: the Origin header, absent for clients
/// that are not browsers (they may send anything, so there is nothing to check);
/// `host`: the Host header; `tls`: the bridge serves https/wss. Admitted: no Origin;
/// the bridge's own origin (the scheme it serves, and the Host the request came with,
/// when that Host is served); an origin of the policy; any, with "*". "null" (a
/// sandboxed or file:// page) is refused unless "*".
std::optional<std::string> check_upgrade(const OriginPolicy& policy, std::optional<std::string_view> origin,
                                         std::optional<std::string_view> host, bool tls);

}  // namespace switchboard::actors::bridge
