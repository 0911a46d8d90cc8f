#include "switchboard/persistence/store_key.hpp"

#include <sodium.h>
#include <sys/stat.h>

#include <fstream>
#include <stdexcept>

namespace switchboard::persistence {
namespace {

static_assert(StoreKey::kSize == crypto_aead_xchacha20poly1305_ietf_KEYBYTES);
static_assert(StoreKey::kOverhead ==
              crypto_aead_xchacha20poly1305_ietf_NPUBBYTES + crypto_aead_xchacha20poly1305_ietf_ABYTES);
constexpr std::size_t kNonce = crypto_aead_xchacha20poly1305_ietf_NPUBBYTES;

void ensure_sodium() {
  if (sodium_init() < 0) throw std::runtime_error("libsodium cannot be initialised");
}

const unsigned char* bytes(std::string_view s) { return reinterpret_cast<const unsigned char*>(s.data()); }

}  // namespace

StoreKey StoreKey::generate() {
  ensure_sodium();
  StoreKey key;
  crypto_aead_xchacha20poly1305_ietf_keygen(key.bytes_.data());
  return key;
}

StoreKey::~StoreKey() { sodium_memzero(bytes_.data(), bytes_.size()); }

Result<StoreKey> StoreKey::load(const std::filesystem::path& path) {
  ensure_sodium();
  const std::string name = "store key file '" + path.string() + "'";
  struct stat st {};
  if (::stat(path.c_str(), &st) != 0 || !S_ISREG(st.st_mode))
    return make_error(errc::bad_field, name + " is not a readable file");
  if (st.st_mode & (S_IRWXG | S_IRWXO))
    return make_error(errc::bad_field, name + " is open to group or others (mode " +
                                           std::to_string((st.st_mode >> 6) & 7) + std::to_string((st.st_mode >> 3) & 7) +
                                           std::to_string(st.st_mode & 7) + "): chmod 600 it");
  std::ifstream in(path);
  std::string line;
  if (!in || !std::getline(in, line)) return make_error(errc::bad_field, name + " cannot be read");
  std::string rest;
  in >> rest;  // nothing but whitespace may follow the line
  StoreKey key;
  std::size_t length = 0;
  const char* end = nullptr;
  if (line.size() != 2 * kSize || !rest.empty() ||
      sodium_hex2bin(key.bytes_.data(), key.bytes_.size(), line.data(), line.size(), nullptr, &length, &end) != 0 ||
      length != kSize)
    return make_error(errc::bad_field, name + " does not hold a store key (one line of 64 hex digits, as "
                                              "'switchboard keygen --for store' writes)");
  sodium_memzero(line.data(), line.size());
  return key;
}

Result<void> StoreKey::save(const std::filesystem::path& path) const {
  std::error_code ec;
  if (std::filesystem::exists(path, ec))
    return make_error(errc::bad_field, "'" + path.string() +
                                           "' exists: a store key is never overwritten (the messages it sealed "
                                           "would be lost)");
  const mode_t old = ::umask(0177);  // created 0600, never wider for a moment
  std::ofstream out(path);
  ::umask(old);
  std::string hex(2 * kSize + 1, '\0');
  sodium_bin2hex(hex.data(), hex.size(), bytes_.data(), bytes_.size());
  hex.pop_back();
  out << hex << "\n";
  sodium_memzero(hex.data(), hex.size());
  out.close();
  if (!out) return make_error(errc::unavailable, "cannot write '" + path.string() + "'");
  return {};
}

std::string StoreKey::seal(std::string_view plain, std::string_view associated) const {
  std::string out(kNonce + plain.size() + crypto_aead_xchacha20poly1305_ietf_ABYTES, '\0');
  auto* nonce = reinterpret_cast<unsigned char*>(out.data());
  randombytes_buf(nonce, kNonce);  // 192 random bits: no nonce is ever used twice
  unsigned long long length = 0;
  crypto_aead_xchacha20poly1305_ietf_encrypt(nonce + kNonce, &length, bytes(plain), plain.size(), bytes(associated),
                                             associated.size(), nullptr, nonce, bytes_.data());
  out.resize(kNonce + length);
  return out;
}

std::optional<std::string> StoreKey::open(std::string_view sealed, std::string_view associated) const {
  if (sealed.size() < kOverhead) return std::nullopt;
  std::string plain(sealed.size() - kOverhead, '\0');
  unsigned long long length = 0;
  if (crypto_aead_xchacha20poly1305_ietf_decrypt(reinterpret_cast<unsigned char*>(plain.data()), &length, nullptr,
                                                 bytes(sealed.substr(kNonce)), sealed.size() - kNonce,
                                                 bytes(associated), associated.size(), bytes(sealed),
                                                 bytes_.data()) != 0)
    return std::nullopt;
  plain.resize(length);
  return plain;
}

std::string StoreKey::fingerprint() const {
  static constexpr std::string_view kWhat = "switchboard history store key fingerprint v1";
  std::string out(32, '\0');
  crypto_generichash(reinterpret_cast<unsigned char*>(out.data()), out.size(), bytes(kWhat), kWhat.size(),
                     bytes_.data(), bytes_.size());
  return out;
}

}  // namespace switchboard::persistence
