// The ZAP handler (ZeroMQ RFC 27): who may connect to a process's CURVE sockets.
//
// libzmq asks the handler bound on inproc://zeromq.zap.01 of a socket's context about
// every new tcp connection to a CURVE server socket: the socket's ZAP domain, the
// peer's address and its public key. A CURVE server whose context has no handler
// admits every key, so the handler is bound before any CURVE socket (Node::start,
// ServiceHost::start) and lives until they are closed.
//
// Domains say which kind of socket is asked about (zap_domain): "<actor>.peers" is a
// ROUTER for the other nodes only (forwarded requests, presence sharing; a service's
// endpoint); anything else ("<actor>.clients", "<actor>.publish") faces clients.
// Node keys are admitted everywhere; client and service keys on client-facing
// sockets only.
#pragma once

#include <atomic>
#include <chrono>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <string_view>
#include <thread>
#include <utility>

#include <zmq.hpp>

namespace switchboard::actors {

/// The ZAP domain of actor `actor`'s socket of kind `kind` ("clients", "peers",
/// "publish").
std::string zap_domain(const std::string& actor, std::string_view kind);

/// The public keys a process admits, and whose they are.
struct ZapPolicy {
  struct Key {
    std::string who;    ///< for logs and the connection's User-Id: "node b", "service bot", "client"
    bool node = false;  ///< a node of the topology: admitted on ".peers" domains too
  };
  std::map<std::string, Key> keys;  ///< Z85 public key -> whose

  void admit(const std::string& key, std::string who, bool node = false);
};

struct ZapVerdict {
  bool allow = false;
  std::string user_id;  ///< allowed: whose key it is
  std::string reason;   ///< refused: why
};

/// The decision for a connection with `mechanism` to a socket of `domain`, from a peer
/// with public key `key` (Z85). Pure: no sockets, no clock.
ZapVerdict zap_decide(const ZapPolicy& policy, std::string_view domain, std::string_view mechanism,
                      std::string_view key);

/// Bounds how many refusals are logged: at most `burst` at once, then one per
/// `interval`; the others are counted and reported with the next one logged.
class LogBudget {
 public:
  using Clock = std::chrono::steady_clock;
  LogBudget(int burst, Clock::duration interval) : burst_(burst), interval_(interval), tokens_(burst) {}
  /// True if a line may be logged at `now`; else it is counted as suppressed.
  bool take(Clock::time_point now);
  /// Lines suppressed since the last one that was logged; resets the count.
  std::uint64_t take_suppressed() { return std::exchange(suppressed_, 0); }

 private:
  int burst_;
  Clock::duration interval_;
  int tokens_;
  Clock::time_point refilled_{};
  std::uint64_t suppressed_ = 0;
};

/// Answers ZAP requests of one context on its own thread, with zap_decide, and logs
/// each refusal (rate-limited by a LogBudget) with the key, the peer address, the
/// domain and the endpoints described for it.
class ZapHandler {
 public:
  /// Binds inproc://zeromq.zap.01 in `context` before returning. `owner` names the
  /// process in logs ("node a"). Throws zmq::error_t if the address is taken (another
  /// handler in the same context).
  ZapHandler(zmq::context_t& context, ZapPolicy policy, std::string owner);
  ~ZapHandler();  ///< stop()
  ZapHandler(const ZapHandler&) = delete;
  ZapHandler& operator=(const ZapHandler&) = delete;

  /// Names the endpoints of `domain` in refusal logs (from any thread).
  void describe(const std::string& domain, const std::string& endpoints);
  /// Connections refused so far.
  std::uint64_t refused() const noexcept { return refused_.load(); }
  /// Stops answering. Call once the CURVE sockets of the context are closed.
  void stop();

 private:
  void run(std::string control_endpoint);
  void answer();

  zmq::context_t& context_;
  ZapPolicy policy_;
  std::string owner_;
  zmq::socket_t socket_, control_;
  std::mutex described_mu_;
  std::map<std::string, std::string> described_;
  LogBudget log_budget_{20, std::chrono::seconds(1)};
  std::atomic<std::uint64_t> refused_{0};
  std::thread thread_;
};

}  // namespace switchboard::actors
