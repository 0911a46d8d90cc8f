// What a failed handshake means, by which end saw it (transport/handshake.hpp).
#include <gtest/gtest.h>

#include <zmq.h>

#include "switchboard/transport/handshake.hpp"

using namespace switchboard::transport;

TEST(Handshake, EachFailureIsNamedForTheEndThatSawIt) {
  auto says = [](std::uint16_t event, std::uint32_t value, HandshakeSide side, bool curve) {
    return handshake_failure(event, value, side, curve);
  };
  EXPECT_NE(says(ZMQ_EVENT_HANDSHAKE_FAILED_PROTOCOL, ZMQ_PROTOCOL_ERROR_ZMTP_CRYPTOGRAPHIC, HandshakeSide::server, true)
                .find("holds another public key for this node"),
            std::string::npos);
  EXPECT_NE(says(ZMQ_EVENT_HANDSHAKE_FAILED_PROTOCOL, ZMQ_PROTOCOL_ERROR_ZMTP_MECHANISM_MISMATCH, HandshakeSide::server,
                 true)
                .find("does not use CURVE"),
            std::string::npos);
  EXPECT_NE(says(ZMQ_EVENT_HANDSHAKE_FAILED_PROTOCOL, ZMQ_PROTOCOL_ERROR_ZMTP_MECHANISM_MISMATCH, HandshakeSide::client,
                 true)
                .find("this side uses CURVE and the other end does not"),
            std::string::npos);
  EXPECT_NE(says(ZMQ_EVENT_HANDSHAKE_FAILED_AUTH, 400, HandshakeSide::client, true).find("ZAP status 400"),
            std::string::npos);
  EXPECT_NE(says(ZMQ_EVENT_HANDSHAKE_FAILED_PROTOCOL, ZMQ_PROTOCOL_ERROR_ZMTP_UNEXPECTED_COMMAND, HandshakeSide::server,
                 true)
                .find("0x10000001"),
            std::string::npos);
  EXPECT_NE(says(ZMQ_EVENT_HANDSHAKE_FAILED_NO_DETAIL, EPIPE, HandshakeSide::server, true).find("Broken pipe"),
            std::string::npos);
}

TEST(Handshake, OnlyTheKeysVerdictAndAMechanismMismatchAreFinal) {
  EXPECT_TRUE(handshake_failure_is_final(ZMQ_EVENT_HANDSHAKE_FAILED_AUTH, 400));
  EXPECT_TRUE(handshake_failure_is_final(ZMQ_EVENT_HANDSHAKE_FAILED_PROTOCOL, ZMQ_PROTOCOL_ERROR_ZMTP_MECHANISM_MISMATCH));
  EXPECT_FALSE(handshake_failure_is_final(ZMQ_EVENT_HANDSHAKE_FAILED_PROTOCOL, ZMQ_PROTOCOL_ERROR_ZMTP_CRYPTOGRAPHIC));
  EXPECT_FALSE(handshake_failure_is_final(ZMQ_EVENT_HANDSHAKE_FAILED_NO_DETAIL, EPIPE));
}
