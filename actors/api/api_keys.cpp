#include "switchboard/actors/api/api_keys.hpp"

#include <sys/stat.h>

#include <sodium.h>

#include "switchboard/transport/key_file.hpp"

namespace switchboard::actors::api {

ApiKeys::Hash ApiKeys::hash(std::string_view key) {
  Hash out{};
  crypto_generichash(out.data(), out.size(), reinterpret_cast<const unsigned char*>(key.data()), key.size(), nullptr,
                     0);
  return out;
}

void ApiKeys::admit(std::string_view key, std::optional<router::Grant> grant) {
  by_hash_.insert_or_assign(hash(key), std::move(grant));
}

std::optional<const router::Grant*> ApiKeys::find(std::string_view key) const {
  auto it = by_hash_.find(hash(key));
  if (it == by_hash_.end()) return std::nullopt;
  return it->second ? &*it->second : nullptr;
}

std::filesystem::path local_api_key_file(const router::NodeConfig& node) {
  return std::filesystem::path(node.data) / "keys" / "api.key";
}

namespace {

Result<std::string> ensure_local_key(const std::filesystem::path& path) {
  std::error_code ec;
  if (!std::filesystem::exists(path, ec)) {
    if (auto dir = transport::make_key_dir(path); !dir) return dir.error();
    if (sodium_init() < 0) return make_error(errc::internal, "libsodium cannot start");
    unsigned char bytes[32];
    randombytes_buf(bytes, sizeof bytes);
    char hex[2 * sizeof bytes + 1];
    sodium_bin2hex(hex, sizeof hex, bytes, sizeof bytes);
    if (auto r = transport::write_key_file(path, hex, 0600); !r) return r.error();
  }
  struct stat st {};
  if (::stat(path.c_str(), &st) == 0 && (st.st_mode & 077) != 0)
    return make_error(errc::bad_field, "the API key file " + path.string() +
                                           " may be read by others: make it mode 0600 (chmod 600)");
  auto key = transport::read_key_line(path);
  if (!key) return key.error();
  if (!router::valid_api_key(*key))
    return make_error(errc::bad_field, "the API key file " + path.string() +
                                           " must hold one key of 32 to 256 printable ASCII characters");
  return key;
}

}  // namespace

Result<ApiKeys> node_api_keys(const router::Topology& topology, const std::string& name) {
  ApiKeys keys;
  for (const auto& key : topology.security.api_keys) keys.admit(key, std::nullopt);
  for (const auto& [grant_name, grant] : topology.security.grants)
    for (const auto& key : grant.api_keys) keys.admit(key, grant);
  if (topology.security.local_client) {
    auto local = ensure_local_key(local_api_key_file(topology.nodes.at(name)));
    if (!local) return local.error();
    keys.admit(*local, std::nullopt);
  }
  return keys;
}

}  // namespace switchboard::actors::api
