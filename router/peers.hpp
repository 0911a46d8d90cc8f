// PeerHealth: which of the other nodes are up, from heartbeats, with a circuit
// breaker per node.
//
// Each node pings every other node every `heartbeat`. Any answer from a node (a pong,
// a forwarded request's reply) means it is up. A node that has not answered for
// `misses` heartbeats, or whose connection is gone (a message to it could not be
// sent), is down: its breaker is open and requests for its rooms fail at once with
// `unavailable` instead of waiting. The pings go on while it is down; they are the
// half-open probes, and the first answer closes the breaker.
//
// Pure state: the caller passes the time, sends the pings and fails the requests.
#pragma once

#include <chrono>
#include <map>
#include <string>
#include <vector>

namespace switchboard::router {

struct PeerOptions {
  std::chrono::milliseconds heartbeat{1000};  ///< ping interval
  unsigned misses = 3;                        ///< heartbeats without an answer: down
  std::chrono::milliseconds request_timeout{5000};  ///< a forwarded request with no reply
  /// Replicated shards (docs/REPLICATION.md): a replica that sees the primary gone
  /// stands within 0 to this many more heartbeats, at random...
  unsigned election_wait = 2;
  /// ...and a candidate with no majority within this many heartbeats tries again.
  unsigned election_timeout = 2;
};

class PeerHealth {
 public:
  using Clock = std::chrono::steady_clock;

  /// Every peer starts up (breaker closed) as of `now`: a node that is not there
  /// shows at its first send or after `misses` heartbeats.
  PeerHealth(const std::vector<std::string>& peers, PeerOptions options, Clock::time_point now);

  /// `peer` answered: it is up. True if that closed its breaker.
  bool heard_from(const std::string& peer, Clock::time_point now);
  /// A message to `peer` could not be sent (no live connection): it is down. True if
  /// that opened its breaker.
  bool unreachable(const std::string& peer);
  /// A heartbeat: the peers that have just missed too many and are now down.
  std::vector<std::string> tick(Clock::time_point now);

  bool up(const std::string& peer) const;
  /// Unknown names are not peers: false.
  bool known(const std::string& peer) const { return peers_.count(peer) > 0; }
  const PeerOptions& options() const noexcept { return options_; }
  /// Every peer and whether it is up, by name.
  std::map<std::string, bool> states() const;

 private:
  struct State {
    bool up = true;
    Clock::time_point last_heard;
  };
  PeerOptions options_;
  std::map<std::string, State> peers_;
};

}  // namespace switchboard::router
