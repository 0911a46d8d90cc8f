// What a client has seen of its connection to the node, from its socket monitor, and
// what to tell the user when requests go unanswered. No sockets: fed monitor events in
// order, it answers two questions (is the link broken for good? why no reply?).
//
// The common setup mistakes all look alike from the request side (no reply): nothing
// listening at the endpoint, a client key the node does not admit, another node's
// public key, CURVE on at one end only. The monitor tells them apart.
#pragma once

#include <cstdint>
#include <optional>
#include <string>

#include "switchboard/common/error.hpp"

namespace switchboard::client {

class LinkHealth {
 public:
  /// `endpoint`: where the client connects; `curve`: whether it uses CURVE there.
  LinkHealth(std::string endpoint, bool curve) : endpoint_(std::move(endpoint)), curve_(curve) {}

  /// One monitor event (ZMQ_EVENT_*) and its value.
  void on_event(std::uint16_t event, std::uint32_t value);

  /// A failure no retry can mend: the node refused the client's key, CURVE is on at
  /// one end only, or (three handshakes in a row cut by the node, none ever completed)
  /// the client holds another public key for the node. The error (unavailable) says
  /// which and what to check. nullopt while the link may still work.
  std::optional<Error> broken() const;

  /// Nothing ever connected, and the connection was refused: nothing listens there.
  bool refused() const noexcept { return !connected_ && refusals_ > 0; }

  /// Why a request got no reply after `attempts` attempts (the error's message).
  std::string no_reply(int attempts) const;

 private:
  std::string endpoint_;
  bool curve_;
  bool connected_ = false;     ///< a tcp connection was made at least once
  bool handshaken_ = false;    ///< a handshake completed at least once
  int refusals_ = 0;           ///< connection attempts that were retried without a connection
  int cut_in_a_row_ = 0;       ///< NO_DETAIL failures since the last completed handshake
  std::optional<std::string> final_;  ///< a final failure, described
  std::optional<std::string> last_failure_;  ///< the last handshake failure, described
};

}  // namespace switchboard::client
