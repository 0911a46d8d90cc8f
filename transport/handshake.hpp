// What a failed ZeroMQ handshake means, in words a user can act on. A socket monitor
// reports a failure as an event and a number (an errno, a ZMTP protocol error, a ZAP
// status); which end saw it changes the likely cause. Pure functions, tested without
// sockets; the node's monitors and the client library both use them.
#pragma once

#include <cstdint>
#include <string>

namespace switchboard::transport {

enum class HandshakeSide {
  server,  ///< the end that binds (a node's endpoint), about a connecting peer
  client,  ///< the end that connects (a client, or a node linking to another)
};

/// Why a handshake failed, from a monitor event (ZMQ_EVENT_HANDSHAKE_FAILED_NO_DETAIL,
/// _PROTOCOL or _AUTH) and its value, as seen from `side`; `curve`: whether this end
/// uses CURVE. One clause, no endpoint: the caller says where.
std::string handshake_failure(std::uint16_t event, std::uint32_t value, HandshakeSide side, bool curve);

/// Whether a failure seen by the client side is an answer that trying again cannot
/// change: the other end's ZAP verdict on the key, or CURVE on one end only. (A wrong
/// server key shows only as NO_DETAIL, as a connection cut mid-handshake does too: the
/// caller tells the two apart by repetition.)
bool handshake_failure_is_final(std::uint16_t event, std::uint32_t value);

}  // namespace switchboard::transport
