// HOST:PORT addresses of the node's HTTP listeners (bridge, metrics).
#include <gtest/gtest.h>

#include "switchboard/router/host_port.hpp"

using namespace switchboard::router;

TEST(HostPort, ReadsIpAddressesAndPortsAndWritesThemBack) {
  auto v4 = parse_host_port("127.0.0.1:7420");
  ASSERT_TRUE(v4);
  EXPECT_EQ(v4->host, "127.0.0.1");
  EXPECT_EQ(v4->port, 7420);
  EXPECT_EQ(format_host_port(v4->host, v4->port), "127.0.0.1:7420");
  auto v6 = parse_host_port("[::1]:*");
  ASSERT_TRUE(v6);
  EXPECT_EQ(v6->host, "::1");
  EXPECT_EQ(v6->port, 0);
  EXPECT_EQ(format_host_port(v6->host, 9000), "[::1]:9000");
  for (const char* bad : {"localhost:7420", "127.0.0.1", "127.0.0.1:", "127.0.0.1:65536", "127.0.0.1:-1", ":7420",
                          "300.0.0.1:80", "::1:80x"})
    EXPECT_FALSE(parse_host_port(bad)) << bad;
}
