#include "switchboard/transport/curve.hpp"

#include <sys/stat.h>
#include <unistd.h>

#include <array>
#include <cstdio>
#include <random>

#include "switchboard/transport/key_file.hpp"

namespace switchboard::transport {
namespace {

Result<std::string> read_key(const std::filesystem::path& path, const char* what) {
  auto line = read_key_line(path);
  if (!line) return line.error();
  if (!valid_curve_key(*line))
    return make_error(errc::bad_field, path.string() + " does not hold " + what + " (one line of " +
                                           std::to_string(kCurveKeyText) + " Z85 characters; switchboard keygen --for curve)");
  return line;
}

/// A name beside `path` that no other process picks at the same time.
std::filesystem::path temporary_beside(const std::filesystem::path& path) {
  std::random_device random;
  return path.string() + ".tmp-" + std::to_string(::getpid()) + "-" + std::to_string(random());
}

}  // namespace

bool valid_curve_key(std::string_view text) {
  if (text.size() != kCurveKeyText) return false;
  const std::string copy(text);  // zmq_z85_decode reads a NUL-terminated string
  std::array<std::uint8_t, 32> bytes{};
  return zmq_z85_decode(bytes.data(), copy.c_str()) != nullptr;
}

CurveKeypair generate_curve_keypair() {
  std::array<char, kCurveKeyText + 1> public_key{}, secret_key{};
  if (zmq_curve_keypair(public_key.data(), secret_key.data()) != 0) throw zmq::error_t();
  return {public_key.data(), secret_key.data()};
}

Result<void> save_curve_keypair(const CurveKeypair& keys, const std::filesystem::path& path) {
  if (auto r = write_key_file(path, keys.secret_key, 0600); !r) return r;
  return write_key_file(path.string() + ".pub", keys.public_key, 0644);
}

Result<CurveKeypair> load_curve_keypair(const std::filesystem::path& path) {
  struct stat info {};
  if (::stat(path.c_str(), &info) != 0) return make_error(errc::unavailable, "cannot read key file " + path.string());
  if ((info.st_mode & 077) != 0) {
    char mode[8];
    std::snprintf(mode, sizeof mode, "%04o", static_cast<unsigned>(info.st_mode & 07777));
    return make_error(errc::bad_field, "secret key file " + path.string() + " has mode " + mode +
                                           ": others may read it; a secret key must be its owner's alone (chmod 600 " +
                                           path.string() + ")");
  }
  auto secret = read_key(path, "a CURVE secret key");
  if (!secret) return secret.error();
  std::array<char, kCurveKeyText + 1> public_key{};
  if (zmq_curve_public(public_key.data(), secret->c_str()) != 0)
    return make_error(errc::bad_field, path.string() + " does not hold a CURVE secret key");
  return CurveKeypair{public_key.data(), std::move(*secret)};
}

Result<std::string> load_curve_public(const std::filesystem::path& path) { return read_key(path, "a CURVE public key"); }

Result<CurveKeypair> ensure_curve_keypair(const std::filesystem::path& path) {
  std::error_code ec;
  if (!std::filesystem::exists(path, ec)) {
    if (auto dir = make_key_dir(path); !dir) return dir.error();
    // Written aside, then linked into place: link() fails if another process's key got
    // there first, and then that one is the key.
    const auto keys = generate_curve_keypair();
    const auto aside = temporary_beside(path);
    if (auto r = write_key_file(aside, keys.secret_key, 0600); !r) return r.error();
    const bool placed = ::link(aside.c_str(), path.c_str()) == 0;
    const int link_error = errno;
    std::filesystem::remove(aside, ec);
    if (!placed && link_error != EEXIST) return make_error(errc::unavailable, "cannot write " + path.string());
  }
  auto keys = load_curve_keypair(path);
  if (!keys) return keys.error();
  // The public half beside it, for whoever needs to trust this key.
  const std::filesystem::path pub = path.string() + ".pub";
  auto written = load_curve_public(pub);
  if (!written || *written != keys->public_key) {
    const auto aside = temporary_beside(pub);
    if (auto r = write_key_file(aside, keys->public_key, 0644); !r) return r.error();
    std::filesystem::rename(aside, pub, ec);
    if (ec) return make_error(errc::unavailable, "cannot write " + pub.string() + ": " + ec.message());
  }
  return keys;
}

void curve_server(zmq::socket_t& socket, const CurveKeypair& own, const std::string& domain) {
  socket.set(zmq::sockopt::curve_server, true);
  socket.set(zmq::sockopt::curve_secretkey, own.secret_key);
  socket.set(zmq::sockopt::zap_domain, domain);
}

void curve_client(zmq::socket_t& socket, const CurveClient& keys) {
  socket.set(zmq::sockopt::curve_serverkey, keys.server_public);
  socket.set(zmq::sockopt::curve_publickey, keys.own.public_key);
  socket.set(zmq::sockopt::curve_secretkey, keys.own.secret_key);
}

}  // namespace switchboard::transport
