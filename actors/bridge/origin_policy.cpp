#include "switchboard/actors/bridge/origin_policy.hpp"

#include <algorithm>

#include "switchboard/router/host_port.hpp"

namespace switchboard::actors::bridge {

Result<OriginPolicy> make_origin_policy(const std::vector<std::string>& entries) {
  OriginPolicy policy;
  for (const auto& entry : entries) {
    if (entry == "*") {
      policy.any = true;
      continue;
    }
    auto origin = router::normalise_origin(entry);
    if (!origin) return origin.error();
    policy.origins.push_back(std::move(*origin));
  }
  return policy;
}

bool host_served(const OriginPolicy& policy, std::string_view host) {
  auto a = router::parse_authority(host);
  if (!a) return false;
  // A rebinding page reaches the bridge under a name; an IP address in Host is one the
  // browser connected to itself, so only names need to be listed.
  if (policy.any || a->host == "localhost" || router::is_ip_literal(a->host)) return true;
  return std::any_of(policy.origins.begin(), policy.origins.end(), [&](const std::string& o) {
    auto listed = router::parse_authority(std::string_view(o).substr(o.find("://") + 3));
    return listed && listed->host == a->host;
  });
}

std::optional<std::string> check_upgrade(const OriginPolicy& policy, std::optional<std::string_view> origin,
                                         std::optional<std::string_view> host, bool tls) {
  if (!host || host->empty()) return "the request has no Host header";
  if (!host_served(policy, *host))
    return "Host '" + std::string(*host) +
           "' is not a name this bridge serves: add its origin with --bridge-origin (or bridge_origins in the "
           "topology)";
  if (!origin || policy.any) return std::nullopt;
  if (auto normalised = router::normalise_origin(*origin)) {
    if (std::find(policy.origins.begin(), policy.origins.end(), *normalised) != policy.origins.end())
      return std::nullopt;
    if (auto own = router::parse_authority(*host); own && *normalised == router::origin_of(tls ? "https" : "http", *own))
      return std::nullopt;
  }
  return "Origin '" + std::string(*origin) +
         "' may not open this bridge: only its own page's origin and those given with --bridge-origin (or "
         "bridge_origins in the topology) may";
}

}  // namespace switchboard::actors::bridge
