// The bearer keys of the HTTP API (docs/API.md, "API keys"): which keys a node admits,
// and with what rights: every right, or a service grant's (router::Grant).
#pragma once

#include <array>
#include <filesystem>
#include <map>
#include <optional>
#include <string>
#include <string_view>

#include "switchboard/common/error.hpp"
#include "switchboard/router/topology.hpp"

namespace switchboard::actors::api {

class ApiKeys {
 public:
  /// Admits `key`: with every right (no grant), or with `grant`'s.
  void admit(std::string_view key, std::optional<router::Grant> grant);
  /// The rights of `key`: nullopt if it is not admitted; else the grant it has
  /// (nullptr: every right). The pointer lives as long as this.
  std::optional<const router::Grant*> find(std::string_view key) const;
  std::size_t size() const noexcept { return by_hash_.size(); }

 private:
  using Hash = std::array<unsigned char, 32>;
  static Hash hash(std::string_view key);
  /// Only a hash of each key is kept; a key presented is hashed and looked up.
  std::map<Hash, std::optional<router::Grant>> by_hash_;
};

/// The node's own key file: DATA/keys/api.key.
std::filesystem::path local_api_key_file(const router::NodeConfig& node);

/// The API keys node `name` of `topology` admits: [security] api_keys (every right),
/// each grant's api_keys (its rights), and, unless `local_client` is off, the key in
/// local_api_key_file (made at first start: 64 hex digits from libsodium's random
/// bytes, mode 0600). Errors: unavailable (the key file cannot be made or read),
/// bad_field (it holds no valid key, or others may read it).
Result<ApiKeys> node_api_keys(const router::Topology& topology, const std::string& name);

}  // namespace switchboard::actors::api
