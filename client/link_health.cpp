#include "switchboard/client/link_health.hpp"

#include <zmq.h>

#include "switchboard/transport/handshake.hpp"

namespace switchboard::client {

void LinkHealth::on_event(std::uint16_t event, std::uint32_t value) {
  switch (event) {
    case ZMQ_EVENT_CONNECTED: connected_ = true; break;
    case ZMQ_EVENT_CONNECT_RETRIED:
      if (!connected_) ++refusals_;
      break;
    case ZMQ_EVENT_HANDSHAKE_SUCCEEDED:
      handshaken_ = true;
      cut_in_a_row_ = 0;
      last_failure_.reset();
      break;
    case ZMQ_EVENT_HANDSHAKE_FAILED_NO_DETAIL:
    case ZMQ_EVENT_HANDSHAKE_FAILED_PROTOCOL:
    case ZMQ_EVENT_HANDSHAKE_FAILED_AUTH: {
      last_failure_ = transport::handshake_failure(event, value, transport::HandshakeSide::client, curve_);
      if (transport::handshake_failure_is_final(event, value)) final_ = last_failure_;
      // A wrong server key: the node cuts every handshake at once. A node going away
      // mid-handshake does it once; three in a row, never a success, is the key.
      if (event == ZMQ_EVENT_HANDSHAKE_FAILED_NO_DETAIL && curve_ && !handshaken_ && ++cut_in_a_row_ >= 3)
        final_ = last_failure_;
      break;
    }
    default: break;
  }
}

std::optional<Error> LinkHealth::broken() const {
  if (!final_) return std::nullopt;
  std::string advice = curve_ ? " Check that --keys (default data/keys) is the DATA/keys directory of the node at " +
                                    endpoint_ + ": it must hold that node's public key (node.key.pub) and a client key "
                                    "it admits (client.key); and that CURVE is on at both ends or off at both (--curve)."
                              : " The node may use CURVE: then drop --curve off and give --keys.";
  return Error{errc::unavailable, "cannot talk to " + endpoint_ + ": " + *final_ + "." + advice};
}

std::string LinkHealth::no_reply(int attempts) const {
  const std::string tried = "no reply from " + endpoint_ + " after " + std::to_string(attempts) +
                            (attempts == 1 ? " attempt" : " attempts");
  if (refused())
    return tried + ": nothing accepts connections there (connection refused). Is the node running, and is this its "
                   "client endpoint (--connect; the ready line's client=)?";
  if (last_failure_) return tried + ": the handshake failed: " + *last_failure_ + ".";
  if (!connected_)
    return tried + ": no connection could be made (nothing answered there). Is the node running at that address?";
  return tried + ", though connected: the node may be overloaded or stopping, or this is not a Switchboard "
                 "node's client endpoint.";
}

}  // namespace switchboard::client
