// StoreKey: the secret key that seals message bodies in the history store (encryption
// at rest, docs/SECURITY.md).
//
// A body is sealed with XChaCha20-Poly1305 (libsodium's IETF construction): a fresh
// random 24-byte nonce per message, and the message's place and clear fields (room id,
// seq, user, time, client message id) as associated data, so a record that is changed,
// or moved to another room or seq, fails to open instead of reading as another message.
#pragma once

#include <array>
#include <filesystem>
#include <optional>
#include <string>
#include <string_view>

#include "switchboard/common/error.hpp"

namespace switchboard::persistence {

class StoreKey {
 public:
  static constexpr std::size_t kSize = 32;
  /// Sealing adds this many bytes to a body: the nonce and the authentication tag.
  static constexpr std::size_t kOverhead = 24 + 16;

  /// A new random key.
  static StoreKey generate();
  /// Reads a key file: one line of 64 hex digits. Errors (bad_field, the message names
  /// the file): unreadable, not 64 hex digits, or readable by group or others (a
  /// secret must be mode 0600 or 0400).
  static Result<StoreKey> load(const std::filesystem::path& path);
  /// Writes a new key file, mode 0600. Never replaces a file: a store key overwritten
  /// is every message sealed with it lost. Errors: bad_field (the file exists),
  /// unavailable (cannot write).
  Result<void> save(const std::filesystem::path& path) const;

  StoreKey(const StoreKey&) = default;
  StoreKey& operator=(const StoreKey&) = default;
  ~StoreKey();  ///< wipes the key bytes

  /// nonce + ciphertext + tag of `plain`, bound to `associated`.
  std::string seal(std::string_view plain, std::string_view associated) const;
  /// The body `sealed` was made from, or nullopt when it fails authentication (wrong
  /// key, changed bytes, other associated data).
  std::optional<std::string> open(std::string_view sealed, std::string_view associated) const;
  /// A 32-byte digest that tells whether two keys are the same without revealing
  /// either (keyed BLAKE2b of a fixed string). The store keeps it to refuse a wrong key.
  std::string fingerprint() const;

 private:
  StoreKey() = default;
  std::array<unsigned char, kSize> bytes_{};
};

}  // namespace switchboard::persistence
