// CURVE: the keys of nodes, clients and services, and the socket options that make a
// tcp connection encrypted and authenticated (ZeroMQ's CurveZMQ, RFC 26).
//
// Keys are Z85 text, 40 characters for 32 bytes. A key file holds one line: a secret
// key file (mode 0600, nobody else may read it) and beside it FILE.pub, the public
// key. The server side of a connection (a ROUTER or PUB that binds) proves it holds
// the secret of the public key the client was given; the client's public key is
// checked by the ZAP handler of the server's context (actors/zap.hpp). inproc
// connections have no handshake: they stay plain whatever is set here.
#pragma once

#include <filesystem>
#include <string>
#include <string_view>

#include <zmq.hpp>

#include "switchboard/common/error.hpp"

namespace switchboard::transport {

/// Length of a CURVE key in Z85 text.
inline constexpr std::size_t kCurveKeyText = 40;

struct CurveKeypair {
  std::string public_key;  ///< Z85, 40 characters
  std::string secret_key;  ///< Z85, 40 characters
};

/// A CURVE side of a connection: this end's keypair, and for a client the server's
/// public key.
struct CurveClient {
  CurveKeypair own;
  std::string server_public;
};

/// True if `text` is a CURVE key in Z85 (40 characters of the Z85 alphabet).
bool valid_curve_key(std::string_view text);

/// A new keypair from libzmq's random source (libsodium).
CurveKeypair generate_curve_keypair();

/// Writes `keys` to `path` (the secret, mode 0600, created that way) and `path`.pub
/// (the public key, mode 0644). Errors: unavailable (cannot write; the message names
/// the file).
Result<void> save_curve_keypair(const CurveKeypair& keys, const std::filesystem::path& path);

/// Reads a secret key file and derives its public key. Errors: unavailable (cannot
/// read), bad_field (not one line of Z85 key; the file can be read by its group or
/// others: a secret must be the owner's alone). Messages name the file.
Result<CurveKeypair> load_curve_keypair(const std::filesystem::path& path);

/// Reads a public key file (FILE.pub). Errors: unavailable, bad_field (not a key).
Result<std::string> load_curve_public(const std::filesystem::path& path);

/// The keypair in `path`, made first if there is none. Several processes may call
/// this for the same path at once (nodes of one topology starting together): one
/// keypair wins and all of them read it. The directory is created (mode 0700).
/// Errors: those of load_curve_keypair and save_curve_keypair.
Result<CurveKeypair> ensure_curve_keypair(const std::filesystem::path& path);

/// Makes `socket` a CURVE server with `own` keys; every connection is put to the ZAP
/// handler with `domain` (actors/zap.hpp). Call before bind.
void curve_server(zmq::socket_t& socket, const CurveKeypair& own, const std::string& domain);
/// Makes `socket` a CURVE client of the server with public key `keys.server_public`.
/// Call before connect.
void curve_client(zmq::socket_t& socket, const CurveClient& keys);

}  // namespace switchboard::transport
