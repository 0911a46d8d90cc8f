// The bridge's address parsing (the bridge itself is tested with real WebSocket
// clients: tests/bridge/, tests/browser/).
#include <gtest/gtest.h>

#include "switchboard/actors/bridge.hpp"

using switchboard::actors::parse_bridge_address;

TEST(BridgeAddress, ReadsHostAndPort) {
  auto a = parse_bridge_address("127.0.0.1:7410");
  ASSERT_TRUE(a);
  EXPECT_EQ(a->host, "127.0.0.1");
  EXPECT_EQ(a->port, 7410);
  auto v6 = parse_bridge_address("[::1]:80");
  ASSERT_TRUE(v6);
  EXPECT_EQ(v6->host, "::1");
  EXPECT_EQ(v6->port, 80);
  auto any = parse_bridge_address("0.0.0.0:*");
  ASSERT_TRUE(any);
  EXPECT_EQ(any->port, 0);
}

TEST(BridgeAddress, RefusesWhatIsNotAnAddressAndAPort) {
  for (const char* bad : {"", "7410", "localhost:7410", "127.0.0.1:", "127.0.0.1:65536", "127.0.0.1:74a0",
                          "127.0.0.1:-1", "::1:7410x", "[::1]"})
    EXPECT_FALSE(parse_bridge_address(bad)) << bad;
}
