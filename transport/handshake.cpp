#include "switchboard/transport/handshake.hpp"

#include <cstdio>

#include <zmq.h>

namespace switchboard::transport {
namespace {

std::string hex(std::uint32_t value) {
  char text[16];
  std::snprintf(text, sizeof text, "%#x", value);
  return text;
}

}  // namespace

std::string handshake_failure(std::uint16_t event, std::uint32_t value, HandshakeSide side, bool curve) {
  const bool server = side == HandshakeSide::server;
  switch (event) {
    case ZMQ_EVENT_HANDSHAKE_FAILED_AUTH:
      return server ? "its CURVE key is not one this node admits (ZAP status " + std::to_string(value) + ")"
                    : "the other end refused this side's CURVE key (ZAP status " + std::to_string(value) +
                          "): it is not a key that end admits";
    case ZMQ_EVENT_HANDSHAKE_FAILED_PROTOCOL:
      if (value == ZMQ_PROTOCOL_ERROR_ZMTP_MECHANISM_MISMATCH)
        return server ? "it does not use CURVE, and this node does (a client run with --curve off?)"
                      : curve ? "this side uses CURVE and the other end does not (run with --curve off?)"
                              : "the other end uses CURVE and this side does not";
      if (value == ZMQ_PROTOCOL_ERROR_ZMTP_CRYPTOGRAPHIC)
        return server ? "its CURVE handshake could not be decrypted: it holds another public key for this node than "
                        "this node's (the client's --keys holds another node's node.key.pub)"
                      : "the CURVE handshake could not be decrypted (" + hex(value) + ")";
      return (server ? "it does not speak ZeroMQ as this node does" : "the other end does not speak ZeroMQ as this "
                                                                       "side does") +
             std::string(" (protocol error ") + hex(value) + ")";
    case ZMQ_EVENT_HANDSHAKE_FAILED_NO_DETAIL:
    default:
      if (server)
        return std::string("it went away during the handshake (") + zmq_strerror(static_cast<int>(value)) +
               "): a client that is not speaking ZeroMQ, or one that gave up";
      return curve ? std::string("the other end closed the connection during the CURVE handshake (") +
                         zmq_strerror(static_cast<int>(value)) +
                         "): the public key this side holds for it is not its key (the node's DATA/keys/node.key.pub)"
                   : std::string("the other end closed the connection during the handshake (") +
                         zmq_strerror(static_cast<int>(value)) + ")";
  }
}

bool handshake_failure_is_final(std::uint16_t event, std::uint32_t value) {
  if (event == ZMQ_EVENT_HANDSHAKE_FAILED_AUTH) return true;
  return event == ZMQ_EVENT_HANDSHAKE_FAILED_PROTOCOL && value == ZMQ_PROTOCOL_ERROR_ZMTP_MECHANISM_MISMATCH;
}

}  // namespace switchboard::transport
