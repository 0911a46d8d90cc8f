// The HTTP server API (docs/API.md): backends in any language post, read and manage
// rooms over HTTP with JSON, with bearer API keys.
//
// One thread runs Boost.Beast (HTTP/1.1 with keep-alive, and TLS with the bridge's
// certificate) and the API's ZeroMQ DEALERs to the node's chat and presence actors:
// each HTTP request becomes one node request (api_request.hpp), checked against its
// key's grant before it leaves; its reply is the HTTP answer.
//
// This header has no Boost in it.
#pragma once

#include <chrono>
#include <cstdint>
#include <filesystem>
#include <map>
#include <memory>
#include <string>

#include <zmq.hpp>

#include "switchboard/actors/api/api_keys.hpp"
#include "switchboard/common/error.hpp"
#include "switchboard/transport/limits.hpp"

namespace switchboard::actors {

/// The embedded default's API address (docs/API.md): the client port + 30.
inline constexpr const char* kDefaultApiAddress = "127.0.0.1";
inline constexpr std::uint16_t kDefaultApiPort = 7430;

struct ApiOptions {
  std::string address = kDefaultApiAddress;  ///< an IPv4 or IPv6 address to listen on
  std::uint16_t port = kDefaultApiPort;       ///< 0: any free port (see ApiServer::port)
  /// TLS (PEM files, both or neither): with them the API serves https:// only.
  std::filesystem::path tls_cert, tls_key;
  api::ApiKeys keys;  ///< the bearer keys admitted, and their rights
  /// The node's endpoints, reached with the node's ZeroMQ context (inproc).
  std::string chat_endpoint, presence_endpoint;
  transport::Limits limits;
  /// A request the node has not answered within this gets 503 (unavailable).
  std::chrono::milliseconds request_timeout{10'000};
  /// The request's headers and body must come within this; a kept-alive connection that
  /// sends nothing for it is closed.
  std::chrono::milliseconds idle_timeout{60'000};
  /// false: a node whose API cannot listen runs without one, with a warning (for an
  /// address nobody asked for: the default derived from the client endpoint).
  bool required = true;
};

/// Counters, read from any thread.
struct ApiStats {
  std::uint64_t connections = 0;  ///< open HTTP connections
  /// HTTP requests answered, by status (200, 400, 401, ...; only those answered yet).
  std::map<unsigned, std::uint64_t> answered;
};

class ApiServer {
 public:
  /// Binds the listening socket, connects to the node's endpoints in `context`, and
  /// serves on a thread of its own. Errors: unavailable (the address cannot be bound);
  /// bad_field (the TLS certificate or key cannot be used; the message names the file).
  static Result<std::unique_ptr<ApiServer>> start(zmq::context_t& context, ApiOptions options);
  ~ApiServer();  ///< stop()
  ApiServer(const ApiServer&) = delete;
  ApiServer& operator=(const ApiServer&) = delete;

  /// Stops listening, lets the answers being written go out, and ends the thread.
  /// Idempotent.
  void stop();
  std::uint16_t port() const noexcept;
  /// "http://ADDRESS:PORT/api/v1/", or "https://..." with TLS (IPv6 in brackets).
  std::string url() const;
  ApiStats stats() const;

  struct Impl;

 private:
  explicit ApiServer(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

}  // namespace switchboard::actors
