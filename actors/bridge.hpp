// The WebSocket bridge: browsers and mobile clients reach a node through it.
//
// One thread runs Boost.Beast (HTTP for the web page's static files, WebSocket for
// the protocol of docs/PROTOCOL.md section 10) and the bridge's ZeroMQ sockets to
// the node's chat and presence actors: DEALERs for requests (each client request
// gets a bridge request id; the reply goes back to the connection with the client's
// id) and SUBs for room messages and presence events, fanned out to the connections
// that follow each room, in order and once (RoomDelivery).
//
// This header has no Boost in it: embedders of the library need no Boost headers.
#pragma once

#include <chrono>
#include <cstdint>
#include <filesystem>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include <zmq.hpp>

#include "switchboard/common/error.hpp"
#include "switchboard/transport/limits.hpp"
#include "switchboard/transport/token.hpp"

namespace switchboard::actors {

/// The embedded default's bridge address (docs/PROTOCOL.md section 10).
inline constexpr const char* kDefaultBridgeAddress = "127.0.0.1";
inline constexpr std::uint16_t kDefaultBridgePort = 7410;

struct BridgeAddress {
  std::string host;        ///< an IPv4 or IPv6 address
  std::uint16_t port = 0;  ///< 0: any free port
};
/// Reads "HOST:PORT" ("[::1]:7410" for IPv6; a port of "*" or 0 means any free port).
/// nullopt if it is not an IP address and a port.
std::optional<BridgeAddress> parse_bridge_address(std::string_view text);

struct BridgeOptions {
  std::string address = kDefaultBridgeAddress;  ///< an IPv4 or IPv6 address to listen on
  std::uint16_t port = kDefaultBridgePort;       ///< 0: any free port (see Bridge::port)
  /// Static files served over HTTP (the web chat page); empty: none (404). Only
  /// regular files inside it, symlinks followed, are served (bridge/static_files.hpp);
  /// one that is not a directory: Bridge::start fails with bad_field.
  std::filesystem::path web_root;
  /// Origins whose pages may open a WebSocket beside the bridge's own
  /// ("https://chat.example.com"), or "*" for any (bridge/origin_policy.hpp). An entry
  /// that is not an origin: Bridge::start fails with bad_field, naming it.
  std::vector<std::string> allowed_origins;
  /// The other bridges of the node's topology, as origins ("http://10.0.0.2:7410";
  /// "https://…" for one that serves TLS): the page this bridge serves may open them
  /// (its Content-Security-Policy lists them) and pages they serve may open this one
  /// (their origins are admitted), so that the page follows a failover (README, "In
  /// front of a cluster"). Normalised, as allowed_origins.
  std::vector<std::string> peer_bridges;
  /// TLS: both set, the bridge serves only wss:// and https:// with this certificate
  /// chain and private key (PEM files; TLS 1.2 or later). Both empty: plain ws://.
  /// One without the other, a missing file, or a key that does not belong to the
  /// certificate: Bridge::start fails with bad_field, naming the file.
  std::filesystem::path tls_cert, tls_key;

  /// The node's endpoints, reached with the node's ZeroMQ context (inproc).
  std::string chat_endpoint, pub_endpoint, presence_endpoint, presence_pub_endpoint;
  transport::Limits limits;

  /// Largest WebSocket message a client may send; a larger one closes the connection
  /// with 1009 (message too big).
  std::size_t max_frame = 96 * 1024;
  /// A connection's send queue holds at most this many frames and bytes; past either,
  /// the client is too slow: it is closed with 4008 and resumes from its last seq.
  /// Catching up from history is paced by it (a page is asked only once half the
  /// queue is free), so only live traffic can overflow it. Keep it above
  /// max_in_flight, or a client pipelining requests may be taken for a slow one.
  std::size_t max_queued_frames = 4096;
  std::size_t max_queued_bytes = 16u << 20;
  std::size_t max_subscriptions = 128;  ///< rooms one connection follows
  std::size_t max_in_flight = 256;      ///< requests one connection has waiting
  /// The HTTP request and WebSocket upgrade must complete within this; then `auth`
  /// must come within it too (else close 4001).
  std::chrono::milliseconds handshake_timeout{10'000};
  /// A connection that sends nothing (no frame, no pong) for this long is closed; a
  /// ping goes out when half of it has passed.
  std::chrono::milliseconds idle_timeout{60'000};
  /// A request the node has not answered within this gets `unavailable`.
  std::chrono::milliseconds request_timeout{10'000};
  std::uint32_t history_page = 500;  ///< messages per fetch when a connection catches up
  /// How often each connection's presence session is heartbeated (the node's
  /// heartbeat_ms; a session_open reply that says otherwise wins).
  std::chrono::milliseconds presence_heartbeat{5000};
  /// Set: `auth` must carry a signed user token (transport/token.hpp) that verifies
  /// with this key, and the connection's user is the token's. Unset: `auth` names a
  /// user, and a token is refused (this node could not check it).
  std::optional<transport::TokenPublicKey> token_key;
  /// false: a node whose bridge cannot listen runs without one, with a warning (for an
  /// address nobody asked for: the default derived from the client endpoint).
  bool required = true;
};

/// Counters, read from any thread.
struct BridgeStats {
  std::uint64_t connections = 0;   ///< open WebSocket connections
  std::uint64_t delivered = 0;     ///< frames written to connections (replies, messages, events)
  std::uint64_t slow_closed = 0;   ///< connections closed for falling behind
  std::uint64_t bad_frames = 0;    ///< frames answered with an error
  std::uint64_t fetches = 0;       ///< history pages asked: catch-up and gap repair
  std::uint64_t rate_limited = 0;  ///< requests answered rate_limited (Limits::publish_per_s, ...)
};

class Bridge {
 public:
  /// Binds the listening socket and connects to the node's endpoints in `context`,
  /// then serves on a thread of its own. Errors: unavailable (the address cannot be
  /// bound; the message says why); bad_field (the TLS certificate or key cannot be
  /// used; the message names the file).
  static Result<std::unique_ptr<Bridge>> start(zmq::context_t& context, BridgeOptions options);
  ~Bridge();  ///< stop()
  Bridge(const Bridge&) = delete;
  Bridge& operator=(const Bridge&) = delete;

  /// Closes every connection (1001, going away) and ends the thread. Idempotent.
  void stop();
  /// The port actually bound.
  std::uint16_t port() const noexcept;
  /// "ws://ADDRESS:PORT/", or "wss://..." with TLS (IPv6 addresses in brackets).
  std::string url() const;
  BridgeStats stats() const;

  struct Impl;

 private:
  explicit Bridge(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

}  // namespace switchboard::actors
