// The metrics endpoint: a node's metrics over HTTP (Boost.Beast, one thread of its own).
//
//   GET /metrics       Prometheus text exposition format (version 0.0.4)
//   GET /metrics.json  the same figures as JSON (what `switchboard stats` reads)
//
// Anything else is 404 (405 for another method). Each connection gets one answer and
// is closed. This header has no Boost in it.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <string>

#include "switchboard/common/error.hpp"

namespace switchboard::actors {

/// The embedded default's metrics address (docs/METRICS.md): the client port + 20.
inline constexpr const char* kDefaultMetricsAddress = "127.0.0.1";
inline constexpr std::uint16_t kDefaultMetricsPort = 7420;

struct MetricsOptions {
  std::string address = kDefaultMetricsAddress;  ///< an IPv4 or IPv6 address to listen on
  std::uint16_t port = kDefaultMetricsPort;       ///< 0: any free port (see MetricsServer::port)
  /// false: a node whose metrics endpoint cannot listen runs without one, with a
  /// warning (for an address nobody asked for: the default derived from the client).
  bool required = true;
};

class MetricsServer {
 public:
  using Render = std::function<std::string()>;
  /// Binds options.address:options.port and serves on a thread of its own; `text` and
  /// `json` are called on that thread for each scrape. Errors: unavailable (the
  /// address cannot be bound; the message says why).
  static Result<std::unique_ptr<MetricsServer>> start(const MetricsOptions& options, Render text, Render json);
  ~MetricsServer();  ///< stop()
  MetricsServer(const MetricsServer&) = delete;
  MetricsServer& operator=(const MetricsServer&) = delete;

  /// Stops listening and ends the thread; no render runs after it returns. Idempotent.
  void stop();
  /// The port actually bound.
  std::uint16_t port() const noexcept;
  /// "http://ADDRESS:PORT/metrics" (IPv6 addresses in brackets).
  std::string url() const;

  struct Impl;

 private:
  explicit MetricsServer(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

}  // namespace switchboard::actors
