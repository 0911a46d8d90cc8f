// What a client makes of its connection's monitor events (client/link_health.hpp).
#include <gtest/gtest.h>

#include <zmq.h>

#include "switchboard/client/link_health.hpp"

using switchboard::errc;
using switchboard::client::LinkHealth;

namespace {
const std::string kAt = "tcp://127.0.0.1:7400";
}

TEST(LinkHealth, NothingListeningIsRefusedAndSaysSo) {
  LinkHealth link(kAt, true);
  EXPECT_FALSE(link.refused());
  link.on_event(ZMQ_EVENT_CONNECT_RETRIED, 100);
  EXPECT_TRUE(link.refused());
  EXPECT_FALSE(link.broken()) << "the node may be starting: not final";
  EXPECT_NE(link.no_reply(1).find("no reply from " + kAt + " after 1 attempt: nothing accepts connections there"),
            std::string::npos)
      << link.no_reply(1);
  // Once it connected, a later retry is a reconnection, not a refusal.
  link.on_event(ZMQ_EVENT_CONNECTED, 0);
  link.on_event(ZMQ_EVENT_HANDSHAKE_SUCCEEDED, 0);
  link.on_event(ZMQ_EVENT_CONNECT_RETRIED, 100);
  EXPECT_FALSE(link.refused());
  EXPECT_NE(link.no_reply(10).find("after 10 attempts, though connected"), std::string::npos) << link.no_reply(10);
}

TEST(LinkHealth, ARefusedKeyAndCurveOnOneEndAreFinalAtOnce) {
  LinkHealth refused_key(kAt, true);
  refused_key.on_event(ZMQ_EVENT_CONNECTED, 0);
  refused_key.on_event(ZMQ_EVENT_HANDSHAKE_FAILED_AUTH, 400);
  auto e = refused_key.broken();
  ASSERT_TRUE(e);
  EXPECT_EQ(e->code, errc::unavailable);
  EXPECT_NE(e->message.find("refused this side's CURVE key (ZAP status 400)"), std::string::npos) << e->message;
  EXPECT_NE(e->message.find("--keys"), std::string::npos) << e->message;

  LinkHealth plain(kAt, false);
  plain.on_event(ZMQ_EVENT_HANDSHAKE_FAILED_PROTOCOL, ZMQ_PROTOCOL_ERROR_ZMTP_MECHANISM_MISMATCH);
  ASSERT_TRUE(plain.broken());
  EXPECT_NE(plain.broken()->message.find("the other end uses CURVE and this side does not"), std::string::npos);
}

TEST(LinkHealth, HandshakesCutByTheNodeAreAnotherServerKeyOnlyWhenRepeatedAndNeverOnceGood) {
  LinkHealth wrong(kAt, true);
  for (int i = 0; i < 2; ++i) {
    wrong.on_event(ZMQ_EVENT_HANDSHAKE_FAILED_NO_DETAIL, EPIPE);
    EXPECT_FALSE(wrong.broken()) << "once or twice: a node going away mid-handshake looks the same";
  }
  wrong.on_event(ZMQ_EVENT_HANDSHAKE_FAILED_NO_DETAIL, EPIPE);
  ASSERT_TRUE(wrong.broken());
  EXPECT_NE(wrong.broken()->message.find("the public key this side holds for it is not its key"), std::string::npos);

  LinkHealth known(kAt, true);  // it worked before: a restart, not a key
  known.on_event(ZMQ_EVENT_HANDSHAKE_SUCCEEDED, 0);
  for (int i = 0; i < 5; ++i) known.on_event(ZMQ_EVENT_HANDSHAKE_FAILED_NO_DETAIL, EPIPE);
  EXPECT_FALSE(known.broken());
  EXPECT_NE(known.no_reply(3).find("the handshake failed"), std::string::npos) << known.no_reply(3);
}
